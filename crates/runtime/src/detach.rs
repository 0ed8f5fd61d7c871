//! Detached machines (`berth start`, `run -d`): a supervisor process,
//! forked from berth and in a session of its own, runs the container with
//! its console going to `/run/berth/STORE/NAME/console.log` (through a
//! logger that rotates it, see [`crate::consolelog`]), writes the state
//! file once the init runs, and removes it when the machine ends. The
//! `berth` that started it returns as soon as the machine is up.

use crate::container::{run_hooked, Hooks};
use crate::machine::State;
use crate::spec::RunSpec;
use crate::{sys, RuntimeError};
use rustix::fd::OwnedFd;
use std::io::{Read, Write};
use std::path::Path;

struct Started<'a> {
    name: &'a str,
    boot: bool,
    root: String,
    image: Option<String>,
    command: Vec<String>,
    report: std::cell::RefCell<Option<std::fs::File>>,
}

impl Hooks for Started<'_> {
    fn started(&self, leader: libc::pid_t, privileges: crate::Privileges) {
        let state = State {
            name: self.name.to_string(),
            leader,
            leader_start: sys::start_time(leader).unwrap_or(0),
            supervisor: std::process::id() as i32,
            supervisor_start: sys::start_time(std::process::id() as i32).unwrap_or(0),
            boot: self.boot,
            started: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            root: self.root.clone(),
            image: self.image.clone(),
            command: self.command.clone(),
            caps: Some(privileges.caps),
            seccomp: privileges.seccomp,
            system_call_filter: privileges.system_call_filter,
        };
        let msg = match state.save() {
            Ok(()) => {
                crate::machine::register_with_machined(&state);
                "ok".to_string()
            }
            Err(e) => format!("error: {e}"),
        };
        if let Some(mut f) = self.report.borrow_mut().take() {
            let _ = f.write_all(msg.as_bytes());
        }
    }
}

/// `--restart`: whether the supervisor runs a machine again when it
/// ends on its own (not by `berth stop`, `terminate` or a killing `kill`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Restart {
    #[default]
    No,
    OnFailure,
    Always,
}

impl std::str::FromStr for Restart {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "no" => Ok(Restart::No),
            "on-failure" => Ok(Restart::OnFailure),
            "always" => Ok(Restart::Always),
            _ => Err(format!("--restart={s}: use no, on-failure or always")),
        }
    }
}

/// The first wait before a restart, the longest, and how long a run must
/// last for the wait to start over from the first.
const BACKOFF_FIRST: std::time::Duration = std::time::Duration::from_millis(100);
const BACKOFF_MAX: std::time::Duration = std::time::Duration::from_secs(30);
const BACKOFF_RESET: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs the machine; again after a reboot inside (the init ends with
/// SIGHUP), and again as `restart` says when it ends on its own, waiting
/// 0.1 s, then twice as long each time up to 30 s (from 0.1 s again after
/// a run of 10 s or more). Its state stays while it waits (the leader
/// gone, the supervisor not: [`State::restarting`]); a stop asked
/// meanwhile (`stopping`) ends it.
fn supervise(
    spec: &RunSpec,
    run_dir: &Path,
    name: &str,
    hooks: &Started<'_>,
    restart: Restart,
) -> Result<crate::Outcome, RuntimeError> {
    let dir = State::dir(name);
    let stopping = || dir.join("stopping").exists();
    let mut delay = BACKOFF_FIRST;
    loop {
        let began = std::time::Instant::now();
        let result = run_hooked(spec, run_dir, hooks);
        if stopping() {
            return result;
        }
        let again = match &result {
            Ok(o) if o.rebooted => {
                eprintln!("berth: machine {name} rebooted; starting it again");
                continue;
            }
            // Setup failed: running it again would fail the same way.
            Ok(o) if o.message.is_some() => false,
            Err(_) => false,
            Ok(o) => match restart {
                Restart::No => false,
                Restart::OnFailure => o.status != 0,
                Restart::Always => true,
            },
        };
        if !again {
            return result;
        }
        if began.elapsed() >= BACKOFF_RESET {
            delay = BACKOFF_FIRST;
        }
        let status = result.as_ref().map(|o| o.status).unwrap_or(125);
        eprintln!("berth: machine {name} exited with status {status}; restarting in {delay:?}");
        let until = std::time::Instant::now() + delay;
        while std::time::Instant::now() < until && !stopping() {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        if stopping() {
            return result;
        }
        delay = (delay * 2).min(BACKOFF_MAX);
    }
}

/// Points descriptor `fd` (0, 1 or 2) at `file`.
pub(crate) fn redirect(fd: i32, file: &impl rustix::fd::AsFd) {
    let mut target = sys::owned_fd(fd);
    let _ = rustix::io::dup2(file, &mut target);
    std::mem::forget(target);
}

/// Runs machine `name` in the foreground with state under
/// `/run/berth/STORE/NAME/`, so ps, exec, status and stop reach it (this is how
/// the `berth@.service` unit runs a machine). A reboot inside boots it
/// again unless a stop was asked.
pub fn run_managed(
    spec: &RunSpec,
    run_dir: &Path,
    name: &str,
    root: &str,
    image: Option<String>,
    restart: Restart,
) -> Result<crate::Outcome, RuntimeError> {
    let dir = State::make_dir(name)?;
    let _ = std::fs::remove_file(dir.join("stopping"));
    let command = if spec.args.is_empty() && spec.boot { vec!["(init)".to_string()] } else { spec.args.clone() };
    let hooks = Started {
        name,
        boot: spec.boot,
        root: root.to_string(),
        image,
        command,
        report: std::cell::RefCell::new(None),
    };
    let result = supervise(spec, run_dir, name, &hooks, restart);
    let _ = std::fs::remove_file(dir.join("state.json"));
    let _ = std::fs::remove_file(dir.join("stopping"));
    result
}

/// Starts `spec` detached as machine `name`; returns once its init runs
/// (a command that ends at once may be gone, its state with it, by then).
/// `run_dir` then belongs to the supervisor, which removes it at the end.
pub fn start_detached(
    spec: &RunSpec,
    run_dir: &Path,
    name: &str,
    root: &str,
    image: Option<String>,
    restart: Restart,
) -> Result<(), RuntimeError> {
    let dir = State::make_dir(name)?;
    let _ = std::fs::remove_file(dir.join("stopping"));
    let log = crate::consolelog::start(&State::console_log(name))?;
    let (r, w): (OwnedFd, OwnedFd) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| RuntimeError::sys("creating a pipe", e))?;
    match sys::clone_fork(0).map_err(|e| RuntimeError::sys("forking the supervisor", e))? {
        Some(_pid) => {
            drop((w, log));
            let mut msg = String::new();
            let _ = std::fs::File::from(r).read_to_string(&mut msg);
            if msg == "ok" {
                return Ok(());
            }
            State::clear(name);
            let msg = msg.trim_start_matches("error: ").trim();
            Err(RuntimeError::Setup(if msg.is_empty() {
                format!("machine {name} failed to start: see `berth logs {name}`")
            } else {
                msg.to_string()
            }))
        }
        None => {
            drop(r);
            let _ = rustix::process::setsid();
            if let Ok(null) = std::fs::File::open("/dev/null") {
                redirect(0, &null);
            }
            redirect(1, &log);
            redirect(2, &log);
            drop(log);
            let command =
                if spec.args.is_empty() && spec.boot { vec!["(init)".to_string()] } else { spec.args.clone() };
            let hooks = Started {
                name,
                boot: spec.boot,
                root: root.to_string(),
                image,
                command,
                report: std::cell::RefCell::new(Some(std::fs::File::from(w))),
            };
            let result = supervise(spec, run_dir, name, &hooks, restart);
            let code = match result {
                Ok(o) => {
                    if let Some(m) = &o.message {
                        eprintln!("berth: {m}");
                        if let Some(mut f) = hooks.report.borrow_mut().take() {
                            let _ = f.write_all(format!("error: {m}").as_bytes());
                        }
                    }
                    o.status
                }
                Err(e) => {
                    eprintln!("berth: {e}");
                    if let Some(mut f) = hooks.report.borrow_mut().take() {
                        let _ = f.write_all(format!("error: {e}").as_bytes());
                    }
                    125
                }
            };
            let _ = std::fs::remove_dir_all(run_dir);
            // Keep the console log for `berth logs` after the machine ends.
            let _ = std::fs::remove_file(State::dir(name).join("state.json"));
            sys::exit_now(code)
        }
    }
}
