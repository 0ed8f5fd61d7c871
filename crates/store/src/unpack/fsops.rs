//! Directory-handle filesystem work inside a layer root. Every parent
//! directory is opened with `openat2(RESOLVE_IN_ROOT)`, so symlinks met on
//! the way (`/`, `/.`, `../..`, absolute host paths) resolve inside the root;
//! the final component is then created with `*at` calls that never follow
//! it. Written by hand because no crate offers create-inside-root with
//! ownership, devices and xattrs.

use super::path::{join, Components};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

const IN_ROOT: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);
const DIR_FLAGS: OFlags = OFlags::DIRECTORY.union(OFlags::RDONLY).union(OFlags::CLOEXEC);

/// A layer root plus a cache of opened parent directories.
pub struct Root {
    fd: OwnedFd,
    cache: HashMap<Components, OwnedFd>,
    /// Directories created implicitly (no entry of their own), to take
    /// their attributes from the layers below.
    pub implicit: Vec<Components>,
}

impl Root {
    pub fn open(path: &Path) -> io::Result<Root> {
        let fd = rfs::open(path, DIR_FLAGS | OFlags::NOFOLLOW, Mode::empty())?;
        Ok(Root { fd, cache: HashMap::new(), implicit: Vec::new() })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Forgets cached directory handles: after anything is removed, a
    /// cached handle may point at a directory no longer in the tree.
    pub fn invalidate(&mut self) {
        self.cache.clear();
    }

    /// Opens the directory `comps` (resolved inside the root), creating
    /// missing components with mode 0755.
    pub fn dir(&mut self, comps: &[OsString]) -> io::Result<BorrowedFd<'_>> {
        if comps.is_empty() {
            return Ok(self.fd.as_fd());
        }
        if !self.cache.contains_key(comps) {
            let fd = self.ensure_dir(comps)?;
            if self.cache.len() > 512 {
                self.cache.clear();
            }
            self.cache.insert(comps.to_vec(), fd);
        }
        Ok(self.cache[comps].as_fd())
    }

    fn ensure_dir(&mut self, comps: &[OsString]) -> io::Result<OwnedFd> {
        self.ensure_dir_depth(comps, 0)
    }

    fn ensure_dir_depth(&mut self, comps: &[OsString], depth: u32) -> io::Result<OwnedFd> {
        if depth > 40 {
            return Err(Errno::LOOP.into());
        }
        match crate::openat2::openat2(&self.fd, join(comps), DIR_FLAGS, Mode::empty(), IN_ROOT) {
            Ok(fd) => return Ok(fd),
            Err(Errno::NOENT) => {}
            Err(e) => return Err(e.into()),
        }
        let (parent, name) = comps.split_at(comps.len() - 1);
        let pfd =
            if parent.is_empty() { rustix::io::dup(&self.fd)? } else { self.ensure_dir_depth(parent, depth + 1)? };
        match rfs::mkdirat(&pfd, &name[0], Mode::from_raw_mode(0o755)) {
            Ok(()) => self.implicit.push(comps.to_vec()),
            Err(Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
        match crate::openat2::openat2(&pfd, &name[0], DIR_FLAGS | OFlags::NOFOLLOW, Mode::empty(), IN_ROOT) {
            Ok(fd) => Ok(fd),
            // (O_DIRECTORY|O_NOFOLLOW on a symlink gives ENOTDIR, or
            // ELOOP: the link is checked for below.)
            Err(e @ (Errno::LOOP | Errno::NOTDIR)) => {
                // A symlink to a directory that does not exist yet: create
                // its target inside the root (umoci does the same), then
                // go through the link.
                let Ok(target) = rfs::readlinkat(&pfd, &name[0], Vec::new()) else { return Err(e.into()) };
                let target = resolve_link(parent, target.as_bytes());
                self.ensure_dir_depth(&target, depth + 1)?;
                Ok(crate::openat2::openat2(&self.fd, join(comps), DIR_FLAGS, Mode::empty(), IN_ROOT)?)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Opens an existing path inside the root without following its final
    /// component (`O_PATH`), or `None` when it does not exist.
    pub fn lookup(&self, comps: &[OsString]) -> io::Result<Option<OwnedFd>> {
        match crate::openat2::openat2(
            &self.fd,
            join(comps),
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            IN_ROOT,
        ) {
            Ok(fd) => Ok(Some(fd)),
            Err(Errno::NOENT) | Err(Errno::NOTDIR) | Err(Errno::LOOP) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// Where a symlink in directory `parent` pointing at `target` leads,
/// resolved lexically inside the root (`..` stops at the root, as
/// RESOLVE_IN_ROOT does).
pub fn resolve_link(parent: &[OsString], target: &[u8]) -> Components {
    let mut out: Components = if target.starts_with(b"/") { Vec::new() } else { parent.to_vec() };
    for c in target.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            c => out.push(OsStr::from_bytes(c).to_os_string()),
        }
    }
    out
}

/// `lstat` of `name` in `dir`, or `None` when absent.
pub fn stat_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Option<rfs::Stat>> {
    match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub fn is_dir(st: &rfs::Stat) -> bool {
    rfs::FileType::from_raw_mode(st.st_mode) == rfs::FileType::Directory
}

/// Removes `name` in `dir`, recursively for a directory, never following
/// symlinks.
pub fn remove_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    match rfs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => return Ok(()),
        Err(Errno::ISDIR) | Err(Errno::PERM) => {}
        Err(e) => return Err(e.into()),
    }
    let sub = match rfs::openat(dir, name, DIR_FLAGS | OFlags::NOFOLLOW, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let mut names = Vec::new();
    for e in rfs::Dir::read_from(&sub)? {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(OsStr::from_bytes(n).to_os_string());
        }
    }
    for n in names {
        remove_at(sub.as_fd(), &n)?;
    }
    rfs::unlinkat(dir, name, AtFlags::REMOVEDIR).or_else(|e| if e == Errno::NOENT { Ok(()) } else { Err(e) })?;
    Ok(())
}

/// Sets an xattr on `name` in `dir` without following a final symlink:
/// through `/proc/self/fd/DIR/NAME`, since there is no `lsetxattrat`.
pub fn set_xattr_at(dir: BorrowedFd<'_>, name: &OsStr, key: &OsStr, value: &[u8]) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let mut p = OsString::from(format!("/proc/self/fd/{}/", dir.as_raw_fd()));
    p.push(name);
    rfs::lsetxattr(Path::new(&p), key, value, rfs::XattrFlags::empty())?;
    Ok(())
}

/// Reads every xattr of an `O_PATH` handle: the /proc magic link lands on
/// the file itself (a symlink too), so the following calls are right here.
pub fn xattrs_of(fd: BorrowedFd<'_>) -> io::Result<Vec<(OsString, Vec<u8>)>> {
    use std::os::fd::AsRawFd;
    let p = format!("/proc/self/fd/{}", fd.as_raw_fd());
    let mut names = vec![0u8; 4096];
    let n = match rfs::listxattr(p.as_str(), &mut names) {
        Ok(n) => n,
        Err(Errno::NOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for key in names[..n].split(|&b| b == 0).filter(|k| !k.is_empty()) {
        let key = OsStr::from_bytes(key);
        let mut val = vec![0u8; 65536];
        if let Ok(len) = rfs::getxattr(p.as_str(), key, &mut val) {
            val.truncate(len);
            out.push((key.to_os_string(), val));
        }
    }
    Ok(out)
}
