//! Outbound NAT for a berth network, in an nftables table of its own
//! (`inet berth-NAME`), so no rule of the user's is touched and removing
//! the network removes exactly what it added:
//!
//! ```text
//! table inet berth-NAME {
//!   chain postrouting { type nat hook postrouting priority srcnat;
//!     ip saddr SUBNET ip daddr != SUBNET masquerade }
//!   chain guard { type filter hook prerouting priority raw;
//!     iifname NAME ip daddr 127.0.0.0/8 drop            # see ports.rs
//!     iifname NAME ip saddr 127.0.0.0/8 drop }
//!   chain forward { type filter hook forward priority filter;
//!     iifname NAME ip saddr != SUBNET drop              # no forged sources
//!     iifname NAME ip6 saddr != { ULA, fe80::/10 } drop
//!     iifname NAME accept                               # out of the bridge
//!     oifname NAME ct state established,related accept  # replies
//!     oifname NAME ct status dnat accept                # published ports
//!     oifname NAME drop }                               # nothing else in
//!   chain dns { type nat hook prerouting priority dstnat;  # see dns.rs
//!     iifname NAME ip daddr GATEWAY udp dport 53 dnat to RESOLVER:53
//!     iifname NAME ip daddr GATEWAY tcp dport 53 dnat to RESOLVER:53 }
//!   chain dns-in { type nat hook input priority srcnat;
//!     iifname NAME ip daddr RESOLVER udp dport 53 ct status dnat snat to 127.0.0.1
//!     iifname NAME ip daddr RESOLVER tcp dport 53 ct status dnat snat to 127.0.0.1 }
//! }
//! ```
//!
//! The `dns` chain is there when the host's resolver is on its loopback
//! (RESOLVER, e.g. 127.0.0.53); `route_localnet` on the bridge then lets
//! the kernel deliver the rewritten queries, and the guard (at raw
//! priority, before any DNAT) still drops what a machine sends to 127/8
//! itself.
//!
//! IPv4 forwarding is switched on (`net.ipv4.ip_forward`, as podman and
//! systemd-networkd's `IPMasquerade=` do), guarded ([`super::forward`]);
//! IPv6 forwarding is left as it is, since turning it on stops a host
//! from taking router advertisements.
//!
//! Through the `nftables` crate, which hands nft's JSON API to the `nft`
//! program (Debian's `nftables`): nf_tables' netlink protocol wants rules
//! compiled to expression bytecode, which libnftables does and a
//! hand-written encoder would only imitate. nft runs only when a network's
//! bridge is made (first use, after a reboot) or removed, never on a
//! machine's start.

use std::net::Ipv4Addr;

use ipnet::{Ipv4Net, Ipv6Net};
use serde_json::{json, Value};

/// Errors from nft.
#[derive(Debug, thiserror::Error)]
pub enum NatError {
    #[error("nft (apt-get install nftables) failed to {what} for network {network}: {detail}")]
    Nft { what: &'static str, network: String, detail: String },
    #[error("switching IPv4 forwarding (net.ipv4.ip_forward, /run/berth-forwarding): {0}")]
    Forwarding(#[source] std::io::Error),
    #[error("letting the bridge reach the host's resolver (route_localnet): {0}")]
    Localnet(#[source] std::io::Error),
}

fn table(network: &str) -> String {
    format!("berth-{network}")
}

/// The `nft` program, by its path rather than through the caller's PATH.
pub(super) fn nft() -> &'static str {
    ["/usr/sbin/nft", "/sbin/nft"].into_iter().find(|p| std::path::Path::new(p).exists()).unwrap_or("nft")
}

/// The objects `nft list ARGS…` prints (its JSON's `nftables` array).
pub(super) fn list(what: &'static str, network: &str, args: &[&str]) -> Result<Vec<Value>, NatError> {
    let out = nftables::helper::get_current_ruleset_raw(Some(nft()), args).map_err(|e| NatError::Nft {
        what,
        network: network.to_string(),
        detail: e.to_string(),
    })?;
    let v: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
    Ok(match v {
        Value::Object(mut o) => match o.remove("nftables") {
            Some(Value::Array(a)) => a,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    })
}

/// The names of the host's nftables tables of the `inet` family.
pub(super) fn list_tables() -> Result<Vec<String>, NatError> {
    let objects = list("list the tables", "", &["list", "tables", "inet"])?;
    Ok(objects.iter().filter_map(|o| o["table"]["name"].as_str().map(str::to_string)).collect())
}

pub(super) fn apply(what: &'static str, network: &str, commands: Vec<Value>) -> Result<(), NatError> {
    let payload = json!({ "nftables": commands }).to_string();
    nftables::helper::apply_ruleset_raw(&payload, Some(nft()), std::iter::empty::<&str>())
        .map(drop)
        .map_err(|e| NatError::Nft { what, network: network.to_string(), detail: e.to_string() })
}

fn matches(left: Value, op: &str, right: Value) -> Value {
    json!({ "match": { "op": op, "left": left, "right": right } })
}

fn prefix(net: impl std::fmt::Display) -> Value {
    let s = net.to_string();
    let (addr, len) = s.split_once('/').unwrap_or((&s, "32"));
    json!({ "prefix": { "addr": addr, "len": len.parse::<u32>().unwrap_or(32) } })
}

/// The network's table, made anew (idempotent: one batch adds it,
/// deletes it and adds it with its rules), forwarding DNS at the bridge
/// to `resolver` when the host's is on its loopback.
pub fn ensure(network: &str, subnet: Ipv4Net, ula: Ipv6Net, resolver: Option<Ipv4Addr>) -> Result<(), NatError> {
    let t = table(network);
    let fam = "inet";
    let tbl = json!({ "family": fam, "name": t });
    let chain = |name: &str, kind: &str, hook: &str, prio: i32| {
        json!({ "add": { "chain": {
            "family": fam, "table": t, "name": name, "type": kind, "hook": hook, "prio": prio, "policy": "accept"
        } } })
    };
    let rule = |chain: &str, expr: Vec<Value>| json!({ "add": { "rule": { "family": fam, "table": t, "chain": chain, "expr": expr } } });
    let saddr = json!({ "payload": { "protocol": "ip", "field": "saddr" } });
    let saddr6 = json!({ "payload": { "protocol": "ip6", "field": "saddr" } });
    let daddr = json!({ "payload": { "protocol": "ip", "field": "daddr" } });
    let iif = json!({ "meta": { "key": "iifname" } });
    let oif = json!({ "meta": { "key": "oifname" } });
    let gateway = super::ipam::gateway(subnet).addr();
    let mut commands = vec![
        json!({ "add": { "table": tbl } }),
        json!({ "delete": { "table": tbl } }),
        json!({ "add": { "table": tbl } }),
        // Touched by every start (see bind.rs): the table is still there.
        json!({ "add": { "set": { "family": fam, "table": t, "name": "alive", "type": "ifname", "flags": ["timeout"] } } }),
        chain("postrouting", "nat", "postrouting", 100),
        chain("forward", "filter", "forward", 0),
        chain("guard", "filter", "prerouting", -300),
        // Published ports turn route_localnet on for the bridge: nothing a
        // machine sends to 127/8 may reach the host's loopback services.
        rule(
            "guard",
            vec![
                matches(iif.clone(), "==", json!(network)),
                matches(daddr.clone(), "==", prefix("127.0.0.0/8")),
                json!({ "drop": null }),
            ],
        ),
        // Nor anything it sends from 127/8, which route_localnet would let
        // in as if from the host itself.
        rule(
            "guard",
            vec![
                matches(iif.clone(), "==", json!(network)),
                matches(saddr.clone(), "==", prefix("127.0.0.0/8")),
                json!({ "drop": null }),
            ],
        ),
        rule(
            "postrouting",
            vec![
                matches(saddr.clone(), "==", prefix(subnet)),
                matches(daddr.clone(), "!=", prefix(subnet)),
                json!({ "masquerade": null }),
            ],
        ),
        // Only the network's own addresses leave it: a container root
        // with CAP_NET_RAW forges no source beyond the bridge. Link-local
        // sources pass: the kernel routes none of them, and with
        // br_netfilter (bridged frames through this hook too) machines'
        // neighbour discovery uses them.
        rule(
            "forward",
            vec![
                matches(iif.clone(), "==", json!(network)),
                matches(saddr6, "!=", json!({ "set": [prefix(ula), prefix("fe80::/10")] })),
                json!({ "drop": null }),
            ],
        ),
        rule(
            "forward",
            vec![
                matches(iif.clone(), "==", json!(network)),
                matches(saddr, "!=", prefix(subnet)),
                json!({ "drop": null }),
            ],
        ),
        rule("forward", vec![matches(iif.clone(), "==", json!(network)), json!({ "accept": null })]),
        rule(
            "forward",
            vec![
                matches(oif.clone(), "==", json!(network)),
                matches(json!({ "ct": { "key": "state" } }), "in", json!(["established", "related"])),
                json!({ "accept": null }),
            ],
        ),
        rule(
            "forward",
            vec![
                matches(oif.clone(), "==", json!(network)),
                matches(json!({ "ct": { "key": "status" } }), "in", json!(["dnat"])),
                json!({ "accept": null }),
            ],
        ),
        rule("forward", vec![matches(oif, "==", json!(network)), json!({ "drop": null })]),
    ];
    commands.extend(super::bind::commands());
    if let Some(resolver) = resolver {
        commands.push(chain("dns", "nat", "prerouting", -100));
        commands.push(chain("dns-in", "nat", "input", 100));
        for proto in ["udp", "tcp"] {
            // From 127.0.0.1 once there: systemd-resolved's stub (and
            // unbound's default access control) answer localhost only.
            commands.push(rule(
                "dns-in",
                vec![
                    matches(iif.clone(), "==", json!(network)),
                    matches(daddr.clone(), "==", json!(resolver.to_string())),
                    matches(json!({ "payload": { "protocol": proto, "field": "dport" } }), "==", json!(53)),
                    matches(json!({ "ct": { "key": "status" } }), "in", json!(["dnat"])),
                    json!({ "snat": { "family": "ip", "addr": "127.0.0.1" } }),
                ],
            ));
            commands.push(rule(
                "dns",
                vec![
                    matches(iif.clone(), "==", json!(network)),
                    matches(daddr.clone(), "==", json!(gateway.to_string())),
                    matches(json!({ "payload": { "protocol": proto, "field": "dport" } }), "==", json!(53)),
                    json!({ "dnat": { "family": "ip", "addr": resolver.to_string(), "port": 53 } }),
                ],
            ));
        }
    }
    // The guard first, route_localnet after: never the one without the other.
    apply("add its NAT table", network, commands)?;
    let localnet = format!("/proc/sys/net/ipv4/conf/{network}/route_localnet");
    if resolver.is_some() {
        std::fs::write(&localnet, "1\n").map_err(NatError::Localnet)?;
    }
    // A bridge never takes router advertisements (the guard drops the
    // machines'; this covers a flushed guard too).
    let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{network}/accept_ra"), "0\n");
    Ok(())
}

/// Removes the network's table (nothing when it is not there).
pub fn remove(network: &str) -> Result<(), NatError> {
    let tbl = json!({ "family": "inet", "name": table(network) });
    apply(
        "remove its NAT table",
        network,
        vec![json!({ "add": { "table": tbl } }), json!({ "delete": { "table": tbl } })],
    )
}
