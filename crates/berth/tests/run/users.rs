//! `-u/--user` against a real Debian /etc/passwd and /etc/group (the
//! debootstrap tree), as an image and as a `-D` tree: uid, gid,
//! supplementary groups, HOME and USER.

use std::collections::BTreeSet;

use serde_json::json;

use crate::harness::container::{s, Ctx};
use crate::harness::debootstrap;
use crate::harness::oci::{Compression, Image, Layer};
use crate::harness::tarball::{tar, Entry};

/// `daemon` joins `adm` (4) and `users` (100), `nobody` joins `users`.
const MEMBERS: &[(&str, &str)] = &[("adm", "daemon"), ("users", "daemon"), ("users", "nobody")];

/// The debootstrap tree as an image, plus a layer with the changed group file.
fn debian_image() -> Image {
    let group = debootstrap::group_with_members(MEMBERS);
    let top = [Entry::dir("etc"), Entry::file("etc/group", group)];
    Image::with_config(
        "amd64",
        vec![debootstrap::layer(), Layer::new(tar(&top), Compression::Gzip)],
        json!({
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/bash"],
        }),
    )
}

/// `id` as (uid, gid, groups) plus HOME and USER, run as `user`.
fn ids(c: &Ctx, root: &[&str], user: &str) -> (String, String, BTreeSet<String>, String, String) {
    let mut args: Vec<&str> = vec!["-u", user];
    args.extend_from_slice(root);
    args.extend_from_slice(&[
        "/bin/sh",
        "-c",
        "echo uid=$(id -u); echo gid=$(id -g); echo groups=$(id -G); echo home=$HOME; echo user=$USER",
    ]);
    let o = c.run(&args).success();
    let f = |k: &str| o.field(k).unwrap_or_else(|| panic!("no {k}= line: {}", o.describe()));
    (f("uid"), f("gid"), f("groups").split_whitespace().map(str::to_string).collect(), f("home"), f("user"))
}

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn user_names_and_ids_resolve_in_the_debootstrap_images_passwd_and_group() {
    let c = Ctx::busybox();
    let img = c.add_image("debian", &debian_image());
    let root = [img.as_str()];
    let (uid, gid, groups, home, user) = ids(&c, &root, "daemon");
    assert_eq!((uid.as_str(), gid.as_str()), ("1", "1"), "-u daemon");
    assert_eq!(groups, set(&["1", "4", "100"]), "-u daemon: primary group plus adm and users");
    assert_eq!((home.as_str(), user.as_str()), ("/usr/sbin", "daemon"), "-u daemon: HOME and USER");
    let (uid, gid, groups, _, _) = ids(&c, &root, "nobody");
    assert_eq!((uid.as_str(), gid.as_str()), ("65534", "65534"), "-u nobody");
    assert_eq!(groups, set(&["65534", "100"]), "-u nobody: nogroup plus users");
    let (uid, gid, groups, _, _) = ids(&c, &root, "65534");
    assert_eq!((uid.as_str(), gid.as_str()), ("65534", "65534"), "-u 65534 takes the gid from passwd");
    assert_eq!(groups, set(&["65534", "100"]), "-u 65534: groups of nobody");
    let (uid, gid, _, _, _) = ids(&c, &root, "daemon:users");
    assert_eq!((uid.as_str(), gid.as_str()), ("1", "100"), "-u daemon:users");
    let (uid, gid, _, _, _) = ids(&c, &root, "1:4");
    assert_eq!((uid.as_str(), gid.as_str()), ("1", "4"), "-u 1:4");
    let (uid, gid, groups, _, user) = ids(&c, &root, "root");
    assert_eq!((uid.as_str(), gid.as_str(), user.as_str()), ("0", "0", "root"), "-u root");
    assert_eq!(groups, set(&["0"]), "-u root");
}

#[test]
fn supplementary_groups_come_from_the_trees_own_group_file() {
    let c = Ctx::busybox();
    let tree = debootstrap::tree();
    let group = c.dir("etc").join("group");
    std::fs::write(&group, debootstrap::group_with_members(MEMBERS)).expect("write group file");
    // The shared tree is never written: -x, and the changed group file bound over it.
    let bind = format!("{}:/etc/group", s(&group));
    let root = ["-x", "--bind-ro", bind.as_str(), "-D", tree.to_str().unwrap()];
    let (uid, gid, groups, home, _) = ids(&c, &root, "daemon");
    assert_eq!((uid.as_str(), gid.as_str(), home.as_str()), ("1", "1", "/usr/sbin"), "-u daemon in -D tree");
    assert_eq!(groups, set(&["1", "4", "100"]), "-u daemon: supplementary groups from the bound /etc/group");
    // Without the change, daemon has only its own group.
    let (_, _, groups, _, _) = ids(&c, &["-x", "-D", tree.to_str().unwrap()], "daemon");
    assert_eq!(groups, set(&["1"]), "-u daemon in the unchanged tree");
    let o = c.run(&["-x", "-u", "daemon", "-D", tree.to_str().unwrap(), "cat", "/proc/self/status"]).success();
    let eff = super::cap_mask(&o.out(), "CapEff");
    assert_eq!(eff, 0, "daemon has no effective capabilities: {}", o.describe());
}

#[test]
fn unknown_group_name_fails_with_a_message_naming_it() {
    let c = Ctx::busybox();
    let tree = debootstrap::tree();
    c.run(&["-x", "-u", "daemon:no-such-group", "-D", tree.to_str().unwrap(), "id"])
        .failure()
        .stderr_mentions(&["no-such-group"]);
}
