//! The writing half of `berth cp`: a tar stream from [`super::pack`]
//! recreated under a destination, as `cp -a` would (into a directory that
//! exists, else under the destination's name).
//!
//! The stream is not trusted: it may come from a machine. Every entry
//! name must be the stream's top name followed by plain components (no
//! `..`, no absolute path); every directory on the way is opened with
//! `O_NOFOLLOW` relative to its parent's descriptor, so neither the
//! stream nor a link already in the destination can lead a write
//! elsewhere. Files, links and FIFOs are made under a temporary name and
//! renamed over the old entry: nothing is ever written through an
//! existing inode (a link, a hard link to something else, a running
//! binary). Hard link and device entries are refused.

use super::pack::TOP;
use super::{open_dir, open_parent, split_last, Where};
use crate::RuntimeError;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;
use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// What a copy may keep of what it recreates.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// The destination is a machine: owners outside its 65536 IDs become
    /// its root (they would show as nobody inside).
    pub into_machine: bool,
    /// The source is a machine: setuid and setgid bits are dropped.
    pub from_machine: bool,
    /// Owners come from the stream; else what is made is the caller's.
    pub keep_owners: bool,
}

/// A directory whose owner, mode and time are set once its contents are in.
struct Pending {
    rel: Vec<OsString>,
    owner: Option<(u32, u32)>,
    mode: u32,
    mtime: i64,
}

/// Recreates the stream `input` at `dst` (resolved from `root` as `at`
/// says). `src_name` is the source's last name: the top entry's name when
/// `dst` is an existing directory. Returns the number of entries made.
pub fn place<R: Read>(
    input: R,
    root: BorrowedFd<'_>,
    dst: &Path,
    at: Where,
    src_name: &OsStr,
    policy: Policy,
) -> Result<u64, RuntimeError> {
    let wants_dir = dst.as_os_str().as_encoded_bytes().ends_with(b"/");
    let (base, top) = match open_dir(root, dst, at) {
        Ok(fd) => (fd, src_name.to_os_string()),
        Err(Errno::NOENT | Errno::NOTDIR) if wants_dir => {
            return Err(RuntimeError::Invalid(format!("directory {} does not exist", dst.display())))
        }
        Err(Errno::NOENT | Errno::NOTDIR) => {
            let (parent, name) = split_last(dst, at)?;
            (open_parent(root, &parent, at)?, name)
        }
        Err(e) => return Err(RuntimeError::sys(format!("opening {}", dst.display()), e)),
    };
    let mut p = Placer {
        base,
        top,
        dst: dst.to_path_buf(),
        policy,
        pending: Vec::new(),
        made: 0,
        last_dir: std::cell::RefCell::new(None),
    };
    let mut ar = tar::Archive::new(input);
    let bad = |e: std::io::Error| RuntimeError::sys("reading the copy stream", e);
    for e in ar.entries().map_err(bad)? {
        let mut e = e.map_err(bad)?;
        let rel = entry_components(&e.path().map_err(bad)?)?;
        p.entry(&mut e, rel)?;
    }
    p.finish()?;
    Ok(p.made)
}

/// The components of an entry name below the stream's top name.
fn entry_components(path: &Path) -> Result<Vec<OsString>, RuntimeError> {
    let mut it = path.components();
    if it.next() != Some(Component::Normal(OsStr::new(TOP))) {
        return Err(RuntimeError::Invalid(format!("the copy stream names {}: refused", path.display())));
    }
    it.map(|c| match c {
        Component::Normal(n) => Ok(n.to_os_string()),
        _ => Err(RuntimeError::Invalid(format!("the copy stream names {}: refused", path.display()))),
    })
    .collect()
}

struct Placer {
    base: OwnedFd,
    top: OsString,
    dst: PathBuf,
    policy: Policy,
    pending: Vec<Pending>,
    made: u64,
    /// The directory the last entry went into: a stream lists a
    /// directory's entries together, so most lookups are this one.
    last_dir: std::cell::RefCell<Option<(Vec<OsString>, OwnedFd)>>,
}

impl Placer {
    fn shown(&self, rel: &[OsString]) -> PathBuf {
        let mut p = self.dst.clone();
        if p.file_name() != Some(self.top.as_os_str()) {
            p.push(&self.top);
        }
        p.extend(rel);
        p
    }

    /// The directory holding `rel`'s last component (the top's parent for
    /// the top itself), opened without following links, and that name.
    fn parent_of(&self, rel: &[OsString]) -> Result<(OwnedFd, OsString), RuntimeError> {
        let dup = |fd: &OwnedFd| rustix::io::fcntl_dupfd_cloexec(fd, 0).map_err(|e| RuntimeError::sys("dup", e));
        let Some((last, dirs)) = rel.split_last() else { return Ok((dup(&self.base)?, self.top.clone())) };
        if let Some((key, fd)) = self.last_dir.borrow().as_ref() {
            if key.as_slice() == dirs {
                return Ok((dup(fd)?, last.clone()));
            }
        }
        let mut cur = dup(&self.base)?;
        for (i, name) in std::iter::once(&self.top).chain(dirs).enumerate() {
            cur = rfs::openat(
                &cur,
                name.as_os_str(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| {
                let at = self.shown(&rel[..i.min(dirs.len())]);
                match e {
                    Errno::LOOP | Errno::NOTDIR => RuntimeError::Invalid(format!(
                        "{} in the destination is not a directory (links there are not followed)",
                        at.display()
                    )),
                    e => RuntimeError::sys(format!("opening {}", at.display()), e),
                }
            })?;
        }
        *self.last_dir.borrow_mut() = Some((dirs.to_vec(), dup(&cur)?));
        Ok((cur, last.clone()))
    }

    /// The owner to give an entry (`None`: the caller's, as made) and
    /// its mode: a setuid or setgid bit goes when its owner is not the
    /// stream's (clamped into the machine's range, or not kept).
    fn ids_and_mode(&self, h: &tar::Header) -> (Option<(u32, u32)>, u32) {
        let mut mode = h.mode().unwrap_or(0o644) & 0o7777;
        if self.policy.from_machine {
            mode &= !0o6000;
        }
        if !self.policy.keep_owners {
            return (None, mode & !0o6000);
        }
        let clamp = |id: u64, bit: u32, mode: &mut u32| match u32::try_from(id) {
            Ok(id) if !self.policy.into_machine || id < 65536 => id,
            _ => {
                *mode &= !bit;
                0
            }
        };
        let uid = clamp(h.uid().unwrap_or(0), 0o4000, &mut mode);
        let gid = clamp(h.gid().unwrap_or(0), 0o2000, &mut mode);
        (Some((uid, gid)), mode)
    }

    fn entry<R: Read>(&mut self, e: &mut tar::Entry<'_, R>, rel: Vec<OsString>) -> Result<(), RuntimeError> {
        let shown = self.shown(&rel);
        let (dir, name) = self.parent_of(&rel)?;
        let h = e.header().clone();
        let (owner, mode) = self.ids_and_mode(&h);
        let mtime = h.mtime().unwrap_or(0) as i64;
        let fail = |what: &str, e: Errno| RuntimeError::sys(format!("{what} {}", shown.display()), e);
        self.made += 1;
        match h.entry_type() {
            tar::EntryType::Directory => {
                match rfs::mkdirat(&dir, name.as_os_str(), Mode::from_raw_mode(0o700)) {
                    Ok(()) => {}
                    Err(Errno::EXIST) => {
                        let st = rfs::statat(&dir, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)
                            .map_err(|e| fail("reading", e))?;
                        if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
                            return Err(RuntimeError::Invalid(format!(
                                "cannot overwrite {}, which is not a directory, with a directory",
                                shown.display()
                            )));
                        }
                    }
                    Err(e) => return Err(fail("creating", e)),
                }
                self.pending.push(Pending { rel, owner, mode, mtime });
                Ok(())
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let create = |n: &OsStr| {
                    rfs::openat(
                        &dir,
                        n,
                        OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::from_raw_mode(0o600),
                    )
                };
                // A new name is made in place; an existing one is replaced
                // by a rename, never written through.
                let (f, tmp) = match create(&name) {
                    Ok(f) => (f, None),
                    Err(Errno::EXIST) => {
                        let tmp = temp_name();
                        (create(&tmp).map_err(|e| fail("creating", e))?, Some(tmp))
                    }
                    Err(e) => return Err(fail("creating", e)),
                };
                let made = tmp.as_deref().unwrap_or(&name).to_os_string();
                let mut file = std::fs::File::from(f);
                let done = write_sparse(e, &mut file)
                    .map_err(|e| RuntimeError::sys(format!("writing {}", shown.display()), e))
                    .and_then(|_| set_attrs(file.as_fd(), owner, mode, mtime).map_err(|e| fail("setting up", e)))
                    .and_then(|()| match &tmp {
                        Some(t) => self.rename_into(&dir, t, &name, &shown),
                        None => Ok(()),
                    });
                if done.is_err() {
                    let _ = rfs::unlinkat(&dir, &made, AtFlags::empty());
                }
                done
            }
            tar::EntryType::Symlink => {
                let target = e
                    .link_name()
                    .map_err(|e| RuntimeError::sys("reading the copy stream", e))?
                    .ok_or_else(|| RuntimeError::Invalid(format!("link {} has no target", shown.display())))?
                    .into_owned();
                let tmp = temp_name();
                rfs::symlinkat(target.as_os_str(), &dir, tmp.as_os_str()).map_err(|e| fail("creating", e))?;
                let done = link_attrs(&dir, &tmp, owner, mtime)
                    .map_err(|e| fail("setting up", e))
                    .and_then(|()| self.rename_into(&dir, &tmp, &name, &shown));
                if done.is_err() {
                    let _ = rfs::unlinkat(&dir, tmp.as_os_str(), AtFlags::empty());
                }
                done
            }
            tar::EntryType::Fifo => {
                let tmp = temp_name();
                rfs::mknodat(&dir, tmp.as_os_str(), FileType::Fifo, Mode::from_raw_mode(0o600), 0)
                    .map_err(|e| fail("creating", e))?;
                // Mode before owner would let chown clear nothing; owner
                // first, then mode, then times, as for files.
                let done = link_attrs(&dir, &tmp, owner, mtime)
                    .and_then(|()| rfs::chmodat(&dir, tmp.as_os_str(), Mode::from_raw_mode(mode), AtFlags::empty()))
                    .map_err(|e| fail("setting up", e))
                    .and_then(|()| self.rename_into(&dir, &tmp, &name, &shown));
                if done.is_err() {
                    let _ = rfs::unlinkat(&dir, tmp.as_os_str(), AtFlags::empty());
                }
                done
            }
            other => Err(RuntimeError::Invalid(format!(
                "{} is a {other:?} entry, which berth cp does not copy",
                shown.display()
            ))),
        }
    }

    /// Renames `tmp` over `name` in `dir`; a directory there is not replaced.
    fn rename_into(&self, dir: &OwnedFd, tmp: &OsStr, name: &OsStr, shown: &Path) -> Result<(), RuntimeError> {
        if let Ok(st) = rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                return Err(RuntimeError::Invalid(format!(
                    "cannot overwrite directory {} with a file",
                    shown.display()
                )));
            }
        }
        rfs::renameat(dir, tmp, dir, name).map_err(|e| match e {
            Errno::ISDIR | Errno::NOTEMPTY | Errno::EXIST => {
                RuntimeError::Invalid(format!("cannot overwrite directory {} with a file", shown.display()))
            }
            e => RuntimeError::sys(format!("creating {}", shown.display()), e),
        })
    }

    /// Owners, modes and times of the directories, deepest first (their
    /// times after their contents are in).
    fn finish(&mut self) -> Result<(), RuntimeError> {
        let pending = std::mem::take(&mut self.pending);
        for d in pending.iter().rev() {
            let shown = self.shown(&d.rel);
            let (dir, name) = self.parent_of(&d.rel)?;
            let fd = rfs::openat(
                &dir,
                name.as_os_str(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .and_then(|fd| set_attrs(fd.as_fd(), d.owner, d.mode, d.mtime))
            .map_err(|e| RuntimeError::sys(format!("setting up {}", shown.display()), e));
            fd?;
        }
        Ok(())
    }
}

/// A name for an entry being made, unique in this process.
fn temp_name() -> OsString {
    static N: AtomicU64 = AtomicU64::new(0);
    OsString::from(format!(".berth-cp-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)))
}

/// chown, where an owner the user namespace cannot map leaves the file
/// to the namespace's root (its creator): `Ok(false)` then.
fn chown_or_keep(f: impl FnOnce() -> rustix::io::Result<()>) -> rustix::io::Result<bool> {
    match f() {
        Err(Errno::INVAL) => Ok(false),
        r => r.map(|()| true),
    }
}

/// Owner, then mode (chown clears setuid bits; they stay cleared when
/// the owner could not be given), then times.
fn set_attrs(fd: BorrowedFd<'_>, owner: Option<(u32, u32)>, mode: u32, mtime: i64) -> rustix::io::Result<()> {
    let mut mode = mode;
    if let Some((uid, gid)) = owner {
        let given = chown_or_keep(|| rfs::fchown(fd, Some(rfs::Uid::from_raw(uid)), Some(rfs::Gid::from_raw(gid))))?;
        if !given {
            mode &= !0o6000;
        }
    }
    rfs::fchmod(fd, Mode::from_raw_mode(mode))?;
    let t = Timespec { tv_sec: mtime, tv_nsec: 0 };
    rfs::futimens(fd, &Timestamps { last_access: t, last_modification: t })
}

fn link_attrs(dir: &OwnedFd, name: &OsStr, owner: Option<(u32, u32)>, mtime: i64) -> rustix::io::Result<()> {
    if let Some((uid, gid)) = owner {
        chown_or_keep(|| {
            let (u, g) = (Some(rfs::Uid::from_raw(uid)), Some(rfs::Gid::from_raw(gid)));
            rfs::chownat(dir, name, u, g, AtFlags::SYMLINK_NOFOLLOW)
        })?;
    }
    let t = Timespec { tv_sec: mtime, tv_nsec: 0 };
    rfs::utimensat(dir, name, &Timestamps { last_access: t, last_modification: t }, AtFlags::SYMLINK_NOFOLLOW)
}

/// Copies `r` into `f`, leaving holes where whole blocks are zeros: a
/// sparse file (a machine's 8 EiB `truncate`) does not fill the disk.
fn write_sparse(r: &mut impl Read, f: &mut std::fs::File) -> std::io::Result<u64> {
    use std::io::{Seek, SeekFrom, Write};
    let mut buf = vec![0u8; 64 << 10];
    let mut total = 0u64;
    let mut hole_at_end = false;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hole_at_end = buf[..n].iter().all(|&b| b == 0);
        if hole_at_end {
            f.seek(SeekFrom::Current(n as i64))?;
        } else {
            f.write_all(&buf[..n])?;
        }
        total += n as u64;
    }
    if hole_at_end {
        f.set_len(total)?;
    }
    Ok(total)
}
