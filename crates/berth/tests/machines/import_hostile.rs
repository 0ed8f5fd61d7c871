//! Hostile imports that would bring the host's own files into the store:
//! a Vagrant box whose disk is a symlink to a host file, a qcow2 backed by
//! (or keeping its data in) a host file, a vmdk descriptor whose extent is
//! a host file, `--strip-prefix` through a symlink to a host directory, an
//! OCI layout whose blob is a link out or a FIFO, an oversized
//! index.json; and a disk image's filesystem showing in the host's mount
//! table while it is copied. Each is refused with a one-line error and
//! the store unchanged (or, for the mount, never seen).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::disks;
use super::{host, host_sh, listing, q};
use crate::harness::tarball::{tar, Entry};
use crate::harness::{fixtures, Berth};

/// A host file holding a valid ext4 filesystem (the decoy tree): what a
/// hostile image tries to get imported.
fn host_disk(berth: &Berth) -> PathBuf {
    disks::ext4(&disks::decoy_tree(berth.dir()), &berth.dir().join("host-disk.ext4"), 8)
}

/// Imports `file` expecting a one-line refusal naming one of `why`, with
/// the store unchanged and nothing left attached.
fn refused(berth: &Berth, file: &Path, why: &[&str], what: &str) {
    berth.run(["images"]).success(); // the store exists before the listing
    let before = listing(berth);
    berth.run(["import".as_ref(), file.as_os_str(), "hostile".as_ref()]).failure().mentions_any(why);
    before.assert_unchanged(&listing(berth), what);
    super::assert_nothing_attached(berth, what);
}

#[test]
fn vagrant_box_whose_disk_links_to_a_host_file_is_refused() {
    let berth = Berth::new();
    let target = host_disk(&berth);
    let stage = berth.new_dir("box-stage");
    fs::write(stage.join("metadata.json"), r#"{"provider":"libvirt","format":"raw"}"#).unwrap();
    std::os::unix::fs::symlink(&target, stage.join("box.img")).unwrap();
    let bx = berth.dir().join("evil.box");
    host_sh(&format!("tar -C {} -czf {} metadata.json box.img", q(&stage), q(&bx)));
    refused(&berth, &bx, &["not a regular file"], "a box whose box.img links to a host file");
}

#[test]
fn qcow2_reading_a_host_file_is_refused() {
    let berth = Berth::new();
    let target = host_disk(&berth);
    disks::need("qemu-img", "qemu-utils");
    let size = fs::metadata(&target).unwrap().len().to_string();
    let backed = berth.dir().join("backed.qcow2");
    host(Command::new("qemu-img").args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"]).arg(&target).arg(&backed));
    refused(&berth, &backed, &["backing file"], "a qcow2 backed by a host file");
    let external = berth.dir().join("external.qcow2");
    host(
        Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-o"])
            .arg(format!("data_file={},data_file_raw=on", target.display()))
            .arg(&external)
            .arg(&size),
    );
    refused(&berth, &external, &["external data file"], "a qcow2 keeping its data in a host file");
    // Forced as qcow2 the same.
    let before = listing(&berth);
    berth
        .run(["import".as_ref(), backed.as_os_str(), "h".as_ref(), "--format".as_ref(), "qcow2".as_ref()])
        .failure()
        .mentions_any(&["backing file"]);
    before.assert_unchanged(&listing(&berth), "--format qcow2 of a backed qcow2");
}

#[test]
fn vmdk_descriptor_naming_a_host_file_is_refused() {
    let berth = Berth::new();
    let target = host_disk(&berth);
    let sectors = fs::metadata(&target).unwrap().len() / 512;
    let desc = berth.dir().join("evil.vmdk");
    fs::write(
        &desc,
        format!(
            "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n\n\
             RW {sectors} FLAT \"{}\" 0\n\nddb.virtualHWVersion = \"4\"\n",
            target.display()
        ),
    )
    .unwrap();
    refused(&berth, &desc, &["descriptor"], "a vmdk descriptor with a FLAT extent on a host file");
}

#[test]
fn strip_prefix_through_a_symlink_moves_nothing_from_the_host() {
    let berth = Berth::new();
    let host_dir = berth.new_dir("host-dir");
    fs::create_dir_all(host_dir.join("etc")).unwrap();
    fs::write(host_dir.join("etc/secret"), "the host's\n").unwrap();
    let data =
        tar(&[Entry::symlink("a", host_dir.to_str().unwrap()), Entry::dir("rootfs"), Entry::file("rootfs/x", "x")]);
    let archive = berth.dir().join("strip.tar");
    fs::write(&archive, data).unwrap();
    berth.run(["images"]).success();
    let before = listing(&berth);
    berth
        .run(["import".as_ref(), archive.as_os_str(), "s".as_ref(), "--strip-prefix".as_ref(), "a/etc".as_ref()])
        .failure()
        .mentions_any(&["symlink"]);
    before.assert_unchanged(&listing(&berth), "--strip-prefix through a link");
    assert_eq!(
        fs::read_to_string(host_dir.join("etc/secret")).ok().as_deref(),
        Some("the host's\n"),
        "--strip-prefix a/etc moved the host directory the archive's link `a` points at"
    );
}

/// The digest hex of the first layer of the image in a layout written by
/// the harness (one manifest).
fn first_layer(layout: &Path) -> String {
    let index: serde_json::Value = serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let m = index["manifests"][0]["digest"].as_str().unwrap().trim_start_matches("sha256:").to_string();
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("blobs/sha256").join(m)).unwrap()).unwrap();
    manifest["layers"][0]["digest"].as_str().unwrap().trim_start_matches("sha256:").to_string()
}

#[test]
fn oci_layout_blobs_must_be_regular_files_inside_it() {
    let berth = Berth::new();
    let image = fixtures::tiny("layout");
    // A blob that is a symlink to a file outside the layout (with the
    // right content: only where it lies is wrong).
    let out = berth.dir().join("out-layout");
    image.write_layout(&out, "v1");
    let hex = first_layer(&out);
    let outside = berth.dir().join("outside-blob");
    fs::rename(out.join("blobs/sha256").join(&hex), &outside).unwrap();
    std::os::unix::fs::symlink(&outside, out.join("blobs/sha256").join(&hex)).unwrap();
    refused(&berth, &out, &["outside"], "a layout blob linking out of the layout");
    // The same as an oci-archive.
    let archive = berth.dir().join("out-layout.tar");
    host(Command::new("tar").arg("-C").arg(&out).arg("-cf").arg(&archive).arg("."));
    refused(&berth, &archive, &["outside"], "an oci-archive blob linking out of it");
    // A FIFO for a blob would hang the import.
    let fifo = berth.dir().join("fifo-layout");
    image.write_layout(&fifo, "v1");
    let blob = fifo.join("blobs/sha256").join(first_layer(&fifo));
    fs::remove_file(&blob).unwrap();
    host(Command::new("mkfifo").arg(&blob));
    refused(&berth, &fifo, &["not a regular file"], "a layout blob that is a FIFO");
}

#[test]
fn oversized_index_json_is_refused_before_it_is_parsed() {
    let berth = Berth::new();
    let image = fixtures::tiny("big-index");
    let layout = berth.dir().join("big-index");
    image.write_layout(&layout, "v1");
    let mut index = fs::read(layout.join("index.json")).unwrap();
    // Valid JSON, padded past the bound.
    index.splice(0..0, vec![b' '; 5 << 20]);
    fs::write(layout.join("index.json"), index).unwrap();
    refused(&berth, &layout, &["larger than"], "a 5 MB index.json");
}

#[test]
fn a_disk_image_is_never_mounted_in_the_host_s_mount_table() {
    let berth = Berth::new();
    // A filesystem whose copy takes a while: 48 MiB of data.
    let tree = berth.new_dir("bulky");
    fs::write(tree.join("bulk"), crate::harness::tarball::random_bytes(48 << 20, 7)).unwrap();
    let img = disks::ext4(&tree, &berth.dir().join("bulky.ext4"), 80);
    let store = berth.root().to_string_lossy().into_owned();
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut seen = std::collections::BTreeSet::new();
            while !stop.load(Ordering::Relaxed) {
                let table = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
                seen.extend(table.lines().filter(|l| l.contains(&store)).map(str::to_string));
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
            seen
        })
    };
    berth.run(["import".as_ref(), img.as_os_str(), "bulky".as_ref()]).success();
    stop.store(true, Ordering::Relaxed);
    let seen = watcher.join().unwrap();
    assert!(seen.is_empty(), "the image's filesystem was mounted where the host sees it: {seen:?}");
    super::assert_nothing_attached(&berth, "a bulky ext4 import");
}
