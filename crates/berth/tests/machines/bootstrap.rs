//! `berth bootstrap debian bookworm NAME --variant minbase --image`: a
//! real debootstrap from the Debian mirror APT uses (about a minute; the
//! only test that needs the mirror).

use std::time::Duration;

use super::{image_id, machine, machines, run_long};
use crate::harness::debootstrap::mirror;
use crate::harness::Berth;

#[test]
fn bootstrap_debian_bookworm_minbase_with_an_image() {
    let berth = Berth::new();
    let mirror = mirror();
    let cmd = berth.command([
        "bootstrap",
        "debian",
        "bookworm",
        "deb",
        "--variant",
        "minbase",
        "--image",
        "--mirror",
        mirror.as_str(),
    ]);
    let run = run_long(cmd, Duration::from_secs(600));
    assert!(run.status.success(), "bootstrap failed: {run:?}");

    let o = berth.run(["run", "-M", "deb", "cat", "/etc/debian_version"]).success();
    assert!(o.stdout.trim().starts_with("12."), "not bookworm: {o:?}");
    let o =
        berth.run(["run", "-M", "deb", "/bin/sh", "-c", "dpkg-query -W -f '${Package}\\n' | wc -l; id -un"]).success();
    let mut l = o.stdout.lines();
    let pkgs: u32 = l.next().unwrap_or("0").trim().parse().unwrap_or(0);
    assert!(pkgs > 50, "minbase has ~90 packages, dpkg knows {pkgs}: {o:?}");
    assert_eq!(l.next(), Some("root"));

    // --image: the image exists and the machine is built on it.
    let id = image_id(&berth, "localhost/deb:latest");
    let list = machines(&berth);
    let m = machine(&list, "deb").unwrap_or_else(|| panic!("no machine deb: {list:?}"));
    let img = m["image"].as_str().unwrap_or("");
    assert!(img == id || img == "localhost/deb:latest", "machine deb is not on image {id}: {m}");
    let usage = m["usage"].as_u64().unwrap_or(u64::MAX);
    assert!(usage < 16 << 20, "the machine holds its own copy of the tree ({usage} bytes), not an overlay: {m}");
    let o = berth.run(["run", "localhost/deb", "cat", "/etc/debian_version"]).success();
    assert!(o.stdout.trim().starts_with("12."), "{o:?}");
    // A second machine from the image is cheap and independent.
    berth.run(["create", "deb", "deb2"]).success();
    berth.run(["run", "-M", "deb2", "/bin/sh", "-c", "echo x > /etc/only-deb2"]).success();
    let o = berth.run(["run", "-M", "deb", "/bin/sh", "-c", "test -e /etc/only-deb2 && echo leaked; true"]).success();
    assert_eq!(o.stdout, "");
    // Nothing of debootstrap's /proc or /sys mounts stays behind.
    super::assert_nothing_attached(&berth, "bootstrap");

    // The packages were kept: a second bootstrap of the suite (the host's
    // architecture named) validates them and downloads none again.
    let cache = berth.root().join("cache/debootstrap/debian-bookworm-amd64");
    let debs = || -> Vec<(String, u64, i64)> {
        use std::os::unix::fs::MetadataExt;
        let mut v: Vec<(String, u64, i64)> = std::fs::read_dir(&cache)
            .map(|rd| rd.flatten().filter(|e| e.file_name().to_string_lossy().ends_with(".deb")).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|e| {
                e.metadata().ok().map(|m| (e.file_name().to_string_lossy().into_owned(), m.ino(), m.mtime()))
            })
            .collect();
        v.sort();
        v
    };
    let before = debs();
    assert!(before.len() > 50, "the package cache holds {} .debs: {}", before.len(), cache.display());
    let cmd = berth.command([
        "bootstrap",
        "debian",
        "bookworm",
        "deb3",
        "--variant",
        "minbase",
        "--arch",
        "amd64",
        "--mirror",
        mirror.as_str(),
    ]);
    let run = run_long(cmd, Duration::from_secs(600));
    assert!(run.status.success(), "the cached bootstrap failed: {run:?}");
    assert_eq!(debs(), before, "a package was downloaded again (or the cache changed) on the second bootstrap");
    let o = berth.run(["run", "-M", "deb3", "dpkg", "--print-architecture"]).success();
    assert_eq!(o.stdout.trim(), "amd64");

    // A foreign architecture needs qemu-user-static; an unknown one is named.
    if !std::path::Path::new("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists() {
        berth
            .run(["bootstrap", "debian", "bookworm", "arm", "--arch", "arm64"])
            .failure()
            .mentions_any(&["qemu-user-static"]);
    }
    berth.run(["bootstrap", "debian", "bookworm", "odd", "--arch", "vax"]).failure().mentions_any(&["vax"]);
}
