//! The container's mount table: /proc (masked paths, read-only /proc/sys),
//! read-only /sys, a small /dev with the standard nodes, /dev/pts,
//! /dev/shm, /dev/mqueue, /run and /tmp — and nothing of the host's.

use std::path::Path;

use super::{mount_at, parse_mountinfo};
use crate::harness::container::Ctx;

#[test]
fn mount_table_has_proc_sys_dev_pts_shm_mqueue_run_and_tmp() {
    let c = Ctx::busybox();
    let o = c.run_image(&[], &["cat", "/proc/self/mountinfo"]).success();
    let table = parse_mountinfo(&o.out());
    let want = [
        ("/", "overlay"),
        ("/proc", "proc"),
        ("/sys", "sysfs"),
        ("/dev", "tmpfs"),
        ("/dev/pts", "devpts"),
        ("/dev/shm", "tmpfs"),
        ("/dev/mqueue", "mqueue"),
        ("/run", "tmpfs"),
        ("/tmp", "tmpfs"),
    ];
    for (point, fstype) in want {
        let m = mount_at(&table, point).unwrap_or_else(|| panic!("no mount at {point}:\n{}", o.out()));
        assert_eq!(m.fstype, fstype, "{point} should be {fstype}: {m:?}");
    }
    let sys = mount_at(&table, "/sys").unwrap();
    assert!(sys.read_only(), "/sys must be read-only: {sys:?}");
    let proc_sys = mount_at(&table, "/proc/sys").unwrap_or_else(|| panic!("/proc/sys is not a mount:\n{}", o.out()));
    assert!(proc_sys.read_only(), "/proc/sys must be read-only: {proc_sys:?}");
    if Path::new("/proc/sysrq-trigger").exists() {
        let t = mount_at(&table, "/proc/sysrq-trigger")
            .unwrap_or_else(|| panic!("/proc/sysrq-trigger is not covered:\n{}", o.out()));
        assert!(t.read_only(), "/proc/sysrq-trigger must be read-only: {t:?}");
    }
    let pts = mount_at(&table, "/dev/pts").unwrap();
    assert!(pts.super_opts.iter().any(|o| o.starts_with("ptmxmode=")), "/dev/pts should be a new instance: {pts:?}");
    for m in &table {
        assert!(
            !m.point.starts_with(&c.berth.dir().to_string_lossy().to_string())
                && !m.point.starts_with("/var/lib/berth"),
            "host paths visible in the container's mount table: {m:?}"
        );
    }
    // No mount is in a peer group with the host's mounts, nor receives
    // propagation from them.
    let host = parse_mountinfo(&std::fs::read_to_string("/proc/self/mountinfo").unwrap());
    let host_groups: Vec<&String> =
        host.iter().flat_map(|m| m.tags.iter()).filter(|t| t.starts_with("shared:")).collect();
    for m in &table {
        for t in &m.tags {
            assert!(!t.starts_with("master:"), "{} receives propagation from the host: {m:?}", m.point);
            assert!(!host_groups.contains(&t), "{} shares a peer group with the host: {m:?}", m.point);
        }
    }
}

#[test]
fn dev_holds_null_zero_full_random_urandom_tty_and_nothing_of_the_hosts() {
    let c = Ctx::busybox();
    let o = c
        .sh(
            &[],
            "for n in null zero full random urandom tty; do stat -c 'node=%n %t:%T %a %F' /dev/$n; done; \
             echo entries=$(ls /dev | tr '\\n' ' '); \
             echo x > /dev/null && echo null-ok; \
             echo zero=$(head -c 8 /dev/zero | od -An -tx1 | tr -d ' '); \
             echo urandom=$(head -c 16 /dev/urandom | wc -c); \
             if echo x > /dev/full 2>/dev/null; then echo full-accepted; else echo full-refused; fi; \
             test -e /dev/ptmx && echo ptmx-ok; test -d /dev/pts && echo pts-ok",
        )
        .success();
    let text = o.out();
    for (n, dev) in
        [("null", "1:3"), ("zero", "1:5"), ("full", "1:7"), ("random", "1:8"), ("urandom", "1:9"), ("tty", "5:0")]
    {
        let line = o
            .lines()
            .into_iter()
            .find(|l| l.starts_with(&format!("node=/dev/{n} ")))
            .unwrap_or_else(|| panic!("/dev/{n} missing: {}", o.describe()));
        assert!(
            line.contains(&format!(" {dev} 666 character special file")),
            "/dev/{n} should be char device {dev} mode 666: {line}"
        );
    }
    for want in ["null-ok", "zero=0000000000000000", "urandom=16", "full-refused", "ptmx-ok", "pts-ok"] {
        assert!(text.contains(want), "expected {want:?}: {}", o.describe());
    }
    let allowed = [
        "null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm", "mqueue", "fd", "stdin", "stdout",
        "stderr", "core", "console", "net",
    ];
    let entries = o.field("entries").unwrap_or_default();
    for e in entries.split_whitespace() {
        assert!(allowed.contains(&e), "/dev/{e} should not be in the container (host device?): {entries}");
    }
}

#[test]
fn kernel_global_proc_files_are_masked() {
    let c = Ctx::busybox();
    let files = ["kcore", "keys", "key-users", "timer_list", "sched_debug", "latency_stats", "timer_stats"];
    let script: String = files
        .iter()
        .map(|f| format!("if [ -e /proc/{f} ]; then echo {f}=$(head -c 4096 /proc/{f} 2>/dev/null | wc -c); else echo {f}=absent; fi;"))
        .collect();
    let o = c.sh(&[], &script).success();
    for f in files {
        let v = o.field(f).unwrap_or_else(|| panic!("no answer for /proc/{f}: {}", o.describe()));
        assert!(v == "0" || v == "absent", "/proc/{f} must read as empty or fail, read {v} bytes: {}", o.describe());
        let host_has = Path::new("/proc").join(f).exists();
        if host_has && f != "kcore" {
            let host_len = std::fs::read(Path::new("/proc").join(f)).map(|b| b.len()).unwrap_or(0);
            if host_len > 0 {
                assert_eq!(
                    v, "0",
                    "/proc/{f} exists on the host ({host_len} bytes): the container's copy must be empty"
                );
            }
        }
    }
}

#[test]
fn proc_sys_is_read_only_writing_the_hostname_fails() {
    let c = Ctx::busybox();
    let o = c
        .sh(
            &["--hostname", "before-write"],
            "if echo evil > /proc/sys/kernel/hostname; then echo write=ok; else echo write=refused; fi; \
             echo host=$(hostname); \
             if touch /sys/berth-test 2>/dev/null; then echo sys=ok; else echo sys=refused; fi",
        )
        .success();
    assert_eq!(o.field("write").as_deref(), Some("refused"), "/proc/sys must be read-only: {}", o.describe());
    assert_eq!(o.field("host").as_deref(), Some("before-write"), "the hostname changed: {}", o.describe());
    assert_eq!(o.field("sys").as_deref(), Some("refused"), "/sys must be read-only: {}", o.describe());
    assert!(o.stderr.to_lowercase().contains("read-only"), "the refusal should say read-only: {}", o.describe());
}
