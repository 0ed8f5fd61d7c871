//! `berth commit MACHINE IMAGE`: the machine's changes become one new
//! layer: new and changed files, deletions as whiteouts, a replaced
//! directory as an opaque one. Checked by mounting the new image, by
//! running it, and by `umoci unpack` of its OCI export (which applies
//! berth's whiteouts itself).

use std::fs;
use std::process::Command;

use serde_json::Value;

use super::{assert_same, extract_file, host, host_sh, image_tree, machine_names, q, sh_in, with_machine_image};
use crate::harness::tree;
use crate::harness::Berth;

/// What every commit test does in the machine.
pub const CHANGES: &str = "echo x > /etc/new && echo changed > /etc/keep && rm /bin/vi && rm -rf /somedir \
     && rm -rf /srv && mkdir /srv && echo fresh > /srv/only && ln -s /etc/new /etc/new-link \
     && mkdir -p /opt/deep/er && echo d > /opt/deep/er/f && chmod 0600 /etc/passwd";

/// The same changes made on the host to a copy of the image's tree.
const HOST_CHANGES: &str = "echo x > etc/new && echo changed > etc/keep && rm bin/vi && rm -rf somedir \
     && rm -rf srv && mkdir srv && echo fresh > srv/only && ln -s /etc/new etc/new-link \
     && mkdir -p opt/deep/er && echo d > opt/deep/er/f && chmod 0600 etc/passwd";

/// Paths `berth run` itself may create in a machine.
const RUN_ARTIFACTS: &[&str] = &["run", "etc/resolv.conf", "etc/hostname", "etc/machine-id"];

/// The image's tree as a directory, with `HOST_CHANGES` applied.
fn expected_tree(berth: &Berth, image: &str) -> tree::Tree {
    let f = berth.dir().join("base-export.tar");
    berth.run(["export".as_ref(), image.as_ref(), f.as_os_str()]).success();
    let dir = extract_file(berth, &f, "expected");
    host_sh(&format!("cd {} && {HOST_CHANGES}", q(&dir)));
    tree::snapshot(&dir)
}

/// New files get the time of the change; take it from `got`.
fn align_mtimes(want: &mut tree::Tree, got: &tree::Tree) {
    for p in ["etc/new", "etc/keep", "srv/only", "etc/new-link", "opt/deep/er/f"] {
        if let (Some(g), Some(w)) = (got.get(p).cloned(), want.nodes.get_mut(p)) {
            w.mtime = g.mtime;
        }
    }
}

#[test]
fn committed_image_has_the_changes_and_lacks_the_deletions() {
    let (_reg, berth, image) = with_machine_image();
    berth.run(["create", image.as_str(), "m"]).success();
    sh_in(&berth, "m", CHANGES).success();
    let run = berth.run(["commit", "m", "committed"]).success();
    let v = berth.inspect("committed");
    let base = berth.inspect(&image);
    let id = v["id"].as_str().unwrap();
    assert!(run.stdout.contains(id), "commit should print the new image's ID {id}: {run:?}");
    let (nl, bl) = (v["layers"].as_array().unwrap().len(), base["layers"].as_array().unwrap().len());
    assert_eq!(nl, bl + 1, "commit adds exactly one layer on top of the image's: {v}");
    for (a, b) in v["layers"].as_array().unwrap().iter().zip(base["layers"].as_array().unwrap()) {
        assert_eq!(a["diff_id"], b["diff_id"], "the image's layers are reused as they are");
    }

    // Run it: the changes are there.
    let o = berth
        .run([
            "run",
            "committed",
            "/bin/sh",
            "-c",
            "cat /etc/new /etc/keep /srv/only /opt/deep/er/f; readlink /etc/new-link; \
             for p in /bin/vi /somedir /somedir/sub/f /srv/data; do test -e $p && echo still:$p; done; \
             stat -c %a /etc/passwd; ls -a /srv",
        ])
        .success();
    assert_eq!(o.stdout, "x\nchanged\nfresh\nd\n/etc/new\n600\n.\n..\nonly\n", "the committed image's view: {o:?}");

    // Mounted, it is the image's tree with the same changes made by hand.
    let got = image_tree(&berth, "committed");
    let mut want = expected_tree(&berth, &image);
    align_mtimes(&mut want, &got);
    let mut ignore = RUN_ARTIFACTS.to_vec();
    ignore.push(".");
    assert_same(&got, &want, &ignore, "berth mount of the committed image");
    // The machine and its image are unchanged by the commit.
    assert_eq!(machine_names(&berth), vec!["m"]);
    assert_eq!(sh_in(&berth, "m", "cat /etc/new").success().stdout, "x\n");
    let o =
        berth.run(["run", image.as_str(), "/bin/sh", "-c", "test -e /etc/new && echo leaked; cat /srv/data"]).success();
    assert_eq!(o.stdout, "image data\n", "the base image changed: {o:?}");
}

#[test]
fn the_new_layer_uses_oci_whiteouts_that_umoci_applies_the_same_way() {
    let (_reg, berth, image) = with_machine_image();
    berth.run(["create", image.as_str(), "m"]).success();
    sh_in(&berth, "m", CHANGES).success();
    berth.run(["commit", "m", "committed"]).success();
    let layout = berth.dir().join("layout");
    berth
        .run(["export".as_ref(), "committed".as_ref(), layout.as_os_str(), "--format".as_ref(), "oci".as_ref()])
        .success();

    // Look at the top layer itself: OCI whiteouts, no overlayfs char devices.
    let index: Value = serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let mdesc = &index["manifests"][0];
    let tag = mdesc["annotations"]["org.opencontainers.image.ref.name"].as_str().expect("ref.name").to_string();
    let blob = |d: &Value| layout.join("blobs/sha256").join(d.as_str().unwrap().trim_start_matches("sha256:"));
    let manifest: Value = serde_json::from_slice(&fs::read(blob(&mdesc["digest"])).unwrap()).unwrap();
    let top = manifest["layers"].as_array().unwrap().last().unwrap().clone();
    let listing = host(Command::new("tar").arg("-tvf").arg(blob(&top["digest"])));
    let names: Vec<&str> = listing.lines().filter_map(|l| l.split_whitespace().last()).collect();
    let has = |n: &str| names.iter().any(|x| x.trim_start_matches("./") == n);
    assert!(has("bin/.wh.vi"), "no whiteout for /bin/vi in the new layer:\n{listing}");
    assert!(has(".wh.somedir"), "no whiteout for /somedir in the new layer:\n{listing}");
    assert!(has("srv/.wh..wh..opq"), "/srv was replaced: it needs an opaque marker:\n{listing}");
    assert!(has("etc/new") && has("srv/only"), "new files missing from the layer:\n{listing}");
    assert!(!has("etc/group") && !has("bin/busybox"), "unchanged files in the new layer:\n{listing}");
    for l in listing.lines() {
        assert!(!l.starts_with('c') || !l.contains(" 0,0 "), "an overlayfs whiteout device in the layer: {l}");
    }

    // umoci applies the layers (and berth's whiteouts) to the same tree.
    let bundle = berth.dir().join("bundle");
    host(Command::new("umoci").arg("unpack").arg("--image").arg(format!("{}:{tag}", layout.display())).arg(&bundle));
    let got = image_tree(&berth, "committed");
    assert_same(&tree::snapshot(&bundle.join("rootfs")), &got, &["."], "umoci unpack of the committed image vs berth");
}

#[test]
fn a_machine_from_a_committed_image_and_a_second_commit() {
    let (_reg, berth, image) = with_machine_image();
    berth.run(["create", image.as_str(), "m"]).success();
    sh_in(&berth, "m", "echo one > /one").success();
    berth.run(["commit", "m", "gen1"]).success();
    berth.run(["create", "gen1", "m2"]).success();
    sh_in(&berth, "m2", "rm /one && echo two > /two").success();
    berth.run(["commit", "m2", "gen2"]).success();
    let o = berth.run(["run", "gen2", "/bin/sh", "-c", "test -e /one && echo one; cat /two"]).success();
    assert_eq!(o.stdout, "two\n", "{o:?}");
    let o = berth.run(["run", "gen1", "/bin/sh", "-c", "cat /one; test -e /two && echo two; true"]).success();
    assert_eq!(o.stdout, "one\n", "gen1 changed: {o:?}");
    // rmi of gen1 is refused while m2 uses it.
    berth.run(["rmi", "gen1"]).failure().mentions_any(&["m2"]);
}

#[test]
fn commit_errors() {
    let (_reg, berth, image) = with_machine_image();
    berth.run(["create", image.as_str(), "m"]).success();
    let before = super::listing(&berth);
    berth.run(["commit", "nope", "img"]).failure().mentions_any(&["nope"]);
    berth.run(["commit", "m", "Bad Name!"]).failure();
    before.assert_unchanged(&super::listing(&berth), "failed commits");
}
