//! The container's process: environment (image Env, `-E`,
//! `container=berth`), working directory (image WorkingDir, `--chdir`),
//! Entrypoint/Cmd combined as docker does, `--entrypoint`, and numeric
//! `-u` on the busybox image.

use super::parse_env;
use crate::harness::container::{entrypoint_image, s, status_field, Ctx};

#[test]
fn environment_has_image_env_setenv_and_container_berth() {
    let c = Ctx::busybox();
    let o = c.run_image(&["-E", "SHARED=from-cli", "-E", "NEW_VAR=x y", "--setenv", "EMPTY="], &["env"]).success();
    let env = parse_env(&o.out());
    let want = [
        ("IMAGE_VAR", "from-image"),
        ("SHARED", "from-cli"),
        ("NEW_VAR", "x y"),
        ("EMPTY", ""),
        ("WITH_EQUALS", "a=b=c"),
        ("container", "berth"),
        ("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
        ("HOME", "/root"),
    ];
    for (k, v) in want {
        assert_eq!(env.get(k).map(String::as_str), Some(v), "{k} in the container's environment: {}", o.describe());
    }
    assert!(!env.contains_key("TERM"), "TERM is set only with -t: {}", o.describe());
    let leaked: Vec<&String> =
        env.keys().filter(|k| k.starts_with("CARGO") || k.starts_with("RUST") || *k == "XDG_RUNTIME_DIR").collect();
    assert!(leaked.is_empty(), "host environment leaked into the container: {leaked:?}");
}

#[test]
fn working_directory_is_the_images_workdir_or_chdir() {
    let c = Ctx::busybox();
    let o = c.run_image(&[], &["pwd"]).success();
    assert_eq!(o.out().trim(), "/srv/work", "WorkingDir of the image: {}", o.describe());
    let o = c.run_image(&["--chdir", "/etc"], &["pwd"]).success();
    assert_eq!(o.out().trim(), "/etc", "--chdir: {}", o.describe());
    let tree = c.busybox_tree();
    let o = c.run(&["-x", "-D", &s(&tree), "pwd"]).success();
    assert_eq!(o.out().trim(), "/", "a -D tree has no WorkingDir: {}", o.describe());
}

#[test]
fn chdir_to_a_missing_directory_fails_with_a_message_naming_it() {
    let c = Ctx::busybox();
    let o = c.run_image(&["--chdir", "/no/such/dir"], &["pwd"]).failure().stderr_mentions(&["/no/such/dir"]);
    assert_eq!(o.code, Some(125), "a setup failure exits 125: {}", o.describe());
    assert!(o.stderr.starts_with("berth: "), "setup failures are reported as `berth: …`: {}", o.describe());
}

#[test]
fn image_cmd_runs_by_default_and_arguments_replace_it() {
    let c = Ctx::busybox();
    let o = c.run_image(&[], &[]).success();
    assert_eq!(o.out().trim(), "default-cmd", "the image's Cmd: {}", o.describe());
    let o = c.run_image(&[], &["echo", "replaced"]).success();
    assert_eq!(o.out().trim(), "replaced", "{}", o.describe());
}

#[test]
fn entrypoint_and_cmd_combine_as_docker_does() {
    let c = Ctx::busybox();
    let ep = c.add_image("ep", &entrypoint_image());
    let o = c.run(&[&ep]).success();
    assert_eq!(o.out().trim(), "ep default-arg", "Entrypoint + Cmd: {}", o.describe());
    let o = c.run(&[&ep, "a", "b"]).success();
    assert_eq!(o.out().trim(), "ep a b", "arguments replace Cmd, not the Entrypoint: {}", o.describe());
    let o = c.run(&["--entrypoint", "/bin/echo", &ep, "only", "args"]).success();
    assert_eq!(o.out().trim(), "only args", "--entrypoint replaces the Entrypoint and drops Cmd: {}", o.describe());
    let o = c.run(&["--entrypoint", "/bin/hostname", &ep]).success();
    assert_eq!(o.out().trim(), c.repo, "--entrypoint without arguments runs alone: {}", o.describe());
    let o = c.run(&["--entrypoint", "", &ep, "echo", "plain"]).success();
    assert_eq!(o.out().trim(), "plain", "an empty --entrypoint runs the command as given: {}", o.describe());
}

#[test]
fn numeric_user_and_group_apply_without_a_passwd_entry() {
    let c = Ctx::busybox();
    let o = c.run_image(&["-u", "1000"], &["cat", "/proc/self/status"]).success();
    let st = o.out();
    assert_eq!(status_field(&st, "Uid").as_deref(), Some("1000\t1000\t1000\t1000"), "{}", o.describe());
    assert_eq!(status_field(&st, "Gid").as_deref(), Some("0\t0\t0\t0"), "an unknown uid gets gid 0: {}", o.describe());
    let o = c.run_image(&["--user", "1000:2000"], &["cat", "/proc/self/status"]).success();
    let st = o.out();
    assert_eq!(status_field(&st, "Uid").as_deref(), Some("1000\t1000\t1000\t1000"), "{}", o.describe());
    assert_eq!(status_field(&st, "Gid").as_deref(), Some("2000\t2000\t2000\t2000"), "{}", o.describe());
    assert_eq!(status_field(&st, "Groups").as_deref(), Some("2000"), "supplementary groups: {}", o.describe());
    let o = c.run_image(&["-u", "nobody"], &["id"]).success();
    assert!(o.out().starts_with("uid=65534(nobody) gid=65534(nogroup)"), "{}", o.describe());
}

#[test]
fn unknown_user_name_fails_with_a_message_naming_it() {
    let c = Ctx::busybox();
    c.run_image(&["-u", "no-such-user"], &["id"]).failure().stderr_mentions(&["no-such-user"]);
}

#[test]
fn image_user_applies_unless_overridden() {
    let c = Ctx::busybox();
    let base = crate::harness::container::run_image();
    let mut config = base.config_json()["config"].clone();
    config["User"] = serde_json::json!("1234:5678");
    let img = c.add_image("user", &crate::harness::oci::Image::with_config("amd64", base.layers.clone(), config));
    let o = c.run(&[&img, "/bin/sh", "-c", "echo uid=$(id -u) gid=$(id -g)"]).success();
    assert_eq!(o.out().trim(), "uid=1234 gid=5678", "the image's User: {}", o.describe());
    let o = c.run(&["-u", "0", &img, "/bin/sh", "-c", "echo uid=$(id -u) gid=$(id -g)"]).success();
    assert_eq!(o.out().trim(), "uid=0 gid=0", "-u overrides the image's User: {}", o.describe());
}

#[test]
fn image_without_entrypoint_or_cmd_needs_a_command() {
    let c = Ctx::busybox();
    let base = crate::harness::container::run_image();
    let config = serde_json::json!({"Env": ["PATH=/bin"]});
    let img = c.add_image("nocmd", &crate::harness::oci::Image::with_config("amd64", base.layers.clone(), config));
    c.run(&[&img]).failure();
    let o = c.run(&[&img, "echo", "given"]).success();
    assert_eq!(o.out(), "given\n", "{}", o.describe());
}

#[test]
fn the_command_starts_with_default_signals_and_scripts_without_a_shebang_run() {
    let c = Ctx::busybox();
    // berth itself ignores SIGPIPE (Rust's runtime does); an ignored
    // signal stays ignored across exec, so the command must get it back
    // at its default, or `yes | head` pipelines never end by SIGPIPE.
    let o = c.run_image(&[], &["grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"]).success().out();
    let mask = |name: &str| {
        let l = o.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} in {o}"));
        u64::from_str_radix(l.split_whitespace().nth(1).unwrap_or("x"), 16).expect("mask")
    };
    assert_eq!(mask("SigBlk:"), 0, "no signal blocked:\n{o}");
    assert_eq!(mask("SigIgn:") & (1 << (libc_sigpipe() - 1)), 0, "SIGPIPE is not ignored:\n{o}");
    // As execvp: a file the kernel cannot execute runs as a shell script;
    // a name not found is 127, a file that may not run 126.
    let name = format!("scr{}", std::process::id());
    c.run_image(
        &["--name", &name],
        &[
            "/bin/sh",
            "-c",
            "printf 'echo from-script $1\\n' > /bin/noshebang; chmod +x /bin/noshebang; printf 'x' > /noexec",
        ],
    )
    .success();
    let o = c.run(&["-M", &name, "noshebang", "arg1"]).success().out();
    assert_eq!(o.trim(), "from-script arg1");
    let o = c.run(&["-M", &name, "/bin/noshebang", "arg2"]).success().out();
    assert_eq!(o.trim(), "from-script arg2");
    c.run(&["-M", &name, "no-such-command"]).status(127);
    c.run(&["-M", &name, "/noexec"]).status(126);
}

/// SIGPIPE's number (13 on every Linux architecture).
fn libc_sigpipe() -> u32 {
    rustix::process::Signal::PIPE.as_raw() as u32
}
