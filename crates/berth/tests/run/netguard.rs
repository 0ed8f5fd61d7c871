//! A hostile machine on a berth network (issue 12): it may give `host0`
//! any address (it holds CAP_NET_ADMIN in its namespace), but the bridge
//! carries nothing from it with another machine's address, so it cannot
//! take that machine's traffic; and a network whose tables were flushed is
//! repaired by the next start on it.

use std::process::{Command, Stdio};
use std::time::Duration;

use super::network::{http_get, networks, web_machine};
use crate::harness::berth::unique;
use crate::harness::container::Ctx;

#[test]
fn a_machine_cannot_take_another_machines_address_on_the_bridge() {
    let c = Ctx::busybox();
    let net = c.berth.network().to_string();
    let a = format!("victim-{}", unique());
    let (_victim, addr) = web_machine(&c, &a);
    // The attacker takes the victim's address and speaks from it: its ARP
    // request for the gateway (sender: the victim's address, its own MAC)
    // would repoint the host's neighbour entry at it.
    let subnet: ipnet::Ipv4Net = networks(&c)[&net]["subnet"].as_str().unwrap_or_default().parse().expect("subnet");
    let gw = std::net::Ipv4Addr::from(u32::from(subnet.network()) + 1);
    let evil = format!(
        "ip addr flush dev host0 && ip addr add {addr}/{len} dev host0 && ip route add default via {gw} && \
         mkdir -p /www && echo evil > /www/index.html && httpd -p 8080 -h /www && echo armed && \
         for i in 1 2 3 4; do nc -w 1 {gw} 9 </dev/null; sleep 0.2; done",
        len = subnet.prefix_len()
    );
    let attacker = c.berth.spawn(["run", "-n", &c.image, "/bin/sh", "-c", &evil]);
    let mut answers = Vec::new();
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..10 {
        answers.push(http_get(addr, 8080).unwrap_or_else(|e| format!("error: {e}")).trim().to_string());
        std::thread::sleep(Duration::from_millis(250));
    }
    let out = attacker.wait_with_output().expect("the attacker's run");
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.contains("armed"), "the attack did not start: {said}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        answers.iter().all(|b| *b == format!("hello from {a}")),
        "the host's traffic for {addr} went elsewhere: {answers:?}"
    );
}

#[test]
fn a_start_repairs_a_networks_flushed_tables_and_its_running_machines_bindings() {
    let c = Ctx::busybox();
    let net = c.berth.network().to_string();
    let a = format!("web-{}", unique());
    let (_web, addr) = web_machine(&c, &a);
    // A firewall reload takes berth's rules with it: here this network's
    // NAT table and the running machine's bindings (not the shared
    // binding table: other tests' machines run meanwhile).
    let st = Command::new("nft").args(["delete", "table", "inet", &format!("berth-{net}")]).status();
    assert!(st.is_ok_and(|s| s.success()), "deleting the NAT table");
    let listed =
        Command::new("nft").args(["-j", "list", "set", "bridge", "berth-bind", "ports4"]).output().expect("nft");
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    let host_if = listed
        .split('"')
        .collect::<Vec<_>>()
        .windows(3)
        .find(|w| w[0].starts_with("vb-") && w[2] == addr.to_string())
        .map(|w| w[0].to_string())
        .unwrap_or_else(|| panic!("no binding of {addr}: {listed}"));
    let st = Command::new("nft")
        .args(["delete", "element", "bridge", "berth-bind", "ports4", &format!("{{ {host_if} . {addr} }}")])
        .status();
    assert!(st.is_ok_and(|s| s.success()), "deleting the binding");
    assert!(http_get(addr, 8080).is_err(), "unbound, the machine must be cut off (the guard works)");
    // The next start on the network notices and repairs all of it.
    let o = c.berth.run(["run", "-n", &c.image, "/bin/sh", "-c", "ip -4 -o addr show host0"]).success();
    assert!(o.stdout.contains("inet "), "{o:?}");
    let out = Command::new("nft")
        .args(["list", "table", "inet", &format!("berth-{net}")])
        .stderr(Stdio::null())
        .output()
        .expect("nft");
    assert!(String::from_utf8_lossy(&out.stdout).contains("masquerade"), "the NAT table was not made again");
    let body = http_get(addr, 8080).unwrap_or_default();
    assert_eq!(body.trim(), format!("hello from {a}"), "the running machine's binding was not made again");
}
