//! A stopped machine's root filesystem as a detached mount (`fsmount`
//! never attached anywhere: no mount table shows it, and it goes when its
//! descriptor closes), for `berth cp`. Held with the machine's lock: a
//! copy into it holds it exclusively (the machine cannot start under
//! it), a copy out shares it with other readers.
//!
//! Written to, it is the overlay the machine runs on (its upper and work
//! directories over its image's layers); read, the upper directory is
//! just the top layer of a read-only overlay, so readers need no work
//! directory and never share one. No ID mapping: owners are the
//! machine's own numbers, as stored. A machine without an image is its
//! tree, opened as it is.

use crate::lock::LockGuard;
use crate::{Store, StoreError};
use rustix::fd::OwnedFd;
use rustix::fs::{Mode, OFlags};
use rustix::mount::{self as m, FsMountFlags, FsOpenFlags, MountAttrFlags};
use std::path::PathBuf;

/// A machine's root, open, and the lock that keeps it from running.
pub struct MachineRoot {
    pub fd: OwnedFd,
    _lock: LockGuard,
}

impl Store {
    /// Opens stopped machine `name`'s root, for writing when `write`.
    pub fn open_machine_root(&self, name: &str, write: bool) -> Result<MachineRoot, StoreError> {
        self.load_machine(name)?;
        let lock = if write { self.lock_machine(name)? } else { self.lock_machine_shared(name)? };
        // Read under the lock: what it says cannot change until it goes.
        let rec = self.load_machine(name)?;
        if write && rec.read_only {
            return Err(StoreError::Mount(format!(
                "machine {name} is read-only: `berth read-only {name} false` makes it writable"
            )));
        }
        let dir = self.machine_dir(name);
        let upper = dir.join("upper");
        let fail = |what: &str, e: rustix::io::Errno| StoreError::Mount(format!("{what} machine {name}'s root: {e}"));
        let lowers = match &rec.image {
            Some(id) => self.lower_dirs(&self.load_image(id)?)?,
            None => Vec::new(),
        };
        let fd = match lowers.is_empty() {
            // A tree, or an image with no layers: the upper is all there is.
            true => rustix::fs::open(&upper, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
                .map_err(|e| fail("opening", e))?,
            false => {
                let mut lowers = lowers;
                let work = if write { Some(dir.join("work")) } else { None };
                if !write {
                    lowers.insert(0, upper.clone());
                }
                let mut attrs = MountAttrFlags::MOUNT_ATTR_NOSUID
                    | MountAttrFlags::MOUNT_ATTR_NODEV
                    | MountAttrFlags::MOUNT_ATTR_NOEXEC;
                if !write {
                    attrs |= MountAttrFlags::MOUNT_ATTR_RDONLY;
                }
                overlay(&lowers, work.map(|w| (upper, w)), attrs).map_err(|e| fail("mounting", e))?
            }
        };
        Ok(MachineRoot { fd, _lock: lock })
    }
}

/// A detached overlay of `lowers` (top first), with an upper and work
/// directory when given.
fn overlay(
    lowers: &[PathBuf],
    upper: Option<(PathBuf, PathBuf)>,
    attrs: MountAttrFlags,
) -> Result<OwnedFd, rustix::io::Errno> {
    let fs = m::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
    // Layers and uppers keep overlayfs' metadata in user.overlay.*.
    m::fsconfig_set_flag(&fs, "userxattr")?;
    // One `lowerdir+` each (Linux 6.8+: no page limit on the list), else
    // the classic colon-separated option.
    let each = lowers.iter().try_for_each(|l| m::fsconfig_set_string(&fs, "lowerdir+", l.as_path()));
    let fs = match each {
        Ok(()) => fs,
        Err(_) => {
            let fs = m::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
            m::fsconfig_set_flag(&fs, "userxattr")?;
            let esc =
                |p: &PathBuf| p.display().to_string().replace('\\', "\\\\").replace(':', "\\:").replace(',', "\\,");
            let list = lowers.iter().map(esc).collect::<Vec<_>>().join(":");
            m::fsconfig_set_string(&fs, "lowerdir", list.as_str())?;
            fs
        }
    };
    if let Some((u, w)) = &upper {
        m::fsconfig_set_string(&fs, "upperdir", u.as_path())?;
        m::fsconfig_set_string(&fs, "workdir", w.as_path())?;
    }
    m::fsconfig_create(&fs)?;
    m::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs)
}
