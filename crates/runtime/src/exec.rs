//! `berth exec` / `berth shell`: a process inside a running machine. It
//! joins the leader's cgroup and namespaces, gets the container's default
//! capabilities, seccomp filter and (for exec) no_new_privs, optionally a
//! user from the machine's own /etc/passwd and a pty, and its exit status
//! comes back.

use crate::container::{relay_tty, wait_forwarding};
use crate::machine::{enter, running};
use crate::pty::Pty;
use crate::spec::{Console, ConsolePlan};
use crate::{caps, sys, users, RuntimeError};
use std::os::unix::process::CommandExt;
use std::process::Command;

#[derive(Debug, Clone, Default)]
pub struct ExecSpec {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub user: Option<String>,
    pub tty: bool,
    /// A login session (`shell`): no no_new_privs, so su and sudo work.
    pub login: bool,
}

/// Runs `spec` in machine `name`; returns the exit status.
pub fn exec(name: &str, spec: &ExecSpec) -> Result<i32, RuntimeError> {
    let st = running(name)?;
    // The machine's own capability set, never more: a machine started
    // with --drop-capability must not get it back through exec.
    let mask = match st.caps {
        Some(m) => m,
        None => caps::compute(caps::DEFAULT, &[], &[], &[]).map_err(RuntimeError::Invalid)?,
    } & caps::host_bounding();
    let policy = crate::seccomp::Policy::parse(&st.system_call_filter).map_err(RuntimeError::Invalid)?;
    // From here this process joins the machine; its child is visible
    // inside until it execs. Neither may be ptraced, nor its memory or
    // /proc/PID/exe (the host's berth binary) opened from inside (the
    // CVE-2019-5736 class); the child's exec resets this for the command.
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(|e| RuntimeError::sys("making berth non-dumpable", e))?;
    let sfd = sys::signalfd(sys::FORWARDED).map_err(|e| RuntimeError::sys("creating a signalfd", e))?;
    enter(&st)?;
    // The pty comes from the machine's own devpts, so ttyname() and
    // login(1) inside find it. The caller's terminal never reaches the
    // machine: a terminal among stdin/stdout/stderr is replaced by it.
    let mode = if spec.tty { Console::Interactive } else { Console::Autopipe };
    let plan = ConsolePlan::new(mode, crate::pty::stdio_terminals());
    let pty = if plan.uses_pty() { Some(Pty::open()?) } else { None };
    // Root by default; its passwd entry still gives the shell and home.
    let passwd = crate::guest::read_own("etc/passwd").unwrap_or_default();
    let group = crate::guest::read_own("etc/group").unwrap_or_default();
    let user =
        Some(users::resolve(spec.user.as_deref().unwrap_or("0"), &passwd, &group).map_err(RuntimeError::Invalid)?);
    let mut env = spec.env.clone();
    let mut set = |k: &str, v: String| {
        if !env.iter().any(|(n, _)| n == k) {
            env.push((k.to_string(), v));
        }
    };
    set("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    set("container", "berth".into());
    set("HOME", user.as_ref().map(|u| u.home.clone()).unwrap_or_else(|| "/root".into()));
    if let Some(n) = user.as_ref().and_then(|u| u.name.clone()) {
        set("USER", n.clone());
        set("LOGNAME", n);
    } else if user.is_none() {
        set("USER", "root".into());
        set("LOGNAME", "root".into());
    }
    if spec.tty {
        set("TERM", std::env::var("TERM").ok().filter(|t| !t.is_empty()).unwrap_or_else(|| "xterm".into()));
    }
    let mut args = spec.args.clone();
    if args.is_empty() {
        let shell = user
            .as_ref()
            .and_then(|u| u.shell.clone())
            .filter(|s| std::path::Path::new(s).exists())
            .unwrap_or_else(|| "/bin/sh".into());
        args = vec![shell, "-l".into()];
    }
    let home = user.as_ref().map(|u| u.home.clone()).unwrap_or_else(|| "/root".into());
    let cwd = if spec.login && std::path::Path::new(&home).is_dir() { home } else { "/".into() };
    let mut cmd = Command::new(&args[0]);
    cmd.args(&args[1..]).env_clear().envs(env.iter().map(|(k, v)| (k, v))).current_dir(&cwd);
    let ctty_fd = match &pty {
        Some(p) => crate::pty::attach(&mut cmd, &p.slave, plan.pty).map_err(|e| RuntimeError::sys("the pty", e))?,
        None => 0,
    };
    let creds = user
        .as_ref()
        .map(|u| crate::creds::Creds { uid: u.uid, gid: u.gid, groups: u.groups.clone() })
        .unwrap_or_else(crate::creds::Creds::root);
    let (is_tty, nnp) = (pty.is_some(), !spec.login);
    // Built before the fork: the child between fork and exec must not allocate.
    let filter = st.seccomp.then(|| policy.filter(crate::creds::effective(&creds, mask, nnp)).into_owned());
    // SAFETY of the closure: between fork and exec, single-threaded child,
    // system calls only.
    unsafe {
        cmd.pre_exec(move || {
            sys::unblock_all();
            sys::cloexec_from(3)?;
            rustix::process::setsid()?;
            if is_tty {
                sys::set_controlling_tty(ctty_fd)?;
            }
            crate::creds::become_user(&creds, mask, nnp, filter.as_deref())?;
            Ok(())
        });
    }
    let child = match cmd.spawn() {
        Ok(c) => c.id() as libc::pid_t,
        Err(e) => {
            sys::unblock_all();
            return match e.kind() {
                std::io::ErrorKind::NotFound => {
                    eprintln!("berth: command {:?} not found in machine {name}", args[0]);
                    Ok(127)
                }
                _ => {
                    eprintln!("berth: cannot run {:?} in machine {name}: {e}", args[0]);
                    Ok(126)
                }
            };
        }
    };
    let same = |s: libc::c_int| s;
    let exit = match pty {
        Some(p) => {
            drop(p.slave);
            relay_tty(child, &p.master, &sfd, &same, plan.input, plan.output)
        }
        None => wait_forwarding(child, &sfd, &same),
    };
    sys::unblock_all();
    Ok(exit.map_err(|e| RuntimeError::sys("waiting for the command", e))?.status())
}
