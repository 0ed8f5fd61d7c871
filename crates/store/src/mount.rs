//! `berth mount IMAGE DIR`: the image's merged root filesystem, read-only,
//! as an overlayfs of its layer directories (a bind mount for a single
//! layer). Lower directories go in one `lowerdir+` each through the new
//! mount API where the kernel has it (no page-size limit on the option
//! string), else in the classic `lowerdir=` option. Every such view is
//! `nosuid` and `nodev` (a layer's setuid files and device nodes are
//! inert through it), and `noexec` where nothing is meant to run.

use crate::{ImageRecord, Store, StoreError};
use rustix::fs::CWD;
use rustix::mount::{self as m, FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags};
use std::path::{Path, PathBuf};

impl Store {
    /// The layer roots of an image, top layer first (overlayfs order).
    pub fn lower_dirs(&self, rec: &ImageRecord) -> Result<Vec<PathBuf>, StoreError> {
        let mut v = Vec::new();
        for l in rec.layers.iter().rev() {
            let p = self.layer_path(&l.diff_id).join("root");
            if !p.is_dir() {
                return Err(StoreError::Mount(format!(
                    "layer {} of image {} is missing from the store: pull the image again",
                    l.diff_id,
                    rec.id.short()
                )));
            }
            v.push(p);
        }
        Ok(v)
    }

    /// Mounts the image read-only at `dir`.
    pub fn mount_image(&self, rec: &ImageRecord, dir: &Path) -> Result<(), StoreError> {
        let lowers = self.lower_dirs(rec)?;
        if !dir.is_dir() {
            return Err(StoreError::Mount(format!(
                "mount point {} is not a directory: create it first",
                dir.display()
            )));
        }
        mount_overlay_ro(&lowers, dir, false)
    }
}

/// Mounts `lowers` (top first) read-only, nosuid and nodev at `target`;
/// noexec too when `noexec`.
pub fn mount_overlay_ro(lowers: &[PathBuf], target: &Path, noexec: bool) -> Result<(), StoreError> {
    let err = |what: &str, e: rustix::io::Errno| StoreError::Mount(format!("{what} at {}: {e}", target.display()));
    let mut flags = m::MountFlags::RDONLY | m::MountFlags::NOSUID | m::MountFlags::NODEV;
    let mut attrs =
        MountAttrFlags::MOUNT_ATTR_RDONLY | MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NODEV;
    if noexec {
        flags |= m::MountFlags::NOEXEC;
        attrs |= MountAttrFlags::MOUNT_ATTR_NOEXEC;
    }
    if lowers.is_empty() {
        // An image with no layers is an empty directory.
        m::mount("tmpfs", target, "tmpfs", flags, None::<&std::ffi::CStr>)
            .map_err(|e| err("mounting an empty tmpfs", e))?;
        return Ok(());
    }
    if lowers.len() == 1 {
        m::mount_bind(&lowers[0], target).map_err(|e| err("bind-mounting the layer", e))?;
        m::mount_remount(target, m::MountFlags::BIND | flags, "").map_err(|e| {
            let _ = m::unmount(target, m::UnmountFlags::DETACH);
            err("making the mount read-only", e)
        })?;
        return Ok(());
    }
    match new_api(lowers, target, attrs) {
        Ok(()) => Ok(()),
        Err(e) => {
            tracing::debug!(error = %e, "new mount API failed; using mount(2)");
            let opts = format!("lowerdir={},userxattr", lowers.iter().map(|p| escape(p)).collect::<Vec<_>>().join(":"));
            let opts =
                std::ffi::CString::new(opts).map_err(|_| StoreError::Mount("a layer path holds a NUL byte".into()))?;
            m::mount("overlay", target, "overlay", flags, Some(opts.as_c_str()))
                .map_err(|e| err("mounting overlayfs", e))
        }
    }
}

fn escape(p: &Path) -> String {
    p.display().to_string().replace('\\', "\\\\").replace(':', "\\:").replace(',', "\\,")
}

fn new_api(lowers: &[PathBuf], target: &Path, attrs: MountAttrFlags) -> Result<(), rustix::io::Errno> {
    let fs = m::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
    // Layers carry user.overlay.* metadata (see crate::format).
    m::fsconfig_set_flag(&fs, "userxattr")?;
    for l in lowers {
        m::fsconfig_set_string(&fs, "lowerdir+", l.as_path())?;
    }
    m::fsconfig_create(&fs)?;
    let mnt = m::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs)?;
    m::move_mount(&mnt, "", CWD, target, MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH)?;
    Ok(())
}

/// Unmounts `dir`.
pub fn unmount(dir: &Path) -> Result<(), StoreError> {
    m::unmount(dir, m::UnmountFlags::empty()).map_err(|e| {
        let hint = match e {
            rustix::io::Errno::INVAL => ": nothing is mounted there",
            rustix::io::Errno::BUSY => ": it is busy (a process uses it)",
            _ => "",
        };
        StoreError::Mount(format!("cannot unmount {}: {e}{hint}", dir.display()))
    })
}
