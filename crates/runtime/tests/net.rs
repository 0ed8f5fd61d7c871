//! Privileged netlink tests (run as root): a bridge and a veth pair into a
//! network namespace the test makes, addresses, default routes, and a ping
//! from inside to the bridge. Traffic stays on this machine: it goes only
//! between the test's own namespace and its own bridge. Every link is
//! deleted by a guard, also when an assertion fails.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use berth_runtime::net::ipam::{gateway, gateway6};
use berth_runtime::net::ns::NetNs;
use berth_runtime::net::{subnet, IpNet, Ipv4Net, Netlink, NetlinkError, MAX_IFNAME, PEER_NAME};

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// `PREFIX<pid % 10000><n>`: names no other test run uses at the same time.
fn unique_name(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!("{prefix}{}{}", std::process::id() % 10000, N.fetch_add(1, Ordering::Relaxed));
    assert!(name.len() <= MAX_IFNAME, "{name}");
    name
}

/// Deletes the link `name` in the host namespace when dropped.
struct LinkGuard(String);

impl Drop for LinkGuard {
    fn drop(&mut self) {
        if let Ok(nl) = Netlink::open() {
            if let Err(e) = nl.delete_link(&self.0) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

fn netns_inode() -> u64 {
    std::fs::metadata("/proc/thread-self/ns/net").map(|m| std::os::unix::fs::MetadataExt::ino(&m)).unwrap()
}

fn errno(r: Result<u32, NetlinkError>) -> Option<i32> {
    r.err().and_then(|e| e.errno())
}

#[test]
fn net_veth_into_namespace_pings_bridge() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let host = Netlink::open().unwrap();
    let host_had_peer_name = host.link_index(PEER_NAME).is_ok();
    let subnet = subnet::pick(&host.routes_v4().unwrap().iter().map(|r| r.dst).collect::<Vec<_>>(), &[]).unwrap();
    let ula = subnet::random_ula().unwrap();
    let (bridge, veth) = (unique_name("bt"), unique_name("vt"));
    {
        let ns = NetNs::new().unwrap();
        let _bridge_guard = LinkGuard(bridge.clone());
        assert!(host.create_bridge(&bridge).unwrap(), "bridge {bridge} made");
        assert!(!host.create_bridge(&bridge).unwrap(), "bridge {bridge} already there");

        let _veth_guard = LinkGuard(veth.clone());
        let before = netns_inode();
        host.create_veth(&veth, ns.as_fd(), None).unwrap();
        let inner = Netlink::open_in(ns.as_fd()).unwrap();
        assert_eq!(netns_inode(), before, "open_in moved the calling thread");

        // host0 exists inside only; the host end exists on the host only.
        inner.link_index(PEER_NAME).unwrap();
        assert_eq!(errno(inner.link_index(&veth)), Some(libc::ENODEV));
        host.link_index(&veth).unwrap();
        if !host_had_peer_name {
            assert_eq!(errno(host.link_index(PEER_NAME)), Some(libc::ENODEV));
        }

        host.set_master(&veth, &bridge).unwrap();
        host.set_up(&bridge).unwrap();
        host.set_up(&veth).unwrap();
        let gw = gateway(subnet);
        let gw6 = gateway6(ula);
        host.add_address(&bridge, IpNet::V4(gw)).unwrap();
        host.add_address(&bridge, IpNet::V6(gw6)).unwrap();

        let lease = Ipv4Net::new(Ipv4Addr::from(u32::from(gw.addr()) + 1), subnet.prefix_len()).unwrap();
        let lease6 = IpNet::new(IpAddr::V6((u128::from(ula.network()) | 2).into()), 64).unwrap();
        inner.set_up("lo").unwrap();
        inner.add_address(PEER_NAME, IpNet::V4(lease)).unwrap();
        inner.add_address(PEER_NAME, lease6).unwrap();
        inner.set_up(PEER_NAME).unwrap();
        inner.add_default_route(IpAddr::V4(gw.addr())).unwrap();
        inner.add_default_route(IpAddr::V6(gw6.addr())).unwrap();

        let addrs: Vec<IpNet> = inner.addresses(Some(PEER_NAME)).unwrap().into_iter().map(|a| a.addr).collect();
        assert!(addrs.contains(&IpNet::V4(lease)), "{addrs:?}");
        assert!(addrs.contains(&lease6), "{addrs:?}");
        let bridge_addrs: Vec<IpNet> = host.addresses(Some(&bridge)).unwrap().into_iter().map(|a| a.addr).collect();
        assert!(bridge_addrs.contains(&IpNet::V4(gw)), "{bridge_addrs:?}");
        let inner_routes = inner.routes_v4().unwrap();
        assert!(
            inner_routes.iter().any(|r| r.dst.prefix_len() == 0 && r.gateway == Some(gw.addr())),
            "{inner_routes:?}"
        );
        assert!(inner_routes.iter().any(|r| r.dst == subnet), "{inner_routes:?}");
        assert!(host.routes_v4().unwrap().iter().any(|r| r.dst == subnet), "host route to {subnet}");

        // Errors name what failed and carry the errno.
        let err = inner.add_address(PEER_NAME, IpNet::V4(lease)).unwrap_err();
        assert_eq!(err.errno(), Some(libc::EEXIST));
        assert!(err.to_string().contains(&format!("{lease} to {PEER_NAME}")), "{err}");
        let err = host.create_bridge(&veth).unwrap_err();
        assert!(err.to_string().contains("not a bridge"), "{err}");
        let err = host.set_up("bt-missing0").unwrap_err();
        assert_eq!(err.errno(), Some(libc::ENODEV));
        assert!(err.to_string().contains("bt-missing0"), "{err}");

        for target in [IpAddr::V4(gw.addr()), IpAddr::V6(gw6.addr())] {
            let reply = ns.run(move || ping(target, Duration::from_secs(3))).unwrap();
            assert!(reply.is_ok(), "ping {target} from the namespace: {reply:?}");
        }
        // The control: an address nobody has stays silent.
        let nobody = IpAddr::V4(Ipv4Addr::from(u32::from(lease.addr()) + 1));
        let reply = ns.run(move || ping(nobody, Duration::from_millis(500))).unwrap();
        assert_eq!(reply.map_err(|e| e.kind()), Err(io::ErrorKind::TimedOut));

        // Deleting the host end takes host0 with it.
        assert!(host.delete_link(&veth).unwrap());
        assert!(!host.delete_link(&veth).unwrap(), "gone already: not an error");
        assert_eq!(errno(inner.link_index(PEER_NAME)), Some(libc::ENODEV));
        assert!(host.delete_link(&bridge).unwrap());
    }
    for name in [&bridge, &veth] {
        assert_eq!(errno(host.link_index(name)), Some(libc::ENODEV), "{name} left behind");
    }
}

#[test]
fn net_new_namespace_is_separate() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let before = netns_inode();
    let ns = NetNs::new().unwrap();
    assert_eq!(netns_inode(), before);
    let inside = ns.run(netns_inode).unwrap();
    assert_ne!(inside, before);
    // Only a loopback, no addresses until it is up; no routes at all.
    let inner = Netlink::open_in(ns.as_fd()).unwrap();
    assert_eq!(inner.link_index("lo").unwrap(), 1);
    assert!(inner.routes_v4().unwrap().is_empty());
    inner.set_up("lo").unwrap();
    let addrs = inner.addresses(Some("lo")).unwrap();
    assert!(addrs.iter().any(|a| a.addr == "127.0.0.1/8".parse::<IpNet>().unwrap()), "{addrs:?}");
    // A bridge made in there stays in there and goes with the namespace.
    let name = unique_name("bn");
    assert!(inner.create_bridge(&name).unwrap());
    inner.link_index(&name).unwrap();
    assert_eq!(errno(Netlink::open().unwrap().link_index(&name)), Some(libc::ENODEV));
}

/// An ICMP echo to `dst` from the calling thread's namespace, answered
/// within `wait` (sent again every 300 ms: the first may go before the
/// veth's carrier is up).
fn ping(dst: IpAddr, wait: Duration) -> io::Result<()> {
    use rustix::net::{ipproto, sockopt, AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};
    let (family, proto, request, reply) = match dst {
        IpAddr::V4(_) => (AddressFamily::INET, ipproto::ICMP, 8u8, 0u8),
        IpAddr::V6(_) => (AddressFamily::INET6, ipproto::ICMPV6, 128, 129),
    };
    let sock = rustix::net::socket_with(family, SocketType::RAW, SocketFlags::CLOEXEC, Some(proto))?;
    sockopt::set_socket_timeout(&sock, sockopt::Timeout::Recv, Some(Duration::from_millis(300)))?;
    let id = (std::process::id() & 0xffff) as u16;
    let deadline = Instant::now() + wait;
    for seq in 1u16.. {
        if Instant::now() > deadline {
            break;
        }
        let mut packet = vec![request, 0, 0, 0];
        packet.extend_from_slice(&id.to_be_bytes());
        packet.extend_from_slice(&seq.to_be_bytes());
        packet.extend_from_slice(b"berth net test");
        if dst.is_ipv4() {
            // The kernel fills in ICMPv6 checksums itself, not ICMP ones.
            let sum = checksum(&packet);
            packet[2..4].copy_from_slice(&sum.to_be_bytes());
        }
        rustix::net::sendto(&sock, &packet, SendFlags::empty(), &std::net::SocketAddr::new(dst, 0))?;
        let mut buf = [0u8; 1500];
        while let Ok((n, _)) = rustix::net::recv(&sock, &mut buf, RecvFlags::empty()) {
            // A raw IPv4 socket gets the IP header too; IPv6 only ICMPv6.
            let icmp = match dst {
                IpAddr::V4(_) => buf.get(usize::from(buf[0] & 0x0f) * 4..n).unwrap_or(&[]),
                IpAddr::V6(_) => &buf[..n],
            };
            if icmp.len() >= 8 && icmp[0] == reply && icmp[4..6] == id.to_be_bytes() && icmp[6..8] == seq.to_be_bytes()
            {
                return Ok(());
            }
        }
    }
    Err(io::Error::new(io::ErrorKind::TimedOut, format!("no echo reply from {dst}")))
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
