//! `berth enable` / `berth disable`: a `berth@.service` template plus a
//! `machines.target.wants/berth@NAME.service` link in `$BERTH_SYSTEMD_DIR`,
//! checked with `systemd-analyze verify`.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use super::{machine_name, Host};

fn ensure_systemd_analyze() {
    if Command::new("systemd-analyze").arg("--version").output().is_ok_and(|o| o.status.success()) {
        return;
    }
    let st = Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends", "systemd"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .status()
        .expect("run apt-get");
    assert!(st.success(), "apt-get install systemd (for systemd-analyze) failed");
}

/// `systemd-analyze verify UNIT`: exit 0 and no complaint about berth's unit.
fn verify(unit: &Path) {
    let out =
        Command::new("systemd-analyze").arg("verify").arg(unit).stdin(Stdio::null()).output().expect("systemd-analyze");
    let err = String::from_utf8_lossy(&out.stderr);
    let complaints: Vec<&str> = err.lines().filter(|l| l.contains("berth")).collect();
    assert!(
        out.status.success() && complaints.is_empty(),
        "systemd-analyze verify {} → {}\n{err}\n--- unit ---\n{}",
        unit.display(),
        out.status,
        fs::read_to_string(unit).unwrap_or_default()
    );
}

#[test]
fn enable_writes_a_unit_systemd_analyze_verifies_and_disable_removes_only_the_link() {
    ensure_systemd_analyze();
    let a = machine_name("ena");
    let b = machine_name("enb");
    let h = Host::busybox(&[&a, &b]);
    let template = h.units.join("berth@.service");
    let wants = h.units.join("machines.target.wants");
    let link_a = wants.join(format!("berth@{a}.service"));
    let link_b = wants.join(format!("berth@{b}.service"));

    h.run(["enable", &a]).success();
    assert!(template.is_file(), "enable must write {}", template.display());
    let meta = fs::symlink_metadata(&link_a).unwrap_or_else(|e| panic!("enable must make {}: {e}", link_a.display()));
    assert!(meta.file_type().is_symlink(), "{} must be a symlink", link_a.display());
    assert_eq!(
        fs::canonicalize(&link_a).expect("resolve the wants link"),
        fs::canonicalize(&template).unwrap(),
        "the wants link must point at the template"
    );

    // The unit boots this machine from this store with this berth.
    let unit = fs::read_to_string(&template).unwrap();
    let exec =
        unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).unwrap_or_else(|| panic!("no ExecStart:\n{unit}"));
    let words: Vec<&str> = exec.split_whitespace().collect();
    let exe = words[0].trim_start_matches(['-', '@', '+', '!', ':']);
    assert!(Path::new(exe).is_absolute() && Path::new(exe).exists(), "ExecStart must name the berth binary: {exec}");
    let store = h.berth.root().to_string_lossy().into_owned();
    assert!(
        words.windows(2).any(|w| w[0] == "--root" && w[1] == store)
            || words.contains(&format!("--root={store}").as_str()),
        "ExecStart must use the store {store}: {exec}"
    );
    // `start` boots a machine without settings and runs one with them as
    // they say; --foreground, so systemd supervises it.
    assert!(
        words.windows(2).any(|w| w == ["start", "--foreground"]),
        "ExecStart must start the machine in the foreground: {exec}"
    );
    assert!(words.contains(&"%i"), "ExecStart must name the machine by the instance (%i): {exec}");
    assert!(unit.contains("WantedBy=machines.target"), "[Install] must say WantedBy=machines.target:\n{unit}");

    // systemd-analyze verify: the instance as systemd would load it, and
    // the link itself.
    let check = h.berth.new_dir("verify");
    let instance = check.join(format!("berth@{a}.service"));
    fs::copy(&template, &instance).unwrap();
    verify(&instance);
    verify(&link_a);

    // Enabling again changes nothing; a second machine shares the template.
    h.run(["enable", &a]).success();
    h.run(["enable", &b]).success();
    assert!(fs::symlink_metadata(&link_b).is_ok(), "enable {b} must make {}", link_b.display());
    let mut links: Vec<String> =
        fs::read_dir(&wants).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    links.sort();
    let mut want = vec![format!("berth@{a}.service"), format!("berth@{b}.service")];
    want.sort();
    assert_eq!(links, want, "one wants link per enabled machine");

    // disable removes that machine's link only.
    h.run(["disable", &a]).success();
    assert!(fs::symlink_metadata(&link_a).is_err(), "disable must remove {}", link_a.display());
    assert!(fs::symlink_metadata(&link_b).is_ok(), "disable {a} must leave {b}'s link");
    assert!(template.is_file(), "disable {a} must leave the template {b} uses");
    verify(&link_b);

    // Errors: disabling twice, enabling a machine that does not exist.
    h.run(["disable", &a]).failure().mentions_any(&[&a]);
    let ghost = machine_name("nosuch");
    h.run(["enable", &ghost]).failure().mentions_any(&[&ghost]);
    assert!(
        fs::symlink_metadata(wants.join(format!("berth@{ghost}.service"))).is_err(),
        "a failed enable must not leave a link"
    );
    h.run(["disable", &b]).success();
}
