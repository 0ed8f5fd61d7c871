//! Exit statuses: the command's own, 128+N for signal N, 127 for a
//! missing command, 126 for one that cannot be executed — and one-line
//! errors for bad input (unknown image, bad flags, name clashes).

use crate::harness::berth::unique;
use crate::harness::container::Ctx;

#[test]
fn exit_status_is_the_commands() {
    let c = Ctx::busybox();
    c.sh(&[], "exit 3").status(3);
    c.sh(&[], "exit 0").status(0);
    c.sh(&[], "exit 255").status(255);
    c.run_image(&[], &["false"]).status(1);
}

#[test]
fn command_killed_by_sigterm_gives_143() {
    let c = Ctx::busybox();
    c.sh(&[], "kill -TERM $$; sleep 5").status(143);
}

#[test]
fn command_killed_by_sigkill_gives_137() {
    let c = Ctx::busybox();
    c.sh(&[], "kill -KILL $$; sleep 5").status(137);
}

#[test]
fn missing_command_gives_127_and_names_it() {
    let c = Ctx::busybox();
    let o = c.run_image(&[], &["no-such-command", "arg"]).status(127);
    assert!(
        o.stderr.contains("\"no-such-command\"") && o.stderr.contains("not found"),
        "the message must name the command: {}",
        o.describe()
    );
    assert_eq!(o.stderr.trim().lines().count(), 1, "one line: {}", o.describe());
    let o = c.run_image(&[], &["/bin/no-such-path"]).status(127);
    assert!(o.stderr.contains("/bin/no-such-path"), "{}", o.describe());
}

#[test]
fn non_executable_file_gives_126() {
    let c = Ctx::busybox();
    let o = c.run_image(&[], &["/bin/notexec"]).status(126);
    assert!(o.stderr.contains("/bin/notexec"), "the message must name the file: {}", o.describe());
    let o = c.run_image(&[], &["/srv/work"]).status(126);
    assert!(o.stderr.contains("/srv/work"), "a directory is not executable either: {}", o.describe());
}

#[test]
fn unknown_image_fails_with_a_message_naming_it() {
    let c = Ctx::busybox();
    let name = format!("no-such-image-{}", unique());
    c.run(&[&name, "true"]).failure().stderr_mentions(&[&name]);
}

#[test]
fn unknown_machine_fails_with_a_message_naming_it() {
    let c = Ctx::busybox();
    let name = format!("no-such-machine-{}", unique());
    c.run(&["-M", &name, "true"]).failure().stderr_mentions(&[&name]);
}

#[test]
fn bad_flags_fail_with_a_short_message() {
    let c = Ctx::busybox();
    let o = c.run(&["--no-such-flag", &c.image, "true"]);
    assert!(matches!(o.code, Some(c) if c != 0), "{}", o.describe());
    assert!(o.stderr.contains("--no-such-flag"), "{}", o.describe());
    c.run_image(&["--volatile=bogus"], &["true"]).failure().stderr_mentions(&["bogus"]);
    c.run_image(&["--resolv-conf", "bogus"], &["true"]).failure().stderr_mentions(&["bogus"]);
    c.run_image(&["--memory", "lots"], &["true"]).failure().stderr_mentions(&["lots"]);
    c.run_image(&["--cpus", "0"], &["true"]).failure().stderr_mentions(&["cpus"]);
    c.run_image(&["--capability", "CAP_NO_SUCH"], &["true"]).failure().stderr_mentions(&["CAP_NO_SUCH"]);
    c.run_image(&["--bind", "relative/path:/x"], &["true"]).failure().stderr_mentions(&["relative/path"]);
    c.run_image(&["-E", "=novalue"], &["true"]).failure().stderr_mentions(&["=novalue"]);
    c.run(&[]).failure();
}

#[test]
fn command_killed_by_sigint_gives_130() {
    let c = Ctx::busybox();
    c.sh(&[], "kill -INT $$; sleep 5").status(130);
}

#[test]
fn rlimits_are_inherited_from_berths_caller() {
    let c = Ctx::busybox();
    let (cmd, token) = c.command(&[&c.image, "/bin/sh", "-c", "echo soft=$(ulimit -n); echo hard=$(ulimit -Hn)"]);
    let mut wrapped = std::process::Command::new("prlimit");
    wrapped.arg("--nofile=512:1024").arg(cmd.get_program()).args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => wrapped.env(k, v),
            None => wrapped.env_remove(k),
        };
    }
    let o = c.spawn_command(wrapped, token, "prlimit --nofile=512:1024 berth run".into(), false).wait().success();
    assert_eq!(o.field("soft").as_deref(), Some("512"), "{}", o.describe());
    assert_eq!(o.field("hard").as_deref(), Some("1024"), "{}", o.describe());
}
