//! `--resolv-conf`: copy-host (default), bind-host, replace-host, delete, off.

use std::fs;

use super::{mount_at, parse_mountinfo};
use crate::harness::container::{Ctx, IMAGE_RESOLV_CONF};

fn host_resolv_conf() -> String {
    fs::read_to_string("/etc/resolv.conf").unwrap_or_default()
}

#[test]
fn default_copies_the_hosts_resolv_conf() {
    let c = Ctx::busybox();
    let host = host_resolv_conf();
    let o = c.run_image(&[], &["cat", "/etc/resolv.conf"]).success();
    assert_eq!(o.out(), host, "default (copy-host): {}", o.describe());
    let o = c.run_image(&["--resolv-conf", "copy-host"], &["cat", "/etc/resolv.conf"]).success();
    assert_eq!(o.out(), host, "copy-host: {}", o.describe());
    // A copy: writing it inside does not touch the host's.
    c.sh(&[], "echo '# changed inside' >> /etc/resolv.conf").success();
    assert_eq!(host_resolv_conf(), host, "the host's /etc/resolv.conf changed");
}

#[test]
fn off_leaves_the_images_resolv_conf() {
    let c = Ctx::busybox();
    let o = c.run_image(&["--resolv-conf", "off"], &["cat", "/etc/resolv.conf"]).success();
    assert_eq!(o.out(), IMAGE_RESOLV_CONF, "{}", o.describe());
}

#[test]
fn delete_removes_resolv_conf() {
    let c = Ctx::busybox();
    let o = c
        .sh(&["--resolv-conf", "delete"], "if [ -e /etc/resolv.conf ]; then echo present; else echo absent; fi")
        .success();
    assert_eq!(o.out().trim(), "absent", "{}", o.describe());
}

#[test]
fn replace_host_writes_the_hosts_content() {
    let c = Ctx::busybox();
    let o = c.run_image(&["--resolv-conf", "replace-host"], &["cat", "/etc/resolv.conf"]).success();
    assert_eq!(o.out(), host_resolv_conf(), "{}", o.describe());
}

#[test]
fn bind_host_mounts_the_hosts_file_read_only() {
    let c = Ctx::busybox();
    let o = c
        .sh(
            &["--resolv-conf", "bind-host"],
            "cat /etc/resolv.conf; if echo x >> /etc/resolv.conf; then echo write=ok; else echo write=refused; fi; \
             cat /proc/self/mountinfo",
        )
        .success();
    assert!(o.out().starts_with(&host_resolv_conf()), "{}", o.describe());
    assert_eq!(o.field("write").as_deref(), Some("refused"), "{}", o.describe());
    let table = parse_mountinfo(&o.out());
    assert!(mount_at(&table, "/etc/resolv.conf").is_some(), "bind-host must bind-mount: {}", o.describe());
}

#[test]
fn read_only_root_still_gets_the_hosts_resolv_conf() {
    let c = Ctx::busybox();
    let o = c.run_image(&["--read-only"], &["cat", "/etc/resolv.conf"]).success();
    assert_eq!(o.out(), host_resolv_conf(), "{}", o.describe());
}
