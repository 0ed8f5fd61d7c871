//! The reading half of `berth cp`: a tree (or one file, link or FIFO)
//! written as a tar stream for [`super::place`] to recreate.
//!
//! The walk never follows a symlink below the named path: each entry is
//! looked at with `statat(AT_SYMLINK_NOFOLLOW)` and opened relative to its
//! directory's descriptor with `O_NOFOLLOW`, so a tree that changes under
//! the walk (a running machine's) can swap a name for a link but not lead
//! the walk out of itself. Files are opened `O_NONBLOCK` and checked to
//! still be regular files; FIFOs are recreated, never opened. Device
//! nodes and sockets are left out with a warning: a device node copied
//! with its owner would hand that owner the device.

use super::{open_parent, split_last, Where};
use crate::RuntimeError;
use rustix::fd::{AsFd, BorrowedFd};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Directories deeper than this below the copied path are refused: each
/// level holds a descriptor and a stack frame.
pub const MAX_DEPTH: usize = 256;

/// The first component of every entry name in the stream; [`super::place`]
/// gives it the destination's name.
pub const TOP: &str = "t";

/// Writes `path` (resolved from `root` as `at` says; its last component is
/// not followed) to `out` as a tar stream. Returns the stream's writer.
pub fn pack<W: Write>(root: BorrowedFd<'_>, path: &Path, at: Where, out: W) -> Result<W, RuntimeError> {
    let (parent, name) = split_last(path, at)?;
    let dir = open_parent(root, &parent, at)?;
    let mut b = tar::Builder::new(out);
    b.mode(tar::HeaderMode::Complete);
    let mut w = Walk { b, depth: 0 };
    let st = rfs::statat(&dir, &name, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| match e {
        rustix::io::Errno::NOENT => RuntimeError::Invalid(format!("{} does not exist", path.display())),
        e => RuntimeError::sys(format!("reading {}", path.display()), e),
    })?;
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory | FileType::RegularFile | FileType::Symlink | FileType::Fifo => {}
        _ => {
            return Err(RuntimeError::Invalid(format!(
                "{} is a device node or socket: berth cp copies files, directories, links and FIFOs",
                path.display()
            )))
        }
    }
    w.entry(dir.as_fd(), &name, &st, PathBuf::from(TOP), path)?;
    w.b.into_inner().map_err(|e| RuntimeError::sys("writing the copy stream", e))
}

struct Walk<W: Write> {
    b: tar::Builder<W>,
    depth: usize,
}

impl<W: Write> Walk<W> {
    /// Adds `name` in `dir` (stat `st`) as `entry`; `shown` names it in
    /// messages.
    fn entry(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        st: &rfs::Stat,
        entry: PathBuf,
        shown: &Path,
    ) -> Result<(), RuntimeError> {
        let fail = |e: io::Error| RuntimeError::sys(format!("copying {}", shown.display()), e);
        let mut h = tar::Header::new_gnu();
        h.set_mode(st.st_mode & 0o7777);
        h.set_uid(st.st_uid.into());
        h.set_gid(st.st_gid.into());
        h.set_mtime(st.st_mtime.max(0) as u64);
        h.set_size(0);
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                if self.depth >= MAX_DEPTH {
                    return Err(RuntimeError::Invalid(format!(
                        "{} is more than {MAX_DEPTH} directories deep: not copied",
                        shown.display()
                    )));
                }
                let fd = match rfs::openat(
                    dir,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                ) {
                    Ok(fd) => fd,
                    // Gone (or replaced) since it was listed: a live tree.
                    Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR) if self.depth > 0 => return Ok(()),
                    Err(e) => return Err(fail(e.into())),
                };
                h.set_entry_type(tar::EntryType::Directory);
                self.b.append_data(&mut h, &entry, io::empty()).map_err(fail)?;
                let mut names: Vec<Vec<u8>> = Vec::new();
                for e in rfs::Dir::read_from(&fd).map_err(|e| fail(e.into()))? {
                    let e = e.map_err(|e| fail(e.into()))?;
                    let n = e.file_name().to_bytes();
                    if n != b"." && n != b".." {
                        names.push(n.to_vec());
                    }
                }
                names.sort();
                self.depth += 1;
                for n in names {
                    let n = OsStr::from_bytes(&n);
                    let shown = shown.join(n);
                    match rfs::statat(&fd, n, AtFlags::SYMLINK_NOFOLLOW) {
                        Ok(st) => self.entry(fd.as_fd(), n, &st, entry.join(n), &shown)?,
                        // Gone since the listing (a running machine changes).
                        Err(rustix::io::Errno::NOENT) => {}
                        Err(e) => return Err(RuntimeError::sys(format!("reading {}", shown.display()), e)),
                    }
                }
                self.depth -= 1;
            }
            FileType::RegularFile => {
                let f = match rfs::openat(
                    dir,
                    name,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
                    Mode::empty(),
                ) {
                    Ok(f) => f,
                    Err(rustix::io::Errno::NOENT) if self.depth > 0 => return Ok(()),
                    Err(e) => return Err(fail(e.into())),
                };
                let now = rfs::fstat(&f).map_err(|e| fail(e.into()))?;
                if FileType::from_raw_mode(now.st_mode) != FileType::RegularFile {
                    return Err(RuntimeError::Invalid(format!(
                        "{} changed while being copied: try again",
                        shown.display()
                    )));
                }
                let size = now.st_size.max(0) as u64;
                h.set_size(size);
                h.set_entry_type(tar::EntryType::Regular);
                self.b.append_data(&mut h, &entry, Exact::new(std::fs::File::from(f), size)).map_err(fail)?;
            }
            FileType::Symlink => {
                let target = rfs::readlinkat(dir, name, Vec::new()).map_err(|e| fail(e.into()))?;
                h.set_entry_type(tar::EntryType::Symlink);
                append_symlink(&mut self.b, &mut h, &entry, target.as_bytes()).map_err(fail)?;
            }
            FileType::Fifo => {
                h.set_entry_type(tar::EntryType::Fifo);
                self.b.append_data(&mut h, &entry, io::empty()).map_err(fail)?;
            }
            _ => eprintln!(
                "berth: {} is a device node or socket: not copied",
                shown.display().to_string().escape_debug()
            ),
        }
        Ok(())
    }
}

/// A symlink entry whose target is kept byte for byte (tar's
/// `append_link` normalizes it: `/` becomes `//`, `a/` loses its slash).
/// A target longer than the header's field goes first in a GNU long-link
/// entry, as GNU tar writes it.
fn append_symlink<W: Write>(
    b: &mut tar::Builder<W>,
    h: &mut tar::Header,
    entry: &Path,
    target: &[u8],
) -> io::Result<()> {
    let field = &mut h.as_old_mut().linkname;
    if target.len() <= field.len() {
        field[..target.len()].copy_from_slice(target);
    } else {
        let mut long = tar::Header::new_gnu();
        if let Some(g) = long.as_gnu_mut() {
            g.name[..13].copy_from_slice(b"././@LongLink");
        }
        long.set_mode(0o644);
        long.set_entry_type(tar::EntryType::GNULongLink);
        long.set_size(target.len() as u64 + 1);
        long.set_cksum();
        b.append(&long, target.chain(&[0u8][..]))?;
        let n = field.len();
        field.copy_from_slice(&target[..n]);
    }
    b.append_data(h, entry, io::empty())
}

/// Exactly `size` bytes of a file whose length may change while it is
/// read: cut at `size`, or padded with zeros up to it (the tar header
/// was written first).
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Exact<R> {
    fn new(inner: R, size: u64) -> Self {
        Exact { inner, left: size }
    }
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = match self.inner.read(&mut buf[..want])? {
            0 => {
                buf[..want].fill(0);
                want
            }
            n => n,
        };
        self.left -= n as u64;
        Ok(n)
    }
}
