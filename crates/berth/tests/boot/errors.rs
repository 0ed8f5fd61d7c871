//! Errors of the running-machine verbs (one line, non-zero, naming the
//! machine), one instance per machine, and stale state: a state file whose
//! leader is gone or whose pid now belongs to another process, and a
//! supervisor killed with SIGKILL.

use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::Signal;

use super::{berth_cgroups_named, machine_name, proc_start_time, signal, Host, Mounts};

#[test]
fn starting_a_running_machine_and_stopping_a_stopped_one_fail_in_one_line() {
    let m = machine_name("er");
    let h = Host::busybox(&[&m]);
    // Four starts at once: exactly one machine runs.
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let mut c = h.command(["start", &m]);
            c.stdout(Stdio::piped()).stderr(Stdio::piped());
            c.spawn().expect("spawn berth start")
        })
        .collect();
    let runs: Vec<_> = starts
        .into_iter()
        .map(|mut c| crate::harness::berth::wait_with_timeout(&mut c, format!("berth start {m}")))
        .collect();
    let ok = runs.iter().filter(|r| r.status.success()).count();
    assert_eq!(ok, 1, "four concurrent `berth start {m}`: exactly one may succeed: {runs:#?}");
    for r in runs.into_iter().filter(|r| !r.status.success()) {
        r.failure().mentions_any(&[&m]);
    }
    assert_eq!(h.ps_names(), vec![m.clone()], "one instance of {m}");
    let st = h.state(&m).unwrap();
    let leader = st["leader"].as_i64().unwrap() as i32;
    let init_count = super::cgroup_pids(&super::machine_cgroups(leader)[0])
        .into_iter()
        .filter(|p| super::cmdline(*p) == "init")
        .count();
    assert_eq!(init_count, 1, "one init in {m}'s cgroup");

    // Starting it again, any way, is refused in one line.
    h.run(["start", &m]).failure().mentions_any(&[&m]);
    h.run(["run", "-b", "-d", "-M", &m]).failure().mentions_any(&[&m]);
    h.run(["run", "-M", &m, "/bin/true"]).failure().mentions_any(&[&m]);
    assert_eq!(
        h.state(&m).unwrap()["leader"],
        st["leader"],
        "a refused start must not touch the running machine's state"
    );

    h.run(["stop", &m]).success();
    // Stopped: every verb that needs it running says so in one line.
    for verb in
        [&["stop", &m][..], &["kill", &m], &["terminate", &m], &["status", &m], &["exec", &m, "true"], &["shell", &m]]
    {
        h.run(verb).failure().mentions_any(&[&m]);
    }
    // …and it starts again.
    h.start(&m);
    h.run(["terminate", &m]).success();
}

#[test]
fn exec_and_shell_into_a_missing_machine_fail_in_one_line() {
    let h = Host::new();
    let ghost = machine_name("ghost");
    for verb in [
        &["exec", &ghost, "true"][..],
        &["exec", "-t", &ghost, "true"],
        &["shell", &ghost],
        &["shell", &ghost, "true"],
        &["status", &ghost],
        &["stop", &ghost],
        &["kill", &ghost],
        &["terminate", &ghost],
        &["logs", &ghost],
        &["start", &ghost],
    ] {
        h.run(verb).failure().mentions_any(&[&ghost]);
    }
    assert!(!h.state_dir.join(&ghost).exists(), "a failed verb must not make a state dir for {ghost}");
}

#[test]
fn the_error_for_a_missing_machine_does_not_advise_starting_it() {
    // "not running: start it with `berth start X`" is wrong advice for a
    // machine that does not exist: that start fails with "not found".
    let h = Host::new();
    let ghost = machine_name("ghost");
    let exec = h.run(["exec", &ghost, "true"]).failure();
    let start = h.run(["start", &ghost]).failure();
    assert!(
        !exec.stderr.contains("berth start"),
        "`berth exec {ghost} true` says {:?}, but `berth start {ghost}` says {:?}",
        exec.stderr.trim(),
        start.stderr.trim()
    );
}

/// A state.json for `name` as berth writes it, with the given leader.
fn write_state(h: &Host, name: &str, leader: i32, leader_start: u64) {
    let dir = h.state_dir.join(name);
    fs::create_dir_all(&dir).unwrap();
    let st = serde_json::json!({
        "name": name,
        "leader": leader,
        "leader_start": leader_start,
        "supervisor": leader,
        "boot": true,
        "started": 1_700_000_000u64,
        "root": format!("machine {name}"),
    });
    fs::write(dir.join("state.json"), serde_json::to_vec_pretty(&st).unwrap()).unwrap();
}

/// A pid that is certainly not running: a child that has exited and been reaped.
fn dead_pid() -> i32 {
    let mut c = Command::new("true").spawn().expect("spawn true");
    let pid = c.id() as i32;
    c.wait().unwrap();
    pid
}

#[test]
fn stale_state_with_a_dead_leader_is_detected_and_cleaned() {
    let m = machine_name("st");
    let h = Host::busybox(&[&m]);
    let state = h.state_dir.join(&m).join("state.json");

    write_state(&h, &m, dead_pid(), 12345);
    assert!(!h.ps_names().contains(&m), "`ps` must not list {m}, whose leader is gone");
    assert!(!state.exists(), "`ps` must clean up the stale {}", state.display());

    write_state(&h, &m, dead_pid(), 12345);
    h.run(["exec", &m, "true"]).failure().mentions_any(&["not running"]);
    assert!(!state.exists(), "`exec` must clean up the stale {}", state.display());

    write_state(&h, &m, dead_pid(), 12345);
    h.run(["stop", &m]).failure().mentions_any(&["not running"]);
    assert!(!state.exists(), "`stop` must clean up the stale {}", state.display());

    // Stale state does not block a start.
    write_state(&h, &m, dead_pid(), 12345);
    let st = h.start(&m);
    assert_ne!(st["leader_start"], 12345, "start must write a fresh state");
    assert_eq!(h.ps_names(), vec![m.clone()]);
    h.run(["stop", &m]).success();
}

#[test]
fn stale_state_whose_pid_was_reused_is_detected_and_the_process_left_alone() {
    let m = machine_name("ru");
    let h = Host::busybox(&[&m]);
    let state = h.state_dir.join(&m).join("state.json");
    // A live process that is not the machine: same pid, other start time.
    let mut other = Command::new("sleep").arg("1000").spawn().expect("spawn sleep");
    let pid = other.id() as i32;
    let start = proc_start_time(pid).expect("sleep's start time");

    for verb in [
        &["ps", "--json"][..],
        &["exec", &m, "true"],
        &["stop", &m],
        &["kill", &m],
        &["terminate", &m],
        &["status", &m],
    ] {
        write_state(&h, &m, pid, start + 7);
        let r = h.run(verb);
        if verb[0] == "ps" {
            assert!(r.status.success(), "{r:?}");
            assert!(!r.stdout.contains(&m), "`ps` must not list {m}, whose pid now belongs to `sleep`: {}", r.stdout);
        } else {
            r.failure().mentions_any(&["not running"]);
        }
        assert!(!state.exists(), "`berth {}` must clean up the stale state", verb.join(" "));
        assert_eq!(
            proc_start_time(pid),
            Some(start),
            "`berth {}` signalled pid {pid}, which is not the machine's leader any more",
            verb.join(" ")
        );
        assert!(other.try_wait().unwrap().is_none(), "`berth {}` killed the unrelated `sleep`", verb.join(" "));
    }
    let _ = other.kill();
    let _ = other.wait();
}

#[test]
fn a_sigkilled_supervisor_leaves_no_cgroup_once_the_machine_runs_again() {
    // The supervisor can die hard (OOM killer, kill -9). What it would have
    // cleaned up must not stay forever: at the latest when the machine is
    // started again, the old boot's cgroup tree (with the sub-cgroups
    // systemd made in it) must be gone.
    let m = machine_name("sk");
    let h = Host::systemd(&[&m]);
    let mounts = Mounts::now(h.berth.dir());
    h.start(&m);
    h.wait_running(&m);
    let first = h.snapshot(&m);
    assert!(!first.cgroups.is_empty(), "{m} runs in no berth cgroup: {first:?}");
    signal(first.supervisor, Signal::KILL);

    // The machine may end with its supervisor or keep running; if it runs
    // on, `berth stop` must still stop it.
    let leader_start = proc_start_time(first.leader).unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while proc_start_time(first.leader) == Some(leader_start) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if proc_start_time(first.leader) == Some(leader_start) {
        h.run(["stop", &m]).success();
    }
    assert!(!h.ps_names().contains(&m), "`ps` must not list {m} once its leader is gone");
    assert!(h.state(&m).is_none(), "`ps` must clean up {m}'s stale state");
    let left_after_ps = berth_cgroups_named(&m);

    h.start(&m);
    h.wait_running(&m);
    let again = h.snapshot(&m);
    h.run(["stop", &m]).success();
    let still: Vec<_> = left_after_ps.iter().filter(|d| d.exists()).cloned().collect();
    // Don't leave the leak on the host after reporting it.
    for d in &still {
        remove_cgroup_tree(d);
    }
    assert!(
        still.is_empty(),
        "the cgroup of {m}'s first boot (its supervisor was SIGKILLed) is still there after `berth ps`, `berth start \
         {m}` and `berth stop {m}`: {still:?}"
    );
    h.assert_gone(&again, &mounts, "stop after the restart");
    h.assert_gone(&first, &mounts, "a SIGKILLed supervisor, then ps, start, stop");
}

/// rmdir a cgroup and its children, deepest first (they must be empty of processes).
fn remove_cgroup_tree(d: &std::path::Path) {
    if let Ok(rd) = fs::read_dir(d) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    let _ = fs::remove_dir(d);
}
