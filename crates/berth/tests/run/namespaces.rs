//! Namespaces: hostname (UTS), the PID namespace's view, which namespaces
//! differ from the host's, and the network (host by default, only `lo`
//! with `--private-network`).

use std::collections::BTreeSet;
use std::fs;

use crate::harness::berth::unique;
use crate::harness::container::{s, Ctx};

fn host_hostname() -> String {
    rustix::system::uname().nodename().to_string_lossy().into_owned()
}

#[test]
fn hostname_defaults_to_the_images_last_path_component() {
    let c = Ctx::busybox();
    let before = host_hostname();
    let o = c.run_image(&[], &["hostname"]).success();
    assert_eq!(o.out().trim(), c.repo, "default hostname of `run {}`: {}", c.image, o.describe());
    assert_eq!(host_hostname(), before, "the host's hostname changed");
}

#[test]
fn hostname_flag_sets_the_containers_hostname_only() {
    let c = Ctx::busybox();
    let before = host_hostname();
    let o = c.sh(&["--hostname", "custom-host"], "hostname; cat /proc/sys/kernel/hostname").success();
    assert_eq!(o.lines(), vec!["custom-host", "custom-host"], "{}", o.describe());
    assert_eq!(host_hostname(), before, "the host's hostname changed");
}

#[test]
fn hostname_of_a_named_machine_is_its_name() {
    let c = Ctx::busybox();
    let name = format!("host-{}", unique());
    let o = c.run_image(&["--rm", "--name", &name], &["hostname"]).success();
    assert_eq!(o.out().trim(), name, "{}", o.describe());
}

#[test]
fn hostname_of_a_directory_tree_is_its_base_name() {
    let c = Ctx::busybox();
    let tree = c.busybox_tree();
    let base = tree.file_name().unwrap().to_string_lossy().into_owned();
    let o = c.run(&["-x", "-D", &s(&tree), "hostname"]).success();
    assert_eq!(o.out().trim(), base, "{}", o.describe());
}

#[test]
fn command_is_pid_2_under_the_reaper_and_proc_shows_only_the_container() {
    let c = Ctx::busybox();
    let o = c.sh(&[], "echo pid=$$; echo ppid=$PPID; ls /proc; echo init=$(tr '\\0' ' ' < /proc/1/cmdline)").success();
    assert_eq!(o.field("pid").as_deref(), Some("2"), "the command must be PID 2: {}", o.describe());
    assert_eq!(o.field("ppid").as_deref(), Some("1"), "the command's parent must be PID 1: {}", o.describe());
    let pids: BTreeSet<u32> = o.lines().iter().filter_map(|l| l.parse().ok()).collect();
    assert!(pids.contains(&1) && pids.contains(&2), "/proc must list PIDs 1 and 2: {pids:?}\n{}", o.describe());
    assert!(
        pids.len() <= 3 && pids.iter().all(|p| *p < 10),
        "/proc must show only the container's processes (reaper, sh, ls), got {pids:?}"
    );
    let init = o.field("init").unwrap_or_default();
    assert!(init.contains("berth"), "PID 1 should be berth's reaper, its cmdline is {init:?}");
}

/// `readlink /proc/self/ns/X` for each namespace, host and container.
fn ns_links(c: &Ctx, opts: &[&str]) -> Vec<(String, String, String)> {
    let kinds = ["mnt", "pid", "uts", "ipc", "cgroup", "net"];
    let script: String = kinds.iter().map(|k| format!("echo {k}=$(readlink /proc/self/ns/{k});")).collect();
    let o = c.sh(opts, &script).success();
    kinds
        .iter()
        .map(|k| {
            let host = fs::read_link(format!("/proc/self/ns/{k}")).unwrap().to_string_lossy().into_owned();
            (k.to_string(), host, o.field(k).unwrap_or_default())
        })
        .collect()
}

#[test]
fn mount_pid_uts_ipc_and_cgroup_namespaces_are_new_and_the_network_is_the_hosts() {
    let c = Ctx::busybox();
    for (kind, host, inside) in ns_links(&c, &[]) {
        assert!(!inside.is_empty(), "no {kind} namespace link inside");
        if kind == "net" {
            assert_eq!(inside, host, "without --private-network the container shares the host's network");
        } else {
            assert_ne!(inside, host, "the {kind} namespace must differ from the host's");
        }
    }
}

#[test]
fn host_network_is_shared_by_default() {
    let c = Ctx::busybox();
    let links = || -> std::collections::BTreeSet<String> {
        fs::read_dir("/sys/class/net")
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    // Other tests make and remove bridges meanwhile: the container sees
    // every link there before and after, and none that was never there.
    let before = links();
    let o = c.run_image(&[], &["ls", "-1", "/sys/class/net"]).success();
    let after = links();
    let inside: std::collections::BTreeSet<String> = o.lines().into_iter().collect();
    let always: Vec<&String> = before.intersection(&after).collect();
    assert!(
        always.iter().all(|l| inside.contains(*l)) && inside.iter().all(|l| before.contains(l) || after.contains(l)),
        "the container should see the host's interfaces {before:?} / {after:?}: {}",
        o.describe()
    );
}

#[test]
fn private_network_has_only_lo_and_it_is_up() {
    let c = Ctx::busybox();
    for (kind, host, inside) in ns_links(&c, &["--private-network"]) {
        if kind == "net" {
            assert_ne!(inside, host, "--private-network must give a new network namespace");
        }
    }
    let o = c
        .sh(
            &["--private-network"],
            "ls -1 /sys/class/net; echo flags=$(cat /sys/class/net/lo/flags); \
             tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sed 's/^/dev=/'",
        )
        .success();
    let ifaces: Vec<String> = o.lines().into_iter().filter(|l| !l.contains('=')).collect();
    assert_eq!(ifaces, vec!["lo"], "/sys/class/net must hold only lo: {}", o.describe());
    let devs: Vec<String> = o.lines().iter().filter_map(|l| l.strip_prefix("dev=").map(str::to_string)).collect();
    assert_eq!(devs, vec!["lo"], "/proc/net/dev must list only lo: {}", o.describe());
    let flags = o.field("flags").unwrap_or_default();
    let flags = u32::from_str_radix(flags.trim_start_matches("0x"), 16).unwrap_or(0);
    assert!(flags & 1 == 1, "lo must be UP (IFF_UP in flags {flags:#x}): {}", o.describe());
}
