//! Signals sent to the berth process reach the container's command.

use std::time::Duration;

use rustix::process::Signal;

use crate::harness::container::Ctx;

const TRAP: &str = "trap 'echo got-SIG; exit CODE' SIG; echo ready; while :; do sleep 0.1; done";

fn trapped(sig: Signal, name: &str, code: i32) {
    let c = Ctx::busybox();
    let script = TRAP.replace("SIG", name).replace("CODE", &code.to_string());
    let mut r = c.spawn(&[&c.image, "/bin/sh", "-c", &script]);
    r.wait_for_output("ready", Duration::from_secs(10));
    r.signal(sig);
    let o = r.wait().status(code);
    assert!(o.out().contains(&format!("got-{name}")), "the trap did not run: {}", o.describe());
    assert!(o.elapsed < Duration::from_secs(10), "too slow: {}", o.describe());
}

#[test]
fn sigterm_to_berth_reaches_the_containers_trap() {
    trapped(Signal::TERM, "TERM", 5);
}

#[test]
fn sigint_to_berth_reaches_the_containers_trap() {
    trapped(Signal::INT, "INT", 6);
}

#[test]
fn sighup_and_sigusr1_to_berth_reach_the_container() {
    trapped(Signal::HUP, "HUP", 7);
    trapped(Signal::USR1, "USR1", 8);
}

#[test]
fn sigterm_without_a_trap_ends_the_command_with_143() {
    let c = Ctx::busybox();
    let mut r = c.spawn(&[&c.image, "/bin/sh", "-c", "echo ready; sleep 30; echo not-reached"]);
    r.wait_for_output("ready", Duration::from_secs(10));
    r.signal(Signal::TERM);
    let o = r.wait().status(143);
    assert!(!o.out().contains("not-reached"), "{}", o.describe());
}
