//! IPAM tests: stable leases, reuse after release, the addresses never
//! leased, full subnets, and allocation racing across threads and processes.

use super::*;

fn net(s: &str) -> Ipv4Net {
    s.parse().unwrap()
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[test]
fn net_ipam_stable_per_owner() {
    let dir = tempfile::tempdir().unwrap();
    let subnet = net("10.88.0.0/16");
    let ipam = Ipam::open(dir.path(), "berth0").unwrap();
    let a = ipam.allocate("web", subnet).unwrap();
    assert_eq!(a.addr, "10.88.0.2/16".parse().unwrap());
    assert_eq!(a.gateway, ip("10.88.0.1"));
    assert_eq!(ipam.allocate("web", subnet).unwrap(), a);
    let b = ipam.allocate("db", subnet).unwrap();
    assert_eq!(b.addr.addr(), ip("10.88.0.3"));

    // A later run: a new handle reads the same leases and ULA prefix.
    let again = Ipam::open(dir.path(), "berth0").unwrap();
    assert_eq!(again.allocate("web", subnet).unwrap(), a);
    assert_eq!(again.lease("db").unwrap(), Some(b.clone()));
    assert_eq!(again.owner_of(ip("10.88.0.3")).unwrap().as_deref(), Some("db"));
    assert_eq!(again.owner_of(ip("10.88.0.4")).unwrap(), None);
    assert_eq!(again.list().unwrap(), vec![b, a.clone()]);
    assert_eq!(again.subnet().unwrap(), Some(subnet));
    assert_eq!(again.ula().unwrap(), a.addr6.trunc());
}

#[test]
fn net_ipam_ipv6_follows_ipv4() {
    let dir = tempfile::tempdir().unwrap();
    let ipam = Ipam::open(dir.path(), "n").unwrap();
    let ula = ipam.ula().unwrap();
    let mut last = None;
    for i in 0..300 {
        last = Some(ipam.allocate(&format!("m{i}"), net("10.90.0.0/16")).unwrap());
    }
    let last = last.unwrap();
    // The 300th lease is host 301 = 0x12d: 10.90.1.45 and ULA::12d.
    assert_eq!(last.addr.addr(), ip("10.90.1.45"));
    assert_eq!(u128::from(last.addr6.addr()), u128::from(ula.network()) | 0x12d);
    assert_eq!(last.addr6.prefix_len(), 64);
    assert_eq!(last.gateway6, gateway6(ula).addr());
    assert_eq!(u128::from(last.gateway6) & 0xffff_ffff_ffff_ffff, 1);
    assert_eq!(ula.addr().octets()[0], 0xfd);
}

#[test]
fn net_ipam_release_then_reuse() {
    let dir = tempfile::tempdir().unwrap();
    let subnet = net("10.88.0.0/16");
    let ipam = Ipam::open(dir.path(), "berth0").unwrap();
    let a = ipam.allocate("a", subnet).unwrap().addr.addr();
    let b = ipam.allocate("b", subnet).unwrap().addr.addr();
    assert_eq!(ipam.release("a").unwrap(), Some(a));
    assert_eq!(ipam.release("a").unwrap(), None);
    assert_eq!(ipam.lease("a").unwrap(), None);
    assert_eq!(ipam.allocate("c", subnet).unwrap().addr.addr(), a);
    assert_eq!(ipam.allocate("a", subnet).unwrap().addr.addr(), ip("10.88.0.4"));
    assert_eq!(ipam.owner_of(b).unwrap().as_deref(), Some("b"));
}

#[test]
fn net_ipam_full_subnet_and_reserved_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let subnet = net("192.168.77.8/29");
    let ipam = Ipam::open(dir.path(), "small").unwrap();
    let leased: Vec<Ipv4Addr> = (0..5).map(|i| ipam.allocate(&format!("o{i}"), subnet).unwrap().addr.addr()).collect();
    // .8 network, .9 gateway, .15 broadcast are never handed out.
    let want: Vec<Ipv4Addr> = (10..=14).map(|h| Ipv4Addr::new(192, 168, 77, h)).collect();
    assert_eq!(leased, want);
    let err = ipam.allocate("one-too-many", subnet).unwrap_err();
    assert!(matches!(err, IpamError::Full { leased: 5, .. }), "{err}");
    assert!(err.to_string().contains("192.168.77.8/29 is full"), "{err}");
    // An owner that has a lease still gets it in a full subnet.
    assert_eq!(ipam.allocate("o2", subnet).unwrap().addr.addr(), want[2]);
    let err = ipam.allocate("x", net("10.0.0.0/31")).unwrap_err();
    assert!(matches!(err, IpamError::SubnetTooSmall { .. }), "{err}");
}

#[test]
fn net_ipam_subnet_is_fixed_while_leased() {
    let dir = tempfile::tempdir().unwrap();
    let ipam = Ipam::open(dir.path(), "n").unwrap();
    ipam.allocate("a", net("10.88.0.0/16")).unwrap();
    let err = ipam.allocate("b", net("10.89.0.0/16")).unwrap_err();
    assert!(matches!(err, IpamError::SubnetMismatch { .. }), "{err}");
    ipam.release("a").unwrap();
    let b = ipam.allocate("b", net("10.89.0.0/16")).unwrap();
    assert_eq!(b.addr.addr(), ip("10.89.0.2"));
    // Host bits in the requested subnet are ignored.
    assert_eq!(ipam.allocate("c", net("10.89.7.7/16")).unwrap().addr.addr(), ip("10.89.0.3"));

    let other = Ipam::open(dir.path(), "other").unwrap();
    other.allocate("x", net("10.90.0.0/16")).unwrap();
    let subnets = subnets_in(dir.path()).unwrap();
    assert_eq!(subnets, vec![("n".to_string(), net("10.89.0.0/16")), ("other".to_string(), net("10.90.0.0/16"))]);
    assert_eq!(subnets_in(&dir.path().join("missing")).unwrap(), vec![]);
}

#[test]
fn net_ipam_files_and_names() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store/net");
    let ipam = Ipam::open(&store, "berth0").unwrap();
    ipam.allocate("web", net("10.88.0.0/16")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&store), 0o700);
    assert_eq!(mode(&store.join("berth0.json")), 0o600);
    assert!(!store.join("berth0.json.tmp").exists());
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(store.join("berth0.json")).unwrap()).unwrap();
    assert_eq!(json["leases"]["web"], "10.88.0.2");
    assert_eq!(json["subnet"], "10.88.0.0/16");

    for bad in ["", ".hidden", "a/b", "..", "x y", &"n".repeat(65)] {
        assert!(matches!(Ipam::open(&store, bad), Err(IpamError::InvalidNetwork(_))), "{bad:?}");
    }
    assert!(matches!(ipam.allocate("", net("10.88.0.0/16")), Err(IpamError::InvalidOwner(_))));
    assert!(matches!(ipam.release(&"o".repeat(MAX_OWNER + 1)), Err(IpamError::InvalidOwner(_))));
}

#[test]
fn net_ipam_corrupt_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let ipam = Ipam::open(dir.path(), "n").unwrap();
    std::fs::write(dir.path().join("n.json"), b"{not json").unwrap();
    assert!(matches!(ipam.allocate("a", net("10.88.0.0/16")), Err(IpamError::Corrupt { .. })));
    std::fs::write(dir.path().join("n.json"), br#"{"version":99}"#).unwrap();
    let err = ipam.list().unwrap_err();
    assert!(err.to_string().contains("format version 99"), "{err}");
    // A lease outside the recorded subnet.
    let bad = r#"{"version":1,"subnet":"10.88.0.0/16","ula":"fd00:1::/64","leases":{"a":"10.1.0.2"}}"#;
    std::fs::write(dir.path().join("n.json"), bad).unwrap();
    assert!(matches!(ipam.lease("a"), Err(IpamError::Corrupt { .. })));
}

#[test]
fn net_ipam_concurrent_threads_get_distinct_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let subnet = net("10.88.0.0/16");
    std::thread::scope(|s| {
        for t in 0..6 {
            let dir = dir.path();
            s.spawn(move || {
                // Each thread its own handle, so each lock is its own open
                // file description, as in separate processes.
                let ipam = Ipam::open(dir, "berth0").unwrap();
                for i in 0..15 {
                    ipam.allocate(&format!("t{t}-{i}"), subnet).unwrap();
                }
            });
        }
    });
    assert_distinct(dir.path(), 90);
}

/// Env var that turns [`net_ipam_child_process`] into an allocating child.
const CHILD_ENV: &str = "BERTH_TEST_IPAM_CHILD";

#[test]
fn net_ipam_concurrent_processes_get_distinct_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..4)
        .map(|c| {
            std::process::Command::new(&exe)
                .args(["--exact", "net::ipam::tests::net_ipam_child_process", "--test-threads=1", "-q"])
                .env(CHILD_ENV, format!("{}:{c}", dir.path().display()))
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    assert_distinct(dir.path(), 4 * 20);
}

/// Does nothing unless started by the test above; then allocates 20
/// addresses in the directory it names.
#[test]
fn net_ipam_child_process() {
    let Ok(arg) = std::env::var(CHILD_ENV) else { return };
    let (dir, c) = arg.rsplit_once(':').unwrap();
    let ipam = Ipam::open(Path::new(dir), "berth0").unwrap();
    for i in 0..20 {
        ipam.allocate(&format!("p{c}-{i}"), net("10.88.0.0/16")).unwrap();
    }
}

fn assert_distinct(dir: &Path, n: usize) {
    let leases = Ipam::open(dir, "berth0").unwrap().list().unwrap();
    assert_eq!(leases.len(), n);
    let addrs: HashSet<Ipv4Addr> = leases.iter().map(|l| l.addr.addr()).collect();
    assert_eq!(addrs.len(), n, "two owners share an address");
    let six: HashSet<Ipv6Addr> = leases.iter().map(|l| l.addr6.addr()).collect();
    assert_eq!(six.len(), n);
    // Lowest free first, no gaps: exactly .2 up to n+1.
    let max = addrs.iter().map(|a| u32::from(*a)).max().unwrap();
    assert_eq!(max, u32::from(ip("10.88.0.1")) + n as u32);
}
