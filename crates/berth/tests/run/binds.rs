//! `--bind`, `--bind-ro`, `--tmpfs`, `--overlay`, `--overlay-ro`.

use std::fs;

use super::{assert_tree_unchanged, mount_at, parse_mountinfo};
use crate::harness::container::{s, Ctx};
use crate::harness::listing::Listing;

#[test]
fn bind_is_visible_both_ways() {
    let c = Ctx::busybox();
    let host = c.dir("shared");
    fs::write(host.join("from-host"), "written on the host\n").unwrap();
    // Mapped: the host's root-owned directory is container root's.
    let bind = format!("{}:/mnt/shared:idmap", s(&host));
    let o = c
        .sh(&["--bind", &bind], "cat /mnt/shared/from-host; echo written inside > /mnt/shared/from-container")
        .success();
    assert_eq!(o.out(), "written on the host\n", "{}", o.describe());
    assert_eq!(
        fs::read_to_string(host.join("from-container")).ok().as_deref(),
        Some("written inside\n"),
        "a file written in the container must appear on the host"
    );
}

#[test]
fn bind_without_destination_uses_the_same_path_and_follows_host_changes() {
    let c = Ctx::busybox();
    let host = c.dir("same-path");
    let p = s(&host);
    let mut r = c.spawn(&[
        "--bind",
        &p,
        &c.image,
        "/bin/sh",
        "-c",
        &format!("echo ready; while [ ! -e {p}/late ]; do sleep 0.05; done; cat {p}/late"),
    ]);
    r.wait_for_output("ready", std::time::Duration::from_secs(10));
    // Written aside and renamed in: the container's loop must never see
    // the file before its content.
    fs::write(host.join(".late"), "made on the host while running\n").unwrap();
    fs::rename(host.join(".late"), host.join("late")).unwrap();
    let o = r.wait().success();
    assert!(o.out().ends_with("made on the host while running\n"), "{}", o.describe());
}

#[test]
fn bind_ro_refuses_writes() {
    let c = Ctx::busybox();
    let host = c.dir("ro-src");
    fs::write(host.join("f"), "original\n").unwrap();
    for opts in [
        vec!["--bind-ro".to_string(), format!("{}:/ro", s(&host))],
        vec!["--bind".to_string(), format!("{}:/ro:ro", s(&host))],
    ] {
        let mut args: Vec<&str> = opts.iter().map(String::as_str).collect();
        args.push(&c.image);
        args.extend_from_slice(&[
            "/bin/sh",
            "-c",
            "cat /ro/f; if echo changed > /ro/f; then echo write=ok; else echo write=refused; fi; \
             if touch /ro/new; then echo create=ok; else echo create=refused; fi",
        ]);
        let o = c.run(&args).success();
        assert_eq!(o.field("write").as_deref(), Some("refused"), "{}", o.describe());
        assert_eq!(o.field("create").as_deref(), Some("refused"), "{}", o.describe());
        assert!(o.stderr.to_lowercase().contains("read-only"), "{}", o.describe());
        assert_eq!(fs::read_to_string(host.join("f")).unwrap(), "original\n");
        assert!(!host.join("new").exists());
    }
}

#[test]
fn bind_of_a_single_file() {
    let c = Ctx::busybox();
    let f = c.dir("file-src").join("config");
    fs::write(&f, "key=value\n").unwrap();
    let bind = format!("{}:/etc/app.conf", s(&f));
    let o = c.run_image(&["--bind-ro", &bind], &["cat", "/etc/app.conf"]).success();
    assert_eq!(o.out(), "key=value\n", "{}", o.describe());
}

#[test]
fn missing_bind_source_fails_with_a_message_naming_it() {
    let c = Ctx::busybox();
    let missing = c.berth.dir().join("no-such-source");
    let bind = format!("{}:/x", s(&missing));
    c.run_image(&["--bind", &bind], &["true"]).failure().stderr_mentions(&[&s(&missing)]);
    c.run_image(&["--bind-ro", &bind], &["true"]).failure().stderr_mentions(&[&s(&missing)]);
    assert!(!missing.exists(), "berth must not create a missing bind source");
}

#[test]
fn tmpfs_mounts_an_empty_writable_tmpfs_with_options() {
    let c = Ctx::busybox();
    let o = c
        .sh(
            &["--tmpfs", "/scratch", "--tmpfs", "/etc/private:mode=0700,size=1m"],
            "ls -A /scratch | wc -l; echo x > /scratch/f && echo write=ok; stat -c 'mode=%a' /etc/private; \
             cat /proc/self/mountinfo",
        )
        .success();
    assert_eq!(o.lines()[0], "0", "the tmpfs must start empty: {}", o.describe());
    assert_eq!(o.field("write").as_deref(), Some("ok"), "{}", o.describe());
    assert_eq!(o.field("mode").as_deref(), Some("700"), "{}", o.describe());
    let table = parse_mountinfo(&o.out());
    assert_eq!(mount_at(&table, "/scratch").map(|m| m.fstype.as_str()), Some("tmpfs"), "{}", o.describe());
    let private = mount_at(&table, "/etc/private").expect("/etc/private mounted");
    assert!(private.super_opts.iter().any(|o| o == "size=1024k"), "size=1m: {private:?}");
}

#[test]
fn overlay_with_an_empty_upper_discards_writes() {
    let c = Ctx::busybox();
    let lower = c.dir("ovl-lower");
    fs::write(lower.join("f"), "lower content\n").unwrap();
    let before = Listing::of(&lower);
    let spec = format!("{}::/ovl", s(&lower));
    let o = c
        .sh(
            &["--overlay", &spec],
            "cat /ovl/f; echo changed > /ovl/f; echo new > /ovl/new; rm /ovl/f; echo new=$(cat /ovl/new)",
        )
        .success();
    assert!(o.out().starts_with("lower content\n"), "{}", o.describe());
    assert_eq!(o.field("new").as_deref(), Some("new"), "writes work inside: {}", o.describe());
    assert_tree_unchanged(&before, &lower, "--overlay LOWER::DST");
}

#[test]
fn overlay_with_an_upper_keeps_writes_there_and_leaves_the_lower_alone() {
    let c = Ctx::busybox();
    let lower = c.dir("ovl2-lower");
    let upper = c.dir("ovl2-upper");
    fs::write(lower.join("f"), "lower content\n").unwrap();
    let before = Listing::of(&lower);
    let spec = format!("{}:{}:/ovl", s(&lower), s(&upper));
    c.sh(&["--overlay", &spec], "echo changed > /ovl/f; echo new > /ovl/new").success();
    assert_tree_unchanged(&before, &lower, "--overlay LOWER:UPPER:DST (lower)");
    assert_eq!(fs::read_to_string(upper.join("f")).ok().as_deref(), Some("changed\n"));
    assert_eq!(fs::read_to_string(upper.join("new")).ok().as_deref(), Some("new\n"));
}

#[test]
fn overlay_ro_refuses_writes() {
    let c = Ctx::busybox();
    let lower = c.dir("ovl-ro-lower");
    let upper = c.dir("ovl-ro-upper");
    fs::write(lower.join("f"), "lower\n").unwrap();
    fs::write(upper.join("g"), "upper\n").unwrap();
    let spec = format!("{}:{}:/ovl", s(&lower), s(&upper));
    let o = c
        .sh(
            &["--overlay-ro", &spec],
            "cat /ovl/f /ovl/g; if touch /ovl/x; then echo write=ok; else echo write=refused; fi",
        )
        .success();
    assert!(o.out().starts_with("lower\nupper\n"), "both layers visible: {}", o.describe());
    assert_eq!(o.field("write").as_deref(), Some("refused"), "{}", o.describe());
}

#[test]
fn overlay_lowers_stack_left_to_right_as_in_systemd_nspawn() {
    let c = Ctx::busybox();
    let l1 = c.dir("stack-l1");
    let l2 = c.dir("stack-l2");
    fs::write(l1.join("f"), "l1\n").unwrap();
    fs::write(l1.join("only1"), "1\n").unwrap();
    fs::write(l2.join("f"), "l2\n").unwrap();
    let spec = format!("{}:{}::/ovl", s(&l1), s(&l2));
    let o = c.sh(&["--overlay", &spec], "cat /ovl/f /ovl/only1").success();
    assert_eq!(o.out(), "l2\n1\n", "the second-to-last path is the top layer: {}", o.describe());
}

#[test]
fn mounts_made_inside_do_not_propagate_to_the_host() {
    let c = Ctx::busybox();
    let host = c.dir("propagation");
    let bind = format!("{}:/b:idmap", s(&host));
    // Mounting inside takes CAP_SYS_ADMIN, which commands lack by default.
    let mut r = c.spawn(&[
        "--capability",
        "CAP_SYS_ADMIN",
        "--bind",
        &bind,
        &c.image,
        "/bin/sh",
        "-c",
        "mkdir -p /b/sub && mount -t tmpfs inner /b/sub && echo x > /b/sub/inside && \
         mount -t tmpfs other /srv && echo ready && sleep 30",
    ]);
    r.wait_for_output("ready", std::time::Duration::from_secs(10));
    let sub = host.join("sub");
    let mounted = crate::harness::mounts::is_mounted(&sub);
    let leaked = sub.join("inside").exists();
    r.signal(rustix::process::Signal::TERM);
    r.wait().status(143);
    assert!(!mounted, "a tmpfs mounted inside the container on a bind appeared on the host at {}", sub.display());
    assert!(!leaked, "a file written on the container's own tmpfs appeared in the host directory");
}
