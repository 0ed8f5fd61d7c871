//! A debootstrap'd Debian booting systemd, detached: start, reach
//! running/degraded, exec, shell (piped and on a real terminal), status,
//! logs, stop / kill -s RTMIN+4 / terminate, reboot — and nothing left;
//! with `-n`, host0 configured before systemd starts and kept so by networkd.

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::{machine_name, proc_start_time, quote, tail, wait_dead, Host, Mounts};
use crate::harness::berth::wait_with_timeout;
use crate::harness::tmux::Tmux;

#[test]
fn start_exec_shell_status_logs_then_stop_leaves_nothing() {
    let m = machine_name("sd");
    let h = Host::systemd(&[&m]);
    let mounts = Mounts::now(h.berth.dir());

    let st = h.start(&m);
    let leader = st["leader"].as_i64().unwrap();
    assert_eq!(st["name"], m.as_str(), "state.json names the machine: {st}");
    assert!(h.ps_names().contains(&m), "`berth ps` must list {m} right after start");
    let word = h.wait_running(&m);

    // ps: one line with the name and the leader pid.
    let ps = h.run(["ps"]).success();
    let line = ps.stdout.lines().find(|l| l.split_whitespace().next() == Some(m.as_str()));
    let line = line.unwrap_or_else(|| panic!("`berth ps` has no line for {m}:\n{}", ps.stdout));
    assert!(
        line.split_whitespace().any(|w| w == leader.to_string()),
        "`berth ps` line must show leader {leader}: {line}"
    );

    // exec: stdout and stderr captured apart, exit status passed through.
    let r = h.run(["exec", &m, "sh", "-c", "echo out-$((6*7)); echo err-to-stderr >&2; exit 42"]);
    assert_eq!(r.status.code(), Some(42), "exit status of the command must pass through: {r:?}");
    assert_eq!(r.stdout, "out-42\n", "{r:?}");
    assert!(r.stderr.contains("err-to-stderr"), "{r:?}");
    assert_eq!(h.run(["exec", &m, "true"]).status.code(), Some(0));
    assert_eq!(h.run(["exec", &m, "false"]).status.code(), Some(1));
    // …in the machine: its PID 1 is systemd, its pid namespace is the leader's.
    let r = h.run(["exec", &m, "cat", "/proc/1/comm"]).success();
    assert_eq!(r.stdout.trim(), "systemd", "PID 1 seen by exec: {r:?}");
    let inside = h.run(["exec", &m, "readlink", "/proc/self/ns/pid"]).success();
    let outside = std::fs::read_link(format!("/proc/{leader}/ns/pid")).expect("leader's pid ns");
    assert_eq!(inside.stdout.trim(), outside.to_string_lossy(), "exec must run in the machine's pid namespace");
    // systemd runs in a user namespace of its own: its root is a host uid
    // of berth's range, and exec is in the same namespace.
    let map = std::fs::read_to_string(format!("/proc/{leader}/uid_map")).expect("leader's uid_map");
    let fields: Vec<u64> = map.split_whitespace().filter_map(|f| f.parse().ok()).collect();
    assert!(fields.len() == 3 && fields[0] == 0 && fields[1] >= 0x80000, "systemd's uid map: {map}");
    let r = h.run(["exec", &m, "readlink", "/proc/self/ns/user"]).success();
    let ns = std::fs::read_link(format!("/proc/{leader}/ns/user")).expect("leader's user ns");
    assert_eq!(r.stdout.trim(), ns.to_string_lossy(), "exec joins systemd's user namespace");
    // -E and -u.
    let r = h.run(["exec", "-E", "GREETING=hello there", &m, "sh", "-c", "echo \"$GREETING\""]).success();
    assert_eq!(r.stdout, "hello there\n", "{r:?}");
    let r = h.run(["exec", "-u", "nobody", &m, "id", "-u"]).success();
    assert_eq!(r.stdout.trim(), "65534", "{r:?}");
    // stdin is passed to the command.
    let mut cmd = h.command(["exec", &m, "sh", "-c", "tr a-z A-Z"]);
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn berth exec");
    child.stdin.take().unwrap().write_all(b"piped in\n").expect("write stdin");
    let r = wait_with_timeout(&mut child, "berth exec … tr".into());
    assert!(r.status.success(), "{r:?}");
    assert_eq!(r.stdout, "PIPED IN\n", "stdin must reach the command: {r:?}");

    // shell CMD without a terminal: a login environment, status through.
    let r = h.run(["shell", &m, "sh", "-c", "echo \"$USER:$HOME:$(pwd)\"; exit 5"]);
    assert_eq!(r.status.code(), Some(5), "{r:?}");
    assert_eq!(r.stdout.trim(), "root:/root:/root", "{r:?}");

    // status: state from systemctl, tasks from the cgroup, the leader.
    let r = h.run(["status", &m]).success();
    assert!(r.stdout.contains(&m), "{}", r.stdout);
    assert!(r.stdout.contains(&leader.to_string()), "status must show leader {leader}:\n{}", r.stdout);
    let state = r.stdout.lines().find_map(|l| l.trim().strip_prefix("State:").map(|s| s.trim().to_string()));
    assert!(
        matches!(state.as_deref(), Some("running" | "degraded")),
        "status must say `State: {word}` (systemctl is-system-running):\n{}",
        r.stdout
    );
    let tasks = r.stdout.lines().find_map(|l| l.trim().strip_prefix("Tasks:").map(|s| s.trim().to_string()));
    let tasks: usize = tasks
        .as_deref()
        .and_then(|t| t.split_whitespace().next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("status has no `Tasks: N` line:\n{}", r.stdout));
    assert!(tasks >= 3, "a booted systemd has PID 1, journald, dbus…: Tasks: {tasks}\n{}", r.stdout);
    assert!(r.stdout.contains("systemd-journald"), "status lists the processes:\n{}", r.stdout);

    // logs: the console of the boot.
    let r = h.run(["logs", &m]).success();
    assert!(
        r.stdout.contains("Welcome to Debian"),
        "`berth logs` must show the boot messages:\n{}",
        tail(&r.stdout, 20)
    );
    assert!(r.stdout.contains("Reached target"), "{}", tail(&r.stdout, 20));

    // A `berth exec` still running when the machine stops must end too.
    let mut session = h.command(["exec", &m, "sleep", "1000"]);
    session.stdout(Stdio::null()).stderr(Stdio::null());
    let mut session = session.spawn().expect("spawn berth exec sleep");
    let t0 = Instant::now();
    let in_machine = |argv: &str| {
        super::machine_cgroups(leader as i32)
            .iter()
            .flat_map(|d| super::cgroup_pids(d))
            .any(|p| super::cmdline(p) == argv)
    };
    while !in_machine("sleep 1000") {
        assert!(t0.elapsed() < Duration::from_secs(10), "the exec'd sleep never showed up in the machine");
        std::thread::sleep(Duration::from_millis(50));
    }

    let mut snap = h.snapshot(&m);
    snap.add_process(session.id() as i32);
    let t = Instant::now();
    let r = h.run(["stop", &m]);
    let took = t.elapsed();
    assert!(r.status.success(), "{r:?}");
    assert!(
        took < Duration::from_secs(10),
        "`berth stop` took {took:?} (clean power-off must beat the 10 s timeout): {r:?}"
    );
    assert!(!r.stderr.contains("kill"), "stop fell back to SIGKILL: {r:?}\n{}", tail(&h.console(&m), 20));
    let deadline = Instant::now() + Duration::from_secs(5);
    while session.try_wait().expect("wait for exec").is_none() {
        assert!(Instant::now() < deadline, "`berth exec {m} sleep 1000` still runs after the machine stopped");
        std::thread::sleep(Duration::from_millis(20));
    }
    h.assert_gone(&snap, &mounts, "berth stop");
    let console = h.console(&m);
    assert!(
        console.contains("Halting") || console.contains("Powering off"),
        "a clean stop goes through systemd's shutdown:\n{}",
        tail(&console, 15)
    );
    // A stopped machine's console log is still readable.
    let r = h.run(["logs", &m]).success();
    assert!(r.stdout.contains("Welcome to Debian"), "{}", tail(&r.stdout, 5));
}

#[test]
fn interactive_shell_in_tmux_gets_a_pty_and_passes_the_exit_status() {
    let m = machine_name("sh");
    let h = Host::systemd(&[&m]);
    let mounts = Mounts::now(h.berth.dir());
    h.start(&m);
    h.wait_running(&m);

    let dir = h.berth.new_dir("tmux");
    let exit_file = dir.join("exit");
    let line = format!("{}; echo EXIT=$? > {}", h.shell_line(&["shell", &m]), quote(&exit_file.to_string_lossy()));
    let tmux = Tmux::start(&dir, &line, 100, 30);
    let deadline = Instant::now() + Duration::from_secs(20);
    tmux.type_line("whoami; tty; echo MARK-$((6*7))");
    tmux.wait_line("the shell's answer", deadline, |l| l.trim() == "MARK-42");
    let screen = tmux.screen();
    assert!(screen.lines().any(|l| l.trim() == "root"), "whoami in `berth shell` must say root:\n{screen}");
    assert!(
        screen.lines().any(|l| l.trim().starts_with("/dev/pts/")),
        "`tty` in an interactive `berth shell` must name a pty:\n{screen}"
    );
    tmux.type_line("exit 4");
    while !exit_file.exists() {
        assert!(Instant::now() < deadline, "berth shell did not exit after `exit 4`; screen:\n{}", tmux.screen());
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(50));
    let code = std::fs::read_to_string(&exit_file).unwrap_or_default();
    assert_eq!(code.trim(), "EXIT=4", "berth shell must exit with the shell's status; screen:\n{}", tmux.screen());
    drop(tmux);

    // -u USER: a shell as another user of the machine (checked after the stop).
    h.run(["exec", &m, "useradd", "-m", "-s", "/bin/bash", "alice"]).success();
    let exec_alice = h.run(["exec", "-u", "alice", &m, "sh", "-c", "echo \"$(id -un):$HOME\""]);
    let shell_alice = h.run(["shell", "-u", "alice", &m, "sh", "-c", "echo \"$(id -un):$HOME\""]);

    let snap = h.snapshot(&m);
    h.run(["stop", &m]).success();
    h.assert_gone(&snap, &mounts, "berth stop after an interactive shell");

    assert!(exec_alice.status.success(), "{exec_alice:?}");
    assert_eq!(exec_alice.stdout.trim(), "alice:/home/alice", "{exec_alice:?}");
    assert!(shell_alice.status.success(), "`berth shell -u alice` must run the command as alice: {shell_alice:?}");
    assert_eq!(shell_alice.stdout.trim(), "alice:/home/alice", "{shell_alice:?}");
}

#[test]
fn kill_rtmin4_powers_the_machine_off() {
    let m = machine_name("kp");
    let h = Host::systemd(&[&m]);
    let mounts = Mounts::now(h.berth.dir());
    h.start(&m);
    h.wait_running(&m);
    let snap = h.snapshot(&m);
    let start = proc_start_time(snap.leader).expect("leader alive");
    h.run(["kill", "-s", "RTMIN+4", &m]).success();
    assert!(
        wait_dead(snap.leader, start, Duration::from_secs(10)),
        "systemd did not power off within 10 s of SIGRTMIN+4:\n{}",
        tail(&h.console(&m), 15)
    );
    h.assert_gone(&snap, &mounts, "berth kill -s RTMIN+4");
    let console = h.console(&m);
    assert!(console.contains("Powering off"), "SIGRTMIN+4 is systemd's power-off:\n{}", tail(&console, 10));
}

#[test]
fn terminate_kills_a_machine_started_with_run_b_d_at_once() {
    let m = machine_name("tm");
    let h = Host::systemd(&[&m]);
    let mounts = Mounts::now(h.berth.dir());
    h.run(["run", "-b", "-d", "-M", &m]).success();
    assert!(h.ps_names().contains(&m), "`run -b -d -M {m}` must leave a running machine in `ps`");
    h.wait_running(&m);
    let snap = h.snapshot(&m);
    let t = Instant::now();
    let r = h.run(["terminate", &m]);
    let took = t.elapsed();
    assert!(r.status.success(), "{r:?}");
    assert!(took < Duration::from_secs(3), "terminate must not wait for a shutdown: took {took:?}");
    h.assert_gone(&snap, &mounts, "berth terminate");
    let console = h.console(&m);
    assert!(
        !console.contains("Reached target shutdown.target"),
        "terminate kills at once, without systemd's shutdown:\n{}",
        tail(&console, 10)
    );
}

#[test]
fn reboot_from_inside_and_sigint_bring_the_machine_back() {
    let m = machine_name("rb");
    let h = Host::systemd(&[&m]);
    let mounts = Mounts::now(h.berth.dir());
    h.start(&m);
    h.wait_running(&m);
    let first = h.snapshot(&m);

    // `systemctl reboot` inside: a new init in the same machine.
    let _ = h.run(["exec", &m, "systemctl", "reboot"]);
    let second = wait_new_leader(&h, &m, first.leader);
    h.wait_running(&m);
    assert_eq!(h.ps_names().iter().filter(|n| **n == m).count(), 1, "one {m} in `ps` after a reboot");

    // SIGINT is systemd's ctrl-alt-del: a reboot too.
    h.run(["kill", "-s", "INT", &m]).success();
    let third = wait_new_leader(&h, &m, second);
    h.wait_running(&m);
    let last = h.snapshot(&m);
    assert_eq!(last.leader, third);

    h.run(["stop", &m]).success();
    h.assert_gone(&last, &mounts, "berth stop after two reboots");
    // Nothing of the first boot either.
    h.assert_gone(&first, &mounts, "the first boot (before the reboots)");
    let console = h.console(&m);
    assert!(
        console.matches("Welcome to Debian").count() >= 3,
        "the console log should hold all three boots:\n{}",
        tail(&console, 10)
    );
}

fn wait_new_leader(h: &Host, m: &str, old: i32) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(st) = h.state(m) {
            let l = st["leader"].as_i64().unwrap_or(0) as i32;
            if l != old && l != 0 && proc_start_time(l).is_some() {
                return l;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{m} did not come back with a new leader within 20 s of a reboot (state: {:?})\n{}",
            h.state(m),
            tail(&h.console(m), 15)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The hostile container as a booted system sees it: the probe run by the
/// machine's own systemd as a root service (the boot capability set,
/// CAP_SYS_ADMIN included), with a device node shipped in the tree.
#[test]
fn a_root_service_of_a_booted_machine_reaches_nothing_of_the_host() {
    use crate::harness::probe::{assert_blocked, binary, verdict};
    use std::os::unix::fs::PermissionsExt;
    let m = machine_name("hp");
    let h = Host::systemd(&[&m]);
    let upper = h.berth.root().join("machines").join(&m).join("upper");
    std::fs::create_dir_all(upper.join("srv")).expect("srv");
    std::fs::copy(binary(), upper.join("probe")).expect("copy the probe");
    std::fs::set_permissions(upper.join("probe"), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let node = upper.join("srv/loopctl");
    let st = std::process::Command::new("mknod").arg(&node).args(["c", "10", "237"]).status().expect("mknod");
    assert!(st.success(), "mknod");
    std::fs::set_permissions(&node, std::fs::Permissions::from_mode(0o666)).expect("chmod node");
    h.start(&m);
    h.wait_running(&m);
    let checks = [
        "remount-rw:/proc/sys",
        "mount-proc:/tmp/p2",
        "write:/proc/sys/kernel/core_pattern",
        "write:/tmp/p2/sys/kernel/core_pattern",
        "mount-sysfs:/tmp/s2",
        "write:/sys/kernel/uevent_helper",
        "packet",
        "open-rw:/srv/loopctl",
        "tmpfs-mknod:/tmp/devs",
        "io_uring",
        "keyctl",
    ];
    let mut args = vec!["exec", &m, "systemd-run", "--quiet", "--wait", "--pipe", "/probe"];
    args.extend_from_slice(&checks);
    let r = h.run(&args);
    h.run(["stop", &m]).success();
    assert!(r.status.success(), "systemd-run of the probe: {r:?}");
    let out = r.stdout;
    for check in &checks[2..] {
        let v = verdict(&out, check);
        if *check == "tmpfs-mknod:/tmp/devs" {
            assert!(v.starts_with("blocked:") || v.starts_with("mknod-refused:"), "{check}: {v}\n{out}");
        } else {
            assert_blocked(&out, check, "a root service of a booted machine");
        }
    }
}

#[test]
fn a_booted_machine_with_a_veth_has_host0_configured_before_systemd_starts() {
    // Its init is the second clone of a two-stage start (systemd holds
    // CAP_SYS_ADMIN): the link goes into that init's namespace.
    let m = machine_name("sdnet");
    let h = Host::systemd(&[&m]);
    h.run(["run", "-b", "-d", "-n", "-M", &m]).success();
    h.wait_running(&m);
    let r = h.run(["exec", &m, "cat", "/sys/class/net/host0/operstate"]).success();
    assert_eq!(r.stdout.trim(), "up", "{r:?}");
    let r = h.run(["exec", &m, "hostname", "-I"]).success();
    let (v4, _) = lease_v4(&h, &m);
    assert!(r.stdout.split_whitespace().any(|w| w == v4), "host0 has {:?}, the lease is {v4}", r.stdout);
    // Configured by berth, not by a network manager in the machine.
    let r = h.run(["exec", &m, "systemctl", "is-active", "systemd-networkd"]);
    assert_eq!(r.stdout.trim(), "inactive", "{r:?}");
    h.run(["stop", &m]).success();
    let br = std::path::Path::new("/sys/class/net").join(h.berth.network()).join("brif");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_dir(&br).map(|d| d.count()).unwrap_or(0) > 0 {
        assert!(Instant::now() < deadline, "the machine's link outlived it");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Machine `m`'s IPv4 address on the test network (from its lease) and
/// that network's gateway, the bridge (the subnet's first host).
fn lease_v4(h: &Host, m: &str) -> (String, std::net::Ipv4Addr) {
    let nets = h.run(["network", "ls", "--json"]).success().json();
    let net = nets
        .as_array()
        .and_then(|a| a.iter().find(|n| n["name"] == h.berth.network()))
        .unwrap_or_else(|| panic!("no network {}: {nets}", h.berth.network()));
    let lease = net["leases"]
        .as_array()
        .and_then(|ls| ls.iter().find(|l| l["owner"].as_str().is_some_and(|o| o.ends_with(&format!(":{m}")))))
        .unwrap_or_else(|| panic!("no lease for {m}: {nets}"));
    let v4 = lease["address"].as_str().unwrap_or_default().split('/').next().unwrap_or_default().to_string();
    let subnet: ipnet::Ipv4Net =
        net["subnet"].as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no subnet in {net}"));
    (v4, std::net::Ipv4Addr::from(u32::from(subnet.network()) + 1))
}

/// The IPv4 default routes' gateways on `dev`, from the machine's
/// `/proc/net/route` (`ip` is not in the tree).
fn default_gateways(route: &str, dev: &str) -> Vec<std::net::Ipv4Addr> {
    route
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // Iface Destination Gateway …, addresses as the kernel's
            // network-order word printed in hex on a little-endian host.
            (f.len() > 2 && f[0] == dev && f[1] == "00000000")
                .then(|| u32::from_str_radix(f[2], 16).ok())
                .flatten()
                .map(|g| std::net::Ipv4Addr::from(g.to_le_bytes()))
        })
        .collect()
}

#[test]
fn networkd_in_a_booted_machine_keeps_host0_as_berth_configured_it() {
    // systemd's 80-container-host0.network (meant for nspawn) has networkd
    // run a DHCP client on host0 that nothing answers, then add an IPv4
    // link-local address; berth's own file in the machine's /run has
    // networkd keep the address and route berth set, and nothing more.
    let m = machine_name("sdnd");
    let h = Host::systemd(&[&m]);
    h.run(["run", "-M", &m, "systemctl", "enable", "systemd-networkd"]).success();
    h.run(["run", "-b", "-d", "-n", "-M", &m]).success();
    h.wait_running(&m);
    let r = h.run(["exec", &m, "systemctl", "is-active", "systemd-networkd"]);
    assert_eq!(r.stdout.trim(), "active", "networkd must run in the machine for this test to mean anything: {r:?}");
    let (v4, gateway) = lease_v4(&h, &m);
    let status = || h.run(["exec", &m, "networkctl", "status", "--no-pager", "host0"]);
    let check = |when: &str| {
        // Give networkd time to act on host0: configured (done), then a
        // few seconds more, in which DHCP would have given up for IPv4LL.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !status().stdout.contains("(configured)") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
        }
        std::thread::sleep(Duration::from_secs(3));
        let st = status();
        let r = h.run(["exec", &m, "hostname", "-I"]).success();
        assert!(
            r.stdout.split_whitespace().any(|w| w == v4),
            "{when}: host0 lost the lease's address {v4} under networkd: it has {:?}\n{}",
            r.stdout,
            st.stdout
        );
        assert!(
            !r.stdout.split_whitespace().any(|w| w.starts_with("169.254.")),
            "{when}: networkd gave host0 an IPv4 link-local address: it has {:?}\n{}",
            r.stdout,
            st.stdout
        );
        let route = h.run(["exec", &m, "cat", "/proc/net/route"]).success().stdout;
        assert_eq!(
            default_gateways(&route, "host0"),
            [gateway],
            "{when}: host0's default route via {gateway} under networkd:\n{route}\n{}",
            st.stdout
        );
        // IPv6 may be off on this host (berth then sets IPv4 alone), but
        // never two defaults.
        let route6 = h.run(["exec", &m, "cat", "/proc/net/ipv6_route"]).success().stdout;
        let defaults6 = route6
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .filter(|f| f.len() == 10 && f[9] == "host0" && f[1] == "00" && f[0].bytes().all(|b| b == b'0'))
            .count();
        assert!(defaults6 <= 1, "{when}: host0 has {defaults6} IPv6 default routes:\n{route6}\n{}", st.stdout);
        assert!(
            st.stdout.contains("Network File: /run/systemd/network/10-berth-host0.network"),
            "{when}: networkd must manage host0 with berth's file: {st:?}"
        );
        assert!(st.stdout.contains("(configured)"), "{when}: networkd must have host0 configured: {st:?}");
        let r = h.run(["exec", &m, "networkctl", "list", "--no-pager", "--no-legend"]).success();
        let line = r.stdout.lines().find(|l| l.split_whitespace().nth(1) == Some("host0"));
        assert!(line.is_some_and(|l| l.contains("configured")), "{when}: networkctl list: {r:?}");
    };
    check("after boot");
    // A networkd that starts again finds berth's setup as its own file's.
    h.run(["exec", &m, "systemctl", "restart", "systemd-networkd"]).success();
    check("after restarting networkd");
    // The file is the machine's, in its /run: the image's /etc is as it was.
    let r = h.run(["exec", &m, "stat", "-c", "%a %U", "/run/systemd/network/10-berth-host0.network"]).success();
    assert_eq!(r.stdout.trim(), "644 root", "{r:?}");
    let r = h.run(["exec", &m, "ls", "-A", "/etc/systemd/network"]).success();
    assert_eq!(r.stdout.trim(), "", "{r:?}");
    h.run(["stop", &m]).success();
}
