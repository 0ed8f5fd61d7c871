//! Capabilities: names, the default sets (podman's for commands,
//! systemd-nspawn's without CAP_SYS_PTRACE for a booted init), and
//! applying a set (bounding set dropped to it; permitted, effective and
//! inheritable set to it for root). Capabilities the host's bounding set
//! lacks (here CAP_SYS_RESOURCE) are left out quietly rather than failing.

use rustix::thread::{self as t, CapabilitySet, CapabilitySets};

/// Every capability name the kernel knows, by number.
pub const NAMES: &[&str] = &[
    "chown",
    "dac_override",
    "dac_read_search",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "setpcap",
    "linux_immutable",
    "net_bind_service",
    "net_broadcast",
    "net_admin",
    "net_raw",
    "ipc_lock",
    "ipc_owner",
    "sys_module",
    "sys_rawio",
    "sys_chroot",
    "sys_ptrace",
    "sys_pacct",
    "sys_admin",
    "sys_boot",
    "sys_nice",
    "sys_resource",
    "sys_time",
    "sys_tty_config",
    "mknod",
    "lease",
    "audit_write",
    "audit_control",
    "setfcap",
    "mac_override",
    "mac_admin",
    "syslog",
    "wake_alarm",
    "block_suspend",
    "audit_read",
    "perfmon",
    "bpf",
    "checkpoint_restore",
];

/// What a command gets (`run IMAGE CMD`, `exec`): podman's default set.
/// Container root is host root until user namespaces come; without
/// CAP_SYS_ADMIN it cannot remount /proc/sys or mount a fresh procfs or
/// sysfs, without CAP_MKNOD make device nodes, without CAP_NET_RAW sniff
/// the host's network, without CAP_SYS_PTRACE reach PID 1 or an entering
/// `berth exec`, without CAP_DAC_READ_SEARCH open files by handle.
/// CAP_SYS_ADMIN's bit in a capability mask.
pub const SYS_ADMIN: u64 = 1 << 21;

pub const DEFAULT: &[&str] = &[
    "chown",
    "dac_override",
    "fowner",
    "fsetid",
    "kill",
    "net_bind_service",
    "setfcap",
    "setgid",
    "setpcap",
    "setuid",
    "sys_chroot",
];

/// Capabilities that make container root host root (or near it) while
/// the container shares the host's user namespace: asking for one is
/// allowed, with a warning.
pub const HOST_ROOT: &[&str] = &[
    "sys_admin",
    "sys_module",
    "sys_rawio",
    "sys_ptrace",
    "dac_read_search",
    "sys_boot",
    "sys_time",
    "mknod",
    "bpf",
    "perfmon",
    "mac_admin",
    "mac_override",
    "syslog",
];

/// What a booted init gets (`--boot`): systemd-nspawn's default set
/// without CAP_SYS_PTRACE (with it, container root could ptrace any
/// process of the container however it protects itself, PID 1 and an
/// entering `berth exec` among them). systemd as PID 1 needs
/// CAP_SYS_ADMIN to mount its API filesystems.
pub const BOOT: &[&str] = &[
    "audit_control",
    "audit_write",
    "chown",
    "dac_override",
    "dac_read_search",
    "fowner",
    "fsetid",
    "ipc_owner",
    "kill",
    "lease",
    "linux_immutable",
    "mknod",
    "net_bind_service",
    "net_broadcast",
    "net_raw",
    "setfcap",
    "setgid",
    "setpcap",
    "setuid",
    "sys_admin",
    "sys_boot",
    "sys_chroot",
    "sys_nice",
    "sys_resource",
    "sys_tty_config",
];

/// The number of `name` (`CAP_NET_ADMIN`, `net_admin`, case-insensitive).
pub fn number(name: &str) -> Option<u32> {
    let n = name.to_ascii_lowercase();
    let n = n.strip_prefix("cap_").unwrap_or(&n);
    NAMES.iter().position(|x| *x == n).map(|i| i as u32)
}

/// `base` plus `add` minus `drop` (`all` works in both), as a bit mask.
pub fn compute(base: &[&str], add: &[String], drop: &[String], extra_default: &[&str]) -> Result<u64, String> {
    let mut mask: u64 = 0;
    for n in base.iter().chain(extra_default) {
        mask |= 1 << number(n).unwrap_or(0);
    }
    let parse = |list: &[String]| -> Result<u64, String> {
        let mut m = 0u64;
        for item in list.iter().flat_map(|s| s.split(',')).filter(|s| !s.is_empty()) {
            if item.eq_ignore_ascii_case("all") {
                m |= (1u64 << NAMES.len()) - 1;
                continue;
            }
            let bit =
                number(item).ok_or_else(|| format!("unknown capability {item:?}: use names like CAP_NET_ADMIN"))?;
            m |= 1 << bit;
        }
        Ok(m)
    };
    mask |= parse(add)?;
    mask &= !parse(drop)?;
    Ok(mask)
}

/// Names of the bits in `mask`, for messages.
pub fn names(mask: u64) -> Vec<String> {
    (0..NAMES.len())
        .filter(|i| mask & (1 << i) != 0)
        .map(|i| format!("CAP_{}", NAMES[i].to_ascii_uppercase()))
        .collect()
}

/// The host bounding set, as a mask: what we may keep at most.
pub fn host_bounding() -> u64 {
    let mut m = 0;
    for i in 0..NAMES.len() as u32 {
        if let Ok(true) = t::capability_is_in_bounding_set(cap_from(i)) {
            m |= 1 << i;
        }
    }
    m
}

fn cap_from(i: u32) -> t::CapabilitySet {
    CapabilitySet::from_bits_retain(1 << i)
}

/// Drops every capability outside `mask` from the bounding set. Runs in the
/// child before exec; must not allocate.
pub fn drop_bounding(mask: u64) -> rustix::io::Result<()> {
    for i in 0..NAMES.len() as u32 {
        if mask & (1 << i) == 0 {
            match t::remove_capability_from_bounding_set(cap_from(i)) {
                Ok(()) | Err(rustix::io::Errno::INVAL) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Sets permitted, effective and inheritable to `mask`.
pub fn set(mask: u64) -> rustix::io::Result<()> {
    let s = CapabilitySet::from_bits_retain(mask);
    t::set_capabilities(None, CapabilitySets { effective: s, permitted: s, inheritable: s })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_sets() {
        assert_eq!(number("CAP_SYS_ADMIN"), Some(21));
        assert_eq!(number("net_admin"), Some(12));
        assert_eq!(number("bogus"), None);
        let m = compute(BOOT, &["CAP_NET_ADMIN".into()], &["CAP_SYS_ADMIN".into()], &[]).unwrap();
        assert!(m & (1 << 12) != 0 && m & (1 << 21) == 0 && m & (1 << 0) != 0);
        assert_eq!(compute(DEFAULT, &[], &["all".into()], &[]).unwrap(), 0);
        assert!(compute(DEFAULT, &["CAP_NOPE".into()], &[], &[]).is_err());
        let d = compute(DEFAULT, &[], &[], &[]).unwrap();
        for n in HOST_ROOT.iter().chain(&["net_raw"]) {
            assert_eq!(d & (1 << number(n).unwrap()), 0, "{n} is not in the default set");
        }
        assert_eq!(names(1 << 21), vec!["CAP_SYS_ADMIN"]);
    }
}
