//! Reading a guest's own files: `status` reads a machine's os-release
//! from the host, `exec` and the init read the container's `/etc/passwd`
//! and `/etc/group`. Every path is resolved inside the guest's root
//! (`openat2(RESOLVE_IN_ROOT)`, no magic links), so a symlink cannot lead
//! to a host file; only a regular file is read (a FIFO cannot hang the
//! reader, `/dev/zero` cannot feed it forever: the open is non-blocking
//! and the type checked on the open file), and at most [`LIMIT`] bytes.
//! A missing or hostile file reads as nothing.

use rustix::fs::{Mode, OFlags, ResolveFlags};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

/// The most read of one file: far above any real passwd or os-release.
pub const LIMIT: usize = 4 << 20;

/// The text of `rel` under `root`, or None.
pub fn read(root: impl AsFd, rel: &str) -> Option<String> {
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY;
    let fd: OwnedFd = crate::openat2::openat2(
        root,
        rel.trim_start_matches('/'),
        flags,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .ok()?;
    let st = rustix::fs::fstat(&fd).ok()?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return None;
    }
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        match rustix::io::read(&fd, &mut chunk) {
            Ok(0) => break,
            Ok(n) if buf.len() + n <= LIMIT => buf.extend_from_slice(&chunk[..n]),
            Ok(_) => return None,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return None,
        }
    }
    String::from_utf8(buf).ok()
}

/// The text of `rel` in the root of process `pid` (a machine's leader),
/// read from the host.
pub fn read_in_root_of(pid: i32, rel: &str) -> Option<String> {
    let root = rustix::fs::open(
        Path::new(&format!("/proc/{pid}/root")),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    read(&root, rel)
}

/// The text of `rel` in this process's own root (inside the container).
pub fn read_own(rel: &str) -> Option<String> {
    let root = rustix::fs::open("/", OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).ok()?;
    read(&root, rel)
}
