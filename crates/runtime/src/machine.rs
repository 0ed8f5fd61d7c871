//! Running machines: the state file under `/run/berth/STORE/NAME/`,
//! liveness checks that survive pid reuse, and entering a running
//! machine's namespaces and cgroup (`berth exec`, `berth shell`).
//!
//! Each store has a directory of its own under `/run/berth`, named by a
//! hash of the store's canonical path (the path itself is in its
//! `.store` file), so two stores with a machine of the same name never
//! share state, and `ps` lists the machines of the store in use. The
//! directory is root's alone (0700): console logs are the machines'.

use crate::sys;
use crate::RuntimeError;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The store whose machines this process handles, set once at start.
static STORE: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();

/// Where all stores' running state lives; `BERTH_RUN_DIR` moves it.
pub fn run_base() -> PathBuf {
    std::env::var_os("BERTH_RUN_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/run/berth"))
}

/// The canonical path `store` has, or will have once it is made: its
/// longest existing ancestor canonicalized, the rest appended. So the
/// first command on a new store (`--root ./s`, a trailing `/`, a symlink
/// on the way) keys it as every later one does.
pub fn canonical_store(store: &Path) -> PathBuf {
    let abs = match store.is_absolute() {
        true => store.to_path_buf(),
        false => std::env::current_dir().map(|d| d.join(store)).unwrap_or_else(|_| store.to_path_buf()),
    };
    let mut existing = abs.clone();
    let mut rest = Vec::new();
    while std::fs::canonicalize(&existing).is_err() {
        match existing.file_name() {
            Some(n) => {
                rest.push(n.to_os_string());
                existing.pop();
            }
            None => return abs,
        }
    }
    let mut out = std::fs::canonicalize(&existing).unwrap_or(existing);
    out.extend(rest.iter().rev());
    out
}

/// The name of a store's state directory: 16 hex digits of the sha256
/// of its canonical path (see [`canonical_store`]).
fn store_key(canonical: &Path) -> String {
    use sha2::Digest as _;
    let hash = sha2::Sha256::digest(canonical.as_os_str().as_encoded_bytes());
    hash[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Makes the machines of `store` the ones this process sees (call once,
/// before anything else here).
pub fn use_store(store: &Path) {
    let canonical = canonical_store(store);
    let _ = STORE.set((run_base().join(store_key(&canonical)), canonical));
}

/// Where the running machines of the store in use keep their state.
pub fn run_root() -> PathBuf {
    match STORE.get() {
        Some((dir, _)) => dir.clone(),
        None => run_base(),
    }
}

/// Creates the store's state directory (0700, with its `.store` file) if
/// it is not there yet.
fn make_run_root() -> Result<PathBuf, RuntimeError> {
    let dir = run_root();
    let fail = |e| RuntimeError::sys(format!("creating {}", dir.display()), e);
    if let Some(parent) = dir.parent() {
        std::fs::DirBuilder::new().recursive(true).mode(0o755).create(parent).map_err(fail)?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(fail(e)),
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(fail)?;
    if let Some((_, store)) = STORE.get() {
        let marker = dir.join(".store");
        if !marker.exists() {
            let mut body = store.as_os_str().as_encoded_bytes().to_vec();
            body.push(b'\n');
            std::fs::write(&marker, body).map_err(fail)?;
        }
    }
    Ok(dir)
}

/// What `/run/berth/NAME/state.json` records.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct State {
    pub name: String,
    /// Host pid of the container's PID 1.
    pub leader: i32,
    /// Its start time, to tell it from a later process with the same pid.
    pub leader_start: u64,
    /// The supervising berth process.
    pub supervisor: i32,
    /// Its start time (0 in state from older berths: unknown).
    #[serde(default)]
    pub supervisor_start: u64,
    pub boot: bool,
    /// Unix time the machine started.
    pub started: u64,
    pub root: String,
    /// The image the machine is built on, if any.
    #[serde(default)]
    pub image: Option<String>,
    /// How it was started: the init or command and its arguments.
    #[serde(default)]
    pub command: Vec<String>,
    /// The capability mask its processes run with: `exec` and `shell`
    /// get the same, never more (absent in state from older berths).
    #[serde(default)]
    pub caps: Option<u64>,
    /// Whether it runs under the seccomp filter.
    #[serde(default = "yes")]
    pub seccomp: bool,
    /// Its `--system-call-filter` values.
    #[serde(default)]
    pub system_call_filter: Vec<String>,
}

fn yes() -> bool {
    true
}

impl State {
    pub fn dir(name: &str) -> PathBuf {
        run_root().join(name)
    }

    /// Creates the machine's state directory (and the store's).
    pub fn make_dir(name: &str) -> Result<PathBuf, RuntimeError> {
        let dir = make_run_root()?.join(name);
        match std::fs::create_dir(&dir) {
            Ok(()) => Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(dir),
            Err(e) => Err(RuntimeError::sys(format!("creating {}", dir.display()), e)),
        }
    }

    pub fn load(name: &str) -> Option<State> {
        let b = std::fs::read(Self::dir(name).join("state.json")).ok()?;
        serde_json::from_slice(&b).ok()
    }

    pub fn save(&self) -> Result<(), RuntimeError> {
        let dir = Self::make_dir(&self.name)?;
        let tmp = dir.join(".state.json.tmp");
        let body = serde_json::to_vec_pretty(self).map_err(|e| RuntimeError::Setup(e.to_string()))?;
        std::fs::write(&tmp, body)
            .and_then(|_| std::fs::rename(&tmp, dir.join("state.json")))
            .map_err(|e| RuntimeError::sys("writing the state file", e))
    }

    /// Whether the recorded leader is still the same process.
    pub fn alive(&self) -> bool {
        sys::start_time(self.leader) == Some(self.leader_start)
    }

    /// Whether its leader is gone but its supervisor is not: it is
    /// waiting to run the machine again (`--restart`), or cleaning up.
    pub fn restarting(&self) -> bool {
        !self.alive() && self.supervisor_start != 0 && sys::start_time(self.supervisor) == Some(self.supervisor_start)
    }

    /// Whether the state outlived its machine (and may be removed).
    pub fn stale(&self) -> bool {
        !self.alive() && !self.restarting()
    }

    /// All machines with a state directory, live or stale.
    pub fn all() -> Vec<State> {
        let Ok(rd) = std::fs::read_dir(run_root()) else { return Vec::new() };
        let mut v: Vec<State> = rd.flatten().filter_map(|e| State::load(&e.file_name().to_string_lossy())).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Removes the state directory (the machine is gone).
    pub fn clear(name: &str) {
        let _ = std::fs::remove_dir_all(Self::dir(name));
    }

    pub fn console_log(name: &str) -> PathBuf {
        Self::dir(name).join("console.log")
    }
}

/// The running machine `name`, or a one-line reason why not; stale state
/// (leader gone or its pid reused after a crash) is cleaned up.
pub fn running(name: &str) -> Result<State, RuntimeError> {
    match State::load(name) {
        Some(s) if s.alive() => Ok(s),
        Some(s) if s.restarting() => Err(RuntimeError::Invalid(format!(
            "machine {name:?} is not running (its supervisor is restarting it, or finishing): `berth stop {name}` ends it"
        ))),
        Some(_) => {
            State::clear(name);
            Err(RuntimeError::Invalid(format!(
                "machine {name:?} is not running (its state was stale and has been cleaned up)"
            )))
        }
        None => {
            Err(RuntimeError::Invalid(format!("machine {name:?} is not running: start it with `berth start {name}`")))
        }
    }
}

/// Joins the leader's cgroup and namespaces (user, cgroup, ipc, uts, net,
/// pid, mount), all at once through a pidfd: a pid reused after the leader died
/// cannot redirect us into another process's namespaces. The pid
/// namespace applies to children: fork after this. When the machine has a
/// user namespace of its own, this process joins it as the namespace's
/// root (so what it makes inside, a pty, is root's there).
pub fn enter(st: &State) -> Result<(), RuntimeError> {
    let pidfd = leader_pidfd(st)?;
    join_cgroup(st.leader)?;
    let mut all = libc::CLONE_NEWCGROUP
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNS;
    // Its user namespace too, when it has one of its own: then the
    // capabilities kept are the namespace's, not the host's.
    let userns = own_userns(st.leader)?;
    if userns {
        all |= libc::CLONE_NEWUSER;
    }
    sys::setns_pidfd(&pidfd, all).map_err(|e| RuntimeError::sys("entering the machine's namespaces", e))?;
    // (setns into the mount namespace puts this process at its root,
    // which for a split-off init is the root moved over the host's; the
    // init's own chroot, which it could move anywhere, is not followed.)
    if userns {
        crate::creds::become_ns_root().map_err(|e| RuntimeError::sys("becoming root in the machine's users", e))?;
    }
    Ok(())
}

/// A pidfd of the machine's leader, checked to name it still: the pidfd
/// pins whatever process has that pid, so a reused one is caught here.
pub(crate) fn leader_pidfd(st: &State) -> Result<rustix::fd::OwnedFd, RuntimeError> {
    let pid = rustix::process::Pid::from_raw(st.leader)
        .ok_or_else(|| RuntimeError::Invalid(format!("machine {:?} has no leader", st.name)))?;
    let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())
        .map_err(|e| RuntimeError::sys(format!("opening machine {:?}'s leader", st.name), e))?;
    if !st.alive() {
        return Err(RuntimeError::Invalid(format!("machine {:?} stopped while entering it", st.name)));
    }
    Ok(pidfd)
}

/// Whether `pid` lives in a user namespace other than ours.
pub(crate) fn own_userns(pid: i32) -> Result<bool, RuntimeError> {
    let ino = |p: String| {
        rustix::fs::stat(&p).map(|st| (st.st_dev, st.st_ino)).map_err(|e| RuntimeError::sys(format!("reading {p}"), e))
    };
    Ok(ino(format!("/proc/{pid}/ns/user"))? != ino("/proc/self/ns/user".to_string())?)
}

/// Writes our pid into every cgroup the leader is in (host view).
fn join_cgroup(leader: i32) -> Result<(), RuntimeError> {
    let text = std::fs::read_to_string(format!("/proc/{leader}/cgroup"))
        .map_err(|e| RuntimeError::sys("reading the leader's cgroup", e))?;
    let layout = crate::cgroup::Layout::detect();
    let me = std::process::id().to_string();
    for line in text.lines() {
        let mut it = line.splitn(3, ':');
        let (_, ctrls, path) = (it.next(), it.next().unwrap_or(""), it.next().unwrap_or("/"));
        let mount = if ctrls.is_empty() {
            layout.unified.clone()
        } else {
            layout.v1.iter().find(|(c, _)| ctrls.split(',').any(|x| c.iter().any(|y| y == x))).map(|(_, p)| p.clone())
        };
        let Some(mount) = mount else { continue };
        let procs = mount.join(path.trim_start_matches('/')).join("cgroup.procs");
        // Outside the machine's cgroup, a process escapes its limits and
        // outlives its stop: not entering is an error.
        if Path::new(&procs).exists() {
            std::fs::write(&procs, &me)
                .map_err(|e| RuntimeError::sys(format!("joining the machine's cgroup {}", procs.display()), e))?;
        }
    }
    Ok(())
}

/// SIGRTMIN on this system.
pub fn sigrtmin() -> i32 {
    sys::sigrtmin_plus(0)
}

/// Sends signal number `sig` to `pid`.
pub fn signal(pid: i32, sig: i32) -> Result<(), RuntimeError> {
    sys::kill(pid, sig).map_err(|e| RuntimeError::sys(format!("signalling pid {pid}"), e))
}

/// Marks machine `name` as stopping: its supervisor will not boot it
/// again if the init reboots instead of powering off.
pub fn mark_stopping(name: &str) {
    let _ = std::fs::write(State::dir(name).join("stopping"), b"");
}

/// Asks a booted init to shut down cleanly (SIGRTMIN+3 for systemd,
/// SIGUSR2 for busybox init).
pub fn poweroff(leader: i32) -> Result<(), RuntimeError> {
    signal(leader, sys::poweroff_signal(leader))
}

/// Registers a running machine with systemd-machined over D-Bus (through
/// `busctl`), so `machinectl list` and `machinectl status` show it. Hosts
/// without machined (no `/run/systemd/machines`) skip this silently, and a
/// failure only costs the listing, so it is logged and ignored.
pub fn register_with_machined(s: &State) {
    if !Path::new("/run/systemd/machines").is_dir() {
        return;
    }
    let r = std::process::Command::new("busctl")
        .args(["call", "org.freedesktop.machine1", "/org/freedesktop/machine1", "org.freedesktop.machine1.Manager"])
        .args(["RegisterMachine", "sayssus", &s.name, "0", "berth", "container", &s.leader.to_string(), &s.root])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    if !r.map(|st| st.success()).unwrap_or(false) {
        tracing::info!(machine = %s.name, "systemd-machined did not take the registration");
    }
}
