//! Spawning containers: namespaces, the root filesystem and its `/proc`,
//! `/sys`, `/dev`, pivot_root, users, capabilities, seccomp, cgroups
//! (v2, v1 and hybrid), the pty, and the tiny PID 1 that reaps and forwards
//! signals. No CLI parsing and no image fetching: callers hand in a
//! [`RunSpec`] with the root filesystem already chosen.

// Errors carry paths and names a user needs; they are built once per failed
// run, so their size costs nothing that matters.
#![allow(clippy::result_large_err)]

pub mod caps;
pub mod cgroup;
pub mod consolelog;
mod container;
pub mod copy;
mod creds;
pub mod detach;
pub mod devices;
pub mod exec;
pub mod guest;
mod init;
pub mod inside;
pub mod machine;
pub mod net;
mod openat2;
mod pty;
mod rootfs;
pub mod seccomp;
pub mod spec;
mod sys;
pub mod userns;
pub mod users;

pub use container::{run, run_hooked, Hooks, Outcome, Privileges};

/// Moves berth into a private mount namespace, so what it mounts (e.g. for
/// `export`) vanishes with it, whatever way it exits.
pub fn private_mount_namespace() -> Result<(), RuntimeError> {
    sys::private_mount_namespace().map_err(|e| RuntimeError::sys("entering a private mount namespace", e))
}
/// Whether descriptors 3..3+`n` are all open: `--preserve-fds` must be
/// checked before berth opens anything of its own, which would take the
/// lowest free numbers and be handed on in their place.
/// More than 1024 is refused.
pub fn caller_fds_open(n: u32) -> bool {
    n <= 1024 && (3..3 + n).all(|fd| sys::fd_is_open(fd as i32))
}

pub use pty::stdio_terminals;
pub use spec::{BindMount, Console, ConsolePlan, Rootfs, RunSpec, Volatile};
/// systemd's kind of lock file lock (its tests play systemd-nspawn with it).
pub use sys::ofd_lock_exclusive;

/// Errors from preparing or running a container.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{what}: {source}")]
    Sys { what: String, source: std::io::Error },
    #[error("{0}")]
    Setup(String),
    #[error("{0}")]
    Invalid(String),
}

impl RuntimeError {
    pub fn sys(what: impl Into<String>, e: impl Into<std::io::Error>) -> Self {
        RuntimeError::Sys { what: what.into(), source: e.into() }
    }
}
