//! `openat2(2)` with `RESOLVE_IN_ROOT`/`RESOLVE_BENEATH`, retried on
//! `EAGAIN`: the kernel answers that when a rename or mount anywhere on
//! the system raced a `..` in the resolution (it cannot then prove the
//! walk stayed inside), and asks the caller to try again; on a host
//! starting containers, mounts are constant. (The same few lines live in
//! berth-store and berth-runtime, which share no crate below them.)

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// Tries before `EAGAIN` is given up on: a race lasts microseconds.
const TRIES: u32 = 1000;

pub(crate) fn openat2<Fd: AsFd, P: AsRef<Path>>(
    dirfd: Fd,
    path: P,
    oflags: OFlags,
    mode: Mode,
    resolve: ResolveFlags,
) -> rustix::io::Result<OwnedFd> {
    let mut tries = 0;
    loop {
        match rustix::fs::openat2(dirfd.as_fd(), path.as_ref(), oflags, mode, resolve) {
            Err(Errno::AGAIN | Errno::INTR) if tries < TRIES => tries += 1,
            r => return r,
        }
    }
}
