//! Settings that stick (issue 10, item 5): `create IMAGE NAME [OPTIONS]
//! [-- CMD]` and `run --name` keep the machine's run options and command;
//! `run -M`, `start` and the unit `enable` writes use them, with the
//! command line's options on top; `inspect` and `machines --json` show
//! them; options that are not settings are refused at `create`.

use std::fs;

use super::kill_and_remove;
use crate::harness::berth::{run_command, unique};
use crate::harness::container::{s, Ctx};

#[test]
fn an_app_machine_runs_starts_and_is_started_by_its_unit_with_its_stored_settings() {
    let c = Ctx::probe();
    let m = format!("app-{}", unique());
    let work = c.dir("settings-work");
    let data = work.join("data");
    fs::create_dir(&data).expect("mkdir");
    fs::write(data.join("f"), "host file\n").expect("write");
    // A relative bind, as a user types it: kept as the absolute path.
    let mut create = c.berth.command([
        "create",
        &c.image,
        &m,
        "--bind",
        "data:/data",
        "-E",
        "GREETING=hi",
        "-u",
        "1000",
        "--chdir",
        "/data",
        "--",
        "/bin/sh",
        "-c",
        "echo $GREETING; id -u; pwd; cat f",
    ]);
    create.current_dir(&work);
    run_command(create).success();
    let rec = c.berth.run(["inspect", &m, "--json"]).success().json();
    let options: Vec<String> = serde_json::from_value(rec["settings"]["options"].clone()).expect("settings.options");
    assert!(options.contains(&format!("--bind={}:/data", s(&data))), "{options:?}");
    assert!(options.contains(&"--setenv=GREETING=hi".to_string()), "{options:?}");
    assert_eq!(rec["settings"]["command"][0], "/bin/sh");
    let listed = c.berth.run(["machines", "--json"]).success().json();
    let entry = listed.as_array().and_then(|a| a.iter().find(|e| e.to_string().contains(&m))).expect("listed");
    assert!(entry.to_string().contains("GREETING=hi"), "machines --json must show the settings: {entry}");

    // run -M: the stored settings; options given win or add up; a command replaces.
    let out = c.berth.run(["run", "-M", &m]).success().stdout;
    assert_eq!(out, "hi\n1000\n/data\nhost file\n");
    let out = c.berth.run(["run", "-M", &m, "-u", "0", "-E", "EXTRA=1"]).success().stdout;
    assert_eq!(out, "hi\n0\n/data\nhost file\n", "-u on the command line must win over the stored one");
    let out = c.berth.run(["run", "-M", &m, "/bin/sh", "-c", "echo $GREETING $EXTRA; pwd"]).success().stdout;
    assert_eq!(out, "hi\n/data\n", "a command given replaces the stored one, the settings stay");

    // start: detached, with the settings (bind, env, user, command).
    let svc = format!("svc-{}", unique());
    let bind = format!("{}:/data", s(&data));
    let script = "echo $GREETING $(id -u) > /data/started; exec sleep 300";
    c.berth
        .run([
            "create",
            &c.image,
            &svc,
            "--bind",
            &bind,
            "-E",
            "GREETING=up",
            "-u",
            "1000",
            "--",
            "/bin/sh",
            "-c",
            script,
        ])
        .success();
    fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o777)).expect("chmod");
    c.berth.run(["start", &svc]).success();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !data.join("started").exists() {
        assert!(std::time::Instant::now() < deadline, "start did not run the stored command with its bind");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(fs::read_to_string(data.join("started")).expect("started"), "up 1000\n");
    kill_and_remove(&c, &svc);

    // The unit's command line (what systemd runs at boot) for an app machine.
    let once = format!("once-{}", unique());
    c.berth.run(["create", &c.image, &once, "--bind", &bind, "--", "/bin/sh", "-c", "echo ran > /data/once"]).success();
    c.berth.run(["start", "--foreground", &once]).success();
    assert_eq!(fs::read_to_string(data.join("once")).expect("the unit's start ran the command"), "ran\n");
}

#[test]
fn create_refuses_options_that_are_not_settings_and_keeps_empty_ones_when_given_none() {
    let c = Ctx::probe();
    let m = format!("cre-{}", unique());
    c.berth.run(["create", &c.image, &m, "-d"]).failure().mentions_any(&["not a machine setting"]);
    c.berth.run(["create", &c.image, &m, "--rm", "--", "true"]).failure().mentions_any(&["not a machine setting"]);
    c.berth.run(["create", &c.image, &m, "--no-such-option"]).failure();
    assert!(!c.machine_exists(&m), "a refused create made the machine");
    c.berth.run(["create", &c.image, &m]).success();
    let rec = c.berth.run(["inspect", &m, "--json"]).success().json();
    assert_eq!(rec["settings"], serde_json::json!({"options": [], "command": []}), "{rec}");
    let text = c.berth.run(["inspect", &m]).success().stdout;
    assert!(text.contains("Options:") && text.contains("Command:"), "{text}");
}

#[test]
fn run_name_keeps_the_options_and_command_it_was_made_with() {
    let c = Ctx::probe();
    let m = format!("rn-{}", unique());
    c.berth.run(["run", "--name", &m, "-E", "K=v", &c.image, "/bin/sh", "-c", "echo $K"]).success();
    let out = c.berth.run(["run", "-M", &m]).success().stdout;
    assert_eq!(out, "v\n", "run -M must rerun what run --name was given");
    // Without a command it keeps running its image's (start runs it, not an init).
    let app = format!("rna-{}", unique());
    c.berth.run(["run", "--name", &app, &c.image]).success();
    let rec = c.berth.run(["inspect", &app, "--json"]).success().json();
    assert_eq!(rec["settings"]["image_command"], true, "{rec}");
    assert!(c.berth.run(["inspect", &app]).success().stdout.contains("(the image's)"));
}

#[test]
fn a_settings_file_applies_under_the_stored_settings_and_the_command_line() {
    let c = Ctx::probe();
    let m = format!("nsp-{}", unique());
    c.berth.run(["create", &c.image, &m]).success();
    let dir = c.dir("nspawn");
    let data = c.dir("nspawn-data");
    fs::write(data.join("f"), "host\n").expect("write");
    let file = format!(
        "# as systemd-nspawn reads it\n[Exec]\nParameters=/bin/sh -c \"echo $GREETING; pwd; cat /data/f\"\n\
         Environment=GREETING=from-file\nWorkingDirectory=/srv\nNoSuchKey=1\n\n[Files]\nBindReadOnly={}:/data\n\n\
         [Network]\nVirtualEthernet=yes\n",
        s(&data)
    );
    fs::write(dir.join(format!("{m}.nspawn")), file).expect("write the settings file");
    let run = |args: &[&str]| {
        let mut cmd = c.berth.command(args);
        cmd.env("BERTH_NSPAWN_PATH", &dir);
        run_command(cmd)
    };
    let out = run(&["run", "-M", &m]).success();
    assert_eq!(out.stdout, "from-file\n/srv\nhost\n");
    assert!(out.stderr.contains("NoSuchKey= is not known"), "an unknown key must be reported:\n{}", out.stderr);
    assert!(!out.stderr.contains("VirtualEthernet="), "VirtualEthernet= is supported:\n{}", out.stderr);
    // VirtualEthernet= asked for a network of its own: a veth, never the host's links.
    let net = run(&["run", "-M", &m, "/bin/sh", "-c", "ls /sys/class/net"]).success().stdout;
    assert_eq!(net.split_whitespace().collect::<Vec<_>>(), ["host0", "lo"], "the machine must have its veth only");
    // The command line wins; a read-only bind stays read-only.
    let out = run(&["run", "-M", &m, "--chdir", "/", "-E", "GREETING=cli"]).success().stdout;
    assert_eq!(out, "cli\n/\nhost\n");
    let w = run(&["run", "-M", &m, "/bin/sh", "-c", "echo x > /data/g"]).status;
    assert!(!w.success() && !data.join("g").exists(), "BindReadOnly= must bind read-only");
    // start uses the file too (no boot forced on a machine that has one).
    let started = c.dir("nspawn-started");
    fs::set_permissions(&started, std::os::unix::fs::PermissionsExt::from_mode(0o777)).expect("chmod");
    let svc = format!("nsvc-{}", unique());
    c.berth.run(["create", &c.image, &svc]).success();
    fs::write(
        dir.join(format!("{svc}.nspawn")),
        format!(
            "[Exec]\nParameters=/bin/sh -c 'echo $W > /out/w; exec sleep 300'\nEnvironment=W=started\n[Files]\nBind={}:/out\n",
            s(&started)
        ),
    )
    .expect("write");
    run(&["start", &svc]).success();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while fs::read_to_string(started.join("w")).unwrap_or_default() != "started\n" {
        assert!(std::time::Instant::now() < deadline, "start did not run the settings file's command");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    kill_and_remove(&c, &svc);
    // A named -D run reads its settings file too, as systemd-nspawn does
    // (and `-M` given here wins over nothing: the name must be valid).
    let tree = c.busybox_tree();
    let d = format!("nspd-{}", unique());
    fs::write(
        dir.join(format!("{d}.nspawn")),
        "[Exec]\nEnvironment=GREETING=dir-file\nParameters=/bin/sh -c 'echo $GREETING; hostname'\n",
    )
    .expect("write");
    let out = run(&["run", "-x", "-D", &s(&tree), "-M", &d]).success();
    assert_eq!(out.stdout, format!("dir-file\n{d}\n"));
    let out = run(&["run", "-x", "-D", &s(&tree), "-M", &d, "/bin/sh", "-c", "echo $GREETING"]).success();
    assert_eq!(out.stdout, "dir-file\n", "the command line's command replaces Parameters= only");
    run(&["run", "-x", "-D", &s(&tree), "-M", "../nspawn/x"]).failure();
    // A bad value is one line naming the file and line.
    fs::write(dir.join(format!("{m}.nspawn")), "[Exec]\nBoot=perhaps\n").expect("write");
    run(&["run", "-M", &m]).failure().mentions_any(&[".nspawn:2"]);
}

#[test]
fn a_command_alone_a_value_from_here_and_a_command_over_a_stored_boot() {
    let c = Ctx::probe();
    // `create IMAGE NAME -- CMD` with no options before the `--`.
    let bare = format!("bare-{}", unique());
    c.berth.run(["create", &c.image, &bare, "--", "/bin/echo", "bare command"]).success();
    assert_eq!(c.berth.run(["run", "-M", &bare]).success().stdout, "bare command\n");
    // -E NAME keeps the value it has where the machine is made.
    let env = format!("env-{}", unique());
    let mut create = c.berth.command([
        "create",
        &c.image,
        &env,
        "-E",
        "BERTH_T_DISPLAY",
        "--",
        "/bin/sh",
        "-c",
        "echo $BERTH_T_DISPLAY",
    ]);
    create.env("BERTH_T_DISPLAY", ":7");
    run_command(create).success();
    assert_eq!(
        c.berth.run(["run", "-M", &env]).success().stdout,
        ":7\n",
        "-E NAME must keep the value it had at create"
    );
    c.berth
        .run(["create", &c.image, &format!("unset-{}", unique()), "-E", "BERTH_T_UNSET_VAR"])
        .failure()
        .mentions_any(&["BERTH_T_UNSET_VAR=VALUE"]);
    // A command given runs instead of a stored --boot.
    let booted = format!("boot-{}", unique());
    c.berth.run(["create", &c.image, &booted, "--boot"]).success();
    let out = c.berth.run(["run", "-M", &booted, "/bin/echo", "not the init"]).success().stdout;
    assert_eq!(out, "not the init\n");
}
