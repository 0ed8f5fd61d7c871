//! Seed 001's workflow end to end, with berth alone: a debootstrap'd
//! template (the cached systemd tree), cloned into a service machine, a
//! package installed in the clone from a local APT repository (the
//! harness builds it with dpkg-deb and dpkg-scanpackages: nginx from the
//! mirror in the seed), the machine exported as `NAME.xz` (as
//! `machinectl --format=xz export-tar`), imported back as a new machine
//! and booted with `--volatile=overlay`: the package's service runs at
//! boot, the boot's writes are gone after it, the template never changes.

use std::ffi::OsStr;
use std::fs;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{machine_name, systemd_tree, Host};
use crate::harness::aptrepo;
use crate::harness::berth::wait_for;

#[test]
fn a_template_clone_gets_a_local_package_goes_out_as_xz_and_boots_volatile_after_import() {
    let h = Host::new();
    let (tpl, web, web2) = (machine_name("tpl"), machine_name("web"), machine_name("web2"));
    let tree = systemd_tree();
    h.run([OsStr::new("import"), tree.as_os_str(), OsStr::new(&tpl), OsStr::new("--machine")]).success();
    h.run(["clone", &tpl, &web]).success();

    // apt-get in the clone, from the repository bound read-only.
    let repo = aptrepo::build(&h.berth.new_dir("apt"));
    let bind = format!("{}:/srv/repo", repo.display());
    let r = h.run(["run", "-M", &web, "--bind-ro", &bind, "/bin/sh", "-c", &aptrepo::install_line()]);
    assert!(r.status.success(), "apt-get install in the clone failed: {r:?}");
    let r = h.run(["run", "-M", &web, "berth-hello"]).success();
    assert_eq!(r.stdout.trim(), aptrepo::GREETING, "{r:?}");
    let r = h.run(["run", "-M", &tpl, "/bin/sh", "-c", "test -e /usr/bin/berth-hello && echo leaked; true"]).success();
    assert_eq!(r.stdout, "", "the package reached the template {tpl}: {r:?}");

    // `export NAME.xz`: xz by its name, readable by xz and tar as
    // machinectl's import-tar reads it.
    let xz = h.berth.dir().join(format!("{web}.xz"));
    // xz -6 of a ~250 MB tree takes a minute on two cores.
    let mut export = h.command([OsStr::new("export"), OsStr::new(&web), xz.as_os_str()]);
    let child = export.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn berth export");
    wait_for(&mut { child }, format!("export {web} {}", xz.display()), Duration::from_secs(600)).success();
    let head = fs::read(&xz).expect("the export");
    assert!(head.starts_with(b"\xfd7zXZ\0"), "{} is not xz", xz.display());
    let listing = Command::new("sh")
        .arg("-c")
        .arg(format!("xz -dc '{}' | tar -t", xz.display()))
        .output()
        .expect("run xz | tar -t");
    assert!(listing.status.success(), "xz -dc | tar -t failed: {listing:?}");
    let names = String::from_utf8_lossy(&listing.stdout);
    assert!(
        names.lines().any(|l| l.trim_start_matches("./") == "usr/bin/berth-hello"),
        "the export lacks the installed package"
    );

    // Imported back as a machine and booted with --volatile=overlay.
    h.run([OsStr::new("import"), xz.as_os_str(), OsStr::new(&web2), OsStr::new("--machine")]).success();
    h.run(["run", "-M", &web2, "-b", "-d", "--volatile=overlay"]).success();
    h.wait_running(&web2);
    let r = h.run(["exec", &web2, "systemctl", "is-active", "berth-hello.service"]);
    assert_eq!(r.stdout.trim(), "active", "the package's service did not run at boot: {r:?}");
    let r = h.run(["exec", &web2, "cat", aptrepo::SERVICE_MARK]).success();
    assert_eq!(r.stdout.trim(), aptrepo::GREETING, "{r:?}");
    h.run(["exec", &web2, "/bin/sh", "-c", "echo boot-write > /etc/volatile-probe; rm /usr/bin/berth-hello"]).success();
    h.run(["stop", &web2]).success();
    let r = h.run([
        "run",
        "-M",
        &web2,
        "/bin/sh",
        "-c",
        "test -e /etc/volatile-probe && echo kept-the-write; test -x /usr/bin/berth-hello && echo has-the-package",
    ]);
    assert_eq!(r.stdout, "has-the-package\n", "--volatile=overlay must discard the boot's changes: {r:?}");
}
