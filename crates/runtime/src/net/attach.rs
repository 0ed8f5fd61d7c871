//! Putting a container on its network: once its init exists (and so its
//! network namespace, the one the command or booted init will live in),
//! berth makes the veth pair from the host side — the host end on the
//! bridge, the far end created as `host0` directly inside that namespace —
//! and configures `lo`, `host0`'s addresses and the default routes through
//! a netlink socket opened in the namespace. The init waits until this is
//! done, so the command never sees an unconfigured link and no DHCP client
//! or systemd-networkd is needed inside.
//!
//! Nothing needs undoing when the container ends: a veth pair dies with
//! the network namespace of either end, and the namespace dies with the
//! container's last process (also when berth is killed: its init dies
//! with it).

use std::os::fd::AsFd;
use std::path::Path;

use super::{ns::NetNs, Netlink, NetlinkError, PEER_NAME};
use crate::spec::NetAttach;
use crate::RuntimeError;

fn fail(e: NetlinkError) -> RuntimeError {
    RuntimeError::Setup(format!("setting up the container's network: {e}"))
}

/// Links the container whose init is `init` as `net` says.
pub fn attach(net: &NetAttach, init: libc::pid_t) -> Result<(), RuntimeError> {
    let ns = NetNs::open(Path::new(&format!("/proc/{init}/ns/net")))
        .map_err(|e| RuntimeError::sys("opening the container's network namespace", e))?;
    let host = Netlink::open().map_err(fail)?;
    match host.create_veth(&net.host_if, ns.as_fd()) {
        // The same machine's link from its last run, whose namespace the
        // kernel has not finished tearing down (the name derives from the
        // machine's lease, and the machine is locked): replace it.
        Err(e) if e.errno() == Some(libc::EEXIST) => {
            host.delete_link(&net.host_if).map_err(fail)?;
            host.create_veth(&net.host_if, ns.as_fd()).map_err(fail)?;
        }
        r => r.map_err(fail)?,
    }
    let configured = (|| -> Result<(), NetlinkError> {
        host.set_master(&net.host_if, &net.bridge)?;
        host.set_up(&net.host_if)?;
        let inside = Netlink::open_in(ns.as_fd())?;
        inside.set_up("lo")?;
        for a in &net.addrs {
            inside.add_address(PEER_NAME, *a)?;
        }
        inside.set_up(PEER_NAME)?;
        for g in &net.gateways {
            inside.add_default_route(*g)?;
        }
        Ok(())
    })();
    if let Err(e) = configured {
        let _ = host.delete_link(&net.host_if);
        return Err(fail(e));
    }
    Ok(())
}
