//! The container side: runs in the cloned child, which is PID 1 of the new
//! PID namespace. It finishes the namespaces, builds the mount table,
//! starts the command (user, groups, capabilities, no_new_privs, seccomp),
//! then stays as a tiny init: reaps every child, forwards signals to the
//! command, and exits with the command's status (128+N for signal N).

use crate::spec::RunSpec;
use crate::sys::{self, Exit};
use crate::{caps, rootfs, users, RuntimeError};
use rustix::fd::{AsRawFd, OwnedFd};
use std::ffi::CString;
use std::io::Write;
use std::path::PathBuf;

/// Exit status for "berth could not set the container up".
pub const SETUP_FAILED: i32 = 125;

pub struct ChildContext {
    pub spec: RunSpec,
    pub run_dir: PathBuf,
    pub console: Option<PathBuf>,
    pub tty: Option<OwnedFd>,
    /// Which of 0, 1, 2 the command gets as `tty` (the others: berth's own).
    pub tty_fds: [bool; 3],
    /// The root's mounts and the user's binds, made on the host side, to
    /// attach.
    pub host: crate::userns::idmap::HostMounts,
    /// `--system-call-filter`, parsed.
    pub policy: crate::seccomp::Policy,
    /// Descriptors 3..3+N handed on deliberately: socket activation
    /// (LISTEN_FDS, passed on as systemd-nspawn does) or `--preserve-fds`.
    pub pass_fds: u32,
    /// LISTEN_FDS, LISTEN_PID (the pid inside) and LISTEN_FDNAMES for the
    /// command or init, when berth was socket-activated.
    pub listen_env: Vec<(String, String)>,
    pub sync: OwnedFd,
    pub errors: OwnedFd,
    /// Set when the container's init comes from a second clone (see
    /// [`split_off`]): where its host pid is reported.
    pub split: Option<OwnedFd>,
    /// The capability mask to grant, already cut to the host's bounding set.
    pub caps: u64,
}

/// Entry point of the cloned child; never returns.
pub fn child_main(mut ctx: ChildContext) -> ! {
    // Die with berth: a berth killed with SIGKILL must not leave its
    // container running (systemd-nspawn does the same). Had berth died
    // before this, the sync pipe below reads EOF and the child gives up.
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    // Take the error pipe out of the context: once the command runs, the
    // only copy must close, so the parent reads EOF and moves on.
    let errors = std::mem::replace(
        &mut ctx.errors,
        match rustix::io::dup(&ctx.sync) {
            Ok(fd) => fd,
            Err(_) => sys::exit_now(SETUP_FAILED),
        },
    );
    // Nothing the caller or berth had open reaches the container: not the
    // caller's descriptors (a directory fd on the host root is a way out,
    // the runc CVE-2024-21626 class) and not berth's own pipes (a
    // supervisor's report pipe held here kept `run -d` waiting).
    let keep = [
        ctx.sync.as_raw_fd(),
        ctx.errors.as_raw_fd(),
        errors.as_raw_fd(),
        ctx.tty.as_ref().map_or(-1, |t| t.as_raw_fd()),
        ctx.split.as_ref().map_or(-1, |t| t.as_raw_fd()),
    ];
    let listen: Vec<i32> = (3..3 + ctx.pass_fds as i32).collect();
    if sys::close_fds_except(&[&keep[..], &listen[..], &ctx.host.fds()[..]].concat()).is_err() {
        sys::exit_now(SETUP_FAILED);
    }
    // PID 1 is a fork of host berth until it execs or drops its
    // privileges: nothing in the container may ptrace it, read its memory
    // (the caller's environment is in there) or open its /proc/1/exe, the
    // host's berth binary (the CVE-2019-5736 class). A child inherits this
    // until its own exec.
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
    let mut errors = std::fs::File::from(errors);
    let code = match prepare_and_spawn(&ctx) {
        Ok((pid, root)) => {
            drop(errors); // EOF tells the parent the command started
            let keep = ctx.caps & (1 << caps::number("kill").unwrap_or(5));
            if ctx.pass_fds > 0 {
                let _ = sys::close_range(3, 2 + ctx.pass_fds);
            }
            drop(ctx);
            if let Err(e) = bare_reaper(root, keep) {
                // The command runs already: a reaper that cannot shed its
                // privileges must not stay beside it.
                let _ = sys::kill(pid, libc::SIGKILL);
                let _ = writeln!(std::io::stderr(), "berth: cannot drop the init's privileges: {e}");
                sys::exit_now(SETUP_FAILED);
            }
            reap(pid)
        }
        Err((code, msg)) => {
            let _ = errors.write_all(msg.as_bytes());
            code
        }
    };
    sys::exit_now(code)
}

fn fail(e: RuntimeError) -> (i32, String) {
    (SETUP_FAILED, e.to_string())
}

/// PID 1 after the command started: it already has the command's user,
/// capabilities, no_new_privs and filter (see `prepare_and_spawn`); a root
/// PID 1 now drops every capability but `keep` (CAP_KILL when the command
/// has it, to forward signals), and it lets go of the caller's stdio.
fn bare_reaper(root: bool, keep: u64) -> std::io::Result<()> {
    let null = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null")?;
    for fd in 0..3 {
        let mut target = sys::owned_fd(fd);
        let r = rustix::io::dup2(&null, &mut target);
        std::mem::forget(target);
        r?;
    }
    drop(null);
    if root {
        // The bounding set shrinks only while CAP_SETPCAP is held.
        let _ = caps::drop_bounding(keep);
        caps::set(keep)?;
    }
    Ok(())
}

fn prepare_and_spawn(ctx: &ChildContext) -> Result<(libc::pid_t, bool), (i32, String)> {
    let spec = &ctx.spec;
    // Wait until the parent has put us in our cgroup.
    let mut b = [0u8; 1];
    match rustix::io::read(&ctx.sync, &mut b) {
        Ok(1) => {}
        _ => return Err((SETUP_FAILED, "the parent went away before the container started".into())),
    }
    // Opened while still host root, which may traverse the store.
    let run_dir = rustix::fs::open(
        &ctx.run_dir,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| fail(RuntimeError::sys(format!("opening {}", ctx.run_dir.display()), e)))?;
    if spec.users.is_some() {
        // The parent has written the maps: become the namespace's root
        // (a host uid of the container's range) before touching anything.
        crate::creds::become_ns_root()
            .map_err(|e| fail(RuntimeError::sys("becoming root in the user namespace", e)))?;
        // A change of uid clears the parent-death signal.
        die_with_berth(&ctx.sync);
    }
    if let Some(report) = &ctx.split {
        // The host's /proc, where the init's maps are written: after the
        // chroot no path leads there.
        let proc = rustix::fs::open(
            "/proc",
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| fail(RuntimeError::sys("opening /proc", e)))?;
        rootfs::setup(spec, &run_dir, ctx.console.as_deref(), &ctx.host, true).map_err(fail)?;
        split_off(spec, report, &proc, &ctx.sync)?;
    }
    // A cgroup namespace rooted at the container's own cgroup.
    sys::unshare_cgroup().map_err(|e| fail(RuntimeError::sys("creating the cgroup namespace", e)))?;
    let _ = rustix::process::setsid();
    if spec.private_network {
        sys::loopback_up().map_err(|e| fail(RuntimeError::sys("bringing up lo", e)))?;
    }
    if ctx.split.is_none() {
        rootfs::setup(spec, &run_dir, ctx.console.as_deref(), &ctx.host, false).map_err(fail)?;
    } else {
        rootfs::kernel_fs(&ctx.host).map_err(fail)?;
    }
    drop(run_dir);
    rustix::system::sethostname(spec.hostname.as_bytes())
        .map_err(|e| fail(RuntimeError::sys("setting the hostname", e)))?;

    if spec.links_from_host() {
        // berth configures host0 from the host side once this init exists
        // (its network namespace is the one to configure): wait for it.
        let mut b = [0u8; 1];
        if !matches!(rustix::io::read(&ctx.sync, &mut b), Ok(1)) {
            return Err((SETUP_FAILED, "berth did not set up the container's network".into()));
        }
    }
    if spec.boot {
        return Err(boot(ctx));
    }
    let user = match &spec.user {
        Some(u) => {
            let passwd = crate::guest::read_own("etc/passwd").unwrap_or_default();
            let group = crate::guest::read_own("etc/group").unwrap_or_default();
            Some(users::resolve(u, &passwd, &group).map_err(|e| (SETUP_FAILED, e))?)
        }
        None => None,
    };
    let mut env: Vec<(String, String)> = spec.env.clone();
    env.extend(ctx.listen_env.iter().cloned());
    let has = |env: &Vec<(String, String)>, k: &str| env.iter().any(|(n, _)| n == k);
    if !has(&env, "PATH") {
        env.push(("PATH".into(), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()));
    }
    if !has(&env, "HOME") {
        env.push(("HOME".into(), user.as_ref().map(|u| u.home.clone()).unwrap_or_else(|| "/root".into())));
    }
    if let Some(name) = user.as_ref().and_then(|u| u.name.clone()) {
        if !has(&env, "USER") {
            env.push(("USER".into(), name.clone()));
            env.push(("LOGNAME".into(), name));
        }
    }
    let Some(arg0) = spec.args.first() else { return Err((SETUP_FAILED, "no command to run".into())) };
    let cwd = spec.cwd.clone().unwrap_or_else(|| "/".into());
    if !std::path::Path::new(&cwd).is_dir() {
        return Err((SETUP_FAILED, format!("working directory {cwd} does not exist in the container")));
    }
    // One entry per name, the later one winning (socket activation's
    // LISTEN_* over `-E` ones), as std's Command had it.
    let mut seen = std::collections::HashSet::new();
    let mut env: Vec<(String, String)> = env.into_iter().rev().filter(|(k, _)| seen.insert(k.clone())).collect();
    env.reverse();
    let c = |what: &str, v: &str| CString::new(v).map_err(|_| (SETUP_FAILED, format!("{what} {v:?} holds a NUL byte")));
    let argv = spec.args.iter().map(|a| c("argument", a)).collect::<Result<Vec<_>, _>>()?;
    let envp = env.iter().map(|(k, v)| c("environment entry", &format!("{k}={v}"))).collect::<Result<Vec<_>, _>>()?;
    // The PATH search happens here, with the command's own PATH: the
    // child only tries the files in order, as execvp would.
    let search = !arg0.contains('/');
    let paths = if !search {
        vec![c("command", arg0)?]
    } else if arg0.is_empty() {
        Vec::new()
    } else {
        let path = env.iter().find(|(k, _)| k == "PATH").map(|(_, v)| v.as_str()).unwrap_or_default();
        path.split(':')
            .map(|d| format!("{}/{arg0}", if d.is_empty() { "." } else { d }))
            .filter_map(|p| CString::new(p).ok())
            .collect()
    };
    let (stdio, ctty) = match &ctx.tty {
        Some(tty) => {
            let fd = tty.as_raw_fd();
            let which = ctx.tty_fds;
            (which.map(|b| b.then_some(fd)), Some(which.iter().position(|b| *b).unwrap_or(0) as i32))
        }
        None => ([None; 3], None),
    };
    let plan =
        sys::Spawn { paths, search, argv, envp, cwd: c("working directory", &cwd)?, stdio, pass: ctx.pass_fds, ctty };
    let creds = user
        .as_ref()
        .map(|u| crate::creds::Creds { uid: u.uid, gid: u.gid, groups: u.groups.clone() })
        .unwrap_or_else(crate::creds::Creds::root);
    let (mask, seccomp) = (ctx.caps, !spec.no_seccomp);
    // PID 1 takes the command's user, groups, capabilities, no_new_privs
    // and seccomp filter itself, then starts the command, which inherits
    // them: at no moment does PID 1 hold more than the command, and the
    // command has nothing to gain from it. Its argv and environment (the
    // caller's, host paths and tokens) are gone before the command starts.
    let _ = rustix::thread::set_name(c"berth-init");
    sys::scrub_cmdline_and_environ(b"berth-init");
    let filter = seccomp.then(|| ctx.policy.filter(crate::creds::effective(&creds, mask, true)));
    crate::creds::become_user(&creds, mask, true, filter.as_deref())
        .map_err(|e| fail(RuntimeError::sys("taking the container's user and privileges", e)))?;
    die_with_berth(&ctx.sync);
    match sys::spawn(&plan) {
        Ok(pid) => Ok((pid, creds.uid == 0)),
        Err(e) => Err(match e.raw_os_error() {
            Some(libc::ENOENT) => (127, format!("command {arg0:?} not found in the container")),
            Some(libc::EACCES) => (126, format!("command {arg0:?} is not executable in the container")),
            _ => (126, format!("cannot run {arg0:?} in the container: {e}")),
        }),
    }
}

/// Arms the parent-death signal (again: a change of uid clears it) and
/// leaves at once if berth is gone already: it holds the sync pipe's
/// write end open for as long as the container runs.
fn die_with_berth(sync: &OwnedFd) {
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    let mut fds = [rustix::event::PollFd::new(sync, rustix::event::PollFlags::IN)];
    let zero = rustix::event::Timespec { tv_sec: 0, tv_nsec: 0 };
    if rustix::event::poll(&mut fds, Some(&zero)).is_ok() && fds[0].revents().contains(rustix::event::PollFlags::HUP) {
        sys::exit_now(SETUP_FAILED);
    }
}

/// The second stage of a container whose root holds `CAP_SYS_ADMIN` in
/// its user namespace: the mount table was built (and moved onto `/` and
/// chrooted into) by this process, in the mount namespace of the user
/// namespace the host made; now the container's init is cloned into a user
/// namespace nested in it (the same IDs) with new mount, pid, UTS, IPC and network
/// namespaces. Copying the mount table into a user namespace that does
/// not own it locks every mount: the init, whatever its capabilities, can
/// neither remount a read-only bind or root writable, nor clear nodev or
/// nosuid, nor unmount what covers something. `CLONE_PARENT` makes the
/// init berth's child; this process reports its pid and exits. Returns in
/// the init only.
fn split_off(spec: &RunSpec, report: &OwnedFd, proc: &OwnedFd, sync: &OwnedFd) -> Result<(), (i32, String)> {
    let (go_r, go_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| fail(RuntimeError::sys("creating a pipe", e)))?;
    let mut flags = libc::CLONE_PARENT
        | libc::CLONE_NEWUSER
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWIPC;
    if spec.private_network {
        flags |= libc::CLONE_NEWNET;
    }
    // The init's maps are written by this process, as the namespace's
    // root: they must be its to write, so the init starts dumpable (its
    // /proc files belong to its user then, not to host root) and turns
    // non-dumpable once mapped. Until then nothing else runs in its
    // namespaces.
    use rustix::process::{set_dumpable_behavior, DumpableBehavior};
    let _ = set_dumpable_behavior(DumpableBehavior::Dumpable);
    match sys::clone_fork(flags) {
        Err(e) => Err(fail(RuntimeError::sys("creating the container's namespaces", e))),
        Ok(None) => {
            // Its parent is berth now: die with it.
            die_with_berth(sync);
            drop(go_w);
            let mut b = [0u8; 1];
            let mapped = matches!(rustix::io::read(&go_r, &mut b), Ok(1));
            let _ = set_dumpable_behavior(DumpableBehavior::NotDumpable);
            if mapped {
                Ok(())
            } else {
                Err((SETUP_FAILED, "the container's users were not mapped".into()))
            }
        }
        Ok(Some(pid)) => {
            drop(go_r);
            // The same IDs one level down: 0..COUNT of this namespace.
            let count = spec.users.map(|r| r.count).unwrap_or_default();
            let line = format!("0 0 {count}\n");
            // The init is berth's child: berth learns its pid whatever
            // happens next, to reap it.
            let told = rustix::io::write(report, &pid.to_le_bytes());
            if told.is_err() {
                let _ = sys::kill(pid, libc::SIGKILL);
                sys::exit_now(SETUP_FAILED);
            }
            if let Err(e) = crate::userns::write_maps(proc, &pid.to_string(), &line) {
                let _ = sys::kill(pid, libc::SIGKILL);
                return Err(fail(RuntimeError::sys("writing the init's ID maps", e)));
            }
            let _ = rustix::io::write(&go_w, b"g");
            sys::exit_now(0)
        }
    }
}

/// Where an init may live, most specific first.
const INITS: &[&str] =
    &["/usr/lib/systemd/systemd", "/lib/systemd/systemd", "/sbin/init", "/usr/sbin/init", "/bin/init"];

/// `--boot`: the tree's init becomes PID 1 itself. It gets the cgroup
/// tree systemd needs (cgroup2, rooted at the container's cgroup by the
/// cgroup namespace), the console as its controlling tty, and the
/// capability set and seccomp filter; not no_new_privs, since a booted
/// system runs setuid programs (su, sudo, passwd). Only returns on failure.
fn boot(ctx: &ChildContext) -> (i32, String) {
    use std::ffi::CString;
    let spec = &ctx.spec;
    let init = match spec.args.first() {
        Some(a) if a.starts_with('/') => a.clone(),
        _ => match INITS.iter().find(|p| std::path::Path::new(p).exists()) {
            Some(p) => p.to_string(),
            None => return (SETUP_FAILED, "no init found in the tree (/usr/lib/systemd/systemd, /sbin/init): install one, or run a command without --boot".into()),
        },
    };
    let cg = std::path::Path::new("/sys/fs/cgroup");
    if cg.is_dir() {
        let flags =
            rustix::mount::MountFlags::NOSUID | rustix::mount::MountFlags::NODEV | rustix::mount::MountFlags::NOEXEC;
        if let Err(e) = rustix::mount::mount("cgroup2", cg, "cgroup2", flags, None::<&std::ffi::CStr>) {
            return (SETUP_FAILED, format!("mounting the cgroup tree for the init: {e}"));
        }
    }
    let mut argv: Vec<CString> = vec![CString::new(init.clone()).unwrap_or_default()];
    let rest = if spec.args.first().is_some_and(|a| a.starts_with('/')) { &spec.args[1..] } else { &spec.args[..] };
    argv.extend(rest.iter().filter_map(|a| CString::new(a.as_str()).ok()));
    let mut env: Vec<CString> = spec
        .env
        .iter()
        .cloned()
        .chain(ctx.listen_env.iter().cloned())
        .filter_map(|(k, v)| CString::new(format!("{k}={v}")).ok())
        .collect();
    if !spec.env.iter().any(|(k, _)| k == "PATH") {
        env.push(CString::new("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin").unwrap_or_default());
    }
    if let Some(tty) = &ctx.tty {
        for fd in 0..3 {
            let mut target = unsafe_fd(fd);
            if rustix::io::dup2(tty, &mut target).is_err() {
                return (SETUP_FAILED, "attaching the console".into());
            }
            std::mem::forget(target);
        }
        let _ = sys::set_controlling_tty(0);
    }
    let _ = std::env::set_current_dir("/");
    // The filter goes on first: without no_new_privs, installing it needs
    // CAP_SYS_ADMIN, which the init's own set may lack.
    if !spec.no_seccomp {
        if let Err(e) = sys::install_seccomp(&ctx.policy.filter(ctx.caps)) {
            return (SETUP_FAILED, format!("installing the seccomp filter: {e}"));
        }
    }
    if let Err(e) = caps::drop_bounding(ctx.caps).and_then(|_| caps::set(ctx.caps)) {
        return (SETUP_FAILED, format!("setting capabilities: {e}"));
    }
    sys::unblock_all();
    if let Err(e) = sys::pass_fds(ctx.pass_fds) {
        return (SETUP_FAILED, format!("closing descriptors: {e}"));
    }
    let e = sys::execve(&argv, &env);
    (127, format!("cannot execute the init {init}: {e}"))
}

fn unsafe_fd(fd: i32) -> rustix::fd::OwnedFd {
    sys::owned_fd(fd)
}

/// The init loop: forward signals to `main`, reap everything, leave when
/// `main` ends.
fn reap(main: libc::pid_t) -> i32 {
    let sfd = match sys::signalfd(sys::FORWARDED) {
        Ok(fd) => fd,
        Err(_) => return sys::waitpid(main, false).ok().flatten().map(|(_, e)| e.status()).unwrap_or(SETUP_FAILED),
    };
    let _ = sfd.as_raw_fd();
    loop {
        // Reap first: the command may have ended before the signalfd existed.
        loop {
            match sys::waitpid(-1, true) {
                Ok(Some((pid, exit))) if pid == main => return exit_status(exit),
                Ok(Some(_)) => continue,
                _ => break,
            }
        }
        match sys::read_signal(&sfd) {
            Ok(libc::SIGCHLD) | Err(_) => {}
            Ok(sig) => {
                let _ = sys::kill(main, sig);
            }
        }
    }
}

fn exit_status(e: Exit) -> i32 {
    e.status()
}
