//! `run -D DIR -M NAME` names a run in place, as systemd-nspawn's
//! `-D DIR -M NAME` does: detached, `ps`, `exec`, `status` and `stop`
//! reach it by name, its hostname is the name, a second run of that name
//! is refused while it runs, and no machine is made in the store.

use std::ffi::OsStr;
use std::time::{Duration, Instant};

use super::{busybox_init_tree, machine_name, Host};

#[test]
fn a_directory_run_named_with_dash_m_is_managed_by_name_and_copies_nothing() {
    let m = machine_name("dm");
    let h = Host::new();
    let tree = busybox_init_tree(&h.berth.new_dir("dtree"));
    let run = |t: &std::path::Path, cmd: &str| {
        h.run([
            OsStr::new("run"),
            OsStr::new("-d"),
            OsStr::new("-D"),
            t.as_os_str(),
            OsStr::new("-M"),
            OsStr::new(&m),
            OsStr::new("sh"),
            OsStr::new("-c"),
            OsStr::new(cmd),
        ])
    };
    run(&tree, "echo up > /ready; exec sleep 1000").success();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !tree.join("ready").exists() {
        assert!(Instant::now() < deadline, "the named -D run never wrote /ready into its tree");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(h.ps_names(), vec![m.clone()]);
    assert_eq!(h.run(["exec", &m, "cat", "/ready"]).success().stdout, "up\n");
    assert_eq!(h.run(["exec", &m, "hostname"]).success().stdout.trim(), m);
    let status = h.run(["status", &m]).success().stdout;
    assert!(status.contains(&tree.display().to_string()), "status must show the tree as the root:\n{status}");
    // The name is taken while it runs.
    let other = busybox_init_tree(&h.berth.new_dir("dtree2"));
    run(&other, "true").failure().mentions_any(&["running"]);
    // Nothing was copied into the store: no machine of that name.
    let machines = h.run(["machines", "--json"]).success().json();
    assert_eq!(machines.as_array().map(|a| a.len()), Some(0), "a -D run made a machine: {machines}");
    h.run(["terminate", &m]).success();
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.ps_names().contains(&m) {
        assert!(Instant::now() < deadline, "{m} still listed after terminate");
        std::thread::sleep(Duration::from_millis(50));
    }
}
