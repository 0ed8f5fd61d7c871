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

    // Another takes the victim's MAC address (berth gives host0 02:b7 and
    // its IPv4 address) and speaks from its own address: the bridge would
    // learn the victim's MAC on the attacker's port and send it the
    // victim's frames.
    let o = addr.octets();
    let mac = format!("02:b7:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3]);
    let evil = format!(
        "ip link set host0 down && ip link set host0 address {mac} && ip link set host0 up && \
         ip route add default via {gw} 2>/dev/null; echo armed; \
         for i in 1 2 3 4; do nc -w 1 {gw} 9 </dev/null; sleep 0.2; done"
    );
    let attacker = c.berth.spawn(["run", "-n", &c.image, "/bin/sh", "-c", &evil]);
    std::thread::sleep(Duration::from_millis(500));
    let mut answers = Vec::new();
    for _ in 0..8 {
        answers.push(http_get(addr, 8080).unwrap_or_else(|e| format!("error: {e}")).trim().to_string());
        std::thread::sleep(Duration::from_millis(250));
    }
    let out = attacker.wait_with_output().expect("the attacker's run");
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.contains("armed"), "the attack did not start: {said}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(answers.iter().all(|b| *b == format!("hello from {a}")), "the victim's frames went elsewhere: {answers:?}");
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

/// A broadcast Ethernet frame from the sender's own MAC (the probe fills
/// it in), ending in the marker be 27 00 KIND.
fn frame(kind: u8, ethertype: &str, payload: &str) -> String {
    format!("ffffffffffff000000000000{ethertype}{payload}be2700{kind:02x}")
}

/// An IPv6 header from fe80::be27 to ff02::1 (`next` the next header).
fn ipv6(next: &str, payload_len: u16) -> String {
    format!(
        "60000000{payload_len:04x}{next}ff{}{}",
        "fe80000000000000000000000000be27", "ff020000000000000000000000000001"
    )
}

#[test]
fn a_machine_with_cap_net_raw_sends_no_vlan_frames_router_adverts_or_dhcp_answers_on_the_bridge() {
    let c = Ctx::probe();
    let raw = ["-n", "--capability", "CAP_NET_RAW"];
    // A listener on the bridge counts what reaches it, by kind.
    let mut listener = c.berth.spawn(["run", raw[0], raw[1], raw[2], &c.image, "/probe", "sniff:host0:4"]);
    let mut out = std::io::BufReader::new(listener.stdout.take().expect("stdout"));
    let mut first = String::new();
    std::io::BufRead::read_line(&mut out, &mut first).expect("the listener");
    assert_eq!(first.trim(), "sniff-ready");
    let frames = [
        // 1: a link-local IPv6 UDP datagram: what a machine may send.
        frame(1, "86dd", &(ipv6("11", 12) + "30390009000c" + "0000")),
        // 2: a protocol that is not ARP or IP.
        frame(2, "88b5", &"00".repeat(46)),
        // 3: a VLAN-tagged IPv4 frame (VID 0: what the receivers would
        // take as untagged).
        frame(3, "8100", &("00000800".to_string() + &"00".repeat(42))),
        // 4: a router advertisement.
        frame(4, "86dd", &(ipv6("3a", 20) + "86000000" + &"00".repeat(12))),
        // 5: a DHCPv6 server's answer.
        frame(5, "86dd", &(ipv6("11", 12) + "02230222000c" + "0000")),
    ];
    let mut args: Vec<String> = ["run", raw[0], raw[1], raw[2], &c.image, "/probe"].map(String::from).to_vec();
    args.extend(frames.iter().map(|f| format!("frame:host0:{f}")));
    let sent = c.berth.run(&args).success();
    assert_eq!(sent.stdout.matches("frame=ok").count(), frames.len(), "{sent:?}");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).expect("the listener's count");
    let _ = listener.wait();
    let counts = rest.lines().find_map(|l| l.strip_prefix("sniff=")).unwrap_or_else(|| panic!("no count: {rest}"));
    let got = |k: u8| counts.split(',').find_map(|kc| kc.strip_prefix(&format!("{k:x}:"))).unwrap_or("0").to_string();
    assert_ne!(got(1), "0", "the allowed frame must arrive (else this test sees nothing): {counts}");
    for (k, what) in [(2, "another protocol"), (3, "a VLAN tag"), (4, "a router advertisement"), (5, "a DHCPv6 answer")]
    {
        assert_eq!(got(k), "0", "{what} crossed the bridge: {counts}");
    }
}

#[test]
fn a_link_on_a_bridge_of_the_users_is_not_held_to_bindings_it_has_none_of() {
    let c = Ctx::busybox();
    // berth's guard exists (a run on a berth network made it).
    c.sh(&["-n"], "true").success();
    let br = format!("bu{:x}y", std::process::id() % 0xfffff);
    let ip = |args: &[&str]| assert!(Command::new("ip").args(args).status().is_ok_and(|s| s.success()), "ip {args:?}");
    ip(&["link", "add", &br, "type", "bridge"]);
    struct Gone(String);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["link", "del", &self.0]).status();
        }
    }
    let _br = Gone(br.clone());
    ip(&["addr", "add", "198.51.100.1/24", "dev", &br]);
    ip(&["link", "set", &br, "up"]);
    let listener = std::net::TcpListener::bind("198.51.100.1:0").expect("listen on the user's bridge");
    let port = listener.local_addr().expect("port").port();
    let server = std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let _ = std::io::Write::write_all(&mut s, b"hi from the user's bridge\n");
        }
    });
    // The machine addresses itself, as on any bridge berth does not manage.
    let script = format!("ip addr add 198.51.100.5/24 dev host0 && nc -w 5 198.51.100.1 {port} </dev/null");
    let o = c.berth.run(["run", "--network-bridge", &br, &c.image, "/bin/sh", "-c", &script]);
    // (Unblock the server if the run never connected.)
    let _ = std::net::TcpStream::connect(("198.51.100.1", port));
    let _ = server.join();
    assert!(o.stdout.contains("hi from the user's bridge"), "{o:?}");
}
