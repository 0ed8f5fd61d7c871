//! Nothing is left behind: background processes die with the command,
//! failures clean up as well as successes, and 20 containers started at
//! once all succeed and leave nothing. (Every `Ctx` run also checks
//! mounts, scratch dirs, cgroups and processes on its own.)

use std::time::Duration;

use crate::harness::container::{processes_with_argv, s, Ctx};

#[test]
fn background_process_dies_when_the_command_exits() {
    let c = Ctx::busybox();
    let o = c.sh(&[], "sleep 1000 & echo started=$!").success();
    assert!(o.field("started").is_some(), "{}", o.describe());
    assert!(o.elapsed < Duration::from_secs(10), "berth waited for the background process: {}", o.describe());
    let left = processes_with_argv(&["sleep", "1000"]);
    assert!(left.is_empty(), "`sleep 1000` still runs on the host: pids {left:?}");
}

#[test]
fn detached_daemon_dies_when_the_command_exits() {
    let c = Ctx::busybox();
    // setsid + double fork: the daemon is re-parented to the reaper.
    c.sh(&[], "setsid sh -c 'sleep 1001 & exit 0'; sleep 0.2; exit 4").status(4);
    let left = processes_with_argv(&["sleep", "1001"]);
    assert!(left.is_empty(), "`sleep 1001` still runs on the host: pids {left:?}");
}

#[test]
fn failed_runs_leave_nothing_behind() {
    let c = Ctx::busybox();
    let missing = c.berth.dir().join("missing");
    let bind = format!("{}:/m", s(&missing));
    let tree = c.dir("no-usr");
    let cases: Vec<Vec<&str>> = vec![
        vec![&c.image, "no-such-command"],
        vec![&c.image, "/bin/notexec"],
        vec!["--chdir", "/nowhere", &c.image, "true"],
        vec!["-u", "nobody-here", &c.image, "true"],
        vec!["--bind", &bind, &c.image, "true"],
        vec!["--volatile=yes", "-D", tree.to_str().unwrap(), "true"],
        vec!["--memory", "32M", "--pids-limit", "5", "--cpus", "0.1", &c.image, "/bin/sh", "-c", "exit 3"],
    ];
    for args in cases {
        let o = c.run(&args); // checks leftovers itself
        assert_ne!(o.code, Some(0), "{}", o.describe());
        assert!(o.code.is_some(), "berth crashed: {}", o.describe());
    }
    c.assert_no_scratch_dirs();
}

#[test]
fn twenty_containers_in_parallel_all_succeed_and_leave_nothing() {
    let c = Ctx::busybox();
    let outcomes: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..20)
            .map(|i| {
                let c = &c;
                scope.spawn(move || c.sh(&["--hostname", &format!("par-{i}")], "hostname"))
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("runner thread")).collect()
    });
    for (i, o) in outcomes.into_iter().enumerate() {
        assert_eq!(o.code, Some(0), "container {i} failed: {}", o.describe());
        assert_eq!(o.out().trim(), format!("par-{i}"), "{}", o.describe());
    }
    c.assert_no_scratch_dirs();
}

#[test]
fn leftover_checks_see_a_running_containers_processes_cgroups_and_scratch_dir() {
    // Positive control for the checks every run makes: while a container
    // runs, each of them must find something.
    let c = Ctx::busybox();
    let mut r = c.spawn(&[&c.image, "/bin/sh", "-c", "sleep 1002 & echo ready; wait"]);
    r.wait_for_output("ready", Duration::from_secs(10));
    // The forked sleep may not have exec'd yet when "ready" arrives (its
    // environ reads empty while it does): look again until it has.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let procs = crate::harness::container::processes_with_token(&r.token);
        if procs.len() >= 3 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "berth, its reaper, sh and sleep should carry the token: {procs:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while processes_with_argv(&["sleep", "1002"]).is_empty() {
        assert!(std::time::Instant::now() < deadline, "sleep 1002 not found on the host");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!r.cgroups().is_empty(), "no cgroup found for berth pid {}", r.pid);
    let scratch: Vec<String> = std::fs::read_dir(c.store().join("tmp"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("run-{}-", r.pid)))
        .collect();
    assert_eq!(scratch.len(), 1, "the run's scratch dir should exist while it runs");
    let (pid, token) = (r.pid, r.token.clone());
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.assert_no_leftovers(pid, &token, "probe")));
    assert!(caught.is_err(), "assert_no_leftovers must fail while the container still runs");
    r.signal(rustix::process::Signal::TERM);
    r.wait().status(143);
}

#[test]
fn orphans_are_reaped_by_the_containers_init() {
    let c = Ctx::busybox();
    let o = c
        .sh(
            &[],
            "for i in 1 2 3 4 5; do (sleep 0.1 &) ; done; sleep 0.6; \
             for f in /proc/[0-9]*/stat; do read -r line < $f && echo \"$line\"; done",
        )
        .success();
    let zombies: Vec<String> = o
        .lines()
        .into_iter()
        .filter(|l| l.rsplit_once(')').is_some_and(|(_, r)| r.trim_start().starts_with('Z')))
        .collect();
    assert!(zombies.is_empty(), "orphaned children must be reaped by PID 1: {zombies:?}\n{}", o.describe());
}

#[test]
fn ephemeral_image_run_leaves_the_store_as_it_was() {
    let c = Ctx::busybox();
    let before = c.berth.listing();
    c.sh(&[], "echo x > /root/x; mkdir -p /a/b/c").success();
    c.sh(&["-x", "--name", "not-kept"], "echo x > /root/x").success();
    assert!(!c.machine_exists("not-kept"), "-x --name must not keep a machine");
    c.sh(&[], "exit 7").status(7);
    c.run_image(&[], &["no-such-command"]).status(127);
    before.assert_unchanged(&c.berth.listing(), "ephemeral runs");
}

#[test]
fn container_dies_when_berth_is_killed_with_sigkill() {
    let c = Ctx::busybox();
    // As root (whose uid change into its user namespace clears the
    // parent-death signal), as a user, and split off (CAP_SYS_ADMIN).
    for opts in [&[][..], &["-u", "1000:1000"][..], &["--capability", "sys_admin"][..]] {
        dies_with_berth(&c, opts);
    }
}

fn dies_with_berth(c: &Ctx, opts: &[&str]) {
    let mut args: Vec<&str> = opts.to_vec();
    args.extend_from_slice(&[&c.image, "/bin/sh", "-c", "echo ready; sleep 1005"]);
    let mut r = c.spawn(&args);
    r.wait_for_output("ready", Duration::from_secs(10));
    let (pid, token, cgroups) = (r.pid, r.token.clone(), r.cgroups());
    r.kill_unchecked();
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    let mut survivors = crate::harness::container::processes_with_token(&token);
    while !survivors.is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        survivors = crate::harness::container::processes_with_token(&token);
    }
    // Clean up by hand whatever the outcome: processes, cgroups, scratch dir.
    let cleanup_deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        for (p, _) in crate::harness::container::processes_with_token(&token) {
            if let Some(p) = rustix::process::Pid::from_raw(p as i32) {
                let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
            }
        }
        // Until reaped, killed processes keep the cgroup busy.
        for d in &cgroups {
            let _ = std::fs::remove_dir(d);
        }
        if cgroups.iter().all(|d| !d.exists()) || std::time::Instant::now() > cleanup_deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let stuck: Vec<_> = cgroups.iter().filter(|d| d.exists()).collect();
    if let Ok(rd) = std::fs::read_dir(c.store().join("tmp")) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with(&format!("run-{pid}-")) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    assert!(stuck.is_empty(), "could not remove the cgroups of the killed run: {stuck:?}");
    assert!(
        survivors.is_empty(),
        "{opts:?}: after `kill -9` of berth (pid {pid}) its container keeps running (nothing ties the \
         container's PID 1 to berth's life, e.g. PR_SET_PDEATHSIG): {survivors:?}"
    );
}

#[test]
fn leftover_check_sees_a_stray_mount_in_the_test_dir() {
    // Positive control for the mount comparison.
    let c = Ctx::busybox();
    let d = c.dir("stray-mount");
    rustix::mount::mount("tmpfs", &d, "tmpfs", rustix::mount::MountFlags::empty(), None).expect("mount a tmpfs");
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.assert_no_leftovers(0, "none", "probe")));
    rustix::mount::unmount(&d, rustix::mount::UnmountFlags::DETACH).expect("unmount the tmpfs");
    let msg = caught.expect_err("a new mount in the test dir must be reported");
    let msg = msg.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("mount left on the host") && msg.contains("stray-mount"), "{msg}");
    c.assert_no_leftovers(0, "none", "after unmounting");
}
