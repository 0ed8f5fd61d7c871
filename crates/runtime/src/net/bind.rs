//! Each machine's addresses bound to its own link on the bridge, so a
//! machine root (which holds CAP_NET_ADMIN in its namespace and may give
//! `host0` any address) cannot take over another machine's address: no
//! ARP claiming it, no IP packet from it. One bridge-family table for
//! all of berth's networks (the host ends' names are unique host-wide, and
//! this kernel has no `meta ibrname` to tell bridges apart):
//!
//! ```text
//! table bridge berth-bind {
//!   set guarded { type ifname; }                   # host ends held to it
//!   set ports4 { type ifname . ipv4_addr; }        # host end . lease
//!   set ports6 { type ifname . ipv6_addr; }
//!   set macs   { type ifname . ether_addr; }       # host end . host0's MAC
//!   chain guard { type filter hook prerouting priority -300;
//!     iifname @guarded ether type != { arp, ip, ip6 } drop   # VLAN tags, STP
//!     iifname @guarded iifname . ether saddr != @macs drop
//!     iifname @guarded ether type arp iifname . arp saddr ether != @macs drop
//!     iifname @guarded icmpv6 type { nd-router-advert, nd-redirect } drop
//!     iifname @guarded udp sport { 67, 547 } drop            # DHCP servers
//!     iifname @guarded ether type arp iifname . arp saddr ip != @ports4 drop
//!     iifname @guarded ether type ip  iifname . ip saddr != @ports4 drop
//!     iifname @guarded ether type ip6 ip6 saddr != { ::, fe80::/10 }
//!                                     iifname . ip6 saddr != @ports6 drop }
//! }
//! ```
//!
//! `host0` gets its MAC address from berth ([`mac_for`]: `02:b7` and its
//! IPv4 address), so the binding holds for the MAC too: a machine that
//! takes another's MAC would make the bridge deliver that machine's
//! frames to it. Only berth's links on berth's networks are guarded; a
//! link on a bridge of the user's (no lease) is not, nor a link of the
//! user's on a berth bridge. Beyond the bindings, a machine may not act
//! as the others' router or DHCP server (a rogue router advertisement
//! needs only CAP_NET_RAW, which `--capability` may grant), nor send
//! anything but ARP, IPv4 and IPv6. IPv6 link-local and unspecified
//! sources pass (neighbour discovery needs them); a forged neighbour
//! advertisement for another machine's ULA address is not caught here.
//!
//! The bindings are per address (the link is named after it), so they
//! stay true whoever holds it next and are removed only with the network.
//! A start looks them up ([`super::nfcheck`], no `nft`); the first run on
//! an address, or one after a flush, adds them with one `nft` started
//! before the container is cloned and waited for before its command
//! starts, so the few milliseconds nft takes overlap the container's setup. When the batch
//! fails because the network's tables are gone (a `nft flush ruleset`, a
//! firewall reload), the tables are made again and the batch retried:
//! each start also repairs NAT after a flush.

use std::io::Write;
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

use super::{nat, IpNet};
use crate::spec::NetAttach;

const TABLE: &str = "berth-bind";

/// The table, its sets and its guard chain (rules made anew, elements
/// kept: machines running keep their bindings when this runs again).
pub(super) fn commands() -> Vec<Value> {
    let t = TABLE;
    let fam = "bridge";
    let rule =
        |expr: Vec<Value>| json!({ "add": { "rule": { "family": fam, "table": t, "chain": "guard", "expr": expr } } });
    let m = |left: Value, op: &str, right: Value| json!({ "match": { "op": op, "left": left, "right": right } });
    let iif = json!({ "meta": { "key": "iifname" } });
    let ether = json!({ "payload": { "protocol": "ether", "field": "type" } });
    let ours = m(iif.clone(), "==", json!("@guarded"));
    let bound = |field: Value, set: &str| m(json!({ "concat": [iif.clone(), field] }), "!=", json!(format!("@{set}")));
    let drop = json!({ "drop": null });
    vec![
        json!({ "add": { "table": { "family": fam, "name": t } } }),
        json!({ "add": { "set": { "family": fam, "table": t, "name": "ports4", "type": ["ifname", "ipv4_addr"] } } }),
        json!({ "add": { "set": { "family": fam, "table": t, "name": "ports6", "type": ["ifname", "ipv6_addr"] } } }),
        json!({ "add": { "set": { "family": fam, "table": t, "name": "macs", "type": ["ifname", "ether_addr"] } } }),
        json!({ "add": { "set": { "family": fam, "table": t, "name": "guarded", "type": "ifname" } } }),
        json!({ "add": { "chain": {
            "family": fam, "table": t, "name": "guard", "type": "filter", "hook": "prerouting", "prio": -300,
            "policy": "accept"
        } } }),
        json!({ "flush": { "chain": { "family": fam, "table": t, "name": "guard" } } }),
        // Nothing but ARP, IPv4 and IPv6: no VLAN-tagged frame (whose
        // contents the rules below would not see), no STP or LLDP.
        rule(vec![ours.clone(), m(ether.clone(), "!=", json!({ "set": ["arp", "ip", "ip6"] })), drop.clone()]),
        // Its own MAC address only, in the frame and in ARP: another
        // machine's would make the bridge send that machine's frames here.
        rule(vec![
            ours.clone(),
            bound(json!({ "payload": { "protocol": "ether", "field": "saddr" } }), "macs"),
            drop.clone(),
        ]),
        rule(vec![
            ours.clone(),
            m(ether.clone(), "==", json!("arp")),
            bound(json!({ "payload": { "protocol": "arp", "field": "saddr ether" } }), "macs"),
            drop.clone(),
        ]),
        // No machine routes for or configures the others: no router
        // advertisement or redirect, no DHCP(v6) server.
        rule(vec![
            ours.clone(),
            m(json!({ "meta": { "key": "l4proto" } }), "==", json!("ipv6-icmp")),
            m(
                json!({ "payload": { "protocol": "icmpv6", "field": "type" } }),
                "==",
                json!({ "set": ["nd-router-advert", "nd-redirect"] }),
            ),
            drop.clone(),
        ]),
        rule(vec![
            ours.clone(),
            m(json!({ "meta": { "key": "l4proto" } }), "==", json!("udp")),
            m(json!({ "payload": { "protocol": "udp", "field": "sport" } }), "==", json!({ "set": [67, 547] })),
            drop.clone(),
        ]),
        rule(vec![
            ours.clone(),
            m(ether.clone(), "==", json!("arp")),
            bound(json!({ "payload": { "protocol": "arp", "field": "saddr ip" } }), "ports4"),
            drop.clone(),
        ]),
        rule(vec![
            ours.clone(),
            m(ether.clone(), "==", json!("ip")),
            bound(json!({ "payload": { "protocol": "ip", "field": "saddr" } }), "ports4"),
            drop.clone(),
        ]),
        rule(vec![
            ours,
            m(ether, "==", json!("ip6")),
            m(
                json!({ "payload": { "protocol": "ip6", "field": "saddr" } }),
                "!=",
                json!({ "set": ["::", { "prefix": { "addr": "fe80::", "len": 10 } }] }),
            ),
            bound(json!({ "payload": { "protocol": "ip6", "field": "saddr" } }), "ports6"),
            drop,
        ]),
    ]
}

/// Removes the table once it guards nothing (berth's last network went
/// and every run gave its bindings back). Not while any element is left:
/// a run adds its own before its link exists.
pub(super) fn remove_if_unused() {
    let Ok(objects) = nat::list("list the address bindings", "", &["list", "table", "bridge", TABLE]) else { return };
    let any = objects.iter().any(|o| o["set"]["elem"].is_array());
    if !any {
        let t = json!({ "family": "bridge", "name": TABLE });
        let _ = nat::apply("remove the address bindings", "", vec![json!({ "delete": { "table": t } })]);
    }
}

/// The additions that guard `host_if` and bind `addrs` and the MAC
/// address [`mac_for`] them to it, if there are any addresses (a link on
/// a bridge of the user's has none: unguarded).
fn element_commands(host_if: &str, addrs: &[IpNet]) -> Option<Vec<Value>> {
    let op = "add";
    let t = TABLE;
    let element = |set: &str, elem: Value| json!({ op: { "element": { "family": "bridge", "table": t, "name": set, "elem": [elem] } } });
    let mut commands = Vec::new();
    for a in addrs {
        let set = match a {
            IpNet::V4(_) => "ports4",
            IpNet::V6(_) => "ports6",
        };
        commands.push(element(set, json!({ "concat": [host_if, a.addr().to_string()] })));
    }
    let mac = mac_for(addrs)?;
    commands.push(element("macs", json!({ "concat": [host_if, format_mac(&mac)] })));
    // Guarded last: never guarded without its bindings.
    commands.push(element("guarded", json!(host_if)));
    Some(commands)
}

/// The MAC address berth gives a machine's `host0`: locally administered,
/// `02:b7` and its IPv4 address (unique on its bridge, the same every run
/// of a machine).
pub fn mac_for(addrs: &[IpNet]) -> Option<[u8; 6]> {
    addrs.iter().find_map(|a| match a {
        IpNet::V4(v4) => {
            let o = v4.addr().octets();
            Some([0x02, 0xb7, o[0], o[1], o[2], o[3]])
        }
        IpNet::V6(_) => None,
    })
}

fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

fn nft_batch(batch: &Value) -> std::io::Result<Child> {
    let mut child = Command::new(nat::nft())
        .args(["-j", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    // A few hundred bytes: the pipe takes them whether nft reads yet or not.
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(batch.to_string().as_bytes())?;
    }
    Ok(child)
}

/// A binding being added.
pub struct Pending {
    child: Option<Child>,
    batch: Value,
    network: String,
}

/// Starts adding `net`'s bindings (nothing for a link without addresses:
/// a bridge of the user's).
pub fn start(net: &NetAttach) -> Result<Option<Pending>, nat::NatError> {
    let Some(mut commands) = element_commands(&net.host_if, &net.addrs) else { return Ok(None) };
    // Bound by an earlier run on this address, tables still in: nothing to
    // add (two lookups, no nft; see nfcheck).
    if super::nfcheck::in_place(&format!("berth-{}", net.bridge), TABLE, &net.host_if).unwrap_or(false) {
        return Ok(None);
    }
    // An element (that expires by itself) in a set of the network's NAT
    // table: the batch fails when that table is gone too, so it tells a
    // flushed ruleset. (Not a no-op on a chain: that costs the commit an
    // RCU grace period, ~20 ms here; an element add does not.)
    let alive = json!([{ "elem": { "val": net.host_if, "timeout": 10 } }]);
    commands.push(json!({ "add": { "element": {
        "family": "inet", "table": format!("berth-{}", net.bridge), "name": "alive", "elem": alive
    } } }));
    let batch = json!({ "nftables": commands });
    let child = nft_batch(&batch).ok();
    Ok(Some(Pending { child, batch, network: net.bridge.clone() }))
}

impl Pending {
    /// Waits for the bindings; when they could not be added, `repair`
    /// makes the network's tables again and they are added once more.
    pub fn finish(self, repair: impl FnOnce() -> Result<(), String>) -> Result<(), nat::NatError> {
        let ok = self.child.and_then(|c| c.wait_with_output().ok()).is_some_and(|o| o.status.success());
        if ok {
            return Ok(());
        }
        repair().map_err(|detail| nat::NatError::Nft {
            what: "make its tables again",
            network: self.network.clone(),
            detail,
        })?;
        let out = nft_batch(&self.batch).and_then(|c| c.wait_with_output()).map_err(|e| nat::NatError::Nft {
            what: "bind the machine's addresses to its link",
            network: self.network.clone(),
            detail: e.to_string(),
        })?;
        if out.status.success() {
            return Ok(());
        }
        Err(nat::NatError::Nft {
            what: "bind the machine's addresses to its link",
            network: self.network,
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Binds `addrs` to `host_if` now (waited for).
pub fn rebind(host_if: &str, addrs: &[IpNet]) -> Result<(), nat::NatError> {
    match element_commands(host_if, addrs) {
        Some(commands) => nat::apply("bind a machine's addresses to its link", host_if, commands),
        None => Ok(()),
    }
}

/// Removes the bindings of every link whose name starts with `prefix`
/// (a network's, when it is removed).
pub fn unbind_prefix(prefix: &str) {
    let Ok(objects) = nat::list("list the address bindings", prefix, &["list", "table", "bridge", TABLE]) else {
        return;
    };
    let mut commands = Vec::new();
    for set in objects.iter().filter_map(|o| o.get("set")) {
        let (Some(name), Some(elems)) = (set["name"].as_str(), set["elem"].as_array()) else { continue };
        let ours: Vec<Value> = elems
            .iter()
            .filter(|e| {
                let link = e["concat"][0].as_str().or_else(|| e.as_str());
                link.is_some_and(|l| l.starts_with(prefix))
            })
            .cloned()
            .collect();
        if !ours.is_empty() {
            commands.push(json!({ "delete": { "element": {
                "family": "bridge", "table": TABLE, "name": name, "elem": ours
            } } }));
        }
    }
    if !commands.is_empty() {
        let _ = nat::apply("remove the network's address bindings", prefix, commands);
    }
}
