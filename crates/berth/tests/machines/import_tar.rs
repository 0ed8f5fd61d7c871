//! `berth import` of root filesystem tarballs (plain, gzip, xz, zstd,
//! bzip2), with `--strip-prefix`, from stdin, from an http URL, and of a
//! plain directory. Each imported tree must equal the source tree.

use std::fs;

use super::{
    assert_image_is, assert_nothing_attached, assert_same, compress_with, image_id, image_names, image_tree,
    printed_id, rich_entries, rich_tar, rich_tree, run_with_stdin, HttpServer,
};
use crate::harness::tarball::{tar, Entry};
use crate::harness::tree;
use crate::harness::{fixtures, umoci, Berth};

/// Writes the rich tarball compressed with `tool` as FILE, imports it
/// without a name, and checks the name, ID and tree.
fn import_compressed(tool: Option<&str>, file: &str, stem: &str) {
    let berth = Berth::new();
    let src = rich_tree(&berth, "src");
    let raw = rich_tar();
    let data = match tool {
        None => raw,
        Some(t) => compress_with(t, &raw),
    };
    let path = berth.dir().join(file);
    fs::write(&path, &data).unwrap();
    let run = berth.run(["import".as_ref(), path.as_os_str()]).success();
    let id = printed_id(&run);
    let name = format!("localhost/{stem}:latest");
    assert_eq!(image_names(&berth), vec![name.clone()], "default name from the file stem of {file}");
    assert_eq!(image_id(&berth, &name), id, "the printed ID is the image's ID");
    assert_image_is(&berth, &name, &src, &[], &format!("import of {file}"));
    // The imported image runs.
    let out = berth.run(["run", name.as_str(), "cat", "/etc/os-release"]).success();
    assert!(out.stdout.contains("ID=berth-machines-test"), "{out:?}");
    assert_nothing_attached(&berth, file);
    super::assert_no_staging(&berth, file);
}

#[test]
fn plain_tarball() {
    import_compressed(None, "plain-root.tar", "plain-root");
}

#[test]
fn gzip_tarball() {
    import_compressed(Some("gzip"), "gz-root.tar.gz", "gz-root");
}

#[test]
fn xz_cloud_style_root_tarball() {
    import_compressed(Some("xz"), "ubuntu-24.04-root.tar.xz", "ubuntu-24.04-root");
}

#[test]
fn zstd_tarball() {
    import_compressed(Some("zstd"), "zst-root.tar.zst", "zst-root");
}

#[test]
fn bzip2_tarball() {
    import_compressed(Some("bzip2"), "bz-root.tar.bz2", "bz-root");
}

#[test]
fn format_is_detected_from_content_not_the_file_name() {
    let berth = Berth::new();
    let src = rich_tree(&berth, "src");
    // An xz tarball named like something else.
    let path = berth.dir().join("misleading.qcow2");
    fs::write(&path, compress_with("xz", &rich_tar())).unwrap();
    berth.run(["import".as_ref(), path.as_os_str(), "sniffed".as_ref()]).success();
    assert_image_is(&berth, "sniffed", &src, &[], "xz tarball named .qcow2");
    // And forcing the right format works too.
    berth.run(["import".as_ref(), path.as_os_str(), "forced".as_ref(), "--format".as_ref(), "tar".as_ref()]).success();
    assert_image_is(&berth, "forced", &src, &[], "--format tar");
}

#[test]
fn explicit_name_and_tag() {
    let berth = Berth::new();
    let path = berth.dir().join("x.tar.gz");
    fs::write(&path, compress_with("gzip", &rich_tar())).unwrap();
    berth.run(["import".as_ref(), path.as_os_str(), "team/app:v1".as_ref()]).success();
    assert_eq!(image_names(&berth), vec!["localhost/team/app:v1".to_string()]);
    // A machine can be made from it and run.
    berth.run(["create", "team/app:v1", "appm"]).success();
    let o = berth.run(["run", "-M", "appm", "cat", "/srv/data/orig"]).success();
    assert_eq!(o.stdout, "hardlinked\n");
}

/// The rich tree under `rootfs/`, after `top` entries.
fn wrapped(top: Vec<Entry>) -> Vec<u8> {
    let mut entries = top;
    entries.push(Entry::dir("rootfs").mode(0o755));
    for e in rich_entries() {
        let mut e = e;
        let p = String::from_utf8(e.path.clone()).unwrap();
        if p == "./" {
            continue;
        }
        e.path = format!("rootfs/{p}").into_bytes();
        // Hardlink targets are paths in the archive too.
        if let crate::harness::tarball::Kind::Hardlink(t) = &e.kind {
            e.kind =
                crate::harness::tarball::Kind::Hardlink(format!("rootfs/{}", String::from_utf8_lossy(t)).into_bytes());
        }
        entries.push(e);
    }
    tar(&entries)
}

#[test]
fn strip_prefix_takes_one_directory_as_the_root() {
    let berth = Berth::new();
    let src = rich_tree(&berth, "src");
    // LXC-style: metadata beside rootfs/.
    let data = wrapped(vec![
        Entry::file("metadata.yaml", "architecture: x86_64\n"),
        Entry::dir("templates"),
        Entry::file("templates/hosts.tpl", "127.0.0.1 localhost\n"),
    ]);
    let path = berth.dir().join("lxc.tar.xz");
    fs::write(&path, compress_with("xz", &data)).unwrap();
    berth
        .run(["import".as_ref(), path.as_os_str(), "stripped".as_ref(), "--strip-prefix".as_ref(), "rootfs/".as_ref()])
        .success();
    assert_image_is(&berth, "stripped", &src, &[], "--strip-prefix rootfs/");
    // Without the trailing slash too.
    berth
        .run(["import".as_ref(), path.as_os_str(), "stripped2".as_ref(), "--strip-prefix".as_ref(), "rootfs".as_ref()])
        .success();
    assert_image_is(&berth, "stripped2", &src, &[], "--strip-prefix rootfs");
}

#[test]
fn strip_prefix_wins_over_a_stray_manifest_json() {
    // A root tarball that happens to carry a manifest.json beside rootfs/:
    // `--strip-prefix` says it is a root tarball, not a docker-archive.
    let berth = Berth::new();
    let src = rich_tree(&berth, "src");
    let data = wrapped(vec![
        Entry::file("manifest.json", "{\"build\": \"ci-1234\"}\n"),
        Entry::file("README", "outside the rootfs\n"),
    ]);
    let path = berth.dir().join("wrapped.tar.gz");
    fs::write(&path, compress_with("gzip", &data)).unwrap();
    berth
        .run(["import".as_ref(), path.as_os_str(), "stripped".as_ref(), "--strip-prefix".as_ref(), "rootfs/".as_ref()])
        .success();
    assert_image_is(&berth, "stripped", &src, &[], "--strip-prefix rootfs/ with a manifest.json beside it");
}

#[test]
fn stdin_with_and_without_a_name() {
    let berth = Berth::new();
    let src = rich_tree(&berth, "src");
    let path = berth.dir().join("piped.tar.zst");
    fs::write(&path, compress_with("zstd", &rich_tar())).unwrap();
    let run = run_with_stdin(&berth, ["import", "-", "from-stdin"], &path).success();
    let id = printed_id(&run);
    assert_eq!(image_id(&berth, "from-stdin"), id);
    assert_image_is(&berth, "from-stdin", &src, &[], "import - NAME");
    // Without a name it still gets one (the ID may differ: a new config
    // with its own creation time).
    let run = run_with_stdin(&berth, ["import", "-"], &path).success();
    let id2 = printed_id(&run);
    let names = image_names(&berth);
    assert_eq!(names.len(), 2, "import - without NAME must name the image: {names:?}");
    let other = names.iter().find(|n| n.as_str() != "localhost/from-stdin:latest").unwrap();
    assert_eq!(image_id(&berth, other), id2);
    assert_image_is(&berth, other, &src, &[], "import - without NAME");
}

#[test]
fn http_url_is_streamed() {
    let berth = Berth::new();
    let src = rich_tree(&berth, "src");
    let www = berth.new_dir("www");
    fs::write(www.join("cloud-root.tar.xz"), compress_with("xz", &rich_tar())).unwrap();
    let server = HttpServer::serve(&www);
    let url = server.url("cloud-root.tar.xz");
    let run = berth.run(["import", url.as_str()]).success();
    let id = printed_id(&run);
    assert_eq!(image_names(&berth), vec!["localhost/cloud-root:latest".to_string()], "default name from the URL");
    assert_eq!(image_id(&berth, "cloud-root"), id);
    assert_image_is(&berth, "cloud-root", &src, &[], "import from a URL");

    let before = super::listing(&berth);
    let missing = server.url("missing.tar.xz");
    berth.run(["import", missing.as_str(), "nothing"]).failure().mentions_any(&["404", "not found"]);
    before.assert_unchanged(&super::listing(&berth), "import of a URL that answers 404");
}

#[test]
fn a_directory_is_imported_as_a_root_tree() {
    let berth = Berth::new();
    let src = rich_tree(&berth, "debian-tree");
    let run = berth.run(["import".as_ref(), src.as_os_str()]).success();
    let id = printed_id(&run);
    assert_eq!(image_names(&berth), vec!["localhost/debian-tree:latest".to_string()]);
    assert_eq!(image_id(&berth, "debian-tree"), id);
    assert_image_is(&berth, "debian-tree", &src, &[], "import of a directory");
    // The source directory is untouched.
    let again = rich_tree(&berth, "again");
    assert_same(&tree::snapshot(&src), &tree::snapshot(&again), &[], "the source dir after import");
}

#[test]
fn a_tarball_unpacks_as_umoci_unpacks_the_same_layer() {
    // Peer oracle: the `special` fixture's layer (hardlinks, devices,
    // fifos, setuid, xattrs, PAX names) imported as a plain tarball must
    // give the tree `umoci unpack` gives for the image made of it.
    let berth = Berth::new();
    let image = fixtures::special();
    let layer = image.layers[0].tar.clone().expect("layer tar");
    let path = berth.dir().join("special.tar");
    fs::write(&path, &layer).unwrap();
    berth.run(["import".as_ref(), path.as_os_str()]).success();
    let reference = umoci::unpack(&image);
    let got = image_tree(&berth, "special");
    // The root dir itself is not in the layer: its mode is each tool's choice.
    assert_same(&got, &tree::snapshot(&reference.rootfs), &["."], "import of special.tar vs umoci unpack");
}
