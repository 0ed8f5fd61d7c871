//! Choosing subnets: a private IPv4 /16 for a berth bridge that clashes
//! with no route of the host and no other berth network, and a random IPv6
//! unique local /64 (RFC 4193) per network.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

/// Prefix length of the IPv4 subnets berth picks: 65534 addresses.
pub const PREFIX_LEN: u8 = 16;

/// Errors from picking a subnet.
#[derive(Debug, thiserror::Error)]
pub enum SubnetError {
    #[error("no free private /16 for a berth network: 10.88-10.119.0.0 and 172.18-172.31.0.0 all overlap a host route or another berth network")]
    Exhausted,
    #[error("reading random bytes for an IPv6 ULA prefix: {0}")]
    Random(#[source] std::io::Error),
}

/// The /16s berth tries, in order: 10.88.0.0/16 (podman's default) up to
/// 10.119.0.0/16, then 172.18.0.0/16 to 172.31.0.0/16 (past docker's
/// default 172.17).
pub fn candidates() -> impl Iterator<Item = Ipv4Net> {
    let ten = (88..=119u8).map(|b| Ipv4Addr::new(10, b, 0, 0));
    let one_seven_two = (18..=31u8).map(|b| Ipv4Addr::new(172, b, 0, 0));
    ten.chain(one_seven_two).filter_map(|a| Ipv4Net::new(a, PREFIX_LEN).ok())
}

/// Whether two subnets share an address.
pub fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Ranges no berth network may use, with what they are: the kernel or
/// the protocol gives their addresses other meanings (RFC 6890).
pub const RESERVED: [(&str, &str); 5] = [
    ("0.0.0.0/8", "\"this network\" (RFC 1122)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved (and broadcast)"),
];

/// What `subnet` overlaps among [`RESERVED`], if anything.
pub fn reserved(subnet: &Ipv4Net) -> Option<(Ipv4Net, &'static str)> {
    RESERVED.iter().find_map(|(net, what)| {
        let net: Ipv4Net = net.parse().ok()?;
        overlaps(subnet, &net).then_some((net, *what))
    })
}

/// The first of [`candidates`] that overlaps none of `routes` (the host's
/// route destinations; default routes, prefix length 0, are ignored since
/// they cover everything) and none of `taken` (other berth networks).
pub fn pick(routes: &[Ipv4Net], taken: &[Ipv4Net]) -> Result<Ipv4Net, SubnetError> {
    let busy = routes.iter().filter(|r| r.prefix_len() > 0).chain(taken);
    let busy: Vec<&Ipv4Net> = busy.collect();
    candidates().find(|c| !busy.iter().any(|b| overlaps(c, b))).ok_or(SubnetError::Exhausted)
}

/// A fresh unique local /64: `fd` + 40 random bits (the global ID) +
/// subnet ID 0. The caller keeps it (berth's IPAM stores one per network),
/// which is what makes it stable.
pub fn random_ula() -> Result<Ipv6Net, SubnetError> {
    let mut global_id = [0u8; 5];
    let mut filled = 0;
    while filled < global_id.len() {
        let n = rustix::rand::getrandom(&mut global_id[filled..], rustix::rand::GetRandomFlags::empty())
            .map_err(|e| SubnetError::Random(e.into()))?;
        filled += n;
    }
    Ok(ula(global_id))
}

/// The unique local /64 with global ID `global_id` and subnet ID 0.
pub fn ula(global_id: [u8; 5]) -> Ipv6Net {
    let mut octets = [0u8; 16];
    octets[0] = 0xfd;
    octets[1..6].copy_from_slice(&global_id);
    Ipv6Net::new(Ipv6Addr::from(octets), 64).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn reserved_ranges_are_named() {
        let r = |s: &str| reserved(&s.parse().unwrap()).map(|(_, w)| w);
        assert_eq!(r("127.1.0.0/16"), Some("loopback"));
        assert_eq!(r("169.254.3.0/24"), Some("link-local"));
        assert_eq!(r("239.0.0.0/8"), Some("multicast"));
        assert_eq!(r("255.255.255.0/24"), Some("reserved (and broadcast)"));
        assert_eq!(r("0.0.0.0/0"), Some("\"this network\" (RFC 1122)"));
        assert_eq!(r("10.89.0.0/16"), None);
        assert_eq!(r("198.18.4.0/24"), None);
    }

    #[test]
    fn net_pick_first_free() {
        assert_eq!(pick(&[], &[]).unwrap(), net("10.88.0.0/16"));
        // A typical host: default route, a /24 uplink, docker's bridge.
        let routes = [net("0.0.0.0/0"), net("192.168.1.0/24"), net("172.17.0.0/16")];
        assert_eq!(pick(&routes, &[]).unwrap(), net("10.88.0.0/16"));
    }

    #[test]
    fn net_pick_skips_routes_and_taken() {
        // A route inside the first candidate, one covering the second, and
        // a berth network on the third.
        let routes = [net("10.88.3.0/24"), net("10.89.0.0/16")];
        let taken = [net("10.90.0.0/16")];
        assert_eq!(pick(&routes, &taken).unwrap(), net("10.91.0.0/16"));
    }

    #[test]
    fn net_pick_wide_route_moves_to_172() {
        // A VPN that routes all of 10/8 rules out every 10.x candidate.
        let routes = [net("10.0.0.0/8"), net("172.16.0.0/13")];
        assert_eq!(pick(&routes, &[]).unwrap(), net("172.24.0.0/16"));
    }

    #[test]
    fn net_pick_exhausted() {
        let routes = [net("10.0.0.0/8"), net("172.16.0.0/12")];
        assert!(matches!(pick(&routes, &[]), Err(SubnetError::Exhausted)));
        let taken: Vec<Ipv4Net> = candidates().collect();
        assert!(matches!(pick(&[], &taken), Err(SubnetError::Exhausted)));
    }

    #[test]
    fn net_candidates_private_and_distinct() {
        let all: Vec<Ipv4Net> = candidates().collect();
        assert_eq!(all.len(), 32 + 14);
        for (i, c) in all.iter().enumerate() {
            assert!(c.addr().is_private(), "{c}");
            assert_eq!(*c, c.trunc());
            assert!(all[i + 1..].iter().all(|d| !overlaps(c, d)));
        }
    }

    #[test]
    fn net_ula_shape() {
        let u = ula([0x12, 0x34, 0x56, 0x78, 0x9a]);
        assert_eq!(u, "fd12:3456:789a::/64".parse::<Ipv6Net>().unwrap());
        let a = random_ula().unwrap();
        let b = random_ula().unwrap();
        assert_eq!(a.prefix_len(), 64);
        assert_eq!(a.addr().octets()[0], 0xfd);
        assert_eq!(a.addr().octets()[6..], [0; 10]);
        assert_ne!(a, b, "40 random bits twice alike");
    }
}
