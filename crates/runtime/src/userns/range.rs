//! Which 65536 host IDs a container maps its users to.
//!
//! berth owns the IDs from 0x80000 up to 0x6FFF0000, in slots of 65536,
//! skipping every slot that overlaps a range in `/etc/subuid` or
//! `/etc/subgid` (those belong to rootless podman and friends). A slot
//! is in use while a lock on `/var/lib/berth-userns/SLOT` is held: the
//! kernel drops it when the holder exits, however it exits, so a crashed
//! run leaks nothing and two running containers never share IDs, whatever
//! store they come from. A machine's slot is also reserved while it is
//! stopped: the file names its store and machine, and other runs pass it
//! by for as long as that machine's record still names the slot (so a
//! removed or renamed machine frees it without a step of its own). A
//! machine asks for its slot again and gets another one only if a
//! running container holds it (idmapped mounts make a move free).
//!
//! systemd-nspawn picks its `-U` ranges from the same span and locks them
//! on `/run/systemd/nspawn-uid/BASE` (an open-file-description lock since
//! systemd 254, a flock before; the file is deleted on release): berth
//! takes both locks there for every slot it uses and passes by a slot
//! nspawn holds, so the two never share IDs. Like nspawn, it also passes
//! by a slot where `/etc/passwd` or `/etc/group` names an ID.

use crate::RuntimeError;
use rustix::fs::{flock, FlockOperation, Mode, OFlags};
use rustix::io::Errno;
use std::os::fd::AsFd;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// IDs per container: uid 0 to 65535, as systemd-nspawn and podman give.
pub const SIZE: u32 = 65536;
/// The first ID berth hands out: above every ID a host gives its users.
pub const FIRST: u32 = 0x80000;
/// One past the last.
pub const END: u32 = 0x7000_0000;

/// A range of host IDs: container ID `n` is host ID `base + n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IdRange {
    pub base: u32,
    pub count: u32,
}

impl IdRange {
    /// The line for `/proc/PID/uid_map` and `gid_map`.
    pub fn map_line(&self) -> String {
        format!("0 {} {}\n", self.base, self.count)
    }

    /// Whether this range shares an ID with `start..start+count`. The
    /// sum saturates: a host file may list a range up to `u64::MAX`, which
    /// overflowed (a panic in debug builds; in release the sum wrapped and
    /// a slot inside that range looked free).
    fn overlaps(&self, start: u64, count: u64) -> bool {
        let (a, b) = (self.base as u64, self.base as u64 + self.count as u64);
        start < b && a < start.saturating_add(count)
    }
}

/// A range held for one run; dropping it lets its slots go.
#[derive(Debug)]
pub struct Lease {
    pub range: IdRange,
    _locks: Vec<OwnedFd>,
    _nspawn: Vec<NspawnLock>,
}

/// systemd-nspawn's lock on a slot, held by berth.
#[derive(Debug)]
struct NspawnLock {
    path: PathBuf,
    _fd: OwnedFd,
}

impl Drop for NspawnLock {
    /// As nspawn does: the file goes while it is still locked (nspawn
    /// checks that the file it locked still has a name).
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// What came of trying systemd-nspawn's lock on a slot.
enum Nspawn {
    Locked(NspawnLock),
    /// A systemd-nspawn container holds the slot.
    Busy,
    /// The lock file cannot be made (a read-only or foreign `/run`):
    /// nspawn could not lock, nor pick, a range there either.
    Unlockable,
}

/// Takes systemd-nspawn's lock on slot `base` in `dir`, both kinds.
fn lock_nspawn(dir: &Path, base: u32) -> Nspawn {
    let path = dir.join(base.to_string());
    for _ in 0..8 {
        let flags = OFlags::CREATE | OFlags::RDWR | OFlags::CLOEXEC | OFlags::NOFOLLOW;
        let Ok(fd) = rustix::fs::open(&path, flags, Mode::from_raw_mode(0o600)) else { return Nspawn::Unlockable };
        let ofd = crate::sys::ofd_lock_exclusive(fd.as_fd()).map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::IO));
        for r in [flock(&fd, FlockOperation::NonBlockingLockExclusive), ofd] {
            match r {
                Ok(()) => {}
                Err(Errno::WOULDBLOCK) | Err(Errno::ACCESS) => return Nspawn::Busy,
                Err(_) => return Nspawn::Unlockable,
            }
        }
        // A lock on a file nspawn deleted as we opened it guards nothing.
        if rustix::fs::fstat(&fd).is_ok_and(|st| st.st_nlink > 0) {
            return Nspawn::Locked(NspawnLock { path, _fd: fd });
        }
    }
    Nspawn::Busy
}

impl Lease {
    /// A range given by the user (`identity`, `UID[:COUNT]`): every slot
    /// of berth's it overlaps is locked, so no container berth picks a
    /// range for shares IDs with it, and it is refused while a running
    /// container holds one of them.
    pub fn fixed(range: IdRange) -> Result<Lease, RuntimeError> {
        let dir = lock_dir();
        let nspawn = nspawn_dir();
        let (start, end) = (range.base as u64, range.base as u64 + range.count as u64);
        let (mut locks, mut theirs) = (Vec::new(), Vec::new());
        let mut slot = (start.max(FIRST as u64) / SIZE as u64) * SIZE as u64;
        while slot < end.min(END as u64) {
            std::fs::create_dir_all(&dir).map_err(|e| RuntimeError::sys(format!("creating {}", dir.display()), e))?;
            let busy = |who: &str| {
                RuntimeError::Invalid(format!(
                    "--private-users={}:{}: {who} holds host IDs {slot}..{} of it; pick another range",
                    range.base,
                    range.count,
                    slot + SIZE as u64 - 1
                ))
            };
            locks.push(lock_slot(&dir, slot as u32)?.ok_or_else(|| busy("a running container"))?);
            if let Some(n) = &nspawn {
                match lock_nspawn(n, slot as u32) {
                    Nspawn::Locked(l) => theirs.push(l),
                    Nspawn::Busy => return Err(busy("a systemd-nspawn container")),
                    Nspawn::Unlockable => {}
                }
            }
            slot += SIZE as u64;
        }
        Ok(Lease { range, _locks: locks, _nspawn: theirs })
    }
}

/// Where slot locks and reservations live: one place for every store on
/// the host (a second place would hand out the same IDs twice).
pub fn lock_dir() -> PathBuf {
    PathBuf::from("/var/lib/berth-userns")
}

/// Where systemd-nspawn locks the ranges it picks, when there is one:
/// without `/run/systemd` nspawn cannot lock (nor pick) a range either.
fn nspawn_dir() -> Option<PathBuf> {
    let dir = Path::new("/run/systemd/nspawn-uid");
    if !dir.parent().is_some_and(Path::is_dir) {
        return None;
    }
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().mode(0o755).create(dir) {
        Ok(()) => Some(dir.to_path_buf()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Some(dir.to_path_buf()),
        Err(_) => None,
    }
}

/// The machine a slot is reserved for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// Its store's root directory.
    pub store: PathBuf,
    pub machine: String,
}

impl Owner {
    fn encode(&self) -> Vec<u8> {
        format!("{}\n{}\n", self.store.display(), self.machine).into_bytes()
    }

    fn decode(b: &[u8]) -> Option<Owner> {
        let text = std::str::from_utf8(b).ok()?;
        let mut it = text.lines();
        let (store, machine) = (it.next()?, it.next()?);
        Some(Owner { store: PathBuf::from(store), machine: machine.to_string() })
    }

    /// Whether the machine still exists and its record names `base`.
    fn holds(&self, base: u32) -> bool {
        let rec = self.store.join("machines").join(&self.machine).join("machine.json");
        let Ok(body) = std::fs::read(rec) else { return false };
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        v.get("uid_base").and_then(|b| b.as_u64()) == Some(base as u64)
    }
}

/// `(start, count)` ranges of `/etc/subuid`-style text (pure).
pub fn parse_subids(text: &str) -> Vec<(u64, u64)> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let mut it = l.trim().split(':');
            let (_, s, c) = (it.next()?, it.next()?, it.next()?);
            Some((s.trim().parse().ok()?, c.trim().parse().ok()?))
        })
        .collect()
}

/// `(id, 1)` for every ID in `/etc/passwd`- or `/etc/group`-style text
/// (pure): the third field of each line.
pub fn parse_db_ids(text: &str) -> Vec<(u64, u64)> {
    text.lines().filter_map(|l| Some((l.split(':').nth(2)?.trim().parse().ok()?, 1))).collect()
}

/// Every slot berth may use, in order, without the ones in `reserved`
/// (pure).
pub fn slots(reserved: &[(u64, u64)]) -> impl Iterator<Item = IdRange> + '_ {
    (FIRST..END)
        .step_by(SIZE as usize)
        .map(|base| IdRange { base, count: SIZE })
        .filter(move |r| !reserved.iter().any(|&(s, c)| r.overlaps(s, c)))
}

/// The host's sub-ID ranges and the IDs of its users and groups, which
/// berth keeps clear of.
fn host_reserved() -> Vec<(u64, u64)> {
    let mut v = Vec::new();
    for f in ["/etc/subuid", "/etc/subgid"] {
        v.extend(parse_subids(&std::fs::read_to_string(f).unwrap_or_default()));
    }
    for f in ["/etc/passwd", "/etc/group"] {
        v.extend(
            parse_db_ids(&std::fs::read_to_string(f).unwrap_or_default())
                .into_iter()
                .filter(|&(id, _)| id >= FIRST as u64),
        );
    }
    v
}

/// Takes `preferred` when it is a valid slot, free and not another
/// machine's, else the first such slot; reserves it for `owner` (a
/// machine) until that machine's record names another one.
pub fn lease(preferred: Option<u32>, owner: Option<&Owner>) -> Result<Lease, RuntimeError> {
    let dir = lock_dir();
    std::fs::create_dir_all(&dir).map_err(|e| RuntimeError::sys(format!("creating {}", dir.display()), e))?;
    let nspawn = nspawn_dir();
    let nspawn = nspawn.as_deref();
    let reserved = host_reserved();
    let valid = |b: u32| (FIRST..END).contains(&b) && b.is_multiple_of(SIZE) && slots(&reserved).any(|r| r.base == b);
    if let Some(p) = preferred.filter(|p| valid(*p)) {
        if let Some(l) = try_slot(&dir, nspawn, p, owner)? {
            return Ok(l);
        }
    }
    for r in slots(&reserved) {
        if Some(r.base) == preferred {
            continue;
        }
        if let Some(l) = try_slot(&dir, nspawn, r.base, owner)? {
            return Ok(l);
        }
    }
    Err(RuntimeError::Setup(
        "no free range of user IDs: every one of berth's is in use; stop a container or use --private-users=no".into(),
    ))
}

/// The lock on slot `base`, unless a running container holds it.
fn lock_slot(dir: &Path, base: u32) -> Result<Option<OwnedFd>, RuntimeError> {
    let p = dir.join(base.to_string());
    let fd = rustix::fs::open(&p, OFlags::CREATE | OFlags::RDWR | OFlags::CLOEXEC, Mode::from_raw_mode(0o600))
        .map_err(|e| RuntimeError::sys(format!("opening {}", p.display()), e))?;
    match flock(&fd, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(Some(fd)),
        Err(Errno::WOULDBLOCK) => Ok(None),
        Err(e) => Err(RuntimeError::sys(format!("locking {}", p.display()), e)),
    }
}

/// Locks slot `base` unless a running container (berth's, or nspawn's in
/// `nspawn`) holds it or another machine has it reserved; records
/// `owner`'s reservation.
fn try_slot(
    dir: &Path,
    nspawn: Option<&Path>,
    base: u32,
    owner: Option<&Owner>,
) -> Result<Option<Lease>, RuntimeError> {
    let Some(fd) = lock_slot(dir, base)? else { return Ok(None) };
    let e = |what: &'static str| {
        let p = dir.join(base.to_string());
        move |e: Errno| RuntimeError::sys(format!("{what} {}", p.display()), e)
    };
    let mut buf = [0u8; 4096];
    let n = rustix::io::pread(&fd, &mut buf, 0).map_err(e("reading"))?;
    let current = Owner::decode(&buf[..n]);
    if let Some(c) = &current {
        if Some(c) != owner && c.holds(base) {
            return Ok(None); // another machine's, stopped
        }
    }
    let mut theirs = Vec::new();
    if let Some(n) = nspawn {
        match lock_nspawn(n, base) {
            Nspawn::Locked(l) => theirs.push(l),
            Nspawn::Busy => return Ok(None), // a systemd-nspawn container's
            Nspawn::Unlockable => {}
        }
    }
    if current.as_ref() != owner || (owner.is_none() && n > 0) {
        let body = owner.map(Owner::encode).unwrap_or_default();
        rustix::fs::ftruncate(&fd, 0).map_err(e("writing"))?;
        rustix::io::pwrite(&fd, &body, 0).map_err(e("writing"))?;
    }
    Ok(Some(Lease { range: IdRange { base, count: SIZE }, _locks: vec![fd], _nspawn: theirs }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_keep_clear_of_subids() {
        let sub = parse_subids("# comment\nalice:100000:65536\nbob:589824:1\nbad line\n");
        assert_eq!(sub, vec![(100000, 65536), (589824, 1)]);
        let first: Vec<u32> = slots(&sub).take(2).map(|r| r.base).collect();
        // 0x80000 = 524288 is clear; 589824 (0x90000) is taken by bob.
        assert_eq!(first, vec![0x80000, 0xA0000]);
        assert_eq!(IdRange { base: 0x80000, count: SIZE }.map_line(), "0 524288 65536\n");
        assert!(slots(&[]).all(|r| r.base >= FIRST && r.base + r.count <= END));
    }

    #[test]
    fn a_held_slot_is_not_handed_out_twice() {
        let dir = std::env::temp_dir().join(format!("berth-userns-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = try_slot(&dir, None, FIRST, None).unwrap().expect("free");
        // flock is per open file description: a second open conflicts.
        assert!(try_slot(&dir, None, FIRST, None).unwrap().is_none());
        drop(a);
        assert!(try_slot(&dir, None, FIRST, None).unwrap().is_some());
        // A reservation holds while the machine's record names the slot.
        let store = dir.join("store");
        let mdir = store.join("machines/m");
        std::fs::create_dir_all(&mdir).unwrap();
        std::fs::write(mdir.join("machine.json"), format!("{{\"uid_base\": {FIRST}}}")).unwrap();
        let owner = Owner { store: store.clone(), machine: "m".into() };
        drop(try_slot(&dir, None, FIRST, Some(&owner)).unwrap().expect("free for m"));
        assert!(try_slot(&dir, None, FIRST, None).unwrap().is_none(), "reserved for m");
        assert!(try_slot(&dir, None, FIRST, Some(&owner)).unwrap().is_some(), "m's own");
        std::fs::remove_dir_all(&mdir).unwrap();
        assert!(try_slot(&dir, None, FIRST, None).unwrap().is_some(), "m is gone: free again");
        // A slot systemd-nspawn holds is passed by; one berth holds is
        // locked for nspawn too.
        let nspawn = dir.join("nspawn-uid");
        std::fs::create_dir_all(&nspawn).unwrap();
        // systemd 254 and later: an open file description lock.
        let file = nspawn.join(FIRST.to_string());
        let theirs = std::fs::File::create(&file).unwrap();
        crate::sys::ofd_lock_exclusive(theirs.as_fd()).unwrap();
        assert!(try_slot(&dir, Some(&nspawn), FIRST, None).unwrap().is_none(), "nspawn's (OFD lock)");
        drop(theirs);
        // Before: a flock.
        let theirs = std::fs::File::open(&file).unwrap();
        flock(&theirs, FlockOperation::NonBlockingLockExclusive).unwrap();
        assert!(try_slot(&dir, Some(&nspawn), FIRST, None).unwrap().is_none(), "nspawn's (flock)");
        drop(theirs);
        let ours = try_slot(&dir, Some(&nspawn), FIRST, None).unwrap().expect("free again");
        let probe = std::fs::File::open(&file).unwrap();
        assert!(crate::sys::ofd_lock_exclusive(probe.as_fd()).is_err(), "OFD-locked for nspawn");
        assert_eq!(flock(&probe, FlockOperation::NonBlockingLockExclusive), Err(Errno::WOULDBLOCK));
        drop(ours);
        assert!(!file.exists(), "nspawn's lock file goes with the lock");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_range_reaching_past_u64_max_reserves_every_slot_above_it() {
        // Found by tests/fuzz/subids.rs: the end of this range overflowed.
        let sub = parse_subids("x:1:18446744073709551615\n");
        assert_eq!(sub, vec![(1, u64::MAX)]);
        assert_eq!(slots(&sub).next(), None);
        assert_eq!(slots(&[(u64::MAX, u64::MAX)]).next().map(|r| r.base), Some(FIRST));
    }

    #[test]
    fn user_and_group_ids_are_read_from_the_third_field() {
        let ids =
            parse_db_ids("root:x:0:0:root:/root:/bin/sh\nsvc:x:600000:600000::/:/bin/false\nbroken\nwheel:x:10:\n");
        assert_eq!(ids, vec![(0, 1), (600000, 1), (10, 1)]);
        let first: Vec<u32> = slots(&ids).take(1).map(|r| r.base).collect();
        // 600000 lies in 0x90000..0xA0000 (589824..655360).
        assert_eq!(slots(&[(600000, 1)]).nth(1).map(|r| r.base), Some(0xA0000));
        assert_eq!(first, vec![0x80000]);
    }
}
