//! Network namespaces held by descriptor: making a fresh one, opening a
//! process's, and running a closure inside one on a short-lived thread so
//! the calling thread's namespace never changes.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};

/// A network namespace, alive at least as long as this descriptor is open
/// (and then as long as a process, socket or bind mount still uses it).
#[derive(Debug)]
pub struct NetNs(OwnedFd);

impl NetNs {
    /// A new, empty network namespace (only a down `lo` in it).
    pub fn new() -> io::Result<NetNs> {
        let fd = on_thread(|| {
            crate::sys::unshare_net()?;
            open_ns_file(Path::new("/proc/thread-self/ns/net"))
        })??;
        Ok(NetNs(fd))
    }

    /// The namespace at `path`, e.g. `/proc/PID/ns/net` or a file under
    /// `/run/netns`.
    pub fn open(path: &Path) -> io::Result<NetNs> {
        open_ns_file(path).map(NetNs)
    }

    /// Runs `f` on a new thread that has entered this namespace and returns
    /// what it returns.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> io::Result<T> {
        run_in(self.0.as_fd(), f)
    }
}

impl AsFd for NetNs {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl From<OwnedFd> for NetNs {
    fn from(fd: OwnedFd) -> NetNs {
        NetNs(fd)
    }
}

/// Runs `f` on a new thread that first enters the network namespace
/// `netns`; the thread ends with `f`, so no thread of the process is left
/// in another namespace. Sockets `f` makes stay in `netns`.
pub fn run_in<T: Send>(netns: BorrowedFd<'_>, f: impl FnOnce() -> T + Send) -> io::Result<T> {
    on_thread(move || {
        move_into_link_name_space(netns, Some(LinkNameSpaceType::Network))?;
        Ok(f())
    })?
}

/// The calling thread moved into another network namespace, back in its
/// own when dropped: what a process cloned meanwhile starts in (berth's
/// `--network-namespace-path`, whose container joins a namespace that a
/// user namespace of its own could not enter).
#[derive(Debug)]
pub struct Joined(OwnedFd);

impl Joined {
    pub fn enter(target: &NetNs) -> io::Result<Joined> {
        let back = open_ns_file(Path::new("/proc/thread-self/ns/net"))?;
        move_into_link_name_space(target.as_fd(), Some(LinkNameSpaceType::Network))?;
        Ok(Joined(back))
    }
}

impl Drop for Joined {
    fn drop(&mut self) {
        if let Err(e) = move_into_link_name_space(self.0.as_fd(), Some(LinkNameSpaceType::Network)) {
            tracing::error!("returning to berth's own network namespace: {e}");
        }
    }
}

/// The network namespace a user named (`--network-namespace-path`): a
/// namespace file (nsfs: `/run/netns/NAME`, `/proc/PID/ns/net`) of the
/// network type; anything else is refused with what it is not.
pub fn open_named(path: &Path) -> Result<NetNs, String> {
    const NSFS_MAGIC: i64 = 0x6e73_6673;
    let shown = path.display();
    let fd = open_ns_file(path).map_err(|e| format!("--network-namespace-path {shown}: {e}"))?;
    let fs = rustix::fs::fstatfs(&fd).map_err(|e| format!("--network-namespace-path {shown}: {e}"))?;
    if fs.f_type as i64 != NSFS_MAGIC {
        return Err(format!(
            "--network-namespace-path {shown}: not a namespace file (use /run/netns/NAME or /proc/PID/ns/net)"
        ));
    }
    // The kernel tells the type: entering it as a network namespace on a
    // throwaway thread fails (EINVAL) for any other kind.
    match run_in(fd.as_fd(), || ()) {
        Ok(()) => Ok(NetNs(fd)),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            Err(format!("--network-namespace-path {shown}: a namespace, but not a network namespace"))
        }
        Err(e) => Err(format!("--network-namespace-path {shown}: {e}")),
    }
}

fn on_thread<T: Send>(f: impl FnOnce() -> T + Send) -> io::Result<T> {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("berth-netns".into())
            .spawn_scoped(s, f)?
            .join()
            .map_err(|_| io::Error::other("thread in a network namespace panicked"))
    })
}

fn open_ns_file(path: &Path) -> io::Result<OwnedFd> {
    use rustix::fs::{open, Mode, OFlags};
    Ok(open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?)
}
