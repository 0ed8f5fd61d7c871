//! `--network-veth`, `--network-bridge` and `berth network` (issue 12):
//! every test has a bridge of its own (`BERTH_NETWORK`, state under its
//! temp dir) and sends traffic only to its containers' addresses on it and
//! to a "remote host" network namespace it makes itself.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::kill_and_remove;
use crate::harness::berth::unique;
use crate::harness::container::Ctx;

/// `berth network ls --json`, by name.
pub(super) fn networks(c: &Ctx) -> BTreeMap<String, Value> {
    let out = c.berth.run(["network", "ls", "--json"]).success();
    let Value::Array(a) = out.json() else { panic!("network ls --json: {}", out.stdout) };
    a.into_iter().map(|n| (n["name"].as_str().unwrap_or_default().to_string(), n)).collect()
}

/// Links on bridge `br` now.
pub(super) fn ports(br: &str) -> usize {
    std::fs::read_dir(Path::new("/sys/class/net").join(br).join("brif")).map(|rd| rd.count()).unwrap_or(0)
}

pub(super) fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The IPv4 address (no prefix) of `owner`'s lease whose owner ends in `suffix`.
pub(super) fn lease_of(c: &Ctx, net: &str, suffix: &str) -> Option<Ipv4Addr> {
    let n = networks(c).remove(net)?;
    n["leases"]
        .as_array()?
        .iter()
        .find(|l| l["owner"].as_str().is_some_and(|o| o.ends_with(suffix)))
        .and_then(|l| l["address"].as_str()?.split('/').next()?.parse().ok())
}

/// A GET of `/` from `addr:port` as the host, the body.
pub(super) fn http_get(addr: Ipv4Addr, port: u16) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&(addr, port).into(), Duration::from_secs(3))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string())
}

/// Kills and removes a `run -d` machine when dropped, also when the
/// test fails before its end.
pub(super) struct Killed<'a>(pub &'a Ctx, pub &'a str);

impl Drop for Killed<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return kill_and_remove(self.0, self.1);
        }
        let _ = self.0.berth.run(["kill", self.1, "-s", "KILL"]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.0.berth.run(["rm", self.1]).status.success() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Web machine `name` (serving [`SERVE`]) on the test's network, running:
/// its guard (which kills and removes it) and its address, once the host
/// gets its page.
pub(super) fn web_machine<'a>(c: &'a Ctx, name: &'a str) -> (Killed<'a>, Ipv4Addr) {
    let net = c.berth.network().to_string();
    c.berth.run(["run", "-d", "--name", name, "-n", &c.image, "/bin/sh", "-c", SERVE]).success();
    let guard = Killed(c, name);
    wait_until("the machine's lease", Duration::from_secs(10), || lease_of(c, &net, &format!(":{name}")).is_some());
    let addr = lease_of(c, &net, &format!(":{name}")).expect("lease");
    let mut body = String::new();
    wait_until("the host reaches the machine", Duration::from_secs(10), || {
        body = http_get(addr, 8080).unwrap_or_default();
        !body.is_empty()
    });
    assert_eq!(body.trim(), format!("hello from {name}"));
    (guard, addr)
}

/// `python3 -c SCRIPT ARGS…` in network namespace `ns`, once it has
/// printed its first line (a server saying it listens).
pub(super) fn python_in(ns: &str, script: &str, args: &[&str]) -> std::process::Child {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "python3", "-c", script])
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start python3 in the namespace");
    let mut first = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.as_mut().expect("stdout")), &mut first)
        .expect("the server starts");
    child
}

pub(super) const SERVE: &str =
    "mkdir -p /www && echo \"hello from $(hostname)\" > /www/index.html && exec httpd -f -p 8080 -h /www";

#[test]
fn a_veth_run_has_host0_addressed_and_routed_before_its_command_and_gives_its_lease_back() {
    let c = Ctx::busybox();
    let net = c.berth.network().to_string();
    // The first thing the command does is read its link: configured by then.
    let o = c
        .sh(
            &["-n"],
            "ip -o link show host0 | grep -o '<[^>]*>' ; ip -4 -o addr show host0; ip -6 -o addr show host0 scope global; \
             ip -4 route show default; ip -6 route show default; cat /sys/class/net/lo/operstate",
        )
        .success();
    let out = o.out();
    let lines: Vec<&str> = out.lines().collect();
    let flags = lines.first().copied().unwrap_or_default();
    assert!(flags.contains(",UP") || flags.contains("<UP"), "host0 must be up: {}", o.describe());
    let nets = networks(&c);
    let n = nets.get(&net).unwrap_or_else(|| panic!("the default network {net} was not made on first use: {nets:?}"));
    let subnet: ipnet::Ipv4Net = n["subnet"].as_str().unwrap_or_default().parse().expect("subnet");
    let inet = out.split_whitespace().skip_while(|w| *w != "inet").nth(1).unwrap_or_default();
    let addr: ipnet::Ipv4Net = inet.parse().unwrap_or_else(|_| panic!("no IPv4 address on host0: {out}"));
    assert!(subnet.contains(&addr.addr()) && addr.prefix_len() == subnet.prefix_len(), "{addr} not in {subnet}");
    let gw = Ipv4Addr::from(u32::from(subnet.network()) + 1);
    assert!(out.contains(&format!("default via {gw} dev host0")), "no IPv4 default route via {gw}: {out}");
    let ula = n["ula"].as_str().unwrap_or_default().trim_end_matches("/64").trim_end_matches("::").to_string();
    assert!(out.contains(&format!("inet6 {ula}::")), "no address in the network's ULA {ula}: {out}");
    assert!(out.contains(&format!("default via {ula}::1 dev host0")), "no IPv6 default route: {out}");
    // The bridge: its gateway address, NAT table of its own.
    let br = Command::new("ip").args(["-4", "-o", "addr", "show", &net]).output().expect("ip addr");
    assert!(String::from_utf8_lossy(&br.stdout).contains(&format!("inet {gw}/")), "bridge {net} lacks {gw}");
    let nft = Command::new("nft").args(["list", "table", "inet", &format!("berth-{net}")]).output().expect("nft");
    assert!(String::from_utf8_lossy(&nft.stdout).contains("masquerade"), "no NAT for {net}: {nft:?}");
    // Gone with the run: no link on the bridge, no lease.
    wait_until("the veth goes with the container", Duration::from_secs(10), || ports(&net) == 0);
    assert_eq!(networks(&c)[&net]["leases"], serde_json::json!([]), "a run without a machine keeps no lease");

    // A machine keeps its address across runs, and gives it back on rm.
    let m = format!("veth-{}", unique());
    c.berth.run(["create", &c.image, &m, "-n"]).success();
    let a1 = c.berth.run(["run", "-M", &m, "/bin/sh", "-c", "ip -4 -o addr show host0"]).success().stdout;
    let a2 = c.berth.run(["run", "-M", &m, "/bin/sh", "-c", "ip -4 -o addr show host0"]).success().stdout;
    let held = lease_of(&c, &net, &format!(":{m}")).expect("the machine's lease");
    assert!(a1.contains(&format!("inet {held}/")) && a1 == a2, "a machine's address must stay: {a1} / {a2}");
    c.berth.run(["rm", &m]).success();
    assert_eq!(lease_of(&c, &net, &format!(":{m}")), None, "rm must give the lease back");
}

#[test]
fn machines_on_a_bridge_reach_each_other_and_the_host_reaches_them() {
    let c = Ctx::busybox();
    let net = c.berth.network().to_string();
    let a = format!("web-{}", unique());
    let (server, addr) = web_machine(&c, &a);
    // Another container on the bridge.
    // (busybox's static wget crashes looking names up: nc, by address.)
    let get = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {addr} 8080");
    // (Not through the leftover check: the server's scratch dir is there.)
    let o = c.berth.run(["run", "-n", &c.image, "/bin/sh", "-c", &get]).success();
    assert!(o.stdout.contains(&format!("hello from {a}")), "{o:?}");
    // Without a link of its own, a container cannot reach it.
    let o = c.berth.run(["run", "--private-network", &c.image, "/bin/sh", "-c", &get]);
    assert!(!o.stdout.contains("hello"), "{o:?}");
    assert_eq!(ports(&net), 1, "one link on {net} while {a} runs");
    drop(server);
    wait_until("the server's link goes", Duration::from_secs(10), || ports(&net) == 0);
    assert_eq!(lease_of(&c, &net, &format!(":{a}")), None);
}

#[test]
fn a_sigkilled_run_leaves_no_link_and_its_lease_is_swept() {
    let c = Ctx::busybox();
    let net = c.berth.network().to_string();
    let mut r = c.spawn(&["-n", &c.image, "/bin/sh", "-c", "echo ready; exec sleep 60"]);
    r.wait_for_output("ready", Duration::from_secs(20));
    assert_eq!(ports(&net), 1);
    r.kill_unchecked();
    wait_until("the link goes with the container's namespace", Duration::from_secs(10), || ports(&net) == 0);
    let stale = networks(&c)[&net]["leases"].as_array().map(Vec::len).unwrap_or(0);
    assert_eq!(stale, 1, "a killed berth cannot give its lease back itself");
    // (The killed run's scratch dir stays too: not a network matter.)
    c.berth.run(["run", "-n", &c.image, "true"]).success();
    assert_eq!(networks(&c)[&net]["leases"], serde_json::json!([]), "the next start sweeps the dead run's lease");
}

#[test]
fn network_create_bridge_rm_and_their_errors() {
    let c = Ctx::busybox();
    let name = format!("bu{:x}", std::process::id() % 0xfffff);
    // 198.18.0.0/15 (RFC 2544): no host's network, and one /24 per test process.
    let third = (std::process::id() % 256) as u8;
    let subnet = format!("198.18.{third}.0/24");
    let out = c.berth.run(["network", "create", &name, "--subnet", &subnet]).success();
    assert!(out.stdout.contains(&subnet), "{out:?}");
    c.berth.run(["network", "create", &name]).failure().mentions_any(&["exists"]);
    c.berth.run(["network", "create", "a/b"]).failure().mentions_any(&["invalid network name"]);
    let other = format!("bv{:x}", std::process::id() % 0xfffff);
    c.berth
        .run(["network", "create", &other, "--subnet", &format!("198.18.{third}.128/25")])
        .failure()
        .mentions_any(&["overlaps"]);
    // Ranges whose addresses mean something else to the kernel: refused,
    // nothing made.
    for (bad, what) in [("127.5.0.0/16", "loopback"), ("169.254.9.0/24", "link-local"), ("224.1.0.0/16", "multicast")] {
        c.berth.run(["network", "create", &other, "--subnet", bad]).failure().mentions_any(&[what]);
        assert!(!Path::new("/sys/class/net").join(&other).exists(), "{bad}: a bridge was made");
    }
    // A container on it gets an address from its subnet.
    let mut r =
        c.spawn(&["--network-bridge", &name, &c.image, "/bin/sh", "-c", "ip -4 -o addr show host0; exec sleep 60"]);
    r.wait_for_output("inet ", Duration::from_secs(20));
    c.berth.run(["network", "rm", &name]).failure().mentions_any(&["stop them first"]);
    r.kill_unchecked();
    wait_until("the link goes", Duration::from_secs(10), || ports(&name) == 0);
    c.berth.run(["network", "rm", &name]).success();
    assert!(!Path::new("/sys/class/net").join(&name).exists(), "the bridge must go with network rm");
    let nft =
        Command::new("nft").args(["list", "table", "inet", &format!("berth-{name}")]).stderr(Stdio::null()).status();
    assert!(!nft.expect("nft").success(), "the NAT table must go with network rm");
    assert!(!networks(&c).contains_key(&name));
    c.berth.run(["network", "rm", &name]).failure().mentions_any(&["no berth network"]);
    // Bad runs: one line, no container. (Not through the leftover check:
    // the killed run above left its scratch dir.)
    let bad = c.berth.run(["run", "--network-bridge", "nosuchbr0", &c.image, "true"]).failure();
    assert_eq!(bad.stderr.trim().lines().count(), 1, "{bad:?}");
    assert!(bad.stderr.contains("berth network create nosuchbr0"), "{bad:?}");
    // A detached run keeps its address only as a machine; a machine that
    // is not there leases nothing.
    c.berth
        .run(["run", "-d", "-x", "--name", "eph", "-n", &c.image, "true"])
        .failure()
        .mentions_any(&["-d with a network link"]);
    c.berth.run(["run", "-M", "no-such-machine", "-n", "true"]).failure();
    let leases = networks(&c).get(c.berth.network()).map(|n| n["leases"].clone());
    assert!(leases.is_none() || leases == Some(serde_json::json!([])), "a failed run leased: {leases:?}");
    // -n with a bridge given too takes the bridge (nspawn's --network-bridge implies a veth).
    c.berth.run(["run", "-n", "--network-bridge", &name, &c.image, "true"]).failure().mentions_any(&[&name]);
}

/// A network namespace standing for a host elsewhere, joined to this host
/// by a veth pair with a /30 of its own; removed on drop.
pub(super) struct Remote {
    pub ns: String,
    pub link: String,
    pub host_addr: Ipv4Addr,
    pub addr: Ipv4Addr,
}

impl Remote {
    pub(super) fn new() -> Remote {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed) % 64;
        let id = std::process::id() % 0xfffff;
        let (ns, link) = (format!("btremote{id:x}x{n}"), format!("br{id:x}x{n}"));
        // 198.19.0.0/16 (RFC 2544): a /24 per test process, a /30 per remote.
        let third = (id % 256) as u8;
        let host_addr = Ipv4Addr::new(198, 19, third, 4 * n as u8 + 1);
        let addr = Ipv4Addr::new(198, 19, third, 4 * n as u8 + 2);
        let r = Remote { ns, link, host_addr, addr };
        let sh = |args: &[&str]| {
            let st = Command::new("ip").args(args).status().expect("ip");
            assert!(st.success(), "ip {args:?} failed");
        };
        sh(&["netns", "add", &r.ns]);
        sh(&["link", "add", &r.link, "type", "veth", "peer", "name", "eth0", "netns", &r.ns]);
        sh(&["addr", "add", &format!("{host_addr}/30"), "dev", &r.link]);
        sh(&["link", "set", &r.link, "up"]);
        sh(&["-n", &r.ns, "addr", "add", &format!("{addr}/30"), "dev", "eth0"]);
        sh(&["-n", &r.ns, "link", "set", "eth0", "up"]);
        sh(&["-n", &r.ns, "link", "set", "lo", "up"]);
        r
    }
}

impl Remote {
    /// IPv4 packets the remote host has received (`Ip: InReceives`).
    fn ip_in(&self) -> u64 {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, "cat", "/proc/net/snmp"])
            .output()
            .expect("ip netns exec");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let ip: Vec<&str> = text.lines().filter(|l| l.starts_with("Ip:")).collect();
        let (Some(names), Some(values)) = (ip.first(), ip.get(1)) else { panic!("no Ip: lines in {text}") };
        let col = names.split_whitespace().position(|n| n == "InReceives").expect("InReceives");
        values.split_whitespace().nth(col).and_then(|v| v.parse().ok()).expect("a number")
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.link]).stderr(Stdio::null()).status();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).stderr(Stdio::null()).status();
    }
}

#[test]
fn outbound_traffic_is_masqueraded_to_a_remote_host() {
    let c = Ctx::busybox();
    let remote = Remote::new();
    // The remote host answers with the address it sees the client at.
    let server = "import socket,sys\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
                  s.bind((sys.argv[1],9000))\ns.listen(1)\nprint('listening',flush=True)\ns.settimeout(30)\n\
                  c,a=s.accept()\nc.sendall((a[0]+'\\n').encode())\nc.close()\n";
    let mut srv = python_in(&remote.ns, server, &[&remote.addr.to_string()]);
    let before = remote.ip_in();
    let o = c.sh(&["-n"], &format!("nc {} 9000 </dev/null", remote.addr));
    let _ = srv.kill();
    let _ = srv.wait();
    assert_eq!(
        o.out().trim(),
        remote.host_addr.to_string(),
        "the remote host must see the host's address (masquerade): {}",
        o.describe()
    );
    let after = remote.ip_in();
    assert!(after > before, "the remote's IP counter must count the connection ({before} → {after})");

    // A hostile container root (CAP_NET_ADMIN in its namespace) takes an
    // address outside the network's subnet: nothing it sends from there
    // leaves the host, masqueraded or not.
    let net = c.berth.network().to_string();
    let subnet: ipnet::Ipv4Net =
        networks(&c)[&net]["subnet"].as_str().unwrap_or_default().parse().expect("the network's subnet");
    let gw = Ipv4Addr::from(u32::from(subnet.network()) + 1);
    let spoof = format!(
        "ip addr flush dev host0 && ip addr add 10.77.0.9/16 dev host0 && ip route add {gw} dev host0 && \
         ip route add default via {gw} && ip -4 -o addr show host0 && nc -w 2 {} 9000 </dev/null; true",
        remote.addr
    );
    let o = c.sh(&["-n"], &spoof).success();
    assert!(o.out().contains("inet 10.77.0.9/16"), "the container could not take the forged address: {}", o.describe());
    assert_eq!(remote.ip_in(), after, "a packet with a forged source reached the remote host: {}", o.describe());
}

/// A TCP port free on this host now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("0.0.0.0:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// `GET path` from `addr:port` as the host; the body, trimmed, with
/// busybox httpd's `[::ffff:A.B.C.D]` made `A.B.C.D`.
fn client_seen(addr: Ipv4Addr, port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&(addr, port).into(), Duration::from_secs(3)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    // (A CGI's own header lines end in \n alone.)
    let body = out.split_once("\r\n\r\n").or_else(|| out.split_once("\n\n"))?.1.trim().to_string();
    Some(body.trim_start_matches('[').trim_end_matches(']').trim_start_matches("::ffff:").to_string())
}

/// httpd on port 80 with a CGI at /cgi-bin/addr that answers the client's address.
const ADDR_SERVER: &str =
    "mkdir -p /www/cgi-bin && printf '#!/bin/sh\\necho Content-type: text/plain\\necho\\necho $REMOTE_ADDR\\n' \
                           > /www/cgi-bin/addr && chmod +x /www/cgi-bin/addr && exec httpd -f -p 80 -h /www";

#[test]
fn a_published_port_answers_on_loopback_the_hosts_addresses_and_to_a_remote_host_keeping_its_address() {
    let c = Ctx::busybox();
    let remote = Remote::new();
    let port = free_port();
    let m = format!("pub-{}", unique());
    // -p alone implies the veth.
    let map = format!("{port}:80");
    c.berth.run(["run", "-d", "--name", &m, "-p", &map, &c.image, "/bin/sh", "-c", ADDR_SERVER]).success();
    let server = Killed(&c, &m);
    let net = c.berth.network().to_string();
    let subnet: ipnet::Ipv4Net = networks(&c)[&net]["subnet"].as_str().unwrap_or_default().parse().expect("subnet");
    // 127.0.0.1, which systemd-nspawn's --port does not answer on.
    let mut seen = None;
    wait_until("the published port answers on 127.0.0.1", Duration::from_secs(10), || {
        seen = client_seen(Ipv4Addr::LOCALHOST, port, "/cgi-bin/addr");
        seen.is_some()
    });
    let seen: Ipv4Addr = seen.unwrap_or_default().parse().expect("an address");
    assert!(subnet.contains(&seen), "a loopback client reaches the machine from the bridge, not as {seen}");
    // The host's address on another link.
    assert_eq!(
        client_seen(remote.host_addr, port, "/cgi-bin/addr").as_deref(),
        Some(remote.host_addr.to_string().as_str())
    );
    // From another host: the machine sees that host's own address.
    let get = format!(
        "import urllib.request;print(urllib.request.urlopen('http://{}:{port}/cgi-bin/addr',timeout=5).read().decode())",
        remote.host_addr
    );
    let out = Command::new("ip").args(["netns", "exec", &remote.ns, "python3", "-c", &get]).output().expect("python3");
    let body = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        body.trim().trim_start_matches('[').trim_end_matches(']').trim_start_matches("::ffff:"),
        remote.addr.to_string(),
        "the remote client's address must reach the machine: {out:?}"
    );
    // The port is the machine's while it runs: one line, no second machine.
    let again = c.berth.run(["run", "--rm", "-p", &map, &c.image, "true"]);
    let again = again.failure();
    assert!(again.stderr.contains("in use") && again.stderr.trim().lines().count() == 1, "{again:?}");
    // A port taken by a program of the host's.
    let held = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind");
    let taken = held.local_addr().expect("addr").port();
    c.berth.run(["run", "--rm", "-p", &format!("{taken}:80"), &c.image, "true"]).failure().mentions_any(&["in use"]);
    let links: Vec<String> = std::fs::read_dir(Path::new("/sys/class/net").join(&net).join("brif"))
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    assert_eq!(links.len(), 1, "the machine's one link on {net}: {links:?}");
    // Named after the link and its index (a machine's next run has a new one).
    let index = std::fs::read_to_string(Path::new("/sys/class/net").join(&links[0]).join("ifindex")).expect("ifindex");
    let table = format!("berth-p-{}-{}", links[0], index.trim());
    let has_table = || {
        let out = Command::new("nft").args(["list", "tables", "inet"]).output().expect("nft");
        String::from_utf8_lossy(&out.stdout).split_whitespace().any(|w| w == table)
    };
    assert!(has_table(), "no port table {table} while the machine runs");
    drop(server);
    // Gone with the machine: the port table, and the port is free again.
    wait_until("the port table goes", Duration::from_secs(10), || !has_table());
    std::net::TcpListener::bind(("0.0.0.0", port)).expect("the port is free once the machine is gone");
    assert!(client_seen(Ipv4Addr::LOCALHOST, port, "/").is_none(), "nothing answers on the port any more");
}

#[test]
fn a_machine_on_the_bridge_cannot_reach_the_hosts_loopback_services_through_published_ports_route_localnet() {
    // Publishing a port lets 127.0.0.1 be routed to the bridge
    // (route_localnet): a hostile machine there sends to 127.0.0.1 via
    // the gateway, aiming at a service the host keeps to itself. It is
    // played by a namespace the test plugs into the bridge, free to set
    // its own route_localnet and routes as a machine root with
    // CAP_NET_ADMIN in its namespace could.
    let c = Ctx::busybox();
    let net = c.berth.network().to_string();
    let m = format!("pub-{}", unique());
    let map = format!("{}:80", free_port());
    c.berth.run(["run", "-d", "--name", &m, "-p", &map, &c.image, "/bin/sh", "-c", "exec sleep 300"]).success();
    let _server = Killed(&c, &m);
    let localnet = std::fs::read_to_string(format!("/proc/sys/net/ipv4/conf/{net}/route_localnet")).unwrap_or_default();
    assert_eq!(localnet.trim(), "1", "publishing a port sets route_localnet on {net}");
    let subnet: ipnet::Ipv4Net = networks(&c)[&net]["subnet"].as_str().unwrap_or_default().parse().expect("subnet");
    let gw = Ipv4Addr::from(u32::from(subnet.network()) + 1);
    let evil_addr = Ipv4Addr::from(u32::from(subnet.broadcast()) - 1);
    // The host's private service.
    let private = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind");
    let port = private.local_addr().expect("addr").port();
    private.set_nonblocking(true).expect("nonblocking");
    let id = std::process::id() % 0xfffff;
    let (ns, link) = (format!("btevil{id:x}"), format!("be{id:x}"));
    struct Gone(String, String);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["link", "del", &self.1]).stderr(Stdio::null()).status();
            let _ = Command::new("ip").args(["netns", "del", &self.0]).stderr(Stdio::null()).status();
        }
    }
    let _gone = Gone(ns.clone(), link.clone());
    let ip = |args: &[&str]| {
        let st = Command::new("ip").args(args).status().expect("ip");
        assert!(st.success(), "ip {args:?} failed");
    };
    ip(&["netns", "add", &ns]);
    ip(&["link", "add", &link, "type", "veth", "peer", "name", "eth0", "netns", &ns]);
    ip(&["link", "set", &link, "master", &net, "up"]);
    ip(&["-n", &ns, "addr", "add", &format!("{evil_addr}/{}", subnet.prefix_len()), "dev", "eth0"]);
    ip(&["-n", &ns, "link", "set", "eth0", "up"]);
    for k in ["all", "eth0"] {
        let st = Command::new("ip")
            .args(["netns", "exec", &ns, "sysctl", "-qw", &format!("net.ipv4.conf.{k}.route_localnet=1")])
            .status()
            .expect("sysctl");
        assert!(st.success());
    }
    ip(&["-n", &ns, "route", "add", "127.0.0.1/32", "via", &gw.to_string(), "dev", "eth0"]);
    let try_it = format!(
        "import socket\ns=socket.socket()\ns.settimeout(2)\ntry:\n  s.connect(('127.0.0.1',{port}))\n  print('connected')\nexcept OSError as e:\n  print('refused',e)\n"
    );
    let out = Command::new("ip").args(["netns", "exec", &ns, "python3", "-c", &try_it]).output().expect("python3");
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.starts_with("refused"), "the bridge reached the host's 127.0.0.1:{port}: {said}");
    assert!(private.accept().is_err(), "a connection from the bridge arrived at the host's loopback service");
}

/// Sends one datagram to `addr:port` from the host; the answer.
fn udp_ask(addr: Ipv4Addr, port: u16) -> Option<String> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    s.send_to(b"who am i", (addr, port)).ok()?;
    let mut buf = [0u8; 64];
    let (n, _) = s.recv_from(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[test]
fn a_published_udp_port_answers_on_loopback_and_to_a_remote_host_keeping_its_address() {
    let c = Ctx::probe();
    let remote = Remote::new();
    let port = std::net::UdpSocket::bind("0.0.0.0:0").and_then(|s| s.local_addr()).map(|a| a.port()).expect("port");
    let m = format!("udp-{}", unique());
    let map = format!("udp:{port}:53");
    c.berth.run(["run", "-d", "--name", &m, "-p", &map, &c.image, "/probe", "udp-echo:53"]).success();
    let _server = Killed(&c, &m);
    let net = c.berth.network().to_string();
    let subnet: ipnet::Ipv4Net = networks(&c)[&net]["subnet"].as_str().unwrap_or_default().parse().expect("subnet");
    let mut seen = None;
    wait_until("the published UDP port answers on 127.0.0.1", Duration::from_secs(10), || {
        seen = udp_ask(Ipv4Addr::LOCALHOST, port);
        seen.is_some()
    });
    let seen: Ipv4Addr = seen.unwrap_or_default().parse().expect("an address");
    assert!(subnet.contains(&seen), "a loopback client reaches the machine from the bridge, not as {seen}");
    let ask = format!(
        "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.settimeout(3)\n\
         s.sendto(b'x',('{}',{port}))\nprint(s.recvfrom(64)[0].decode())",
        remote.host_addr
    );
    let out = Command::new("ip").args(["netns", "exec", &remote.ns, "python3", "-c", &ask]).output().expect("python3");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), remote.addr.to_string(), "{out:?}");
    // TCP on the same number is not published.
    assert!(TcpStream::connect_timeout(&(Ipv4Addr::LOCALHOST, port).into(), Duration::from_millis(500)).is_err());
}

#[test]
fn twenty_runs_started_together_get_twenty_addresses_and_leave_nothing() {
    let c = Ctx::busybox();
    let net = c.berth.network().to_string();
    // All race to make the default network on first use, and to lease.
    let runs: Vec<_> = (0..20)
        .map(|i| {
            let name = format!("par{i}-{}", unique());
            let script = "ip -4 -o addr show host0; sleep 2";
            c.berth.spawn(["run", "-x", "--name", &name, "-n", &c.image, "/bin/sh", "-c", script])
        })
        .collect();
    let mut addrs = Vec::new();
    for r in runs {
        let out = r.wait_with_output().expect("wait for a run");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        let inet = stdout.split_whitespace().skip_while(|w| *w != "inet").nth(1).unwrap_or_default().to_string();
        let addr: ipnet::Ipv4Net = inet.parse().unwrap_or_else(|_| panic!("no address: {stdout}"));
        addrs.push(addr.addr());
    }
    let distinct: std::collections::BTreeSet<_> = addrs.iter().collect();
    assert_eq!(distinct.len(), 20, "addresses clashed: {addrs:?}");
    assert_eq!(networks(&c).len(), 1, "one network made, whoever came first: {:?}", networks(&c).keys());
    wait_until("every link goes", Duration::from_secs(20), || ports(&net) == 0);
    assert_eq!(networks(&c)[&net]["leases"], serde_json::json!([]), "leases left");
    let hosts = std::fs::read_to_string(c.berth.net_dir().join(format!("{net}.hosts"))).unwrap_or_default();
    assert!(!hosts.contains("par"), "names left in the hosts file: {hosts}");
    c.assert_no_scratch_dirs();
}

/// Whether a TCP client in `from` reaches a server at `to.addr:9000` in `to`.
fn routed(from: &Remote, to: &Remote) -> bool {
    let server = "import socket,sys\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
                  s.bind((sys.argv[1],9000))\ns.listen(1)\nprint('listening',flush=True)\ns.settimeout(10)\n\
                  c,a=s.accept()\nc.sendall(b'hi\\n')\nc.close()\n";
    let mut srv = python_in(&to.ns, server, &[&to.addr.to_string()]);
    let client = format!(
        "import socket\ns=socket.create_connection(('{}',9000),timeout=2)\nprint(s.recv(10).decode().strip())",
        to.addr
    );
    let out = Command::new("ip").args(["netns", "exec", &from.ns, "python3", "-c", &client]).output().expect("client");
    let _ = srv.kill();
    let _ = srv.wait();
    String::from_utf8_lossy(&out.stdout).trim() == "hi"
}

#[test]
fn forwarding_berth_switched_on_carries_only_its_bridges_traffic() {
    let c = Ctx::busybox();
    let net = c.berth.network().to_string();
    // A network exists (and forwards) while this test runs.
    c.sh(&["-n"], "true").success();
    let origin = std::fs::read_to_string("/run/berth-forwarding").unwrap_or_default();
    assert_eq!(std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap_or_default().trim(), "1");
    // Two hosts on two other interfaces of this host, routed through it.
    let (a, b) = (Remote::new(), Remote::new());
    for (r, other) in [(&a, &b), (&b, &a)] {
        let st = Command::new("ip")
            .args(["-n", &r.ns, "route", "add", &format!("{}/32", other.addr), "via", &r.host_addr.to_string()])
            .status()
            .expect("ip route");
        assert!(st.success());
    }
    let guard = Command::new("nft").args(["list", "table", "inet", "berth-forward"]).output().expect("nft");
    let guarded = String::from_utf8_lossy(&guard.stdout).into_owned();
    match origin.trim() {
        // berth switched forwarding on: the host routes nothing but its
        // bridges' traffic (a machine still reaches a remote host: see
        // outbound_traffic_is_masqueraded_to_a_remote_host).
        "berth" => {
            assert!(guarded.contains(&format!("\"{net}\"")), "{net} not in the guard's set: {guarded}");
            assert!(!routed(&a, &b), "berth's forwarding made this host route between its other interfaces");
        }
        // The host forwarded before berth: left as it was.
        "host" => {
            assert!(!guard.status.success(), "a guard on a host that routed already: {guarded}");
            assert!(routed(&a, &b), "berth changed a routing host's forwarding");
        }
        other => panic!("/run/berth-forwarding says {other:?} while a network exists"),
    }
}

#[test]
fn a_bridge_made_again_after_a_reboot_refuses_a_subnet_a_route_covers_now() {
    let remote = Remote::new();
    let c = Ctx::busybox();
    let name = format!("bw{:x}", std::process::id() % 0xfffff);
    let third = ((std::process::id() + 128) % 256) as u8;
    let subnet = format!("198.18.{third}.0/24");
    c.berth.run(["network", "create", &name, "--subnet", &subnet]).success();
    // "Reboot": the bridge and its tables are gone, the record stays; a
    // route for the same addresses came meanwhile (a VPN's, say).
    assert!(Command::new("ip").args(["link", "del", &name]).status().is_ok_and(|s| s.success()));
    let route = |op: &str| {
        let st = Command::new("ip").args(["route", op, &subnet, "dev", &remote.link]).status();
        assert!(st.is_ok_and(|s| s.success()), "ip route {op}");
    };
    route("add");
    let o = c.berth.run(["run", "--network-bridge", &name, &c.image, "true"]).failure();
    assert!(o.stderr.contains("overlaps the host's route") && o.stderr.contains(&name), "{o:?}");
    assert!(!Path::new("/sys/class/net").join(&name).exists(), "a clashing bridge was made");
    route("del");
    c.berth.run(["run", "--network-bridge", &name, &c.image, "true"]).success();
    assert!(Path::new("/sys/class/net").join(&name).join("bridge").is_dir(), "the bridge must be made again");
}
