//! Disk images: raw (MBR, GPT, or a bare filesystem), and qcow2/vmdk via
//! `qemu-img convert`. The root partition is the one whose GPT type is the
//! Discoverable Partitions Specification's root type for this
//! architecture, else the largest Linux filesystem partition. It is
//! attached read-only through a loop device at its offset (util-linux's
//! `losetup`), mounted read-only in a mount namespace of its own, copied,
//! and detached. qcow2 and vmdk images must be self-contained: qemu-img
//! would otherwise read their backing files and extents from the host.

use crate::StoreError;
use std::path::Path;
use std::process::Command;

/// A partition: byte offset and length within the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    pub offset: u64,
    pub size: u64,
}

const SECTOR: u64 = 512;
/// GPT type GUIDs, as the bytes appear on disk (mixed-endian).
const LINUX_DATA: &str = "0fc63daf-8483-4772-8e79-3d69d8477de4";
#[cfg(target_arch = "x86_64")]
const ROOT_NATIVE: &str = "4f68bce3-e8cd-4db1-96e7-fbcaf984b709";
#[cfg(target_arch = "aarch64")]
const ROOT_NATIVE: &str = "b921b045-1df0-41c3-af44-4c6f280d3fae";

fn guid(b: &[u8]) -> String {
    format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]
    )
}

fn u32le(b: &[u8], o: usize) -> u64 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]) as u64
}

fn u64le(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(a)
}

/// Picks the root partition from the image's first sectors (`head` holds
/// at least the first 34 sectors) — `read_at` fetches more when the GPT
/// entry array lies further out. `None`: no partition table.
pub fn find_root(
    head: &[u8],
    read_at: &mut dyn FnMut(u64, usize) -> std::io::Result<Vec<u8>>,
) -> Result<Option<Part>, String> {
    if head.len() >= 1024 && &head[512..520] == b"EFI PART" {
        let h = &head[512..];
        let entries_lba = u64le(h, 72);
        let count = u32le(h, 80).min(1024) as usize;
        let esize = u32le(h, 84) as usize;
        if !(128..=4096).contains(&esize) {
            return Err("malformed GPT header: bad entry size".into());
        }
        // Every number here is the image's to choose: an LBA whose byte
        // offset overflows is no disk's, and `read_at` may hand back fewer
        // bytes than asked for (both panicked before).
        let at = entries_lba.checked_mul(SECTOR).ok_or("malformed GPT header: the entry array lies past any disk")?;
        let len = count * esize; // at most 1024 × 4096 bytes
        let table = read_at(at, len).map_err(|e| format!("reading the GPT entries: {e}"))?;
        if table.len() < len {
            return Err("the GPT entry array is cut short".into());
        }
        let mut best: Option<(bool, Part)> = None;
        for e in table.chunks_exact(esize).take(count) {
            let t = guid(&e[0..16]);
            let (first, last) = (u64le(e, 32), u64le(e, 40));
            if first == 0 || last < first {
                continue;
            }
            // A partition ending past the last byte a u64 can address
            // cannot be attached: not a candidate.
            let Some(end) = last.checked_add(1).and_then(|l| l.checked_mul(SECTOR)) else { continue };
            let part = Part { offset: first * SECTOR, size: end - first * SECTOR };
            let native_root = t == ROOT_NATIVE;
            if !native_root && t != LINUX_DATA {
                continue;
            }
            let better = match best {
                None => true,
                Some((was_root, p)) => (native_root && !was_root) || (native_root == was_root && part.size > p.size),
            };
            if better {
                best = Some((native_root, part));
            }
        }
        return best.map(|(_, p)| Some(p)).ok_or_else(|| "the GPT has no Linux root or data partition".to_string());
    }
    if head.len() >= 512 && head[510] == 0x55 && head[511] == 0xaa {
        let mut best: Option<Part> = None;
        let mut any = false;
        for i in 0..4 {
            let e = &head[446 + i * 16..446 + (i + 1) * 16];
            let kind = e[4];
            if kind == 0 {
                continue;
            }
            any = true;
            if kind != 0x83 {
                continue;
            }
            let part = Part { offset: u32le(e, 8) * SECTOR, size: u32le(e, 12) * SECTOR };
            // An empty partition, or one over the MBR itself, holds no
            // filesystem: attaching it would attach the whole disk.
            if part.size == 0 || part.offset == 0 {
                continue;
            }
            if best.is_none_or(|b| part.size > b.size) {
                best = Some(part);
            }
        }
        if !any {
            return Ok(None); // a boot sector without partitions: a bare filesystem
        }
        return best.map(Some).ok_or_else(|| "the MBR has no Linux (0x83) partition".to_string());
    }
    Ok(None)
}

fn read_at(f: &mut std::fs::File, off: u64, len: usize) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut buf = vec![0u8; len];
    f.seek(SeekFrom::Start(off))?;
    f.read_exact(&mut buf)?;
    Ok(buf)
}

/// Opens `image` and finds its root partition (`None`: the whole image
/// is one filesystem).
fn locate_root(image: &Path) -> Result<(Option<Part>, std::fs::File), StoreError> {
    use std::io::Read;
    let mut f = std::fs::File::open(image).map_err(|e| StoreError::io(format!("opening {}", image.display()), e))?;
    let mut head = vec![0u8; 34 * SECTOR as usize];
    let n = f.read(&mut head).map_err(|e| StoreError::io("reading the disk image", e))?;
    head.truncate(n);
    let part = find_root(&head, &mut |o, l| read_at(&mut f, o, l)).map_err(StoreError::Import)?;
    Ok((part, f))
}

/// The filesystem type a superblock (the first 72 KiB of a partition)
/// announces: ext4, xfs, btrfs, squashfs or erofs.
pub fn fs_type(h: &[u8]) -> Option<&'static str> {
    let at = |o: usize, m: &[u8]| h.len() >= o + m.len() && &h[o..o + m.len()] == m;
    if at(1080, &[0x53, 0xef]) {
        Some("ext4")
    } else if at(0, b"XFSB") {
        Some("xfs")
    } else if at(65600, b"_BHRfS_M") {
        Some("btrfs")
    } else if at(0, b"hsqs") {
        Some("squashfs")
    } else if at(1024, &[0xe2, 0xe1, 0xf5, 0xe0]) {
        Some("erofs")
    } else {
        None
    }
}

/// A disk image's root filesystem attached to a loop device; detached on
/// drop.
pub struct Attached {
    pub device: String,
    pub fstype: &'static str,
}

impl Drop for Attached {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("--detach").arg(&self.device).output();
    }
}

/// Finds the root partition of `image` and attaches it to a loop device.
pub fn attach_root(image: &Path, read_only: bool) -> Result<Attached, StoreError> {
    let (part, mut f) = locate_root(image)?;
    let sb = read_at(&mut f, part.map(|p| p.offset).unwrap_or(0), 72 << 10)
        .map_err(|e| StoreError::io("reading the root partition's superblock", e))?;
    let fstype = fs_type(&sb).ok_or_else(|| {
        StoreError::Import("the root partition holds no ext4, xfs, btrfs, squashfs or erofs filesystem".into())
    })?;
    let mut losetup = Command::new("losetup");
    losetup.args(["--find", "--show"]);
    if read_only || matches!(fstype, "squashfs" | "erofs") {
        losetup.arg("--read-only");
    }
    if let Some(p) = part {
        losetup.arg(format!("--offset={}", p.offset)).arg(format!("--sizelimit={}", p.size));
    }
    let device = run(losetup.arg(image), "losetup")?;
    Ok(Attached { device, fstype })
}

fn run(cmd: &mut Command, what: &str) -> Result<String, StoreError> {
    let out = cmd.output().map_err(|e| StoreError::io(format!("running {what}"), e))?;
    if !out.status.success() {
        return Err(StoreError::Import(format!("{what} failed: {}", String::from_utf8_lossy(&out.stderr).trim())));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// What makes a qcow2 or vmdk read data from files other than itself,
/// from `qemu-img info --output=json`: a backing file, a qcow2 external
/// data file, or a child node other than the image's own file (vmdk
/// extents, split files). `None`: the image is self-contained.
pub fn foreign_files(info: &serde_json::Value) -> Option<String> {
    for key in ["backing-filename", "full-backing-filename"] {
        if let Some(b) = info.get(key).and_then(|b| b.as_str()) {
            return Some(format!("a backing file ({b})"));
        }
    }
    let data = &info["format-specific"]["data"];
    if let Some(d) = data.get("data-file").and_then(|d| d.as_str()) {
        return Some(format!("an external data file ({d})"));
    }
    let own = info.get("filename").and_then(|f| f.as_str());
    for e in data.get("extents").and_then(|e| e.as_array()).into_iter().flatten() {
        let f = e.get("filename").and_then(|f| f.as_str());
        if f != own {
            return Some(format!("an extent in another file ({})", f.unwrap_or("unnamed")));
        }
    }
    for c in info.get("children").and_then(|c| c.as_array()).into_iter().flatten() {
        let name = c.get("name").and_then(|n| n.as_str()).unwrap_or("");
        if name != "file" {
            let f = c["info"].get("filename").and_then(|f| f.as_str()).unwrap_or("unnamed");
            return Some(format!("data in another file ({name}: {f})"));
        }
    }
    None
}

/// What in a qcow2 or vmdk header makes qemu open other files, read
/// before qemu-img runs: a qcow2 backing file or external data file (bit 2
/// of the incompatible features, version 3), a vmdk that is no binary
/// sparse extent (a text descriptor names its extents), or a sparse header
/// that defers to an embedded descriptor (capacity 0, a descriptor offset).
pub fn header_names_other_files(head: &[u8], format: &str) -> Option<&'static str> {
    let be64 = |o: usize| head.get(o..o + 8).map(|b| u64::from_be_bytes(b.try_into().unwrap_or([0; 8])));
    let le64 = |o: usize| head.get(o..o + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
    match format {
        "qcow2" => {
            if !head.starts_with(b"QFI\xfb") {
                return Some("has no qcow2 header");
            }
            if be64(8).unwrap_or(1) != 0 {
                return Some("names a backing file");
            }
            let version = head.get(4..8).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])).unwrap_or(0);
            if version >= 3 && be64(72).unwrap_or(u64::MAX) & 0b100 != 0 {
                return Some("keeps its data in an external data file");
            }
            None
        }
        "vmdk" => {
            if !head.starts_with(b"KDMV") {
                return Some("is a descriptor that keeps its data in other files (import the monolithic vmdk)");
            }
            if le64(12).unwrap_or(0) == 0 && le64(28).unwrap_or(0) != 0 {
                return Some("defers to an embedded descriptor naming other files");
            }
            None
        }
        _ => None,
    }
}

/// Refuses a qcow2 or vmdk that would make qemu-img read anything but the
/// image itself: a backing file, an external data file, or extents named
/// by a descriptor can point at any host file or device, and converting
/// would copy the host's data into the store. A text vmdk descriptor is
/// refused before qemu-img opens what it names.
pub fn check_self_contained(img: &Path, format: &str) -> Result<(), StoreError> {
    use std::io::Read;
    let mut head = vec![0u8; 512];
    let n = std::fs::File::open(img)
        .and_then(|mut f| f.read(&mut head))
        .map_err(|e| StoreError::io("reading the disk image", e))?;
    head.truncate(n);
    // The headers first, so qemu-img never opens what a hostile one names.
    if let Some(why) = header_names_other_files(&head, format) {
        return Err(StoreError::Import(format!(
            "the {format} image {why}: refusing it, only self-contained images are imported (qemu-img convert -O {format} makes one)"
        )));
    }
    let out = run(
        Command::new("qemu-img").args(["info", "--output=json", "-f", format]).arg(img),
        "qemu-img info (install qemu-utils)",
    )?;
    let info: serde_json::Value =
        serde_json::from_str(&out).map_err(|e| StoreError::Import(format!("qemu-img info printed no JSON: {e}")))?;
    match foreign_files(&info) {
        Some(what) => Err(StoreError::Import(format!(
            "the {format} image reads {what}: refusing it, only self-contained images are imported (qemu-img convert -O {format} makes one)"
        ))),
        None => Ok(()),
    }
}

/// Converts a self-contained qcow2 or vmdk image to raw with qemu-img.
pub fn convert_to_raw(src: &Path, dst: &Path, format: &str) -> Result<(), StoreError> {
    check_self_contained(src, format)?;
    run(
        Command::new("qemu-img").args(["convert", "-f", format, "-O", "raw"]).arg(src).arg(dst),
        "qemu-img convert (install qemu-utils)",
    )?;
    Ok(())
}

/// The option that keeps a read-only mount from replaying a journal
/// (which fails on a read-only device and would trust the image's log).
fn no_replay(fstype: &str) -> Option<&'static str> {
    match fstype {
        "ext4" => Some("noload"),
        "xfs" => Some("norecovery"),
        "btrfs" => Some("rescue=nologreplay"),
        _ => None,
    }
}

/// Mounts `dev` at `mnt` and copies it to `dest`, in a mount namespace of
/// its own (util-linux's `unshare`): the image's filesystem never appears
/// in the host's mount table, and a crash leaves no mount behind. The
/// type is the sniffed one, never the kernel's guess, and nothing of the
/// image is executable, setuid or a device while it is mounted.
fn mount_and_copy(fstype: &str, dev: &str, mnt: &Path, dest: &Path) -> Result<(), StoreError> {
    const SCRIPT: &str = r#"fstype=$1 opts=$2 extra=$3 dev=$4 mnt=$5 dest=$6
{ [ -n "$extra" ] && mount -t "$fstype" -o "$opts,$extra" "$dev" "$mnt" 2>/dev/null; } ||
    mount -t "$fstype" -o "$opts" "$dev" "$mnt" || exit 1
cp -a --reflink=auto --no-target-directory -- "$mnt" "$dest"
rc=$?
umount "$mnt"
exit $rc"#;
    run(
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--", "sh", "-c", SCRIPT, "sh", fstype])
            .arg("ro,nosuid,nodev,noexec")
            .arg(no_replay(fstype).unwrap_or(""))
            .arg(dev)
            .arg(mnt)
            .arg(dest),
        "mounting and copying the root filesystem",
    )
    .map(|_| ())
}

/// Copies the root filesystem of the raw image `image` into `dest`
/// (which must not exist yet), using `mnt` as a scratch mount point.
pub fn copy_root(image: &Path, dest: &Path, mnt: &Path) -> Result<(), StoreError> {
    let attached = attach_root(image, true)?;
    std::fs::create_dir_all(mnt).map_err(|e| StoreError::io("creating the mount point", e))?;
    mount_and_copy(attached.fstype, &attached.device, mnt, dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guid_bytes(g: &str) -> [u8; 16] {
        let hex: String = g.chars().filter(|c| *c != '-').collect();
        let b: Vec<u8> = (0..16).map(|i| u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16).unwrap()).collect();
        [b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]
    }

    fn gpt(parts: &[(&str, u64, u64)]) -> Vec<u8> {
        let mut d = vec![0u8; 34 * 512];
        d[510] = 0x55;
        d[511] = 0xaa;
        d[446 + 4] = 0xee;
        d[512..520].copy_from_slice(b"EFI PART");
        d[512 + 72..512 + 80].copy_from_slice(&2u64.to_le_bytes());
        d[512 + 80..512 + 84].copy_from_slice(&128u32.to_le_bytes());
        d[512 + 84..512 + 88].copy_from_slice(&128u32.to_le_bytes());
        for (i, (t, first, last)) in parts.iter().enumerate() {
            let o = 1024 + i * 128;
            d[o..o + 16].copy_from_slice(&guid_bytes(t));
            d[o + 32..o + 40].copy_from_slice(&first.to_le_bytes());
            d[o + 40..o + 48].copy_from_slice(&last.to_le_bytes());
        }
        d
    }

    fn pick(d: &[u8]) -> Result<Option<Part>, String> {
        let data = d.to_vec();
        find_root(d, &mut |off, len| Ok(data[off as usize..off as usize + len].to_vec()))
    }

    #[test]
    fn gpt_prefers_the_dps_root_then_the_largest_linux_partition() {
        let esp = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";
        let d = gpt(&[(esp, 34, 100), (LINUX_DATA, 101, 5000), (ROOT_NATIVE, 5001, 6000)]);
        assert_eq!(pick(&d).unwrap(), Some(Part { offset: 5001 * 512, size: 1000 * 512 }));
        let d = gpt(&[(esp, 34, 100), (LINUX_DATA, 101, 200), (LINUX_DATA, 201, 5000)]);
        assert_eq!(pick(&d).unwrap(), Some(Part { offset: 201 * 512, size: 4800 * 512 }));
        assert!(pick(&gpt(&[(esp, 34, 100)])).is_err());
    }

    #[test]
    fn headers_naming_other_files_are_refused_before_qemu_runs() {
        let mut q = vec![0u8; 512];
        q[..4].copy_from_slice(b"QFI\xfb");
        q[4..8].copy_from_slice(&3u32.to_be_bytes());
        assert_eq!(header_names_other_files(&q, "qcow2"), None);
        let mut backed = q.clone();
        backed[8..16].copy_from_slice(&0x200u64.to_be_bytes());
        assert!(header_names_other_files(&backed, "qcow2").unwrap().contains("backing"));
        let mut external = q.clone();
        external[72..80].copy_from_slice(&4u64.to_be_bytes());
        assert!(header_names_other_files(&external, "qcow2").unwrap().contains("external"));
        let mut v = vec![0u8; 512];
        v[..4].copy_from_slice(b"KDMV");
        v[12..20].copy_from_slice(&8192u64.to_le_bytes());
        v[28..36].copy_from_slice(&1u64.to_le_bytes());
        assert_eq!(header_names_other_files(&v, "vmdk"), None);
        v[12..20].copy_from_slice(&0u64.to_le_bytes());
        assert!(header_names_other_files(&v, "vmdk").unwrap().contains("embedded descriptor"));
        assert!(header_names_other_files(b"# Disk DescriptorFile\n", "vmdk").unwrap().contains("descriptor"));
        assert!(header_names_other_files(b"RW 8 FLAT \"/etc/shadow\" 0", "vmdk").is_some());
    }

    #[test]
    fn images_reading_other_files_are_named() {
        let own = serde_json::json!({
            "filename": "a.vmdk", "format": "vmdk",
            "children": [{"name": "file", "info": {"filename": "a.vmdk"}}],
            "format-specific": {"type": "vmdk", "data": {"extents": [{"filename": "a.vmdk"}]}}
        });
        assert_eq!(foreign_files(&own), None);
        let flat = serde_json::json!({
            "filename": "d.vmdk",
            "children": [{"name": "extents.0", "info": {"filename": "/etc/shadow"}}, {"name": "file", "info": {}}],
            "format-specific": {"data": {"extents": [{"filename": "/etc/shadow", "format": "FLAT"}]}}
        });
        assert!(foreign_files(&flat).unwrap().contains("/etc/shadow"));
        let backed = serde_json::json!({"filename": "b.qcow2", "backing-filename": "/dev/sda"});
        assert!(foreign_files(&backed).unwrap().contains("backing file (/dev/sda)"));
        let data = serde_json::json!({"filename": "c.qcow2", "format-specific": {"data": {"data-file": "/x"}}});
        assert!(foreign_files(&data).unwrap().contains("external data file"));
        let child = serde_json::json!({"filename": "e", "children": [{"name": "backing", "info": {"filename": "/y"}}]});
        assert!(foreign_files(&child).unwrap().contains("backing: /y"));
    }

    #[test]
    fn hostile_gpt_numbers_are_errors_not_panics() {
        // Found by tests/fuzz/disk.rs. An entry array LBA whose byte
        // offset overflows u64.
        let mut d = gpt(&[(LINUX_DATA, 34, 100)]);
        d[512 + 72..512 + 80].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(find_root(&d, &mut |_, _| Ok(Vec::new())).unwrap_err().contains("past any disk"));
        // A read that comes back short.
        let d = gpt(&[(LINUX_DATA, 34, 100)]);
        assert!(find_root(&d, &mut |_, len| Ok(vec![0; len / 2])).unwrap_err().contains("cut short"));
        // A partition whose end in bytes overflows u64 is passed by.
        let d = gpt(&[(LINUX_DATA, 34, u64::MAX), (LINUX_DATA, 1 << 60, u64::MAX / 2), (LINUX_DATA, 40, 50)]);
        assert_eq!(pick(&d).unwrap(), Some(Part { offset: 40 * 512, size: 11 * 512 }));
    }

    #[test]
    fn mbr_picks_the_largest_linux_partition() {
        let mut d = vec![0u8; 34 * 512];
        d[510] = 0x55;
        d[511] = 0xaa;
        let entry = |d: &mut Vec<u8>, i: usize, kind: u8, start: u32, len: u32| {
            let o = 446 + i * 16;
            d[o + 4] = kind;
            d[o + 8..o + 12].copy_from_slice(&start.to_le_bytes());
            d[o + 12..o + 16].copy_from_slice(&len.to_le_bytes());
        };
        entry(&mut d, 0, 0x0c, 2048, 1000);
        entry(&mut d, 1, 0x83, 4096, 100);
        entry(&mut d, 2, 0x83, 8192, 9000);
        assert_eq!(pick(&d).unwrap(), Some(Part { offset: 8192 * 512, size: 9000 * 512 }));
        // Empty partitions and ones over the MBR are passed by.
        entry(&mut d, 2, 0x83, 8192, 0);
        entry(&mut d, 3, 0x83, 0, 90000);
        assert_eq!(pick(&d).unwrap(), Some(Part { offset: 4096 * 512, size: 100 * 512 }));
        assert_eq!(pick(&vec![0u8; 34 * 512]).unwrap(), None);
    }
}
