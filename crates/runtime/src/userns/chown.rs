//! `--private-users-ownership=chown`: a tree used in place gets its owners
//! shifted on disk into the container's range, for filesystems that cannot
//! be idmapped (systemd-nspawn's `chown`). The shift in force is read from
//! the owner of the tree's top directory, as nspawn does: a tree whose top
//! is owned by the range's first ID is already shifted and costs nothing.
//!
//! chown(2) clears setuid/setgid bits and file capabilities; both are put
//! back, the capabilities as a v3 `security.capability` naming the range's
//! root, so they hold for container root and for no one else. POSIX ACL
//! entries naming users or groups are shifted too. Written by hand: no
//! crate shifts a tree's ownership.

use super::range::SIZE;
use crate::RuntimeError;
use rustix::fd::OwnedFd;
use rustix::fs::{self as rfs, AtFlags, Mode, OFlags};
use rustix::io::Errno;
use std::path::Path;

const CAPS: &str = "security.capability";
const ACLS: [&str; 2] = ["system.posix_acl_access", "system.posix_acl_default"];

/// Where a shift in progress is recorded on the tree's top directory
/// (`OLD NEW`): the top is shifted last, so a walk that was cut short is
/// finished by the next one, which moves IDs of both ranges.
const PENDING: &str = "trusted.berth.idshift";

/// Shifts `tree`'s owners so that its IDs start at `base`. Returns
/// whether anything changed.
pub fn shift_tree(tree: &Path, base: u32) -> Result<bool, RuntimeError> {
    let e = |what: &str| {
        let what = format!("{what} {}", tree.display());
        move |err: Errno| RuntimeError::sys(what, err)
    };
    let top =
        rfs::open(tree, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).map_err(e("opening"))?;
    let st = rfs::fstat(&top).map_err(e("reading"))?;
    let old = st.st_uid - st.st_uid % SIZE;
    let proc = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&top));
    let pending = get(&proc, PENDING)
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|v| v.split_whitespace().nth(1).and_then(|n| n.parse::<u32>().ok()));
    if old == base && st.st_gid - st.st_gid % SIZE == base && pending.is_none() {
        return Ok(false);
    }
    let shift = Shift { old, also: pending.filter(|p| *p != base), new: base };
    rfs::setxattr(proc.as_str(), PENDING, format!("{old} {base}").as_bytes(), rfs::XattrFlags::empty())
        .map_err(e("marking"))?;
    walk(&top, st.st_dev, &shift)
        .map_err(|err| RuntimeError::sys(format!("shifting the owners of {}", tree.display()), err))?;
    fix(&top, None, &shift).map_err(e("shifting the owner of"))?;
    rfs::removexattr(proc.as_str(), PENDING).map_err(e("unmarking"))?;
    Ok(true)
}

struct Shift {
    old: u32,
    /// The target of a shift that was cut short, moved too.
    also: Option<u32>,
    new: u32,
}

impl Shift {
    /// An ID of the old range (or of `also`) moved to the new one; others stay.
    fn id(&self, id: u32) -> u32 {
        for from in std::iter::once(self.old).chain(self.also) {
            if id >= from && id - from < SIZE {
                return id - from + self.new;
            }
        }
        id
    }
}

/// Shifts what is below `dir`, one directory handle per level (names are
/// read and the listing closed before going down).
fn walk(dir: &OwnedFd, dev: u64, shift: &Shift) -> Result<(), Errno> {
    let mut subdirs = Vec::new();
    {
        let mut entries = rfs::Dir::read_from(dir)?;
        for ent in entries.by_ref() {
            let ent = ent?;
            let name = ent.file_name();
            if name == c"." || name == c".." {
                continue;
            }
            if let Some(st) = fix(dir, Some(name), shift)? {
                if st.st_dev == dev && rfs::FileType::from_raw_mode(st.st_mode) == rfs::FileType::Directory {
                    subdirs.push(name.to_owned());
                }
            }
        }
    }
    for name in subdirs {
        let sub = rfs::openat(
            dir,
            name.as_c_str(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        if rfs::fstat(&sub)?.st_dev == dev {
            walk(&sub, dev, shift)?;
        }
    }
    Ok(())
}

/// Shifts one node (`name` in `dir`, or `dir` itself), keeping its mode
/// bits, file capabilities and ACLs. Everything is read from and done to
/// the inode opened (O_PATH, not following a symlink), so a rename in the
/// tree meanwhile cannot redirect it. Returns its stat (before), `None`
/// for a node on another filesystem (left alone).
fn fix(dir: &OwnedFd, name: Option<&std::ffi::CStr>, shift: &Shift) -> Result<Option<rfs::Stat>, Errno> {
    let fd = match name {
        Some(n) => match rfs::openat(dir, n, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None), // gone meanwhile
            Err(e) => return Err(e),
        },
        None => rustix::io::dup(dir)?,
    };
    let st = rfs::fstat(&fd)?;
    if name.is_some() && st.st_dev != rfs::fstat(dir)?.st_dev {
        return Ok(None);
    }
    let (uid, gid) = (shift.id(st.st_uid), shift.id(st.st_gid));
    if uid == st.st_uid && gid == st.st_gid {
        return Ok(Some(st));
    }
    let kind = rfs::FileType::from_raw_mode(st.st_mode);
    let owner = (Some(rfs::Uid::from_raw(uid)), Some(rfs::Gid::from_raw(gid)));
    if kind == rfs::FileType::Symlink {
        // An O_PATH handle on the link itself: chown it, not its target.
        rfs::chownat(&fd, c"", owner.0, owner.1, AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW)?;
        return Ok(Some(st));
    }
    let proc = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
    let caps = if kind == rfs::FileType::RegularFile { get(&proc, CAPS) } else { None };
    let acls: Vec<(&str, Vec<u8>)> = ACLS.iter().filter_map(|a| get(&proc, a).map(|v| (*a, v))).collect();
    rfs::chownat(&fd, c"", owner.0, owner.1, AtFlags::EMPTY_PATH)?;
    if st.st_mode & 0o6000 != 0 {
        rfs::chmod(proc.as_str(), Mode::from_raw_mode(st.st_mode & 0o7777))?;
    }
    if let Some(c) = caps.and_then(|c| caps_v3(&c, shift.new)) {
        rfs::setxattr(proc.as_str(), CAPS, &c, rfs::XattrFlags::empty())?;
    }
    for (name, v) in acls {
        rfs::setxattr(proc.as_str(), name, &shift_acl(&v, shift), rfs::XattrFlags::empty())?;
    }
    Ok(Some(st))
}

fn get(path: &str, name: &str) -> Option<Vec<u8>> {
    let size = rfs::getxattr(path, name, &mut [0u8; 0][..]).ok()?;
    let mut buf = vec![0u8; size];
    let n = rfs::getxattr(path, name, &mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}

/// A v2 or v3 `security.capability` value rewritten as v3 with root
/// `rootid` (vfs_ns_cap_data: magic, 2×(permitted, inheritable), rootid).
fn caps_v3(v: &[u8], rootid: u32) -> Option<Vec<u8>> {
    const V2: u32 = 0x0200_0000;
    const V3: u32 = 0x0300_0000;
    const MASK: u32 = 0xFF00_0000;
    if v.len() < 20 {
        return None;
    }
    let magic = u32::from_le_bytes(v[0..4].try_into().ok()?);
    if magic & MASK != V2 && magic & MASK != V3 {
        return None;
    }
    let mut out = Vec::with_capacity(24);
    out.extend_from_slice(&(V3 | (magic & !MASK)).to_le_bytes());
    out.extend_from_slice(&v[4..20]);
    out.extend_from_slice(&rootid.to_le_bytes());
    Some(out)
}

/// A POSIX ACL xattr (version, then tag u16, perm u16, id u32 entries)
/// with its user and group entries shifted.
fn shift_acl(v: &[u8], shift: &Shift) -> Vec<u8> {
    const USER: u16 = 0x02;
    const GROUP: u16 = 0x08;
    let mut out = v.to_vec();
    let mut i = 4;
    while i + 8 <= out.len() {
        let tag = u16::from_le_bytes([out[i], out[i + 1]]);
        if tag == USER || tag == GROUP {
            let id = u32::from_le_bytes([out[i + 4], out[i + 5], out[i + 6], out[i + 7]]);
            out[i + 4..i + 8].copy_from_slice(&shift.id(id).to_le_bytes());
        }
        i += 8;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_move_between_ranges() {
        let s = Shift { old: 0, also: None, new: 0x80000 };
        assert_eq!((s.id(0), s.id(65535), s.id(65536)), (0x80000, 0x8FFFF, 65536));
        let back = Shift { old: 0x80000, also: Some(0xA0000), new: 0x90000 };
        assert_eq!((back.id(0x80001), back.id(5), back.id(0xA0002)), (0x90001, 5, 0x90002));
    }

    #[test]
    fn capabilities_become_v3_with_the_ranges_root() {
        let mut v2 = 0x0200_0001u32.to_le_bytes().to_vec();
        v2.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let v3 = caps_v3(&v2, 0x80000).expect("v3");
        assert_eq!(v3.len(), 24);
        assert_eq!(u32::from_le_bytes(v3[0..4].try_into().unwrap()), 0x0300_0001);
        assert_eq!(u32::from_le_bytes(v3[20..24].try_into().unwrap()), 0x80000);
        assert!(caps_v3(&[0; 8], 1).is_none());
        let mut acl = 2u32.to_le_bytes().to_vec();
        for (tag, id) in [(1u16, u32::MAX), (2, 1000), (8, 5)] {
            acl.extend_from_slice(&tag.to_le_bytes());
            acl.extend_from_slice(&7u16.to_le_bytes());
            acl.extend_from_slice(&id.to_le_bytes());
        }
        let out = shift_acl(&acl, &Shift { old: 0, also: None, new: 0x80000 });
        let id = |i: usize| u32::from_le_bytes(out[4 + i * 8 + 4..4 + i * 8 + 8].try_into().unwrap());
        assert_eq!((id(0), id(1), id(2)), (u32::MAX, 0x80000 + 1000, 0x80000 + 5));
    }
}
