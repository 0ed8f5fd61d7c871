//! Booting real init systems and managing running machines (issue 5):
//! `run -b` (foreground, under tmux), `start` / `run -b -d` (detached,
//! supervised), `ps`, `status`, `exec`, `shell`, `stop`, `kill`,
//! `terminate`, `logs`, `enable` / `disable`, their errors and stale state.
//!
//! The real-init case is a debootstrap'd bookworm with systemd
//! (`debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus`),
//! built once and cached at `/var/cache/berth-test/bookworm-systemd`
//! ([`systemd_tree`]); every test imports it into its own store. The light
//! case is a busybox-static tree whose `/sbin/init` is busybox with an
//! `/etc/inittab` ([`busybox_init_tree`]).
//!
//! Every test has its own store, its own `BERTH_RUN_DIR` (state and console
//! logs) and `BERTH_SYSTEMD_DIR` under its temp dir, and machine names
//! unique to the test process, so tests run in parallel. Leftover checks
//! ([`Host::assert_gone`]) look for the processes that made up the machine
//! (with their start times, so reused pids don't count), its cgroup
//! directories on every hierarchy, mounts that appeared on the host, and
//! the state file.

mod busybox;
mod errors;
mod foreground;
mod logs;
mod many;
mod named_dirs;
mod seeds;
mod stores;
mod systemd;
mod units;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::berth::{run_command, unique, Run};
use crate::harness::mounts::mount_points;
use crate::harness::Berth;

/// A tree the developer built the same way; copied when present (quicker).
const DEV_TREE: &str = "/var/cache/berth-dev/bookworm-systemd";
/// How long a booted systemd may take to reach running/degraded.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------- trees

/// The bootable bookworm tree (systemd, systemd-sysv, dbus), built once.
/// The build goes to a temp dir and is renamed into place under a file
/// lock, so parallel tests (and test processes) build it once. Shared and
/// read-only: tests import it, never boot it in place.
pub fn systemd_tree() -> PathBuf {
    crate::harness::debootstrap::cached_tree(
        "bookworm-systemd",
        &["systemd", "systemd-sysv", "dbus"],
        DEV_TREE,
        systemd_tree_complete,
    )
}

fn systemd_tree_complete(dir: &Path) -> bool {
    dir.join("usr/lib/systemd/systemd").is_file()
        && fs::symlink_metadata(dir.join("sbin/init")).is_ok()
        && dir.join("usr/bin/dbus-daemon").is_file()
        && dir.join("usr/bin/systemctl").is_file()
        && dir.join("etc/passwd").is_file()
}

/// Output lines of busybox init's inittab actions (they run in the
/// machine and print to the console).
pub const BB_SYSINIT: &str = "bb-sysinit-ran";
pub const BB_ONCE: &str = "bb-once-ran";
pub const BB_SHUTDOWN: &str = "bb-shutdown-ran";
/// argv of the `::respawn:` process (findable on the host).
pub const BB_RESPAWN: [&str; 2] = ["/bin/sleep", "86399"];

/// A busybox-static tree at `dir` booting busybox init: `/sbin/init ->
/// ../bin/busybox`, one symlink per applet, and an inittab with a
/// `::sysinit:`, a `::once:`, a `::respawn:` and a `::shutdown:` line.
pub fn busybox_init_tree(dir: &Path) -> PathBuf {
    for d in ["bin", "sbin", "etc", "dev", "proc", "sys", "tmp", "run", "root", "usr", "var"] {
        fs::create_dir_all(dir.join(d)).expect("mkdir in the busybox tree");
    }
    fs::copy("/bin/busybox", dir.join("bin/busybox")).expect("copy /bin/busybox (apt-get install busybox-static)");
    let list = Command::new("/bin/busybox").arg("--list").output().expect("busybox --list");
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" && applet != "init" {
            let _ = std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet));
        }
    }
    std::os::unix::fs::symlink("../bin/busybox", dir.join("sbin/init")).expect("symlink /sbin/init");
    fs::write(
        dir.join("etc/inittab"),
        format!(
            "::sysinit:/bin/echo {BB_SYSINIT}\n\
             ::once:/bin/echo {BB_ONCE}\n\
             ::respawn:{}\n\
             ::shutdown:/bin/echo {BB_SHUTDOWN}\n",
            BB_RESPAWN.join(" ")
        ),
    )
    .expect("write inittab");
    fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").expect("write passwd");
    fs::write(dir.join("etc/group"), "root:x:0:\n").expect("write group");
    dir.to_path_buf()
}

// ---------------------------------------------------------------- host

/// A private store, run dir and unit dir, and the berth commands on them.
pub struct Host {
    pub berth: Berth,
    /// `BERTH_RUN_DIR`: where every store's running state goes.
    pub run_dir: PathBuf,
    /// This store's part of it: `run_dir/KEY`, KEY being 16 hex digits of
    /// the sha256 of the store's canonical path.
    pub state_dir: PathBuf,
    pub units: PathBuf,
}

/// The state directory berth keeps for `store` under `run_dir`.
pub fn state_dir_of(run_dir: &Path, store: &Path) -> PathBuf {
    use sha2::Digest as _;
    let canonical = fs::canonicalize(store).unwrap_or_else(|_| store.to_path_buf());
    let hash = sha2::Sha256::digest(canonical.as_os_str().as_encoded_bytes());
    run_dir.join(hex::encode(&hash[..8]))
}

impl Host {
    pub fn new() -> Host {
        let berth = Berth::new();
        let run_dir = berth.new_dir("run");
        let units = berth.new_dir("units");
        let state_dir = state_dir_of(&run_dir, berth.root());
        Host { berth, run_dir, state_dir, units }
    }

    /// A store with the systemd tree imported as `img` and one machine
    /// made from it per name.
    pub fn systemd(names: &[&str]) -> Host {
        let tree = systemd_tree();
        let h = Host::new();
        h.run([OsStr::new("import"), tree.as_os_str(), OsStr::new("img")]).success();
        for n in names {
            h.run(["create", "img", n]).success();
        }
        h
    }

    /// A store with a busybox-init tree imported as `bbimg` and one machine
    /// made from it per name.
    pub fn busybox(names: &[&str]) -> Host {
        let h = Host::new();
        let tree = busybox_init_tree(&h.berth.new_dir("bbtree"));
        h.run([OsStr::new("import"), tree.as_os_str(), OsStr::new("bbimg")]).success();
        for n in names {
            h.run(["create", "bbimg", n]).success();
        }
        h
    }

    /// `berth --root STORE ARGS` with this host's run and unit dirs.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.berth.command(args);
        cmd.env("BERTH_RUN_DIR", &self.run_dir).env("BERTH_SYSTEMD_DIR", &self.units);
        cmd
    }

    pub fn run<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_command(self.command(args))
    }

    /// The same command as one /bin/sh line (for tmux).
    pub fn shell_line(&self, args: &[&str]) -> String {
        let cmd = self.command(args);
        let mut words = vec!["env".to_string()];
        for (k, v) in cmd.get_envs() {
            if let Some(v) = v {
                words.push(quote(&format!("{}={}", k.to_string_lossy(), v.to_string_lossy())));
            }
        }
        words.push(quote(&cmd.get_program().to_string_lossy()));
        words.extend(cmd.get_args().map(|a| quote(&a.to_string_lossy())));
        words.join(" ")
    }

    /// `state.json` of a machine, parsed, when there is one.
    pub fn state(&self, name: &str) -> Option<Value> {
        let b = fs::read(self.state_dir.join(name).join("state.json")).ok()?;
        Some(serde_json::from_slice(&b).unwrap_or_else(|e| panic!("{name}'s state.json is not JSON: {e}")))
    }

    pub fn console(&self, name: &str) -> String {
        let b = fs::read(self.state_dir.join(name).join("console.log")).unwrap_or_default();
        String::from_utf8_lossy(&b).replace('\r', "")
    }

    /// Names in `berth ps --json`.
    pub fn ps_names(&self) -> Vec<String> {
        let r = self.run(["ps", "--json"]).success();
        let Value::Array(a) = r.json() else { panic!("`ps --json` is not an array: {}", r.stdout) };
        a.iter()
            .map(|m| m["name"].as_str().unwrap_or_else(|| panic!("ps --json entry without name: {m}")).to_string())
            .collect()
    }

    /// `berth start NAME`, asserting success and a state file with a live leader.
    pub fn start(&self, name: &str) -> Value {
        self.run(["start", name]).success();
        let st = self.state(name).unwrap_or_else(|| panic!("`berth start {name}` exited 0 but wrote no state.json"));
        let leader = st["leader"].as_i64().expect("state.json leader") as i32;
        assert!(proc_start_time(leader).is_some(), "leader {leader} of {name} is not running right after start");
        st
    }

    /// Polls `berth exec NAME systemctl is-system-running` until it says
    /// running or degraded; returns that word.
    pub fn wait_running(&self, name: &str) -> String {
        let deadline = Instant::now() + BOOT_TIMEOUT;
        loop {
            let r = self.run(["exec", name, "systemctl", "is-system-running"]);
            let word = r.stdout.trim().to_string();
            if word == "running" || word == "degraded" {
                if word == "degraded" {
                    let f = self.run(["exec", name, "systemctl", "--failed", "--no-legend"]);
                    eprintln!("{name} booted degraded; failed units:\n{}", f.stdout);
                }
                return word;
            }
            let last = format!("exit {:?}, stdout {:?}, stderr {:?}", r.status.code(), r.stdout, r.stderr.trim());
            if Instant::now() > deadline {
                let jobs = self.run(["exec", name, "systemctl", "list-jobs", "--no-pager"]);
                panic!(
                    "{name}: systemd did not reach running/degraded within {BOOT_TIMEOUT:?}; last `systemctl \
                     is-system-running`: {last}\njobs:\n{}\nconsole:\n{}",
                    jobs.stdout,
                    tail(&self.console(name), 30)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What makes up the running machine now: its processes, cgroups.
    pub fn snapshot(&self, name: &str) -> Snapshot {
        let st = self.state(name).unwrap_or_else(|| panic!("{name} has no state.json: is it running?"));
        let leader = st["leader"].as_i64().expect("leader") as i32;
        let supervisor = st["supervisor"].as_i64().expect("supervisor") as i32;
        let cgroups = machine_cgroups(leader);
        let mut pids = vec![supervisor, leader];
        for d in &cgroups {
            pids.extend(cgroup_pids(d));
        }
        pids.sort_unstable();
        pids.dedup();
        let procs = pids.into_iter().filter_map(|p| Some((p, proc_start_time(p)?, cmdline(p)))).collect();
        Snapshot { name: name.to_string(), leader, supervisor, procs, cgroups }
    }

    /// Asserts the machine of `snap` left nothing: no process of it alive,
    /// no cgroup of it on any hierarchy, no new host mount (compared with
    /// `mounts_before`, taken before it started), no state file, not in `ps`.
    pub fn assert_gone(&self, snap: &Snapshot, mounts_before: &Mounts, what: &str) {
        let mut problems = Vec::new();
        // The supervisor may take a moment to exit after it cleaned up.
        let deadline = Instant::now() + Duration::from_secs(2);
        let alive = |snap: &Snapshot| -> Vec<String> {
            snap.procs
                .iter()
                .filter(|(p, start, _)| proc_start_time(*p) == Some(*start) && !is_zombie(*p))
                .map(|(p, _, cmd)| format!("process left: pid {p} {cmd}"))
                .collect()
        };
        let mut left = alive(snap);
        while !left.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            left = alive(snap);
        }
        problems.extend(left);
        for d in &snap.cgroups {
            if d.exists() {
                problems.push(format!("cgroup left: {}", d.display()));
            }
        }
        for d in berth_cgroups_named(&snap.name) {
            if !snap.cgroups.contains(&d) {
                problems.push(format!("cgroup left: {}", d.display()));
            }
        }
        let after = Mounts::now(self.berth.dir());
        for m in after.added_since(mounts_before) {
            problems.push(format!("mount left on the host: {}", m.display()));
        }
        for m in mounts_before.added_since(&after) {
            problems.push(format!("host mount gone: {}", m.display()));
        }
        if self.state_dir.join(&snap.name).join("state.json").exists() {
            problems.push(format!("state file left: {}", self.state_dir.join(&snap.name).join("state.json").display()));
        }
        if self.ps_names().contains(&snap.name) {
            problems.push(format!("`berth ps` still lists {}", snap.name));
        }
        assert!(
            problems.is_empty(),
            "{what}: machine {} (leader {}, supervisor {}) left things behind:\n  {}",
            snap.name,
            snap.leader,
            snap.supervisor,
            problems.join("\n  ")
        );
    }
}

impl Drop for Host {
    /// A failed test must not leave machines running: terminate whatever
    /// still has a state file here.
    fn drop(&mut self) {
        let Ok(rd) = fs::read_dir(&self.state_dir) else { return };
        for e in rd.flatten() {
            if e.path().join("state.json").exists() {
                let name = e.file_name().to_string_lossy().into_owned();
                let mut c = self.command(["terminate", &name]);
                c.stdout(Stdio::null()).stderr(Stdio::null());
                let _ = c.status();
            }
        }
    }
}

/// A unique machine name for this test process: `PREFIX<pid>x<n>`.
pub fn machine_name(prefix: &str) -> String {
    format!("{prefix}{}", unique().replace('-', "x"))
}

/// Single-quotes for /bin/sh.
pub fn quote(s: &str) -> String {
    crate::harness::tmux::quote(s)
}

pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The processes and cgroups of a running machine, taken before it stops.
#[derive(Debug)]
pub struct Snapshot {
    pub name: String,
    pub leader: i32,
    pub supervisor: i32,
    /// pid, start time, command line.
    pub procs: Vec<(i32, u64, String)>,
    pub cgroups: Vec<PathBuf>,
}

impl Snapshot {
    /// Adds a process (say, a `berth exec` on the host) to what must be gone.
    pub fn add_process(&mut self, pid: i32) {
        if let Some(t) = proc_start_time(pid) {
            self.procs.push((pid, t, cmdline(pid)));
        }
    }
}

// ---------------------------------------------------------------- /proc, cgroups, mounts

/// Field 22 of /proc/PID/stat (start time in clock ticks).
pub fn proc_start_time(pid: i32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

pub fn is_zombie(pid: i32) -> bool {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    s.rfind(')').and_then(|i| s[i + 2..].split_whitespace().next()).is_some_and(|st| st == "Z")
}

pub fn cmdline(pid: i32) -> String {
    let b = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&b).replace('\0', " ").trim().to_string()
}

/// Children of `pid` (all its threads).
pub fn children(pid: i32) -> Vec<i32> {
    let mut v = Vec::new();
    if let Ok(rd) = fs::read_dir(format!("/proc/{pid}/task")) {
        for t in rd.flatten() {
            let c = fs::read_to_string(t.path().join("children")).unwrap_or_default();
            v.extend(c.split_whitespace().filter_map(|x| x.parse::<i32>().ok()));
        }
    }
    v
}

/// Mount points of every cgroup hierarchy: (controllers or "" for v2, dir).
fn cgroup_mounts() -> Vec<(String, PathBuf)> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut v = Vec::new();
    for line in info.lines() {
        let Some((left, right)) = line.split_once(" - ") else { continue };
        let f: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        if f.len() < 5 || r.len() < 3 {
            continue;
        }
        match r[0] {
            "cgroup2" => v.push((String::new(), PathBuf::from(f[4]))),
            "cgroup" => v.push((r[2].to_string(), PathBuf::from(f[4]))),
            _ => {}
        }
    }
    v
}

/// The host directories of the cgroups a machine's leader is in that
/// belong to the machine (below a `berth` dir): the unified one without
/// a trailing `init.scope`, and any v1 ones.
pub fn machine_cgroups(leader: i32) -> Vec<PathBuf> {
    let text = fs::read_to_string(format!("/proc/{leader}/cgroup")).unwrap_or_default();
    let mounts = cgroup_mounts();
    let mut out = Vec::new();
    for line in text.lines() {
        let mut it = line.splitn(3, ':');
        let (_, ctrls, path) = (it.next(), it.next().unwrap_or(""), it.next().unwrap_or("/"));
        if !path.contains("/berth") {
            continue;
        }
        let path = path.strip_suffix("/init.scope").unwrap_or(path);
        let mount = if ctrls.is_empty() {
            mounts.iter().find(|(c, _)| c.is_empty())
        } else {
            mounts.iter().find(|(opts, _)| {
                let opts: Vec<&str> = opts.split(',').collect();
                ctrls.split(',').all(|c| opts.contains(&c))
            })
        };
        if let Some((_, m)) = mount {
            out.push(m.join(path.trim_start_matches('/')));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Every pid in a cgroup directory and below it.
pub fn cgroup_pids(dir: &Path) -> Vec<i32> {
    let mut out = Vec::new();
    if let Ok(t) = fs::read_to_string(dir.join("cgroup.procs")) {
        out.extend(t.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(cgroup_pids(&e.path()));
            }
        }
    }
    out
}

/// Directories `…/berth/NAME-*` or `…/berth.slice/NAME-*` on any hierarchy.
pub fn berth_cgroups_named(name: &str) -> Vec<PathBuf> {
    fn walk(d: &Path, prefix: &str, depth: usize, out: &mut Vec<PathBuf>) {
        if depth > 8 {
            return;
        }
        let Ok(rd) = fs::read_dir(d) else { return };
        for e in rd.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let p = e.path();
            let parent_is_berth = d.file_name().is_some_and(|n| n == "berth" || n == "berth.slice");
            if parent_is_berth && e.file_name().to_string_lossy().starts_with(prefix) {
                out.push(p);
            } else {
                walk(&p, prefix, depth + 1, out);
            }
        }
    }
    let prefix = format!("{name}-");
    let mut out = Vec::new();
    for (_, m) in cgroup_mounts() {
        walk(&m, &prefix, 0, &mut out);
    }
    out.sort();
    out.dedup();
    out
}

/// Host mount points a machine could leak or remove: under the test's dir
/// or one of the system's own directories, with multiplicity.
pub struct Mounts(BTreeMap<PathBuf, usize>);

impl Mounts {
    pub fn now(own: &Path) -> Mounts {
        const SYSTEM: &[&str] = &[
            "/",
            "/run",
            "/tmp",
            "/usr",
            "/var",
            "/srv",
            "/mnt",
            "/home",
            "/root",
            "/opt",
            "/boot",
            "/proc",
            "/sys",
            "/dev",
            "/dev/pts",
            "/dev/shm",
            "/dev/mqueue",
            "/sys/fs/cgroup",
            "/etc",
        ];
        let mut m = BTreeMap::new();
        for p in mount_points() {
            let relevant = p.starts_with(own)
                || SYSTEM.iter().any(|s| p == Path::new(s))
                || p.starts_with("/sys/fs/cgroup")
                || p.starts_with("/run/berth")
                || p.starts_with("/var/lib/berth");
            if relevant {
                *m.entry(p).or_insert(0) += 1;
            }
        }
        Mounts(m)
    }

    /// Mount points (with multiplicity) in `self` that `before` lacks.
    fn added_since(&self, before: &Mounts) -> Vec<PathBuf> {
        self.0.iter().filter(|(p, n)| before.0.get(*p).copied().unwrap_or(0) < **n).map(|(p, _)| p.clone()).collect()
    }
}

/// Sends `sig` to `pid`.
pub fn signal(pid: i32, sig: rustix::process::Signal) {
    let p = rustix::process::Pid::from_raw(pid).expect("pid");
    rustix::process::kill_process(p, sig).unwrap_or_else(|e| panic!("kill({pid}, {sig:?}): {e}"));
}

/// Waits until `pid` (with start time `start`) is gone or a zombie.
pub fn wait_dead(pid: i32, start: u64, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if proc_start_time(pid) != Some(start) || is_zombie(pid) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
