//! A store on btrfs: machines are subvolumes and clones are snapshots
//! (issue 4), and create, run, clone, commit and export behave as on any
//! other filesystem.

use std::process::Command;

use super::{assert_same, extract_file, host, image_tree, machine_names, sh_in, with_machine_image};
use crate::harness::berth::is_mounted;
use crate::harness::tree;
use crate::harness::Berth;

/// A fresh store on a 512 MiB btrfs (a file in the test dir, loop-mounted
/// at the store's path before berth first runs; the store's drop detaches
/// it, and the loop device clears itself).
fn btrfs_store(berth: &Berth) {
    super::disks::need("mkfs.btrfs", "btrfs-progs");
    let img = berth.dir().join("btrfs.img");
    let f = std::fs::File::create(&img).unwrap();
    f.set_len(512 << 20).unwrap();
    drop(f);
    host(Command::new("mkfs.btrfs").arg("-q").arg(&img));
    std::fs::create_dir_all(berth.root()).unwrap();
    host(Command::new("mount").args(["-o", "loop"]).arg(&img).arg(berth.root()));
    assert!(is_mounted(berth.root()), "the btrfs store is not mounted");
}

fn is_subvolume(p: &std::path::Path) -> bool {
    Command::new("btrfs").args(["subvolume", "show"]).arg(p).output().map(|o| o.status.success()).unwrap_or(false)
}

#[test]
fn machines_on_a_btrfs_store_are_subvolumes_and_clones_snapshots() {
    // Pull into a btrfs store: pulled() makes its own Berth, so pull again.
    let (reg, _plain, image) = with_machine_image();
    let berth = Berth::new();
    btrfs_store(&berth);
    berth.pull(&image, &["-q"]).success();
    drop(reg);

    berth.run(["create", image.as_str(), "m"]).success();
    assert!(is_subvolume(&berth.root().join("machines/m")), "a machine on btrfs is not a subvolume");
    sh_in(&berth, "m", super::commit::CHANGES).success();
    berth.run(["clone", "m", "c"]).success();
    assert!(is_subvolume(&berth.root().join("machines/c")), "a clone on btrfs is not a subvolume snapshot");
    assert_eq!(machine_names(&berth), vec!["c", "m"]);
    sh_in(&berth, "c", "echo clone > /etc/new").success();
    assert_eq!(sh_in(&berth, "m", "cat /etc/new").success().stdout, "x\n", "changing the clone changed its source");
    assert_eq!(sh_in(&berth, "c", "cat /etc/new; test -e /somedir && echo back; true").success().stdout, "clone\n");

    // Commit: the same whiteouts as on overlay; umoci agrees.
    berth.run(["commit", "m", "committed"]).success();
    let o = berth
        .run([
            "run",
            "committed",
            "/bin/sh",
            "-c",
            "cat /etc/new; for p in /bin/vi /somedir /srv/data; do test -e $p && echo still:$p; done; ls /srv",
        ])
        .success();
    assert_eq!(o.stdout, "x\nonly\n", "{o:?}");
    let got = image_tree(&berth, "committed");
    let layout = berth.dir().join("layout");
    berth
        .run(["export".as_ref(), "committed".as_ref(), layout.as_os_str(), "--format".as_ref(), "oci".as_ref()])
        .success();
    let bundle = berth.dir().join("bundle");
    host(Command::new("umoci").arg("unpack").arg("--image").arg(format!("{}:latest", layout.display())).arg(&bundle));
    assert_same(&tree::snapshot(&bundle.join("rootfs")), &got, &["."], "umoci vs berth for a commit on btrfs");

    // Export of the machine equals the committed image's tree.
    let tarball = berth.dir().join("m.tar");
    berth.run(["export".as_ref(), "m".as_ref(), tarball.as_os_str()]).success();
    let flat = tree::snapshot(&extract_file(&berth, &tarball, "m-flat"));
    assert_same(&flat, &got, &["."], "export of a btrfs machine vs its commit");

    berth.run(["rm", "m", "c"]).success();
    assert!(machine_names(&berth).is_empty());
    let left = host(Command::new("btrfs").args(["subvolume", "list"]).arg(berth.root()));
    assert!(!left.contains("machines/"), "rm left subvolumes behind:\n{left}");
}
