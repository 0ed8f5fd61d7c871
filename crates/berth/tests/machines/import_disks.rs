//! `berth import` of disk images: GPT (the DPS root type wins over a
//! larger Linux partition; else the largest Linux partition), MBR, a bare
//! ext4, the same compressed, qcow2, vmdk and a Vagrant box; and
//! `berth run -i DISK`. The imported tree must equal the tree the
//! filesystem was made from (minus ext4's `lost+found`), the source file
//! must be untouched, and no loop device or mount may be left behind.

use std::fs;
use std::path::{Path, PathBuf};

use super::disks::{self, Part, DPS_ROOT_X86_64, ESP, LINUX_DATA};
use super::{assert_image_is, assert_nothing_attached, compress_file, image_id, image_names, printed_id, rich_tree};
use crate::harness::tree::file_sha256;
use crate::harness::Berth;

/// ext4 adds this; it is not part of the source tree.
pub(super) const LOST: &[&str] = &["lost+found"];

/// The rich tree and an ext4 image of it.
fn root_fs(berth: &Berth) -> (PathBuf, PathBuf) {
    let tree = rich_tree(berth, "src");
    let fs_img = disks::ext4(&tree, &berth.dir().join("root.ext4"), 16);
    (tree, fs_img)
}

/// A GPT disk: ESP, DPS root (the tree), and a larger generic Linux
/// partition holding a decoy.
pub(super) fn gpt_dps_disk(berth: &Berth) -> (PathBuf, PathBuf) {
    let (tree, root) = root_fs(berth);
    let decoy = disks::ext4(&disks::decoy_tree(berth.dir()), &berth.dir().join("decoy.ext4"), 24);
    let disk = disks::partitioned(
        &berth.dir().join("gpt-disk.raw"),
        "gpt",
        &[
            Part { kind: ESP, size_mib: 4, content: None },
            Part { kind: DPS_ROOT_X86_64, size_mib: 16, content: Some(&root) },
            Part { kind: LINUX_DATA, size_mib: 24, content: Some(&decoy) },
        ],
    );
    (tree, disk)
}

/// bookworm's `mkfs.btrfs --rootdir` (btrfs-progs 6.2) writes device
/// nodes with rdev 0,0 (checked by mounting its output directly).
const BTRFS_LOSES: &[&str] = &["lost+found", "srv/null"];

/// Imports `file` (optionally as `name`), checks the printed ID, the
/// tree, that the source is unchanged and that nothing stayed attached.
fn import_and_check(berth: &Berth, file: &Path, name: Option<&str>, want_name: &str, tree: &Path, what: &str) {
    import_and_check_ignoring(berth, file, name, want_name, tree, LOST, what)
}

fn import_and_check_ignoring(
    berth: &Berth,
    file: &Path,
    name: Option<&str>,
    want_name: &str,
    tree: &Path,
    ignore: &[&str],
    what: &str,
) {
    let sum = file_sha256(file);
    let mut args = vec!["import".as_ref(), file.as_os_str()];
    if let Some(n) = name {
        args.push(n.as_ref());
    }
    let run = berth.run(args).success();
    let id = printed_id(&run);
    assert_nothing_attached(berth, what);
    super::assert_no_staging(berth, what);
    assert_eq!(image_id(berth, want_name), id, "{what}: printed ID vs the image's ID");
    assert_image_is(berth, want_name, tree, ignore, what);
    assert_eq!(file_sha256(file), sum, "{what}: import changed its source file");
}

#[test]
fn gpt_picks_the_dps_root_over_a_larger_linux_partition() {
    let berth = Berth::new();
    let (tree, disk) = gpt_dps_disk(&berth);
    import_and_check(&berth, &disk, None, "localhost/gpt-disk:latest", &tree, "GPT with a DPS root");
    assert_eq!(image_names(&berth), vec!["localhost/gpt-disk:latest".to_string()], "default name from the file stem");
    let o = berth.run(["run", "gpt-disk", "/bin/sh", "-c", "cat /etc/os-release; test -e /DECOY && echo DECOY; true"]);
    assert!(!o.success().stdout.contains("DECOY"), "imported the decoy partition");
}

#[test]
fn gpt_without_a_dps_root_picks_the_largest_linux_partition() {
    let berth = Berth::new();
    let (tree, root) = root_fs(&berth);
    let decoy = disks::ext4(&disks::decoy_tree(berth.dir()), &berth.dir().join("decoy.ext4"), 8);
    let disk = disks::partitioned(
        &berth.dir().join("plain-gpt.img"),
        "gpt",
        &[
            Part { kind: ESP, size_mib: 4, content: None },
            Part { kind: LINUX_DATA, size_mib: 8, content: Some(&decoy) },
            Part { kind: LINUX_DATA, size_mib: 16, content: Some(&root) },
        ],
    );
    import_and_check(&berth, &disk, Some("largest"), "largest", &tree, "GPT, largest Linux partition");
}

#[test]
fn mbr_with_a_linux_partition() {
    let berth = Berth::new();
    let (tree, root) = root_fs(&berth);
    let disk = disks::partitioned(
        &berth.dir().join("mbr.img"),
        "dos",
        &[Part { kind: "c", size_mib: 4, content: None }, Part { kind: "83", size_mib: 16, content: Some(&root) }],
    );
    import_and_check(&berth, &disk, Some("mbr"), "mbr", &tree, "MBR with a 0x83 partition");
}

#[test]
fn bare_ext4_filesystem() {
    let berth = Berth::new();
    let (tree, root) = root_fs(&berth);
    import_and_check(&berth, &root, Some("bare"), "bare", &tree, "bare ext4 image");
}

#[test]
fn bare_btrfs_filesystem() {
    let berth = Berth::new();
    let tree = rich_tree(&berth, "src");
    let img = disks::btrfs(&tree, &berth.dir().join("root.btrfs"), 128);
    import_and_check_ignoring(&berth, &img, Some("btr"), "btr", &tree, BTRFS_LOSES, "bare btrfs image");
}

#[test]
fn bare_squashfs_filesystem() {
    let berth = Berth::new();
    let tree = rich_tree(&berth, "src");
    let img = disks::squashfs(&tree, &berth.dir().join("root.squashfs"));
    import_and_check(&berth, &img, Some("sq"), "sq", &tree, "bare squashfs image");
}

#[test]
fn bare_erofs_filesystem() {
    let berth = Berth::new();
    let tree = rich_tree(&berth, "src");
    let img = disks::erofs(&tree, &berth.dir().join("root.erofs"));
    import_and_check(&berth, &img, Some("ero"), "ero", &tree, "bare erofs image");
}

#[test]
fn gpt_with_a_btrfs_dps_root() {
    let berth = Berth::new();
    let tree = rich_tree(&berth, "src");
    let root = disks::btrfs(&tree, &berth.dir().join("root.btrfs"), 120);
    let disk = disks::partitioned(
        &berth.dir().join("btrfs-disk.img"),
        "gpt",
        &[
            Part { kind: ESP, size_mib: 4, content: None },
            Part { kind: DPS_ROOT_X86_64, size_mib: 120, content: Some(&root) },
        ],
    );
    import_and_check_ignoring(&berth, &disk, Some("gptbtr"), "gptbtr", &tree, BTRFS_LOSES, "GPT with a btrfs root");
}

#[test]
fn xz_compressed_gpt_disk() {
    let berth = Berth::new();
    let (tree, disk) = gpt_dps_disk(&berth);
    let xz = compress_file("xz", &disk, "xz");
    fs::remove_file(&disk).unwrap();
    // Fedora-Cloud style: NAME.raw.xz → NAME.
    import_and_check(&berth, &xz, None, "localhost/gpt-disk:latest", &tree, "gpt-disk.raw.xz");
}

#[test]
fn xz_disk_image_from_an_http_url() {
    let berth = Berth::new();
    let (tree, disk) = gpt_dps_disk(&berth);
    let www = berth.new_dir("www");
    let xz = compress_file("xz", &disk, "xz");
    fs::rename(&xz, www.join("Fedora-Cloud.raw.xz")).unwrap();
    let server = super::HttpServer::serve(&www);
    let url = server.url("Fedora-Cloud.raw.xz");
    let run = berth.run(["import", url.as_str()]).success();
    let id = printed_id(&run);
    assert_nothing_attached(&berth, "disk from a URL");
    assert_eq!(image_names(&berth), vec!["localhost/fedora-cloud:latest".to_string()], "default name from the URL");
    assert_eq!(image_id(&berth, "fedora-cloud"), id);
    assert_image_is(&berth, "fedora-cloud", &tree, LOST, "Fedora-Cloud.raw.xz over http");
}

#[test]
fn zstd_compressed_bare_ext4() {
    let berth = Berth::new();
    let (tree, root) = root_fs(&berth);
    let zst = compress_file("zstd", &root, "zst");
    import_and_check(&berth, &zst, Some("bare-zst"), "bare-zst", &tree, "root.ext4.zst");
}

#[test]
fn gzip_compressed_mbr_disk() {
    let berth = Berth::new();
    let (tree, root) = root_fs(&berth);
    let disk = disks::partitioned(
        &berth.dir().join("mbr.img"),
        "dos",
        &[Part { kind: "83", size_mib: 16, content: Some(&root) }],
    );
    let gz = compress_file("gzip", &disk, "gz");
    import_and_check(&berth, &gz, Some("mbr-gz"), "mbr-gz", &tree, "mbr.img.gz");
}

#[test]
fn qcow2_disk() {
    let berth = Berth::new();
    let (tree, disk) = gpt_dps_disk(&berth);
    let qcow = disks::convert(&disk, "qcow2", &berth.dir().join("cloud.qcow2"));
    import_and_check(&berth, &qcow, None, "localhost/cloud:latest", &tree, "qcow2");
}

#[test]
fn vmdk_disk() {
    let berth = Berth::new();
    let (tree, disk) = gpt_dps_disk(&berth);
    let vmdk = disks::convert(&disk, "vmdk", &berth.dir().join("appliance.vmdk"));
    import_and_check(&berth, &vmdk, None, "localhost/appliance:latest", &tree, "vmdk");
}

#[test]
fn vagrant_box_holding_a_vmdk() {
    let berth = Berth::new();
    let (tree, disk) = gpt_dps_disk(&berth);
    let vmdk = disks::convert(&disk, "vmdk", &berth.dir().join("inner.vmdk"));
    let bx = disks::vagrant_box(&vmdk, berth.dir(), &berth.dir().join("bookworm64.box"));
    import_and_check(&berth, &bx, None, "localhost/bookworm64:latest", &tree, "Vagrant .box");
}

#[test]
fn a_tarball_holding_one_raw_disk_imports_the_disk() {
    // CentOS's GenericCloud.raw.tar.gz: a GPT disk alone in a tarball.
    let berth = Berth::new();
    let (tree, disk) = gpt_dps_disk(&berth);
    let stage = berth.new_dir("cloud-stage");
    let inner = "CentOS-7-x86_64-GenericCloud-2211.raw";
    fs::copy(&disk, stage.join(inner)).unwrap();
    let tgz = berth.dir().join(format!("{inner}.tar.gz"));
    super::host_sh(&format!("tar -C {} -czSf {} {inner}", super::q(&stage), super::q(&tgz)));
    import_and_check(&berth, &tgz, None, "localhost/centos-7-x86_64-genericcloud-2211:latest", &tree, "raw.tar.gz");
}

#[test]
fn forced_disk_formats() {
    let berth = Berth::new();
    let (tree, disk) = gpt_dps_disk(&berth);
    let qcow = disks::convert(&disk, "qcow2", &berth.dir().join("d.qcow2"));
    berth.run(["import".as_ref(), disk.as_os_str(), "r".as_ref(), "--format".as_ref(), "raw".as_ref()]).success();
    berth.run(["import".as_ref(), qcow.as_os_str(), "q".as_ref(), "--format".as_ref(), "qcow2".as_ref()]).success();
    assert_nothing_attached(&berth, "forced formats");
    assert_image_is(&berth, "r", &tree, LOST, "--format raw");
    assert_image_is(&berth, "q", &tree, LOST, "--format qcow2");
    // A qcow2 forced as raw is refused (no partition table, no
    // filesystem), the store unchanged.
    let before = super::listing(&berth);
    berth.run(["import".as_ref(), qcow.as_os_str(), "v".as_ref(), "--format".as_ref(), "raw".as_ref()]).failure();
    before.assert_unchanged(&super::listing(&berth), "qcow2 forced as raw");
    assert_nothing_attached(&berth, "qcow2 forced as raw");
}

#[test]
fn run_dash_i_runs_a_raw_disk_image_in_place() {
    let berth = Berth::new();
    let (_tree, disk) = gpt_dps_disk(&berth);
    let o = berth
        .run([
            "run".as_ref(),
            "-i".as_ref(),
            disk.as_os_str(),
            "/bin/sh".as_ref(),
            "-c".as_ref(),
            "cat /etc/os-release; ls /srv".as_ref(),
        ])
        .success();
    assert!(o.stdout.contains("ID=berth-machines-test"), "run -i did not run the DPS root: {o:?}");
    assert!(o.stdout.contains("suid"), "{o:?}");
    assert_nothing_attached(&berth, "run -i");
    let left: Vec<String> =
        super::losetup_a().lines().filter(|l| l.contains(&*disk.to_string_lossy())).map(str::to_string).collect();
    assert!(left.is_empty(), "loop devices on the disk left: {left:?}");
}
