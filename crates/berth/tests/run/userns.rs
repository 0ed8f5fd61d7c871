//! User namespaces by default: container root is an unprivileged host uid
//! of a range of 65536 that is the container's own while it runs, and the
//! image's files keep their owners on disk (idmapped mounts, no chown).
//! Each test here plays a container that would reach the host as root
//! without its user namespace, or checks a promise of the range
//! allocation; all of them fail on berth before user namespaces.

use super::kill_and_remove;
use crate::harness::container::{s, Ctx};
use crate::harness::probe::assert_blocked;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

/// The single `0 BASE COUNT` line of a uid_map, as (BASE, COUNT).
fn map_of(text: &str) -> (u64, u64) {
    let lines: Vec<Vec<u64>> =
        text.lines().map(|l| l.split_whitespace().filter_map(|f| f.parse().ok()).collect()).collect();
    assert_eq!(lines.len(), 1, "one mapping line expected:\n{text}");
    assert_eq!(lines[0].len(), 3, "`INSIDE OUTSIDE COUNT` expected:\n{text}");
    assert_eq!(lines[0][0], 0, "container uid 0 is mapped:\n{text}");
    (lines[0][1], lines[0][2])
}

/// The uid map of `berth run OPTS IMAGE cat …`.
fn uid_map(c: &Ctx, opts: &[&str]) -> (u64, u64) {
    map_of(&c.sh(opts, "cat /proc/self/uid_map").success().out())
}

/// The uid map of machine `name`'s next run.
fn machine_map(c: &Ctx, name: &str) -> (u64, u64) {
    map_of(&c.run(&["-M", name, "cat", "/proc/self/uid_map"]).success().out())
}

fn wait_running(c: &Ctx, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if c.berth.run(["exec", name, "/bin/true"]).status.success() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("machine {name} did not come up");
}

#[test]
fn container_root_is_an_unprivileged_host_uid_by_default() {
    let c = Ctx::busybox();
    let (base, count) = uid_map(&c, &[]);
    assert!(base >= 0x80000 && base.is_multiple_of(65536), "a range of berth's own, got base {base}");
    assert_eq!(count, 65536);
    let both = c.sh(&[], "cat /proc/self/uid_map /proc/self/gid_map").success().out();
    let lines: Vec<&str> = both.lines().collect();
    assert_eq!(lines.len(), 2, "{both}");
    assert_eq!(map_of(lines[0]), map_of(lines[1]), "gids map like uids");
    // The image's files still belong to root inside.
    let o = c.sh(&[], "stat -c %u:%g /bin/busybox; id -u").success().out();
    assert_eq!(o.split_whitespace().collect::<Vec<_>>(), ["0:0", "0"], "image files and the user are root:\n{o}");

    // A host file only host root may read, bound in: container root reads
    // it without a user namespace and not with one.
    let dir = c.dir("secret");
    let secret = dir.join("key");
    std::fs::write(&secret, "host-only\n").expect("secret");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let bind = format!("{}:/secret", s(&dir));
    let o = c.sh(&["--bind", &bind], "cat /secret/key 2>&1; echo rc=$?").success().out();
    assert!(o.contains("rc=1") && !o.contains("host-only"), "container root read a host root file:\n{o}");
    let o = c.sh(&["--private-users=no", "--bind", &bind], "cat /secret/key").success().out();
    assert_eq!(o.trim(), "host-only", "--private-users=no is host root");
    // What it writes to an unmapped bind is the range's on the host.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    c.sh(&["--bind", &bind], "touch /secret/made").success();
    let md = std::fs::metadata(dir.join("made")).expect("made");
    assert!(md.uid() >= 0x80000 && md.uid().is_multiple_of(65536), "written as the range's root, got uid {}", md.uid());
    // `:idmap` maps the bind: host root's file is root's inside.
    let idmapped = format!("{}:/secret:idmap", s(&dir));
    let o = c.sh(&["--bind", &idmapped], "cat /secret/key; touch /secret/mapped").success().out();
    assert_eq!(o.trim(), "host-only", "an idmapped bind keeps the host's owners as the container's");
    assert_eq!(std::fs::metadata(dir.join("mapped")).expect("mapped").uid(), 0, "an idmapped bind writes uid 0");
}

#[test]
fn kernel_settings_stay_out_of_reach_even_with_every_capability_asked() {
    // Container root given SYS_ADMIN, NET_RAW, SYS_PTRACE and MKNOD: in a
    // user namespace they are the namespace's. It may remount its own
    // read-only /proc/sys (the namespace made that mount), but the kernel
    // refuses it the global sysctls behind it, a fresh sysfs, and
    // AF_PACKET on the host's network. Without a user namespace, the same
    // capabilities are host root's (see the warning).
    let c = Ctx::probe();
    let checks = [
        "write:/proc/sys/kernel/core_pattern",
        "write:/tmp/proc2/sys/kernel/core_pattern",
        "mount-sysfs:/tmp/sys2",
        "packet",
        "write:/sys/kernel/uevent_helper",
    ];
    let mut args = vec!["--capability", "sys_admin,net_raw,sys_ptrace,mknod", c.image.as_str(), "/probe"];
    // What it may do to its own mounts, first: the writes come after.
    args.extend_from_slice(&["remount-rw:/proc/sys", "mount-proc:/tmp/proc2"]);
    args.extend_from_slice(&checks);
    let out = c.run(&args).success().out();
    for check in checks {
        assert_blocked(&out, check, "root with SYS_ADMIN in its user namespace");
    }
}

#[test]
fn files_keep_their_owners_on_disk() {
    let c = Ctx::busybox();
    let name = format!("own-{}", std::process::id());
    c.sh(&["--name", &name], "touch /made && mkdir -p /home/u && chown 1000:1000 /home/u && chown 7:7 /etc/passwd")
        .success();
    let upper = c.store().join("machines").join(&name).join("upper");
    let owner = |p: &str| {
        let md = std::fs::symlink_metadata(upper.join(p)).unwrap_or_else(|e| panic!("{p} in the upper: {e}"));
        (md.uid(), md.gid())
    };
    assert_eq!(owner("made"), (0, 0), "a file container root made is uid 0 on disk");
    assert_eq!(owner("home/u"), (1000, 1000), "container uid 1000 is 1000 on disk");
    assert_eq!(owner("etc/passwd"), (7, 7), "a copied-up file keeps the container's owner");
    let o = c.run(&["-M", &name, "stat", "-c", "%u", "/made", "/home/u", "/etc/passwd"]).success().out();
    assert_eq!(o.split_whitespace().collect::<Vec<_>>(), ["0", "1000", "7"], "and so they look inside");

    // A `-D` tree: idmapped in place, not chowned.
    let tree = c.busybox_tree();
    c.run(&["-D", &s(&tree), "/bin/sh", "-c", "touch /t && stat -c %u /bin/busybox"]).success();
    assert_eq!(std::fs::metadata(tree.join("t")).expect("t").uid(), 0, "the tree's new file is uid 0 on disk");
    assert_eq!(std::fs::metadata(tree.join("bin/busybox")).expect("busybox").uid(), 0, "nothing was chowned");
    // Without mapping, the tree's root-owned files are nobody's inside.
    let o = c.run(&["-D", &s(&tree), "--private-users-ownership=off", "stat", "-c", "%u", "/bin/busybox"]).success();
    assert_eq!(o.out().trim(), "65534", "unmapped host root is nobody");
    c.berth.run(["rm", &name]).success();
}

#[test]
fn ranges_are_never_shared_and_a_machine_keeps_its_own() {
    let c = Ctx::busybox();
    let a = format!("ra-{}", std::process::id());
    let b = format!("rb-{}", std::process::id());
    c.run_image(&["--name", &a], &["/bin/true"]).success();
    let first = machine_map(&c, &a);
    // Ask again: the machine's range is recorded and comes back.
    let again = machine_map(&c, &a);
    assert_eq!(first, again, "a machine keeps its range across runs");
    let rec: serde_json::Value = serde_json::from_slice(
        &std::fs::read(c.store().join("machines").join(&a).join("machine.json")).expect("machine.json"),
    )
    .expect("json");
    assert_eq!(rec["uid_base"].as_u64(), Some(first.0), "the range is in the machine's record");

    // Two running at once: never the same IDs.
    c.berth.run(["run", "-d", "--name", &b, &c.image, "/bin/sleep", "60"]).success();
    wait_running(&c, &b);
    let busy = map_of(&c.berth.run(["exec", &b, "cat", "/proc/self/uid_map"]).success().stdout);
    let leader = map_of(&c.berth.run(["exec", &b, "cat", "/proc/1/uid_map"]).success().stdout);
    assert_eq!(busy, leader, "exec joins the machine's user namespace");
    // (Run without the harness's leftover check, which would count the
    // running machine's.)
    let map_now = |args: &[&str]| {
        let mut all = vec!["run"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["cat", "/proc/self/uid_map"]);
        map_of(&c.berth.run(all).success().stdout)
    };
    for _ in 0..3 {
        let r = map_now(&[&c.image]).0;
        assert_ne!(r, busy.0, "a run got the range of a running machine");
        assert_ne!(r, first.0, "a run got the range machine {a} keeps while stopped");
    }
    // A machine never takes a running one's range.
    let ra = map_now(&["-M", &a]);
    assert_ne!(ra.0, busy.0, "machine {a} must not share {b}'s running range");
    kill_and_remove(&c, &b);
    c.berth.run(["rm", &a]).success();
}

#[test]
fn private_users_modes_as_nspawn_has_them() {
    let c = Ctx::busybox();
    let o = c.sh(&["--private-users=no"], "cat /proc/self/uid_map").success().out();
    assert_eq!(o.split_whitespace().collect::<Vec<_>>(), ["0", "0", "4294967295"], "no: the host's users");
    assert_eq!(uid_map(&c, &["--private-users=identity"]), (0, 65536), "identity");
    assert_eq!(uid_map(&c, &["--private-users=3000000:65536"]), (3000000, 65536), "UID:COUNT");
    let (base, _) = uid_map(&c, &["-U"]);
    assert!(base >= 0x80000, "-U picks");
    c.run_image(&["--private-users=lots"], &["/bin/true"]).failure().stderr_mentions(&["--private-users", "pick"]);
    c.run_image(&["--private-users-ownership=shift"], &["/bin/true"])
        .failure()
        .stderr_mentions(&["--private-users-ownership"]);
    assert!(!Path::new("/run/berth-userns").join("lots").exists());
}

#[test]
fn chown_shifts_a_tree_on_disk_and_back_into_another_range() {
    let c = Ctx::busybox();
    let tree = c.busybox_tree();
    std::fs::set_permissions(tree.join("bin/busybox"), std::fs::Permissions::from_mode(0o4755)).expect("setuid");
    let t = s(&tree);
    let inside = |opts: &[&str]| {
        let mut a = vec!["-D", t.as_str()];
        a.extend_from_slice(opts);
        a.extend_from_slice(&["/bin/sh", "-c", "stat -c '%u %a' /bin/busybox; touch /new; cat /proc/self/uid_map"]);
        c.run(&a).success().out()
    };
    let o = inside(&["--private-users=3014656", "--private-users-ownership=chown"]);
    assert!(o.starts_with("0 4755\n"), "the tree's root-owned setuid file is container root's:\n{o}");
    let md = std::fs::metadata(tree.join("bin/busybox")).expect("busybox");
    assert_eq!((md.uid(), md.gid(), md.mode() & 0o7777), (3014656, 3014656, 0o4755), "shifted on disk, setuid kept");
    assert_eq!(std::fs::metadata(tree.join("new")).expect("new").uid(), 3014656);
    // Another range: shifted again (auto sees a shifted tree), not mapped on top.
    let o = inside(&["--private-users=3080192"]);
    assert!(o.starts_with("0 4755\n"), "{o}");
    assert_eq!(std::fs::metadata(tree.join("new")).expect("new").uid(), 3080192, "moved to the new range");
    assert_eq!(std::fs::metadata(&tree).expect("top").uid(), 3080192);
    c.run_image(&["--private-users-ownership=chown"], &["/bin/true"])
        .failure()
        .stderr_mentions(&["--private-users-ownership=chown"]);
}

#[test]
fn a_tree_has_one_writer_and_given_ranges_stay_clear_of_running_ones() {
    let c = Ctx::busybox();
    let tree = c.busybox_tree();
    let t = s(&tree);
    let mut first = c.spawn(&["-D", &t, "/bin/sh", "-c", "echo up; sleep 30"]);
    first.wait_for_output("up", Duration::from_secs(20));
    // (Run without the harness's leftover check, which would count the
    // running container's.)
    let second = c.berth.run(["run", "-D", &t, "/bin/true"]);
    assert!(!second.status.success() && second.stderr.contains("in use"), "a second writer: {second:?}");
    let reader = c.berth.run(["run", "-x", "-D", &t, "/bin/true"]);
    assert!(!reader.status.success(), "a reader while a writer runs: {reader:?}");
    // The running container's range cannot be given to another one.
    let map = std::fs::read_to_string(format!("/proc/{}/uid_map", first_leader(&first))).expect("uid_map");
    let base: u64 = map.split_whitespace().nth(1).and_then(|b| b.parse().ok()).expect("base");
    let given = c.berth.run(["run", &format!("--private-users={base}"), &c.image, "/bin/true"]);
    assert!(!given.status.success() && given.stderr.contains("running container"), "{given:?}");
    first.signal(rustix::process::Signal::TERM);
    first.wait();
    c.run(&["-D", &t, "/bin/true"]).success();
}

#[test]
fn ranges_systemd_nspawn_holds_are_passed_by_and_berth_s_are_locked_for_it() {
    use berth_runtime::ofd_lock_exclusive;
    use rustix::fs::{flock, FlockOperation};
    use std::os::fd::AsFd;
    let c = Ctx::busybox();
    // A slot far above what the other tests pick, locked the way
    // systemd-nspawn -U locks the range it picked: an open file
    // description lock (systemd 254 on), a flock before.
    let base = 0x6000_0000u64;
    let dir = Path::new("/run/systemd/nspawn-uid");
    let made_run_systemd = !dir.parent().expect("parent").exists();
    std::fs::create_dir_all(dir).expect("nspawn's lock dir");
    let lock = dir.join(base.to_string());
    let given = format!("--private-users={base}:65536");
    for kind in ["ofd", "flock"] {
        let theirs = std::fs::File::create(&lock).expect("lock file");
        match kind {
            "ofd" => ofd_lock_exclusive(theirs.as_fd()).expect("OFD lock"),
            _ => flock(&theirs, FlockOperation::NonBlockingLockExclusive).expect("flock"),
        }
        let refused = c.berth.run(["run", &given, &c.image, "/bin/true"]);
        assert!(!refused.status.success() && refused.stderr.contains("systemd-nspawn"), "{kind}: {refused:?}");
        drop(theirs);
    }
    // Free again; while berth's container runs, nspawn finds it locked
    // both ways, and the file goes with berth's lock, as nspawn's does.
    let mut ours = c.spawn(&[&given, &c.image, "/bin/sh", "-c", "echo up; sleep 30"]);
    ours.wait_for_output("up", Duration::from_secs(20));
    let probe = std::fs::File::open(&lock).expect("berth's lock file");
    assert!(ofd_lock_exclusive(probe.as_fd()).is_err(), "OFD-locked for systemd-nspawn while berth runs");
    assert!(flock(&probe, FlockOperation::NonBlockingLockExclusive).is_err(), "flocked for older systemd-nspawn");
    drop(probe);
    ours.signal(rustix::process::Signal::TERM);
    ours.wait();
    assert!(!lock.exists(), "berth removes nspawn's lock file when it lets go");
    if made_run_systemd {
        let _ = std::fs::remove_dir(dir);
        let _ = std::fs::remove_dir(dir.parent().expect("parent"));
    }
}

/// The host pid of a process of the container under a running `berth run`.
fn first_leader(r: &crate::harness::container::Running<'_>) -> u32 {
    let procs = crate::harness::container::processes_with_token(&r.token);
    procs
        .iter()
        .find(|(_, cmd)| !cmd.contains("/berth "))
        .map(|(p, _)| *p)
        .unwrap_or_else(|| panic!("no container process in {procs:?}"))
}

#[test]
fn no_host_sysfs_mounts_and_read_only_keeps_nodev() {
    let c = Ctx::busybox();
    // A fresh sysfs (the host's network), not a bind of the host's /sys
    // with its cgroup tree below.
    let o = c.sh(&[], "ls /sys/fs/cgroup | wc -l; grep -c ' /sys/' /proc/self/mountinfo; true").success().out();
    assert_eq!(o.split_whitespace().collect::<Vec<_>>(), ["0", "0"], "nothing below /sys:\n{o}");
    let o = c.sh(&["--read-only"], "grep ' / / ' /proc/self/mountinfo").success().out();
    let opts = o.split_whitespace().nth(5).unwrap_or_default().to_string();
    assert!(opts.contains("ro") && opts.contains("nodev"), "a read-only root stays nodev: {o}");
    // Capabilities that amount to host root: a warning only where
    // container root is host root.
    let warned = c.run_image(&["--private-users=no", "--capability", "sys_admin"], &["/bin/true"]).success();
    assert!(warned.stderr.contains("amounts to host root"), "{}", warned.stderr);
    let quiet = c.run_image(&["--capability", "sys_admin"], &["/bin/true"]).success();
    assert!(!quiet.stderr.contains("amounts to host root"), "{}", quiet.stderr);
}

#[test]
fn read_only_mounts_stay_read_only_for_root_with_cap_sys_admin() {
    // Root in its user namespace with CAP_SYS_ADMIN (a booted init has
    // it) must not make a read-only bind or root writable again: the
    // mounts come locked from a namespace it does not own.
    let c = Ctx::probe();
    let dir = c.dir("ro-src");
    let ro = format!("{}:/ro:idmap", s(&dir));
    let checks = ["remount-rw:/ro", "create:/ro/pwned", "remount-rw:/", "create:/pwned"];
    let mut args =
        vec!["--capability", "sys_admin", "--read-only", "--bind-ro", ro.as_str(), c.image.as_str(), "/probe"];
    args.extend_from_slice(&checks);
    let out = c.run(&args).success().out();
    assert_blocked(&out, "create:/ro/pwned", "a file below an idmapped --bind-ro");
    assert_blocked(&out, "create:/pwned", "a file in a --read-only root");
    assert!(!dir.join("pwned").exists(), "the host directory was written:\n{out}");
}

#[test]
fn mounts_below_proc_and_what_a_locked_table_refuses() {
    let c = Ctx::busybox();
    let f = c.dir("fake-proc").join("cpuinfo");
    std::fs::write(&f, "not the host's\n").expect("fake cpuinfo");
    // A bind over a /proc file (lxcfs does this) lands on the procfs.
    let bind = format!("{}:/proc/cpuinfo", s(&f));
    let o = c.sh(&["--bind-ro", &bind], "cat /proc/cpuinfo").success().out();
    assert_eq!(o, "not the host's\n", "the bind covers procfs' file");
    // With CAP_SYS_ADMIN the init mounts /proc after the table is locked:
    // refused in one line rather than covered.
    c.run_image(&["--capability", "sys_admin", "--bind-ro", &bind], &["/bin/true"])
        .failure()
        .stderr_mentions(&["/proc/cpuinfo", "elsewhere"]);
}
