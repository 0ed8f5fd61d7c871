//! `berth cp`: files into and out of a machine, running or stopped.
//!
//! A copy is a tar stream between two halves: [`pack`] reads the source
//! side, [`place`] recreates it on the other. The halves may run in
//! different processes: for a running machine the machine's half runs in
//! a child that has joined the machine's user and mount namespaces
//! ([`crate::inside`]), so everything it does inside is done with the
//! rights of the machine's root, never the host's. A running machine's
//! root can mount what it likes over its own paths (a procfs whose
//! `sys/kernel` holds the host's `core_pattern`, a cgroup v1 tree with a
//! `release_agent`); a host-root process writing through them would
//! change the host. The host's half stays on the host, with the caller's
//! rights, and only the stream crosses.
//!
//! For a stopped machine both halves run in this process: the machine's
//! root is a detached mount (no mount table shows it) that nothing else
//! can change while its lock is held, and every path in it is resolved
//! with `openat2(RESOLVE_IN_ROOT)`, every entry below with `O_NOFOLLOW`.
//!
//! Ownership and modes are kept, as numbers in the machine's own view
//! (container uid 1000 is host uid 1000 on the other side). What comes
//! out of a machine loses its setuid and setgid bits: a machine's root
//! could otherwise hand the host a setuid-root binary of its choosing.
//! Hard links are copied as separate files, extended attributes are not
//! copied. Written by hand: no crate walks a tree through descriptors
//! without following links.

mod pack;
mod place;

pub use pack::{pack, MAX_DEPTH, TOP};
pub use place::{place, Policy};

use crate::RuntimeError;
use rustix::fd::{BorrowedFd, OwnedFd};
use rustix::fs::{self as rfs, Mode, OFlags, ResolveFlags};
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

/// How a path on one side is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Where {
    /// On the host, from the current directory, links followed as usual.
    Host,
    /// Inside a machine's root: `..` and absolute links stay in it.
    InRoot,
}

/// `path` split into its directory and last name. Inside a machine `.`
/// components are dropped and `..` is refused (it is easy to misread
/// there, and nowhere needed).
pub(crate) fn split_last(path: &Path, at: Where) -> Result<(PathBuf, OsString), RuntimeError> {
    if at == Where::Host {
        // The host's paths mean what they mean to the caller; only the
        // last name must be a name.
        return match (path.parent(), path.file_name()) {
            (Some(dir), Some(name)) => {
                let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
                Ok((dir.to_path_buf(), name.to_os_string()))
            }
            _ => Err(RuntimeError::Invalid(format!("{}: name a file or directory", path.display()))),
        };
    }
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => parts.push(n.to_os_string()),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                return Err(RuntimeError::Invalid(format!("{}: write the path without '..'", path.display())))
            }
        }
    }
    let Some(last) = parts.pop() else {
        return Err(RuntimeError::Invalid(format!(
            "{} names a whole root: name a file or directory in it",
            path.display()
        )));
    };
    let mut dir = if path.is_absolute() { PathBuf::from("/") } else { PathBuf::from(".") };
    dir.extend(parts);
    Ok((dir, last))
}

/// The last name of `path`: what a copy of it into a directory is called.
pub fn last_name(path: &Path, at: Where) -> Result<OsString, RuntimeError> {
    split_last(path, at).map(|(_, n)| n)
}

/// Opens directory `dir` (a real directory descriptor, to create and
/// list in) from `root` as `at` says.
pub(crate) fn open_parent(root: BorrowedFd<'_>, dir: &Path, at: Where) -> Result<OwnedFd, RuntimeError> {
    open_dir(root, dir, at).map_err(|e| match e {
        rustix::io::Errno::NOENT => RuntimeError::Invalid(format!("directory {} does not exist", dir.display())),
        rustix::io::Errno::NOTDIR => RuntimeError::Invalid(format!("{} is not a directory", dir.display())),
        e => RuntimeError::sys(format!("opening {}", dir.display()), e),
    })
}

pub(crate) fn open_dir(root: BorrowedFd<'_>, dir: &Path, at: Where) -> rustix::io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    match at {
        Where::Host => rfs::openat(root, dir, flags, Mode::empty()),
        Where::InRoot => {
            let rel = dir.strip_prefix("/").unwrap_or(dir);
            let rel = if rel.as_os_str().is_empty() { Path::new(".") } else { rel };
            crate::openat2::openat2(
                root,
                rel,
                flags,
                Mode::empty(),
                ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_last_keeps_the_directory_and_refuses_dotdot() {
        let (d, n) = split_last(Path::new("/etc/./hosts"), Where::InRoot).unwrap();
        assert_eq!((d.as_path(), n.as_os_str()), (Path::new("/etc"), std::ffi::OsStr::new("hosts")));
        let (d, n) = split_last(Path::new("a"), Where::InRoot).unwrap();
        assert_eq!((d.as_path(), n.as_os_str()), (Path::new("."), std::ffi::OsStr::new("a")));
        assert!(split_last(Path::new("/a/../b"), Where::InRoot).is_err());
        let (d, n) = split_last(Path::new("../b"), Where::Host).unwrap();
        assert_eq!((d.as_path(), n.as_os_str()), (Path::new(".."), std::ffi::OsStr::new("b")));
        assert!(split_last(Path::new("a/.."), Where::Host).is_err());
        assert!(split_last(Path::new("/"), Where::InRoot).is_err());
        assert!(split_last(Path::new("/."), Where::InRoot).is_err());
    }
}
