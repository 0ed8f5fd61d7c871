//! Name service for machines on a berth network, without a daemon.
//!
//! The host's resolver is what a machine uses: `/etc/resolv.conf` is the
//! host's (`--resolv-conf`). When that names a resolver on the host's
//! loopback (systemd-resolved's 127.0.0.53, a dnsmasq on 127.0.0.1), a
//! machine behind a veth cannot reach it, so berth forwards instead of
//! running a forwarder: the network's nftables table DNATs port 53 (UDP
//! and TCP) at the bridge's address to that resolver, `route_localnet` on
//! the bridge lets the kernel deliver it, and the machine's copy of
//! `resolv.conf` names the bridge's address in place of the loopback one.
//! The kernel carries every query; nothing runs between machine starts.
//! Only 127/8 resolvers are forwarded: IPv6 has no `route_localnet`, so a
//! host whose only resolver is `::1` leaves machines without DNS (said in
//! the README).
//!
//! `BERTH_RESOLV_CONF` names the host's file when it is not
//! `/etc/resolv.conf` (a host whose `/etc/resolv.conf` is a stub pointing
//! elsewhere); the tests use it to stand in a resolver of their own.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

/// The host's resolver configuration.
pub fn host_resolv_conf() -> PathBuf {
    std::env::var_os("BERTH_RESOLV_CONF").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/etc/resolv.conf"))
}

/// The addresses of the `nameserver` lines of a resolv.conf.
fn nameservers(conf: &str) -> impl Iterator<Item = (usize, IpAddr)> + '_ {
    conf.lines().enumerate().filter_map(|(i, l)| {
        let mut w = l.split_whitespace();
        match (w.next(), w.next()) {
            (Some("nameserver"), Some(a)) => a.parse::<IpAddr>().ok().map(|a| (i, a)),
            _ => None,
        }
    })
}

/// The first resolver of `conf` on the host's IPv4 loopback: what the
/// network forwards to.
pub fn loopback_resolver(conf: &str) -> Option<Ipv4Addr> {
    nameservers(conf).find_map(|(_, a)| match a {
        IpAddr::V4(v4) if v4.is_loopback() => Some(v4),
        _ => None,
    })
}

/// The host's loopback resolver now, if it has one.
pub fn host_loopback_resolver() -> Option<Ipv4Addr> {
    std::fs::read_to_string(host_resolv_conf()).ok().as_deref().and_then(loopback_resolver)
}

/// `conf` as a machine behind `gateway` sees it: the first loopback
/// resolver becomes `nameserver GATEWAY` (where the network forwards
/// port 53), the other loopback ones go (unreachable), the rest stays.
pub fn for_machine(conf: &str, gateway: Ipv4Addr) -> String {
    let loopback: Vec<usize> = nameservers(conf).filter(|(_, a)| a.is_loopback()).map(|(i, _)| i).collect();
    let mut out = String::with_capacity(conf.len() + 16);
    for (i, line) in conf.lines().enumerate() {
        match loopback.iter().position(|&l| l == i) {
            Some(0) => out.push_str(&format!("nameserver {gateway}\n")),
            Some(_) => {}
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_resolvers_become_the_gateway() {
        let conf = "# made by resolved\nnameserver 127.0.0.53\nnameserver ::1\nnameserver 10.0.0.2\noptions edns0 trust-ad\nsearch lan\n";
        assert_eq!(loopback_resolver(conf), Some(Ipv4Addr::new(127, 0, 0, 53)));
        let out = for_machine(conf, Ipv4Addr::new(10, 88, 0, 1));
        assert_eq!(
            out,
            "# made by resolved\nnameserver 10.88.0.1\nnameserver 10.0.0.2\noptions edns0 trust-ad\nsearch lan\n"
        );
    }

    #[test]
    fn other_resolvers_stay() {
        let conf = "nameserver 10.255.255.53\nnameserver fd00::53\n";
        assert_eq!(loopback_resolver(conf), None);
        assert_eq!(for_machine(conf, Ipv4Addr::new(10, 88, 0, 1)), conf);
        // A commented or malformed line is not a resolver.
        assert_eq!(loopback_resolver("#nameserver 127.0.0.1\nnameserver\nnameserver localhost\n"), None);
    }
}
