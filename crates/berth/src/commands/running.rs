//! Running machines: `start`, `ps`, `status`, `shell`, `exec`, `stop`,
//! `kill`, `terminate`, `logs`.

use crate::cli::Cli;
use crate::output::{human_size, print, print_json, table};
use anyhow::{anyhow, bail, Result};
use berth_runtime::exec::ExecSpec;
use berth_runtime::machine::{running, State};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// `berth start NAME`: `run -d -M NAME` with the machine's settings, or
/// a boot when it has none (a bootstrapped or imported tree).
pub fn start(cli: &Cli, name: &str, foreground: bool) -> Result<i32> {
    use clap::FromArgMatches;
    let store = super::open_store(cli)?;
    let rec = store.load_machine(name)?;
    let mut argv: Vec<std::ffi::OsString> = vec!["berth".into(), "--root".into(), cli.root.clone().into()];
    if cli.debug {
        argv.push("--debug".into());
    }
    argv.push("run".into());
    // Its settings say what runs: a boot, a command, or (made by `run
    // --name` without one) its image's command. Saying none, it boots, as
    // machinectl start does.
    let says = super::settings::effective(name, rec.settings)?
        .is_some_and(|s| !s.command.is_empty() || s.image_command || s.options.iter().any(|w| w == "--boot"));
    if !says {
        argv.push("--boot".into());
    }
    if !foreground {
        argv.push("--detach".into());
    }
    argv.extend(["-M".into(), name.into()]);
    let (again, m) = super::settings::run_matches(argv)?;
    let a = crate::cli::RunArgs::from_arg_matches(&m)?;
    super::run::run_matched(&again, &a, &m)
}

fn uptime(s: &State) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let d = now.saturating_sub(s.started);
    match d {
        0..=119 => format!("{d}s"),
        120..=7199 => format!("{}min", d / 60),
        _ => format!("{}h", d / 3600),
    }
}

pub fn ps(json: bool) -> Result<i32> {
    let mut live = Vec::new();
    for s in State::all() {
        if s.alive() {
            live.push(s);
        } else if s.stale() {
            State::clear(&s.name);
        }
    }
    if json {
        print_json(&live)?;
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = live
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.leader.to_string(),
                if s.boot { "init".into() } else { "command".into() },
                uptime(s),
                s.root.clone(),
            ]
        })
        .collect();
    print(&table(&["NAME", "LEADER", "RUNS", "UP", "ROOT"], &rows))?;
    Ok(0)
}

/// The pids in the leader's cgroup tree (the unified one when there is).
fn processes(s: &State) -> Vec<(i32, String)> {
    let text = std::fs::read_to_string(format!("/proc/{}/cgroup", s.leader)).unwrap_or_default();
    let layout = berth_runtime::cgroup::Layout::detect();
    let mut dirs = Vec::new();
    for line in text.lines() {
        let mut it = line.splitn(3, ':');
        let (_, ctrls, path) = (it.next(), it.next().unwrap_or(""), it.next().unwrap_or("/"));
        if ctrls.is_empty() {
            if let Some(u) = &layout.unified {
                // The leader may sit in init.scope: list from the machine's cgroup.
                let p = std::path::Path::new(path);
                let p = if p.ends_with("init.scope") { p.parent().unwrap_or(p) } else { p };
                dirs.push(u.join(p.to_string_lossy().trim_start_matches('/')));
            }
        }
    }
    let mut pids = Vec::new();
    fn walk(d: &std::path::Path, out: &mut Vec<i32>) {
        if let Ok(t) = std::fs::read_to_string(d.join("cgroup.procs")) {
            out.extend(t.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
        }
        if let Ok(rd) = std::fs::read_dir(d) {
            for e in rd.flatten().filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false)) {
                walk(&e.path(), out);
            }
        }
    }
    for d in dirs {
        walk(&d, &mut pids);
    }
    if pids.is_empty() {
        pids.push(s.leader);
    }
    pids.sort_unstable();
    pids.dedup();
    pids.into_iter()
        .map(|p| {
            let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ").trim().to_string();
            (p, cmd)
        })
        .collect()
}

/// PRETTY_NAME from the machine's own os-release.
fn os_name(leader: i32) -> Option<String> {
    // Inside the machine's root, regular files only, bounded: the
    // machine's os-release may be a symlink to a host file or a FIFO.
    let text = ["etc/os-release", "usr/lib/os-release"]
        .iter()
        .find_map(|p| berth_runtime::guest::read_in_root_of(leader, p))?;
    text.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=")).map(|v| v.trim_matches('"').to_string())
}

/// The leader's cgroup in the unified tree (or the first hierarchy).
fn leader_cgroup(leader: i32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{leader}/cgroup")).ok()?;
    let line = text.lines().find(|l| l.starts_with("0::")).or_else(|| text.lines().next())?;
    line.splitn(3, ':').nth(2).map(str::to_string)
}

/// Resident memory and CPU seconds of the machine's processes, summed.
fn usage(procs: &[(i32, String)]) -> (u64, f64) {
    let mut rss = 0u64;
    let mut ticks = 0u64;
    for (pid, _) in procs {
        if let Ok(st) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            if let Some(kb) = st
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            {
                rss += kb * 1024;
            }
        }
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            if let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) {
                let f: Vec<&str> = rest.split_whitespace().collect();
                // utime and stime are fields 14 and 15 of stat: 11 and 12 here.
                ticks += f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
                ticks += f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            }
        }
    }
    (rss, ticks as f64 / 100.0)
}

fn tail(path: &std::path::Path, lines: usize) -> Vec<String> {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text).replace('\r', "");
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    all[all.len().saturating_sub(lines)..].iter().map(|s| s.to_string()).collect()
}

/// Fails with "not found" for a name that is neither running nor a
/// machine in the store, so the advice to `start` it is only given when
/// it can work.
fn known(cli: &Cli, name: &str) -> Result<()> {
    if State::load(name).is_some() {
        return Ok(());
    }
    super::open_store(cli)?.load_machine(name)?;
    Ok(())
}

pub fn status(cli: &Cli, name: &str) -> Result<i32> {
    known(cli, name)?;
    let s = running(name)?;
    let mut out = String::new();
    out += &format!("{name}\n");
    out += &format!("    Leader: {} ({})\n", s.leader, s.command.join(" "));
    if let Some(os) = os_name(s.leader) {
        out += &format!("        OS: {os}\n");
    }
    if let Some(i) = &s.image {
        out += &format!("     Image: {i}\n");
    }
    out += &format!("      Root: {}\n", s.root);
    out += &format!("     Since: {} ago\n", uptime(&s));
    if let Some(cg) = leader_cgroup(s.leader) {
        out += &format!("    CGroup: {cg}\n");
    }
    if s.boot {
        let exe = std::env::current_exe()?;
        let st = std::process::Command::new(exe)
            .arg("--root")
            .arg(&cli.root)
            .args(["exec", name, "systemctl", "is-system-running"])
            .output();
        if let Ok(o) = st {
            let state = String::from_utf8_lossy(&o.stdout).trim().to_string();
            if !state.is_empty() {
                out += &format!("     State: {state}\n");
            }
        }
    }
    let procs = processes(&s);
    let (rss, cpu) = usage(&procs);
    out += &format!("    Memory: {}\n", human_size(rss));
    out += &format!("       CPU: {:.2}s\n", cpu);
    out += &format!("     Tasks: {}\n", procs.len());
    for (pid, cmd) in procs.iter().take(30) {
        out += &format!("            {pid} {cmd}\n");
    }
    let log = State::console_log(name);
    let size = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    out += &format!("   Console: {} ({})\n", log.display(), human_size(size));
    for l in tail(&log, 10) {
        out += &format!("            {l}\n");
    }
    print(&out)?;
    Ok(0)
}

pub fn shell(cli: &Cli, name: &str, user: Option<String>, command: &[String]) -> Result<i32> {
    known(cli, name)?;
    let spec =
        ExecSpec { args: command.to_vec(), env: Vec::new(), user, tty: std::io::stdin().is_terminal(), login: true };
    Ok(berth_runtime::exec::exec(name, &spec)?)
}

pub fn exec(
    cli: &Cli,
    name: &str,
    tty: bool,
    user: Option<String>,
    setenv: &[String],
    command: &[String],
) -> Result<i32> {
    known(cli, name)?;
    let env = crate::process::env(None, tty, setenv).map_err(|e| anyhow!(e))?;
    let env = env.into_iter().filter(|(k, _)| k != "container").collect();
    let spec = ExecSpec { args: command.to_vec(), env, user, tty, login: false };
    Ok(berth_runtime::exec::exec(name, &spec)?)
}

/// Waits until the machine's leader is gone and its supervisor cleaned up.
fn wait_gone(s: &State, timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if !s.alive() {
            // Give the supervisor a moment to remove the state file.
            for _ in 0..50 {
                if State::load(&s.name).is_none() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A machine waiting to be run again (`--restart`): its supervisor is
/// told to give up, and waited for.
fn cancel_restart(name: &str) -> Option<Result<i32>> {
    let s = State::load(name).filter(|s| s.restarting())?;
    berth_runtime::machine::mark_stopping(name);
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        match State::load(name) {
            None => return Some(Ok(0)),
            // It started again just before the stop was asked: stop it
            // the usual way (the marker is there now).
            Some(now) if now.alive() => return None,
            Some(_) if Instant::now() > end => {
                return Some(Err(anyhow!(
                    "machine {name}'s supervisor (pid {}) did not give up its restart: `berth terminate {name}`",
                    s.supervisor
                )))
            }
            Some(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

pub fn stop(cli: &Cli, name: &str, timeout: u64) -> Result<i32> {
    known(cli, name)?;
    if let Some(r) = cancel_restart(name) {
        return r;
    }
    let s = running(name)?;
    berth_runtime::machine::mark_stopping(name);
    if s.boot {
        // systemd powers off on SIGRTMIN+4, as `machinectl poweroff` asks.
        berth_runtime::machine::poweroff(s.leader)?;
    } else {
        berth_runtime::machine::signal(s.leader, 15)?;
    }
    if wait_gone(&s, Duration::from_secs(timeout)) {
        return Ok(0);
    }
    eprintln!("berth: machine {name} did not stop within {timeout} s: killing it");
    berth_runtime::machine::signal(s.leader, 9)?;
    if !wait_gone(&s, Duration::from_secs(5)) {
        bail!("machine {name} did not go away after SIGKILL");
    }
    Ok(0)
}

/// Parses `TERM`, `SIGTERM`, `15`, `RTMIN+4`.
fn parse_signal(s: &str) -> Result<i32> {
    let u = s.to_ascii_uppercase();
    let u = u.strip_prefix("SIG").unwrap_or(&u);
    if let Ok(n) = u.parse::<i32>() {
        return Ok(n);
    }
    if let Some(off) = u.strip_prefix("RTMIN+") {
        return Ok(
            berth_runtime::machine::sigrtmin() + off.parse::<i32>().map_err(|_| anyhow!("invalid signal {s:?}"))?
        );
    }
    let n = match u {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "KILL" => 9,
        "USR1" => 10,
        "USR2" => 12,
        "TERM" => 15,
        "CONT" => 18,
        "STOP" => 19,
        "WINCH" => 28,
        _ => bail!("unknown signal {s:?}: use a name like TERM or a number"),
    };
    Ok(n)
}

pub fn kill(cli: &Cli, name: &str, sig: &str) -> Result<i32> {
    known(cli, name)?;
    let s = running(name)?;
    let n = parse_signal(sig)?;
    // A machine killed (as docker's) is not restarted by --restart. An
    // init takes INT and TERM for a reboot or a re-exec: only KILL ends it.
    if n == 9 || (!s.boot && matches!(n, 2 | 3 | 15)) {
        berth_runtime::machine::mark_stopping(name);
    }
    berth_runtime::machine::signal(s.leader, n)?;
    Ok(0)
}

pub fn terminate(cli: &Cli, name: &str) -> Result<i32> {
    known(cli, name)?;
    if let Some(r) = cancel_restart(name) {
        return r;
    }
    let s = running(name)?;
    berth_runtime::machine::mark_stopping(name);
    berth_runtime::machine::signal(s.leader, 9)?;
    if !wait_gone(&s, Duration::from_secs(5)) {
        bail!("machine {name} did not go away after SIGKILL");
    }
    Ok(0)
}

pub fn logs(cli: &Cli, name: &str, follow: bool) -> Result<i32> {
    known(cli, name)?;
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;
    let path = State::console_log(name);
    let mut f = std::fs::File::open(&path)
        .map_err(|_| anyhow!("no console log for machine {name:?}: it has not run detached"))?;
    // The previous part first. Opened after the current one: if a rotation
    // came in between, it is that same file, which is not shown twice.
    let prev = std::fs::File::open(berth_runtime::consolelog::previous(&path)).ok();
    let mut out = std::io::stdout();
    if let Some(mut prev) = prev {
        if prev.metadata()?.ino() != f.metadata()?.ino() {
            std::io::copy(&mut prev, &mut out)?;
        }
    }
    loop {
        std::io::copy(&mut f, &mut out)?;
        out.flush()?;
        if !follow || State::load(name).is_none_or(|s| !s.alive()) {
            break;
        }
        // Rotated meanwhile: the rest of the old file, then the new one.
        let now = std::fs::metadata(&path).map(|m| m.ino()).unwrap_or(0);
        if now != 0 && now != f.metadata()?.ino() {
            std::io::copy(&mut f, &mut out)?;
            f = std::fs::File::open(&path)?;
            continue;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(0)
}
