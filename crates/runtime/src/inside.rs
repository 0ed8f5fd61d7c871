//! Work done inside a running machine by a child of berth: `berth cp`'s
//! machine half and `berth bind`.
//!
//! The child turns non-dumpable (nothing inside can ptrace it or open its
//! /proc files), joins the machine's cgroup and namespaces through a
//! pidfd as `berth exec` does (a reused pid cannot redirect it), and
//! forks the worker into the machine's pid namespace, so it dies with the
//! machine. From then on it has the rights of the machine's root and
//! nothing more of the host than the descriptors it was handed.
//! Its error comes back as one line on a pipe of its own.

use crate::machine::{leader_pidfd, own_userns, State};
use crate::rootfs::{Kind, Root};
use crate::{sys, RuntimeError};
use rustix::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::io::Read;

/// A child working inside a machine.
pub struct Inside {
    pid: libc::pid_t,
    err: OwnedFd,
}

/// Starts a child that runs `f` inside machine `st` (in its user
/// namespace as its root, in its mount namespace at its root), keeping
/// only descriptors `keep` (and 0-2). Call while this process has no
/// other thread.
pub fn spawn(st: &State, keep: &[RawFd], f: impl FnOnce() -> Result<(), RuntimeError>) -> Result<Inside, RuntimeError> {
    let pidfd = leader_pidfd(st)?;
    // The machine's own capabilities, never more (as `exec`).
    let mask = match st.caps {
        Some(m) => m,
        None => crate::caps::compute(crate::caps::DEFAULT, &[], &[], &[]).map_err(RuntimeError::Invalid)?,
    } & crate::caps::host_bounding();
    let st = st.clone();
    fork(keep, &pidfd, move |_| {
        // As `exec` enters: the machine's cgroup (its limits and device
        // rules apply), all its namespaces; then once more through fork,
        // so the worker is in its pid namespace and dies with it: a copy
        // never keeps a stopped machine's mounts in use.
        crate::machine::enter(&st)?;
        crate::creds::become_user(&crate::creds::Creds::root(), mask, true, None)
            .map_err(|e| RuntimeError::sys("taking the machine's capabilities", e))?;
        not_dumpable()?;
        match sys::clone_fork(0).map_err(|e| RuntimeError::sys("forking", e))? {
            None => f(),
            Some(pid) => match sys::waitpid(pid, false) {
                Ok(Some((_, exit))) => sys::exit_now(exit.status()),
                _ => sys::exit_now(1),
            },
        }
    })
}

fn not_dumpable() -> Result<(), RuntimeError> {
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(|e| RuntimeError::sys("making berth non-dumpable", e))
}

/// Forks a child that runs `f` (given the leader's pidfd) with only
/// descriptors `keep` (and 0-2) open, non-dumpable from the start.
fn fork(
    keep: &[RawFd],
    pidfd: &OwnedFd,
    f: impl FnOnce(&OwnedFd) -> Result<(), RuntimeError>,
) -> Result<Inside, RuntimeError> {
    let (err_r, err_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| RuntimeError::sys("creating a pipe", e))?;
    match sys::clone_fork(0).map_err(|e| RuntimeError::sys("forking", e))? {
        Some(pid) => Ok(Inside { pid, err: err_r }),
        None => {
            drop(err_r);
            let mut all: Vec<RawFd> = keep.to_vec();
            all.extend([err_w.as_raw_fd(), pidfd.as_raw_fd()]);
            let r = sys::close_fds_except(&all)
                .map_err(|e| RuntimeError::sys("closing descriptors", e))
                .and_then(|()| not_dumpable())
                .and_then(|()| f(pidfd));
            match r {
                Ok(()) => sys::exit_now(0),
                Err(e) => {
                    let _ = rustix::io::write(&err_w, e.to_string().as_bytes());
                    sys::exit_now(1)
                }
            }
        }
    }
}

impl Inside {
    /// Waits for the child; its error, if it failed.
    pub fn wait(self) -> Result<(), RuntimeError> {
        let mut msg = String::new();
        let _ = std::fs::File::from(self.err).read_to_string(&mut msg);
        let exit = loop {
            match sys::waitpid(self.pid, false) {
                Ok(Some((_, exit))) => break exit,
                Ok(None) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(RuntimeError::sys("waiting for berth's child", e)),
            }
        };
        match (exit.status(), msg.trim()) {
            (0, _) => Ok(()),
            (_, "") => Err(RuntimeError::Setup(format!("berth's child in the machine failed ({})", exit.status()))),
            (_, m) => Err(RuntimeError::Setup(m.to_string())),
        }
    }
}

/// `berth bind`: mounts host path `src` at `dst` inside running machine
/// `st` (nosuid, nodev; read-only when asked), creating `dst` first when
/// `mkdir`. Returns once the mount is in place.
///
/// A machine whose root holds `CAP_SYS_ADMIN` in its user namespace
/// could remount a read-only bind writable, or clear nosuid, if the
/// mount reached its namespace as a plain move: only a mount copied into
/// a mount namespace that another user namespace owns comes locked. So
/// the child attaches the tree in a private namespace of the host's
/// (on a tmpfs of its own), joins the machine's user namespace, makes a
/// mount namespace there (the copy locks every flag), clones the tree
/// from it and only then enters the machine's mount namespace to attach
/// it, as the runtime does for `--bind-ro` (see `init::split_off`).
pub fn bind(
    st: &State,
    src: &std::path::Path,
    dst: &std::path::Path,
    read_only: bool,
    mkdir: bool,
) -> Result<(), RuntimeError> {
    use rustix::mount::{self as m, MoveMountFlags as MF, OpenTreeFlags as TF};
    let md = std::fs::metadata(src).map_err(|e| RuntimeError::sys(format!("{}", src.display()), e))?;
    let kind = if md.is_dir() { Kind::Dir } else { Kind::File };
    let clone = TF::OPEN_TREE_CLONE | TF::OPEN_TREE_CLOEXEC | TF::AT_RECURSIVE;
    let tree = m::open_tree(rustix::fs::CWD, src, clone)
        .map_err(|e| RuntimeError::sys(format!("opening {}", src.display()), e))?;
    let mut attrs = sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV;
    if read_only {
        attrs |= sys::MOUNT_ATTR_RDONLY;
    }
    sys::mount_setattr_fd(&tree, attrs, None, true)
        .and_then(|()| sys::mount_make_private_fd(&tree))
        .map_err(|e| RuntimeError::sys(format!("restricting the mount of {}", src.display()), e))?;
    let pidfd = leader_pidfd(st)?;
    let userns = own_userns(st.leader)?;
    // The mount namespace is entered last, as the machine's root: through
    // a pidfd that needs ptrace rights over the leader, which the host's
    // berth init (non-dumpable, of the host's users) grants host root
    // only. Opened now, and the leader checked to be the same after.
    let mnt_ns = std::fs::File::open(format!("/proc/{}/ns/mnt", st.leader))
        .map_err(|e| RuntimeError::sys(format!("opening machine {:?}'s mounts", st.name), e))?;
    if !st.alive() {
        return Err(RuntimeError::Invalid(format!("machine {:?} stopped meanwhile", st.name)));
    }
    let dst = dst.to_path_buf();
    let name = st.name.clone();
    let child = fork(&[tree.as_raw_fd(), mnt_ns.as_raw_fd()], &pidfd, move |pidfd| {
        let sys_err = |what: &'static str| move |e: rustix::io::Errno| RuntimeError::sys(what, e);
        let tree = match userns {
            false => tree,
            true => {
                let stage = std::path::Path::new("/tmp/berth-bind");
                sys::private_mount_namespace().map_err(|e| RuntimeError::sys("a private mount namespace", e))?;
                m::mount("tmpfs", "/tmp", "tmpfs", m::MountFlags::NOSUID | m::MountFlags::NODEV, Some(c"mode=0755"))
                    .map_err(sys_err("mounting a staging tmpfs"))?;
                match kind {
                    Kind::Dir => std::fs::create_dir(stage).map(|_| ()),
                    Kind::File => std::fs::File::create(stage).map(|_| ()),
                }
                .map_err(|e| RuntimeError::sys("making the staging mount point", e))?;
                m::move_mount(&tree, "", rustix::fs::CWD, stage, MF::MOVE_MOUNT_F_EMPTY_PATH)
                    .map_err(sys_err("staging the mount"))?;
                sys::setns_pidfd(pidfd, libc::CLONE_NEWUSER)
                    .map_err(|e| RuntimeError::sys("entering the machine's users", e))?;
                crate::creds::become_ns_root().map_err(|e| RuntimeError::sys("becoming the machine's root", e))?;
                not_dumpable()?;
                sys::private_mount_namespace().map_err(|e| RuntimeError::sys("locking the mount", e))?;
                m::open_tree(rustix::fs::CWD, stage, clone).map_err(sys_err("cloning the locked mount"))?
            }
        };
        use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};
        move_into_link_name_space(mnt_ns.as_fd(), Some(LinkNameSpaceType::Mount))
            .map_err(sys_err("entering the machine's mounts"))?;
        let root = Root::open(std::path::Path::new("/"))?;
        let target = match mkdir {
            true => root.target(&dst, kind)?,
            false => root.existing(&dst).map_err(|e| match e {
                rustix::io::Errno::NOENT => RuntimeError::Invalid(format!(
                    "{} does not exist in machine {:?}: add --mkdir to create it",
                    dst.display(),
                    name
                )),
                e => RuntimeError::sys(format!("resolving {} in the machine", dst.display()), e),
            })?,
        };
        let is_dir = rustix::fs::fstat(&target.0)
            .map(|s| rustix::fs::FileType::from_raw_mode(s.st_mode) == rustix::fs::FileType::Directory)
            .map_err(sys_err("reading the mount point"))?;
        if is_dir != (kind == Kind::Dir) {
            return Err(RuntimeError::Invalid(format!(
                "{} in the machine is {} and the source {}: bind a directory on a directory, a file on a file",
                dst.display(),
                if is_dir { "a directory" } else { "not a directory" },
                if kind == Kind::Dir { "is one" } else { "is not" }
            )));
        }
        m::move_mount(&tree, "", &target.0, "", MF::MOVE_MOUNT_F_EMPTY_PATH | MF::MOVE_MOUNT_T_EMPTY_PATH)
            .map_err(sys_err("attaching the mount"))
    })?;
    child.wait()
}
