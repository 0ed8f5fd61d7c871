//! The container's mount table, built inside its new mount namespace: the
//! root (overlay, bind or volatile variant), `/proc` with masked paths,
//! read-only `/sys`, a small `/dev`, `/run`, `/tmp`, `/etc/resolv.conf`,
//! user mounts, then pivot_root (for an init split off into a nested user
//! namespace, a move onto `/` and a chroot: see [`setup`]); `/proc`,
//! `/dev/mqueue` and a sysfs of the container's network come from the
//! init itself ([`kernel_fs`]). Every target inside the root is resolved
//! with `openat2(RESOLVE_IN_ROOT)` and mounted on through its
//! `/proc/self/fd` link, so an image's symlinks (`/proc -> /etc`) cannot
//! aim a mount or a write at the host. A booted machine with an addressed
//! `host0` also gets berth's networkd file in its fresh `/run`
//! ([`crate::net::networkd`]), written here before its init starts.

use crate::spec::{BindMount, ResolvConf, RunSpec, Volatile};
use crate::userns::idmap::{detached, Devices, HostMounts, RootMount, Upper, UserMount};
use crate::{sys, RuntimeError};
use rustix::fd::{AsRawFd, OwnedFd};
use rustix::fs::{self as rfs, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use rustix::mount::{self as m, MountFlags as F, MountPropagationFlags, UnmountFlags};
use std::ffi::CString;
use std::path::{Component, Path, PathBuf};

const IN_ROOT: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

fn err(what: impl Into<String>) -> impl FnOnce(Errno) -> RuntimeError {
    let what = what.into();
    move |e| RuntimeError::sys(what, e)
}

fn cstr(s: &str) -> CString {
    CString::new(s).unwrap_or_default()
}

fn mount_fs(src: &str, target: &Path, fstype: &str, flags: F, data: &str) -> Result<(), RuntimeError> {
    let d = cstr(data);
    m::mount(src, target, fstype, flags, if data.is_empty() { None } else { Some(d.as_c_str()) })
        .map_err(err(format!("mounting {fstype} on {}", target.display())))
}

/// What kind of node a mount target should be.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Kind {
    Dir,
    File,
}

/// The container root, opened once; targets are resolved inside it.
pub(crate) struct Root {
    fd: OwnedFd,
}

/// A mount target resolved inside the root: mount onto `path()`.
pub(crate) struct Target(pub(crate) OwnedFd);

impl Target {
    fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.0.as_raw_fd()))
    }
}

impl Root {
    pub(crate) fn open(path: &Path) -> Result<Root, RuntimeError> {
        let fd = rfs::open(path, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(err(format!("opening {}", path.display())))?;
        Ok(Root { fd })
    }

    /// Resolves `rel` inside the root, which must exist.
    pub(crate) fn existing(&self, rel: &Path) -> Result<Target, Errno> {
        let rel = rel.strip_prefix("/").unwrap_or(rel);
        let rel = if rel.as_os_str().is_empty() { Path::new(".") } else { rel };
        crate::openat2::openat2(&self.fd, rel, OFlags::PATH | OFlags::CLOEXEC, Mode::empty(), IN_ROOT).map(Target)
    }

    /// Resolves `rel` inside the root, creating it (and its parents) as
    /// `kind` when missing.
    pub(crate) fn target(&self, rel: &Path, kind: Kind) -> Result<Target, RuntimeError> {
        let rel = rel.strip_prefix("/").unwrap_or(rel);
        let mut cur = rustix::io::dup(&self.fd).map_err(err("dup"))?;
        let comps: Vec<_> =
            rel.components().filter(|c| matches!(c, Component::Normal(_) | Component::ParentDir)).collect();
        // Each prefix is resolved from the root, so a link on the way (an
        // absolute one: /var/run -> /run) means what it means inside.
        let mut acc = PathBuf::new();
        for (i, c) in comps.iter().enumerate() {
            let last = i + 1 == comps.len();
            let name = c.as_os_str();
            acc.push(name);
            let open =
                || crate::openat2::openat2(&self.fd, &acc, OFlags::PATH | OFlags::CLOEXEC, Mode::empty(), IN_ROOT);
            let next = match open() {
                Ok(fd) => fd,
                Err(Errno::NOENT) => {
                    // `cur` came from O_PATH: reopen it as a real directory to create in.
                    let dir = crate::openat2::openat2(
                        &cur,
                        ".",
                        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
                        Mode::empty(),
                        IN_ROOT,
                    )
                    .map_err(err(format!("opening {}", rel.display())))?;
                    if last && kind == Kind::File {
                        let r = rfs::openat(
                            &dir,
                            name,
                            OFlags::CREATE | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                            Mode::from_raw_mode(0o644),
                        );
                        match r {
                            Ok(_) | Err(Errno::EXIST) => {}
                            Err(e) => {
                                return Err(RuntimeError::sys(
                                    format!("creating {} in the container", rel.display()),
                                    e,
                                ))
                            }
                        }
                    } else {
                        match rfs::mkdirat(&dir, name, Mode::from_raw_mode(0o755)) {
                            Ok(()) | Err(Errno::EXIST) => {}
                            Err(e) => {
                                return Err(RuntimeError::sys(
                                    format!("creating {} in the container", rel.display()),
                                    e,
                                ))
                            }
                        }
                    }
                    open().map_err(err(format!("opening {} in the container", rel.display())))?
                }
                Err(e) => return Err(RuntimeError::sys(format!("resolving {} in the container", rel.display()), e)),
            };
            cur = next;
        }
        Ok(Target(cur))
    }

    /// Bind-mounts `src` onto `rel` (created as `kind`), read-only if asked.
    /// The read-only remount goes through a handle resolved after the bind,
    /// which lands on the new mount rather than the node it covers.
    fn bind(&self, src: &Path, rel: &Path, kind: Kind, recursive: bool, readonly: bool) -> Result<(), RuntimeError> {
        let t = self.target(rel, kind)?;
        let r = if recursive { m::mount_bind_recursive(src, t.path()) } else { m::mount_bind(src, t.path()) };
        r.map_err(err(format!("binding {} to {}", src.display(), rel.display())))?;
        // All the way down: a mount below the source keeps its own flags
        // under a plain remount of the top.
        if readonly {
            let attrs = sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV;
            let t = self.target(rel, kind)?;
            sys::mount_setattr_path(&t.path(), attrs, true)
                .map_err(|e| RuntimeError::sys(format!("restricting {}", rel.display()), e))?;
        }
        Ok(())
    }

    /// A writable directory handle for `rel`'s parent plus the final name.
    fn parent(&self, rel: &Path) -> Result<Option<(OwnedFd, std::ffi::OsString)>, RuntimeError> {
        let rel = rel.strip_prefix("/").unwrap_or(rel);
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else { return Ok(None) };
        let parent = if parent.as_os_str().is_empty() { Path::new(".") } else { parent };
        match crate::openat2::openat2(
            &self.fd,
            parent,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
            IN_ROOT,
        ) {
            Ok(fd) => Ok(Some((fd, name.to_os_string()))),
            Err(Errno::NOENT) | Err(Errno::NOTDIR) => Ok(None),
            Err(e) => Err(RuntimeError::sys(format!("opening {} in the container", parent.display()), e)),
        }
    }
}

/// Builds the mount table on a scratch tmpfs over `run_dir` and pivots
/// into it. Everything from the host's filesystems comes in as a detached
/// mount in `host` (made before the container's namespaces existed); host
/// paths looked up here are world-readable ones (`/dev/null`, os-release).
///
/// `split`: the table is for an init cloned after this (see
/// `init::split_off`), whose copy of it will be locked. The root is then
/// moved onto `/` and chrooted into rather than pivoted to: the host's
/// mounts stay below it, out of reach (covered, and no path leads there),
/// but present, which is what lets the init mount a procfs of its own
/// (the kernel wants one fully visible in the namespace) in
/// [`kernel_fs`]. Without `split`, [`kernel_fs`] runs here before the pivot.
pub fn setup(
    spec: &RunSpec,
    run_dir: &OwnedFd,
    console: Option<&Path>,
    host: &HostMounts,
    split: bool,
) -> Result<(), RuntimeError> {
    m::mount_change("/", MountPropagationFlags::PRIVATE | MountPropagationFlags::REC)
        .map_err(err("making / private"))?;
    let scratch_fd = scratch(run_dir)?;
    let scratch = PathBuf::from(format!("/proc/self/fd/{}", scratch_fd.as_raw_fd()));
    let root_path = scratch.join("root");
    std::fs::create_dir(&root_path).map_err(|e| RuntimeError::sys("creating the root's mount point", e))?;
    mount_root(spec, &scratch, &root_path, &host.root)?;
    let root = Root::open(&root_path)?;
    // /proc, a sysfs of the container's network and /dev/mqueue belong to
    // its pid, network and IPC namespaces: mounted here (after /dev) when
    // this process is the init, else by the init ([`kernel_fs`]). Their
    // mount points are made now, while the root may still be written.
    for d in ["proc", "sys"] {
        root.target(Path::new(d), Kind::Dir)?;
    }
    if let Some(sysfs) = &host.sysfs {
        let t = root.target(Path::new("sys"), Kind::Dir)?;
        attach(sysfs, Path::new("/sys"), Some(&t.0), "/sys")?;
    }
    mount_dev(&root, console)?;
    if !split {
        kernel_fs_in(&root, host, false)?;
    }
    // The host's node (or a copy the container's root owns), bound: the
    // bind keeps the flags of the mount it comes from, where devices open;
    // the cgroup allows this one.
    match &host.devices {
        Devices::Nodes(nodes) => {
            for (d, fd) in spec.devices.iter().zip(nodes) {
                let t = root.target(&d.container, Kind::File)?;
                attach(fd, &d.container, Some(&t.0), &d.container.display().to_string())?;
            }
        }
        Devices::Shifted(tmpfs) => {
            let dir = scratch.join("devices");
            std::fs::create_dir(&dir).map_err(|e| RuntimeError::sys("creating the devices' mount point", e))?;
            attach(tmpfs, &dir, None, "the --device nodes")?;
            for (i, d) in spec.devices.iter().enumerate() {
                root.bind(&dir.join(format!("d{i}")), &d.container, Kind::File, false, false)?;
            }
        }
    }
    for (dst, mode) in [("run", "0755"), ("tmp", "1777")] {
        let t = root.target(Path::new(dst), Kind::Dir)?;
        mount_fs("tmpfs", &t.path(), "tmpfs", F::NOSUID | F::NODEV, &format!("mode={mode}"))?;
    }
    run_host(&root)?;
    if spec.boot {
        if let Some(text) = spec.network.as_ref().and_then(crate::net::networkd::host0_network) {
            networkd_file(&root, &text)?;
        }
    }
    let ro_root = spec.read_only || spec.volatile == Volatile::State;
    let dns = spec.network.as_ref().and_then(|n| n.dns);
    resolv_conf(&root, &scratch, spec.resolv_conf, dns, ro_root)?;
    if let Some(hosts) = &host.hosts {
        hosts_file(&root, hosts, ro_root)?;
    }
    for (i, (mnt, made)) in spec.mounts.iter().zip(&host.user).enumerate() {
        user_mount(&root, &scratch, i, mnt, made.as_ref())?;
    }
    if spec.volatile == Volatile::State {
        let t = root.target(Path::new("var"), Kind::Dir)?;
        mount_fs("tmpfs", &t.path(), "tmpfs", F::NOSUID | F::NODEV, "mode=0755")?;
    }
    drop(root);
    if ro_root {
        // Added to the root's flags (a remount would replace them, nodev
        // included); /dev, /run, /tmp and binds keep theirs.
        sys::mount_setattr_path(&root_path, sys::MOUNT_ATTR_RDONLY, false)
            .map_err(|e| RuntimeError::sys("making the root read-only", e))?;
    }
    rustix::process::chdir(&root_path).map_err(err("entering the root"))?;
    if split {
        m::mount_move(".", "/").map_err(err("moving the root onto /"))?;
        rustix::process::chroot(".").map_err(err("chroot"))?;
    } else {
        rustix::process::pivot_root(".", ".").map_err(err("pivot_root"))?;
        m::unmount(".", UnmountFlags::DETACH).map_err(err("detaching the old root"))?;
    }
    rustix::process::chdir("/").map_err(err("chdir /"))?;
    Ok(())
}

/// The mounts tied to the container's own pid, network and IPC
/// namespaces, made by its init: `/proc` (with its masks), `/sys` when the
/// host did not make one, `/dev/mqueue`. No host path is involved, and
/// nothing here needs /proc before it is mounted.
pub fn kernel_fs(host: &HostMounts) -> Result<(), RuntimeError> {
    kernel_fs_in(&Root::open(Path::new("/"))?, host, true)
}

/// `split`: the init, chrooted, where no host /sys is left to fall back to.
fn kernel_fs_in(root: &Root, host: &HostMounts, split: bool) -> Result<(), RuntimeError> {
    mount_proc(root)?;
    if host.sysfs.is_none() {
        mount_sys(root, split)?;
    }
    let t = root.target(Path::new("dev/mqueue"), Kind::Dir)?;
    attach(&fresh("mqueue", KERNEL_FS)?, Path::new("/dev/mqueue"), Some(&t.0), "/dev/mqueue")
}

/// nosuid, nodev and noexec: the kernel's own filesystems.
const KERNEL_FS: u64 = sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV | sys::MOUNT_ATTR_NOEXEC;

/// [`detached`], the error naming `fstype`.
fn fresh(fstype: &str, attrs: u64) -> Result<OwnedFd, RuntimeError> {
    detached(fstype, &[], attrs).map_err(err(format!("mounting {fstype}")))
}

/// A tmpfs of the container's own over `run_dir` (which, inside a user
/// namespace, container root could not write to): the root's mount point
/// and the overlay's layers go there. Returns a handle on it.
fn scratch(run_dir: &OwnedFd) -> Result<OwnedFd, RuntimeError> {
    use rustix::mount::MoveMountFlags;
    let run = || -> Result<OwnedFd, Errno> {
        let mnt = detached("tmpfs", &[("mode", Some("0700"))], sys::MOUNT_ATTR_NODEV | sys::MOUNT_ATTR_NOSUID)?;
        m::move_mount(
            &mnt,
            "",
            run_dir,
            "",
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
        )?;
        Ok(mnt)
    };
    run().map_err(err("mounting the scratch tmpfs"))
}

/// Attaches the detached mount `mnt` on `target` (a path or, when `at` is
/// given, that handle itself).
fn attach(mnt: &OwnedFd, target: &Path, at: Option<&OwnedFd>, what: &str) -> Result<(), RuntimeError> {
    use rustix::mount::MoveMountFlags as MF;
    let r = match at {
        Some(fd) => m::move_mount(mnt, "", fd, "", MF::MOVE_MOUNT_F_EMPTY_PATH | MF::MOVE_MOUNT_T_EMPTY_PATH),
        None => m::move_mount(mnt, "", rfs::CWD, target, MF::MOVE_MOUNT_F_EMPTY_PATH),
    };
    r.map_err(err(format!("attaching {what}")))
}

fn overlay(lowers: &[PathBuf], upper: Option<(&Path, &Path)>, target: &Path) -> Result<(), RuntimeError> {
    let esc = |p: &Path| p.display().to_string().replace('\\', "\\\\").replace(':', "\\:").replace(',', "\\,");
    // userxattr: berth's layers and uppers keep overlayfs' metadata in
    // user.overlay.* (the store's format), the only kind overlayfs reads
    // inside a user namespace.
    let mut opts = format!("lowerdir={}", lowers.iter().map(|p| esc(p)).collect::<Vec<_>>().join(":"));
    if let Some((u, w)) = upper {
        opts += &format!(",upperdir={},workdir={}", esc(u), esc(w));
    }
    opts += ",userxattr";
    // nodev: a device node shipped in an image or made with mknod in the
    // container never opens a host device; the nodes berth allows live in
    // the container's /dev.
    if opts.len() < 4000 {
        return mount_fs("overlay", target, "overlay", F::NODEV, &opts);
    }
    // Too long for one page: the new mount API takes one lower at a time.
    use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags};
    let e = err(format!("mounting overlayfs on {}", target.display()));
    let fs = m::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).map_err(err("fsopen overlay"))?;
    let run = || -> Result<(), Errno> {
        m::fsconfig_set_flag(&fs, "userxattr")?;
        for l in lowers {
            m::fsconfig_set_string(&fs, "lowerdir+", l.as_path())?;
        }
        if let Some((u, w)) = upper {
            m::fsconfig_set_string(&fs, "upperdir", u)?;
            m::fsconfig_set_string(&fs, "workdir", w)?;
        }
        m::fsconfig_create(&fs)?;
        let mnt = m::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::MOUNT_ATTR_NODEV)?;
        m::move_mount(&mnt, "", rfs::CWD, target, MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH)
    };
    run().map_err(e)
}

fn mount_root(spec: &RunSpec, scratch: &Path, root: &Path, host: &RootMount) -> Result<(), RuntimeError> {
    // The tree as it is, at `target`.
    let base = |target: &Path, writable: bool| -> Result<(), RuntimeError> {
        match host {
            RootMount::Tree(fd) => attach(fd, target, None, "the root tree"),
            RootMount::Overlay { lowers, upper } => {
                layers(scratch, "r", lowers, upper.as_ref().filter(|_| writable), false, target)
            }
        }
    };
    match spec.volatile {
        Volatile::No | Volatile::State => base(root, true),
        Volatile::Overlay => {
            let lower = scratch.join("lower");
            let vol = scratch.join("volatile");
            for d in [&lower, &vol] {
                std::fs::create_dir_all(d).map_err(|e| RuntimeError::sys("creating volatile dirs", e))?;
            }
            base(&lower, false)?;
            mount_fs("tmpfs", &vol, "tmpfs", F::NODEV, "mode=0755")?;
            for d in ["upper", "work"] {
                std::fs::create_dir(vol.join(d)).map_err(|e| RuntimeError::sys("creating volatile dirs", e))?;
            }
            overlay(&[lower], Some((&vol.join("upper"), &vol.join("work"))), root)
        }
        Volatile::Yes => {
            let lower = scratch.join("lower");
            std::fs::create_dir_all(&lower).map_err(|e| RuntimeError::sys("creating volatile dirs", e))?;
            base(&lower, false)?;
            mount_fs("tmpfs", root, "tmpfs", F::NODEV, "mode=0755")?;
            let usr = root.join("usr");
            std::fs::create_dir(&usr).map_err(|e| RuntimeError::sys("creating /usr", e))?;
            let src = lower.join("usr");
            if !std::fs::symlink_metadata(&src).is_ok_and(|m| m.is_dir()) {
                return Err(RuntimeError::Setup("--volatile=yes needs a /usr directory in the tree".into()));
            }
            m::mount_bind_recursive(&src, &usr).map_err(err("binding /usr"))?;
            sys::mount_setattr_path(&usr, sys::MOUNT_ATTR_RDONLY, true)
                .map_err(|e| RuntimeError::sys("making /usr read-only", e))?;
            // usr-merged trees need their /bin, /lib… symlinks.
            for l in ["bin", "sbin", "lib", "lib64", "lib32", "libx32"] {
                if let Ok(t) = std::fs::read_link(lower.join(l)) {
                    let _ = std::os::unix::fs::symlink(t, root.join(l));
                }
            }
            Ok(())
        }
    }
}

/// Mounts an overlay on `target` from detached `lowers` (top first) and
/// `upper`, attached under `scratch` first (names starting with `tag`);
/// `throwaway`: a tmpfs upper whose changes vanish with the container.
fn layers(
    scratch: &Path,
    tag: &str,
    lowers: &[OwnedFd],
    upper: Option<&Upper>,
    throwaway: bool,
    target: &Path,
) -> Result<(), RuntimeError> {
    let mut paths = Vec::new();
    for (i, l) in lowers.iter().enumerate() {
        let p = scratch.join(format!("{tag}l{i}"));
        std::fs::create_dir(&p).map_err(|e| RuntimeError::sys("creating a layer's mount point", e))?;
        attach(l, &p, None, "a layer")?;
        paths.push(p);
    }
    let up = scratch.join(format!("{tag}u"));
    let upper = match (upper, throwaway) {
        (Some(u), _) => {
            std::fs::create_dir(&up).map_err(|e| RuntimeError::sys("creating the upper's mount point", e))?;
            attach(&u.dir, &up, None, "the overlay's upper directory")?;
            Some((up.join(&u.upper), up.join(&u.work)))
        }
        (None, true) => {
            std::fs::create_dir(&up).map_err(|e| RuntimeError::sys("creating the upper's mount point", e))?;
            mount_fs("tmpfs", &up, "tmpfs", F::NODEV, "mode=0755")?;
            for d in ["upper", "work"] {
                std::fs::create_dir(up.join(d)).map_err(|e| RuntimeError::sys("creating overlay scratch", e))?;
            }
            Some((up.join("upper"), up.join("work")))
        }
        (None, false) => None,
    };
    if upper.is_none() && paths.len() == 1 {
        // overlayfs wants two layers or an upper: one layer alone is the
        // tree itself, read-only.
        m::mount_bind(&paths[0], target).map_err(err("binding a layer"))?;
        return sys::mount_setattr_path(target, sys::MOUNT_ATTR_RDONLY, true)
            .map_err(|e| RuntimeError::sys("making the layer read-only", e));
    }
    overlay(&paths, upper.as_ref().map(|(u, w)| (u.as_path(), w.as_path())), target)
}

/// `/run/host/`: what the container may know of its host, as systemd
/// defines it — the manager's name and the host's os-release.
fn run_host(root: &Root) -> Result<(), RuntimeError> {
    let host = root.target(Path::new("run/host"), Kind::Dir)?;
    let dir = host.path();
    std::fs::write(dir.join("container-manager"), b"berth\n")
        .map_err(|e| RuntimeError::sys("writing /run/host/container-manager", e))?;
    let os = ["/etc/os-release", "/usr/lib/os-release"].into_iter().map(Path::new).find(|p| p.exists());
    if let Some(os) = os {
        drop(host);
        root.bind(os, Path::new("run/host/os-release"), Kind::File, false, true)?;
    }
    Ok(())
}

/// berth's `.network` file for `host0` (see [`crate::net::networkd`]),
/// in the container's fresh `/run`: 0755 directories and a 0644 file
/// whatever berth's umask, since networkd reads it as a user of its own.
fn networkd_file(root: &Root, text: &str) -> Result<(), RuntimeError> {
    use std::io::Write;
    let rel = Path::new(crate::net::networkd::HOST0_NETWORK);
    let (Some(dir), Some(name)) = (rel.parent(), rel.file_name()) else { return Ok(()) };
    let what = format!("writing /{}", rel.display());
    let open_dir = |t: &Target| {
        rfs::openat(&t.0, ".", OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            .map_err(err(what.clone()))
    };
    let leaf = open_dir(&root.target(dir, Kind::Dir)?)?;
    // The directories below /run (whose own mode came with its tmpfs).
    for d in dir.ancestors().filter(|d| d.components().count() > 1) {
        let fd = open_dir(&root.target(d, Kind::Dir)?)?;
        rfs::fchmod(&fd, Mode::from_raw_mode(0o755)).map_err(err(what.clone()))?;
    }
    let fd = rfs::openat(
        &leaf,
        name,
        OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )
    .map_err(err(what.clone()))?;
    rfs::fchmod(&fd, Mode::from_raw_mode(0o644)).map_err(err(what.clone()))?;
    std::fs::File::from(fd).write_all(text.as_bytes()).map_err(|e| RuntimeError::sys(what, e))
}

fn mount_proc(root: &Root) -> Result<(), RuntimeError> {
    let proc_t = root.target(Path::new("proc"), Kind::Dir)?;
    attach(&fresh("proc", KERNEL_FS)?, Path::new("/proc"), Some(&proc_t.0), "/proc")?;
    // Re-resolve: the handle now lands on the fresh procfs, not the
    // directory it covers; sub-paths go through its /proc/self/fd link.
    let base = root.target(Path::new("proc"), Kind::Dir)?;
    let proc_dir = base.path();
    // Kernel-global information a container has no business reading.
    for f in [
        "kcore",
        "keys",
        "key-users",
        "timer_list",
        "sched_debug",
        "latency_stats",
        "timer_stats",
        "sysrq-trigger-mask",
    ] {
        let p = proc_dir.join(f);
        if p.exists() {
            m::mount_bind("/dev/null", &p).map_err(err(format!("masking /proc/{f}")))?;
        }
    }
    for d in ["acpi", "scsi"] {
        let p = proc_dir.join(d);
        if p.is_dir() {
            mount_fs("tmpfs", &p, "tmpfs", F::RDONLY, "mode=0555")?;
        }
    }
    for f in ["sys", "sysrq-trigger", "bus", "fs", "irq"] {
        let p = proc_dir.join(f);
        if p.exists() {
            m::mount_bind(&p, &p).map_err(err(format!("binding /proc/{f}")))?;
            m::mount_remount(&p, F::BIND | F::RDONLY | F::NOSUID | F::NODEV | F::NOEXEC, "")
                .map_err(err(format!("making /proc/{f} read-only")))?;
        }
    }
    Ok(())
}

fn mount_sys(root: &Root, split: bool) -> Result<(), RuntimeError> {
    let t = root.target(Path::new("sys"), Kind::Dir)?;
    match fresh("sysfs", KERNEL_FS | sys::MOUNT_ATTR_RDONLY) {
        Ok(fd) => attach(&fd, Path::new("/sys"), Some(&t.0), "/sys"),
        Err(e) if split => Err(e),
        // The host's sysfs alone, not what is mounted below it.
        Err(_) => root.bind(Path::new("/sys"), Path::new("sys"), Kind::Dir, false, true),
    }
}

/// The device nodes every container gets (besides its pty and console).
const ALLOWED_DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

fn mount_dev(root: &Root, console: Option<&Path>) -> Result<(), RuntimeError> {
    let t = root.target(Path::new("dev"), Kind::Dir)?;
    // The tmpfs is nodev, so a node made here with mknod opens nothing;
    // the allowed nodes are the host's own, bound one by one (a bind keeps
    // the flags of the host's /dev, where devices open).
    mount_fs("tmpfs", &t.path(), "tmpfs", F::NOSUID | F::NODEV | F::STRICTATIME, "mode=0755,size=4m,nr_inodes=64k")?;
    let base = root.target(Path::new("dev"), Kind::Dir)?;
    let dev = base.path();
    for name in ALLOWED_DEVICES {
        let p = dev.join(name);
        std::fs::write(&p, b"").map_err(|e| RuntimeError::sys(format!("creating /dev/{name}"), e))?;
        m::mount_bind(Path::new("/dev").join(name), &p).map_err(err(format!("binding /dev/{name}")))?;
    }
    let pts = dev.join("pts");
    std::fs::create_dir(&pts).map_err(|e| RuntimeError::sys("creating /dev/pts", e))?;
    mount_fs("devpts", &pts, "devpts", F::NOSUID | F::NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5")?;
    let link = |target: &str, name: &str| {
        std::os::unix::fs::symlink(target, dev.join(name))
            .map_err(|e| RuntimeError::sys(format!("creating /dev/{name}"), e))
    };
    link("pts/ptmx", "ptmx")?;
    link("/proc/self/fd", "fd")?;
    link("/proc/self/fd/0", "stdin")?;
    link("/proc/self/fd/1", "stdout")?;
    link("/proc/self/fd/2", "stderr")?;
    link("/proc/kcore", "core")?;
    let shm = dev.join("shm");
    std::fs::create_dir(&shm).map_err(|e| RuntimeError::sys("creating /dev/shm", e))?;
    mount_fs("tmpfs", &shm, "tmpfs", F::NOSUID | F::NODEV, "mode=1777")?;
    // Mounted with the container's IPC namespace, in `kernel_fs`.
    std::fs::create_dir(dev.join("mqueue")).map_err(|e| RuntimeError::sys("creating /dev/mqueue", e))?;
    if let Some(c) = console {
        let p = dev.join("console");
        std::fs::write(&p, b"").map_err(|e| RuntimeError::sys("creating /dev/console", e))?;
        m::mount_bind(c, &p).map_err(err("binding the console"))?;
    }
    Ok(())
}

/// The host's resolv.conf as `mode` wants it in the container. On a
/// network that forwards DNS at the bridge (`dns`), loopback resolvers are
/// replaced by the bridge's address, in a copy made in `scratch` (which
/// the bind modes bind instead of the host's file).
fn resolv_conf(
    root: &Root,
    scratch: &Path,
    mode: ResolvConf,
    dns: Option<std::net::Ipv4Addr>,
    ro_root: bool,
) -> Result<(), RuntimeError> {
    if mode == ResolvConf::Off {
        return Ok(());
    }
    let Some((etc, name)) = root.parent(Path::new("etc/resolv.conf"))? else { return Ok(()) };
    let existing = rfs::statat(&etc, &name, rfs::AtFlags::SYMLINK_NOFOLLOW).ok();
    let is_link =
        existing.as_ref().is_some_and(|st| rfs::FileType::from_raw_mode(st.st_mode) == rfs::FileType::Symlink);
    let mut source = crate::net::dns::host_resolv_conf();
    let mut host = std::fs::read(&source).unwrap_or_default();
    if let Some(gw) = dns {
        let text = String::from_utf8_lossy(&host);
        if crate::net::dns::loopback_resolver(&text).is_some() {
            host = crate::net::dns::for_machine(&text, gw).into_bytes();
            source = scratch.join("resolv.conf");
            std::fs::write(&source, &host).map_err(|e| RuntimeError::sys("writing the machine's resolv.conf", e))?;
        }
    }
    let bind = || -> Result<(), RuntimeError> {
        // Binding needs a file to cover; a read-only tree without one
        // stays as it is rather than be written to.
        if is_link || existing.is_none() || !source.exists() {
            return Ok(());
        }
        root.bind(&source, Path::new("etc/resolv.conf"), Kind::File, false, true)
    };
    let write = |replace: bool| -> Result<(), RuntimeError> {
        if is_link && !replace {
            return Ok(()); // the image manages it (e.g. systemd-resolved's stub)
        }
        if existing.is_some() {
            match rfs::unlinkat(&etc, &name, rfs::AtFlags::empty()) {
                Ok(()) => {}
                // A tree the container's root does not own
                // (--private-users-ownership=off): the host's file bound
                // over it, as for a read-only root.
                Err(Errno::ACCESS | Errno::PERM) => return bind(),
                Err(e) => return Err(RuntimeError::sys("removing /etc/resolv.conf", e)),
            }
        }
        let fd = rfs::openat(
            &etc,
            &name,
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .map_err(err("writing /etc/resolv.conf"))?;
        rustix::io::write(&fd, &host).map_err(err("writing /etc/resolv.conf"))?;
        Ok(())
    };
    match mode {
        ResolvConf::Off => Ok(()),
        ResolvConf::BindHost => bind(),
        ResolvConf::CopyHost if ro_root => bind(),
        ResolvConf::CopyHost => write(false),
        ResolvConf::ReplaceHost if ro_root => bind(),
        ResolvConf::ReplaceHost => write(true),
        ResolvConf::Delete if ro_root => Ok(()),
        ResolvConf::Delete => match existing {
            Some(_) => rfs::unlinkat(&etc, &name, rfs::AtFlags::empty()).map_err(err("removing /etc/resolv.conf")),
            None => Ok(()),
        },
    }
}

/// The network's hosts file over `/etc/hosts`, read-only (berth rewrites
/// it in place as machines come and go; see `net::hosts`). A read-only
/// tree without the file is left as it is.
fn hosts_file(root: &Root, hosts: &OwnedFd, ro_root: bool) -> Result<(), RuntimeError> {
    let rel = Path::new("etc/hosts");
    if ro_root && root.existing(rel).is_err() {
        return Ok(());
    }
    let t = root.target(rel, Kind::File)?;
    attach(hosts, Path::new("/etc/hosts"), Some(&t.0), "/etc/hosts")
}

fn user_mount(
    root: &Root,
    scratch: &Path,
    i: usize,
    mnt: &BindMount,
    made: Option<&UserMount>,
) -> Result<(), RuntimeError> {
    match (mnt, made) {
        (BindMount::Tmpfs { dst, options }, _) => {
            let t = root.target(dst, Kind::Dir)?;
            mount_fs("tmpfs", &t.path(), "tmpfs", F::NOSUID | F::NODEV, options)
        }
        (BindMount::Bind { dst, .. } | BindMount::Overlay { dst, .. }, Some(UserMount::Tree { fd, dir, .. })) => {
            let t = root.target(dst, if *dir { Kind::Dir } else { Kind::File })?;
            attach(fd, dst, Some(&t.0), &dst.display().to_string())
        }
        (BindMount::Overlay { dst, .. }, Some(UserMount::Layers { lowers, upper, throwaway })) => {
            let t = root.target(dst, Kind::Dir)?;
            layers(scratch, &format!("o{i}"), lowers, upper.as_ref(), *throwaway, &t.path())
        }
        _ => Err(RuntimeError::Setup(format!("{mnt:?} was not prepared"))),
    }
}
