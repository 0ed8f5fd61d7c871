//! Address allocation for berth networks: one IPv4 address per owner (a
//! machine name), the same one every time until released, and an IPv6
//! address in the network's unique local /64 with the same host part.
//!
//! ```text
//! DIR/                      e.g. <store>/net, 0700
//! ├── net.lock              flock: exclusive around every read-modify-write,
//! │                         shared around reads; one lock for all networks
//! ├── NETWORK.json          {"version":1,"subnet":"10.88.0.0/16",
//! │                          "ula":"fd12:3456:789a::/64",
//! │                          "leases":{"web":"10.88.0.2"}}
//! └── NETWORK.json.tmp      the next NETWORK.json, fsynced, then renamed over it
//! ```
//!
//! In a subnet, `.0` (network), `.1` (the bridge, [`gateway`]) and the
//! broadcast address are never leased; the rest go lowest free first.

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use super::subnet::{self, SubnetError};

/// Version of the JSON files. Changing the layout without raising it
/// makes an older berth misread a newer file.
pub const FORMAT_VERSION: u32 = 1;

/// The lock file in the IPAM directory.
pub const LOCK_FILE: &str = "net.lock";

/// A state file larger than this is refused rather than read (65534
/// leases of 256-byte owners fit well under it).
const MAX_STATE_BYTES: u64 = 32 << 20;

/// Longest owner name.
pub const MAX_OWNER: usize = 256;

/// Errors from the address allocator.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    #[error("invalid network name {0:?}: 1 to 64 letters, digits, '-', '_' or '.', not starting with '.'")]
    InvalidNetwork(String),
    #[error("invalid lease owner {0:?}: 1 to {MAX_OWNER} bytes")]
    InvalidOwner(String),
    #[error("network {network}: subnet {subnet} has no room for a lease (longer than /30)")]
    SubnetTooSmall { network: String, subnet: Ipv4Net },
    #[error("network {network} leases from {recorded}, not {requested}; release its leases first")]
    SubnetMismatch { network: String, recorded: Ipv4Net, requested: Ipv4Net },
    #[error("network {network}: subnet {subnet} is full ({leased} addresses leased)")]
    Full { network: String, subnet: Ipv4Net, leased: usize },
    #[error("{what} {}: {source}", path.display())]
    Io { what: &'static str, path: PathBuf, source: io::Error },
    #[error("{}: {detail}", path.display())]
    Corrupt { path: PathBuf, detail: String },
    #[error(transparent)]
    Subnet(#[from] SubnetError),
}

/// One owner's addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub owner: String,
    /// The IPv4 address with the subnet's prefix length, e.g. `10.88.0.2/16`.
    pub addr: Ipv4Net,
    /// The IPv6 address in the network's ULA /64, same host part.
    pub addr6: Ipv6Net,
    /// The bridge's addresses, the container's default routes.
    pub gateway: Ipv4Addr,
    pub gateway6: Ipv6Addr,
}

/// The bridge's IPv4 address in `subnet`: the first host, `.1`.
pub fn gateway(subnet: Ipv4Net) -> Ipv4Net {
    let net = subnet.trunc();
    Ipv4Net::new(Ipv4Addr::from(u32::from(net.network()) + 1), net.prefix_len()).unwrap_or(net)
}

/// The bridge's IPv6 address in `ula`: `::1`.
pub fn gateway6(ula: Ipv6Net) -> Ipv6Net {
    let net = ula.trunc();
    Ipv6Net::new(Ipv6Addr::from(u128::from(net.network()) | 1), net.prefix_len()).unwrap_or(net)
}

#[derive(Debug, Serialize, Deserialize)]
struct State {
    version: u32,
    #[serde(default)]
    subnet: Option<Ipv4Net>,
    #[serde(default)]
    ula: Option<Ipv6Net>,
    #[serde(default)]
    leases: BTreeMap<String, Ipv4Addr>,
}

impl Default for State {
    fn default() -> State {
        State { version: FORMAT_VERSION, subnet: None, ula: None, leases: BTreeMap::new() }
    }
}

/// The allocator of one network, its state in `DIR/NETWORK.json`.
#[derive(Debug, Clone)]
pub struct Ipam {
    dir: PathBuf,
    network: String,
}

impl Ipam {
    /// The allocator of `network`, its files in `dir` (made, 0700, if
    /// missing). Nothing is read until an operation.
    pub fn open(dir: &Path, network: &str) -> Result<Ipam, IpamError> {
        check_network(network)?;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io_err("creating", dir))?;
        Ok(Ipam { dir: dir.to_path_buf(), network: network.to_string() })
    }

    pub fn network(&self) -> &str {
        &self.network
    }

    /// `owner`'s lease in `subnet`: the one it has, else the lowest free
    /// address. The first lease fixes the network's subnet and ULA prefix.
    pub fn allocate(&self, owner: &str, subnet: Ipv4Net) -> Result<Lease, IpamError> {
        check_owner(owner)?;
        let subnet = self.checked(subnet)?;
        self.modify(|state| {
            self.fix(state, subnet)?;
            if !state.leases.contains_key(owner) {
                let addr = free_address(state, subnet).ok_or_else(|| IpamError::Full {
                    network: self.network.clone(),
                    subnet,
                    leased: state.leases.len(),
                })?;
                state.leases.insert(owner.to_string(), addr);
            }
            self.lease_in(state, owner)?.ok_or_else(|| self.corrupt("lease vanished"))
        })
    }

    /// Fixes the network's subnet (and makes its ULA prefix) before any
    /// lease: what `berth network create` records. Returns the ULA /64.
    pub fn define(&self, subnet: Ipv4Net) -> Result<Ipv6Net, IpamError> {
        let subnet = self.checked(subnet)?;
        self.modify(|state| self.fix(state, subnet))
    }

    /// `subnet` without host bits, if it has room for a lease.
    fn checked(&self, subnet: Ipv4Net) -> Result<Ipv4Net, IpamError> {
        let subnet = subnet.trunc();
        if subnet.prefix_len() > 30 {
            return Err(IpamError::SubnetTooSmall { network: self.network.clone(), subnet });
        }
        Ok(subnet)
    }

    /// Records `subnet` (refused when leases come from another one) and
    /// the ULA prefix, made on first use; returns the prefix.
    fn fix(&self, state: &mut State, subnet: Ipv4Net) -> Result<Ipv6Net, IpamError> {
        match state.subnet {
            Some(recorded) if recorded != subnet && !state.leases.is_empty() => {
                return Err(IpamError::SubnetMismatch { network: self.network.clone(), recorded, requested: subnet })
            }
            _ => state.subnet = Some(subnet),
        }
        match state.ula {
            Some(ula) => Ok(ula),
            None => {
                let ula = subnet::random_ula()?;
                state.ula = Some(ula);
                Ok(ula)
            }
        }
    }

    /// Drops the leases whose owner `keep` says no to; how many went.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) -> Result<usize, IpamError> {
        // Most starts find nothing to drop: look before taking the
        // exclusive lock and rewriting.
        if self.read()?.leases.keys().all(|o| keep(o)) {
            return Ok(0);
        }
        self.modify(|state| {
            let before = state.leases.len();
            state.leases.retain(|o, _| keep(o));
            Ok(before - state.leases.len())
        })
    }

    /// Removes the network's file (its subnet, prefix and leases).
    pub fn forget(&self) -> Result<(), IpamError> {
        let _lock = DirLock::take(&self.dir, true)?;
        let path = self.path();
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(IpamError::Io { what: "removing", path, source: e }),
            _ => Ok(()),
        }
    }

    /// Gives `owner`'s address back; the address it had, if any.
    pub fn release(&self, owner: &str) -> Result<Option<Ipv4Addr>, IpamError> {
        check_owner(owner)?;
        self.modify(|state| Ok(state.leases.remove(owner)))
    }

    /// `owner`'s lease, if it has one.
    pub fn lease(&self, owner: &str) -> Result<Option<Lease>, IpamError> {
        check_owner(owner)?;
        self.lease_in(&self.read()?, owner)
    }

    /// Who holds `addr`.
    pub fn owner_of(&self, addr: Ipv4Addr) -> Result<Option<String>, IpamError> {
        let state = self.read()?;
        Ok(state.leases.iter().find(|(_, a)| **a == addr).map(|(o, _)| o.clone()))
    }

    /// Every lease, by owner.
    pub fn list(&self) -> Result<Vec<Lease>, IpamError> {
        let state = self.read()?;
        state.leases.keys().filter_map(|o| self.lease_in(&state, o).transpose()).collect()
    }

    /// The subnet the network's leases come from, once it has had one.
    pub fn subnet(&self) -> Result<Option<Ipv4Net>, IpamError> {
        Ok(self.read()?.subnet)
    }

    /// The network's unique local /64, made and stored on first use.
    pub fn ula(&self) -> Result<Ipv6Net, IpamError> {
        if let Some(ula) = self.read()?.ula {
            return Ok(ula);
        }
        self.modify(|state| match state.ula {
            Some(ula) => Ok(ula),
            None => {
                let ula = subnet::random_ula()?;
                state.ula = Some(ula);
                Ok(ula)
            }
        })
    }

    fn lease_in(&self, state: &State, owner: &str) -> Result<Option<Lease>, IpamError> {
        let Some(&addr) = state.leases.get(owner) else { return Ok(None) };
        let (Some(subnet), Some(ula)) = (state.subnet, state.ula) else {
            return Err(self.corrupt("leases without a subnet and ULA prefix"));
        };
        if !subnet.contains(&addr) {
            return Err(self.corrupt(&format!("lease {addr} of {owner} outside subnet {subnet}")));
        }
        let host = u32::from(addr) - u32::from(subnet.network());
        let addr6 = Ipv6Addr::from(u128::from(ula.network()) | u128::from(host));
        Ok(Some(Lease {
            owner: owner.to_string(),
            addr: Ipv4Net::new(addr, subnet.prefix_len()).unwrap_or(subnet),
            addr6: Ipv6Net::new(addr6, ula.prefix_len()).unwrap_or(ula),
            gateway: gateway(subnet).addr(),
            gateway6: gateway6(ula).addr(),
        }))
    }

    fn path(&self) -> PathBuf {
        self.dir.join(format!("{}.json", self.network))
    }

    fn corrupt(&self, detail: &str) -> IpamError {
        IpamError::Corrupt { path: self.path(), detail: detail.to_string() }
    }

    fn read(&self) -> Result<State, IpamError> {
        let _lock = DirLock::take(&self.dir, false)?;
        read_state(&self.path())
    }

    /// Runs `f` on the state under the exclusive lock; writes it back if
    /// `f` succeeds and changed it.
    fn modify<T>(&self, f: impl FnOnce(&mut State) -> Result<T, IpamError>) -> Result<T, IpamError> {
        let _lock = DirLock::take(&self.dir, true)?;
        let path = self.path();
        let mut state = read_state(&path)?;
        let encode = |state: &State, pretty: bool| {
            let json = if pretty { serde_json::to_vec_pretty(state) } else { serde_json::to_vec(state) };
            json.map_err(|e| self.corrupt(&e.to_string()))
        };
        let before = encode(&state, false)?;
        let out = f(&mut state)?;
        if encode(&state, false)? != before {
            write_atomic(&path, &encode(&state, true)?)?;
        }
        Ok(out)
    }
}

/// Every network in `dir` with the subnet it leases from: what
/// [`subnet::pick`] must not reuse.
pub fn subnets_in(dir: &Path) -> Result<Vec<(String, Ipv4Net)>, IpamError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("reading", dir)(e)),
    };
    let _lock = DirLock::take(dir, false)?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err("reading", dir))?;
        let name = entry.file_name();
        let Some(network) = name.to_str().and_then(|n| n.strip_suffix(".json")) else { continue };
        if check_network(network).is_err() {
            continue;
        }
        if let Some(subnet) = read_state(&entry.path())?.subnet {
            out.push((network.to_string(), subnet));
        }
    }
    out.sort();
    Ok(out)
}

/// The lowest address of `subnet` that is not the network, gateway or
/// broadcast address and not leased.
fn free_address(state: &State, subnet: Ipv4Net) -> Option<Ipv4Addr> {
    let used: HashSet<u32> = state.leases.values().map(|a| u32::from(*a)).collect();
    let first = u32::from(subnet.network()).checked_add(2)?;
    let last = u32::from(subnet.broadcast()).checked_sub(1)?;
    (first..=last).find(|a| !used.contains(a)).map(Ipv4Addr::from)
}

fn read_state(path: &Path) -> Result<State, IpamError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(State::default()),
        Err(e) => return Err(io_err("opening", path)(e)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_STATE_BYTES + 1).read_to_end(&mut bytes).map_err(io_err("reading", path))?;
    let corrupt = |detail: String| IpamError::Corrupt { path: path.to_path_buf(), detail };
    if bytes.len() as u64 > MAX_STATE_BYTES {
        return Err(corrupt(format!("larger than {MAX_STATE_BYTES} bytes")));
    }
    let state: State = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
    if state.version != FORMAT_VERSION {
        return Err(corrupt(format!("format version {} (this berth reads {FORMAT_VERSION})", state.version)));
    }
    Ok(state)
}

/// Writes `bytes` to `path.tmp`, syncs it, renames it over `path` and
/// syncs the directory: a crash leaves the old or the new file, whole.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), IpamError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err("creating", &tmp))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(io_err("writing", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err("renaming over", path))?;
    if let Some(dir) = path.parent() {
        File::open(dir).and_then(|d| d.sync_all()).map_err(io_err("syncing", dir))?;
    }
    Ok(())
}

/// `DIR/net.lock` held with flock until dropped (closing the descriptor
/// releases it).
struct DirLock {
    _held: File,
}

impl DirLock {
    fn take(dir: &Path, exclusive: bool) -> Result<DirLock, IpamError> {
        let path = dir.join(LOCK_FILE);
        let file = super::lockfile::take(&path, exclusive).map_err(io_err("locking", &path))?;
        Ok(DirLock { _held: file })
    }
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> IpamError + 'a {
    move |source| IpamError::Io { what, path: path.to_path_buf(), source }
}

/// Network names become file names: a safe, short alphabet.
fn check_network(name: &str) -> Result<(), IpamError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(IpamError::InvalidNetwork(name.to_string()))
    }
}

fn check_owner(owner: &str) -> Result<(), IpamError> {
    if owner.is_empty() || owner.len() > MAX_OWNER {
        return Err(IpamError::InvalidOwner(owner.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
