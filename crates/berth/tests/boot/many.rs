//! Ten booted machines at once: clones of one machine, started together,
//! all reach running/degraded, all listed by `ps`, all stopped together,
//! nothing left.

use std::time::{Duration, Instant};

use super::{machine_name, Host, Mounts};

const N: usize = 10;

#[test]
fn ten_clones_start_together_are_listed_and_stop_together() {
    let base = machine_name("tn");
    let h = Host::systemd(&[&base]);
    let names: Vec<String> = (1..=N).map(|i| format!("{base}c{i}")).collect();
    for n in &names {
        h.run(["clone", &base, n]).success();
    }
    let mounts = Mounts::now(h.berth.dir());

    // Start all ten at once.
    let t = Instant::now();
    let starts: Vec<_> = names
        .iter()
        .map(|n| {
            let mut c = h.command(["start", n]);
            c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
            (n.clone(), c.spawn().expect("spawn berth start"))
        })
        .collect();
    for (n, mut c) in starts {
        let r = crate::harness::berth::wait_with_timeout(&mut c, format!("berth start {n}"));
        assert!(r.status.success(), "{r:?}");
    }
    // All boot to running/degraded (polled one after the other; they boot in parallel).
    let words: Vec<String> = names.iter().map(|n| h.wait_running(n)).collect();
    eprintln!("{N} machines running after {:?}: {words:?}", t.elapsed());

    let listed = h.ps_names();
    for n in &names {
        assert!(listed.contains(n), "`berth ps` must list {n}; it lists {listed:?}");
    }
    assert!(!listed.contains(&base), "the template {base} was never started, but `ps` lists it");
    // Ten distinct leaders, each a live systemd.
    let snaps: Vec<_> = names.iter().map(|n| h.snapshot(n)).collect();
    let mut leaders: Vec<i32> = snaps.iter().map(|s| s.leader).collect();
    leaders.sort_unstable();
    leaders.dedup();
    assert_eq!(leaders.len(), N, "{N} machines need {N} different leaders: {leaders:?}");
    // Each machine is its own: a file made in one is not in another.
    h.run(["exec", &names[0], "touch", "/root/only-in-first"]).success();
    assert_eq!(h.run(["exec", &names[1], "test", "-e", "/root/only-in-first"]).status.code(), Some(1));

    // Stop all at once.
    let t = Instant::now();
    let stops: Vec<_> = names
        .iter()
        .map(|n| {
            let mut c = h.command(["stop", n]);
            c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
            (n.clone(), c.spawn().expect("spawn berth stop"))
        })
        .collect();
    for (n, mut c) in stops {
        let r = crate::harness::berth::wait_with_timeout(&mut c, format!("berth stop {n}"));
        assert!(r.status.success(), "{r:?}");
        assert!(!r.stderr.contains("kill"), "stop of {n} fell back to SIGKILL: {r:?}");
    }
    let took = t.elapsed();
    assert!(took < Duration::from_secs(15), "stopping {N} machines at once took {took:?}");
    for s in &snaps {
        h.assert_gone(s, &mounts, "ten machines stopped together");
    }
    assert!(h.ps_names().is_empty(), "`berth ps` after stopping all: {:?}", h.ps_names());
}
