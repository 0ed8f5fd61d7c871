//! Root filesystem modes: image roots thrown away, `-D` in place,
//! `--read-only`, `-x/--ephemeral`, `--volatile=overlay|state|yes`, and
//! persistent machines (`--name`, `-M`, `--rm`).

use std::fs;

use super::{assert_tree_unchanged, mount_at, parse_mountinfo};
use crate::harness::berth::unique;
use crate::harness::container::{s, Ctx};
use crate::harness::debootstrap;
use crate::harness::listing::Listing;

const WRITE_EVERYWHERE: &str = "echo new > /etc/new-file; echo changed > /etc/image-file; rm /data/lower-file; \
     mkdir /newdir; echo inside=$(cat /etc/new-file)";

#[test]
fn image_root_changes_are_thrown_away_without_name() {
    let c = Ctx::busybox();
    c.sh(&[], WRITE_EVERYWHERE).success();
    let o = c.sh(&[], "cat /etc/image-file /data/lower-file; test -e /etc/new-file && echo leaked; true").success();
    assert_eq!(o.out(), "from the image\nlower\n", "a second run must see the pristine image: {}", o.describe());
}

#[test]
fn read_only_root_refuses_writes_but_tmp_and_run_work() {
    let c = Ctx::busybox();
    let o = c
        .sh(
            &["--read-only"],
            "if touch /newfile; then echo root=ok; else echo root=refused; fi; \
             if echo x > /etc/image-file; then echo etc=ok; else echo etc=refused; fi; \
             touch /tmp/t && echo tmp=ok; touch /run/r && echo run=ok; cat /etc/resolv.conf >/dev/null && echo resolv=ok",
        )
        .success();
    for (k, v) in [("root", "refused"), ("etc", "refused"), ("tmp", "ok"), ("run", "ok"), ("resolv", "ok")] {
        assert_eq!(o.field(k).as_deref(), Some(v), "{k}: {}", o.describe());
    }
    assert!(o.stderr.to_lowercase().contains("read-only"), "{}", o.describe());
}

#[test]
fn read_only_directory_tree_is_left_unchanged() {
    let c = Ctx::busybox();
    let tree = c.busybox_tree();
    let before = Listing::of(&tree);
    let o = c
        .run(&[
            "--read-only",
            "-D",
            &s(&tree),
            "/bin/sh",
            "-c",
            "if touch /x; then echo root=ok; else echo root=refused; fi",
        ])
        .success();
    assert_eq!(o.field("root").as_deref(), Some("refused"), "{}", o.describe());
    assert_tree_unchanged(&before, &tree, "--read-only -D");
}

#[test]
fn read_only_tree_without_resolv_conf_is_not_written() {
    let c = Ctx::busybox();
    let tree = c.busybox_tree();
    fs::remove_file(tree.join("etc/resolv.conf")).unwrap();
    let before = Listing::of(&tree);
    c.run(&["--read-only", "-D", &s(&tree), "true"]).success();
    assert_tree_unchanged(&before, &tree, "--read-only -D on a tree without /etc/resolv.conf");
}

#[test]
fn directory_tree_without_ephemeral_is_changed_in_place() {
    let c = Ctx::busybox();
    let tree = c.busybox_tree();
    c.run(&["-D", &s(&tree), "/bin/sh", "-c", "echo kept > /root/persist; rm /data/lower-file"]).success();
    assert_eq!(fs::read_to_string(tree.join("root/persist")).ok().as_deref(), Some("kept\n"));
    assert!(!tree.join("data/lower-file").exists(), "a delete inside -D must reach the tree");
}

fn discards_changes_to_a_tree(flags: &[&str]) {
    let c = Ctx::busybox();
    let tree = c.busybox_tree();
    let before = Listing::of(&tree);
    let mut args: Vec<&str> = flags.to_vec();
    let t = s(&tree);
    args.extend_from_slice(&["-D", &t, "/bin/sh", "-c", WRITE_EVERYWHERE]);
    let o = c.run(&args).success();
    assert_eq!(o.field("inside").as_deref(), Some("new"), "writes work inside: {}", o.describe());
    assert_tree_unchanged(&before, &tree, &format!("{flags:?} -D"));
}

#[test]
fn ephemeral_discards_changes_to_a_directory_tree() {
    discards_changes_to_a_tree(&["-x"]);
    discards_changes_to_a_tree(&["--ephemeral"]);
}

#[test]
fn volatile_overlay_discards_changes_to_a_directory_tree() {
    discards_changes_to_a_tree(&["--volatile=overlay"]);
}

#[test]
fn volatile_state_makes_var_writable_and_the_root_read_only() {
    let c = Ctx::busybox();
    let tree = c.busybox_tree();
    let before = Listing::of(&tree);
    let o = c
        .run(&[
            "--volatile=state",
            "-D",
            &s(&tree),
            "/bin/sh",
            "-c",
            "if touch /var/state-file; then echo var=ok; else echo var=refused; fi; \
             if touch /etc/x; then echo etc=ok; else echo etc=refused; fi; cat /proc/self/mountinfo",
        ])
        .success();
    assert_eq!(o.field("var").as_deref(), Some("ok"), "{}", o.describe());
    assert_eq!(o.field("etc").as_deref(), Some("refused"), "{}", o.describe());
    let table = parse_mountinfo(&o.out());
    assert_eq!(mount_at(&table, "/var").map(|m| m.fstype.as_str()), Some("tmpfs"), "/var: {}", o.describe());
    assert!(mount_at(&table, "/").is_some_and(|m| m.read_only()), "/ must be read-only: {}", o.describe());
    assert_tree_unchanged(&before, &tree, "--volatile=state -D");
}

#[test]
fn volatile_yes_gives_a_tmpfs_root_with_the_trees_usr_read_only() {
    let c = Ctx::busybox();
    let tree = debootstrap::tree();
    let o = c
        .run(&[
            "--volatile=yes",
            "-D",
            &s(&tree),
            "/bin/sh",
            "-c",
            "echo rootfs=$(stat -f -c %T /); \
             if touch /new-root-file; then echo root=ok; else echo root=refused; fi; \
             if touch /usr/new-usr-file; then echo usr=ok; else echo usr=refused; fi; \
             test -x /usr/bin/dpkg && echo dpkg=present; \
             if test -e /etc/debian_version; then echo etc=from-tree; else echo etc=absent; fi",
        ])
        .success();
    assert_eq!(o.field("rootfs").as_deref(), Some("tmpfs"), "{}", o.describe());
    assert_eq!(o.field("root").as_deref(), Some("ok"), "{}", o.describe());
    assert_eq!(o.field("usr").as_deref(), Some("refused"), "/usr must be read-only: {}", o.describe());
    assert_eq!(o.field("dpkg").as_deref(), Some("present"), "/usr comes from the tree: {}", o.describe());
    assert_eq!(o.field("etc").as_deref(), Some("absent"), "only /usr comes from the tree: {}", o.describe());
    assert!(!tree.join("new-root-file").exists() && !tree.join("usr/new-usr-file").exists(), "the tree changed");
}

#[test]
fn volatile_yes_needs_usr_and_says_so() {
    let c = Ctx::busybox();
    let tree = c.dir(&format!("no-usr-{}", unique()));
    fs::create_dir_all(tree.join("etc")).unwrap();
    c.run(&["--volatile=yes", "-D", &s(&tree), "/bin/sh"]).failure().stderr_mentions(&["/usr"]);
}

#[test]
fn ephemeral_debootstrap_tree_discards_writes() {
    let c = Ctx::busybox();
    let tree = debootstrap::tree();
    let version = fs::read_to_string(tree.join("etc/debian_version")).unwrap();
    let o = c
        .run(&[
            "-x",
            "-D",
            &s(&tree),
            "/bin/bash",
            "-c",
            "echo written > /etc/berth-ephemeral && rm /etc/debian_version && echo inside=$(cat /etc/berth-ephemeral) \
             && cat /etc/os-release | head -1",
        ])
        .success();
    assert_eq!(o.field("inside").as_deref(), Some("written"), "{}", o.describe());
    assert!(o.out().contains("Debian"), "{}", o.describe());
    assert!(!tree.join("etc/berth-ephemeral").exists(), "-x wrote into the tree");
    assert_eq!(fs::read_to_string(tree.join("etc/debian_version")).unwrap(), version, "-x deleted from the tree");
}

#[test]
fn named_machine_keeps_changes_for_a_later_run_m() {
    let c = Ctx::busybox();
    let name = format!("keep-{}", unique());
    c.sh(&["--name", &name], "echo kept > /root/state; rm /data/lower-file").success();
    assert!(c.machine_exists(&name), "--name must leave machine {name} in the store");
    let o = c
        .run(&[
            "-M",
            &name,
            "/bin/sh",
            "-c",
            "cat /root/state; hostname; test -e /data/lower-file && echo undeleted; true",
        ])
        .success();
    assert_eq!(o.out(), format!("kept\n{name}\n"), "{}", o.describe());
    // A fresh run of the image is not affected.
    let o = c.sh(&[], "test -e /root/state && echo leaked; cat /data/lower-file").success();
    assert_eq!(o.out(), "lower\n", "{}", o.describe());
}

#[test]
fn name_of_an_existing_machine_is_refused() {
    let c = Ctx::busybox();
    let name = format!("taken-{}", unique());
    c.sh(&["--name", &name], "echo first > /root/who").success();
    let o = c.sh(&["--name", &name], "echo second > /root/who").failure().stderr_mentions(&[&name]);
    assert_ne!(o.code, Some(0));
    let o = c.run(&["-M", &name, "cat", "/root/who"]).success();
    assert_eq!(o.out(), "first\n", "the refused run must not touch the machine: {}", o.describe());
}

#[test]
fn ephemeral_run_of_a_machine_discards_its_changes() {
    let c = Ctx::busybox();
    let name = format!("eph-{}", unique());
    c.sh(&["--name", &name], "echo v1 > /root/state").success();
    let o = c.run(&["-x", "-M", &name, "/bin/sh", "-c", "echo v2 > /root/state; cat /root/state"]).success();
    assert_eq!(o.out(), "v2\n", "{}", o.describe());
    let o = c.run(&["-M", &name, "cat", "/root/state"]).success();
    assert_eq!(o.out(), "v1\n", "-x -M must not keep changes: {}", o.describe());
}

#[test]
fn rm_with_name_removes_the_machine_afterwards() {
    let c = Ctx::busybox();
    let name = format!("gone-{}", unique());
    c.sh(&["--rm", "--name", &name], "echo x > /root/f; hostname").success();
    assert!(!c.machine_exists(&name), "--rm --name left machine {name} in the store");
    c.run(&["-M", &name, "true"]).failure().stderr_mentions(&[&name]);
    // Even when the command fails.
    c.sh(&["--rm", "--name", &name], "exit 9").status(9);
    assert!(!c.machine_exists(&name), "--rm --name left machine {name} after a failing command");
}

#[test]
fn volatile_without_a_value_means_yes() {
    let c = Ctx::busybox();
    let tree = debootstrap::tree();
    let o = c.run(&["--volatile", "-D", &s(&tree), "/bin/sh", "-c", "stat -f -c %T /"]).success();
    assert_eq!(o.out().trim(), "tmpfs", "{}", o.describe());
}

#[test]
fn running_machine_cannot_be_started_twice() {
    let c = Ctx::busybox();
    let name = format!("busy-{}", unique());
    let mut r = c.spawn(&["--name", &name, &c.image, "/bin/sh", "-c", "echo ready; sleep 30"]);
    r.wait_for_output("ready", std::time::Duration::from_secs(10));
    c.run(&["-M", &name, "true"]).failure().stderr_mentions(&[&name]);
    r.signal(rustix::process::Signal::TERM);
    r.wait().status(143);
    c.run(&["-M", &name, "true"]).success();
}

#[test]
fn missing_directory_and_bad_machine_names_fail_with_a_message() {
    let c = Ctx::busybox();
    let missing = c.berth.dir().join("no-such-tree");
    c.run(&["-D", &s(&missing), "true"]).failure().stderr_mentions(&["no-such-tree"]);
    c.run_image(&["--name", "bad/name"], &["true"]).failure().stderr_mentions(&["bad/name"]);
    c.run_image(&["--name", "-dash"], &["true"]).failure();
    assert!(!c.store().join("machines").join("bad").exists());
}
