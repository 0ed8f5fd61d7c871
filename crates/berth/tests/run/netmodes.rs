//! `--network-macvlan`, `--network-ipvlan` and `--network-namespace-path`
//! (issue 12). The segment a macvlan joins is a test-made "remote host"
//! netns behind a veth whose host end is the parent; addresses on it are
//! 192.0.2.0/24 (TEST-NET-1), present only inside the namespaces involved.

use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};

use super::network::Remote;
use crate::harness::container::Ctx;

/// A TCP server at `addr:9000` in `ns` that answers one client with the
/// address it sees it at; returns once it listens.
fn serve_peer_address(ns: &str, addr: Ipv4Addr) -> Child {
    let server = "import socket,sys\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
                  s.bind((sys.argv[1],9000))\ns.listen(1)\nprint('listening',flush=True)\ns.settimeout(30)\n\
                  c,a=s.accept()\nc.sendall((a[0]+'\\n').encode())\nc.close()\n";
    super::network::python_in(ns, server, &[&addr.to_string()])
}

/// The remote host's side of the segment gets 192.0.2.1/24.
fn segment() -> Remote {
    let r = Remote::new();
    let st = Command::new("ip").args(["-n", &r.ns, "addr", "add", "192.0.2.1/24", "dev", "eth0"]).status();
    assert!(st.is_ok_and(|s| s.success()), "addressing the segment");
    r
}

/// Host links whose name starts with `prefix`.
fn host_links(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/sys/class/net")
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// A run on a `kind` link on the segment's parent: the link is inside,
/// named as nspawn names it, up, and — once the container gives itself an
/// address, as DHCP would — reaches the remote host with that address.
fn reaches_the_segment(c: &Ctx, kind: &str, prefix: &str, addr: &str) {
    let seg = segment();
    let link = format!("{prefix}{}", seg.link);
    let srv = serve_peer_address(&seg.ns, Ipv4Addr::new(192, 0, 2, 1));
    let script = format!(
        "ls /sys/class/net; cat /sys/class/net/{link}/operstate; ip addr add {addr}/24 dev {link} && \
         nc -w 5 192.0.2.1 9000 </dev/null"
    );
    let o = c.sh(&[&format!("--network-{kind}"), &seg.link], &script);
    let mut srv = srv;
    let _ = srv.kill();
    let _ = srv.wait();
    let o = o.success();
    let out = o.out();
    let links: Vec<&str> = out.lines().take_while(|l| *l != "up" && *l != "unknown").collect();
    assert_eq!(links, ["lo", link.as_str()], "only lo and the {kind} link inside: {}", o.describe());
    assert!(out.lines().any(|l| l == "up" || l == "unknown"), "{link} must be up: {}", o.describe());
    assert_eq!(
        out.lines().last(),
        Some(addr),
        "the remote host must see the container's own address: {}",
        o.describe()
    );
    assert!(host_links(prefix).is_empty(), "a {kind} link was left on the host: {:?}", host_links(prefix));
}

#[test]
fn a_macvlan_link_sits_on_the_parents_segment_with_the_containers_own_address() {
    let c = Ctx::busybox();
    reaches_the_segment(&c, "macvlan", "mv-", "192.0.2.10");
    // A parent that is not there: one line, before anything starts.
    let o = c.run_image(&["--network-macvlan", "nosuch0"], &["true"]).failure();
    assert!(o.stderr.contains("nosuch0"), "{}", o.describe());
    // Not on a berth bridge, whose transmit path skips the address guard.
    c.sh(&["-n"], "true").success();
    let o = c.run_image(&["--network-macvlan", c.berth.network()], &["true"]).failure();
    assert!(o.stderr.contains("--network-bridge"), "{}", o.describe());
}

#[test]
fn an_ipvlan_link_works_or_says_the_kernel_lacks_the_driver() {
    let c = Ctx::busybox();
    // This kernel may be built without CONFIG_IPVLAN (the CI machine's
    // is): then the run must say so in one line and leave nothing.
    let seg = segment();
    let probe = Command::new("ip")
        .args(["link", "add", "link", &seg.link, "name", "ivprobe0", "type", "ipvlan"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if probe {
        let _ = Command::new("ip").args(["link", "del", "ivprobe0"]).status();
        drop(seg);
        return reaches_the_segment(&c, "ipvlan", "iv-", "192.0.2.11");
    }
    let o = c.run_image(&["--network-ipvlan", &seg.link], &["true"]).failure();
    assert!(o.stderr.contains("no ipvlan driver (CONFIG_IPVLAN)"), "{}", o.describe());
    assert!(host_links("iv-").is_empty(), "{:?}", host_links("iv-"));
}

#[test]
fn a_run_joins_a_named_network_namespace_and_cannot_reconfigure_it() {
    // (Made first: its /run/netns mount is not the run's to leave behind.)
    let remote = Remote::new();
    let c = Ctx::busybox();
    let path = format!("/run/netns/{}", remote.ns);
    // The container is in the remote host's namespace: its address, its
    // link; the remote's own server is on its loopback.
    let srv = serve_peer_address(&remote.ns, Ipv4Addr::LOCALHOST);
    let o = c.sh(
        // CAP_NET_ADMIN granted: in its own user namespace, which does not
        // own the joined one.
        &["--network-namespace-path", &path, "--capability", "CAP_NET_ADMIN"],
        "ip -4 -o addr show eth0; ls /sys/class/net; nc -w 5 127.0.0.1 9000 </dev/null; \
         ip link set eth0 down && echo DOWN; ip addr add 10.99.0.1/24 dev eth0 && echo ADDED; true",
    );
    let mut srv = srv;
    let _ = srv.kill();
    let _ = srv.wait();
    let o = o.success();
    let out = o.out();
    assert!(out.contains(&format!("inet {}/30", remote.addr)), "not in the remote's namespace: {}", o.describe());
    assert!(out.lines().any(|l| l == "eth0"), "/sys must show the joined namespace's links: {}", o.describe());
    assert!(out.lines().any(|l| l == "127.0.0.1"), "the namespace's own loopback: {}", o.describe());
    // Container root (in its own user namespace) administers nothing of a
    // namespace the host made.
    assert!(!out.contains("DOWN") && !out.contains("ADDED"), "the container reconfigured it: {}", o.describe());
    let state = Command::new("ip").args(["-n", &remote.ns, "-o", "addr", "show", "eth0"]).output().expect("ip");
    let state = String::from_utf8_lossy(&state.stdout).into_owned();
    assert!(!state.contains("10.99.0.1") && state.contains(&remote.addr.to_string()), "{state}");

    // Not a network namespace, or with options that make one: refused.
    for (args, why) in [
        (vec!["--network-namespace-path", "/proc/self/ns/mnt"], "not a network namespace"),
        (vec!["--network-namespace-path", "/etc/hostname"], "not a namespace file"),
        (vec!["--network-namespace-path", "/run/netns/nosuch-berth-ns"], "No such file"),
        (vec!["--network-namespace-path", &path, "-n"], "drop --private-network"),
    ] {
        let o = c.run_image(&args, &["true"]).failure();
        assert!(o.stderr.contains(why), "{args:?}: {}", o.describe());
    }
}
