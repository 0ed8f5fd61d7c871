//! Names and DNS on berth networks (issue 12): machines reach each other by
//! name through the network's hosts file, which follows the leases, and a
//! host whose resolver is on its loopback is reached through the bridge.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use super::network::web_machine;
use crate::harness::berth::unique;
use crate::harness::container::Ctx;

/// The network's hosts file, as the host keeps it.
fn hosts_file(c: &Ctx) -> String {
    std::fs::read_to_string(c.berth.net_dir().join(format!("{}.hosts", c.berth.network()))).unwrap_or_default()
}

#[test]
fn machines_reach_each_other_by_name_and_cannot_rewrite_the_names() {
    let c = Ctx::busybox();
    let a = format!("web-{}", unique());
    let (server, addr) = web_machine(&c, &a);
    assert!(hosts_file(&c).contains(&format!("{addr}\t{a}\n")), "{}", hosts_file(&c));

    // A named run on the network: the server by name, its own name known
    // to the server's side too (the file is one, kept current in place).
    let b = format!("cli-{}", unique());
    let get = format!(
        "grep -w {a} /etc/hosts; grep -w {b} /etc/hosts; for i in 1 2 3 4 5 6 7 8 9 10; do \
         printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {a} 8080 && break; sleep 0.3; done"
    );
    let o = c.berth.run(["run", "-x", "--name", &b, "-n", &c.image, "/bin/sh", "-c", &get]).success();
    assert!(o.stdout.contains(&format!("hello from {a}")), "{a} not reached by name: {o:?}");
    assert!(o.stdout.contains(&format!("\t{b}")), "the run's own name is not in the file: {o:?}");
    let seen = c.berth.run(["exec", &a, "/bin/cat", "/etc/hosts"]).success().stdout;
    assert!(seen.contains(&format!("\t{a}\n")), "{seen}");
    // --rm with -x has no machine to remove: not an error.
    c.berth.run(["run", "--rm", "-x", "--name", &format!("{b}-rm"), "-n", &c.image, "true"]).success();
    // Given back when the named run ended.
    assert!(!hosts_file(&c).contains(&b), "{}", hosts_file(&c));
    let seen = c.berth.run(["exec", &a, "/bin/cat", "/etc/hosts"]).success().stdout;
    assert!(!seen.contains(&b), "the running machine still sees the ended run: {seen}");

    // A hostile machine root tries to point the server's name elsewhere
    // for every machine: the file is read-only and not its own.
    let evil = format!(
        "echo '10.66.6.6 {a}' >> /etc/hosts; mount -o remount,rw,bind /etc/hosts; echo '10.66.6.6 {a}' >> /etc/hosts; \
         umount /etc/hosts && echo '10.66.6.6 {a}' >> /etc/hosts; grep -c 10.66.6.6 /etc/hosts; true"
    );
    // (Not through the leftover check: the server's scratch dir is there.)
    let o = c.berth.run(["run", "-n", &c.image, "/bin/sh", "-c", &evil]).success();
    assert!(!hosts_file(&c).contains("10.66.6.6"), "a machine rewrote the network's names: {o:?}");
    let seen = c.berth.run(["exec", &a, "/bin/cat", "/etc/hosts"]).success().stdout;
    assert!(!seen.contains("10.66.6.6"), "{seen}");

    // A lock on the hosts file (any machine can take one: it opens the
    // file as its /etc/hosts; flock(1) stands in here) holds up no start.
    let hosts_path = c.berth.net_dir().join(format!("{}.hosts", c.berth.network()));
    // (-o: the lock stays with flock itself, which the test kills.)
    let mut holder = Command::new("flock")
        .args(["-o", "-x"])
        .arg(&hosts_path)
        .args(["-c", "echo locked; exec sleep 120"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("flock(1)");
    let mut line = String::new();
    let mut holder_out = BufReader::new(holder.stdout.take().expect("stdout"));
    holder_out.read_line(&mut line).expect("the holder's output");
    assert_eq!(line.trim(), "locked");
    c.berth.run(["run", "-x", "--name", &format!("{b}-2"), "-n", &c.image, "true"]).success();
    let _ = holder.kill();
    let _ = holder.wait();

    drop(server);
    assert!(!hosts_file(&c).contains(&a), "rm must take the name away: {}", hosts_file(&c));
}

/// A DNS server standing in for the host's loopback resolver (at argv 1):
/// it answers every A query with argv 2 and AAAA with nothing, for one
/// minute, and, as systemd-resolved's stub does, ignores queries that do
/// not come from localhost.
pub(super) const STUB_DNS: &str = r#"
import socket, struct, sys
answer = bytes(int(b) for b in sys.argv[2].split("."))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 53))
print("ready", flush=True)
s.settimeout(60)
while True:
    try:
        q, peer = s.recvfrom(512)
    except socket.timeout:
        break
    if not peer[0].startswith("127."):
        print("ignored", peer[0], flush=True)
        continue
    i = 12
    while q[i] != 0:
        i += q[i] + 1
    qtype = struct.unpack(">H", q[i + 1:i + 3])[0]
    an = 1 if qtype == 1 else 0
    r = q[:2] + b"\x81\x80" + struct.pack(">HHHH", 1, an, 0, 0) + q[12:i + 5]
    if an:
        r += b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" + answer
    s.sendto(r, peer)
    print("asked from", peer[0], flush=True)
"#;

#[test]
fn a_hosts_loopback_resolver_answers_machines_through_the_bridge() {
    let c = Ctx::busybox();
    // The "host's" resolv.conf names a resolver on 127.0.0.77 only.
    let resolver = "127.0.0.77";
    let conf = c.berth.dir().join("host-resolv.conf");
    std::fs::write(&conf, format!("# stub\nnameserver {resolver}\nsearch example.test\n")).expect("resolv.conf");
    let mut srv = Command::new("python3")
        .args(["-c", STUB_DNS, resolver, "198.51.100.7"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the stub resolver");
    let mut lines = BufReader::new(srv.stdout.take().expect("stdout")).lines();
    assert_eq!(lines.next().and_then(Result::ok).as_deref(), Some("ready"));
    let mut cmd = c.berth.command([
        "run",
        "-n",
        &c.image,
        "/bin/sh",
        "-c",
        "cat /etc/resolv.conf; nslookup outside.test; ip -4 route show default",
    ]);
    cmd.env("BERTH_RESOLV_CONF", &conf);
    let o = cmd.output().expect("berth run");
    let _ = srv.kill();
    let _ = srv.wait();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{out}\n{err}");
    let gw = out
        .lines()
        .find_map(|l| l.strip_prefix("default via "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no default route: {out}"));
    assert!(out.contains(&format!("nameserver {gw}\n")), "the loopback resolver must become the bridge: {out}");
    assert!(!out.contains(resolver), "an unreachable loopback resolver left in the machine: {out}");
    assert!(out.contains("search example.test"), "the rest of resolv.conf must stay: {out}");
    assert!(out.contains("198.51.100.7"), "the host's resolver did not answer through the bridge: {out}\n{err}");
    let asked: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        !asked.is_empty() && asked.iter().all(|l| l.starts_with("asked from 127.0.0.1")),
        "the resolver must be asked from localhost (resolved answers nothing else): {asked:?}"
    );
}
