//! Checks of the harness itself (no berth involved): the registry starts,
//! fixtures push and read back intact through skopeo, umoci unpacks every
//! fixture as intended, hostile tars keep their raw names, and the tree
//! diff notices changes. When a berth test fails, these say whether the
//! fault is in the harness.

use std::fs;
use std::process::Command;

use crate::harness::fixtures;
use crate::harness::hostile;
use crate::harness::oci::{sha256_digest, Compression, MT_INDEX};
use crate::harness::tree::{self, snapshot};
use crate::harness::{require_root, umoci, Image, Registry};

fn skopeo_inspect_raw(reg: &Registry, repo: &str, tag: &str) -> Vec<u8> {
    let mut cmd = Command::new("skopeo");
    cmd.args(["inspect", "--raw", "--tls-verify=false"]);
    if let Some((u, p)) = reg.creds() {
        cmd.arg("--creds").arg(format!("{u}:{p}"));
    }
    let out = cmd.arg(format!("docker://{}", reg.reference(repo, tag))).output().expect("run skopeo");
    assert!(out.status.success(), "skopeo inspect {repo}:{tag}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

#[test]
fn registry_answers_v2_and_demands_auth_when_configured() {
    let open = Registry::start();
    let r = ureq::get(&open.url("/v2/")).call().expect("GET /v2/ on the open registry");
    assert_eq!(r.status(), 200);
    let locked = Registry::start_with_auth("user", "pass");
    match ureq::get(&locked.url("/v2/")).call() {
        Err(ureq::Error::Status(401, _)) => {}
        other => panic!("auth registry should answer 401 without creds, got {other:?}"),
    }
    let r = ureq::get(&locked.url("/v2/"))
        .set("Authorization", &locked.auth_header().expect("creds"))
        .call()
        .expect("GET /v2/ with creds");
    assert_eq!(r.status(), 200);
}

#[test]
fn pushed_fixtures_read_back_identically_through_skopeo() {
    let reg = Registry::start();
    let images: Vec<(&str, Image)> = vec![
        ("busybox", fixtures::busybox()),
        ("multilayer", fixtures::multilayer()),
        ("special", fixtures::special()),
        ("gzip", fixtures::compressed(Compression::Gzip)),
        ("zstd", fixtures::compressed(Compression::Zstd)),
        ("none", fixtures::compressed(Compression::None)),
        ("mixed", fixtures::mixed_compression()),
    ];
    for (repo, image) in &images {
        reg.push_image(repo, "latest", image);
        let raw = skopeo_inspect_raw(&reg, repo, "latest");
        assert_eq!(sha256_digest(&raw), image.digest(), "{repo}: manifest changed in the registry");
        let out = Command::new("skopeo")
            .args(["inspect", "--tls-verify=false"])
            .arg(format!("docker://{}", reg.reference(repo, "latest")))
            .output()
            .expect("run skopeo");
        assert!(out.status.success(), "skopeo inspect {repo}: {}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("skopeo inspect JSON");
        assert_eq!(v["Digest"], image.digest(), "{repo}: digest per skopeo");
        assert_eq!(v["Architecture"], "amd64", "{repo}: architecture per skopeo");
        assert_eq!(v["Layers"].as_array().map(Vec::len), Some(image.layers.len()), "{repo}: layers per skopeo");
        let blob = reg.blob_data_path(&image.layers[0].blob.digest);
        assert_eq!(fs::read(blob).expect("read blob"), image.layers[0].blob.data, "{repo}: layer bytes");
    }
    let index = fixtures::multiarch();
    reg.push_index("multiarch", "latest", &index);
    let raw = skopeo_inspect_raw(&reg, "multiarch", "latest");
    assert_eq!(sha256_digest(&raw), index.digest(), "index changed in the registry");
    let (ct, _) = reg.get_manifest("multiarch", "latest");
    assert_eq!(ct, MT_INDEX);
}

#[test]
fn skopeo_copy_from_a_layout_preserves_digests() {
    let reg = Registry::start_with_auth("user", "pass");
    let dir = tempfile::tempdir().expect("temp dir");
    let image = fixtures::mixed_compression();
    image.write_layout(dir.path(), "mixed");
    reg.skopeo_push(dir.path(), "mixed", "mixed", false);
    assert_eq!(sha256_digest(&skopeo_inspect_raw(&reg, "mixed", "mixed")), image.digest());

    let index = fixtures::multiarch();
    index.write_layout(dir.path(), "multi");
    reg.skopeo_push(dir.path(), "multi", "multi", true);
    assert_eq!(sha256_digest(&skopeo_inspect_raw(&reg, "multi", "multi")), index.digest());
}

#[test]
fn unknown_media_type_and_raw_manifests_can_be_pushed() {
    let reg = Registry::start();
    let (image, mt) = hostile::unknown_media_type();
    reg.push_image("weird", "latest", &image);
    let (_, body) = reg.get_manifest("weird", "latest");
    assert!(String::from_utf8_lossy(&body).contains(mt));
    reg.push_image("bomb", "latest", &hostile::bomb(1 << 20));
}

#[test]
fn bomb_layer_is_gzip_of_a_tar_matching_its_diff_id() {
    use std::io::Read;
    let image = hostile::bomb(3 << 20);
    let layer = &image.layers[0];
    let mut tar_bytes = Vec::new();
    flate2::read::GzDecoder::new(&layer.blob.data[..]).read_to_end(&mut tar_bytes).expect("bomb is gzip");
    assert_eq!(sha256_digest(&tar_bytes), layer.diff_id, "diff_id of the bomb");
    let mut ar = tar::Archive::new(&tar_bytes[..]);
    let e = ar.entries().expect("entries").next().expect("one entry").expect("entry");
    assert_eq!(e.header().size().expect("size"), 3 << 20);
}

#[test]
fn umoci_unpacks_busybox_with_applet_symlinks() {
    require_root();
    let u = umoci::unpack(&fixtures::busybox());
    let t = snapshot(&u.rootfs);
    assert_eq!(t.get("bin/sh").and_then(|n| n.target.clone()).as_deref(), Some("busybox"));
    assert_eq!(t.get("tmp").map(|n| n.mode), Some(0o1777));
    assert_eq!(t.get("root").map(|n| n.mode), Some(0o700));
}

#[test]
fn umoci_applies_whiteouts_and_opaque_dirs_as_the_fixture_intends() {
    require_root();
    let u = umoci::unpack(&fixtures::multilayer());
    let t = snapshot(&u.rootfs);
    for gone in [
        "del-file",
        "del-dir/a",
        "del-dir/sub",
        "opq1/old1",
        "opq1/oldsub",
        "opq2/old2",
        "dir-to-link/inner",
        "keepdir/a",
        "etc/hostname",
        "file-to-dir/.wh.x",
    ] {
        assert!(t.get(gone).is_none(), "{gone} should be gone");
    }
    for present in [
        "del-dir/fresh",
        "opq1/new1",
        "opq2/new2",
        "opq2/newsub/f",
        "file-to-dir/child",
        "keepdir/b",
        "keepdir/c",
        "etc/keep",
        "top",
    ] {
        assert!(t.get(present).is_some(), "{present} should exist; tree: {:?}", t.nodes.keys());
    }
    assert!(t.nodes.keys().all(|p| !p.contains(".wh.")), "whiteout files left in the rootfs");
    assert_eq!(t.get("dir-to-link").map(|n| n.kind), Some("symlink"));
    assert_eq!(t.get("file-to-dir").map(|n| n.kind), Some("dir"));
    assert_eq!(t.get("chmod-me").map(|n| n.mode), Some(0o600));
}

#[test]
fn umoci_keeps_special_metadata() {
    require_root();
    let u = umoci::unpack(&fixtures::special());
    let t = snapshot(&u.rootfs);
    let group: std::collections::BTreeSet<String> =
        ["data/orig", "data/link1", "other/link2"].iter().map(|s| s.to_string()).collect();
    assert!(t.hardlinks.contains(&group), "hardlink group missing: {:?}", t.hardlinks);
    let n = |p: &str| t.get(p).unwrap_or_else(|| panic!("{p} missing"));
    assert_eq!(n("dev/null").rdev, Some((1, 3)));
    assert_eq!(n("dev/loop7").kind, "block");
    assert_eq!(n("run/fifo").kind, "fifo");
    assert_eq!(n("bin/suid").mode, 0o4755);
    assert_eq!(n("bin/both").mode, 0o6711);
    assert_eq!((n("odd-owner").uid, n("odd-owner").gid), (1234, 5678));
    assert_eq!(n("odd-owner").mtime, Some(1_234_567_890));
    assert_eq!(n("xattrs/file").xattrs.get("user.foo").map(String::as_str), Some("\"bar\""));
    assert!(n("xattrs/file").xattrs.contains_key("trusted.x"));
    assert!(n("bin/ping-like").xattrs.contains_key("security.capability"));
    assert_eq!(n("big.bin").size, Some(3 * 1024 * 1024));
    assert!(t.get("dir with spaces/héllo wörld ☃.txt").is_some());
}

#[test]
fn umoci_unpacks_every_compression_the_same() {
    require_root();
    let base = umoci::unpack(&fixtures::compressed(Compression::Gzip));
    for image in [
        fixtures::compressed(Compression::Zstd),
        fixtures::compressed(Compression::None),
        fixtures::mixed_compression(),
    ] {
        let other = umoci::unpack(&image);
        tree::assert_same_tree(&other.rootfs, &base.rootfs, "same layers, other compression");
    }
}

#[test]
fn hostile_tars_keep_their_raw_names() {
    let h = hostile::dotdot_inner("t");
    let tar_bytes = h.image.layers[0].tar.clone().expect("tar kept");
    let mut ar = tar::Archive::new(&tar_bytes[..]);
    let names: Vec<String> = ar
        .entries()
        .expect("entries")
        .map(|e| String::from_utf8_lossy(&e.expect("entry").path_bytes()).into_owned())
        .collect();
    assert!(names.contains(&"./a/../../escape-t".to_string()), "{names:?}");
    let abs = hostile::absolute("t");
    let tar_bytes = abs.image.layers[0].tar.clone().expect("tar kept");
    let mut ar = tar::Archive::new(&tar_bytes[..]);
    let first = ar.entries().expect("entries").next().expect("one entry").expect("entry");
    assert_eq!(&*first.path_bytes(), b"/escape-abs-t");
}

#[test]
fn tree_diff_reports_the_differing_path() {
    let a = tempfile::tempdir().expect("temp dir");
    let b = tempfile::tempdir().expect("temp dir");
    for d in [a.path(), b.path()] {
        fs::write(d.join("same"), "x").expect("write");
        fs::write(d.join("changed"), "1").expect("write");
    }
    fs::write(b.path().join("changed"), "2").expect("write");
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
    for d in [a.path(), b.path()] {
        for f in ["same", "changed"] {
            let file = fs::File::options().write(true).open(d.join(f)).expect("open");
            file.set_modified(t).expect("set mtime");
        }
    }
    std::os::unix::fs::symlink("target", a.path().join("only-a")).expect("symlink");
    let d = tree::diff(&snapshot(a.path()), &snapshot(b.path()));
    assert_eq!(d.len(), 2, "{d:#?}");
    assert!(d[0].contains("changed") && d[1].contains("only-a"), "{d:#?}");
}
