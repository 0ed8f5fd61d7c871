//! The light case: busybox init as PID 1 (`/sbin/init -> busybox`, an
//! inittab with sysinit/once/respawn/shutdown lines), detached and in the
//! foreground.
//!
//! busybox init powers off on SIGUSR2 (halt SIGUSR1, reboot SIGTERM) and
//! ignores SIGRTMIN+3/+4, systemd's container signals; berth has to pick
//! the signal the init understands for `stop` and for SIGTERM to a
//! foreground `run -b`. A clean power-off runs the `::shutdown:` action.

use std::time::{Duration, Instant};

use rustix::process::Signal;

use super::foreground::Foreground;
use super::{
    busybox_init_tree, machine_name, proc_start_time, signal, tail, Host, Mounts, BB_ONCE, BB_RESPAWN, BB_SHUTDOWN,
    BB_SYSINIT,
};

fn wait_console(h: &Host, m: &str, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !h.console(m).contains(needle) {
        assert!(Instant::now() < deadline, "{needle:?} never reached {m}'s console:\n{}", h.console(m));
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The machine's pid of the `::respawn:` sleep (as the machine sees it).
fn first_in_machine(h: &Host, m: &str) -> String {
    let r = h.run(["exec", m, "pidof", "sleep"]).success();
    r.stdout.split_whitespace().next().unwrap_or_else(|| panic!("no sleep in {m}: {r:?}")).to_string()
}

#[test]
fn busybox_init_boots_detached_runs_its_inittab_and_stops_cleanly() {
    let m = machine_name("bb");
    let h = Host::busybox(&[&m]);
    let mounts = Mounts::now(h.berth.dir());
    let st = h.start(&m);
    wait_console(&h, &m, BB_ONCE);
    let console = h.console(&m);
    assert!(console.contains(BB_SYSINIT), "the ::sysinit: action must run:\n{console}");
    assert!(h.ps_names().contains(&m));

    // PID 1 is busybox init, with what an init in a container expects.
    let r = h.run(["exec", &m, "cat", "/proc/1/comm"]).success();
    assert_eq!(r.stdout.trim(), "init", "{r:?}");
    let r = h.run(["exec", &m, "hostname"]).success();
    assert_eq!(r.stdout.trim(), m, "the machine's hostname is its name: {r:?}");
    let r = h.run(["exec", &m, "cat", "/proc/1/environ"]).success();
    assert!(r.stdout.split('\0').any(|v| v == "container=berth"), "PID 1 needs container=berth: {:?}", r.stdout);
    let r = h.run(["exec", &m, "cat", "/run/host/container-manager"]).success();
    assert_eq!(r.stdout.trim(), "berth", "{r:?}");
    // The ::respawn: process runs, and comes back when killed.
    let leader = st["leader"].as_i64().unwrap() as i32;
    let respawn = || {
        super::cgroup_pids(&super::machine_cgroups(leader)[0])
            .into_iter()
            .find(|p| super::cmdline(*p) == BB_RESPAWN.join(" "))
    };
    let first = respawn().unwrap_or_else(|| panic!("the ::respawn: line's {} does not run", BB_RESPAWN.join(" ")));
    h.run(["exec", &m, "kill", &first_in_machine(&h, &m)]).success();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if respawn().is_some_and(|p| p != first) {
            break;
        }
        assert!(Instant::now() < deadline, "busybox init did not respawn its sleep");
        std::thread::sleep(Duration::from_millis(50));
    }
    let r = h.run(["exec", &m, "sh", "-c", "exit 9"]);
    assert_eq!(r.status.code(), Some(9), "{r:?}");
    h.run(["status", &m]).success();

    let snap = h.snapshot(&m);
    let t = Instant::now();
    let r = h.run(["stop", &m]).success();
    assert!(t.elapsed() < Duration::from_secs(10), "stop took {:?}", t.elapsed());
    assert!(!r.stderr.contains("kill"), "stop had to SIGKILL busybox init: {r:?}");
    let console = h.console(&m);
    assert!(console.contains(BB_SHUTDOWN), "a clean stop runs the ::shutdown: action:\n{console}");
    h.assert_gone(&snap, &mounts, "berth stop of busybox init");
}

#[test]
fn busybox_init_in_the_foreground_powers_off_on_sigterm() {
    let h = Host::new();
    // A unique directory name: berth names the cgroup after it.
    let tree = busybox_init_tree(&h.berth.new_dir(&machine_name("bbfg")));
    let name = tree.file_name().unwrap().to_string_lossy().into_owned();
    let mounts = Mounts::now(h.berth.dir());
    let tree_s = tree.to_string_lossy().into_owned();
    let mut fg = Foreground::spawn(&h, &["run", "-b", "-D", &tree_s]);
    fg.wait_for(BB_ONCE, Duration::from_secs(10));
    assert!(fg.output().contains(BB_SYSINIT), "{}", fg.output());
    let snap = fg.snapshot(&name);
    let start = proc_start_time(snap.leader).unwrap();
    signal(fg.pid(), Signal::TERM);
    let st = fg.wait(Duration::from_secs(10));
    let out = fg.output();
    let st = st.unwrap_or_else(|| {
        panic!(
            "berth run -b -D (busybox init) still runs 10 s after SIGTERM (init alive: {}):\n{out}",
            proc_start_time(snap.leader) == Some(start)
        )
    });
    assert_eq!(st.code(), Some(0), "SIGTERM must power busybox init off cleanly, exit 0:\n{out}");
    assert!(out.contains(BB_SHUTDOWN), "a clean power-off runs the ::shutdown: action:\n{}", tail(&out, 10));
    h.assert_gone(&snap, &mounts, "SIGTERM to run -b -D with busybox init");
}

#[test]
fn stop_leaves_busybox_init_installed_as_a_plain_file_stopped_not_rebooted() {
    // /sbin/init is a copy of busybox (not a symlink to it): berth cannot
    // tell it is busybox from /proc/PID/exe. Whatever signal `stop` sends,
    // the machine must end up stopped — not rebooted and running again.
    let m = machine_name("bc");
    let h = Host::new();
    let tree = busybox_init_tree(&h.berth.new_dir("bbcopy"));
    std::fs::remove_file(tree.join("sbin/init")).unwrap();
    std::fs::copy(tree.join("bin/busybox"), tree.join("sbin/init")).unwrap();
    h.run([std::ffi::OsStr::new("import"), tree.as_os_str(), std::ffi::OsStr::new("bbcopy")]).success();
    h.run(["create", "bbcopy", &m]).success();
    let mounts = Mounts::now(h.berth.dir());
    h.start(&m);
    wait_console(&h, &m, BB_ONCE);
    let snap = h.snapshot(&m);
    let r = h.run(["stop", "--timeout", "5", &m]);
    assert!(r.status.success(), "{r:?}");
    std::thread::sleep(Duration::from_millis(500));
    let after = h.state(&m);
    assert!(
        after.is_none() && !h.ps_names().contains(&m),
        "`berth stop {m}` exited 0 but {m} runs again with leader {:?} (was {}); console:\n{}",
        after.as_ref().map(|s| s["leader"].clone()),
        snap.leader,
        h.console(&m)
    );
    h.assert_gone(&snap, &mounts, "berth stop of busybox init copied to /sbin/init");
}
