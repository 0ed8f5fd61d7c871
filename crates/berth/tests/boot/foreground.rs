//! `berth run -b -M NAME` in the foreground: the console on a real
//! terminal (tmux) with a root login and `poweroff`; SIGTERM to berth (what
//! systemd sends when the `berth@.service` unit stops) powers it off with
//! exit 0; and a machine booted this way — as `berth enable` boots it at
//! host boot — is managed like one from `berth start`.

use std::io::Read;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::process::Signal;

use super::{
    berth_cgroups_named, cgroup_pids, children, machine_cgroups, machine_name, proc_start_time, quote, signal, tail,
    Host, Mounts, Snapshot,
};
use crate::harness::tmux::Tmux;

/// A foreground `berth run` with its stdout and stderr collected.
pub struct Foreground {
    pub child: Child,
    out: Arc<Mutex<Vec<u8>>>,
    status: Option<ExitStatus>,
    desc: String,
}

impl Foreground {
    pub fn spawn(h: &Host, args: &[&str]) -> Foreground {
        let mut cmd = h.command(args);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let desc = format!("berth {}", args.join(" "));
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {desc}: {e}"));
        let out = Arc::new(Mutex::new(Vec::new()));
        for mut r in
            [Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>, Box::new(child.stderr.take().unwrap())]
        {
            let out = out.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n) = r.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    out.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
        }
        Foreground { child, out, status: None, desc }
    }

    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).replace('\r', "")
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits until the output contains `needle`.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.output().contains(needle) {
            if let Some(st) = self.child.try_wait().expect("wait") {
                panic!("{} exited ({st}) before {needle:?} appeared:\n{}", self.desc, tail(&self.output(), 30));
            }
            assert!(
                Instant::now() < deadline,
                "{}: {needle:?} did not appear within {timeout:?}:\n{}",
                self.desc,
                tail(&self.output(), 30)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for berth to exit; None after `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                self.status = Some(st);
                std::thread::sleep(Duration::from_millis(50)); // let the readers drain
                return Some(st);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What makes up the machine: berth, the init it forked, the cgroup.
    pub fn snapshot(&self, name: &str) -> Snapshot {
        let me = self.pid();
        let leader = namespace_init_under(me)
            .unwrap_or_else(|| panic!("no descendant of {} (pid {me}) is PID 1 of a pid namespace", self.desc));
        let cgroups = machine_cgroups(leader);
        let mut pids = vec![me, leader];
        for d in &cgroups {
            pids.extend(cgroup_pids(d));
        }
        pids.sort_unstable();
        pids.dedup();
        let procs = pids.into_iter().filter_map(|p| Some((p, proc_start_time(p)?, super::cmdline(p)))).collect();
        Snapshot { name: name.to_string(), leader, supervisor: me, procs, cgroups }
    }
}

impl Drop for Foreground {
    fn drop(&mut self) {
        if self.status.is_none() && self.child.try_wait().ok().flatten().is_none() {
            signal(self.pid(), Signal::TERM);
            if self.wait(Duration::from_secs(10)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

#[test]
fn foreground_boot_in_tmux_login_at_the_console_and_poweroff_exits_0() {
    let m = machine_name("fg");
    let h = Host::systemd(&[&m]);
    // An empty root password, so the console's login prompt lets root in.
    h.run(["run", "-M", &m, "passwd", "-d", "root"]).success();
    let mounts = Mounts::now(h.berth.dir());

    let dir = h.berth.new_dir("tmux");
    let exit_file = dir.join("exit");
    // `sleep` keeps the pane (and its screen) after berth exits.
    let line = format!(
        "{}; echo EXIT=$? > {}; sleep 60",
        h.shell_line(&["run", "-b", "-M", &m]),
        quote(&exit_file.to_string_lossy())
    );
    let tmux = Tmux::start(&dir, &line, 120, 40);
    let deadline = Instant::now() + Duration::from_secs(50);
    tmux.wait_line("systemd's welcome on the console", deadline, |l| l.contains("Welcome to Debian"));
    tmux.wait_line("the console's login prompt", deadline, |l| l.trim_end().ends_with("login:"));
    // agetty may still be settling (it flushes input): type the login name
    // again if no shell prompt follows.
    let is_prompt = |l: &str| l.contains("root@") && l.trim_end().ends_with('#');
    loop {
        tmux.type_line("root");
        let retry = Instant::now() + Duration::from_secs(8);
        while Instant::now() < retry && !tmux.screen().lines().any(is_prompt) {
            std::thread::sleep(Duration::from_millis(100));
        }
        if tmux.screen().lines().any(is_prompt) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no root shell prompt after typing `root` at the console:\n{}",
            tmux.screen()
        );
    }
    tmux.type_line("echo SHELL-$((6*7)); tty");
    tmux.wait_line("the shell's answer", deadline, |l| l.trim() == "SHELL-42");
    // `tty` answers on the line after (it may not be on the screen yet).
    tmux.wait_line("the login shell on /dev/console (`tty`)", deadline, |l| l.trim() == "/dev/console");

    // Find berth and the machine while they run.
    let berth_pid = tmux_berth(&m).unwrap_or_else(|| panic!("no `berth … run -b -M {m}` process found"));
    let snap = {
        let leader = namespace_init_under(berth_pid)
            .unwrap_or_else(|| panic!("no descendant of berth {berth_pid} is PID 1 of a pid namespace"));
        let cgroups = machine_cgroups(leader);
        let mut pids = vec![berth_pid, leader];
        for d in &cgroups {
            pids.extend(cgroup_pids(d));
        }
        let procs = pids.into_iter().filter_map(|p| Some((p, proc_start_time(p)?, super::cmdline(p)))).collect();
        Snapshot { name: m.clone(), leader, supervisor: berth_pid, procs, cgroups }
    };

    tmux.type_line("poweroff");
    while !exit_file.exists() {
        assert!(Instant::now() < deadline, "berth did not exit after `poweroff`; screen:\n{}", tmux.screen());
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(50));
    let code = std::fs::read_to_string(&exit_file).unwrap_or_default();
    let screen = tmux.screen();
    assert_eq!(code.trim(), "EXIT=0", "`poweroff` at the console must end berth with 0; screen:\n{screen}");
    assert!(screen.contains("Powering off"), "the shutdown shows on the console:\n{screen}");
    drop(tmux);
    h.assert_gone(&snap, &mounts, "poweroff typed at the console");
}

/// The first descendant of `pid` that is PID 1 in its own pid namespace.
pub fn namespace_init_under(pid: i32) -> Option<i32> {
    let mut queue = children(pid);
    while let Some(p) = queue.first().copied() {
        queue.remove(0);
        let status = std::fs::read_to_string(format!("/proc/{p}/status")).unwrap_or_default();
        let nspid: Vec<&str> = status
            .lines()
            .find_map(|l| l.strip_prefix("NSpid:"))
            .map(|v| v.split_whitespace().collect())
            .unwrap_or_default();
        if nspid.len() >= 2 && nspid.last() == Some(&"1") {
            return Some(p);
        }
        queue.extend(children(p));
    }
    None
}

/// The pid of `berth … run -b -M NAME` (the tmux one).
fn tmux_berth(name: &str) -> Option<i32> {
    let want = ["run", "-b", "-M", name];
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let b = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let args: Vec<String> = b.split(|c| *c == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        if args.first().is_some_and(|a| a.ends_with("/berth")) && args.windows(4).any(|w| w == want) {
            return Some(pid);
        }
    }
    None
}

#[test]
fn sigterm_to_a_foreground_boot_powers_off_and_exits_0() {
    let m = machine_name("ft");
    let h = Host::systemd(&[&m]);
    let mounts = Mounts::now(h.berth.dir());
    // The command line berth@.service runs (ExecStart), stopped as systemd
    // stops it (SIGTERM to the main process, KillMode=mixed).
    let mut fg = Foreground::spawn(&h, &["run", "--boot", "-M", &m]);
    fg.wait_for("Welcome to Debian", Duration::from_secs(30));
    fg.wait_for("login:", Duration::from_secs(30));
    let snap = fg.snapshot(&m);
    let t = Instant::now();
    signal(fg.pid(), Signal::TERM);
    let st = fg.wait(Duration::from_secs(15));
    let st = st.unwrap_or_else(|| panic!("berth still runs 15 s after SIGTERM:\n{}", tail(&fg.output(), 20)));
    assert_eq!(st.code(), Some(0), "SIGTERM must power the machine off cleanly, exit 0:\n{}", tail(&fg.output(), 20));
    assert!(t.elapsed() < Duration::from_secs(10), "power-off took {:?}", t.elapsed());
    let out = fg.output();
    assert!(
        out.contains("Reached target shutdown.target")
            || out.contains("System Power Off")
            || out.contains("System Halt"),
        "SIGTERM must go through systemd's clean shutdown:\n{}",
        tail(&out, 15)
    );
    h.assert_gone(&snap, &mounts, "SIGTERM to a foreground boot");
}

#[test]
fn a_machine_booted_in_the_foreground_is_managed_like_a_started_one() {
    // `berth enable` makes systemd run `berth run --boot -M NAME` in the
    // foreground; `berth ps`, `exec`, `status` and `stop` must see that
    // machine as running, as machinectl sees a foreground nspawn.
    let m = machine_name("fm");
    let h = Host::systemd(&[&m]);
    let mounts = Mounts::now(h.berth.dir());
    let mut fg = Foreground::spawn(&h, &["run", "--boot", "-M", &m]);
    fg.wait_for("login:", Duration::from_secs(30));
    let snap = fg.snapshot(&m);

    let start = h.run(["start", &m]);
    assert!(!start.status.success(), "a second instance of {m} must be refused: {start:?}");
    let listed = h.ps_names();
    let exec = h.run(["exec", &m, "systemctl", "is-system-running"]);
    let status = h.run(["status", &m]);
    assert!(
        listed.contains(&m) && exec.status.success() && status.status.success(),
        "{m} runs (booted by `berth run --boot -M {m}`, as berth@.service does; `berth start` says: {:?}), but:\n  \
         `berth ps --json` lists {listed:?}\n  `berth exec {m} systemctl is-system-running` → {:?} {}\n  \
         `berth status {m}` → {:?} {}",
        start.stderr.trim(),
        exec.status.code(),
        exec.stderr.trim(),
        status.status.code(),
        status.stderr.trim()
    );
    let stop = h.run(["stop", &m]);
    assert!(stop.status.success(), "{stop:?}");
    let st = fg.wait(Duration::from_secs(10)).expect("berth run --boot still runs after `berth stop`");
    assert_eq!(st.code(), Some(0), "{}", tail(&fg.output(), 10));
    h.assert_gone(&snap, &mounts, "berth stop of a foreground boot");
    assert!(berth_cgroups_named(&m).is_empty());
}
