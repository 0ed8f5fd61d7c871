//! A private tmux server (own socket, no config) to drive a real terminal:
//! start a command in a detached session, type into it, read the screen,
//! resize the window. The server is killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct Tmux {
    socket: PathBuf,
    pub session: String,
}

impl Tmux {
    /// Starts `shell_command` (run by /bin/sh) in a new detached session of
    /// `cols`×`rows` on a server listening on `dir/tmux.sock`.
    pub fn start(dir: &Path, shell_command: &str, cols: u16, rows: u16) -> Tmux {
        ensure_installed();
        let t = Tmux { socket: dir.join("tmux.sock"), session: "berth".into() };
        let out = t.tmux(&[
            "new-session",
            "-d",
            "-s",
            &t.session,
            "-x",
            &cols.to_string(),
            "-y",
            &rows.to_string(),
            shell_command,
        ]);
        assert!(out.status.success(), "tmux new-session failed: {}", String::from_utf8_lossy(&out.stderr));
        t
    }

    fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(["-f", "/dev/null"])
            .args(args)
            .env("SHELL", "/bin/sh")
            .env("TERM", "xterm")
            .stdin(Stdio::null())
            .output()
            .expect("run tmux")
    }

    /// Types `text` literally, then Enter.
    pub fn type_line(&self, text: &str) {
        let out = self.tmux(&["send-keys", "-t", &self.session, "-l", text]);
        assert!(out.status.success(), "tmux send-keys failed: {}", String::from_utf8_lossy(&out.stderr));
        let out = self.tmux(&["send-keys", "-t", &self.session, "Enter"]);
        assert!(out.status.success(), "tmux send-keys Enter failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Sends key names (`C-c`, `Enter`) as tmux understands them.
    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", self.session.as_str()];
        args.extend_from_slice(keys);
        let out = self.tmux(&args);
        assert!(out.status.success(), "tmux send-keys {keys:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// The visible screen plus scrollback, as text.
    pub fn screen(&self) -> String {
        let out = self.tmux(&["capture-pane", "-p", "-J", "-S", "-200", "-t", &self.session]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until some screen line satisfies `pred`; returns that line.
    pub fn wait_line(&self, what: &str, deadline: Instant, pred: impl Fn(&str) -> bool) -> String {
        loop {
            let screen = self.screen();
            if let Some(l) = screen.lines().find(|l| pred(l)) {
                return l.to_string();
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}; screen:\n{screen}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `rows cols` of the pane as tmux sees it.
    pub fn pane_size(&self) -> (u16, u16) {
        let out = self.tmux(&["display-message", "-p", "-t", &self.session, "#{pane_height} #{pane_width}"]);
        let s = String::from_utf8_lossy(&out.stdout);
        let v: Vec<u16> = s.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        assert_eq!(v.len(), 2, "tmux display-message gave {s:?}");
        (v[0], v[1])
    }

    /// Resizes the window.
    pub fn resize(&self, cols: u16, rows: u16) {
        let out = self.tmux(&["resize-window", "-t", &self.session, "-x", &cols.to_string(), "-y", &rows.to_string()]);
        assert!(out.status.success(), "tmux resize-window failed: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

/// Installs tmux with apt when it is missing.
fn ensure_installed() {
    if Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success()) {
        return;
    }
    let st = Command::new("apt-get")
        .args(["install", "-y", "tmux"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .expect("run apt-get");
    assert!(st.success(), "apt-get install -y tmux failed");
}

/// Single-quotes `s` for /bin/sh.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
