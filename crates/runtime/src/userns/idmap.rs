//! The mounts berth makes on the host side, before the container's
//! namespaces exist: a tree's or an image's layers, a machine's upper
//! directory, a disk image's filesystem, `--bind` sources and `--overlay`
//! mounts, each a detached mount (`open_tree(OPEN_TREE_CLONE)`, `fsmount`)
//! that the container attaches where it belongs.
//!
//! Why host-side: inside its user namespace container root is an
//! unprivileged host uid that may not even traverse the store; a path
//! handed in would be looked up with its rights (or worse, resolved through
//! a tree it controls). And once the container's user namespace exists,
//! [`HostMounts::idmap`] turns the root's mounts into idmapped ones
//! (`MOUNT_ATTR_IDMAP` with that namespace): image uid 0 on disk is
//! container root inside, files the container creates land on disk with
//! the container's own ids, and nothing is ever chowned.

use super::{IdRange, Ownership};
use crate::spec::{BindMount, Rootfs, RunSpec, Volatile};
use crate::{sys, RuntimeError};
use rustix::fd::{AsRawFd, OwnedFd};
use rustix::io::Errno;
use rustix::mount::{self as m, FsMountFlags, FsOpenFlags, MountAttrFlags, OpenTreeFlags};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The root's mounts.
#[derive(Debug)]
pub enum RootMount {
    /// A tree attached as it is: a `-D` directory, a machine's own tree,
    /// a disk image's filesystem.
    Tree(OwnedFd),
    /// An overlay's layers (top first) and, when the root is writable, the
    /// directory holding its upper and work directories.
    Overlay { lowers: Vec<OwnedFd>, upper: Option<Upper> },
}

/// The directory that holds an overlay's `upper` and `work` (overlayfs
/// wants both on one mount), and their names in it.
#[derive(Debug)]
pub struct Upper {
    pub dir: OwnedFd,
    pub upper: OsString,
    pub work: OsString,
}

/// A `--bind` or `--overlay` mount, opened here.
#[derive(Debug)]
pub enum UserMount {
    /// A bind (or a read-only overlay of one directory).
    Tree {
        fd: OwnedFd,
        /// Whether it is a directory (else a file) to mount on.
        dir: bool,
        /// `--bind …:idmap`: mapped into the container's users.
        idmap: bool,
    },
    /// An overlay, mounted inside like the root's: its layers and upper
    /// mapped into the container's users, the upper a throw-away tmpfs
    /// when none is given and it is writable.
    Layers { lowers: Vec<OwnedFd>, upper: Option<Upper>, throwaway: bool },
}

/// Everything the container attaches, in [`RunSpec`] order.
#[derive(Debug)]
pub struct HostMounts {
    pub root: RootMount,
    /// One per `spec.mounts` entry; `None` for a tmpfs (made inside).
    pub user: Vec<Option<UserMount>>,
    /// The `--device` nodes.
    pub devices: Devices,
    /// A fresh sysfs (read-only) for a container in a user namespace on
    /// the host's network, where it could not mount one itself: without
    /// it, /sys would be a bind of the host's, with the host's cgroup tree
    /// and every other mount below it.
    pub sysfs: Option<OwnedFd>,
    /// The network's hosts file (read-only), for `/etc/hosts`: opened here,
    /// where its root-only directory may be entered.
    pub hosts: Option<OwnedFd>,
    /// The root's directory, for a tree used in place (`-D`, a machine's own).
    dir: Option<PathBuf>,
}

fn err(what: impl Into<String>) -> impl FnOnce(Errno) -> RuntimeError {
    let what = what.into();
    move |e| RuntimeError::sys(what, e)
}

/// A detached copy of the mount tree at `path`.
fn clone_tree(path: &Path, recursive: bool) -> Result<OwnedFd, RuntimeError> {
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    m::open_tree(rustix::fs::CWD, path, flags).map_err(err(format!("opening {}", path.display())))
}

/// A layer or upper directory: its own mount, `nodev` (a device node in a
/// layer never opens a host device, wherever the layer ends up attached).
fn layer(path: &Path) -> Result<OwnedFd, RuntimeError> {
    let fd = clone_tree(path, false)?;
    restrict(&fd, sys::MOUNT_ATTR_NODEV, path)?;
    Ok(fd)
}

fn restrict(fd: &OwnedFd, set: u64, what: &Path) -> Result<(), RuntimeError> {
    sys::mount_setattr_fd(fd, set, None, true)
        .map_err(|e| RuntimeError::sys(format!("restricting {}", what.display()), e))
}

impl HostMounts {
    /// Opens and mounts what `spec` names, on the host side.
    pub fn prepare(spec: &RunSpec) -> Result<HostMounts, RuntimeError> {
        let Some(rootfs) = &spec.rootfs else { return Err(RuntimeError::Invalid("no root filesystem given".into())) };
        // An upper directory where the root is written through (a
        // volatile root writes to a tmpfs of its own instead).
        let with_upper = matches!(spec.volatile, Volatile::No | Volatile::State);
        if spec.users.is_some() && spec.ownership == Ownership::Chown && !matches!(rootfs, Rootfs::Dir(_)) {
            return Err(RuntimeError::Invalid(
                "--private-users-ownership=chown works on a directory tree (-D, a machine without an image): \
                 image layers are shared and stay as they are"
                    .into(),
            ));
        }
        let root = match rootfs {
            Rootfs::Dir(d) => {
                let fd = clone_tree(d, true)?;
                // nodev: a device node in the tree never opens a host device.
                restrict(&fd, sys::MOUNT_ATTR_NODEV, d)?;
                RootMount::Tree(fd)
            }
            Rootfs::Overlay { lowers, upper, work } => {
                let lowers = lowers.iter().map(|l| layer(l)).collect::<Result<Vec<_>, _>>()?;
                let upper = if with_upper {
                    let (Some(dir), Some(u), Some(w)) = (upper.parent(), upper.file_name(), work.file_name()) else {
                        return Err(RuntimeError::Invalid(format!("bad overlay upper {}", upper.display())));
                    };
                    if work.parent() != Some(dir) {
                        return Err(RuntimeError::Invalid(format!(
                            "overlay upper {} and work {} must share a directory",
                            upper.display(),
                            work.display()
                        )));
                    }
                    Some(Upper { dir: layer(dir)?, upper: u.to_os_string(), work: w.to_os_string() })
                } else {
                    None
                };
                RootMount::Overlay { lowers, upper }
            }
            Rootfs::Block { device, fstype, read_only } => {
                RootMount::Tree(block(device, fstype, *read_only || !with_upper)?)
            }
        };
        let mut user = Vec::new();
        for mnt in &spec.mounts {
            user.push(match mnt {
                BindMount::Tmpfs { .. } => None,
                BindMount::Bind { src, readonly, recursive, idmap, .. } => {
                    let md = std::fs::metadata(src).map_err(|e| {
                        RuntimeError::Setup(format!("bind source {} does not exist: {e}", src.display()))
                    })?;
                    let fd = clone_tree(src, *recursive)?;
                    // A user's bind opens no device node (`--device` is how a
                    // container gets one), and read-only is read-only all the
                    // way down: a mount below the source keeps its own flags
                    // under a plain remount of the top.
                    let mut set = sys::MOUNT_ATTR_NODEV;
                    if *readonly {
                        set |= sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID;
                    }
                    restrict(&fd, set, src)?;
                    Some(UserMount::Tree { fd, dir: md.is_dir(), idmap: *idmap })
                }
                BindMount::Overlay { lowers, upper, readonly, .. } => {
                    Some(user_overlay(lowers, upper.as_deref(), *readonly)?)
                }
            });
        }
        let devices = match spec.users {
            _ if spec.devices.is_empty() => Devices::Nodes(Vec::new()),
            None => Devices::Nodes(spec.devices.iter().map(|d| clone_tree(&d.host, false)).collect::<Result<_, _>>()?),
            Some(r) => Devices::Shifted(shifted_nodes(spec, r.base)?),
        };
        let dir = match rootfs {
            Rootfs::Dir(d) => Some(d.clone()),
            _ => None,
        };
        let sysfs = if spec.users.is_some() && !spec.private_network { Some(sysfs()?) } else { None };
        let hosts = match spec.network.as_ref().and_then(|n| n.hosts.as_deref()) {
            Some(path) => {
                let fd = clone_tree(path, false)?;
                let ro =
                    sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV | sys::MOUNT_ATTR_NOEXEC;
                restrict(&fd, ro, path)?;
                Some(fd)
            }
            None => None,
        };
        Ok(HostMounts { root, user, devices, dir, sysfs, hosts })
    }

    /// Maps the root's mounts (and `:idmap` binds, `--overlay` layers)
    /// into the user namespace `userns` whose IDs start at `base`, by
    /// `ownership` for a tree used in place (which `chown` shifts on disk
    /// instead). Detached mounts only: call before the container attaches
    /// them. `userns` is `None` for a range starting at 0 (nothing to map).
    pub fn idmap(
        &self,
        userns: Option<&OwnedFd>,
        range: IdRange,
        ownership: Ownership,
        writable: bool,
    ) -> Result<(), RuntimeError> {
        let try_map = |fd: &OwnedFd, recursive: bool| match userns {
            Some(ns) => sys::mount_setattr_fd(fd, 0, Some(ns), recursive),
            None => Ok(()),
        };
        let map = |fd: &OwnedFd, recursive: bool, what: &str| -> Result<(), RuntimeError> {
            try_map(fd, recursive).map_err(|e| {
                let hint = if unmappable(&e) {
                    ": its filesystem cannot be idmapped; use --private-users-ownership=off or --private-users=no"
                } else {
                    ""
                };
                RuntimeError::Setup(format!("idmapping {what}: {e}{hint}"))
            })
        };
        // Shifting owners on disk rewrites the tree: only for a whole
        // aligned range (the shift in force is read back from the top's
        // owner) and a run that may write to it.
        let chown = |dir: &Path| -> Result<(), RuntimeError> {
            if range.count != super::range::SIZE || !range.base.is_multiple_of(super::range::SIZE) {
                return Err(RuntimeError::Invalid(format!(
                    "shifting {}'s owners needs a range of 65536 IDs starting at a multiple of 65536, not {}:{}",
                    dir.display(),
                    range.base,
                    range.count
                )));
            }
            if !writable {
                return Err(RuntimeError::Invalid(format!(
                    "{} needs its owners shifted on disk (--private-users-ownership=chown), which a read-only or \
                     volatile run does not do: run it once writable, or use --private-users-ownership=off",
                    dir.display()
                )));
            }
            super::chown::shift_tree(dir, range.base).map(|_| ())
        };
        match (&self.root, &self.dir) {
            (_, _) if ownership == Ownership::Off => {}
            (RootMount::Tree(_), Some(dir)) if ownership == Ownership::Chown => chown(dir)?,
            (RootMount::Tree(fd), Some(dir)) if ownership == Ownership::Auto => {
                // A tree shifted before (by chown) stays shifted; else
                // mapped, or shifted where its filesystem cannot be mapped.
                let top =
                    std::fs::metadata(dir).map_err(|e| RuntimeError::sys(format!("reading {}", dir.display()), e))?;
                let (uid, gid) = (std::os::unix::fs::MetadataExt::uid(&top), std::os::unix::fs::MetadataExt::gid(&top));
                if uid == gid && uid >= super::range::FIRST && uid.is_multiple_of(super::range::SIZE) {
                    chown(dir)?;
                } else {
                    match try_map(fd, true) {
                        Ok(()) => {}
                        Err(e) if unmappable(&e) => chown(dir)?,
                        Err(_) => map(fd, true, "the root tree")?,
                    }
                }
            }
            (RootMount::Tree(fd), _) => map(fd, true, "the root tree")?,
            (RootMount::Overlay { lowers, upper }, _) => {
                for l in lowers {
                    map(l, false, "an image layer")?;
                }
                if let Some(u) = upper {
                    map(&u.dir, false, "the overlay's upper directory")?;
                }
            }
        }
        for u in self.user.iter().flatten() {
            match u {
                UserMount::Tree { fd, idmap: true, .. } => map(fd, true, "a --bind source")?,
                UserMount::Tree { .. } => {}
                UserMount::Layers { lowers, upper, .. } => {
                    for l in lowers {
                        map(l, false, "an --overlay layer")?;
                    }
                    if let Some(u) = upper {
                        map(&u.dir, false, "an --overlay upper")?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The descriptors the container must keep until it has attached them.
    pub fn fds(&self) -> Vec<i32> {
        let mut v: Vec<i32> = match &self.root {
            RootMount::Tree(fd) => vec![fd.as_raw_fd()],
            RootMount::Overlay { lowers, upper } => {
                lowers.iter().map(|l| l.as_raw_fd()).chain(upper.iter().map(|u| u.dir.as_raw_fd())).collect()
            }
        };
        for u in self.user.iter().flatten() {
            match u {
                UserMount::Tree { fd, .. } => v.push(fd.as_raw_fd()),
                UserMount::Layers { lowers, upper, .. } => {
                    v.extend(lowers.iter().map(|l| l.as_raw_fd()));
                    v.extend(upper.iter().map(|u| u.dir.as_raw_fd()));
                }
            }
        }
        match &self.devices {
            Devices::Nodes(n) => v.extend(n.iter().map(|d| d.as_raw_fd())),
            Devices::Shifted(t) => v.push(t.as_raw_fd()),
        }
        v.extend(self.sysfs.iter().map(|s| s.as_raw_fd()));
        v.extend(self.hosts.iter().map(|s| s.as_raw_fd()));
        v
    }
}

/// A new detached mount of `fstype` with `options` (a value, or `None`
/// for a flag) and `attrs` (MOUNT_ATTR_*).
pub(crate) fn detached(fstype: &str, options: &[(&str, Option<&str>)], attrs: u64) -> Result<OwnedFd, Errno> {
    let fs = m::fsopen(fstype, FsOpenFlags::FSOPEN_CLOEXEC)?;
    for (key, value) in options {
        match value {
            Some(v) => m::fsconfig_set_string(&fs, *key, *v)?,
            None => m::fsconfig_set_flag(&fs, *key)?,
        }
    }
    m::fsconfig_create(&fs)?;
    m::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::from_bits_retain(attrs as _))
}

/// Whether `e` from `MOUNT_ATTR_IDMAP` means the filesystem has no idmap
/// support (rather than a failure worth reporting).
fn unmappable(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::EOPNOTSUPP))
}

/// `--device` nodes for the container.
#[derive(Debug)]
pub enum Devices {
    /// The host's nodes themselves, one detached bind each.
    Nodes(Vec<OwnedFd>),
    /// A tmpfs made by host root holding a copy of each node, `d0`, `d1`…,
    /// owned by the container's users as the host's node is by the host's:
    /// in a user namespace, container root is not the node's owner, and
    /// devtmpfs cannot be idmapped. Device nodes open on it (host root
    /// mounted it), and the device allow-list still decides.
    Shifted(OwnedFd),
}

fn shifted_nodes(spec: &RunSpec, base: u32) -> Result<OwnedFd, RuntimeError> {
    let t = detached("tmpfs", &[("mode", Some("0755")), ("size", Some("64k"))], sys::MOUNT_ATTR_NOSUID)
        .map_err(err("mounting a tmpfs for --device nodes"))?;
    let shift = |id: u32| if id < super::range::SIZE { base + id } else { base + super::range::SIZE - 2 };
    for (i, d) in spec.devices.iter().enumerate() {
        let st = rustix::fs::stat(&d.host).map_err(err(format!("--device {}", d.host.display())))?;
        let name = format!("d{i}");
        let kind = rustix::fs::FileType::from_raw_mode(st.st_mode);
        let mode = rustix::fs::Mode::from_raw_mode(st.st_mode & 0o777);
        rustix::fs::mknodat(&t, name.as_str(), kind, mode, st.st_rdev)
            .and_then(|_| rustix::fs::chmodat(&t, name.as_str(), mode, rustix::fs::AtFlags::empty()))
            .and_then(|_| {
                rustix::fs::chownat(
                    &t,
                    name.as_str(),
                    Some(rustix::fs::Uid::from_raw(shift(st.st_uid))),
                    Some(rustix::fs::Gid::from_raw(shift(st.st_gid))),
                    rustix::fs::AtFlags::empty(),
                )
            })
            .map_err(err(format!("making the node for --device {}", d.host.display())))?;
    }
    Ok(t)
}

fn sysfs() -> Result<OwnedFd, RuntimeError> {
    let attrs = sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV | sys::MOUNT_ATTR_NOEXEC;
    detached("sysfs", &[], attrs).map_err(err("mounting a sysfs for the container"))
}

/// A disk image's filesystem, mounted here as a detached mount (nodev;
/// read-only when asked): opening the device happens on the host side,
/// outside the container's device allow-list.
fn block(device: &Path, fstype: &str, ro: bool) -> Result<OwnedFd, RuntimeError> {
    let source = device.to_string_lossy();
    let (options, attrs) = if ro {
        (vec![("source", Some(source.as_ref())), ("ro", None)], sys::MOUNT_ATTR_NODEV | sys::MOUNT_ATTR_RDONLY)
    } else {
        (vec![("source", Some(source.as_ref()))], sys::MOUNT_ATTR_NODEV)
    };
    detached(fstype, &options, attrs).map_err(err(format!("mounting {} ({fstype})", device.display())))
}

/// `--overlay`/`--overlay-ro`: its layers and upper opened here, to be
/// mounted inside as the root's overlay is. The work directory is the
/// upper's hidden sibling (overlayfs wants both on one mount).
fn user_overlay(lowers: &[PathBuf], upper: Option<&Path>, readonly: bool) -> Result<UserMount, RuntimeError> {
    for l in lowers {
        if !l.is_dir() {
            return Err(RuntimeError::Setup(format!("overlay lower {} is not a directory", l.display())));
        }
    }
    let mut all: Vec<PathBuf> = Vec::new();
    let mut up = None;
    match (upper, readonly) {
        (Some(u), false) => {
            let (Some(dir), Some(name)) = (u.parent(), u.file_name()) else {
                return Err(RuntimeError::Invalid(format!("bad overlay upper {}", u.display())));
            };
            let work = format!(".{}.berth-work", name.to_string_lossy());
            std::fs::create_dir_all(dir.join(&work))
                .map_err(|e| RuntimeError::sys("creating the overlay workdir", e))?;
            up = Some(Upper { dir: layer(dir)?, upper: name.to_os_string(), work: work.into() });
        }
        (Some(u), true) => all.push(u.to_path_buf()),
        (None, _) => {}
    }
    all.extend(lowers.iter().cloned());
    if readonly && all.len() == 1 {
        let fd = clone_tree(&all[0], true)?;
        restrict(&fd, sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV, &all[0])?;
        return Ok(UserMount::Tree { fd, dir: true, idmap: false });
    }
    let lowers = all.iter().map(|l| layer(l)).collect::<Result<Vec<_>, _>>()?;
    Ok(UserMount::Layers { lowers, throwaway: !readonly && up.is_none(), upper: up })
}
