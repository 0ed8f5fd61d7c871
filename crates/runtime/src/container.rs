//! The host side of `run`: cgroup, pipes, pty, clone into new namespaces,
//! then relay the console and signals until the container's PID 1 exits.
//! Nothing outlives it: the mount namespace takes every mount with it and
//! the cgroup is removed.

use crate::cgroup::Cgroup;
use crate::init::{child_main, ChildContext, SETUP_FAILED};
use crate::pty::{pass_winsize, Pty, RawMode};
use crate::spec::{Console, ConsolePlan, Relay, RunSpec};
use crate::sys::{self, Exit};
use crate::{caps, RuntimeError};
use rustix::event::{poll, PollFd, PollFlags};
use rustix::fd::{AsFd, OwnedFd};
use rustix::pipe::{pipe_with, PipeFlags};
use std::io::{Read, Write};
use std::path::Path;

/// How a run ended: the exit status, and the one-line reason when berth
/// (not the command) ended it.
#[derive(Debug)]
pub struct Outcome {
    pub status: i32,
    pub message: Option<String>,
    /// A booted init asked for a reboot (a supervisor starts it again).
    pub rebooted: bool,
}

/// What a container runs with, for those who enter it later.
#[derive(Debug, Clone)]
pub struct Privileges {
    /// The capability mask of its processes.
    pub caps: u64,
    pub seccomp: bool,
    /// `--system-call-filter` values.
    pub system_call_filter: Vec<String>,
}

/// Told when the container's command (or init) is running.
pub trait Hooks {
    fn started(&self, _leader: libc::pid_t, _privileges: Privileges) {}
}

struct NoHooks;
impl Hooks for NoHooks {}

/// Runs `spec` with `run_dir` (holding an empty `root/`) as scratch space.
pub fn run(spec: &RunSpec, run_dir: &Path) -> Result<Outcome, RuntimeError> {
    run_hooked(spec, run_dir, &NoHooks)
}

/// [`run`], calling `hooks` along the way.
pub fn run_hooked(spec: &RunSpec, run_dir: &Path, hooks: &dyn Hooks) -> Result<Outcome, RuntimeError> {
    let mut extra = Vec::new();
    if spec.private_network {
        extra.push("net_admin");
    }
    let base = if spec.boot { caps::BOOT } else { caps::DEFAULT };
    let want =
        caps::compute(base, &spec.capabilities_add, &spec.capabilities_drop, &extra).map_err(RuntimeError::Invalid)?;
    let have = caps::host_bounding();
    let asked = caps::compute(&[], &spec.capabilities_add, &[], &[]).unwrap_or(0);
    if want & !have != 0 && !spec.capabilities_add.is_empty() {
        let missing: Vec<String> = caps::names(want & !have & asked);
        if !missing.is_empty() {
            tracing::warn!("the host's bounding set lacks {}: the container runs without them", missing.join(", "));
        }
    }
    // Container root is host root without a user namespace, and also in
    // one whose range holds host uid 0 (identity): then capabilities are
    // the host's.
    let host_users = spec.users.is_none_or(|r| r.base == 0);
    let host_root = caps::compute(caps::HOST_ROOT, &[], &[], &[]).unwrap_or(0);
    let given = if spec.boot { want } else { asked & want };
    let risky = caps::names(given & host_root);
    if host_users && !risky.is_empty() {
        tracing::warn!(
            "{} in a container that shares the host's users (--private-users=no or identity) amounts to host \
             root: only for containers you trust",
            risky.join(", ")
        );
    }
    let mask = want & have;

    let cgroup_name = format!("{}-{}", sanitize(&spec.name), std::process::id());
    let cgroup = Cgroup::create(&cgroup_name, &spec.limits, &device_rules(spec)?)?;
    let result = run_in(spec, run_dir, &cgroup, mask, hooks);
    cgroup.remove();
    result
}

/// How many socket-activation descriptors (from 3 up) berth was handed:
/// LISTEN_FDS when LISTEN_PID names this process, as sd_listen_fds(3)
/// reads them; they go on to the container, nothing else does.
fn listen_fds() -> u32 {
    let ours = std::env::var("LISTEN_PID").ok().and_then(|p| p.parse::<u32>().ok()) == Some(std::process::id());
    let n = std::env::var("LISTEN_FDS").ok().and_then(|n| n.parse::<u32>().ok()).unwrap_or(0);
    if ours && n <= 1024 {
        n
    } else {
        0
    }
}

/// The devices the container may open: berth's own and `--device` ones,
/// which must be device nodes on the host.
fn device_rules(spec: &RunSpec) -> Result<Vec<crate::devices::Rule>, RuntimeError> {
    let mut rules = crate::devices::defaults();
    for d in &spec.devices {
        let st = rustix::fs::stat(&d.host).map_err(|e| {
            RuntimeError::Invalid(format!("--device {}: {e}: give the path of a device node", d.host.display()))
        })?;
        let kind = match rustix::fs::FileType::from_raw_mode(st.st_mode) {
            rustix::fs::FileType::CharacterDevice => b'c',
            rustix::fs::FileType::BlockDevice => b'b',
            _ => {
                return Err(RuntimeError::Invalid(format!(
                    "--device {}: not a device node: bind files and directories with --bind",
                    d.host.display()
                )))
            }
        };
        let (major, minor) = (rustix::fs::major(st.st_rdev), rustix::fs::minor(st.st_rdev));
        rules.push(crate::devices::Rule { kind, major: Some(major), minor: Some(minor), access: d.access });
    }
    Ok(rules)
}

fn sanitize(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' { c } else { '_' }).collect()
}

fn run_in(
    spec: &RunSpec,
    run_dir: &Path,
    cgroup: &Cgroup,
    mask: u64,
    hooks: &dyn Hooks,
) -> Result<Outcome, RuntimeError> {
    // Descriptors handed on must be the caller's: checked before berth
    // opens anything of its own, which would take their numbers.
    let activated = listen_fds();
    if !crate::caller_fds_open(spec.preserve_fds) {
        return Err(RuntimeError::Invalid(format!(
            "--preserve-fds {}: descriptors 3 to {} are not all open: hand them over or pass fewer",
            spec.preserve_fds,
            2 + spec.preserve_fds
        )));
    }
    if !crate::caller_fds_open(activated) {
        return Err(RuntimeError::Invalid(format!(
            "LISTEN_FDS={activated}: descriptors 3 to {} are not all open: fix the socket activation",
            2 + activated
        )));
    }
    let pipe = || pipe_with(PipeFlags::CLOEXEC).map_err(|e| RuntimeError::sys("creating a pipe", e));
    let (sync_r, sync_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    // The caller's terminal never reaches the container (TIOCSTI would
    // type into the caller's shell): a terminal among stdin, stdout and
    // stderr is replaced by a pty of the container's own, which berth
    // relays. A booted init writes to /dev/console, so it always gets one.
    let terminals = crate::pty::stdio_terminals();
    let mode = match (spec.tty, spec.boot, spec.console) {
        (true, _, _) => Console::Interactive,
        (false, true, Console::Pipe | Console::Autopipe) => Console::Interactive,
        (false, _, m) => m,
    };
    let plan = ConsolePlan::new(mode, terminals);
    let pty = if plan.uses_pty() { Some(Pty::open()?) } else { None };
    if let (Some(p), Some(r)) = (&pty, spec.users) {
        // The container's root owns its console, as on a real system
        // (group tty, 5): an init reopens /dev/console by name.
        let (uid, gid) = (rustix::fs::Uid::from_raw(r.base), rustix::fs::Gid::from_raw(r.base + 5));
        rustix::fs::fchown(&p.slave, Some(uid), Some(gid))
            .map_err(|e| RuntimeError::sys("handing the console to the container", e))?;
    }
    let policy = crate::seccomp::Policy::parse(&spec.system_call_filter).map_err(RuntimeError::Invalid)?;
    // Compiled once here so a policy that cannot be is an error before the
    // start, not a weaker filter inside.
    policy.try_filter(0).and_then(|_| policy.try_filter(u64::MAX)).map_err(RuntimeError::Invalid)?;
    // The tree, layers and binds, opened on the host side; inside its user
    // namespace container root could not reach them.
    // A network namespace to join: this thread enters it until the clone,
    // so the container starts in it (and a sysfs made for it below is its).
    let joined = match &spec.netns {
        Some(p) => {
            let ns = crate::net::ns::open_named(p).map_err(RuntimeError::Invalid)?;
            Some(
                crate::net::ns::Joined::enter(&ns)
                    .map_err(|e| RuntimeError::sys("joining the network namespace", e))?,
            )
        }
        None => None,
    };
    let host = crate::userns::idmap::HostMounts::prepare(spec)?;
    // The command is PID 2 (the first child of berth's init); a booted
    // init is PID 1.
    let mut listen_env = Vec::new();
    if activated > 0 {
        let pid = if spec.boot { "1" } else { "2" };
        listen_env.push(("LISTEN_FDS".to_string(), activated.to_string()));
        listen_env.push(("LISTEN_PID".to_string(), pid.to_string()));
        if let Ok(names) = std::env::var("LISTEN_FDNAMES") {
            listen_env.push(("LISTEN_FDNAMES".to_string(), names));
        }
    }
    // Published ports are held from before the container starts (a port
    // in use is an error now) until berth is done with it.
    let _ports = match &spec.network {
        Some(net) => crate::net::ports::reserve(&net.ports).map_err(|e| RuntimeError::Setup(e.to_string()))?,
        None => Vec::new(),
    };
    // The machine's addresses bound to its link on the bridge: one nft,
    // running while the container is made, waited for before it starts.
    let binding = match &spec.network {
        Some(net) => crate::net::bind::start(net).map_err(|e| RuntimeError::Setup(e.to_string()))?,
        None => None,
    };
    // Block the signals we relay before cloning, so none is lost between
    // the clone and the relay loop; the child inherits the mask.
    let sfd = sys::signalfd(sys::FORWARDED).map_err(|e| RuntimeError::sys("creating a signalfd", e))?;
    let mut flags = libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC;
    if spec.private_network {
        flags |= libc::CLONE_NEWNET;
    }
    if spec.users.is_some() {
        // One clone makes every namespace at once, so each is owned by the
        // container's user namespace: its root administers them, and
        // nothing of the host's.
        flags |= libc::CLONE_NEWUSER;
    }
    // A root with CAP_SYS_ADMIN in its user namespace could undo what the
    // mount table promises (remount a read-only bind writable): its init
    // comes from a second clone that locks the table (`init::split_off`).
    // The first clone then makes only the user and mount namespaces.
    let split = spec.users.is_some() && mask & caps::SYS_ADMIN != 0;
    if split {
        no_mounts_below_kernel_fs(spec)?;
    }
    let (report_r, report_w) = if split {
        flags = libc::CLONE_NEWNS | libc::CLONE_NEWUSER;
        let (r, w) = pipe()?;
        (Some(r), Some(w))
    } else {
        (None, None)
    };
    // Straight into the container's cgroup on the unified hierarchy, when
    // there is one (the v1 ones, if any, are joined below).
    let mut into = cgroup.unified()?;
    let cloned = match &into {
        Some(fd) => match sys::clone_into_cgroup(flags, fd) {
            // A kernel before 5.7: no clone3 (or no CLONE_INTO_CGROUP).
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::E2BIG)) => {
                into = None;
                sys::clone_fork(flags)
            }
            r => r,
        },
        None => sys::clone_fork(flags),
    };
    let child = match cloned {
        Err(e) => {
            sys::unblock_all();
            return Err(RuntimeError::sys("creating the container's namespaces", e));
        }
        Ok(None) => {
            drop((sync_w, err_r, sfd, report_r));
            let ctx = ChildContext {
                spec: spec.clone(),
                run_dir: run_dir.to_path_buf(),
                console: pty.as_ref().map(|p| p.slave_path.clone()),
                tty: pty.map(|p| p.slave),
                tty_fds: plan.pty,
                host,
                policy,
                pass_fds: activated.max(spec.preserve_fds),
                listen_env,
                sync: sync_r,
                errors: err_w,
                split: report_w,
                caps: mask,
            };
            child_main(ctx)
        }
        Ok(Some(pid)) => pid,
    };
    drop(joined);
    drop((sync_r, err_w));
    let (master, slave) = match pty {
        Some(p) => (Some(p.master), Some(p.slave)),
        None => (None, None),
    };
    // Keep a slave open while the container runs: an init closes and
    // reopens /dev/console, and with no slave open the master would read
    // EIO and the console would go silent. The end is seen by waitpid.
    let _slave = slave;
    let setup = || -> Result<(), RuntimeError> {
        cgroup.add(child, into.is_some())?;
        if let Some(range) = spec.users {
            map_users(child, range)?;
            let ns = if range.base != 0 {
                Some(
                    rustix::fs::open(
                        format!("/proc/{child}/ns/user"),
                        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
                        rustix::fs::Mode::empty(),
                    )
                    .map_err(|e| RuntimeError::sys("opening the container's user namespace", e))?,
                )
            } else {
                None
            };
            let writable = !spec.read_only && spec.volatile == crate::spec::Volatile::No;
            host.idmap(ns.as_ref(), range, spec.ownership, writable)?;
            if spec.boot {
                // A booted systemd manages its own part of the tree.
                cgroup.delegate(range.base)?;
            }
        }
        Ok(())
    };
    if let Err(e) = setup() {
        let _ = sys::kill(child, libc::SIGKILL);
        let _ = sys::waitpid(child, false);
        sys::unblock_all();
        return Err(e);
    }
    drop(host);
    let _ = rustix::io::write(&sync_w, b"g");
    // Held open until the container ends: its init sees the pipe hang up
    // if berth dies (see `init::die_with_berth`).
    let _sync_w = sync_w;
    let child = match report_r {
        Some(r) => {
            drop(report_w);
            let mut b = [0u8; 4];
            match rustix::io::read(&r, &mut b) {
                Ok(4) => {
                    // The first stage is done: reap it; the init is ours
                    // (killed already if the first stage failed after all).
                    let _ = sys::waitpid(child, false);
                    i32::from_le_bytes(b)
                }
                // It failed before: its status and message say why
                // (and it has no namespace to link: see net::attach).
                _ => child,
            }
        }
        None => child,
    };
    // The init (`child` now) waits for its link before it starts the
    // command or boots: made here, from the host side, into its network
    // namespace.
    let mut host_end = None;
    let net_failed = if spec.links_from_host() {
        let linked = match &spec.network {
            Some(net) => crate::net::attach(net, child).map(|index| host_end = Some(index)),
            None => Ok(()),
        };
        let bound = match binding {
            Some(b) => b
                .finish(|| crate::net::network::repair().map_err(|e| e.to_string()))
                .map_err(|e| RuntimeError::Setup(format!("binding the machine's addresses to its link: {e}"))),
            None => Ok(()),
        };
        match linked.and(bound).and_then(|()| crate::net::attach_vlans(&spec.vlans, child)) {
            Ok(()) => {
                let _ = rustix::io::write(&_sync_w, b"n");
                None
            }
            Err(e) => {
                let _ = sys::kill(child, libc::SIGKILL);
                // The veth and port table, if made before something
                // else failed.
                if let (Some(net), Some(index)) = (&spec.network, host_end) {
                    crate::net::detach(net, index);
                }
                Some(e)
            }
        }
    } else {
        None
    };
    let mut message = String::new();
    let _ = std::fs::File::from(err_r).read_to_string(&mut message);
    if let Some(e) = net_failed {
        let _ = sys::waitpid(child, false);
        sys::unblock_all();
        // A container that failed on its own says why; else the link did.
        return Err(if message.trim().is_empty() { e } else { RuntimeError::Setup(message.trim().to_string()) });
    }
    if message.is_empty() {
        hooks.started(
            child,
            Privileges { caps: mask, seccomp: !spec.no_seccomp, system_call_filter: spec.system_call_filter.clone() },
        );
    }
    // A booted init shuts down cleanly on its own signal (SIGRTMIN+3 for
    // systemd); plain commands get the signal itself.
    let map = |sig: libc::c_int| -> libc::c_int {
        if spec.boot && matches!(sig, libc::SIGTERM | libc::SIGINT | libc::SIGHUP) {
            sys::poweroff_signal(child)
        } else {
            sig
        }
    };
    let exit = match &master {
        Some(m) if message.is_empty() => relay_tty(child, m, &sfd, &map, plan.input, plan.output),
        _ => wait_forwarding(child, &sfd, &map),
    };
    // The kernel ends a PID namespace's init that called reboot(2) with
    // SIGINT (power off, halt) or SIGHUP (reboot): both are a clean end.
    let rebooted = spec.boot && matches!(exit, Ok(Exit::Signal(libc::SIGHUP)));
    let exit = match exit {
        Ok(Exit::Signal(libc::SIGINT | libc::SIGHUP)) if spec.boot => Ok(Exit::Code(0)),
        e => e,
    };
    sys::unblock_all();
    if let (Some(net), Some(index)) = (&spec.network, host_end) {
        crate::net::detach(net, index);
    }
    let status = exit.map_err(|e| RuntimeError::sys("waiting for the container", e))?.status();
    let message = if message.is_empty() { None } else { Some(message.trim().to_string()) };
    if status == SETUP_FAILED && message.is_some() {
        return Err(RuntimeError::Setup(message.unwrap_or_default()));
    }
    Ok(Outcome { status, message, rebooted })
}

/// Writes the container's uid and gid maps: its IDs 0.. are `range` on
/// the host. Written by host root, so setgroups(2) stays allowed inside.
fn map_users(child: libc::pid_t, range: crate::userns::IdRange) -> Result<(), RuntimeError> {
    let line = range.map_line();
    crate::userns::write_maps(rustix::fs::CWD, &format!("/proc/{child}"), &line)
        .map_err(|e| RuntimeError::sys(format!("writing the container's ID maps ({})", line.trim()), e))
}

/// For a split-off init (see `init::split_off`): `/proc`, `/dev/mqueue`
/// and a private network's `/sys` are mounted by the init, after the table
/// was locked, so a user mount below them would end up covered.
fn no_mounts_below_kernel_fs(spec: &RunSpec) -> Result<(), RuntimeError> {
    let mut kernel = vec![Path::new("/proc"), Path::new("/dev/mqueue")];
    if spec.private_network {
        kernel.push(Path::new("/sys"));
    }
    for dst in spec.mounts.iter().map(|m| m.dst()) {
        if let Some(k) = kernel.iter().find(|k| dst.starts_with(k)) {
            return Err(RuntimeError::Invalid(format!(
                "{} is below {}, which a container with CAP_SYS_ADMIN mounts itself: mount it elsewhere",
                dst.display(),
                k.display()
            )));
        }
    }
    Ok(())
}

/// Forwards signals to the container until its PID 1 exits.
pub(crate) fn wait_forwarding(
    child: libc::pid_t,
    sfd: &OwnedFd,
    map: &dyn Fn(libc::c_int) -> libc::c_int,
) -> std::io::Result<Exit> {
    loop {
        if let Some((_, exit)) = sys::waitpid(child, true)? {
            return Ok(exit);
        }
        match sys::read_signal(sfd)? {
            libc::SIGCHLD | libc::SIGWINCH => {}
            sig => {
                let _ = sys::kill(child, map(sig));
            }
        }
    }
}

/// Relays stdin → pty (when `input`) and pty → `output`, window sizes and
/// signals.
pub(crate) fn relay_tty(
    child: libc::pid_t,
    master: &OwnedFd,
    sfd: &OwnedFd,
    map: &dyn Fn(libc::c_int) -> libc::c_int,
    input: bool,
    output: Relay,
) -> std::io::Result<Exit> {
    let _raw = if input { Some(RawMode::enter()) } else { None };
    pass_winsize(master);
    let stdin = std::io::stdin();
    let mut stdout: Box<dyn Write> = match output {
        Relay::Stdout => Box::new(std::io::stdout()),
        Relay::Stderr => Box::new(std::io::stderr()),
        Relay::Discard => Box::new(std::io::sink()),
    };
    let mut stdin_open = input;
    let mut master_open = true;
    let mut buf = vec![0u8; 32 << 10];
    loop {
        if let Some((_, exit)) = sys::waitpid(child, true)? {
            // Drain what the container wrote last.
            while master_open {
                let mut fds = [PollFd::new(master, PollFlags::IN)];
                if poll(&mut fds, Some(&rustix::event::Timespec { tv_sec: 0, tv_nsec: 0 })).unwrap_or(0) == 0 {
                    break;
                }
                match rustix::io::read(master, &mut buf) {
                    Ok(n) if n > 0 => {
                        stdout.write_all(&buf[..n])?;
                    }
                    _ => master_open = false,
                }
            }
            stdout.flush()?;
            return Ok(exit);
        }
        let stdin_fd = stdin.as_fd();
        let mut fds = vec![PollFd::new(sfd, PollFlags::IN)];
        if master_open {
            fds.push(PollFd::new(master, PollFlags::IN));
        }
        if stdin_open {
            fds.push(PollFd::new(&stdin_fd, PollFlags::IN));
        }
        match poll(&mut fds, None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let ready: Vec<bool> = fds.iter().map(|f| !f.revents().is_empty()).collect();
        if ready[0] {
            match sys::read_signal(sfd)? {
                libc::SIGCHLD => {}
                libc::SIGWINCH => pass_winsize(master),
                sig => {
                    let _ = sys::kill(child, map(sig));
                }
            }
        }
        let mut idx = 1;
        if master_open {
            if ready[idx] {
                match rustix::io::read(master, &mut buf) {
                    Ok(n) if n > 0 => {
                        stdout.write_all(&buf[..n])?;
                        stdout.flush()?;
                    }
                    // EIO: every slave fd is closed, the container is done with it.
                    _ => master_open = false,
                }
            }
            idx += 1;
        }
        if stdin_open && ready[idx] {
            match rustix::io::read(stdin_fd, &mut buf) {
                Ok(n) if n > 0 => {
                    let mut off = 0;
                    while off < n {
                        match rustix::io::write(master, &buf[off..n]) {
                            Ok(w) => off += w,
                            Err(rustix::io::Errno::INTR) | Err(rustix::io::Errno::AGAIN) => continue,
                            Err(_) => break,
                        }
                    }
                }
                _ => stdin_open = false,
            }
        }
    }
}
