//! The store's overlay metadata format. Layers and machine upper dirs keep
//! overlayfs' metadata (opaque directories) in `user.overlay.*` xattrs and
//! every berth overlay mount says `userxattr`: that is the only kind
//! overlayfs reads when a container's user namespace mounts it, and it
//! works the same outside one. Stores from before kept `trusted.overlay.*`;
//! the first berth that opens one converts it (idempotent, so two at once
//! do no harm) and records the format in `ROOT/overlay-format`.
//!
//! The walk goes through directory descriptors opened with `O_NOFOLLOW`,
//! so a symlink planted in a machine's upper dir never leads it outside.

use crate::unpack::{LEGACY_OPAQUE_XATTR, OPAQUE_XATTR};
use crate::{Store, StoreError};
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{self as rfs, Mode, OFlags};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The name of the format file and what it holds once converted.
/// Changing either makes every berth convert every store again.
const MARKER: &str = "overlay-format";
const CURRENT: &[u8] = b"user\n";

/// Converts `store` to `user.overlay.*` metadata unless it is already.
pub fn upgrade(store: &Store) -> Result<(), StoreError> {
    let marker = store.root().join(MARKER);
    if std::fs::read(&marker).is_ok_and(|b| b == CURRENT) {
        return Ok(());
    }
    let io = |what: &str, e: std::io::Error| StoreError::io(format!("converting the store ({what})"), e);
    let mut dirs = Vec::new();
    for (sub, inner) in [("layers", None), ("machines", Some("upper"))] {
        let Ok(rd) = std::fs::read_dir(store.root().join(sub)) else { continue };
        for e in rd.flatten() {
            dirs.push(match inner {
                Some(i) => e.path().join(i),
                None => e.path(),
            });
        }
    }
    for d in dirs {
        convert_tree(&d).map_err(|e| io(&d.display().to_string(), e))?;
    }
    let tmp = store.tmp_dir().join(format!(".{MARKER}.{}", std::process::id()));
    std::fs::write(&tmp, CURRENT)
        .and_then(|_| std::fs::rename(&tmp, &marker))
        .and_then(|_| crate::blobs::sync_parent(&marker))
        .map_err(|e| io("writing the format marker", e))
}

/// Converts every directory under `root` (which may be missing).
fn convert_tree(root: &Path) -> std::io::Result<()> {
    let fd =
        match rfs::open(root, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty()) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR | rustix::io::Errno::LOOP) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
    let mut stack = vec![fd];
    while let Some(dir) = stack.pop() {
        convert_dir(&dir)?;
        let mut names = Vec::new();
        for e in rfs::Dir::read_from(&dir)? {
            let e = e?;
            let name = e.file_name().to_bytes();
            if e.file_type() == rfs::FileType::Directory && name != b"." && name != b".." {
                names.push(name.to_vec());
            }
        }
        for n in names {
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            match rfs::openat(&dir, OsStr::from_bytes(&n), flags, Mode::empty()) {
                Ok(fd) => stack.push(fd),
                // Gone or replaced since it was listed: nothing to convert.
                Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR | rustix::io::Errno::LOOP) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// Moves one directory's opaque marker to `user.` and drops the rest of
/// overlayfs' `trusted.` metadata (origin, impure: meaningless now).
fn convert_dir(dir: &OwnedFd) -> std::io::Result<()> {
    let mut names = vec![0u8; 4096];
    let n = match rfs::flistxattr(dir.as_fd(), &mut names) {
        Ok(n) => n,
        Err(rustix::io::Errno::NOTSUP) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for key in names[..n].split(|b| *b == 0).filter(|k| k.starts_with(b"trusted.overlay.")) {
        if key == LEGACY_OPAQUE_XATTR.as_bytes() {
            let mut v = [0u8; 1];
            if matches!(rfs::fgetxattr(dir.as_fd(), key, &mut v), Ok(1) if v[0] == b'y') {
                rfs::fsetxattr(dir.as_fd(), OPAQUE_XATTR, b"y", rfs::XattrFlags::empty())?;
            }
        }
        match rfs::fremovexattr(dir.as_fd(), key) {
            Ok(()) | Err(rustix::io::Errno::NODATA) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_opaque_markers_become_user_ones_and_the_marker_is_written() {
        if !rustix::process::geteuid().is_root() {
            return; // trusted.* xattrs need root
        }
        let t = tempfile::tempdir().expect("tempdir");
        let store = Store::open(t.path()).expect("open");
        let layer = store.root().join("layers/abc");
        std::fs::create_dir_all(layer.join("odir/sub")).expect("dirs");
        std::fs::create_dir_all(layer.join("plain")).expect("dirs");
        rustix::fs::setxattr(layer.join("odir"), LEGACY_OPAQUE_XATTR, b"y", rustix::fs::XattrFlags::empty())
            .expect("set trusted");
        rustix::fs::setxattr(layer.join("plain"), "trusted.overlay.origin", b"x", rustix::fs::XattrFlags::empty())
            .expect("set trusted");
        std::os::unix::fs::symlink("/etc", layer.join("link")).expect("symlink");
        std::fs::remove_file(store.root().join(MARKER)).expect("marker exists after open");
        upgrade(&store).expect("upgrade");
        let get = |p: &Path, k: &str| {
            let mut v = [0u8; 8];
            rustix::fs::getxattr(p, k, &mut v).ok().map(|n| v[..n].to_vec())
        };
        assert_eq!(get(&layer.join("odir"), OPAQUE_XATTR), Some(b"y".to_vec()));
        assert_eq!(get(&layer.join("odir"), LEGACY_OPAQUE_XATTR), None);
        assert_eq!(get(&layer.join("plain"), "trusted.overlay.origin"), None);
        assert_eq!(get(&layer.join("plain"), OPAQUE_XATTR), None);
        assert_eq!(std::fs::read(store.root().join(MARKER)).expect("marker"), CURRENT);
    }
}
