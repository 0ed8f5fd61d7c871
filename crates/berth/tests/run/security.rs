//! Capabilities (podman's default set for commands, `--capability`,
//! `--drop-capability`), the seccomp filter and no_new_privs, as
//! /proc/self/status shows them inside the container.

use super::{cap_mask, cap_names, expected_default_caps};
use crate::harness::container::{status_field, Ctx};

const CAP_CHOWN: u64 = 1 << 0;
const CAP_NET_ADMIN: u64 = 1 << 12;

fn status(c: &Ctx, opts: &[&str]) -> String {
    c.run_image(opts, &["cat", "/proc/self/status"]).success().out()
}

fn assert_caps(st: &str, want: u64, what: &str) {
    for key in ["CapBnd", "CapPrm", "CapEff"] {
        let got = cap_mask(st, key);
        assert_eq!(
            got,
            want,
            "{what}: {key} is {got:#x}, expected {want:#x}\n  extra: {:?}\n  missing: {:?}",
            cap_names(got & !want),
            cap_names(want & !got)
        );
    }
    assert_eq!(cap_mask(st, "CapAmb"), 0, "{what}: no ambient capabilities expected");
}

#[test]
fn default_capabilities_are_podmans_set_within_the_hosts_bounding_set() {
    let c = Ctx::busybox();
    let st = status(&c, &[]);
    assert_caps(&st, expected_default_caps(), "default run");
}

#[test]
fn drop_capability_chown_clears_bit_0_and_chown_fails() {
    let c = Ctx::busybox();
    let st = status(&c, &["--drop-capability", "CAP_CHOWN"]);
    assert_caps(&st, expected_default_caps() & !CAP_CHOWN, "--drop-capability CAP_CHOWN");
    let o = c
        .sh(
            &["--drop-capability", "CAP_CHOWN"],
            "touch /tmp/f; if chown 1:1 /tmp/f; then echo chown=ok; else echo chown=refused; fi",
        )
        .success();
    assert_eq!(o.field("chown").as_deref(), Some("refused"), "chown must fail without CAP_CHOWN: {}", o.describe());
    let o = c.sh(&[], "touch /tmp/f; chown 1:1 /tmp/f && echo chown=ok").success();
    assert_eq!(o.field("chown").as_deref(), Some("ok"), "chown works by default: {}", o.describe());
}

#[test]
fn capability_net_admin_sets_bit_12() {
    let c = Ctx::busybox();
    let st = status(&c, &["--capability", "CAP_NET_ADMIN"]);
    assert_caps(&st, expected_default_caps() | CAP_NET_ADMIN, "--capability CAP_NET_ADMIN");
}

#[test]
fn private_network_adds_net_admin_as_systemd_nspawn_does() {
    let c = Ctx::busybox();
    let st = status(&c, &["--private-network"]);
    assert_caps(&st, expected_default_caps() | CAP_NET_ADMIN, "--private-network");
}

#[test]
fn seccomp_filter_and_no_new_privs_are_on() {
    let c = Ctx::busybox();
    let st = status(&c, &[]);
    assert_eq!(status_field(&st, "Seccomp").as_deref(), Some("2"), "seccomp must be in filter mode:\n{st}");
    assert_eq!(status_field(&st, "NoNewPrivs").as_deref(), Some("1"), "no_new_privs must be set:\n{st}");
}

#[test]
fn seccomp_filter_refuses_swapoff_even_with_cap_sys_admin() {
    let c = Ctx::busybox();
    // With CAP_SYS_ADMIN only the filter can say EPERM (without the
    // filter the kernel would answer ENOENT for a missing path).
    let o = c.sh(&["--capability", "CAP_SYS_ADMIN"], "swapoff /nonexistent-swap; echo rc=$?").success();
    assert!(
        o.stderr.contains("Operation not permitted"),
        "swapoff should be refused by the seccomp filter (EPERM): {}",
        o.describe()
    );
}

#[test]
fn non_root_user_has_no_effective_capabilities() {
    let c = Ctx::busybox();
    let st = status(&c, &["-u", "1000:1000"]);
    assert_eq!(cap_mask(&st, "CapEff"), 0, "uid 1000 must have no effective capabilities:\n{st}");
    assert_eq!(cap_mask(&st, "CapPrm"), 0, "uid 1000 must have no permitted capabilities:\n{st}");
    assert_eq!(cap_mask(&st, "CapBnd"), expected_default_caps(), "bounding set:\n{st}");
}
