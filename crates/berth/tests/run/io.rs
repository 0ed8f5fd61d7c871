//! Standard streams: without -t stdin/stdout/stderr pass through untouched
//! (text and binary); with -t the command gets a pty in raw mode, driven
//! here from a real terminal (tmux) — input, window size, resize, exit.

use std::time::{Duration, Instant};

use crate::harness::container::{processes_with_token, Ctx, TOKEN_VAR};
use crate::harness::tarball::random_bytes;
use crate::harness::tmux::{quote, Tmux};

#[test]
fn stdin_is_piped_into_the_container() {
    let c = Ctx::busybox();
    let o = c.run_input(&[&c.image, "cat"], b"hi\n").success();
    assert_eq!(o.out(), "hi\n", "{}", o.describe());
    let o = c.run_input(&["-i", &c.image, "cat"], b"with -i\n").success();
    assert_eq!(o.out(), "with -i\n", "{}", o.describe());
    let o = c
        .run_input(&[&c.image, "sh", "-c", "read a b; echo \"$b $a\"; test -t 0 || echo no-tty"], b"one two\n")
        .success();
    assert_eq!(o.out(), "two one\nno-tty\n", "{}", o.describe());
}

#[test]
fn stdin_from_dev_null_gives_eof() {
    let c = Ctx::busybox();
    let o = c.run_image(&[], &["cat"]).success();
    assert!(o.stdout.is_empty(), "{}", o.describe());
}

#[test]
fn one_megabyte_of_binary_data_passes_through_cat_unchanged() {
    let c = Ctx::busybox();
    let data = random_bytes(1 << 20, 0x5eed);
    let o = c.run_input(&[&c.image, "cat"], &data).success();
    assert_eq!(o.stdout.len(), data.len(), "byte count through cat: stderr {}", o.stderr);
    assert!(o.stdout == data, "the data changed on its way through the container");
    // The other direction too: bytes the container makes are not translated.
    let o = c.sh(&[], "printf 'a\\r\\nb\\000c\\377'").success();
    assert_eq!(o.stdout, b"a\r\nb\0c\xff", "stdout must not be translated: {}", o.describe());
}

#[test]
fn stderr_passes_through_separately() {
    let c = Ctx::busybox();
    let o = c.sh(&[], "echo to-out; echo to-err >&2; echo more-out").success();
    assert_eq!(o.out(), "to-out\nmore-out\n", "{}", o.describe());
    assert_eq!(o.stderr, "to-err\n", "{}", o.describe());
}

#[test]
fn tty_session_in_tmux_has_a_pty_window_size_input_and_exit_status() {
    let c = Ctx::busybox();
    let dir = c.dir(&format!("tmux-{}", crate::harness::berth::unique()));
    let exit_file = dir.join("exit");
    let (cmd, token) = c.command(&["-t", &c.image, "/bin/sh"]);
    let mut line: Vec<String> = vec![quote(cmd.get_program().to_str().unwrap())];
    line.extend(cmd.get_args().map(|a| quote(a.to_str().unwrap())));
    let shell = format!("{}; echo EXIT=$? > {}", line.join(" "), quote(exit_file.to_str().unwrap()));
    let tmux = Tmux::start(&dir, &shell, 100, 30);
    let deadline = Instant::now() + Duration::from_secs(12);

    // Typed input reaches the shell: the answer is computed inside.
    tmux.type_line("echo MARK-$((6*7))");
    tmux.wait_line("MARK-42 from the container's shell", deadline, |l| l.trim() == "MARK-42");
    let berth_pid = outer_berth(&token);
    tmux.type_line("echo TTY=$(tty) TERM=$TERM");
    let tty = tmux.wait_line("tty's answer", deadline, |l| l.starts_with("TTY=") && !l.contains("$("));
    assert!(tty.starts_with("TTY=/dev/"), "`tty` must name a terminal device: {tty:?}\n{}", tmux.screen());
    assert!(!tty.contains("TERM= ") && !tty.ends_with("TERM="), "TERM must be set with -t: {tty:?}");

    let (rows, cols) = tmux.pane_size();
    tmux.type_line("echo SIZE1=$(stty size)");
    let size = tmux.wait_line("stty size", deadline, |l| l.starts_with("SIZE1=") && !l.contains("$("));
    assert_eq!(size.trim(), format!("SIZE1={rows} {cols}"), "stty size must match the tmux pane");

    tmux.resize(120, 40);
    let (rows2, cols2) = tmux.pane_size();
    assert_ne!((rows2, cols2), (rows, cols), "tmux did not resize the pane");
    let want = format!("{rows2} {cols2}");
    let mut round = 0;
    loop {
        round += 1;
        tmux.type_line(&format!("echo SIZE2-{round}=$(stty size)"));
        let prefix = format!("SIZE2-{round}=");
        let l = tmux.wait_line("stty size after resize", deadline, |l| l.starts_with(&prefix) && !l.contains("$("));
        if l.trim() == format!("{prefix}{want}") {
            break;
        }
        assert!(Instant::now() < deadline, "the resize never reached the container: last {l:?}, want {want}");
        std::thread::sleep(Duration::from_millis(100));
    }

    tmux.type_line("exit 7");
    loop {
        if let Ok(s) = std::fs::read_to_string(&exit_file) {
            assert_eq!(s.trim(), "EXIT=7", "berth's exit status under -t");
            break;
        }
        assert!(Instant::now() < deadline, "berth -t did not exit after `exit 7`; screen:\n{}", tmux.screen());
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(tmux);
    c.assert_no_leftovers(berth_pid, &token, "berth run -t in tmux");
}

#[test]
fn ctrl_c_in_a_tty_session_interrupts_the_foreground_command_only() {
    let c = Ctx::busybox();
    let dir = c.dir(&format!("tmux-{}", crate::harness::berth::unique()));
    let exit_file = dir.join("exit");
    let (cmd, token) = c.command(&["-t", &c.image, "/bin/sh"]);
    let mut line: Vec<String> = vec![quote(cmd.get_program().to_str().unwrap())];
    line.extend(cmd.get_args().map(|a| quote(a.to_str().unwrap())));
    let shell = format!("{}; echo EXIT=$? > {}", line.join(" "), quote(exit_file.to_str().unwrap()));
    let tmux = Tmux::start(&dir, &shell, 80, 24);
    let deadline = Instant::now() + Duration::from_secs(12);
    tmux.type_line("echo MARK-$((6*7))");
    tmux.wait_line("the shell's prompt answer", deadline, |l| l.trim() == "MARK-42");
    let berth_pid = outer_berth(&token);
    tmux.type_line("sleep 100; echo SLEEP-RC=$?");
    // Wait until the sleep runs, then press Ctrl-C.
    loop {
        if !crate::harness::container::processes_with_argv(&["sleep", "100"]).is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "sleep 100 never started; screen:\n{}", tmux.screen());
        std::thread::sleep(Duration::from_millis(20));
    }
    tmux.keys(&["C-c"]);
    tmux.type_line("echo ALIVE-$((1+1))");
    tmux.wait_line("the shell to survive Ctrl-C", deadline, |l| l.trim() == "ALIVE-2");
    assert!(
        !tmux.screen().contains("SLEEP-RC=0"),
        "Ctrl-C must interrupt sleep (not let it finish): {}",
        tmux.screen()
    );
    tmux.type_line("exit 3");
    loop {
        if let Ok(s) = std::fs::read_to_string(&exit_file) {
            assert_eq!(s.trim(), "EXIT=3", "berth's exit status under -t");
            break;
        }
        assert!(Instant::now() < deadline, "berth -t did not exit; screen:\n{}", tmux.screen());
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(tmux);
    c.assert_no_leftovers(berth_pid, &token, "berth run -t in tmux (Ctrl-C)");
}

#[test]
fn tty_without_a_terminal_still_gives_the_command_a_pty() {
    let c = Ctx::busybox();
    let o = c.sh(&["-t"], "tty; echo rc=$?; echo TERM=$TERM").success();
    let out = o.out().replace('\r', "");
    assert!(out.starts_with("/dev/"), "`tty` under -t must name a device: {}", o.describe());
    assert!(out.contains("rc=0\n"), "{}", o.describe());
    assert!(!out.contains("TERM=\n"), "TERM must be set with -t: {}", o.describe());
}

/// The berth process carrying `token` whose parent does not carry it.
fn outer_berth(token: &str) -> u32 {
    let procs = processes_with_token(token);
    let pids: Vec<u32> = procs.iter().map(|(p, _)| *p).collect();
    let ppid = |p: u32| -> u32 {
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
        let after = stat.rsplit_once(')').map(|(_, a)| a).unwrap_or("");
        after.split_whitespace().nth(1).and_then(|x| x.parse().ok()).unwrap_or(0)
    };
    let outer: Vec<u32> = procs
        .iter()
        .filter(|(p, cmd)| cmd.starts_with(env!("CARGO_BIN_EXE_berth")) && !pids.contains(&ppid(*p)))
        .map(|(p, _)| *p)
        .collect();
    assert_eq!(outer.len(), 1, "expected one berth process with {TOKEN_VAR}={token}: {procs:?}");
    outer[0]
}

#[test]
fn command_exit_does_not_wait_for_stdin_to_close() {
    let c = Ctx::busybox();
    let mut r = c.spawn(&[&c.image, "echo", "done"]);
    let held = r.stdin.take(); // kept open until after berth exits
    let start = Instant::now();
    let o = r.wait().success();
    drop(held);
    assert_eq!(o.out(), "done\n", "{}", o.describe());
    assert!(start.elapsed() < Duration::from_secs(10), "berth waited for stdin: {}", o.describe());
}
