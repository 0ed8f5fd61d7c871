//! `berth network create|ls|rm`, and the link a run gets from
//! `--network-veth` / `--network-bridge` (the lease, the bridge made on
//! first use). The netlink, nftables and allocation work is
//! `berth_runtime::net`'s; this is the command line around it.

use crate::cli::{Cli, NetworkCommand, RunArgs};
use crate::output::{print, print_json, table};
use anyhow::{anyhow, bail, Context, Result};
use berth_runtime::net::network::{self as netw, Owner};
use berth_runtime::net::ports::PortMap;
use berth_runtime::spec::{LinkKind, NetAttach, VlanLink};

pub fn run(_cli: &Cli, c: &NetworkCommand) -> Result<i32> {
    let dir = netw::dir();
    match c {
        NetworkCommand::Create { name, subnet } => {
            let subnet = match subnet {
                Some(s) => Some(
                    s.parse().map_err(|_| anyhow::anyhow!("--subnet {s}: not an IPv4 CIDR such as 10.89.0.0/16"))?,
                ),
                None => None,
            };
            let n = netw::create(&dir, name, subnet)?;
            print(&format!("{} {}\n", n.name, n.subnet))?;
        }
        NetworkCommand::Ls(a) => {
            let nets = netw::list(&dir)?;
            if a.json {
                print_json(&nets)?;
            } else {
                let rows: Vec<Vec<String>> = nets
                    .iter()
                    .map(|n| {
                        vec![
                            n.name.clone(),
                            n.subnet.to_string(),
                            n.ula.to_string(),
                            if n.bridge { "yes".into() } else { "no".into() },
                            n.attached.to_string(),
                            n.leases.len().to_string(),
                        ]
                    })
                    .collect();
                print(&table(&["NAME", "SUBNET", "IPV6", "BRIDGE", "ATTACHED", "LEASES"], &rows))?;
            }
        }
        NetworkCommand::Rm { names } => {
            // Every name checked first, so a typo removes nothing.
            for n in names {
                netw::check_removable(&dir, n)?;
            }
            for n in names {
                netw::remove(&dir, n)?;
            }
        }
    }
    Ok(0)
}

/// What a run's network options ask for, if a link: `None` for the
/// host's network or `--private-network` alone. `owner` holds the lease.
pub fn plan(a: &RunArgs, owner: &Owner) -> Result<Option<NetAttach>> {
    // A bridge named implies the veth (as systemd-nspawn's
    // --network-bridge does): it wins over -n, from whichever layer.
    // -p implies the veth, as with systemd-nspawn's --port.
    let ports: Vec<PortMap> =
        a.port.iter().map(|p| p.parse()).collect::<Result<_, String>>().map_err(|e| anyhow!(e))?;
    let bridge = match (&a.network_bridge, a.network_veth || !ports.is_empty()) {
        (Some(b), _) => b.clone(),
        (None, true) => netw::default_name(),
        (None, false) => return Ok(None),
    };
    let mut attach = netw::attach_plan(&netw::dir(), &bridge, owner, a.network_bridge.is_none())
        .with_context(|| format!("network {bridge}"))?;
    if !ports.is_empty() && attach.addrs.is_empty() {
        bail!("-p needs an address berth gives: {bridge} is not a berth network (use -n, or `berth network create`)");
    }
    attach.ports = ports;
    Ok(Some(attach))
}

/// The `--network-macvlan` and `--network-ipvlan` links, their parents
/// checked to be interfaces of this host.
pub fn vlans(a: &RunArgs) -> Result<Vec<VlanLink>> {
    let mut out = Vec::new();
    for (kind, parents) in [(LinkKind::Macvlan, &a.network_macvlan), (LinkKind::Ipvlan, &a.network_ipvlan)] {
        for p in parents {
            let name_ok = !p.is_empty()
                && p.len() <= berth_runtime::net::MAX_IFNAME
                && !p.contains(['/', ':', ' ', '\t', '\n'])
                && p != "."
                && p != "..";
            let sys = std::path::Path::new("/sys/class/net").join(p);
            if !name_ok || !sys.exists() {
                bail!("--network-{kind} {p}: no interface of that name on this host (see `ip link`)");
            }
            // On a bridge, frames would leave through the bridge's own
            // transmit path, around the guard that binds machines' addresses.
            if sys.join("bridge").is_dir() || p.starts_with("vb-") {
                bail!("--network-{kind} {p}: a bridge or a machine's link; join a bridge with --network-bridge");
            }
            let v = VlanLink { kind, parent: p.clone() };
            if out.iter().any(|o: &VlanLink| o.name() == v.name()) {
                bail!("--network-{kind} {p} is given twice (or cut to the same link name {})", v.name());
            }
            out.push(v);
        }
    }
    Ok(out)
}

/// Gives a run's lease back when the run ends (a machine's stays).
pub struct TransientLease(Option<Owner>);

impl TransientLease {
    pub fn of(leased: bool, owner: Owner) -> TransientLease {
        TransientLease(Some(owner).filter(|o| leased && o.transient()))
    }
}

impl Drop for TransientLease {
    fn drop(&mut self) {
        if let Some(o) = self.0.take() {
            if let Err(e) = netw::release(&netw::dir(), &o) {
                eprintln!("berth: warning: giving the run's address back: {e}");
            }
        }
    }
}

/// Gives machine `name`'s leases back (it was removed or renamed).
pub fn forget_machine(name: &str) {
    if let Err(e) = netw::release(&netw::dir(), &Owner::machine(name)) {
        eprintln!("berth: warning: giving {name}'s network addresses back: {e}");
    }
}
