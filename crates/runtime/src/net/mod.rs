//! Container networking, the library half of `berth run --network-veth` and
//! `--network-bridge`: rtnetlink requests (links, addresses, routes), network
//! namespaces held by descriptor, address allocation and subnet choice.
//!
//! Netlink is spoken with `netlink-packet-route`/`netlink-packet-core` for
//! the message types and a plain blocking `netlink-sys` socket, through a
//! small synchronous send/receive-until-ack helper ([`Netlink`]). Not the
//! `rtnetlink` crate: it is async-only and pulls in tokio, a runtime with
//! worker threads that berth, a synchronous binary that must start fast and
//! forks into namespaces, has no use for; every request here is one
//! datagram out and a few back from the kernel, which a blocking socket does
//! in microseconds. Nothing here runs `ip`; NAT rules go through the
//! `nftables` crate (see [`nat`]).
//!
//! What a run uses: [`network`] (berth's bridges, their state and leases,
//! what `berth network` manages), [`attach`] (the veth into a container's
//! namespace, made from the host side before its command starts) and
//! [`nat`] (masquerading in a table of berth's own); for a booted
//! machine, [`networkd`] (a file that has networkd keep `host0` so).
//!
//! A netlink socket acts on the network namespace it was created in, so
//! [`Netlink::open_in`] creates its socket in a short-lived thread that has
//! entered the target namespace ([`ns::run_in`]); the caller's thread never
//! changes namespace.
//!
//! ```text
//! host netns                         container netns
//!  bridge (gateway .1, ULA ::1)
//!   └─ veth "vb-…" ── peer ─────────▶ host0 (lease, default route via .1)
//! ```

mod addr;
mod attach;
pub mod bind;
pub mod dns;
pub mod forward;
pub mod hosts;
pub mod ipam;
mod link;
mod lockfile;
pub mod nat;
mod netlink;
pub mod network;
pub mod networkd;
mod nfcheck;
pub mod ns;
pub mod ports;
pub mod subnet;

pub use attach::{attach, attach_vlans, detach};

pub use addr::{Ipv4Route, LinkAddress};
pub use ipnet::{IpNet, Ipv4Net, Ipv6Net};
pub use netlink::{Netlink, NetlinkError};

/// MTU given to bridges and both ends of veth pairs: Ethernet's, what a
/// host's uplink almost always has.
pub const DEFAULT_MTU: u32 = 1500;

/// The name of the container's end of a veth pair, as systemd-nspawn's
/// `--network-veth` calls it. Made inside the container's namespace, so
/// every container has one without clashing on the host.
pub const PEER_NAME: &str = "host0";

/// Longest interface name the kernel takes (IFNAMSIZ - 1).
pub const MAX_IFNAME: usize = 15;
