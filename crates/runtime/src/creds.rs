//! Becoming the container's user, between fork and exec: supplementary
//! groups, gid, the bounding set, uid (which clears a non-root user's
//! capabilities), root's capability set, no_new_privs, the seccomp filter.
//! In this order, because each step needs the privilege the next one drops.

use crate::{caps, sys};
use std::io;

/// Who the process becomes.
#[derive(Debug, Clone)]
pub struct Creds {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

impl Creds {
    pub fn root() -> Creds {
        Creds { uid: 0, gid: 0, groups: vec![0] }
    }
}

/// Applies `c`, keeping capabilities `mask` (for root), then
/// no_new_privs when `nnp` and the seccomp filter when `seccomp`. Runs in a
/// single-threaded child before exec.
pub fn become_user(c: &Creds, mask: u64, nnp: bool, filter: Option<&[crate::seccomp::SockFilter]>) -> io::Result<()> {
    let groups: Vec<rustix::process::Gid> = c.groups.iter().map(|g| rustix::process::Gid::from_raw(*g)).collect();
    rustix::thread::set_thread_groups(&groups)?;
    let g = rustix::process::Gid::from_raw(c.gid);
    rustix::thread::set_thread_res_gid(g, g, g)?;
    caps::drop_bounding(mask)?;
    // Without no_new_privs, installing a filter needs CAP_SYS_ADMIN: do it
    // while still root.
    if let (Some(f), false) = (filter, nnp) {
        sys::install_seccomp(f)?;
    }
    let u = rustix::process::Uid::from_raw(c.uid);
    // Root too: a process that joined a user namespace is still the host's
    // uid 0 (unmapped there) until it takes the namespace's root.
    rustix::thread::set_thread_res_uid(u, u, u)?;
    if c.uid == 0 {
        caps::set(mask)?;
    }
    if nnp {
        rustix::thread::set_no_new_privs(true)?;
    }
    if let (Some(f), true) = (filter, nnp) {
        sys::install_seccomp(f)?;
    }
    Ok(())
}

/// Takes uid and gid 0 of the user namespace this process was just
/// created in (or joined), keeping its capabilities there.
pub fn become_ns_root() -> io::Result<()> {
    let root = rustix::process::Gid::from_raw(0);
    rustix::thread::set_thread_groups(&[root])?;
    rustix::thread::set_thread_res_gid(root, root, root)?;
    let u = rustix::process::Uid::from_raw(0);
    Ok(rustix::thread::set_thread_res_uid(u, u, u)?)
}

/// The capabilities a process of `c` can use, for choosing its filter: a
/// non-root user under no_new_privs never holds any, whatever the
/// bounding set.
pub fn effective(c: &Creds, mask: u64, nnp: bool) -> u64 {
    if c.uid != 0 && nnp {
        0
    } else {
        mask
    }
}
