//! `berth export` of images and machines: tarballs (plain, gzip, xz,
//! zstd) whose contents equal the image's tree, and OCI layouts and
//! oci-archives that skopeo reads and umoci unpacks to the same tree
//! (the peer oracle). Round trips through import keep the tree.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::{
    assert_same, extract_file, host, image_id, image_tree, printed_id, pulled, rich_tar, rich_tree, sh_in,
    with_machine_image,
};
use crate::harness::tree::{self, Tree};
use crate::harness::{fixtures, Berth};

/// Paths `berth run` itself may create in a machine (mount points and the
/// copied resolv.conf), which are not the command's changes.
const RUN_ARTIFACTS: &[&str] = &["run", "etc/resolv.conf", "etc/hostname", "etc/machine-id"];

fn magic_ok(file: &Path, ext: &str) -> bool {
    let data = fs::read(file).unwrap();
    match ext.rsplit('.').next().unwrap_or(ext) {
        "tar" => data.len() > 262 && &data[257..262] == b"ustar",
        "gz" | "tgz" => data.starts_with(&[0x1f, 0x8b]),
        "xz" | "txz" => data.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]),
        "zst" => data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]),
        "bz2" => data.starts_with(b"BZh"),
        _ => unreachable!(),
    }
}

/// Exports `name` as FILE.EXT (format from the extension), checks the
/// compression, extracts it as root and returns its tree.
fn export_tarball(berth: &Berth, name: &str, ext: &str) -> Tree {
    let file = berth.dir().join(format!("out-{}.{ext}", crate::harness::berth::unique()));
    berth.run(["export".as_ref(), name.as_ref(), file.as_os_str()]).success();
    assert!(magic_ok(&file, ext), "export to *.{ext} did not write a {ext} stream");
    super::assert_no_staging(berth, &format!("export {name} to .{ext}"));
    let dir = extract_file(berth, &file, &format!("x-{}", crate::harness::berth::unique()));
    tree::snapshot(&dir)
}

#[test]
fn image_tarballs_in_every_compression_equal_the_image_tree() {
    let (_reg, berth, image) = pulled(&fixtures::special());
    let want = image_tree(&berth, &image);
    for ext in ["tar", "tar.gz", "tar.xz", "tar.zst"] {
        let got = export_tarball(&berth, &image, ext);
        assert_same(&got, &want, &["."], &format!("export of the special image as .{ext}"));
    }
}

#[test]
fn the_file_name_picks_the_compression_and_names_that_say_none_are_refused() {
    // What machinectl users write: `export-tar nginx nginx.xz`.
    let (_reg, berth, image) = pulled(&fixtures::busybox());
    let want = image_tree(&berth, &image);
    for ext in ["xz", "gz", "zst", "bz2", "tar.bz2", "tgz", "txz"] {
        let got = export_tarball(&berth, &image, ext);
        assert_same(&got, &want, &["."], &format!("export of busybox as .{ext}"));
    }
    // xz's own tool reads the multithreaded encoder's output.
    let f = berth.dir().join("check.xz");
    berth.run(["export".as_ref(), image.as_ref(), f.as_os_str()]).success();
    host(Command::new("xz").args(["-t"]).arg(&f));
    for bad in ["nginx", "nginx.zip", "nginx.tar.7z"] {
        let out = berth.dir().join(bad);
        berth.run(["export".as_ref(), image.as_ref(), out.as_os_str()]).failure().mentions_any(&["--format"]);
        assert!(!out.exists(), "a refused export wrote {bad}");
    }
}

#[test]
fn multilayer_image_exports_the_merged_tree_with_whiteouts_applied() {
    let (_reg, berth, image) = pulled(&fixtures::multilayer());
    let want = image_tree(&berth, &image);
    let got = export_tarball(&berth, &image, "tar.gz");
    assert_same(&got, &want, &["."], "export of the multilayer image");
    for gone in ["del-file", "del-dir/a", "opq1/old1", "keepdir/a", "etc/hostname"] {
        assert!(got.get(gone).is_none(), "{gone} was deleted by a whiteout but is in the export");
    }
    for p in got.nodes.keys() {
        assert!(!p.rsplit('/').next().unwrap().starts_with(".wh."), "whiteout file {p} in a flat export");
    }
}

#[test]
fn format_flag_overrides_the_extension_and_stdout_works() {
    let (_reg, berth, image) = pulled(&fixtures::busybox());
    let want = image_tree(&berth, &image);
    let file = berth.dir().join("weird.name");
    berth.run(["export".as_ref(), image.as_ref(), file.as_os_str(), "--format".as_ref(), "tar.zst".as_ref()]).success();
    assert!(magic_ok(&file, "tar.zst"), "--format tar.zst ignored");
    let got = tree::snapshot(&extract_file(&berth, &file, "x1"));
    assert_same(&got, &want, &["."], "--format tar.zst");

    let mut cmd = berth.command(["export", image.as_str(), "-", "--format", "tar.gz"]);
    let out_file = berth.dir().join("stdout.tar.gz");
    cmd.stdout(fs::File::create(&out_file).unwrap()).stderr(std::process::Stdio::piped());
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "export to stdout failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(magic_ok(&out_file, "tar.gz"), "stdout export is not gzip");
    let got = tree::snapshot(&extract_file(&berth, &out_file, "x2"));
    assert_same(&got, &want, &["."], "export to stdout");
}

/// The `org.opencontainers.image.ref.name` of the only manifest in a layout.
fn layout_tag(layout: &Path) -> String {
    let index: Value = serde_json::from_slice(&fs::read(layout.join("index.json")).expect("index.json")).unwrap();
    let m = index["manifests"].as_array().expect("manifests");
    assert_eq!(m.len(), 1, "one image in the exported layout: {index}");
    m[0]["annotations"]["org.opencontainers.image.ref.name"]
        .as_str()
        .unwrap_or_else(|| panic!("the exported manifest has no ref.name annotation: {index}"))
        .to_string()
}

/// `umoci unpack --image LAYOUT:TAG` into a new bundle; returns its rootfs.
fn umoci_unpack(berth: &Berth, layout: &Path, tag: &str) -> PathBuf {
    let bundle = berth.dir().join(format!("bundle-{}", crate::harness::berth::unique()));
    host(Command::new("umoci").arg("unpack").arg("--image").arg(format!("{}:{tag}", layout.display())).arg(&bundle));
    bundle.join("rootfs")
}

fn skopeo_inspect(transport: &str) -> Value {
    let out = host(Command::new("skopeo").arg("inspect").arg(transport));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("skopeo inspect {transport}: not JSON ({e}): {out}"))
}

#[test]
fn oci_layout_is_read_by_skopeo_and_unpacked_by_umoci_to_the_same_tree() {
    let image = fixtures::multilayer();
    let (_reg, berth, reference) = pulled(&image);
    let want = image_tree(&berth, &reference);
    let layout = berth.dir().join("layout");
    berth
        .run(["export".as_ref(), reference.as_ref(), layout.as_os_str(), "--format".as_ref(), "oci".as_ref()])
        .success();
    assert!(layout.join("oci-layout").is_file() && layout.join("index.json").is_file(), "not an OCI layout");
    let tag = layout_tag(&layout);
    let sk = skopeo_inspect(&format!("oci:{}:{tag}", layout.display()));
    assert_eq!(sk["Architecture"], "amd64", "{sk}");
    assert_eq!(sk["Os"], "linux", "{sk}");
    let rootfs = umoci_unpack(&berth, &layout, &tag);
    assert_same(&tree::snapshot(&rootfs), &want, &["."], "umoci unpack of berth's OCI export vs berth mount");
    // skopeo copies it on (every blob verified).
    let copy = berth.dir().join("copy");
    host(
        Command::new("skopeo")
            .args(["copy", "--quiet"])
            .arg(format!("oci:{}:{tag}", layout.display()))
            .arg(format!("oci:{}:again", copy.display())),
    );
}

#[test]
fn an_existing_directory_gets_an_oci_layout() {
    let (_reg, berth, image) = pulled(&fixtures::special());
    let want = image_tree(&berth, &image);
    let dir = berth.new_dir("exported");
    berth.run(["export".as_ref(), image.as_ref(), dir.as_os_str()]).success();
    assert!(dir.join("oci-layout").is_file(), "export to a directory must write an OCI layout");
    let tag = layout_tag(&dir);
    let rootfs = umoci_unpack(&berth, &dir, &tag);
    assert_same(&tree::snapshot(&rootfs), &want, &["."], "umoci unpack of the special image's OCI export");
}

#[test]
fn oci_archive_is_read_by_skopeo_and_unpacks_to_the_same_tree() {
    let image = fixtures::multilayer();
    let (_reg, berth, reference) = pulled(&image);
    let want = image_tree(&berth, &reference);
    let archive = berth.dir().join("image.oci.tar");
    berth
        .run(["export".as_ref(), reference.as_ref(), archive.as_os_str(), "--format".as_ref(), "oci-archive".as_ref()])
        .success();
    let sk = skopeo_inspect(&format!("oci-archive:{}", archive.display()));
    assert_eq!(sk["Layers"].as_array().map(|l| l.len()), Some(image.layers.len()), "{sk}");
    // skopeo copy to a layout, then umoci: the peer chain agrees with berth.
    let layout = berth.dir().join("via-skopeo");
    host(
        Command::new("skopeo")
            .args(["copy", "--quiet"])
            .arg(format!("oci-archive:{}", archive.display()))
            .arg(format!("oci:{}:t", layout.display())),
    );
    let rootfs = umoci_unpack(&berth, &layout, "t");
    assert_same(&tree::snapshot(&rootfs), &want, &["."], "skopeo+umoci of berth's oci-archive");
}

#[test]
fn machine_export_has_its_changes_and_the_template_stays_untouched() {
    let (_reg, berth, image) = with_machine_image();
    let image_export = export_tarball(&berth, &image, "tar");
    berth.run(["create", image.as_str(), "tmpl"]).success();
    berth.run(["clone", "tmpl", "work"]).success();
    sh_in(&berth, "work", "echo changed > /etc/keep && echo new > /etc/new && rm -rf /somedir && rm /bin/vi").success();

    // The untouched template exports exactly as its image.
    let tmpl = export_tarball(&berth, "tmpl", "tar.gz");
    assert_same(&tmpl, &image_export, &["."], "export of the never-run template vs the image");

    // The changed clone: the image's tree with the same changes made on the host.
    let got = export_tarball(&berth, "work", "tar.zst");
    let expect_dir = extract_file(
        &berth,
        &{
            let f = berth.dir().join("img.tar");
            berth.run(["export".as_ref(), image.as_ref(), f.as_os_str()]).success();
            f
        },
        "expected-work",
    );
    super::host_sh(&format!(
        "cd {d} && echo changed > etc/keep && echo new > etc/new && rm -rf somedir && rm bin/vi",
        d = super::q(&expect_dir)
    ));
    let mut ignore = RUN_ARTIFACTS.to_vec();
    ignore.push(".");
    // Changed files get a new mtime; compare their content and the rest fully.
    let mut want = tree::snapshot(&expect_dir);
    for p in ["etc/keep", "etc/new"] {
        let (g, w) = (got.get(p).cloned(), want.nodes.get_mut(p));
        if let (Some(g), Some(w)) = (g, w) {
            w.mtime = g.mtime;
        }
    }
    assert_same(&got, &want, &ignore, "export of the changed clone");
    // And the template, after the clone changed, still equals the image.
    let tmpl = export_tarball(&berth, "tmpl", "tar");
    assert_same(&tmpl, &image_export, &["."], "template after its clone changed");
}

#[test]
fn machine_oci_export_unpacks_with_umoci_to_the_machine_tree() {
    let (_reg, berth, image) = with_machine_image();
    berth.run(["create", image.as_str(), "m"]).success();
    sh_in(&berth, "m", super::commit::CHANGES).success();
    let flat = export_tarball(&berth, "m", "tar");
    let layout = berth.dir().join("m-layout");
    berth.run(["export".as_ref(), "m".as_ref(), layout.as_os_str(), "--format".as_ref(), "oci".as_ref()]).success();
    let tag = layout_tag(&layout);
    skopeo_inspect(&format!("oci:{}:{tag}", layout.display()));
    let rootfs = umoci_unpack(&berth, &layout, &tag);
    assert_same(&tree::snapshot(&rootfs), &flat, &["."], "umoci unpack of a machine's OCI export vs its tar export");
    for gone in ["bin/vi", "somedir", "srv/data"] {
        assert!(flat.get(gone).is_none(), "{gone} was deleted in the machine but is in its export");
    }
    assert!(flat.get("etc/new").is_some() && flat.get("srv/only").is_some(), "the machine's new files are missing");
    // Exporting is no reason for a new image to show up.
    let names = super::image_names(&berth);
    assert_eq!(names, vec![image.clone()], "export of a machine as OCI left an image behind");
    // oci-archive of the machine too.
    let archive = berth.dir().join("m.oci.tar");
    berth
        .run(["export".as_ref(), "m".as_ref(), archive.as_os_str(), "--format".as_ref(), "oci-archive".as_ref()])
        .success();
    skopeo_inspect(&format!("oci-archive:{}", archive.display()));
}

#[test]
fn import_export_import_round_trip_keeps_the_tree() {
    let berth = Berth::new();
    let src = rich_tree(&berth, "src");
    let first = berth.dir().join("first.tar.xz");
    fs::write(&first, super::compress_with("xz", &rich_tar())).unwrap();
    berth.run(["import".as_ref(), first.as_os_str(), "first".as_ref()]).success();
    let t1 = image_tree(&berth, "first");
    assert_same(&t1, &tree::snapshot(&src), &[], "first import");

    for ext in ["tar.zst", "tar.gz"] {
        let out = berth.dir().join(format!("second.{ext}"));
        berth.run(["export".as_ref(), "first".as_ref(), out.as_os_str()]).success();
        let name = format!("second-{}", ext.replace('.', "-"));
        berth.run(["import".as_ref(), out.as_os_str(), name.as_ref()]).success();
        assert_same(&image_tree(&berth, &name), &t1, &["."], &format!("import → export .{ext} → import"));
    }

    // Through OCI the image keeps its ID (same config, same diff_ids).
    let layout = berth.dir().join("rt-layout");
    berth.run(["export".as_ref(), "first".as_ref(), layout.as_os_str(), "--format".as_ref(), "oci".as_ref()]).success();
    let fresh = Berth::new();
    let run = fresh.run(["import".as_ref(), layout.as_os_str(), "back".as_ref()]).success();
    assert_eq!(printed_id(&run), image_id(&berth, "first"), "OCI export → import changed the image ID");
    assert_same(&image_tree(&fresh, "back"), &t1, &[], "import → export oci → import");
}

#[test]
fn export_errors_leave_nothing_behind() {
    let (_reg, berth, image) = pulled(&fixtures::busybox());
    let before = super::listing(&berth);
    let out = berth.dir().join("nothing.tar");
    berth
        .run(["export".as_ref(), "no-such-thing".as_ref(), out.as_os_str()])
        .failure()
        .mentions_any(&["no-such-thing"]);
    assert!(!out.exists(), "a failed export left {}", out.display());
    berth
        .run(["export".as_ref(), image.as_ref(), out.as_os_str(), "--format".as_ref(), "zip".as_ref()])
        .failure()
        .mentions_any(&["zip"]);
    assert!(!out.exists(), "a failed export left {}", out.display());
    let nodir = berth.dir().join("no/such/dir/x.tar");
    berth.run(["export".as_ref(), image.as_ref(), nodir.as_os_str()]).failure();
    before.assert_unchanged(&super::listing(&berth), "failed exports");
    // A full disk: a one-line error, and no staging left in the store
    // (a few times: the leftover does not show every time).
    for _ in 0..5 {
        berth.run(["export", image.as_str(), "/dev/full", "--format", "tar"]).failure().mentions_any(&["space"]);
    }
    before.assert_unchanged(&super::listing(&berth), "export to /dev/full");
}

#[test]
fn export_to_a_pipe_closed_early_fails_and_leaves_nothing() {
    use std::io::Read;
    let (_reg, berth, image) = pulled(&fixtures::busybox());
    let before = super::listing(&berth);
    // `berth export IMG - | head -c 100`: the reader goes away after 100
    // bytes of a ~2 MB tarball.
    let mut child = berth.spawn(["export", image.as_str(), "-", "--format", "tar"]);
    let mut out = child.stdout.take().unwrap();
    let mut head = [0u8; 100];
    out.read_exact(&mut head).unwrap();
    drop(out);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("berth export to a closed pipe did not finish");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let mut problems = Vec::new();
    if status.success() {
        problems.push(format!(
            "`berth export IMG - | head -c 100` exited 0: the tarball was cut short but berth reported success \
             (stderr: {err:?})"
        ));
    }
    let left: Vec<String> = std::fs::read_dir(berth.root().join("tmp"))
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    if !left.is_empty() {
        problems.push(format!("staging left in the store's tmp/: {left:?}"));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    before.assert_unchanged(&super::listing(&berth), "export to a closed pipe");
}

/// The first layer descriptor of the only manifest in a layout.
fn first_layer(layout: &Path) -> Value {
    let index: Value = serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let m = index["manifests"][0]["digest"].as_str().unwrap().trim_start_matches("sha256:").to_string();
    let manifest: Value = serde_json::from_slice(&fs::read(layout.join("blobs/sha256").join(m)).unwrap()).unwrap();
    manifest["layers"][0].clone()
}

#[test]
fn oci_export_writes_gzip_layers_by_default_so_umoci_reads_an_image_imported_from_zstd() {
    let berth = Berth::new();
    let tarball = berth.dir().join("root.tar.zst");
    fs::write(&tarball, super::compress_with("zstd", &rich_tar())).unwrap();
    berth.run(["import".as_ref(), tarball.as_os_str(), "zimg".as_ref()]).success();
    let stored = berth.inspect("zimg")["layers"][0].clone();
    assert!(stored["media_type"].as_str().unwrap().contains("zstd"), "{stored}");
    let want = image_tree(&berth, "zimg");
    let export = |dir: &str, extra: &[&str]| {
        let layout = berth.dir().join(dir);
        let mut args = vec!["export", "zimg", layout.to_str().unwrap(), "--format", "oci"];
        args.extend_from_slice(extra);
        berth.run(args).success();
        layout
    };

    // The default: gzip, which umoci 0.4 (Debian's) unpacks to the same tree.
    let gz = export("gz-layout", &[]);
    let l = first_layer(&gz);
    assert_eq!(l["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip", "{l}");
    let blob = gz.join("blobs/sha256").join(l["digest"].as_str().unwrap().trim_start_matches("sha256:"));
    assert!(fs::read(&blob).unwrap().starts_with(&[0x1f, 0x8b]));
    assert_eq!(fs::metadata(&blob).unwrap().len(), l["size"].as_u64().unwrap());
    assert_same(
        &tree::snapshot(&umoci_unpack(&berth, &gz, &layout_tag(&gz))),
        &want,
        &["."],
        "umoci of --compress gzip",
    );

    // zstd keeps the stored bytes; none writes a plain tar umoci reads.
    let zs = export("zst-layout", &["--compress", "zstd"]);
    assert_eq!(first_layer(&zs)["digest"], stored["digest"], "--compress zstd must copy the stored zstd blob");
    let plain = export("plain-layout", &["--compress", "none"]);
    assert_eq!(first_layer(&plain)["mediaType"], "application/vnd.oci.image.layer.v1.tar");
    let t = layout_tag(&plain);
    assert_same(&tree::snapshot(&umoci_unpack(&berth, &plain, &t)), &want, &["."], "umoci of --compress none");

    // Each imports back as the same image (the diff_ids did not change).
    for layout in [&gz, &zs, &plain] {
        let fresh = Berth::new();
        let run = fresh.run(["import".as_ref(), layout.as_os_str(), "back".as_ref()]).success();
        assert_eq!(printed_id(&run), image_id(&berth, "zimg"), "{}", layout.display());
    }
    // --compress is for OCI exports only.
    let out = berth.dir().join("x.tar.gz");
    berth.run(["export".as_ref(), "zimg".as_ref(), out.as_os_str(), "--compress".as_ref(), "zstd".as_ref()]).failure();
    assert!(!out.exists());
}
