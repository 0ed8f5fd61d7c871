//! berth's networks: each is a Linux bridge of the network's name with the
//! first address of its IPv4 subnet and of an IPv6 unique local /64, NAT
//! to the outside (see [`super::nat`]), and leases ([`super::ipam`]) for
//! the machines on it. The default one (`berth0`, `BERTH_NETWORK` names
//! another) is made on first use with a private /16 that clashes with no
//! route of the host.
//!
//! Their state is host-wide, like the bridges and addresses themselves:
//! `/var/lib/berth/networks` whatever store a command uses
//! (`BERTH_NET_DIR` moves it). Lease owners name the holder: a machine
//! (`m:STOREKEY:NAME`, kept across its runs and released by `berth rm`) or
//! one run (`r:PID:STARTTIME`, released when the run ends, and swept when
//! that process is gone — after a SIGKILL of berth, say). Changes to the
//! set of networks happen under `DIR/networks.lock`.
//!
//! A bridge berth does not manage (the user's) may be joined too: the
//! link comes up with no address, as systemd-nspawn's `--network-bridge`.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::Serialize;

use super::ipam::{self, Ipam, IpamError};
use super::{bind, dns, forward, hosts, nat, subnet, Netlink, NetlinkError, MAX_IFNAME};
use crate::spec::NetAttach;

/// Errors from managing networks.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error(transparent)]
    Ipam(#[from] IpamError),
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error(transparent)]
    Nat(#[from] nat::NatError),
    #[error(transparent)]
    Subnet(#[from] subnet::SubnetError),
    #[error("invalid network name {0:?}: 1 to 15 letters, digits, '-' or '_' (it names the bridge)")]
    InvalidName(String),
    #[error("network {0} exists already")]
    Exists(String),
    #[error("a link named {0} exists already and is not a berth network: pick another name")]
    LinkExists(String),
    #[error("no network or bridge named {0}: make it with `berth network create {0}`")]
    NotFound(String),
    #[error("no berth network named {0} (see `berth network ls`)")]
    NotOurs(String),
    #[error("network {name} has {count} machine(s) on it: stop them first")]
    InUse { name: String, count: usize },
    #[error("network {network}'s subnet {subnet} overlaps the host's route to {route} now: remove it (`berth network rm {network}`) and make it again with another --subnet")]
    Clash { network: String, subnet: Ipv4Net, route: Ipv4Net },
    #[error("--subnet {subnet} overlaps {range}, which is {what}: pick a private range such as 10.89.0.0/16")]
    Reserved { subnet: Ipv4Net, range: Ipv4Net, what: &'static str },
    #[error("--subnet {subnet} overlaps {other}: pick a subnet no route or network of this host uses")]
    Overlap { subnet: Ipv4Net, other: String },
    #[error("{what} {}: {source}", path.display())]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
}

/// Where networks are kept.
pub fn dir() -> PathBuf {
    std::env::var_os("BERTH_NET_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/var/lib/berth/networks"))
}

/// The network `--network-veth` joins.
pub fn default_name() -> String {
    std::env::var("BERTH_NETWORK").ok().filter(|n| !n.is_empty()).unwrap_or_else(|| "berth0".into())
}

/// Who holds a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner(String);

impl Owner {
    /// Machine `name` of the store in use (see [`crate::machine::use_store`]).
    pub fn machine(name: &str) -> Owner {
        let root = crate::machine::run_root();
        let key = root.file_name().map(|k| k.to_string_lossy().into_owned()).unwrap_or_default();
        Owner(format!("m:{key}:{name}"))
    }

    /// This process's run, for as long as it lives; `name` (a named run's)
    /// is its name on the network.
    pub fn this_run(name: Option<&str>) -> Owner {
        let pid = std::process::id() as i32;
        let start = crate::sys::start_time(pid).unwrap_or(0);
        match name {
            Some(n) => Owner(format!("r:{pid}:{start}:{n}")),
            None => Owner(format!("r:{pid}:{start}")),
        }
    }

    pub fn key(&self) -> &str {
        &self.0
    }

    /// Whether the lease goes when the run ends.
    pub fn transient(&self) -> bool {
        self.0.starts_with("r:")
    }

    /// The host end of the owner's veth on a bridge of the user's (no
    /// lease: see [`link_name`] for berth's networks): `vb-` and 12 hex
    /// digits of a hash of the owner (the same for every run of a
    /// machine, distinct per run otherwise).
    pub fn host_if(&self) -> String {
        use sha2::Digest as _;
        let h = sha2::Sha256::digest(self.0.as_bytes());
        let hex: String = h[..6].iter().map(|b| format!("{b:02x}")).collect();
        format!("vb-{hex}")
    }
}

/// The host end of the link holding `addr` on `network`: `vb-`, five
/// base-32 characters of a hash of the network's name, then `addr`'s 32
/// bits in seven. Named after the address (unique host-wide: berth's
/// subnets never overlap) rather than its holder, so the link's address
/// bindings ([`bind`]) stay true whoever holds the address next, and a
/// start adds nothing the last one had not (and no run removes them: a
/// removal costs the nftables commit an RCU grace period that the next
/// start would wait out). The network's prefix finds them all at `network rm`.
pub fn link_name(network: &str, addr: Ipv4Addr) -> String {
    format!("{}{}", link_prefix(network), base32(u64::from(u32::from(addr)), 7))
}

fn link_prefix(network: &str) -> String {
    use sha2::Digest as _;
    let h = sha2::Sha256::digest(network.as_bytes());
    let bits = u64::from_be_bytes([0, 0, 0, 0, h[0], h[1], h[2], h[3]]) >> 7;
    format!("vb-{}", base32(bits, 5))
}

/// The low `len * 5` bits of `v`, most significant first, as RFC 4648's
/// base-32 letters in lower case (names stay within IFNAMSIZ).
fn base32(v: u64, len: u32) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    (0..len).rev().map(|i| ALPHABET[((v >> (5 * i)) & 31) as usize] as char).collect()
}

/// Whether a `r:PID:START` owner's process is gone.
fn stale_run(owner: &str) -> bool {
    let Some(rest) = owner.strip_prefix("r:") else { return false };
    let mut it = rest.split(':');
    let (Some(pid), Some(start)) = (it.next().and_then(|p| p.parse::<i32>().ok()), it.next()) else { return true };
    crate::sys::start_time(pid).map(|s| s.to_string()) != Some(start.to_string())
}

/// A berth network.
#[derive(Debug, Clone, Serialize)]
pub struct Network {
    pub name: String,
    pub subnet: Ipv4Net,
    pub ula: Ipv6Net,
}

/// A network as `berth network ls` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct NetworkInfo {
    pub name: String,
    pub subnet: Ipv4Net,
    pub ula: Ipv6Net,
    /// Whether its bridge exists (it is made again on first use after a reboot).
    pub bridge: bool,
    /// Links on the bridge now (running machines).
    pub attached: usize,
    pub leases: Vec<LeaseInfo>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LeaseInfo {
    pub owner: String,
    pub address: Ipv4Net,
    pub address6: Ipv6Net,
}

/// Holds `DIR/networks.lock` until dropped.
struct Lock(#[allow(dead_code)] File);

fn lock(dir: &Path) -> Result<Lock, NetError> {
    lock_file(dir, "networks.lock")
}

/// Subnets are the host's to share, whatever directory keeps a network:
/// they are picked (and their bridge made) under `/run/berth-net.lock`.
fn pick_lock() -> Result<Lock, NetError> {
    lock_file(Path::new("/run"), "berth-net.lock")
}

fn lock_file(dir: &Path, name: &str) -> Result<Lock, NetError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|source| NetError::Io {
        what: "creating",
        path: dir.to_path_buf(),
        source,
    })?;
    let path = dir.join(name);
    let f = super::lockfile::take(&path, true).map_err(|source| NetError::Io { what: "locking", path, source })?;
    Ok(Lock(f))
}

fn check_name(name: &str) -> Result<(), NetError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_IFNAME
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(NetError::InvalidName(name.to_string()))
    }
}

fn sys_class_net(name: &str) -> PathBuf {
    Path::new("/sys/class/net").join(name)
}

/// Whether a bridge called `name` exists.
fn is_bridge(name: &str) -> bool {
    sys_class_net(name).join("bridge").is_dir()
}

/// The links on bridge `name` now.
fn ports(name: &str) -> usize {
    std::fs::read_dir(sys_class_net(name).join("brif")).map(|rd| rd.count()).unwrap_or(0)
}

/// The network's bridge, its gateway addresses, up, and its NAT rules:
/// made when missing (first use, or after the host rebooted).
fn ensure_bridge(dir: &Path, nl: &Netlink, n: &Network) -> Result<(), NetError> {
    nl.create_bridge(&n.name)?;
    for a in [IpNet::V4(ipam::gateway(n.subnet)), IpNet::V6(ipam::gateway6(n.ula))] {
        match nl.add_address(&n.name, a) {
            Err(e) if e.errno() == Some(libc::EEXIST) => {}
            // A host whose new devices start without IPv6: IPv4 only.
            Err(e) if a.addr().is_ipv6() && matches!(e.errno(), Some(libc::EACCES) | Some(libc::EPERM)) => {}
            r => r?,
        }
    }
    nl.set_up(&n.name)?;
    ensure_nat(dir, n, dns::host_loopback_resolver())?;
    forward::join(&n.name)?;
    Ok(())
}

/// Where the loopback resolver the network's NAT table forwards DNS to
/// is recorded (empty: none), so a run notices when the host's changed.
fn resolver_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.resolver"))
}

fn recorded_resolver(dir: &Path, name: &str) -> Option<Option<Ipv4Addr>> {
    let s = std::fs::read_to_string(resolver_path(dir, name)).ok()?;
    Some(s.trim().parse().ok())
}

/// The network's NAT table made anew, forwarding DNS to `resolver`.
fn ensure_nat(dir: &Path, n: &Network, resolver: Option<Ipv4Addr>) -> Result<(), NetError> {
    nat::ensure(&n.name, n.subnet, n.ula, resolver)?;
    let path = resolver_path(dir, &n.name);
    let text = resolver.map(|r| r.to_string()).unwrap_or_default();
    std::fs::write(&path, text).map_err(|source| NetError::Io { what: "writing", path, source })
}

/// The network `name` as recorded, if it is one of berth's.
fn recorded(dir: &Path, name: &str) -> Result<Option<Network>, NetError> {
    let ipam = Ipam::open(dir, name)?;
    Ok(match ipam.subnet()? {
        Some(subnet) => Some(Network { name: name.to_string(), subnet, ula: ipam.ula()? }),
        None => None,
    })
}

/// Makes network `name` (under the lock).
fn create_locked(dir: &Path, name: &str, subnet: Option<Ipv4Net>) -> Result<Network, NetError> {
    check_name(name)?;
    if recorded(dir, name)?.is_some() {
        return Err(NetError::Exists(name.to_string()));
    }
    if sys_class_net(name).exists() {
        return Err(NetError::LinkExists(name.to_string()));
    }
    let _pick = pick_lock()?;
    let nl = Netlink::open()?;
    let routes: Vec<Ipv4Net> = nl.routes_v4()?.into_iter().map(|r| r.dst).collect();
    let taken = ipam::subnets_in(dir)?;
    let subnet = match subnet {
        Some(s) => {
            let s = s.trunc();
            if let Some((range, what)) = subnet::reserved(&s) {
                return Err(NetError::Reserved { subnet: s, range, what });
            }
            if let Some(r) = routes.iter().find(|r| r.prefix_len() > 0 && subnet::overlaps(&s, r)) {
                return Err(NetError::Overlap { subnet: s, other: format!("the host's route to {r}") });
            }
            if let Some((n, t)) = taken.iter().find(|(_, t)| subnet::overlaps(&s, t)) {
                return Err(NetError::Overlap { subnet: s, other: format!("network {n} ({t})") });
            }
            s
        }
        None => subnet::pick(&routes, &taken.iter().map(|(_, t)| *t).collect::<Vec<_>>())?,
    };
    let ipam = Ipam::open(dir, name)?;
    let ula = ipam.define(subnet)?;
    let n = Network { name: name.to_string(), subnet, ula };
    if let Err(e) = ensure_bridge(dir, &nl, &n) {
        let _ = nl.delete_link(name);
        let _ = nat::remove(name);
        let _ = forward::leave(name);
        let _ = ipam.forget();
        forget_files(dir, name);
        return Err(e);
    }
    Ok(n)
}

/// `berth network create NAME [--subnet CIDR]`.
pub fn create(dir: &Path, name: &str, subnet: Option<Ipv4Net>) -> Result<Network, NetError> {
    let _lock = lock(dir)?;
    create_locked(dir, name, subnet)
}

/// `berth network ls`.
pub fn list(dir: &Path) -> Result<Vec<NetworkInfo>, NetError> {
    let mut out = Vec::new();
    for (name, subnet) in ipam::subnets_in(dir)? {
        let ipam = Ipam::open(dir, &name)?;
        let leases = ipam
            .list()?
            .into_iter()
            .map(|l| LeaseInfo { owner: l.owner, address: l.addr, address6: l.addr6 })
            .collect();
        out.push(NetworkInfo {
            attached: ports(&name),
            bridge: is_bridge(&name),
            ula: ipam.ula()?,
            name,
            subnet,
            leases,
        });
    }
    Ok(out)
}

/// Why `name` cannot be removed now, if it cannot.
pub fn check_removable(dir: &Path, name: &str) -> Result<(), NetError> {
    if recorded(dir, name)?.is_none() {
        return Err(NetError::NotOurs(name.to_string()));
    }
    match ports(name) {
        0 => Ok(()),
        count => Err(NetError::InUse { name: name.to_string(), count }),
    }
}

/// `berth network rm NAME`: its bridge, NAT rules and leases.
pub fn remove(dir: &Path, name: &str) -> Result<(), NetError> {
    let _lock = lock(dir)?;
    check_removable(dir, name)?;
    let nl = Netlink::open()?;
    nl.delete_link(name)?;
    nat::remove(name)?;
    let ipam = Ipam::open(dir, name)?;
    {
        let _pick = pick_lock()?;
        // Its links' bindings, every address it ever leased.
        bind::unbind_prefix(&link_prefix(name));
        forward::leave(name)?;
        bind::remove_if_unused();
    }
    ipam.forget()?;
    forget_files(dir, name);
    Ok(())
}

/// The network's hosts file and resolver record.
fn forget_files(dir: &Path, name: &str) {
    hosts::remove(dir, name);
    let _ = std::fs::remove_file(resolver_path(dir, name));
}

/// The link a run gets on `bridge`: a lease on a berth network (the
/// default one, `make_default`, made on first use), or a bare link on a
/// bridge of the user's.
pub fn attach_plan(dir: &Path, bridge: &str, owner: &Owner, make_default: bool) -> Result<NetAttach, NetError> {
    let _lock = lock(dir)?;
    let host_if = owner.host_if();
    let n = match recorded(dir, bridge)? {
        Some(n) => {
            // Made with its addresses and NAT table together: gone only
            // after a reboot (or by hand), then made again, all of it.
            if !is_bridge(&n.name) {
                let _pick = pick_lock()?;
                let nl = Netlink::open()?;
                // Made again after a reboot: a route that came since (a
                // VPN's, say) may cover the subnet now.
                if let Some(r) = nl
                    .routes_v4()?
                    .into_iter()
                    .map(|r| r.dst)
                    .find(|r| r.prefix_len() > 0 && subnet::overlaps(&n.subnet, r))
                {
                    return Err(NetError::Clash { network: n.name.clone(), subnet: n.subnet, route: r });
                }
                ensure_bridge(dir, &nl, &n)?;
            } else {
                // The host's resolver moved (resolved started, say): the
                // DNS forward follows. One read of resolv.conf per start.
                let now = dns::host_loopback_resolver();
                if recorded_resolver(dir, &n.name) != Some(now) {
                    ensure_nat(dir, &n, now)?;
                }
            }
            n
        }
        None if make_default => create_locked(dir, bridge, None)?,
        None => {
            if !is_bridge(bridge) {
                return Err(NetError::NotFound(bridge.to_string()));
            }
            return Ok(NetAttach { host_if, bridge: bridge.to_string(), ..Default::default() });
        }
    };
    let ipam = Ipam::open(dir, &n.name)?;
    // Leases of runs whose berth is gone (killed) go first.
    let swept = ipam.retain(|o| !stale_run(o))?;
    let lease = ipam.allocate(owner.key(), n.subnet)?;
    // The names change only with a named lease (or a swept one).
    let path = hosts::path(dir, &n.name);
    let hosts = if swept > 0 || hosts::owner_name(owner.key()).is_some() || !path.exists() {
        hosts::refresh(dir, &n.name)?
    } else {
        path
    };
    let forwards_dns = recorded_resolver(dir, &n.name).flatten().is_some();
    Ok(NetAttach {
        host_if: link_name(&n.name, lease.addr.addr()),
        bridge: n.name,
        addrs: vec![IpNet::V4(lease.addr), IpNet::V6(lease.addr6)],
        gateways: vec![IpAddr::V4(lease.gateway), IpAddr::V6(lease.gateway6)],
        ports: vec![],
        hosts: Some(hosts),
        dns: forwards_dns.then_some(lease.gateway),
    })
}

/// Every network's tables made again, when a run found its own gone
/// (flushed with the rest of the ruleset by a firewall reload): NAT, DNS
/// forwarding, the forwarding guard, and the address bindings of the
/// machines running on them (whose traffic the bindings' guard would
/// drop otherwise).
pub fn repair() -> Result<(), NetError> {
    let dir = dir();
    let _pick = pick_lock()?;
    for (name, _) in ipam::subnets_in(&dir)? {
        let Some(n) = recorded(&dir, &name)?.filter(|n| is_bridge(&n.name)) else { continue };
        ensure_nat(&dir, &n, dns::host_loopback_resolver())?;
        forward::join(&name)?;
        let links: Vec<String> = std::fs::read_dir(sys_class_net(&name).join("brif"))
            .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        for l in Ipam::open(&dir, &name)?.list()? {
            let host_if = link_name(&name, l.addr.addr());
            if links.contains(&host_if) {
                bind::rebind(&host_if, &[IpNet::V4(l.addr), IpNet::V6(l.addr6)])?;
            }
        }
    }
    Ok(())
}

/// Gives back `owner`'s leases on every network.
pub fn release(dir: &Path, owner: &Owner) -> Result<(), NetError> {
    if !dir.exists() {
        return Ok(());
    }
    for (name, _) in ipam::subnets_in(dir)? {
        let ipam = Ipam::open(dir, &name)?;
        if ipam.release(owner.key())?.is_some() && hosts::owner_name(owner.key()).is_some() {
            hosts::refresh(dir, &name)?;
        }
    }
    Ok(())
}
