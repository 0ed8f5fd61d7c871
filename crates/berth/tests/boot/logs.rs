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
