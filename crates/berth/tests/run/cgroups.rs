//! cgroups: each container in its own cgroup under `berth/`, limits
//! written (`--memory`, `--cpus`, `--pids-limit`) and enforced: a memory
//! hog is killed, a fork bomb is stopped.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::process::Signal;

use crate::harness::container::Ctx;

/// The run's cgroup dir in the hierarchy mounted at `/sys/fs/cgroup/<ctrl>`.
fn dir_for(dirs: &[PathBuf], mount: &str) -> Option<PathBuf> {
    dirs.iter().find(|d| d.starts_with(Path::new("/sys/fs/cgroup").join(mount))).cloned()
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display())).trim().to_string()
}

fn v2_only() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

#[test]
fn each_container_runs_in_its_own_cgroup_under_berth() {
    let c = Ctx::busybox();
    let mut r = c.spawn(&[&c.image, "/bin/sh", "-c", "cat /proc/self/cgroup; echo ready; exec sleep 30"]);
    r.wait_for_output("ready", Duration::from_secs(10));
    let dirs = r.cgroups();
    assert!(!dirs.is_empty(), "no berth/<name>-{} cgroup while the container runs", r.pid);
    for d in &dirs {
        let name = d.file_name().unwrap().to_string_lossy();
        assert_eq!(name, format!("{}-{}", c.repo, r.pid), "cgroup name is <name>-<berth pid>: {}", d.display());
        let procs = read(&d.join("cgroup.procs"));
        assert!(!procs.is_empty(), "{} holds no process", d.display());
    }
    if !v2_only() {
        // Hybrid: the unified tree tracks every container; v1 controllers
        // are joined only for a limit (see the limits test). Pure v1: pids.
        let tracker = if Path::new("/sys/fs/cgroup/unified").is_dir() { "unified" } else { "pids" };
        assert!(dir_for(&dirs, tracker).is_some(), "no cgroup in the {tracker} hierarchy: {dirs:?}");
    }
    r.signal(Signal::TERM);
    let o = r.wait().status(143);
    // Inside, a cgroup namespace rooted at the container's own cgroup.
    for l in o.lines().iter().filter(|l| l.contains(':') && !l.starts_with("ready")) {
        assert!(l.ends_with(":/"), "the container must see its cgroup as / (cgroup namespace): {l}\n{}", o.describe());
    }
}

#[test]
fn memory_cpu_and_pids_limits_are_written_to_the_cgroup() {
    let c = Ctx::busybox();
    let mut r = c.spawn(&[
        "--memory",
        "32M",
        "--cpus",
        "0.5",
        "--pids-limit",
        "20",
        &c.image,
        "/bin/sh",
        "-c",
        "echo ready; exec sleep 30",
    ]);
    r.wait_for_output("ready", Duration::from_secs(10));
    let dirs = r.cgroups();
    if v2_only() {
        let d = dirs.first().expect("a cgroup dir");
        assert_eq!(read(&d.join("memory.max")), "33554432");
        assert_eq!(read(&d.join("cpu.max")), "50000 100000");
        assert_eq!(read(&d.join("pids.max")), "20");
    } else {
        let mem = dir_for(&dirs, "memory").unwrap_or_else(|| panic!("no memory cgroup: {dirs:?}"));
        assert_eq!(read(&mem.join("memory.limit_in_bytes")), "33554432", "{}", mem.display());
        let cpu = dir_for(&dirs, "cpu").or_else(|| dir_for(&dirs, "cpu,cpuacct"));
        let cpu = cpu.unwrap_or_else(|| panic!("no cpu cgroup: {dirs:?}"));
        assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "50000", "{}", cpu.display());
        assert_eq!(read(&cpu.join("cpu.cfs_period_us")), "100000", "{}", cpu.display());
        let pids = dir_for(&dirs, "pids").unwrap_or_else(|| panic!("no pids cgroup: {dirs:?}"));
        assert_eq!(read(&pids.join("pids.max")), "20", "{}", pids.display());
    }
    r.signal(Signal::TERM);
    r.wait().status(143);
}

#[test]
fn memory_hog_is_killed_by_the_memory_limit() {
    let c = Ctx::busybox();
    let o = c.sh(&["--memory", "32M"], "echo start; x=a; while true; do x=$x$x; done");
    assert_eq!(o.code, Some(137), "the hog must be killed (SIGKILL → 137): {}", o.describe());
    assert!(o.elapsed < Duration::from_secs(15), "the OOM kill took too long: {}", o.describe());
    // The same loop stopped by a size check runs fine without the limit.
    c.sh(&[], "x=a; i=0; while [ $i -lt 10 ]; do x=$x$x; i=$((i+1)); done; echo ${#x}").success();
}

#[test]
fn fork_bomb_is_stopped_by_the_pids_limit() {
    let c = Ctx::busybox();
    let o = c.sh(
        &["--pids-limit", "20"],
        "i=0; while [ $i -lt 200 ]; do sleep 60 & i=$((i+1)); echo $i; done; echo all-forked",
    );
    assert!(!o.out().contains("all-forked"), "200 processes started despite --pids-limit 20: {}", o.describe());
    let last: u32 = o.lines().iter().filter_map(|l| l.parse().ok()).max().unwrap_or(0);
    assert!(last < 20, "more than 20 processes were started ({last}): {}", o.describe());
    assert!(last >= 10, "forks failed too early ({last}): {}", o.describe());
    assert!(o.code.is_some_and(|c| c != 0), "the shell should fail when fork fails: {}", o.describe());
    assert!(o.stderr.contains("fork"), "the shell should report the failed fork: {}", o.describe());
    assert!(o.elapsed < Duration::from_secs(15), "{}", o.describe());
    // The host is unaffected: it can still start containers (and processes).
    c.run_image(&[], &["true"]).success();
}

#[test]
fn cpu_limit_throttles_a_busy_loop() {
    if v2_only() {
        return;
    }
    let c = Ctx::busybox();
    let mut r = c.spawn(&["--cpus", "0.2", &c.image, "/bin/sh", "-c", "echo ready; while :; do :; done"]);
    r.wait_for_output("ready", Duration::from_secs(10));
    let cpu = dir_for(&r.cgroups(), "cpu")
        .or_else(|| dir_for(&r.cgroups(), "cpu,cpuacct"))
        .unwrap_or_else(|| panic!("no cpu cgroup"));
    let throttled = |p: &Path| -> u64 {
        read(&p.join("cpu.stat"))
            .lines()
            .find_map(|l| l.strip_prefix("nr_throttled ").and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while throttled(&cpu) == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let n = throttled(&cpu);
    r.signal(Signal::TERM);
    r.wait().status(143);
    assert!(n > 0, "a busy loop under --cpus 0.2 was never throttled (cpu.stat nr_throttled = 0)");
}
