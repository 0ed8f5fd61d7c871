//! Addresses and routes: adding an address or a default route, listing a
//! namespace's addresses and its IPv4 routes.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net};
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::address::{AddressAttribute, AddressHeaderFlags, AddressMessage, AddressScope};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::{Netlink, NetlinkError};

/// An address on a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkAddress {
    /// The link's index.
    pub index: u32,
    /// The address with its prefix length (host bits kept).
    pub addr: IpNet,
}

/// An IPv4 route of the main or another non-local table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv4Route {
    /// The destination; `0.0.0.0/0` for a default route.
    pub dst: Ipv4Net,
    pub gateway: Option<Ipv4Addr>,
    /// The outgoing link's index.
    pub oif: Option<u32>,
    pub table: u32,
}

/// The kernel's local table: the host's own and broadcast addresses.
const RT_TABLE_LOCAL: u32 = 255;

impl Netlink {
    /// Adds `addr` (address and prefix length, e.g. `10.88.0.2/16`) to the
    /// link `name`. IPv6 addresses skip duplicate address detection: they
    /// are berth's own allocations on a private link and usable at once.
    pub fn add_address(&self, name: &str, addr: IpNet) -> Result<(), NetlinkError> {
        let index = self.link_index(name)?;
        let what = format!("adding address {addr} to {name}");
        let mut msg = AddressMessage::default();
        msg.header.index = index;
        msg.header.prefix_len = addr.prefix_len();
        msg.header.scope = AddressScope::Universe;
        match addr {
            IpNet::V4(v4) => {
                msg.header.family = AddressFamily::Inet;
                msg.attributes.push(AddressAttribute::Local(v4.addr().into()));
                msg.attributes.push(AddressAttribute::Address(v4.addr().into()));
                if v4.prefix_len() < 31 {
                    msg.attributes.push(AddressAttribute::Broadcast(v4.broadcast()));
                }
            }
            IpNet::V6(v6) => {
                msg.header.family = AddressFamily::Inet6;
                msg.header.flags = AddressHeaderFlags::Nodad;
                msg.attributes.push(AddressAttribute::Address(v6.addr().into()));
            }
        }
        self.request(RouteNetlinkMessage::NewAddress(msg), NLM_F_CREATE | NLM_F_EXCL)
            .map_err(NetlinkError::io(what))?;
        Ok(())
    }

    /// Every address in this namespace, or only those of the link `name`.
    pub fn addresses(&self, name: Option<&str>) -> Result<Vec<LinkAddress>, NetlinkError> {
        let index = name.map(|n| self.link_index(n)).transpose()?;
        let what = match name {
            Some(n) => format!("listing the addresses of {n}"),
            None => "listing addresses".to_string(),
        };
        let replies =
            self.dump(RouteNetlinkMessage::GetAddress(AddressMessage::default())).map_err(NetlinkError::io(what))?;
        let mut out = Vec::new();
        for reply in replies {
            let RouteNetlinkMessage::NewAddress(m) = reply else { continue };
            if index.is_some_and(|i| i != m.header.index) {
                continue;
            }
            // IFA_LOCAL is the interface's own address (IFA_ADDRESS is the
            // peer's on a point-to-point link); IPv6 sends only IFA_ADDRESS.
            let local = m.attributes.iter().find_map(|a| match a {
                AddressAttribute::Local(ip) => Some(*ip),
                _ => None,
            });
            let address = m.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            });
            if let Some(ip) = local.or(address) {
                if let Ok(addr) = IpNet::new(ip, m.header.prefix_len) {
                    out.push(LinkAddress { index: m.header.index, addr });
                }
            }
        }
        Ok(out)
    }

    /// Adds a default route via `gateway` (IPv4 or IPv6) to the main table;
    /// the gateway must be reachable on a link that has an address.
    pub fn add_default_route(&self, gateway: IpAddr) -> Result<(), NetlinkError> {
        let what = format!("adding a default route via {gateway}");
        let mut msg = RouteMessage::default();
        msg.header.address_family = match gateway {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        msg.header.destination_prefix_length = 0;
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        // networkd's file for a booted machine's host0 names this protocol
        // (see `net::networkd`): change both together.
        msg.header.protocol = RouteProtocol::Boot;
        msg.header.scope = RouteScope::Universe;
        msg.header.kind = RouteType::Unicast;
        msg.attributes.push(RouteAttribute::Gateway(RouteAddress::from(gateway)));
        self.request(RouteNetlinkMessage::NewRoute(msg), NLM_F_CREATE | NLM_F_EXCL).map_err(NetlinkError::io(what))?;
        Ok(())
    }

    /// This namespace's IPv4 unicast routes in every table but the local
    /// one (the host's own addresses), for picking a subnet that clashes
    /// with none.
    pub fn routes_v4(&self) -> Result<Vec<Ipv4Route>, NetlinkError> {
        let mut filter = RouteMessage::default();
        filter.header.address_family = AddressFamily::Inet;
        let replies =
            self.dump(RouteNetlinkMessage::GetRoute(filter)).map_err(NetlinkError::io("listing IPv4 routes"))?;
        let mut out = Vec::new();
        for reply in replies {
            let RouteNetlinkMessage::NewRoute(m) = reply else { continue };
            if m.header.address_family != AddressFamily::Inet
                || matches!(m.header.kind, RouteType::Local | RouteType::Broadcast | RouteType::Multicast)
            {
                continue;
            }
            let mut route =
                Ipv4Route { dst: Ipv4Net::default(), gateway: None, oif: None, table: u32::from(m.header.table) };
            let mut dst = Ipv4Addr::UNSPECIFIED;
            for attr in &m.attributes {
                match attr {
                    RouteAttribute::Destination(RouteAddress::Inet(a)) => dst = *a,
                    RouteAttribute::Gateway(RouteAddress::Inet(a)) => route.gateway = Some(*a),
                    RouteAttribute::Oif(i) => route.oif = Some(*i),
                    RouteAttribute::Table(t) => route.table = *t,
                    _ => {}
                }
            }
            if route.table == RT_TABLE_LOCAL {
                continue;
            }
            let Ok(net) = Ipv4Net::new(dst, m.header.destination_prefix_length) else { continue };
            route.dst = net.trunc();
            out.push(route);
        }
        Ok(out)
    }
}
