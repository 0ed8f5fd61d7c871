//! The store is root's alone: no other local user reaches a layer's
//! setuid files, device nodes or a machine's files through it, a looser
//! store is tightened when berth next opens it, and the views of an image
//! berth mounts are nosuid and nodev. Both checks fail on the berth from
//! before (a 0755 store, plain read-only mounts).

use crate::harness::container::{s, Ctx};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("stat").permissions().mode() & 0o7777
}

/// Whether `nobody` can list `dir`.
fn nobody_lists(dir: &Path) -> bool {
    Command::new("runuser").args(["-u", "nobody", "--", "ls", &s(dir)]).output().expect("runuser").status.success()
}

/// The options of the mount at `dir` (fields 6 and 11 of mountinfo).
fn mount_options(dir: &Path) -> Vec<String> {
    let dir = std::fs::canonicalize(dir).expect("canonicalize");
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let line = info
        .lines()
        .rev()
        .find(|l| l.split(' ').nth(4) == Some(&s(&dir)))
        .unwrap_or_else(|| panic!("{} is not a mount point", dir.display()));
    let f: Vec<&str> = line.split(' ').collect();
    let mut opts: Vec<String> = f[5].split(',').map(str::to_string).collect();
    if let Some(sep) = f.iter().position(|x| *x == "-") {
        opts.extend(f.get(sep + 3).unwrap_or(&"").split(',').map(str::to_string));
    }
    opts
}

#[test]
fn other_users_reach_nothing_in_the_store_and_image_views_are_inert() {
    let c = Ctx::busybox();
    let store = c.store().to_path_buf();
    // The test's own dir is 0700 (tempfile's); open it up the way
    // /var/lib is, so only the store's mode stands in the way.
    std::fs::set_permissions(c.berth.dir(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    assert_eq!(mode(&store), 0o700, "a new store is root's alone");
    assert!(!nobody_lists(&store.join("layers")), "nobody lists the store's layers");

    // A store left 0755 (by hand, or an older berth) is tightened.
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    assert!(nobody_lists(&store.join("layers")), "the check itself: nobody lists a 0755 store");
    c.berth.run(["images"]).success();
    assert_eq!(mode(&store), 0o700, "tightened on first use");
    assert!(!nobody_lists(&store.join("layers")));

    // Containers and machines still work on a private store.
    c.run_image(&[], &["/bin/sh", "-c", "echo ok > /f && cat /f"]).success();
    let m = format!("priv-{}", std::process::id());
    c.run_image(&["--name", &m], &["/bin/sh", "-c", "echo kept > /kept"]).success();
    let o = c.run(&["-M", &m, "cat", "/kept"]).success().out();
    assert_eq!(o.trim(), "kept", "a machine's files survive on a private store");

    let mnt = c.berth.mount(&c.image);
    let opts = mount_options(&mnt);
    c.berth.unmount(&mnt);
    for want in ["ro", "nosuid", "nodev"] {
        assert!(opts.iter().any(|o| o == want), "`berth mount` is {want}: {opts:?}");
    }
}
