//! Machine names on a berth network: a hosts file per network,
//! `DIR/NETWORK.hosts`, bound read-only over every machine's `/etc/hosts`
//! and kept current by berth whenever a lease is taken or given back.
//!
//! A hosts file rather than a resolver (podman's aardvark-dns, Docker's
//! embedded DNS): berth has no daemon, and a resolver would have to
//! outlive every run to answer; a file needs nothing running, every libc
//! and static binary (busybox, musl, Go) reads `/etc/hosts`, and the names
//! change only when a lease does, which berth makes and gives back itself.
//! The price: a machine's image `/etc/hosts` is covered while it is on the
//! network (it holds `localhost` lines, which this file has too).
//!
//! Names are the machines' (`m:STORE:NAME` leases, kept across runs) and
//! named runs' (`-M NAME` with `-D`/`-i`); an unnamed run has no entry.
//! `host.berth.internal` is the bridge, the host as machines reach it.
//!
//! The file is rewritten in place, never replaced: a bind mount holds the
//! inode it was made with. A shorter text is padded with blank lines to
//! the old length before the file is cut, so a reader never sees the tail
//! of an older line. Writers hold `DIR/NETWORK.hosts.lock` (root's alone:
//! every machine can open the hosts file itself, so a lock on it would be
//! a lock any machine could hold forever) and read the leases inside it,
//! so the last writer writes the newest set.

use std::fmt::Write as _;
use std::io::{Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::ipam::{self, Ipam, IpamError, Lease};

/// The name `host_if`-style owners carry last: `m:STORE:NAME` or
/// `r:PID:START:NAME` (a named run).
pub fn owner_name(owner: &str) -> Option<&str> {
    let name = match owner.split_once(':') {
        Some(("m", rest)) => rest.split_once(':').map(|(_, n)| n),
        Some(("r", rest)) => rest.splitn(3, ':').nth(2),
        _ => None,
    }?;
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    ok.then_some(name)
}

/// The hosts file of `network`.
pub fn path(dir: &Path, network: &str) -> PathBuf {
    dir.join(format!("{network}.hosts"))
}

/// What the file says for `leases` on a network whose bridge is `gateway`.
pub fn render(network: &str, gateway: std::net::Ipv4Addr, leases: &[Lease]) -> String {
    let mut s = format!(
        "# berth network {network}: its machines by name, kept current by berth (edits are lost)\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         ff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n\
         {gateway}\thost.berth.internal\n"
    );
    let mut named: Vec<(&str, &Lease)> = leases.iter().filter_map(|l| owner_name(&l.owner).map(|n| (n, l))).collect();
    named.sort_by_key(|(n, l)| (*n, l.addr.addr()));
    for (n, l) in &named {
        let _ = writeln!(s, "{}\t{n}", l.addr.addr());
    }
    for (n, l) in &named {
        let _ = writeln!(s, "{}\t{n}", l.addr6.addr());
    }
    s
}

/// Rewrites `network`'s hosts file from its leases now (made if missing).
pub fn refresh(dir: &Path, network: &str) -> Result<PathBuf, IpamError> {
    let path = path(dir, network);
    let io = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| IpamError::Io { what, path, source }
    };
    let lock = dir.join(format!("{network}.hosts.lock"));
    let _lock = super::lockfile::take(&lock, true).map_err(io("locking", &lock))?;
    // Read by every machine (their root is mapped to another user), so
    // not lockfile::take's 0600; never through a symlink.
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .map_err(io("opening", &path))?;
    let ipam = Ipam::open(dir, network)?;
    let leases = ipam.list()?;
    let gateway = match ipam.subnet()? {
        Some(s) => ipam::gateway(s).addr(),
        None => std::net::Ipv4Addr::UNSPECIFIED,
    };
    let mut text = render(network, gateway, &leases).into_bytes();
    let len = text.len() as u64;
    let old = file.metadata().map_err(io("reading", &path))?.len();
    if old > len {
        text.resize(old as usize, b'\n');
    }
    file.rewind().map_err(io("writing", &path))?;
    file.write_all(&text).map_err(io("writing", &path))?;
    file.set_len(len).map_err(io("writing", &path))?;
    Ok(path)
}

/// Removes `network`'s hosts file (and its lock).
pub fn remove(dir: &Path, network: &str) {
    let _ = std::fs::remove_file(path(dir, network));
    let _ = std::fs::remove_file(dir.join(format!("{network}.hosts.lock")));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_machine_and_named_run_owners() {
        assert_eq!(owner_name("m:abc123:web"), Some("web"));
        assert_eq!(owner_name("r:42:9999:db.1"), Some("db.1"));
        assert_eq!(owner_name("r:42:9999"), None);
        assert_eq!(owner_name("m:abc:"), None);
        // Nothing that could break the file's lines.
        assert_eq!(owner_name("m:k:evil\n1.2.3.4 bank"), None);
        assert_eq!(owner_name("m:k:a b"), None);
    }

    #[test]
    fn renders_each_named_lease_v4_then_v6() {
        let dir = tempfile::tempdir().unwrap();
        let ipam = Ipam::open(dir.path(), "n").unwrap();
        let subnet: ipnet::Ipv4Net = "10.90.0.0/16".parse().unwrap();
        ipam.allocate("m:k:web", subnet).unwrap();
        ipam.allocate("r:1:2", subnet).unwrap();
        ipam.allocate("r:1:3:db", subnet).unwrap();
        let p = refresh(dir.path(), "n").unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let ula = ipam.ula().unwrap().network();
        assert!(text.contains("10.90.0.1\thost.berth.internal\n"), "{text}");
        assert!(text.contains("10.90.0.2\tweb\n"), "{text}");
        assert!(text.contains("10.90.0.4\tdb\n"), "{text}");
        assert!(!text.contains("10.90.0.3"), "{text}");
        assert!(text.contains(&format!("{}\tweb\n", std::net::Ipv6Addr::from(u128::from(ula) | 2))), "{text}");
        // Shrinks in place: the same inode, no trailing leftovers.
        let ino = std::fs::metadata(&p).map(|m| std::os::unix::fs::MetadataExt::ino(&m)).unwrap();
        ipam.release("m:k:web").unwrap();
        refresh(dir.path(), "n").unwrap();
        let after = std::fs::read_to_string(&p).unwrap();
        assert!(!after.contains("web"), "{after}");
        assert!(after.ends_with("db\n"), "{after}");
        assert_eq!(std::fs::metadata(&p).map(|m| std::os::unix::fs::MetadataExt::ino(&m)).unwrap(), ino);
    }
}
