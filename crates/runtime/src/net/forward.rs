//! IPv4 forwarding, which NAT needs, without turning the host into a
//! router for everything else. When berth switches `net.ipv4.ip_forward`
//! on (it was off), it first adds a table of its own that drops every
//! forwarded packet involving none of its bridges, as Docker's `FORWARD`
//! policy drop does, so a host with two uplinks (a LAN and a VPN, say)
//! does not start routing between them because a machine was given a
//! veth:
//!
//! ```text
//! table inet berth-forward {
//!   set bridges { type ifname; }                     # berth's networks
//!   chain forward { type filter hook forward priority filter - 1;
//!     iifname @bridges accept
//!     oifname @bridges accept
//!     meta nfproto ipv4 drop }
//! }
//! ```
//!
//! A host that forwarded already (a router, Docker) is left exactly as it
//! was. Who switched it on is recorded in `/run/berth-forwarding`
//! (`berth` or `host`; `/run` forgets it at reboot, as the kernel forgets
//! the setting). When berth's last network goes, the table goes and, if
//! berth had switched forwarding on, it is switched off again. Callers
//! hold the host-wide network lock (`/run/berth-net.lock`).

use serde_json::{json, Value};

use super::nat::{apply, list_tables, NatError};

const TABLE: &str = "berth-forward";
const SYSCTL: &str = "/proc/sys/net/ipv4/ip_forward";

/// Where berth records who switched forwarding on.
pub const STATE: &str = "/run/berth-forwarding";

fn io(e: std::io::Error) -> NatError {
    NatError::Forwarding(e)
}

fn element(network: &str, op: &str) -> Value {
    json!({ op: { "element": { "family": "inet", "table": TABLE, "name": "bridges", "elem": [network] } } })
}

/// Bridge `network` forwards: forwarding on, and when berth is the one
/// that switched it on, the guard table (made first) lets the bridge through.
pub fn join(network: &str) -> Result<(), NatError> {
    let on = std::fs::read_to_string(SYSCTL).map_err(io)?.trim() == "1";
    let origin = match std::fs::read_to_string(STATE) {
        _ if !on => "berth".to_string(),
        Ok(s) => s.trim().to_string(),
        Err(_) => "host".to_string(),
    };
    std::fs::write(STATE, format!("{origin}\n")).map_err(io)?;
    if origin == "berth" {
        let t = json!({ "family": "inet", "name": TABLE });
        let chain = json!({ "family": "inet", "table": TABLE, "name": "forward" });
        let rule = |expr: Vec<Value>| json!({ "add": { "rule": { "family": "inet", "table": TABLE, "chain": "forward", "expr": expr } } });
        let member =
            |key: &str| json!({ "match": { "op": "==", "left": { "meta": { "key": key } }, "right": "@bridges" } });
        apply(
            "add the forwarding guard",
            network,
            vec![
                json!({ "add": { "table": t } }),
                json!({ "add": { "set": { "family": "inet", "table": TABLE, "name": "bridges", "type": "ifname" } } }),
                json!({ "add": { "chain": {
                    "family": "inet", "table": TABLE, "name": "forward", "type": "filter", "hook": "forward",
                    "prio": -1, "policy": "accept"
                } } }),
                json!({ "flush": { "chain": chain } }),
                rule(vec![member("iifname"), json!({ "accept": null })]),
                rule(vec![member("oifname"), json!({ "accept": null })]),
                // IPv4 only: berth leaves IPv6 forwarding as it finds it.
                rule(vec![
                    json!({ "match": { "op": "==", "left": { "meta": { "key": "nfproto" } }, "right": "ipv4" } }),
                    json!({ "drop": null }),
                ]),
                element(network, "add"),
            ],
        )?;
    }
    if !on {
        std::fs::write(SYSCTL, "1\n").map_err(io)?;
    }
    Ok(())
}

/// Bridge `network` is gone: out of the guard's set; with the set empty
/// (berth's last network), the guard goes and forwarding is switched off
/// again if berth switched it on.
pub fn leave(network: &str) -> Result<(), NatError> {
    if !list_tables()?.iter().any(|t| t == TABLE) {
        return Ok(());
    }
    // Gone already (a failed create) is fine.
    let _ = apply("leave the forwarding guard", network, vec![element(network, "delete")]);
    let objects = super::nat::list("list the forwarding guard", network, &["list", "set", "inet", TABLE, "bridges"])?;
    let empty = !objects.is_empty() && objects.iter().all(|o| o["set"]["elem"].as_array().is_none_or(|e| e.is_empty()));
    if empty {
        let t = json!({ "family": "inet", "name": TABLE });
        apply("remove the forwarding guard", network, vec![json!({ "delete": { "table": t } })])?;
        if std::fs::read_to_string(STATE).is_ok_and(|s| s.trim() == "berth") {
            std::fs::write(SYSCTL, "0\n").map_err(io)?;
        }
        let _ = std::fs::remove_file(STATE);
    }
    Ok(())
}
