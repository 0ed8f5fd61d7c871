//! `berth run`: every flag checked from inside the container, against the
//! busybox test image (pulled from a private registry into a private
//! store) and a debootstrap tree. Every run goes through
//! `harness::container::Ctx`, which checks after each one that nothing is
//! left on the host (mounts, scratch dirs, cgroups, processes).

mod attacks;
mod binds;
mod cgroups;
mod copy;
mod exit;
mod hostile;
mod io;
mod kernelfs;
mod leftovers;
mod lifetime;
mod names;
mod namespaces;
mod netguard;
mod netmodes;
mod netstory;
mod network;
mod process;
mod resolv;
mod restart;
mod rootfs;
mod security;
mod settings;
mod signals;
mod userns;
mod users;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Kills machine `name` (started with `run -d`) and removes it, once its
/// supervisor has finished cleaning up (`kill` does not wait for that).
pub fn kill_and_remove(c: &crate::harness::container::Ctx, name: &str) {
    let _ = c.berth.run(["kill", name, "-s", "KILL"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rm = c.berth.run(["rm", name]);
        if rm.status.success() || Instant::now() > deadline {
            rm.success();
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `env` output as a map.
pub fn parse_env(out: &str) -> BTreeMap<String, String> {
    out.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// One line of /proc/self/mountinfo.
#[derive(Debug, Clone)]
pub struct MountEntry {
    pub point: String,
    pub opts: Vec<String>,
    /// Optional fields: `shared:N`, `master:N`, …
    pub tags: Vec<String>,
    pub fstype: String,
    pub super_opts: Vec<String>,
}

impl MountEntry {
    pub fn read_only(&self) -> bool {
        self.opts.iter().any(|o| o == "ro")
    }
}

/// Parses mountinfo text (as printed inside the container).
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let f: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.split(' ').collect();
            if f.len() < 6 || r.len() < 3 {
                return None;
            }
            Some(MountEntry {
                point: f[4].replace("\\040", " "),
                opts: f[5].split(',').map(str::to_string).collect(),
                tags: f[6..].iter().map(|t| t.to_string()).collect(),
                fstype: r[0].to_string(),
                super_opts: r[2].split(',').map(str::to_string).collect(),
            })
        })
        .collect()
}

/// The last (topmost) mount at `point`.
pub fn mount_at<'a>(table: &'a [MountEntry], point: &str) -> Option<&'a MountEntry> {
    table.iter().rev().find(|m| m.point == point)
}

/// A capability mask field of /proc/PID/status (hex).
pub fn cap_mask(status: &str, key: &str) -> u64 {
    let v = crate::harness::container::status_field(status, key)
        .unwrap_or_else(|| panic!("{key} missing from /proc/self/status:\n{status}"));
    u64::from_str_radix(&v, 16).unwrap_or_else(|e| panic!("{key}: {v:?} is not hex: {e}"))
}

/// The test process's own bounding set (what any container can get).
pub fn host_bounding_set() -> u64 {
    cap_mask(&std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status"), "CapBnd")
}

/// Every capability name by number, for messages.
pub const CAP_NAMES: &[(u32, &str)] = &[
    (0, "chown"),
    (1, "dac_override"),
    (2, "dac_read_search"),
    (3, "fowner"),
    (4, "fsetid"),
    (5, "kill"),
    (6, "setgid"),
    (7, "setuid"),
    (8, "setpcap"),
    (9, "linux_immutable"),
    (10, "net_bind_service"),
    (11, "net_broadcast"),
    (12, "net_admin"),
    (13, "net_raw"),
    (15, "ipc_owner"),
    (18, "sys_chroot"),
    (19, "sys_ptrace"),
    (21, "sys_admin"),
    (22, "sys_boot"),
    (23, "sys_nice"),
    (24, "sys_resource"),
    (26, "sys_tty_config"),
    (27, "mknod"),
    (28, "lease"),
    (29, "audit_write"),
    (30, "audit_control"),
    (31, "setfcap"),
];

/// A command's default capabilities: podman's set, by number.
pub const DEFAULT_CAPS: &[u32] = &[0, 1, 3, 4, 5, 6, 7, 8, 10, 18, 31];

/// The default set cut to what the host's bounding set allows.
pub fn expected_default_caps() -> u64 {
    DEFAULT_CAPS.iter().fold(0u64, |m, b| m | (1 << b)) & host_bounding_set()
}

/// Names of the bits set in `mask`.
pub fn cap_names(mask: u64) -> Vec<String> {
    (0..64)
        .filter(|b| mask & (1 << b) != 0)
        .map(|b| CAP_NAMES.iter().find(|(n, _)| *n == b).map(|(_, s)| s.to_string()).unwrap_or(format!("bit{b}")))
        .collect()
}

/// Panics with the differences unless `dir` still lists as `before`.
pub fn assert_tree_unchanged(before: &crate::harness::Listing, dir: &std::path::Path, what: &str) {
    let after = crate::harness::Listing::of(dir);
    let mut d = Vec::new();
    for (k, v) in &before.0 {
        match after.0.get(k) {
            None => d.push(format!("- {k} ({v}) was removed")),
            Some(w) if w != v => d.push(format!("~ {k}: {v} → {w}")),
            _ => {}
        }
    }
    for (k, v) in &after.0 {
        if !before.0.contains_key(k) {
            d.push(format!("+ {k} ({v}) was added"));
        }
    }
    assert!(d.is_empty(), "{what}: berth changed the host tree {}:\n{}", dir.display(), d.join("\n"));
}
