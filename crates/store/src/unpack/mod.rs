//! Layer unpacking: a tar stream into a layer directory in overlayfs form,
//! with the same result `umoci unpack` gives once layers are stacked.
//!
//! Whiteouts `.wh.NAME` become 0:0 character devices and `.wh..wh..opq`
//! sets `user.overlay.opaque=y`, so overlayfs (mounted with `userxattr`,
//! as every berth mount is, inside a user namespace or not) applies them
//! to the layers below only, as the OCI spec says. Hardlinks, symlinks (kept verbatim),
//! devices, fifos, modes with setuid/setgid/sticky, owners, mtimes and
//! xattrs are kept. Every write goes through [`fsops::Root`], which keeps
//! it inside the layer's root.

pub mod bound;
pub mod fsops;
pub mod path;

use crate::StoreError;
use fsops::{is_dir, remove_at, set_xattr_at, stat_at, Root};
use path::{clean, split, Components};
use rustix::fd::{AsFd, BorrowedFd};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Seek, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";
/// Overlayfs' opaque-directory marker in `userxattr` mode, the only one
/// overlayfs reads inside a user namespace. Changing it breaks every stored
/// layer (stores from before are converted: see [`crate::format`]).
pub const OPAQUE_XATTR: &str = "user.overlay.opaque";
/// The marker of layers unpacked before, for overlayfs' `trusted` mode.
pub const LEGACY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Whether `name` is overlayfs' own metadata (either mode), which an image
/// must never forge and an export must never carry.
pub fn is_overlay_xattr(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.")
}

/// What to unpack and how.
#[derive(Debug, Clone, Default)]
pub struct UnpackOptions {
    /// The layer's digest, for error messages.
    pub layer: String,
    /// Whether layers lie below this one (whiteouts only matter then).
    pub has_lowers: bool,
    /// Refuse layers whose entries add up to more than this many bytes.
    pub max_bytes: u64,
}

/// What an unpack wrote.
#[derive(Debug, Default, Clone, Copy)]
pub struct UnpackStats {
    pub entries: u64,
    pub bytes: u64,
}

/// Yields the unpacked layers below, nearest first, once they are complete;
/// implicit parent directories and hardlink targets are looked up there.
pub type Lowers<'a> = &'a (dyn Fn() -> io::Result<Vec<PathBuf>> + Sync);

struct Unpacker<'a> {
    root: Root,
    opts: &'a UnpackOptions,
    lowers_fn: Lowers<'a>,
    lowers: Option<Vec<Root>>,
    dir_times: Vec<(Components, i64, u32)>,
    buf: Vec<u8>,
}

/// Unpacks the tar stream `reader` into the empty directory `dest`.
pub fn unpack_layer<R: Read>(
    reader: R,
    dest: &Path,
    opts: &UnpackOptions,
    lowers: Lowers<'_>,
) -> Result<UnpackStats, StoreError> {
    let io_err =
        |what: &str, e: io::Error| StoreError::Layer { layer: opts.layer.clone(), what: format!("{what}: {e}") };
    let root = Root::open(dest).map_err(|e| io_err("opening the layer directory", e))?;
    let mut u =
        Unpacker { root, opts, lowers_fn: lowers, lowers: None, dir_times: Vec::new(), buf: vec![0u8; 256 << 10] };
    let mut stats = UnpackStats::default();
    let mut archive = tar::Archive::new(bound::Bounded::new(reader, bound::EXTENSION_LIMIT));
    let entries = archive.entries().map_err(|e| io_err("reading the tar stream", e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| io_err("reading the tar stream", e))?;
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw).into_owned();
        stats.entries += 1;
        // Saturating: a GNU sparse entry's size is the file it expands to,
        // any u64 the archive names, not the bytes it carries; two such
        // sizes overflowed (wrapping round the bound in a release build).
        stats.bytes = stats.bytes.saturating_add(entry.size());
        if stats.bytes > opts.max_bytes {
            return Err(StoreError::TooLarge { layer: opts.layer.clone(), limit: opts.max_bytes });
        }
        u.entry(&mut entry, &raw).map_err(|e| match e {
            EntryError::Unsafe(why) => StoreError::Unsafe { layer: opts.layer.clone(), entry: name.clone(), why },
            EntryError::Io(e) => StoreError::Layer { layer: opts.layer.clone(), what: format!("entry {name:?}: {e}") },
        })?;
    }
    u.finish().map_err(|e| io_err("setting directory times", e))?;
    Ok(stats)
}

enum EntryError {
    Unsafe(String),
    Io(io::Error),
}

impl From<io::Error> for EntryError {
    fn from(e: io::Error) -> Self {
        EntryError::Io(e)
    }
}

impl From<rustix::io::Errno> for EntryError {
    fn from(e: rustix::io::Errno) -> Self {
        EntryError::Io(e.into())
    }
}

/// Metadata of a tar entry, with PAX overrides applied.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    mtime_nsec: u32,
    xattrs: Vec<(OsString, Vec<u8>)>,
}

fn meta<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Meta> {
    let h = entry.header();
    let mut m = Meta {
        mode: h.mode()? & 0o7777,
        uid: h.uid()? as u32,
        gid: h.gid()? as u32,
        mtime: h.mtime()? as i64,
        mtime_nsec: 0,
        xattrs: Vec::new(),
    };
    if let Some(pax) = entry.pax_extensions()? {
        for ext in pax {
            let ext = ext?;
            let key = ext.key_bytes();
            let val = ext.value_bytes();
            let num = || std::str::from_utf8(val).ok().and_then(|s| s.parse::<u64>().ok());
            match key {
                b"uid" => m.uid = num().map(|v| v as u32).unwrap_or(m.uid),
                b"gid" => m.gid = num().map(|v| v as u32).unwrap_or(m.gid),
                b"mtime" => {
                    if let Ok(s) = std::str::from_utf8(val) {
                        let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
                        if let Ok(v) = secs.parse::<i64>() {
                            m.mtime = v;
                            let digits: String = frac.chars().take(9).collect();
                            m.mtime_nsec = format!("{digits:0<9}").parse().unwrap_or(0);
                        }
                    }
                }
                k if k.starts_with(b"SCHILY.xattr.") => {
                    let name = &k[b"SCHILY.xattr.".len()..];
                    // A layer must not forge overlayfs' own metadata.
                    if !is_overlay_xattr(name) {
                        m.xattrs.push((OsStr::from_bytes(name).to_os_string(), val.to_vec()));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(m)
}

impl Unpacker<'_> {
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>, raw: &[u8]) -> Result<(), EntryError> {
        let comps = clean(raw).map_err(|w| EntryError::Unsafe(w.to_string()))?;
        let kind = entry.header().entry_type();
        let Some((parent, name)) = split(&comps) else {
            // The root itself ("./"): only a directory makes sense.
            if !kind.is_dir() {
                return Err(EntryError::Unsafe("the layer's root must be a directory".into()));
            }
            let m = meta(entry)?;
            return self.apply_dir_meta(&[], &m);
        };
        let base = name.as_bytes();
        if base == OPAQUE {
            let fd = self.root.dir(parent)?;
            rfs::fsetxattr(fd, OPAQUE_XATTR, b"y", rfs::XattrFlags::empty())?;
            return Ok(());
        }
        if let Some(target) = base.strip_prefix(WHITEOUT_PREFIX) {
            if target.is_empty() {
                // Names nothing to remove: a broken or hostile layer, which
                // umoci refuses too.
                return Err(EntryError::Unsafe("an empty whiteout `.wh.` names nothing to remove".into()));
            }
            if target.starts_with(WHITEOUT_PREFIX) {
                return Ok(()); // aufs metadata (.wh..wh.plnk and friends)
            }
            let target = OsStr::from_bytes(target).to_os_string();
            if target == "." || target == ".." {
                return Err(EntryError::Unsafe("a whiteout may not name '.' or '..'".into()));
            }
            return self.whiteout(parent, &target);
        }

        let m = meta(entry)?;
        use tar::EntryType as T;
        match kind {
            T::Directory => {
                let pfd = self.root.dir(parent)?;
                match stat_at(pfd, name)? {
                    Some(st) if is_dir(&st) => {}
                    Some(_) => {
                        remove_at(pfd, name)?;
                        self.root.invalidate();
                        rfs::mkdirat(self.root.dir(parent)?, name, Mode::from_raw_mode(0o700))?;
                    }
                    None => rfs::mkdirat(pfd, name, Mode::from_raw_mode(0o700))?,
                }
                self.apply_dir_meta(&comps, &m)
            }
            T::Regular | T::Continuous | T::GNUSparse => {
                self.replace(parent, name)?;
                let pfd = self.root.dir(parent)?;
                let fd = rfs::openat(
                    pfd,
                    name,
                    OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )?;
                let mut file = std::fs::File::from(fd);
                // A GNU sparse entry reads back dense (zeros for its holes):
                // all-zero blocks are skipped, so it stays sparse on disk.
                let sparse = kind == T::GNUSparse;
                let mut len = 0u64;
                loop {
                    let n = entry.read(&mut self.buf)?;
                    if n == 0 {
                        break;
                    }
                    if sparse && self.buf[..n].iter().all(|&b| b == 0) {
                        file.seek(io::SeekFrom::Current(n as i64))?;
                    } else {
                        file.write_all(&self.buf[..n])?;
                    }
                    len += n as u64;
                }
                if sparse {
                    file.set_len(len)?;
                }
                let fd = file.as_fd();
                rfs::fchown(fd, Some(uid(m.uid)), Some(gid(m.gid)))?;
                for (k, v) in &m.xattrs {
                    set_xattr_fd(fd, k, v)?;
                }
                // chown clears setuid/setgid, so the mode comes after it.
                rfs::fchmod(fd, Mode::from_raw_mode(m.mode))?;
                rfs::futimens(fd, &times(m.mtime, m.mtime_nsec))?;
                Ok(())
            }
            T::Symlink => {
                let target =
                    entry.link_name_bytes().ok_or_else(|| EntryError::Unsafe("symlink without a target".into()))?;
                let target = OsStr::from_bytes(&target).to_os_string();
                self.replace(parent, name)?;
                let pfd = self.root.dir(parent)?;
                rfs::symlinkat(&target, pfd, name)?;
                self.finish_node(parent, name, &m, false)
            }
            T::Link => {
                let target =
                    entry.link_name_bytes().ok_or_else(|| EntryError::Unsafe("hardlink without a target".into()))?;
                let tcomps = clean(&target).map_err(|w| EntryError::Unsafe(format!("hardlink target {}", w)))?;
                self.hardlink(parent, name, &tcomps)
            }
            T::Char | T::Block | T::Fifo => {
                let ft = match kind {
                    T::Char => FileType::CharacterDevice,
                    T::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let h = entry.header();
                // Empty device fields read as 0, as Go's archive/tar (docker, umoci) reads them.
                let dev = rfs::makedev(
                    h.device_major().ok().flatten().unwrap_or(0),
                    h.device_minor().ok().flatten().unwrap_or(0),
                );
                self.replace(parent, name)?;
                let pfd = self.root.dir(parent)?;
                rfs::mknodat(pfd, name, ft, Mode::from_raw_mode(0o600), dev)?;
                self.finish_node(parent, name, &m, true)
            }
            T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink => Ok(()),
            other => Err(EntryError::Unsafe(format!("unsupported tar entry type {other:?}"))),
        }
    }

    /// The layers below, waited for and opened on first use.
    fn lowers(&mut self) -> io::Result<&[Root]> {
        if self.lowers.is_none() {
            let paths = if self.opts.has_lowers { (self.lowers_fn)()? } else { Vec::new() };
            self.lowers = Some(paths.iter().map(|p| Root::open(p)).collect::<io::Result<_>>()?);
        }
        Ok(self.lowers.as_deref().unwrap_or(&[]))
    }

    /// Makes room for a new non-directory entry at `parent/name`.
    fn replace(&mut self, parent: &[OsString], name: &OsStr) -> Result<(), EntryError> {
        let pfd = self.root.dir(parent)?;
        if let Some(st) = stat_at(pfd, name)? {
            remove_at(pfd, name)?;
            if is_dir(&st) {
                self.root.invalidate();
            }
        }
        Ok(())
    }

    /// Owner, xattrs, mode and mtime for a node made by name (symlink,
    /// device, fifo, hardlink-less); never follows a final symlink.
    fn finish_node(&mut self, parent: &[OsString], name: &OsStr, m: &Meta, chmod: bool) -> Result<(), EntryError> {
        let pfd = self.root.dir(parent)?;
        rfs::chownat(pfd, name, Some(uid(m.uid)), Some(gid(m.gid)), AtFlags::SYMLINK_NOFOLLOW)?;
        for (k, v) in &m.xattrs {
            set_xattr_at(pfd, name, k, v)?;
        }
        if chmod {
            rfs::chmodat(pfd, name, Mode::from_raw_mode(m.mode), AtFlags::empty())?;
        }
        rfs::utimensat(pfd, name, &times(m.mtime, m.mtime_nsec), AtFlags::SYMLINK_NOFOLLOW)?;
        Ok(())
    }

    fn apply_dir_meta(&mut self, comps: &[OsString], m: &Meta) -> Result<(), EntryError> {
        let fd = self.root.dir(comps)?;
        rfs::fchown(fd, Some(uid(m.uid)), Some(gid(m.gid)))?;
        for (k, v) in &m.xattrs {
            set_xattr_fd(fd, k, v)?;
        }
        rfs::fchmod(fd, Mode::from_raw_mode(m.mode))?;
        self.dir_times.retain(|(c, _, _)| c.as_slice() != comps);
        self.dir_times.push((comps.to_vec(), m.mtime, m.mtime_nsec));
        Ok(())
    }

    fn whiteout(&mut self, parent: &[OsString], target: &OsStr) -> Result<(), EntryError> {
        // A whiteout hides the layers below only: what this layer already
        // wrote at that name stays (as umoci keeps it).
        if !self.opts.has_lowers {
            return Ok(()); // nothing below to hide
        }
        let pfd = self.root.dir(parent)?;
        if stat_at(pfd, target)?.is_some() {
            return Ok(());
        }
        rfs::mknodat(pfd, target, FileType::CharacterDevice, Mode::empty(), rfs::makedev(0, 0))?;
        Ok(())
    }

    fn hardlink(&mut self, parent: &[OsString], name: &OsStr, target: &[OsString]) -> Result<(), EntryError> {
        let Some((tparent, tname)) = split(target) else {
            return Err(EntryError::Unsafe("hardlink to the layer's root".into()));
        };
        if self.root.lookup(target)?.is_none() {
            // The target lives in a lower layer: copy it up so the link has
            // something to point at. The merged view is unchanged.
            if !self.copy_up(target)? {
                return Err(EntryError::Unsafe(format!(
                    "hardlink target {:?} does not exist in this layer or below",
                    path::join(target)
                )));
            }
        }
        self.replace(parent, name)?;
        let tfd = rustix::io::dup(self.root.dir(tparent)?)?;
        let pfd = self.root.dir(parent)?;
        match rfs::linkat(&tfd, tname, pfd, name, AtFlags::empty()) {
            Ok(()) => Ok(()),
            Err(rustix::io::Errno::PERM) => Err(EntryError::Unsafe("hardlink to a directory".into())),
            Err(e) => Err(e.into()),
        }
    }

    /// Copies a regular file from the nearest lower layer holding it.
    fn copy_up(&mut self, comps: &[OsString]) -> Result<bool, EntryError> {
        let Some((parent, name)) = split(comps) else {
            return Ok(false);
        };
        let mut found = None;
        for lower in self.lowers()? {
            if let Some(fd) = lower.lookup(comps)? {
                found = Some(fd);
                break;
            }
        }
        let Some(pathfd) = found else {
            return Ok(false);
        };
        let st = rfs::fstat(&pathfd)?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Ok(false);
        }
        let xattrs = fsops::xattrs_of(pathfd.as_fd())?;
        let src = reopen(&pathfd, OFlags::RDONLY)?;
        let pfd = self.root.dir(parent)?;
        let dst = rfs::openat(
            pfd,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )?;
        let (mut src, mut dst) = (std::fs::File::from(src), std::fs::File::from(dst));
        io::copy(&mut src, &mut dst)?;
        let fd = dst.as_fd();
        rfs::fchown(fd, Some(uid(st.st_uid)), Some(gid(st.st_gid)))?;
        for (k, v) in &xattrs {
            set_xattr_fd(fd, k, v)?;
        }
        rfs::fchmod(fd, Mode::from_raw_mode(st.st_mode & 0o7777))?;
        rfs::futimens(fd, &times(st.st_mtime, st.st_mtime_nsec as u32))?;
        Ok(true)
    }

    /// Gives implicit directories their attributes from the layers below,
    /// then sets directory mtimes, deepest first, once nothing more is
    /// written into them.
    fn finish(mut self) -> io::Result<()> {
        let mut implicit = std::mem::take(&mut self.root.implicit);
        // Without a `./` entry of its own, the layer's root takes the
        // attributes of the root below, as the flattened tree would show.
        if !self.dir_times.iter().any(|(c, _, _)| c.is_empty()) {
            implicit.push(Vec::new());
        }
        if !implicit.is_empty() && self.opts.has_lowers {
            self.lowers()?;
        }
        for comps in implicit {
            let Some(lower) = self.lowers.iter().flatten().find_map(|l| l.lookup(&comps).ok().flatten()) else {
                continue;
            };
            let st = rfs::fstat(&lower)?;
            if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
                continue;
            }
            if self.dir_times.iter().any(|(c, _, _)| *c == comps) {
                continue; // it got an entry of its own later
            }
            let fd = self.root.dir(&comps)?;
            rfs::fchown(fd, Some(uid(st.st_uid)), Some(gid(st.st_gid)))?;
            rfs::fchmod(fd, Mode::from_raw_mode(st.st_mode & 0o7777))?;
            self.dir_times.push((comps, st.st_mtime, st.st_mtime_nsec as u32));
        }
        let mut times_list = std::mem::take(&mut self.dir_times);
        times_list.sort_by_key(|t| std::cmp::Reverse(t.0.len()));
        for (comps, secs, nsec) in times_list {
            let Some(fd) = self.root.lookup(&comps)? else {
                continue;
            };
            let st = rfs::fstat(&fd)?;
            if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
                continue;
            }
            let dfd = reopen(&fd, OFlags::RDONLY | OFlags::DIRECTORY)?;
            rfs::futimens(&dfd, &times(secs, nsec))?;
        }
        Ok(())
    }
}

/// Reopens an `O_PATH` handle for I/O through its /proc magic link, which
/// lands on the very file the handle holds.
fn reopen(fd: &rustix::fd::OwnedFd, flags: OFlags) -> io::Result<rustix::fd::OwnedFd> {
    let p = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(fd));
    Ok(rfs::open(p.as_str(), flags | OFlags::CLOEXEC, Mode::empty())?)
}

fn set_xattr_fd(fd: BorrowedFd<'_>, k: &OsStr, v: &[u8]) -> io::Result<()> {
    rfs::fsetxattr(fd, k, v, rfs::XattrFlags::empty())?;
    Ok(())
}

fn uid(u: u32) -> rfs::Uid {
    rfs::Uid::from_raw(u)
}

fn gid(g: u32) -> rfs::Gid {
    rfs::Gid::from_raw(g)
}

fn times(secs: i64, nsec: u32) -> Timestamps {
    let t = Timespec { tv_sec: secs, tv_nsec: nsec as _ };
    Timestamps { last_access: t, last_modification: t }
}
