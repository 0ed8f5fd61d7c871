//! Issue 12's "done when", end to end: two web machines published on
//! 8080 and 8081, reached from the host and from another host (a netns),
//! reaching each other by name and the outside by DNS name through NAT,
//! with nothing running between starts; everything gone afterwards.
//! (busybox httpd stands in for nginx: the networking is what is tested.)

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::names::STUB_DNS;
use super::network::{http_get, lease_of, networks, python_in, wait_until, Remote};
use crate::harness::berth::unique;
use crate::harness::container::Ctx;

/// `GET /` from inside `ns` to `addr:port`, the body.
fn get_from(ns: &str, addr: Ipv4Addr, port: u16) -> String {
    let client = format!(
        "import socket\ns=socket.create_connection(('{addr}',{port}),timeout=3)\ns.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n')\n\
         d=b''\nwhile True:\n    b=s.recv(4096)\n    if not b: break\n    d+=b\nprint(d.split(b'\\r\\n\\r\\n',1)[-1].decode().strip())"
    );
    let out = Command::new("ip").args(["netns", "exec", ns, "python3", "-c", &client]).output().expect("client");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn two_web_machines_published_named_and_natted_then_nothing_left() {
    let remote = Remote::new();
    let c = Ctx::busybox();
    let net = c.berth.network().to_string();
    // "outside.test" is the remote host, by the host's (loopback) resolver.
    let resolver = "127.0.0.78";
    let conf = c.berth.dir().join("host-resolv.conf");
    std::fs::write(&conf, format!("nameserver {resolver}\n")).expect("resolv.conf");
    let mut dns = Command::new("python3")
        .args(["-c", STUB_DNS, resolver, &remote.addr.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the stub resolver");
    let mut lines = BufReader::new(dns.stdout.take().expect("stdout")).lines();
    assert_eq!(lines.next().and_then(Result::ok).as_deref(), Some("ready"));
    // The outside answers with who it sees.
    let outside = "import socket,sys\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
                   s.bind((sys.argv[1],80))\ns.listen(1)\nprint('listening',flush=True)\ns.settimeout(60)\n\
                   c,a=s.accept()\nc.sendall(('outside sees '+a[0]+'\\n').encode())\nc.close()\n";
    let mut srv = python_in(&remote.ns, outside, &[&remote.addr.to_string()]);

    let (p1, p2) = (free_port(), free_port());
    let webs = [(format!("web1-{}", unique()), p1), (format!("web2-{}", unique()), p2)];
    for (name, port) in &webs {
        let serve = "mkdir -p /www && echo \"hello from $(hostname)\" > /www/index.html && exec httpd -f -p 80 -h /www";
        let mut cmd = c.berth.command([
            "run",
            "-d",
            "--name",
            name,
            "-p",
            &format!("{port}:80"),
            &c.image,
            "/bin/sh",
            "-c",
            serve,
        ]);
        cmd.env("BERTH_RESOLV_CONF", &conf);
        let o = cmd.output().expect("berth run -d");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let cleanup = Cleanup(&c, webs.iter().map(|(n, _)| n.clone()).collect());
    for (name, port) in &webs {
        let mut body = String::new();
        wait_until("the host reaches the machine on 127.0.0.1", Duration::from_secs(10), || {
            body = http_get(Ipv4Addr::LOCALHOST, *port).unwrap_or_default();
            !body.is_empty()
        });
        assert_eq!(body.trim(), format!("hello from {name}"));
        // Another host, at this host's address on its link.
        assert_eq!(get_from(&remote.ns, remote.host_addr, *port), format!("hello from {name}"));
    }
    let (w1, w2) = (&webs[0].0, &webs[1].0);
    // By name, to each other.
    let get = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {w2} 80");
    let o = c.berth.run(["exec", w1, "/bin/sh", "-c", &get]).success();
    assert!(o.stdout.contains(&format!("hello from {w2}")), "{o:?}");
    // The outside, by a name the host's loopback resolver answers, NATed.
    let o = c.berth.run(["exec", w1, "/bin/sh", "-c", "nc -w 5 outside.test 80 </dev/null"]).success();
    assert_eq!(o.stdout.trim(), format!("outside sees {}", remote.host_addr), "{o:?}");
    let _ = srv.wait();
    let _ = dns.kill();
    let _ = dns.wait();

    let links: Vec<String> = std::fs::read_dir(Path::new("/sys/class/net").join(&net).join("brif"))
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    assert_eq!(links.len(), 2, "{links:?}");
    drop(cleanup);
    wait_until("every link goes", Duration::from_secs(10), || {
        std::fs::read_dir(Path::new("/sys/class/net").join(&net).join("brif")).map(|d| d.count()).unwrap_or(0) == 0
    });
    assert_eq!(networks(&c)[&net]["leases"], serde_json::json!([]), "leases left");
    assert_eq!(lease_of(&c, &net, w1), None);
    wait_until("the port tables go", Duration::from_secs(10), || {
        let t = Command::new("nft").args(["list", "tables"]).output().expect("nft");
        let t = String::from_utf8_lossy(&t.stdout).into_owned();
        links.iter().all(|l| !t.contains(&format!("berth-p-{l}-")))
    });
    let hosts = std::fs::read_to_string(c.berth.net_dir().join(format!("{net}.hosts"))).unwrap_or_default();
    assert!(!hosts.contains(w1) && !hosts.contains(w2), "{hosts}");
}

/// Removes the machines when dropped (also when the test fails).
struct Cleanup<'a>(&'a Ctx, Vec<String>);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for m in &self.1 {
            super::kill_and_remove(self.0, m);
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("0.0.0.0:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}
