//! A systemd-networkd file for a booted machine's `host0`, which berth has
//! configured from the host side ([`super::attach`]). Without it, systemd's
//! own `80-container-host0.network` (meant for systemd-nspawn) would have
//! networkd run a DHCP client there that no one answers and drop the
//! address and route berth set; this one matches first and keeps them.
//! It is written into the machine's `/run`, never its `/etc` (see
//! `rootfs::setup`), and is a file nobody reads where networkd is absent.

use std::fmt::Write as _;

use super::PEER_NAME;
use crate::spec::NetAttach;

/// Where the file goes, in the machine's `/run` tmpfs. networkd takes the
/// first matching `.network` file in lexical order of names, across
/// `/etc`, `/run` and `/usr/lib`: `10-` comes before systemd's `80-`, and
/// a file of the image's own in `/etc` with a lower number still wins.
pub const HOST0_NETWORK: &str = "run/systemd/network/10-berth-host0.network";

/// The `.network` file that has networkd keep `host0` as `net` set it up:
/// the same addresses and default routes, kept, no DHCP, no router
/// advertisements, IPv6 link-local only. `None` when berth gives `host0`
/// no addresses (a bridge of the user's): networkd's defaults then apply.
pub fn host0_network(net: &NetAttach) -> Option<String> {
    if net.addrs.is_empty() {
        return None;
    }
    let mut s = String::from(
        "# Written by berth: host0 is configured from the host side; networkd keeps it so.\n\
         [Match]\n",
    );
    let _ = writeln!(s, "Name={PEER_NAME}\n\n[Link]\nRequiredForOnline=yes\n\n[Network]");
    for a in &net.addrs {
        let _ = writeln!(s, "Address={a}");
    }
    if let Some(dns) = net.dns {
        let _ = writeln!(s, "DNS={dns}");
    }
    // KeepConfiguration=static: networkd does not drop what berth set
    // before it started (it would, as foreign configuration, by default).
    s.push_str("LinkLocalAddressing=ipv6\nIPv6AcceptRA=no\nKeepConfiguration=static\n");
    // Not the `Gateway=` shorthand, whose routes are `proto static`: the
    // kernel keeps an IPv4 route beside one that differs only in its
    // protocol, so host0 would have two defaults. With berth's own
    // protocol (see `Netlink::add_default_route`) networkd's route is the
    // one already there.
    for g in &net.gateways {
        let _ = write!(s, "\n[Route]\nGateway={g}\nProtocol=boot\n");
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn a_lease_becomes_static_configuration() {
        let net = NetAttach {
            addrs: vec!["10.88.0.2/16".parse().unwrap(), "fd12:3456:789a::2/64".parse().unwrap()],
            gateways: vec!["10.88.0.1".parse().unwrap(), "fd12:3456:789a::1".parse().unwrap()],
            dns: Some(Ipv4Addr::new(10, 88, 0, 1)),
            ..Default::default()
        };
        assert_eq!(
            host0_network(&net).unwrap(),
            "# Written by berth: host0 is configured from the host side; networkd keeps it so.\n\
             [Match]\n\
             Name=host0\n\
             \n\
             [Link]\n\
             RequiredForOnline=yes\n\
             \n\
             [Network]\n\
             Address=10.88.0.2/16\n\
             Address=fd12:3456:789a::2/64\n\
             DNS=10.88.0.1\n\
             LinkLocalAddressing=ipv6\n\
             IPv6AcceptRA=no\n\
             KeepConfiguration=static\n\
             \n\
             [Route]\n\
             Gateway=10.88.0.1\n\
             Protocol=boot\n\
             \n\
             [Route]\n\
             Gateway=fd12:3456:789a::1\n\
             Protocol=boot\n"
        );
        let no_dns = NetAttach { dns: None, ..net };
        assert!(!host0_network(&no_dns).unwrap().contains("DNS="));
    }

    #[test]
    fn a_bare_link_gets_no_file() {
        let net = NetAttach { host_if: "vb-x".into(), bridge: "br0".into(), ..Default::default() };
        assert_eq!(host0_network(&net), None);
    }
}
