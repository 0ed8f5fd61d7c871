//! Running the real `berth` binary against a private store.
//!
//! `Berth::new()` makes a temp dir holding the store (`--root`) and room for
//! mount points and host-side files; dropping it detaches anything still
//! mounted there, so a failed test does not leak mounts.

use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub use super::listing::Listing;
pub use super::mounts::{is_mounted, mount_points};

/// Longest a single berth command may take before the test fails.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Berth {
    dir: tempfile::TempDir,
    root: PathBuf,
    /// The test's default network (`BERTH_NETWORK`), its state under
    /// `DIR/net` (`BERTH_NET_DIR`): a bridge of its own per test.
    network: String,
}

impl Berth {
    pub fn new() -> Berth {
        super::require_root();
        let dir = tempfile::Builder::new().prefix("berth-test-").tempdir().expect("test temp dir");
        let root = dir.path().join("store");
        Berth { dir, root, network: network_name() }
    }

    /// The bridge `--network-veth` joins in this test.
    pub fn network(&self) -> &str {
        &self.network
    }

    /// Where this test's networks are kept.
    pub fn net_dir(&self) -> PathBuf {
        self.dir.path().join("net")
    }

    /// The store (`--root`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The test's temp dir (the store's parent), for other files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `berth --root STORE` with `args`, not yet run.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
        cmd.arg("--root").arg(&self.root).args(args);
        // Keep the host's credentials and settings out of the test.
        cmd.stdin(Stdio::null())
            .env_remove("BERTH_ROOT")
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("DOCKER_CONFIG")
            .env_remove("XDG_RUNTIME_DIR")
            .env("HOME", self.dir.path())
            .env("BERTH_NET_DIR", self.net_dir())
            .env("BERTH_NETWORK", &self.network);
        cmd
    }

    /// Runs berth to completion (killed after `COMMAND_TIMEOUT`).
    pub fn run<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let cmd = self.command(args);
        run_command(cmd)
    }

    /// Starts berth without waiting (stdout/stderr piped).
    pub fn spawn<I, S>(&self, args: I) -> Child
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command(args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.spawn().expect("spawn berth")
    }

    /// `berth pull --tls-verify=false [extra…] REFERENCE`.
    pub fn pull(&self, reference: &str, extra: &[&str]) -> Run {
        let mut args = vec!["pull", "--tls-verify=false"];
        args.extend_from_slice(extra);
        args.push(reference);
        self.run(args)
    }

    /// `berth images --json`, parsed; asserts it is an array.
    pub fn images(&self) -> Vec<Value> {
        let run = self.run(["images", "--json"]).success();
        match run.json() {
            Value::Array(a) => a,
            other => panic!("`images --json` is not a JSON array: {other}"),
        }
    }

    /// `berth inspect NAME --json`, parsed.
    pub fn inspect(&self, name: &str) -> Value {
        self.run(["inspect", name, "--json"]).success().json()
    }

    /// A fresh, empty directory in the test's temp dir.
    pub fn new_dir(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        fs::create_dir_all(&p).expect("create dir in test temp dir");
        p
    }

    /// `berth mount NAME DIR` on a new dir; asserts DIR is now a mount point.
    pub fn mount(&self, name: &str) -> PathBuf {
        let mnt = self.new_dir(&format!("mnt-{}", unique()));
        self.run([OsStr::new("mount"), OsStr::new(name), mnt.as_os_str()]).success();
        assert!(
            is_mounted(&mnt),
            "`berth mount {name} {}` exited 0 but nothing is mounted there (see /proc/self/mountinfo)",
            mnt.display()
        );
        mnt
    }

    /// `berth unmount DIR`; asserts the mount is gone.
    pub fn unmount(&self, mnt: &Path) {
        self.run([OsStr::new("unmount"), mnt.as_os_str()]).success();
        assert!(
            !is_mounted(mnt),
            "`berth unmount {}` exited 0 but the mount is still in /proc/self/mountinfo",
            mnt.display()
        );
    }

    /// Recursive listing of the store, for "store unchanged" checks.
    pub fn listing(&self) -> Listing {
        Listing::of(&self.root)
    }

    /// Unpacked layer directories in the store (`S/layers/HEX`).
    pub fn layer_dirs(&self) -> Vec<String> {
        dir_names(&self.root.join("layers"), true)
    }

    /// Entries of `S/blobs/sha256`.
    pub fn blob_files(&self) -> Vec<String> {
        dir_names(&self.root.join("blobs/sha256"), false)
    }
}

/// Sorted names in `dir` (only directories if `dirs_only`), skipping dot-names.
fn dir_names(dir: &Path, dirs_only: bool) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| !dirs_only || e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The entry of `images --json` whose `names` include `name`.
pub fn find_image<'a>(images: &'a [Value], name: &str) -> Option<&'a Value> {
    images.iter().find(|i| i["names"].as_array().map(|a| a.iter().any(|n| n == name)).unwrap_or(false))
}

impl Default for Berth {
    fn default() -> Self {
        Berth::new()
    }
}

impl Drop for Berth {
    fn drop(&mut self) {
        // Deepest first, so stacked mounts come off in order.
        let mut mounts: Vec<PathBuf> = mount_points().into_iter().filter(|m| m.starts_with(self.dir.path())).collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.as_os_str().len()));
        for m in mounts {
            let _ = rustix::mount::unmount(&m, rustix::mount::UnmountFlags::DETACH);
        }
        remove_networks(&self.net_dir());
    }
}

/// A finished berth command.
#[derive(Debug)]
pub struct Run {
    pub args: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn describe(&self) -> String {
        format!("`{}` → {}\n--- stdout ---\n{}\n--- stderr ---\n{}", self.args, self.status, self.stdout, self.stderr)
    }

    /// Asserts exit 0.
    pub fn success(self) -> Run {
        assert!(self.status.success(), "berth failed: {}", self.describe());
        self
    }

    /// Asserts a non-zero exit with a one-line error on stderr.
    pub fn failure(self) -> Run {
        assert!(!self.status.success(), "berth should have failed but exited 0: {}", self.describe());
        assert!(
            self.status.code().is_some(),
            "berth died from a signal instead of exiting with an error: {}",
            self.describe()
        );
        let lines: Vec<&str> = self.stderr.trim().lines().collect();
        assert!(
            lines.len() == 1,
            "expected a one-line error on stderr, got {} lines: {}",
            lines.len(),
            self.describe()
        );
        self
    }

    /// Asserts stderr mentions at least one of `needles` (case-insensitive).
    pub fn mentions_any(self, needles: &[&str]) -> Run {
        let err = self.stderr.to_lowercase();
        assert!(
            needles.iter().any(|n| err.contains(&n.to_lowercase())),
            "error should mention one of {needles:?}: {}",
            self.describe()
        );
        self
    }

    /// stdout parsed as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.describe()))
    }
}

/// Runs a command with piped output, killing it after `COMMAND_TIMEOUT`.
pub fn run_command(mut cmd: Command) -> Run {
    let args = format!("{cmd:?}");
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {args}: {e}"));
    wait_with_timeout(&mut child, args)
}

/// Waits for a spawned child (piped output), killing it after the timeout.
pub fn wait_with_timeout(child: &mut Child, args: String) -> Run {
    wait_for(child, args, COMMAND_TIMEOUT)
}

/// Waits for a spawned child (piped output), killing it after `timeout`.
pub fn wait_for(child: &mut Child, args: String, timeout: Duration) -> Run {
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let t_out = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait for berth") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Run {
        args,
        status,
        stdout: String::from_utf8_lossy(&t_out.join().expect("stdout reader")).into_owned(),
        stderr: String::from_utf8_lossy(&t_err.join().expect("stderr reader")).into_owned(),
    }
}

/// A bridge name unique on this host while the test runs: `bt`, the
/// test process's pid and a counter, in hex (at most 15 bytes).
fn network_name() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("bt{:x}x{:x}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// Removes the bridges and NAT tables of the networks kept in `net_dir`
/// (a test's), whatever state the test left them in.
pub fn remove_networks(net_dir: &Path) {
    let Ok(rd) = fs::read_dir(net_dir) else { return };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(net) = name.strip_suffix(".json") else { continue };
        // berth's own removal first (bridge, NAT table, forwarding guard),
        // waiting out links the kernel is still deleting; by hand if not.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        loop {
            let rm = Command::new(env!("CARGO_BIN_EXE_berth"))
                .args(["network", "rm", net])
                .env("BERTH_NET_DIR", net_dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if rm.is_ok_and(|s| s.success()) || std::time::Instant::now() > deadline {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        if !Path::new("/sys/class/net").join(net).exists() {
            continue;
        }
        let _ = Command::new("ip").args(["link", "del", net]).stderr(Stdio::null()).status();
        let _ = Command::new("nft")
            .args(["delete", "table", "inet", &format!("berth-{net}")])
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("nft")
            .args(["delete", "element", "inet", "berth-forward", "bridges", &format!("{{ {net} }}")])
            .stderr(Stdio::null())
            .status();
    }
}

/// A unique token for names in this test process.
pub fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}
