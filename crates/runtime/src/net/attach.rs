//! Putting a container on its network: once its init exists (and so its
//! network namespace, the one the command or booted init will live in),
//! berth makes the veth pair from the host side — the host end on the
//! bridge, the far end created as `host0` directly inside that namespace —
//! and configures `lo`, `host0`'s addresses and the default routes through
//! a netlink socket opened in the namespace. The init waits until this is
//! done, so the command never sees an unconfigured link and no DHCP client
//! or systemd-networkd is needed inside (a booted machine that runs
//! networkd anyway is told to keep this setup: see [`super::networkd`]).
//!
//! Nothing needs undoing when the container ends: a veth pair dies with
//! the network namespace of either end, and the namespace dies with the
//! container's last process (also when berth is killed: its init dies
//! with it).

use std::os::fd::AsFd;
use std::path::Path;

use super::{ns::NetNs, Netlink, NetlinkError, PEER_NAME};
use crate::spec::{NetAttach, VlanLink};
use crate::RuntimeError;

fn fail(e: NetlinkError) -> RuntimeError {
    RuntimeError::Setup(format!("setting up the container's network: {e}"))
}

/// The network namespace of the container whose init is `init`, never
/// the host's own (a first stage that failed to hand its init over is
/// still in it): links and routes would land there.
fn container_ns(init: libc::pid_t) -> Result<NetNs, RuntimeError> {
    let ns = NetNs::open(Path::new(&format!("/proc/{init}/ns/net")))
        .map_err(|e| RuntimeError::sys("opening the container's network namespace", e))?;
    let own =
        rustix::fs::stat("/proc/self/ns/net").map_err(|e| RuntimeError::sys("reading berth's network namespace", e))?;
    let theirs =
        rustix::fs::fstat(&ns).map_err(|e| RuntimeError::sys("reading the container's network namespace", e))?;
    if (own.st_dev, own.st_ino) == (theirs.st_dev, theirs.st_ino) {
        return Err(RuntimeError::Setup("the container has no network namespace of its own to link".into()));
    }
    Ok(ns)
}

/// Makes `--network-macvlan`/`--network-ipvlan` links inside the
/// container whose init is `init`, up, as systemd-nspawn does: with no
/// address (the segment's DHCP or the machine's own configuration gives
/// one; IPv6 link-local comes by itself).
pub fn attach_vlans(vlans: &[VlanLink], init: libc::pid_t) -> Result<(), RuntimeError> {
    if vlans.is_empty() {
        return Ok(());
    }
    let ns = container_ns(init)?;
    let host = Netlink::open().map_err(fail)?;
    for v in vlans {
        host.create_vlan_in(v.kind, &v.parent, &v.name(), ns.as_fd()).map_err(fail)?;
    }
    let inside = Netlink::open_in(ns.as_fd()).map_err(fail)?;
    inside.set_up("lo").map_err(fail)?;
    for v in vlans {
        inside.set_up(&v.name()).map_err(fail)?;
    }
    Ok(())
}

/// Links the container whose init is `init` as `net` says; the index of
/// its host end, which [`detach`] deletes.
pub fn attach(net: &NetAttach, init: libc::pid_t) -> Result<u32, RuntimeError> {
    let ns = container_ns(init)?;
    let host = Netlink::open().map_err(fail)?;
    let mac = super::bind::mac_for(&net.addrs);
    match host.create_veth(&net.host_if, ns.as_fd(), mac) {
        // The same machine's link from its last run, whose namespace the
        // kernel has not finished tearing down (the name derives from the
        // machine's lease, and the machine is locked): replace it.
        Err(e) if e.errno() == Some(libc::EEXIST) => {
            host.delete_link(&net.host_if).map_err(fail)?;
            host.create_veth(&net.host_if, ns.as_fd(), mac).map_err(fail)?;
        }
        r => r.map_err(fail)?,
    }
    let configured = (|| -> Result<(), NetlinkError> {
        host.set_master(&net.host_if, &net.bridge)?;
        host.set_up(&net.host_if)?;
        let inside = Netlink::open_in(ns.as_fd())?;
        inside.set_up("lo")?;
        // IPv6 is best-effort: a host whose new devices start with
        // disable_ipv6 refuses the address (EACCES), and IPv4 still works.
        let v6_off = |e: &NetlinkError| matches!(e.errno(), Some(libc::EACCES) | Some(libc::EPERM));
        let mut v6 = true;
        for a in &net.addrs {
            match inside.add_address(PEER_NAME, *a) {
                Err(e) if a.addr().is_ipv6() && v6_off(&e) => v6 = false,
                r => r?,
            }
        }
        inside.set_up(PEER_NAME)?;
        for g in net.gateways.iter().filter(|g| v6 || g.is_ipv4()) {
            inside.add_default_route(*g)?;
        }
        Ok(())
    })();
    let index = match configured.and_then(|()| host.link_index(&net.host_if)) {
        Ok(i) => i,
        Err(e) => {
            let _ = host.delete_link(&net.host_if);
            return Err(fail(e));
        }
    };
    let v4 = net.addrs.iter().find_map(|a| match a {
        super::IpNet::V4(v4) => Some(v4.addr()),
        super::IpNet::V6(_) => None,
    });
    if let (Some(addr), false) = (v4, net.ports.is_empty()) {
        if let Err(e) = super::ports::publish(&net.host_if, index, &net.bridge, addr, &net.ports) {
            let _ = host.delete_link_index(index);
            super::ports::unpublish(&net.host_if, index);
            return Err(RuntimeError::Setup(format!("publishing the container's ports: {e}")));
        }
    }
    Ok(index)
}

/// Deletes the container's host end (and its port table) once it has
/// ended: a namespace kept alive past the container (by a descriptor it
/// passed out) would keep the pair, answering for an address the next
/// machine may get. The kernel takes RCU grace periods over a veth's
/// deletion (7 to 20 ms measured here), so a process of its own does it
/// and berth does not wait; gone already is fine. By index, as is the
/// port table: the address's next holder may have made its link of the
/// same name by then. (The address bindings stay: see `bind`.)
pub fn detach(net: &NetAttach, index: u32) {
    let net = net.clone();
    crate::sys::in_background(move || {
        if !net.ports.is_empty() {
            super::ports::unpublish(&net.host_if, index);
        }
        if let Ok(host) = Netlink::open() {
            let _ = host.delete_link_index(index);
        }
    });
}
