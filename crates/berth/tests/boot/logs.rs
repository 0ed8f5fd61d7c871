//! A detached machine that prints without end holds at most two console
//! logs' worth of `/run`: the log rotates at 8 MiB keeping one previous
//! file, and `berth logs` shows both, ending with the newest output.

use std::fs;
use std::time::{Duration, Instant};

use super::{machine_name, Host};

const LIMIT: u64 = 8 << 20;

#[test]
fn a_chatty_machine_s_console_log_rotates_and_logs_ends_with_its_last_words() {
    let m = machine_name("lg");
    let h = Host::busybox(&[&m]);
    let script = "yes 0123456789abcdef | head -c 20000000; echo FINAL-MARKER; exec sleep 1000";
    h.run(["run", "-d", "-M", &m, "sh", "-c", script]).success();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !h.console(&m).contains("FINAL-MARKER") {
        assert!(Instant::now() < deadline, "FINAL-MARKER never reached {m}'s console log");
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = h.state_dir.join(&m).join("console.log");
    let prev = h.state_dir.join(&m).join("console.log.1");
    let (now, before) = (fs::metadata(&log).unwrap().len(), fs::metadata(&prev).map(|m| m.len()).unwrap_or(0));
    assert!(now <= LIMIT, "console.log grew to {now} bytes");
    assert!(before > 0 && before <= LIMIT, "console.log.1 is {before} bytes");
    let r = h.run(["logs", &m]).success();
    assert!(r.stdout.ends_with("FINAL-MARKER\n"), "`berth logs` must end with the newest output");
    assert_eq!(r.stdout.len() as u64, now + before, "`berth logs` shows the previous log, then the current one");
    h.run(["terminate", &m]).success();
}

/// Processes running the berth binary in process group `pgrp` whose
/// command line names `machine` (other tests run berth in this group too).
fn berth_processes_in_group(pgrp: i32, machine: &str) -> Vec<(i32, String)> {
    let berth = fs::canonicalize(env!("CARGO_BIN_EXE_berth")).unwrap();
    let mut found = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else { continue };
        let group: i32 = rest.split_whitespace().nth(2).and_then(|g| g.parse().ok()).unwrap_or(0);
        let exe = fs::read_link(format!("/proc/{pid}/exe")).ok();
        let cmd = super::cmdline(pid);
        if group == pgrp && exe.as_deref() == Some(berth.as_path()) && cmd.contains(machine) {
            found.push((pid, cmd));
        }
    }
    found
}

#[test]
fn a_detached_machine_leaves_nothing_in_the_caller_s_process_group() {
    // A Ctrl-C in the shell that ran `berth run -d` goes to its process
    // group: neither the supervisor nor the console logger may be in it.
    let m = machine_name("pg");
    let h = Host::busybox(&[&m]);
    h.run(["run", "-d", "-M", &m, "sh", "-c", "while :; do echo tick; sleep 0.2; done"]).success();
    let ours = rustix::process::getpgrp().as_raw_nonzero().get();
    let left = berth_processes_in_group(ours, &m);
    h.run(["terminate", &m]).success();
    assert!(left.is_empty(), "berth processes left in the caller's process group: {left:?}");
}
