//! The console log of a detached machine, bounded. The machine's output
//! (its console relay, or the command's stdout and stderr) goes into a
//! pipe; a logger process of its own copies it to `console.log` and, when
//! the file holds [`LIMIT`] bytes, moves it to `console.log.1` (replacing
//! the one before) and starts a new one. A machine that prints forever
//! holds at most two files' worth of `/run`. The logger is the only
//! writer, so a rotation loses nothing; it ends when the last writer (the
//! container, its supervisor) has gone.

use crate::{sys, RuntimeError};
use rustix::fd::{AsRawFd, OwnedFd};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The size at which the log is rotated.
pub const LIMIT: u64 = 8 << 20;

/// The previous log, kept after a rotation.
pub fn previous(log: &Path) -> PathBuf {
    let mut p = log.as_os_str().to_owned();
    p.push(".1");
    PathBuf::from(p)
}

/// Copies `input` to the file `log` until end of input, rotating it when
/// it holds `limit` bytes (so each file holds at most that). When the
/// log cannot be written (a full `/run`, the machine's state removed), the
/// rest is read and dropped, never left to fill the pipe: the machine's
/// writes must not block or break because its log failed.
pub fn pump(input: &OwnedFd, log: &Path, limit: u64) -> io::Result<()> {
    let r = copy_rotating(input, log, limit);
    if r.is_err() {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match rustix::io::read(input, &mut buf) {
                Ok(0) => break,
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(_) => break,
            }
        }
    }
    r
}

fn copy_rotating(input: &OwnedFd, log: &Path, limit: u64) -> io::Result<()> {
    let open = |truncate: bool| {
        std::fs::OpenOptions::new().create(true).append(!truncate).write(true).truncate(truncate).open(log)
    };
    let mut out = open(false)?;
    let mut size = out.metadata()?.len();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match rustix::io::read(input, &mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut chunk = &buf[..n];
        while !chunk.is_empty() {
            if size >= limit {
                std::fs::rename(log, previous(log))?;
                out = open(true)?;
                size = 0;
            }
            let take = chunk.len().min((limit - size) as usize);
            out.write_all(&chunk[..take])?;
            size += take as u64;
            chunk = &chunk[take..];
        }
    }
}

/// Starts a fresh log at `log` (dropping the previous one) and its logger
/// process; returns the pipe's write end, for the machine's output.
pub fn start(log: &Path) -> Result<OwnedFd, RuntimeError> {
    let fail = |what: &str, e: io::Error| RuntimeError::sys(what.to_string(), e);
    std::fs::File::create(log).map_err(|e| fail("creating the console log", e))?;
    let _ = std::fs::remove_file(previous(log));
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| fail("creating the console pipe", e.into()))?;
    match sys::clone_fork(0).map_err(|e| fail("starting the console logger", e))? {
        Some(_) => {
            drop(r);
            Ok(w)
        }
        None => {
            drop(w);
            // A session of its own, deaf to the terminal's signals: a
            // Ctrl-C in the shell that ran `berth start` must not kill the
            // logger (the machine's next write would then break its pipe).
            let _ = rustix::process::setsid();
            sys::ignore_job_control_signals();
            let _ = std::env::set_current_dir("/");
            // Nothing of berth's but the pipe: no lock, no terminal.
            if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
                for fd in 0..3 {
                    crate::detach::redirect(fd, &null);
                }
            }
            let _ = sys::close_fds_except(&[r.as_raw_fd()]);
            let code = match pump(&r, log, LIMIT) {
                Ok(()) => 0,
                Err(_) => 1,
            };
            sys::exit_now(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_rotates_at_the_limit_keeping_one_previous_file() {
        let t = tempfile::tempdir().unwrap();
        let log = t.path().join("console.log");
        let (r, w) = rustix::pipe::pipe().unwrap();
        let line = |i: u32| format!("line {i:03} {}\n", "x".repeat(90));
        let writer = std::thread::spawn(move || {
            let mut f = std::fs::File::from(w);
            for i in 0..100u32 {
                f.write_all(line(i).as_bytes()).unwrap();
            }
        });
        pump(&r, &log, 1000).unwrap();
        writer.join().unwrap();
        let now = std::fs::read_to_string(&log).unwrap();
        let before = std::fs::read_to_string(previous(&log)).unwrap();
        assert!(now.len() <= 1000, "{}", now.len());
        assert_eq!(before.len(), 1000, "the previous file is a full one");
        // The two files are the last bytes written, nothing lost between.
        let all: String = (0..100u32).map(line).collect();
        assert!(all.ends_with(&format!("{before}{now}")));
        assert!(now.ends_with(&line(99)), "the newest output is in the log");
    }
}
