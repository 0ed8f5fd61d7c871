//! The `-t` console: a pty pair made on the host, the slave handed to the
//! container as its stdio and `/dev/console`, the host terminal put in raw
//! mode while berth relays bytes both ways and passes on window sizes.

use crate::RuntimeError;
use rustix::fd::{AsFd, OwnedFd};
use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
use rustix::termios::{self, OptionalActions, Termios};
use std::path::PathBuf;

pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
    pub slave_path: PathBuf,
}

impl Pty {
    pub fn open() -> Result<Pty, RuntimeError> {
        let e = |w: &str| {
            let w = w.to_string();
            move |err| RuntimeError::sys(w, err)
        };
        let master =
            openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).map_err(e("opening a pty"))?;
        grantpt(&master).map_err(e("grantpt"))?;
        unlockpt(&master).map_err(e("unlockpt"))?;
        let name = ptsname(&master, Vec::new()).map_err(e("ptsname"))?;
        let slave_path = PathBuf::from(name.to_string_lossy().into_owned());
        let slave = rustix::fs::open(
            &slave_path,
            rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(e("opening the pty slave"))?;
        if let Ok(ws) = termios::tcgetwinsize(std::io::stdin()) {
            let _ = termios::tcsetwinsize(&slave, ws);
        }
        Ok(Pty { master, slave, slave_path })
    }
}

/// Copies the host terminal's window size (of whichever of stdin, stdout
/// and stderr is one) to the pty.
pub fn pass_winsize(master: &OwnedFd) {
    let ws = termios::tcgetwinsize(std::io::stdin())
        .or_else(|_| termios::tcgetwinsize(std::io::stdout()))
        .or_else(|_| termios::tcgetwinsize(std::io::stderr()));
    if let Ok(ws) = ws {
        let _ = termios::tcsetwinsize(master, ws);
    }
}

/// Puts stdin in raw mode while alive, when it is a terminal.
pub struct RawMode {
    saved: Option<Termios>,
}

impl RawMode {
    pub fn enter() -> RawMode {
        let stdin = std::io::stdin();
        let Ok(saved) = termios::tcgetattr(stdin.as_fd()) else { return RawMode { saved: None } };
        let mut raw = saved.clone();
        raw.make_raw();
        let _ = termios::tcsetattr(stdin.as_fd(), OptionalActions::Now, &raw);
        RawMode { saved: Some(saved) }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(s) = &self.saved {
            let _ = termios::tcsetattr(std::io::stdin().as_fd(), OptionalActions::Now, s);
        }
    }
}

/// Which of stdin, stdout and stderr are terminals.
pub fn stdio_terminals() -> [bool; 3] {
    [0, 1, 2].map(|fd| termios::isatty(crate::sys::borrowed_std_fd(fd)))
}

/// Gives `cmd` the pty `slave` as each of stdin, stdout, stderr that
/// `which` names; returns the first of them, to make the controlling tty.
pub fn attach(cmd: &mut std::process::Command, slave: &OwnedFd, which: [bool; 3]) -> std::io::Result<i32> {
    let io = || slave.try_clone().map(std::process::Stdio::from);
    if which[0] {
        cmd.stdin(io()?);
    }
    if which[1] {
        cmd.stdout(io()?);
    }
    if which[2] {
        cmd.stderr(io()?);
    }
    Ok(which.iter().position(|b| *b).unwrap_or(0) as i32)
}
