//! Disk images built from trees without loop devices: `mkfs.ext4 -d TREE`
//! on a plain file, a partition table written by `sfdisk` on another
//! file, and the filesystems copied in at their partitions' offsets.
//! qcow2 and vmdk come from `qemu-img convert`, a Vagrant box is a tar.gz
//! of `metadata.json` and `box.vmdk`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::{host, host_sh, q};

pub const ESP: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
pub const LINUX_DATA: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";
/// Discoverable Partitions Specification: root partition, x86-64.
pub const DPS_ROOT_X86_64: &str = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709";

const MIB: u64 = 1 << 20;

/// Makes sure a host tool is there (installing its Debian package once;
/// scripts/deps.sh should list it so this never runs in CI).
pub fn need(tool: &str, package: &str) {
    static APT: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let found = || {
        Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    if found() {
        return;
    }
    let _apt = APT.lock().unwrap_or_else(|p| p.into_inner());
    if found() {
        return;
    }
    let out = Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends", package])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .expect("run apt-get");
    assert!(out.status.success(), "{tool} is missing and `apt-get install {package}` failed: {out:?}");
}

/// An ext4 filesystem image of `size_mib` MiB holding `tree`.
pub fn ext4(tree: &Path, out: &Path, size_mib: u64) -> PathBuf {
    need("mkfs.ext4", "e2fsprogs");
    let f = fs::File::create(out).expect("create fs image");
    f.set_len(size_mib * MIB).expect("size fs image");
    drop(f);
    host(Command::new("mkfs.ext4").args(["-q", "-F", "-d"]).arg(tree).arg(out));
    out.to_path_buf()
}

/// A btrfs filesystem image of `size_mib` MiB holding `tree`.
pub fn btrfs(tree: &Path, out: &Path, size_mib: u64) -> PathBuf {
    need("mkfs.btrfs", "btrfs-progs");
    let f = fs::File::create(out).expect("create fs image");
    f.set_len(size_mib * MIB).expect("size fs image");
    drop(f);
    host(Command::new("mkfs.btrfs").args(["-q", "-f", "--rootdir"]).arg(tree).arg(out));
    out.to_path_buf()
}

/// A squashfs image of `tree`.
pub fn squashfs(tree: &Path, out: &Path) -> PathBuf {
    need("mksquashfs", "squashfs-tools");
    host(Command::new("mksquashfs").arg(tree).arg(out).args(["-quiet", "-noappend", "-no-progress"]));
    out.to_path_buf()
}

/// An erofs image of `tree`.
pub fn erofs(tree: &Path, out: &Path) -> PathBuf {
    need("mkfs.erofs", "erofs-utils");
    host(Command::new("mkfs.erofs").arg("--quiet").arg(out).arg(tree));
    out.to_path_buf()
}

/// A tree with one file, `/DECOY`, that must never be imported.
pub fn decoy_tree(dir: &Path) -> PathBuf {
    let t = dir.join("decoy-tree");
    fs::create_dir_all(t.join("etc")).unwrap();
    fs::write(t.join("DECOY"), "the wrong partition\n").unwrap();
    fs::write(t.join("etc/os-release"), "ID=decoy\n").unwrap();
    t
}

/// One partition: sfdisk type, size in MiB, and what to copy into it.
pub struct Part<'a> {
    pub kind: &'a str,
    pub size_mib: u64,
    pub content: Option<&'a Path>,
}

/// A disk image at `out` with a `label` ("gpt" or "dos") partition table
/// holding `parts` in order, each filesystem copied to its offset.
pub fn partitioned(out: &Path, label: &str, parts: &[Part]) -> PathBuf {
    need("sfdisk", "fdisk");
    let total: u64 = parts.iter().map(|p| p.size_mib).sum::<u64>() + 2;
    let f = fs::File::create(out).expect("create disk image");
    f.set_len(total * MIB).expect("size disk image");
    drop(f);
    let mut script = format!("label: {label}\n");
    for (i, p) in parts.iter().enumerate() {
        let start = if i == 0 { "start=2048, " } else { "" };
        script.push_str(&format!("{start}size={}MiB, type={}\n", p.size_mib, p.kind));
    }
    host_sh(&format!("printf '%s' '{script}' | sfdisk -q {}", q(out)));
    let json = host(Command::new("sfdisk").arg("-J").arg(out));
    let v: Value = serde_json::from_str(&json).expect("sfdisk -J is JSON");
    let table = v["partitiontable"]["partitions"].as_array().expect("partitions").clone();
    assert_eq!(table.len(), parts.len(), "sfdisk made {} partitions: {json}", table.len());
    for (p, t) in parts.iter().zip(&table) {
        if let Some(content) = p.content {
            let start = t["start"].as_u64().expect("start");
            let len = fs::metadata(content).unwrap().len();
            assert!(len <= p.size_mib * MIB, "{} does not fit its partition", content.display());
            host(
                Command::new("dd")
                    .arg(format!("if={}", content.display()))
                    .arg(format!("of={}", out.display()))
                    .args(["bs=512", "conv=notrunc,sparse", "status=none"])
                    .arg(format!("seek={start}")),
            );
        }
    }
    out.to_path_buf()
}

/// `qemu-img convert -f raw -O FORMAT` of a raw disk.
pub fn convert(raw: &Path, format: &str, out: &Path) -> PathBuf {
    need("qemu-img", "qemu-utils");
    host(Command::new("qemu-img").args(["convert", "-f", "raw", "-O", format]).arg(raw).arg(out));
    out.to_path_buf()
}

/// A Vagrant box (tar.gz of `metadata.json`, `Vagrantfile`, `box.vmdk`).
pub fn vagrant_box(vmdk: &Path, dir: &Path, out: &Path) -> PathBuf {
    let stage = dir.join("box-stage");
    fs::create_dir_all(&stage).unwrap();
    fs::write(stage.join("metadata.json"), r#"{"provider":"virtualbox","format":"vmdk"}"#).unwrap();
    fs::write(stage.join("Vagrantfile"), "Vagrant.configure(\"2\") do |config|\nend\n").unwrap();
    fs::copy(vmdk, stage.join("box.vmdk")).unwrap();
    host_sh(&format!("tar -C {} -czf {} metadata.json Vagrantfile box.vmdk", q(&stage), q(out)));
    out.to_path_buf()
}
