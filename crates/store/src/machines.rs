//! Machines: named, writable root filesystems made from an image (an
//! overlay upper directory over the image's shared layers) or imported as
//! a plain tree. Creating one copies nothing.
//!
//! ```text
//! ROOT/machines/NAME/
//! ├── machine.json     { name, image, created }
//! ├── upper/           the machine's changes (overlay upper dir), or
//! │                    its whole tree when it has no image
//! └── work/            overlayfs' work dir
//! ROOT/locks/machine-NAME   held while the machine runs
//! ```

use crate::blobs::{sync_parent, write_atomic};
use crate::lock::LockGuard;
use crate::{Store, StoreError};
use berth_oci::Digest;
use std::path::PathBuf;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct MachineRecord {
    pub name: String,
    /// The image whose layers lie under `upper/`; none for a plain tree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Digest>,
    pub created: u64,
    #[serde(default)]
    pub read_only: bool,
    /// The first host ID of the range its users mapped to last time it
    /// ran; it asks for the same one next time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid_base: Option<u32>,
    /// How it runs (`create … [OPTIONS] [-- CMD]`, `run --name`): what
    /// `start`, `run -M` and `enable` use. None: made without settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<Settings>,
}

/// A machine's run settings, as `berth run` options and a command.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Settings {
    /// `run` options, one word each (`--bind=/srv/a:/a`, `--boot`).
    #[serde(default)]
    pub options: Vec<String>,
    /// The command and its arguments; empty: the image's when
    /// `image_command`, else the init (`start` boots it).
    #[serde(default)]
    pub command: Vec<String>,
    /// Made by `run --name` without a command: it runs its image's.
    #[serde(default, skip_serializing_if = "is_false")]
    pub image_command: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Checks a machine name: it becomes a directory name and a hostname.
pub fn validate_name(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(StoreError::BadName(
            name.into(),
            "machine names are 1-64 letters, digits, '-', '_' or '.', starting with a letter or digit".into(),
        ))
    }
}

impl Store {
    pub fn machine_dir(&self, name: &str) -> PathBuf {
        self.root().join("machines").join(name)
    }

    /// Creates machine `name` over `image` (or empty, for a plain tree).
    pub fn create_machine(&self, name: &str, image: Option<&Digest>) -> Result<MachineRecord, StoreError> {
        self.create_machine_with(name, image, None, None)
    }

    /// Creates machine `name` over `image` with its run `settings`.
    pub fn create_machine_set(
        &self,
        name: &str,
        image: &Digest,
        settings: Settings,
    ) -> Result<MachineRecord, StoreError> {
        self.create_machine_with(name, Some(image), None, Some(settings))
    }

    /// Makes a machine whose whole tree is `tree` (moved, not copied).
    pub fn adopt_tree(&self, name: &str, tree: &std::path::Path) -> Result<MachineRecord, StoreError> {
        self.create_machine_with(name, None, Some(tree), None)
    }

    fn create_machine_with(
        &self,
        name: &str,
        image: Option<&Digest>,
        tree: Option<&std::path::Path>,
        settings: Option<Settings>,
    ) -> Result<MachineRecord, StoreError> {
        validate_name(name)?;
        let dir = self.machine_dir(name);
        if dir.exists() {
            return Err(StoreError::MachineExists(name.into()));
        }
        let parent = self.root().join("machines");
        std::fs::create_dir_all(&parent).map_err(|e| StoreError::io("creating machines/", e))?;
        let tmp = self.tmp_dir().join(format!("machine-{name}-{}", crate::blobs::unique()));
        let rec = MachineRecord {
            name: name.into(),
            image: image.cloned(),
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            read_only: false,
            uid_base: None,
            settings,
        };
        let build = || -> Result<(), StoreError> {
            // On btrfs the machine is a subvolume (upper and work must share
            // one for overlayfs), so a clone is an O(1) snapshot.
            if tree.is_none() && on_btrfs(&self.tmp_dir()) {
                btrfs(&["subvolume", "create", "--"], &tmp, None);
            }
            std::fs::create_dir_all(tmp.join("work")).map_err(|e| StoreError::io("creating the machine", e))?;
            match tree {
                Some(t) => std::fs::rename(t, tmp.join("upper")),
                None => std::fs::create_dir(tmp.join("upper")),
            }
            .map_err(|e| StoreError::io("creating the machine", e))?;
            let body = serde_json::to_vec_pretty(&rec)
                .map_err(|e| StoreError::Corrupt { path: "machine".into(), why: e.to_string() })?;
            write_atomic(&tmp.join("machine.json"), &body)?;
            match rustix::fs::renameat_with(
                rustix::fs::CWD,
                &tmp,
                rustix::fs::CWD,
                &dir,
                rustix::fs::RenameFlags::NOREPLACE,
            ) {
                Ok(()) => sync_parent(&dir).map_err(|e| StoreError::io("publishing the machine", e)),
                Err(rustix::io::Errno::EXIST) | Err(rustix::io::Errno::NOTEMPTY) => {
                    Err(StoreError::MachineExists(name.into()))
                }
                Err(e) => Err(StoreError::io("creating the machine", e.into())),
            }
        };
        let r = build();
        if r.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        r.map(|_| rec)
    }

    pub fn load_machine(&self, name: &str) -> Result<MachineRecord, StoreError> {
        validate_name(name)?;
        let p = self.machine_dir(name).join("machine.json");
        match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| StoreError::Corrupt { path: p.display().to_string(), why: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::UnknownMachine(name.into())),
            Err(e) => Err(StoreError::io(format!("reading {}", p.display()), e)),
        }
    }

    /// Takes the machine's run lock without waiting: `Err` if it is running.
    pub fn lock_machine(&self, name: &str) -> Result<LockGuard, StoreError> {
        self.try_lock_exclusive(&format!("machine-{name}")).map_err(|e| match e {
            StoreError::Io { source, .. } if source.kind() == std::io::ErrorKind::WouldBlock => {
                StoreError::MachineRunning(name.into())
            }
            e => e,
        })
    }

    /// Takes the machine's lock shared, without waiting: for reading it
    /// (clone, commit, export) while no run holds it; readers don't
    /// exclude each other.
    pub fn lock_machine_shared(&self, name: &str) -> Result<LockGuard, StoreError> {
        self.try_lock_shared(&format!("machine-{name}")).map_err(|e| match e {
            StoreError::Io { source, .. } if source.kind() == std::io::ErrorKind::WouldBlock => {
                StoreError::MachineRunning(name.into())
            }
            e => e,
        })
    }

    /// Removes a machine that is not running.
    pub fn remove_machine(&self, name: &str) -> Result<(), StoreError> {
        self.load_machine(name)?;
        let _lock = self.lock_machine(name)?;
        let dir = self.machine_dir(name);
        // Rename first so a half-removed machine is never visible.
        let doomed = self.tmp_dir().join(format!("rm-{name}-{}", crate::blobs::unique()));
        std::fs::rename(&dir, &doomed)
            .and_then(|()| sync_parent(&dir))
            .map_err(|e| StoreError::io(format!("removing machine {name}"), e))?;
        std::fs::remove_dir_all(&doomed).map_err(|e| StoreError::io(format!("removing machine {name}"), e))?;
        let _ = std::fs::remove_file(self.lock_path(&format!("machine-{name}")));
        Ok(())
    }
}

/// A machine with what `berth machines` shows about it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MachineInfo {
    #[serde(flatten)]
    pub record: MachineRecord,
    pub running: bool,
    /// Bytes in the machine's own directory (its changes, or its tree).
    pub usage: u64,
}

fn du(p: &std::path::Path) -> u64 {
    let Ok(md) = std::fs::symlink_metadata(p) else { return 0 };
    if !md.is_dir() {
        return md.len();
    }
    std::fs::read_dir(p).map(|rd| rd.flatten().map(|e| du(&e.path())).sum()).unwrap_or(0)
}

/// Whether `p` lies on btrfs (statfs magic).
#[allow(clippy::unnecessary_cast)] // f_type's width differs between architectures
fn on_btrfs(p: &std::path::Path) -> bool {
    const BTRFS_SUPER_MAGIC: i64 = 0x9123683e;
    rustix::fs::statfs(p).map(|s| s.f_type as i64 == BTRFS_SUPER_MAGIC).unwrap_or(false)
}

/// Whether `p` is the root of a btrfs subvolume (inode 256).
fn is_subvolume(p: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    on_btrfs(p) && std::fs::symlink_metadata(p).map(|m| m.ino() == 256).unwrap_or(false)
}

/// Runs `btrfs ARGS SRC [DST]`; false when it fails (callers fall back).
fn btrfs(args: &[&str], src: &std::path::Path, dst: Option<&std::path::Path>) -> bool {
    let mut c = std::process::Command::new("btrfs");
    c.args(args).arg(src);
    if let Some(d) = dst {
        c.arg(d);
    }
    c.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Copies a tree with everything it holds (owners, modes, xattrs, devices,
/// hardlinks), sharing extents where the filesystem can (`cp --reflink`).
fn copy_tree(src: &std::path::Path, dst: &std::path::Path) -> Result<(), StoreError> {
    let out = std::process::Command::new("cp")
        .args(["-a", "--reflink=auto", "--"])
        .arg(src)
        .arg(dst)
        .output()
        .map_err(|e| StoreError::io("running cp", e))?;
    if !out.status.success() {
        return Err(StoreError::io(
            format!("copying {}", src.display()),
            std::io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_string()),
        ));
    }
    Ok(())
}

impl Store {
    /// Every machine, sorted by name.
    pub fn machines(&self) -> Result<Vec<MachineInfo>, StoreError> {
        let dir = self.root().join("machines");
        let mut out = Vec::new();
        let Ok(rd) = std::fs::read_dir(&dir) else { return Ok(out) };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(record) = self.load_machine(&name) else { continue };
            let running = self.is_running(&name);
            out.push(MachineInfo { usage: du(&e.path().join("upper")), record, running });
        }
        out.sort_by(|a, b| a.record.name.cmp(&b.record.name));
        Ok(out)
    }

    /// Whether something holds the machine's run lock.
    pub fn is_running(&self, name: &str) -> bool {
        matches!(self.lock_machine(name), Err(StoreError::MachineRunning(_)))
    }

    /// Names of machines built on image `id`.
    pub fn machines_using(&self, id: &Digest) -> Result<Vec<String>, StoreError> {
        Ok(self
            .machines()?
            .into_iter()
            .filter(|m| m.record.image.as_ref() == Some(id))
            .map(|m| m.record.name)
            .collect())
    }

    fn save_machine(&self, dir: &std::path::Path, rec: &MachineRecord) -> Result<(), StoreError> {
        let body = serde_json::to_vec_pretty(rec)
            .map_err(|e| StoreError::Corrupt { path: "machine".into(), why: e.to_string() })?;
        write_atomic(&dir.join("machine.json"), &body)
    }

    /// Copies machine `src` (not running) to a new machine `dst`. Only the
    /// machine's own changes are copied; image layers stay shared.
    pub fn clone_machine(&self, src: &str, dst: &str) -> Result<MachineRecord, StoreError> {
        validate_name(dst)?;
        let mut rec = self.load_machine(src)?;
        // The copy runs in a range of its own.
        rec.uid_base = None;
        let _lock = self.lock_machine_shared(src)?;
        if self.machine_dir(dst).exists() {
            return Err(StoreError::MachineExists(dst.into()));
        }
        let tmp = self.tmp_dir().join(format!("clone-{dst}-{}", crate::blobs::unique()));
        rec.name = dst.into();
        rec.created =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let build = || -> Result<(), StoreError> {
            let from = self.machine_dir(src);
            // On btrfs a subvolume snapshot is O(1); elsewhere a reflink copy
            // where the filesystem offers it.
            if is_subvolume(&from) && btrfs(&["subvolume", "snapshot", "--"], &from, Some(&tmp)) {
                let _ = std::fs::remove_dir_all(tmp.join("work"));
                std::fs::create_dir(tmp.join("work")).map_err(|e| StoreError::io("creating the clone", e))?;
            } else {
                std::fs::create_dir_all(tmp.join("work")).map_err(|e| StoreError::io("creating the clone", e))?;
                copy_tree(&from.join("upper"), &tmp.join("upper"))?;
            }
            self.save_machine(&tmp, &rec)?;
            match rustix::fs::renameat_with(
                rustix::fs::CWD,
                &tmp,
                rustix::fs::CWD,
                self.machine_dir(dst),
                rustix::fs::RenameFlags::NOREPLACE,
            ) {
                Ok(()) => sync_parent(&self.machine_dir(dst)).map_err(|e| StoreError::io("publishing the clone", e)),
                Err(rustix::io::Errno::EXIST) | Err(rustix::io::Errno::NOTEMPTY) => {
                    Err(StoreError::MachineExists(dst.into()))
                }
                Err(e) => Err(StoreError::io("publishing the clone", e.into())),
            }
        };
        let r = build();
        if r.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        r.map(|_| rec)
    }

    /// Renames a machine that is not running.
    pub fn rename_machine(&self, old: &str, new: &str) -> Result<(), StoreError> {
        validate_name(new)?;
        let mut rec = self.load_machine(old)?;
        let _lock = self.lock_machine(old)?;
        let (from, to) = (self.machine_dir(old), self.machine_dir(new));
        match rustix::fs::renameat_with(
            rustix::fs::CWD,
            &from,
            rustix::fs::CWD,
            &to,
            rustix::fs::RenameFlags::NOREPLACE,
        ) {
            Ok(()) => {}
            Err(rustix::io::Errno::EXIST) | Err(rustix::io::Errno::NOTEMPTY) => {
                return Err(StoreError::MachineExists(new.into()))
            }
            Err(e) => return Err(StoreError::io(format!("renaming machine {old}"), e.into())),
        }
        // The record first, then the directory's fsync: a failed fsync
        // must not leave the machine under its new name with its old one.
        rec.name = new.into();
        self.save_machine(&to, &rec)?;
        sync_parent(&to).map_err(|e| StoreError::io(format!("renaming machine {old}"), e))
    }

    /// Records the range of host IDs machine `name` ran with.
    pub fn set_machine_uid_base(&self, name: &str, base: Option<u32>) -> Result<(), StoreError> {
        let mut rec = self.load_machine(name)?;
        rec.uid_base = base;
        self.save_machine(&self.machine_dir(name), &rec)
    }

    /// Replaces a machine's run settings.
    pub fn set_machine_settings(&self, name: &str, settings: Option<Settings>) -> Result<(), StoreError> {
        let mut rec = self.load_machine(name)?;
        rec.settings = settings;
        self.save_machine(&self.machine_dir(name), &rec)
    }

    /// Marks a machine read-only (its root is mounted read-only when run).
    pub fn set_machine_read_only(&self, name: &str, read_only: bool) -> Result<(), StoreError> {
        let mut rec = self.load_machine(name)?;
        rec.read_only = read_only;
        self.save_machine(&self.machine_dir(name), &rec)
    }
}
