//! Published ports (`-p [tcp:|udp:][HOSTIP:]HOSTPORT[:CONTPORT]`): the
//! host's port is forwarded to the container's address with nftables DNAT
//! in a table of the container's own (`inet berth-p-HOSTIF`), so the
//! client's source address reaches the container, and it answers on the
//! host's own addresses and on 127.0.0.1 too (systemd-nspawn's `--port`
//! does not):
//!
//! ```text
//! table inet berth-p-vb-… {
//!   chain prerouting { type nat hook prerouting priority dstnat;   # from elsewhere
//!     fib daddr type local [ip daddr HOSTIP] tcp dport HOSTPORT dnat ip to ADDR:CONTPORT }
//!   chain output { type nat hook output priority dstnat;           # from this host
//!     fib daddr type local [ip daddr HOSTIP] tcp dport HOSTPORT dnat ip to ADDR:CONTPORT }
//!   chain postrouting { type nat hook postrouting priority srcnat; # 127.0.0.1's replies
//!     ip saddr 127.0.0.0/8 ip daddr ADDR masquerade }
//! }
//! ```
//!
//! A connection to 127.0.0.1 needs `route_localnet` on the bridge (the
//! network's table drops what a machine sends to 127/8, so that opens no
//! way in). The port is also held by a socket bound to it for as long as
//! the container runs, so a port in use is an error before the container
//! starts, and nothing else takes it while it runs. The table goes when
//! the container ends; a table left by a killed berth is swept before the
//! next port is published.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::str::FromStr;

use serde_json::{json, Value};

use super::nat::{self, NatError};

/// TCP or UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// One `-p` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMap {
    pub proto: Proto,
    /// Only this host address (default: all of them).
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub container_port: u16,
}

impl FromStr for PortMap {
    type Err = String;

    fn from_str(s: &str) -> Result<PortMap, String> {
        let bad = |why: &str| format!("-p {s}: {why} (expected [tcp:|udp:][HOSTIP:]HOSTPORT[:CONTPORT], e.g. 8080:80)");
        let mut parts: Vec<&str> = s.split(':').collect();
        let proto = match parts.first().copied() {
            Some("tcp") => {
                parts.remove(0);
                Proto::Tcp
            }
            Some("udp") => {
                parts.remove(0);
                Proto::Udp
            }
            _ => Proto::Tcp,
        };
        let host_ip = match parts.first().map(|p| p.parse::<Ipv4Addr>()) {
            Some(Ok(ip)) if parts.len() > 1 => {
                parts.remove(0);
                Some(ip)
            }
            _ => None,
        };
        let port = |p: &str| -> Result<u16, String> {
            match p.parse::<u16>() {
                Ok(0) | Err(_) => Err(bad(&format!("{p:?} is not a port (1-65535)"))),
                Ok(n) => Ok(n),
            }
        };
        let (host_port, container_port) = match parts.as_slice() {
            [h] => (port(h)?, port(h)?),
            [h, c] => (port(h)?, port(c)?),
            _ => return Err(bad("too many parts (an IPv6 host address is not supported)")),
        };
        Ok(PortMap { proto, host_ip, host_port, container_port })
    }
}

/// Errors from publishing.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("port {proto}/{addr} is in use on this host: pick another (-p OTHER:{container})")]
    Taken { proto: &'static str, addr: SocketAddr, container: u16 },
    #[error("holding port {proto}/{addr}: {source}")]
    Bind { proto: &'static str, addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Nat(#[from] NatError),
    #[error("letting 127.0.0.1 reach bridge {bridge} (route_localnet): {source}")]
    Localnet { bridge: String, source: std::io::Error },
}

/// Binds (and for TCP listens on) each host port, so a port in use fails
/// here and no one takes it while the container runs. Hold the result.
pub fn reserve(ports: &[PortMap]) -> Result<Vec<OwnedFd>, PortError> {
    let mut held = Vec::new();
    for p in ports {
        let addr = SocketAddr::new(IpAddr::V4(p.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED)), p.host_port);
        let err = |e: std::io::Error| {
            if e.kind() == std::io::ErrorKind::AddrInUse {
                PortError::Taken { proto: p.proto.name(), addr, container: p.container_port }
            } else {
                PortError::Bind { proto: p.proto.name(), addr, source: e }
            }
        };
        // A listening TCP socket (std's, close-on-exec) conflicts with any
        // later bind of the port, SO_REUSEADDR or not.
        let fd: OwnedFd = match p.proto {
            Proto::Tcp => std::net::TcpListener::bind(addr).map_err(err)?.into(),
            Proto::Udp => std::net::UdpSocket::bind(addr).map_err(err)?.into(),
        };
        held.push(fd);
    }
    Ok(held)
}

/// The table of the link `host_if` with index `index`: a machine's host
/// end keeps its name across runs, so the index tells one run's table
/// from the next one's (whose start may come before the last one's
/// table is gone).
pub(super) fn table(host_if: &str, index: u32) -> String {
    format!("berth-p-{host_if}-{index}")
}

/// The container's port table, its DNAT to `addr` (made anew).
pub fn publish(host_if: &str, index: u32, bridge: &str, addr: Ipv4Addr, ports: &[PortMap]) -> Result<(), PortError> {
    if ports.is_empty() {
        return Ok(());
    }
    sweep()?;
    let localnet = format!("/proc/sys/net/ipv4/conf/{bridge}/route_localnet");
    std::fs::write(&localnet, "1\n").map_err(|source| PortError::Localnet { bridge: bridge.to_string(), source })?;
    let t = table(host_if, index);
    let tbl = json!({ "family": "inet", "name": t });
    let chain = |name: &str, hook: &str, prio: i32| {
        json!({ "add": { "chain": {
            "family": "inet", "table": t, "name": name, "type": "nat", "hook": hook, "prio": prio, "policy": "accept"
        } } })
    };
    let rule = |chain: &str, expr: Vec<Value>| json!({ "add": { "rule": { "family": "inet", "table": t, "chain": chain, "expr": expr } } });
    let m = |left: Value, op: &str, right: Value| json!({ "match": { "op": op, "left": left, "right": right } });
    let mut commands = vec![
        json!({ "add": { "table": tbl } }),
        json!({ "delete": { "table": tbl } }),
        json!({ "add": { "table": tbl } }),
        chain("prerouting", "prerouting", -100),
        chain("output", "output", -100),
        chain("postrouting", "postrouting", 100),
    ];
    for p in ports {
        let mut expr = vec![m(json!({ "fib": { "result": "type", "flags": ["daddr"] } }), "==", json!("local"))];
        if let Some(ip) = p.host_ip {
            expr.push(m(json!({ "payload": { "protocol": "ip", "field": "daddr" } }), "==", json!(ip.to_string())));
        }
        expr.push(m(json!({ "payload": { "protocol": p.proto.name(), "field": "dport" } }), "==", json!(p.host_port)));
        expr.push(json!({ "dnat": { "family": "ip", "addr": addr.to_string(), "port": p.container_port } }));
        commands.push(rule("prerouting", expr.clone()));
        commands.push(rule("output", expr));
    }
    commands.push(rule(
        "postrouting",
        vec![
            m(
                json!({ "payload": { "protocol": "ip", "field": "saddr" } }),
                "==",
                json!({ "prefix": { "addr": "127.0.0.0", "len": 8 } }),
            ),
            m(json!({ "payload": { "protocol": "ip", "field": "daddr" } }), "==", json!(addr.to_string())),
            json!({ "masquerade": null }),
        ],
    ));
    nat::apply("publish its ports", host_if, commands)?;
    Ok(())
}

/// Removes the container's port table (nothing when there is none).
pub fn unpublish(host_if: &str, index: u32) {
    let tbl = json!({ "family": "inet", "name": table(host_if, index) });
    let _ = nat::apply(
        "remove its port table",
        host_if,
        vec![json!({ "add": { "table": tbl } }), json!({ "delete": { "table": tbl } })],
    );
}

/// Removes the port tables of containers whose link is gone (a berth
/// killed before it could): no link of that name with that index.
fn sweep() -> Result<(), PortError> {
    let Ok(listing) = nat::list_tables() else { return Ok(()) };
    for name in listing {
        let Some((host_if, index)) = name.strip_prefix("berth-p-").and_then(|r| r.rsplit_once('-')) else { continue };
        let Ok(index) = index.parse::<u32>() else { continue };
        let now = std::fs::read_to_string(std::path::Path::new("/sys/class/net").join(host_if).join("ifindex"));
        if now.ok().and_then(|i| i.trim().parse::<u32>().ok()) != Some(index) {
            unpublish(host_if, index);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_values_as_the_spec_writes_them() {
        let p: PortMap = "8080:80".parse().unwrap();
        assert_eq!(p, PortMap { proto: Proto::Tcp, host_ip: None, host_port: 8080, container_port: 80 });
        let p: PortMap = "udp:127.0.0.1:5353:53".parse().unwrap();
        assert_eq!(
            p,
            PortMap { proto: Proto::Udp, host_ip: Some(Ipv4Addr::LOCALHOST), host_port: 5353, container_port: 53 }
        );
        let p: PortMap = "tcp:443".parse().unwrap();
        assert_eq!((p.host_port, p.container_port), (443, 443));
        let p: PortMap = "10.0.0.1:80".parse().unwrap();
        assert_eq!((p.host_ip, p.host_port), (Some(Ipv4Addr::new(10, 0, 0, 1)), 80));
        for bad in ["", "0", "70000", "sctp:80", "a:b", "1:2:3:4", "tcp:", "::1:80:80"] {
            assert!(bad.parse::<PortMap>().is_err(), "{bad:?}");
        }
    }
}
