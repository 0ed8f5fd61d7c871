//! Two stores, one run directory: a machine of the same name in each runs
//! beside the other, and `ps`, `exec` and `stop` of one store reach only
//! its own. Each store's state directory is root's alone and names the
//! store it belongs to.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use super::{machine_name, proc_start_time, state_dir_of, Host};

fn leader(h: &Host, m: &str) -> i32 {
    h.state(m).unwrap_or_else(|| panic!("{m} has no state in {}", h.state_dir.display()))["leader"]
        .as_i64()
        .expect("leader") as i32
}

#[test]
fn two_stores_run_machines_of_the_same_name_apart() {
    let m = machine_name("st");
    let a = Host::busybox(&[&m]);
    let mut b = Host::busybox(&[&m]);
    b.run_dir = a.run_dir.clone();
    b.state_dir = state_dir_of(&b.run_dir, b.berth.root());
    assert_ne!(a.state_dir, b.state_dir);

    a.start(&m);
    a.run(["exec", &m, "touch", "/in-store-a"]).success();
    b.start(&m);
    let (la, lb) = (leader(&a, &m), leader(&b, &m));
    assert_ne!(la, lb, "both stores' {m} must run, each with its own leader");
    assert_eq!(a.ps_names(), vec![m.clone()]);
    assert_eq!(b.ps_names(), vec![m.clone()]);
    let r = b.run(["exec", &m, "test", "-e", "/in-store-a"]);
    assert_eq!(r.status.code(), Some(1), "`exec` in store b reached store a's machine: {r:?}");

    for h in [&a, &b] {
        let mode = fs::metadata(&h.state_dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{} is mode {mode:o}", h.state_dir.display());
        let named = fs::read_to_string(h.state_dir.join(".store")).unwrap();
        assert_eq!(named.trim_end(), fs::canonicalize(h.berth.root()).unwrap().to_str().unwrap());
    }

    a.run(["stop", &m]).success();
    assert!(a.ps_names().is_empty());
    assert_eq!(b.ps_names(), vec![m.clone()], "stopping store a's {m} touched store b's");
    assert!(proc_start_time(lb).is_some(), "store b's {m} died when store a's stopped");
    b.run(["stop", &m]).success();
    assert!(b.ps_names().is_empty());
}
