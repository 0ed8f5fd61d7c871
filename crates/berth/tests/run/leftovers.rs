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
