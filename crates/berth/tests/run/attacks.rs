//! The hostile container: a static probe (`harness/probe.c`) inside
//! `berth run` tries to reach the host, as root and as an unprivileged
//! user, and every attempt must fail. Each test here failed on berth
//! before the isolation work: descriptors the caller had open, berth's own
//! pipes held by PID 1, a PID 1 that could be ptraced and showed the
//! caller's environment and paths, the caller's terminal open to TIOCSTI,
//! io_uring, image-shipped and mknod'ed device nodes, a `--bind-ro` with a
//! writable mount below it, and `exec` that handed back dropped
//! capabilities.

use super::{cap_mask, kill_and_remove};
use crate::harness::container::{status_field, Ctx};
use crate::harness::probe::{assert_blocked, verdict};
use std::process::Command;
use std::time::{Duration, Instant};

const SECRET: &str = "BERTH_TEST_SECRET=hunter2-caller-token";

/// `berth run OPTS IMAGE /probe CHECKS…` with SECRET in berth's environment.
fn probe(c: &Ctx, opts: &[&str], checks: &[&str]) -> String {
    let (k, v) = SECRET.split_once('=').expect("secret");
    probe_env(c, &[(k, v)], opts, checks)
}

/// `berth run OPTS IMAGE /probe CHECKS…` with `env` in berth's environment.
fn probe_env(c: &Ctx, env: &[(&str, &str)], opts: &[&str], checks: &[&str]) -> String {
    let mut args: Vec<&str> = opts.to_vec();
    args.push(&c.image);
    args.push("/probe");
    args.extend_from_slice(checks);
    let (mut cmd, token) = c.command(&args);
    cmd.envs(env.iter().copied());
    c.spawn_command(cmd, token, format!("berth run {}", args.join(" ")), false).wait().success().out()
}

/// `cmd` run by bash after `prelude` (which opens descriptors or sets
/// variables), with `exec`: the berth process keeps bash's pid and fds.
fn under_bash(prelude: &str, cmd: &Command) -> Command {
    let mut wrapped = Command::new("bash");
    wrapped.arg("-c").arg(format!("{prelude}; exec \"$@\"")).arg("bash").arg(cmd.get_program()).args(cmd.get_args());
    wrapped
}

const USERS: &[(&str, &[&str])] = &[("root", &[]), ("uid 1000", &["-u", "1000:1000"])];

#[test]
fn descriptors_the_caller_had_open_do_not_reach_the_container() {
    let c = Ctx::probe();
    for (who, opts) in USERS {
        let mut args: Vec<&str> = opts.to_vec();
        args.extend_from_slice(&[&c.image, "/probe", "fds"]);
        let (cmd, token) = c.command(&args);
        // The caller holds a directory fd on the host root (9) and a file (8).
        let wrapped = under_bash("exec 9</ 8</etc/hostname", &cmd);
        let out =
            c.spawn_command(wrapped, token, format!("berth run {}", args.join(" ")), false).wait().success().out();
        assert_eq!(verdict(&out, "fds"), "", "{who}: the command must hold only 0, 1 and 2:\n{out}");
    }
}

#[test]
fn pid_1_holds_no_descriptor_of_the_caller() {
    let c = Ctx::probe();
    let (cmd, token) = c.command(&[&c.image, "/probe", "sleep:30"]);
    let wrapped = under_bash("exec 9</", &cmd);
    let run = c.spawn_command(wrapped, token.clone(), "berth run IMAGE /probe sleep:30".into(), false);
    let deadline = Instant::now() + Duration::from_secs(20);
    let probe_pid = loop {
        let procs = crate::harness::container::processes_with_token(&token);
        if let Some((pid, _)) = procs.iter().find(|(_, cmd)| cmd.starts_with("/probe")) {
            break *pid;
        }
        assert!(Instant::now() < deadline, "the probe did not start");
        std::thread::sleep(Duration::from_millis(20));
    };
    let st = std::fs::read_to_string(format!("/proc/{probe_pid}/status")).expect("probe status");
    let reaper: u32 = status_field(&st, "PPid").and_then(|p| p.parse().ok()).expect("PPid");
    let clean = |f: &String| {
        let (n, link) = f.split_once('→').expect("fd entry");
        let n: u32 = n.parse().expect("fd number");
        n <= 2 && link == "/dev/null" || link.contains("signalfd")
    };
    // PID 1 lets go of the caller's stdio just after the command starts
    // (it is not dumpable meanwhile): wait for it to settle.
    let deadline = Instant::now() + Duration::from_secs(10);
    let fds = loop {
        let mut fds = Vec::new();
        for e in std::fs::read_dir(format!("/proc/{reaper}/fd")).expect("reaper fds").flatten() {
            let link = std::fs::read_link(e.path()).map(|l| l.display().to_string()).unwrap_or_default();
            fds.push(format!("{}→{link}", e.file_name().to_string_lossy()));
        }
        if fds.iter().all(clean) || Instant::now() > deadline {
            break fds;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    run.kill_unchecked();
    for f in &fds {
        assert!(
            clean(f),
            "PID 1 (host pid {reaper}) holds {f}; all it may hold is /dev/null on 0-2 and its signalfd: {fds:?}"
        );
    }
}

#[test]
fn run_detached_returns_as_soon_as_the_command_runs() {
    let c = Ctx::probe();
    let name = format!("det-{}", crate::harness::berth::unique());
    let t = Instant::now();
    c.berth.run(["run", "-d", "--name", &name, &c.image, "/probe", "sleep:60"]).success();
    let took = t.elapsed();
    kill_and_remove(&c, &name);
    // The command sleeps a minute; berth must not wait for it.
    assert!(took < Duration::from_secs(30), "run -d took {took:?}: something in the container held its pipe");
}

#[test]
fn pid_1_cannot_be_ptraced_or_read_and_shows_nothing_of_the_host() {
    let c = Ctx::probe();
    for (who, opts) in USERS {
        let out = probe(
            &c,
            opts,
            &[
                "read:/proc/1/environ",
                "read:/proc/1/cmdline",
                "open-rw:/proc/1/mem",
                "ptrace1",
                "read:/proc/1/status",
                "read:/proc/self/status",
            ],
        );
        assert!(!out.contains("hunter2"), "{who}: the caller's environment is visible inside:\n{out}");
        assert_blocked(&out, "open-rw:/proc/1/mem", &format!("{who}: writing PID 1's memory"));
        assert_blocked(&out, "ptrace1", &format!("{who}: ptrace of PID 1"));
        let environ = verdict(&out, "read:/proc/1/environ");
        assert!(
            environ.starts_with("blocked:") || environ.trim_start_matches("ok:").chars().all(|c| c == '|'),
            "{who}: /proc/1/environ must be unreadable or empty: {environ:?}"
        );
        let cmdline = verdict(&out, "read:/proc/1/cmdline");
        assert_eq!(
            cmdline.trim_start_matches("ok:").trim_end_matches('|'),
            "berth-init",
            "{who}: /proc/1/cmdline must name berth-init and no host path"
        );
        let status = verdict(&out, "read:/proc/1/status").replace('|', "\n");
        let own = verdict(&out, "read:/proc/self/status").replace('|', "\n");
        for key in ["CapPrm", "CapEff", "CapBnd"] {
            let (init, cmd) = (cap_mask(&status, key), cap_mask(&own, key));
            assert_eq!(init & !cmd, 0, "{who}: PID 1's {key} {init:#x} holds more than the command's {cmd:#x}");
        }
        for key in ["Uid", "Gid"] {
            assert_eq!(status_field(&status, key), status_field(&own, key), "{who}: PID 1 runs as the command's user");
        }
        assert_eq!(status_field(&status, "NoNewPrivs").as_deref(), Some("1"), "{who}: PID 1 no_new_privs");
        assert_eq!(status_field(&status, "Seccomp").as_deref(), Some("2"), "{who}: PID 1 seccomp");
    }
}

#[test]
fn the_callers_terminal_never_reaches_the_container_and_tiocsti_is_refused() {
    let c = Ctx::probe();
    // `script` gives berth a terminal as stdin, stdout and stderr; the
    // caller's terminal device is printed before berth starts.
    let (cmd, token) = c.command(&[&c.image, "/probe", "tiocsti:0", "tiocsti:1", "tiocsti-tty", "ttydev"]);
    let berth: Vec<String> = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| crate::harness::tmux::quote(&a.to_string_lossy()))
        .collect();
    let script = format!("echo caller=$(stat -L -c %t:%T /dev/stdin); {}", berth.join(" "));
    let mut wrapped = Command::new("script");
    wrapped.args(["-q", "-e", "-c", &script, "/dev/null"]);
    let out = c.spawn_command(wrapped, token, "berth run (under script) IMAGE /probe tiocsti".into(), true).wait();
    let text = out.out().replace('\r', "");
    for check in ["tiocsti:0", "tiocsti:1", "tiocsti-tty"] {
        assert_blocked(&text, check, "pushing input into the terminal");
    }
    let caller = verdict(&text, "caller");
    let devs = verdict(&text, "ttydev");
    assert!(!caller.is_empty() && caller != "0:0", "the caller has a terminal: {text}");
    for d in devs.split(',') {
        assert_ne!(d, caller, "the container holds the caller's terminal ({caller}) as one of 0-2: {text}");
    }
}

#[test]
fn io_uring_keyctl_and_bpf_are_refused() {
    let c = Ctx::probe();
    for (who, opts) in USERS {
        let out = probe(&c, opts, &["io_uring", "keyctl", "bpf"]);
        for check in ["io_uring", "keyctl", "bpf"] {
            assert_blocked(&out, check, who);
        }
    }
}

#[test]
fn device_nodes_from_the_image_or_mknod_open_nothing() {
    let c = Ctx::probe();
    for (who, opts) in [("root", &[][..]), ("nobody without caps", &["-u", "65534", "--drop-capability", "all"][..])] {
        let out = probe(&c, opts, &["open-rw:/srv/loopctl", "mknod-open:/dev/loopctl2", "mknod-open:/srv/loopctl3"]);
        assert_blocked(&out, "open-rw:/srv/loopctl", &format!("{who}: the image's c 10 237"));
        assert_blocked(&out, "mknod-open:/dev/loopctl2", &format!("{who}: a node made in /dev"));
        assert_blocked(&out, "mknod-open:/srv/loopctl3", &format!("{who}: a node made on the root"));
    }
    // The nodes berth provides still work.
    let out = probe(&c, &[], &["open-rw:/dev/null", "open-rw:/dev/zero", "open-rw:/dev/urandom"]);
    for check in ["open-rw:/dev/null", "open-rw:/dev/zero", "open-rw:/dev/urandom"] {
        assert_eq!(verdict(&out, check), "ok", "{check} must open:\n{out}");
    }
}

#[test]
fn bind_ro_is_read_only_all_the_way_down() {
    // The mount below the source exists before the store does, so the
    // leftover check counts it as the host's own.
    let src = tempfile::tempdir().expect("temp dir");
    let src = src.path().to_path_buf();
    let sub = src.join("sub");
    std::fs::create_dir_all(&sub).expect("sub");
    let st = Command::new("mount").args(["-t", "tmpfs", "tmpfs"]).arg(&sub).status().expect("mount");
    assert!(st.success(), "mounting a tmpfs below the bind source");
    let c = Ctx::probe();
    let bind = format!("{}:/mnt/ro", src.display());
    let out = probe(&c, &["--bind-ro", &bind], &["create:/mnt/ro/top", "create:/mnt/ro/sub/below"]);
    let _ = Command::new("umount").arg(&sub).status();
    assert_blocked(&out, "create:/mnt/ro/top", "writing the top of a --bind-ro");
    assert_blocked(&out, "create:/mnt/ro/sub/below", "writing a mount below a --bind-ro");
    assert!(!sub.join("below").exists(), "the write reached the host");
}

#[test]
fn exec_keeps_the_machines_capabilities() {
    let c = Ctx::probe();
    let name = format!("caps-{}", crate::harness::berth::unique());
    // A booted machine has CAP_SYS_ADMIN by default; one started without
    // it must not get it back through exec. (A command machine lacks it
    // anyway: exec must not hand out the boot set either.)
    c.berth
        .run(["run", "-d", "--name", &name, "--drop-capability", "sys_admin", &c.image, "/probe", "sleep:120"])
        .success();
    let st = c.berth.run(["exec", &name, "cat", "/proc/self/status"]);
    kill_and_remove(&c, &name);
    let st = st.success().stdout;
    for key in ["CapBnd", "CapEff"] {
        assert_eq!(cap_mask(&st, key) & (1 << 21), 0, "exec got CAP_SYS_ADMIN back in {key}:\n{st}");
    }
    assert_eq!(status_field(&st, "Seccomp").as_deref(), Some("2"), "exec runs under the filter");
}

#[test]
fn no_sysctl_write_fresh_proc_remount_or_new_namespace_by_default() {
    let c = Ctx::probe();
    let checks = [
        "write:/proc/sys/kernel/core_pattern",
        "remount-rw:/proc/sys",
        "mount-proc:/tmp/proc2",
        "mount-sysfs:/tmp/sys2",
        "unshare-user",
        "personality",
        "packet",
    ];
    let opts: [(&str, &[&str]); 3] = [
        ("root, default capabilities", &[]),
        ("root without CAP_SYS_ADMIN", &["--drop-capability", "sys_admin"]),
        ("uid 1000", &["-u", "1000:1000"]),
    ];
    for (who, opts) in opts {
        let out = probe(&c, opts, &checks);
        for check in checks {
            assert_blocked(&out, check, who);
        }
    }
    // Given CAP_SYS_ADMIN, the mounts are still read-only to a plain write
    // (it could remount them: that is what the warning says).
    let out = probe(
        &c,
        &["--capability", "sys_admin"],
        &["write:/proc/sys/kernel/core_pattern", "write:/sys/kernel/uevent_helper"],
    );
    assert_blocked(&out, "write:/proc/sys/kernel/core_pattern", "root");
    assert_blocked(&out, "write:/sys/kernel/uevent_helper", "root");
}

#[test]
fn the_device_cgroup_holds_where_nodev_does_not() {
    let c = Ctx::probe();
    // Root given CAP_SYS_ADMIN and CAP_MKNOD can mount a tmpfs of its own,
    // where nodes open: only the device allow-list stops c 10:237 there.
    // Without a user namespace (in one, the kernel refuses the mknod).
    let out = probe(&c, &["--private-users=no", "--capability", "sys_admin,mknod"], &["tmpfs-mknod:/tmp/devs"]);
    let v = verdict(&out, "tmpfs-mknod:/tmp/devs");
    assert!(v == "blocked:EPERM", "a node on the container's own tmpfs must not open, it said {v:?}\n{out}");
    let out = probe(&c, &["--capability", "sys_admin,mknod"], &["tmpfs-mknod:/tmp/devs"]);
    let v = verdict(&out, "tmpfs-mknod:/tmp/devs");
    assert!(v.starts_with("blocked:") || v.starts_with("mknod-refused:"), "in a user namespace: {v:?}\n{out}");
}

#[test]
fn the_v1_devices_controller_holds_the_allow_list_alone() {
    // Hosts without a unified hierarchy enforce the allow-list with the v1
    // devices controller; BERTH_DEVICES_CGROUP=v1 takes that path here
    // (under a slice no device program is attached to).
    let c = Ctx::probe();
    let run = |opts: &[&str], checks: &[&str]| probe_env(&c, &[("BERTH_DEVICES_CGROUP", "v1")], opts, checks);
    let out = run(
        &["--private-users=no", "--capability", "sys_admin,mknod"],
        &["tmpfs-mknod:/tmp/devs", "open-rw:/dev/null"],
    );
    assert_eq!(verdict(&out, "tmpfs-mknod:/tmp/devs"), "blocked:EPERM", "a node of its own must not open:\n{out}");
    assert_eq!(verdict(&out, "open-rw:/dev/null"), "ok", "berth's own nodes open:\n{out}");
    let out = run(&["--device", "/dev/loop-control"], &["open-rw:/dev/loop-control"]);
    assert_eq!(verdict(&out, "open-rw:/dev/loop-control"), "ok", "--device adds the node:\n{out}");
}

#[test]
fn device_adds_one_node_with_the_access_asked() {
    let c = Ctx::probe();
    let out = probe(&c, &[], &["open-r:/dev/loop-control"]);
    assert_blocked(&out, "open-r:/dev/loop-control", "without --device");
    let out = probe(&c, &["--device", "/dev/loop-control"], &["open-rw:/dev/loop-control"]);
    assert_eq!(verdict(&out, "open-rw:/dev/loop-control"), "ok", "--device gives rw:\n{out}");
    let out = probe(
        &c,
        &["--device", "/dev/loop-control:/dev/lc:r"],
        &["open-r:/dev/lc", "open-rw:/dev/lc", "open-r:/dev/loop-control"],
    );
    assert_eq!(verdict(&out, "open-r:/dev/lc"), "ok", "read access given:\n{out}");
    assert_blocked(&out, "open-rw:/dev/lc", "write access not given");
    assert_blocked(&out, "open-r:/dev/loop-control", "only at the path asked");
    c.run_image(&["--device", "/etc/hostname"], &["/bin/true"])
        .failure()
        .stderr_mentions(&["/etc/hostname", "not a device node"]);
}

/// Checks that must fail the same way in every way of entering a container.
const EVERY_MODE: &[&str] = &[
    "fds",
    "remount-rw:/proc/sys",
    "mount-proc:/tmp/p2",
    "packet",
    "open-rw:/srv/loopctl",
    "tmpfs-mknod:/tmp/devs",
    "tiocsti:0",
    "io_uring",
    "keyctl",
    "read:/proc/1/cmdline",
];

/// Runs `berth ARGS… /probe EVERY_MODE…` holding a directory fd on the
/// host root as fd 9 and SECRET in its environment; returns stdout.
fn probe_with_fd(c: &Ctx, args: &[&str]) -> String {
    let mut full: Vec<&str> = args.to_vec();
    full.push("/probe");
    full.extend_from_slice(EVERY_MODE);
    let cmd = c.berth.command(&full);
    let mut wrapped = under_bash("exec 9</", &cmd);
    let (k, v) = SECRET.split_once('=').expect("secret");
    wrapped.env(k, v).stdin(std::process::Stdio::null());
    let run = crate::harness::berth::run_command(wrapped);
    assert!(run.status.success(), "berth {}: {}\n{}", full.join(" "), run.stdout, run.stderr);
    run.stdout
}

fn assert_every_mode_check_fails(out: &str, mode: &str) {
    assert_eq!(verdict(out, "fds"), "", "{mode}: descriptors reached the container:\n{out}");
    for check in [
        "open-rw:/srv/loopctl",
        "tiocsti:0",
        "io_uring",
        "keyctl",
        "remount-rw:/proc/sys",
        "mount-proc:/tmp/p2",
        "packet",
    ] {
        assert_blocked(out, check, mode);
    }
    let v = verdict(out, "tmpfs-mknod:/tmp/devs");
    assert!(v.contains("EPERM") || v.contains("EACCES"), "{mode}: a node on a tmpfs of its own opened: {v}");
    let cmdline = verdict(out, "read:/proc/1/cmdline");
    assert!(!cmdline.contains('/') && !out.contains("hunter2"), "{mode}: PID 1 shows host paths or tokens:\n{out}");
}

#[test]
fn every_way_in_holds_the_same_line() {
    let c = Ctx::probe();
    let out = probe_with_fd(&c, &["run", &c.image]);
    assert_every_mode_check_fails(&out, "run IMAGE");

    let machine = format!("m-{}", crate::harness::berth::unique());
    c.berth.run(["create", &c.image, &machine]).success();
    let out = probe_with_fd(&c, &["run", "-M", &machine]);
    assert_every_mode_check_fails(&out, "run -M");

    let tree = c.busybox_tree();
    std::fs::copy(crate::harness::probe::binary(), tree.join("probe")).expect("probe into the tree");
    let st = Command::new("mknod").arg(tree.join("srv/loopctl")).args(["c", "10", "237"]).status().expect("mknod");
    assert!(st.success(), "mknod in the tree");
    let tree = tree.display().to_string();
    let out = probe_with_fd(&c, &["run", "-D", &tree]);
    assert_every_mode_check_fails(&out, "run -D");
    let out = probe_with_fd(&c, &["run", "-x", "-D", &tree]);
    assert_every_mode_check_fails(&out, "run -x -D");

    let running = format!("r-{}", crate::harness::berth::unique());
    c.berth.run(["run", "-d", "--name", &running, &c.image, "/probe", "sleep:300"]).success();
    let exec = probe_with_fd(&c, &["exec", &running]);
    let shell = probe_with_fd(&c, &["shell", &running]);
    kill_and_remove(&c, &running);
    assert_every_mode_check_fails(&exec, "exec");
    assert_every_mode_check_fails(&shell, "shell");
}

#[test]
fn system_call_filter_adds_and_removes_and_exec_keeps_it() {
    let c = Ctx::probe();
    let out =
        probe(&c, &["--capability", "sys_admin", "--system-call-filter", "~@mount"], &["mount-proc:/tmp/p", "keyctl"]);
    assert_blocked(&out, "mount-proc:/tmp/p", "~@mount for root with CAP_SYS_ADMIN");
    assert_blocked(&out, "keyctl", "keyctl stays refused");
    let out = probe(&c, &["--system-call-filter", "keyctl"], &["keyctl", "io_uring"]);
    assert_eq!(verdict(&out, "keyctl"), "ok", "keyctl added:\n{out}");
    assert_blocked(&out, "io_uring", "io_uring stays refused");
    c.run_image(&["--system-call-filter", "@nonsense"], &["/bin/true"]).failure().stderr_mentions(&["@nonsense"]);

    let name = format!("scf-{}", crate::harness::berth::unique());
    c.berth
        .run([
            "run",
            "-d",
            "--name",
            &name,
            "--capability",
            "sys_admin",
            "--system-call-filter",
            "~@mount",
            &c.image,
            "/probe",
            "sleep:120",
        ])
        .success();
    let exec = c.berth.run(["exec", &name, "/probe", "mount-proc:/tmp/p"]);
    kill_and_remove(&c, &name);
    assert_blocked(&exec.success().stdout, "mount-proc:/tmp/p", "exec keeps the machine's ~@mount");
}

#[test]
fn socket_activation_descriptors_are_the_only_ones_handed_on() {
    let c = Ctx::probe();
    let args = [&c.image, "/probe", "fds", "env:LISTEN_FDS", "env:LISTEN_PID"];
    let (cmd, token) = c.command(&args);
    // fd 3 is handed on deliberately (LISTEN_PID is berth's own pid once
    // bash execs it); fd 9 is not.
    let wrapped = under_bash("exec 3</etc/hostname 9</; export LISTEN_FDS=1 LISTEN_PID=$$", &cmd);
    let out = c.spawn_command(wrapped, token, "berth run IMAGE /probe fds (socket activation)".into(), false).wait();
    let out = out.success().out();
    let fds = verdict(&out, "fds");
    assert!(fds.starts_with("3(") && !fds.contains(','), "only fd 3 must reach the command: {fds:?}\n{out}");
    assert_eq!(verdict(&out, "env:LISTEN_FDS"), "1");
    assert_eq!(verdict(&out, "env:LISTEN_PID"), "2", "the command is PID 2 under berth's init");
}

#[test]
fn preserve_fds_hands_on_exactly_the_descriptors_asked() {
    let c = Ctx::probe();
    let args = ["--preserve-fds", "2", &c.image, "/probe", "fds", "env:LISTEN_FDS"];
    let (cmd, token) = c.command(&args);
    let wrapped = under_bash("exec 3</etc/hostname 4</etc/hostname 9</", &cmd);
    let out = c.spawn_command(wrapped, token, "berth run --preserve-fds 2".into(), false).wait().success().out();
    let fds = verdict(&out, "fds");
    assert!(fds.starts_with("3(") && fds.contains(",4(") && !fds.contains("9("), "fds 3 and 4 only: {fds:?}");
    assert_eq!(verdict(&out, "env:LISTEN_FDS"), "-", "no socket activation was asked for");
    c.run_image(&["--preserve-fds", "5"], &["/bin/true"])
        .failure()
        .stderr_mentions(&["--preserve-fds", "must be open"]);
}
