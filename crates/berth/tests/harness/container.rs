//! Running containers with `berth run` and proving they leave nothing
//! behind.
//!
//! `Ctx::busybox()` gives a store with the busybox test image pulled from
//! a private registry under a unique repository name (so the default
//! hostname and cgroup name are unique too). Every `berth run` goes through
//! `Ctx`, which adds `-E BERTH_TEST_RUN=<token>` (unique per invocation) so
//! the container's processes can be found on the host, and after each run
//! checks the host for leftovers: mounts (compared with the table when the
//! `Ctx` was made), `S/tmp/run-*` scratch dirs, `berth/<name>-<pid>` cgroup
//! directories and processes carrying the token.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::berth::{unique, COMMAND_TIMEOUT};
use super::fixtures;
use super::mounts::mount_points;
use super::oci::{Compression, Image, Layer};
use super::tarball::{tar, Entry};
use super::{Berth, Registry};

/// Environment variable that marks every process of one `berth run`.
pub const TOKEN_VAR: &str = "BERTH_TEST_RUN";

/// Content of the image's own `/etc/resolv.conf` (for `--resolv-conf`).
pub const IMAGE_RESOLV_CONF: &str = "# resolv.conf shipped in the test image\nnameserver 192.0.2.53\n";

/// The busybox image with a second layer for the run tests: a working
/// directory, a non-executable file, the image's own resolv.conf, and a
/// config with Env entries and a WorkingDir.
pub fn run_image() -> Image {
    let base = fixtures::busybox();
    let extra = [
        Entry::dir("srv"),
        Entry::dir("srv/work"),
        Entry::file("srv/work/here", "the image's WorkingDir\n"),
        Entry::file("bin/notexec", "#!/bin/sh\necho should not run\n").mode(0o644),
        Entry::file("etc/resolv.conf", IMAGE_RESOLV_CONF),
        Entry::file("etc/image-file", "from the image\n"),
        Entry::dir("data"),
        Entry::file("data/lower-file", "lower\n"),
        Entry::dir("run"),
    ];
    let mut layers = base.layers.clone();
    layers.push(Layer::new(tar(&extra), Compression::Gzip));
    Image::with_config(
        "amd64",
        layers,
        json!({
            "Env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "IMAGE_VAR=from-image",
                "SHARED=image-value",
                "WITH_EQUALS=a=b=c",
            ],
            "Cmd": ["/bin/sh", "-c", "echo default-cmd"],
            "WorkingDir": "/srv/work",
        }),
    )
}

/// The same layers with an Entrypoint (`echo ep`) and a Cmd (`default-arg`).
pub fn entrypoint_image() -> Image {
    let img = run_image();
    Image::with_config(
        "amd64",
        img.layers.clone(),
        json!({
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Entrypoint": ["/bin/echo", "ep"],
            "Cmd": ["default-arg"],
            "WorkingDir": "/",
        }),
    )
}

/// A store with a pulled image, and the host's state when it was made.
pub struct Ctx {
    pub berth: Berth,
    pub reg: Registry,
    /// Full reference of the run image (`127.0.0.1:PORT/REPO:latest`).
    pub image: String,
    /// The repository name: the default hostname of `run IMAGE`.
    pub repo: String,
    mounts_before: BTreeMap<PathBuf, usize>,
    /// Cgroup dirs under `berth/` when the `Ctx` was made: stale ones left
    /// by other programs, which a reused PID could make look like ours.
    cgroups_before: Vec<PathBuf>,
    in_flight: AtomicUsize,
}

impl Ctx {
    /// A store holding `run_image()` as `REPO:latest`, REPO unique.
    pub fn busybox() -> Ctx {
        Ctx::with_image(&run_image())
    }

    /// A store holding `image` under a unique repository name.
    pub fn with_image(image: &Image) -> Ctx {
        let reg = Registry::start();
        let repo = format!("bb-{}", unique());
        reg.push_image(&repo, "latest", image);
        let image = reg.reference(&repo, "latest");
        let berth = Berth::new();
        berth.pull(&image, &["-q"]).success();
        let mounts_before = host_mounts();
        let cgroups_before = all_container_cgroups();
        Ctx { berth, reg, image, repo, mounts_before, cgroups_before, in_flight: AtomicUsize::new(0) }
    }

    /// Pushes `image` as `REPO:tag` and pulls it; returns the reference.
    pub fn add_image(&self, tag: &str, image: &Image) -> String {
        self.reg.push_image(&self.repo, tag, image);
        let reference = self.reg.reference(&self.repo, tag);
        self.berth.pull(&reference, &["-q"]).success();
        reference
    }

    /// The store (`--root`).
    pub fn store(&self) -> &Path {
        self.berth.root()
    }

    /// A fresh directory in the test's temp dir.
    pub fn dir(&self, name: &str) -> PathBuf {
        self.berth.new_dir(name)
    }

    /// The busybox tree (both layers of `run_image()`) unpacked on disk
    /// under a unique name, for `run -D`.
    pub fn busybox_tree(&self) -> PathBuf {
        let dir = self.berth.dir().join(format!("tree-{}", unique()));
        fs::create_dir_all(&dir).expect("tree dir");
        for layer in &run_image().layers {
            let data = layer.tar.as_ref().expect("layer keeps its tar");
            let mut child = Command::new("tar")
                .args(["-x", "--numeric-owner", "-p", "-C"])
                .arg(&dir)
                .stdin(Stdio::piped())
                .spawn()
                .expect("spawn tar");
            child.stdin.take().expect("tar stdin").write_all(data).expect("feed tar");
            assert!(child.wait().expect("wait tar").success(), "tar -x of a busybox layer failed");
        }
        dir
    }

    /// `berth run ARGS…` (a unique token added), stdin from /dev/null.
    pub fn run(&self, args: &[&str]) -> Outcome {
        self.run_with(args, Input::Null)
    }

    /// `berth run OPTS… IMAGE CMD…`.
    pub fn run_image(&self, opts: &[&str], cmd: &[&str]) -> Outcome {
        let mut a: Vec<&str> = opts.to_vec();
        a.push(&self.image);
        a.extend_from_slice(cmd);
        self.run(&a)
    }

    /// `berth run OPTS… IMAGE /bin/sh -c SCRIPT`.
    pub fn sh(&self, opts: &[&str], script: &str) -> Outcome {
        self.run_image(opts, &["/bin/sh", "-c", script])
    }

    /// `berth run ARGS…` with `input` on stdin.
    pub fn run_input(&self, args: &[&str], input: &[u8]) -> Outcome {
        self.run_with(args, Input::Bytes(input.to_vec()))
    }

    fn run_with(&self, args: &[&str], input: Input) -> Outcome {
        let mut running = self.spawn_with(args, matches!(input, Input::Bytes(_)));
        let feeder = match input {
            Input::Bytes(b) => {
                let mut stdin = running.stdin.take().expect("piped stdin");
                Some(std::thread::spawn(move || {
                    // The container may exit before reading everything.
                    let _ = stdin.write_all(&b);
                }))
            }
            Input::Null => None,
        };
        let out = running.wait();
        if let Some(f) = feeder {
            let _ = f.join();
        }
        out
    }

    /// The command line `berth --root S run -E TOKEN ARGS…`, not started.
    pub fn command(&self, args: &[&str]) -> (Command, String) {
        let token = format!("t{}", unique());
        let mut full: Vec<String> = vec!["run".into(), "-E".into(), format!("{TOKEN_VAR}={token}")];
        full.extend(args.iter().map(|s| s.to_string()));
        (self.berth.command(&full), token)
    }

    /// Starts `berth run ARGS…`; stdin piped when `stdin`, else /dev/null.
    pub fn spawn(&self, args: &[&str]) -> Running<'_> {
        self.spawn_with(args, true)
    }

    fn spawn_with(&self, args: &[&str], stdin: bool) -> Running<'_> {
        let (cmd, token) = self.command(args);
        self.spawn_command(cmd, token, format!("berth run {}", args.join(" ")), stdin)
    }

    /// Starts a prepared command (from `command`, possibly wrapped), so
    /// that its run is checked like any other. `token` is the run's.
    pub fn spawn_command(&self, mut cmd: Command, token: String, desc: String, stdin: bool) -> Running<'_> {
        let args: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        let roots = host_paths_in(&args);
        let cgroups_before = all_container_cgroups();
        cmd.stdin(if stdin { Stdio::piped() } else { Stdio::null() });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {desc}: {e}"));
        let stdin = child.stdin.take();
        let (tx, rx) = mpsc::channel();
        let mut out = child.stdout.take().expect("piped stdout");
        let mut err = child.stderr.take().expect("piped stderr");
        let t_out = std::thread::spawn(move || {
            let mut all = Vec::new();
            let mut buf = [0u8; 65536];
            loop {
                match out.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        all.extend_from_slice(&buf[..n]);
                        let _ = tx.send(buf[..n].to_vec());
                    }
                }
            }
            all
        });
        let t_err = std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = err.read_to_end(&mut s);
            s
        });
        Running {
            ctx: self,
            pid: child.id(),
            child,
            desc,
            token,
            stdin,
            chunks: rx,
            seen: Vec::new(),
            t_out: Some(t_out),
            t_err: Some(t_err),
            started: Instant::now(),
            roots,
            cgroups_before,
            done: false,
        }
    }

    /// Asserts that the run of berth `pid` (token `token`) left nothing.
    pub fn assert_no_leftovers(&self, pid: u32, token: &str, what: &str) {
        self.assert_no_leftovers_near(pid, token, what, &[], &self.cgroups_before);
    }

    /// Like `assert_no_leftovers`; mounts are compared under the test's
    /// dir, the host paths the run named (`roots`) and the system's own
    /// directories — not elsewhere, where other programs on this host
    /// (parallel tests, debootstrap, podman) mount and unmount at will.
    /// `cgroups_before`: cgroup dirs that existed before the run started.
    pub fn assert_no_leftovers_near(
        &self,
        pid: u32,
        token: &str,
        what: &str,
        roots: &[PathBuf],
        cgroups_before: &[PathBuf],
    ) {
        let mut problems = Vec::new();
        let relevant = |p: &Path| relevant_mount(p, self.berth.dir(), roots);
        let now = host_mounts();
        for (p, n) in now.iter().filter(|(p, _)| relevant(p)) {
            let before = self.mounts_before.get(p).copied().unwrap_or(0);
            if *n > before {
                problems.push(format!("mount left on the host: {} ({} now, {} before)", p.display(), n, before));
            }
        }
        for (p, n) in self.mounts_before.iter().filter(|(p, _)| relevant(p)) {
            if now.get(p).copied().unwrap_or(0) < *n {
                problems.push(format!("host mount disappeared: {}", p.display()));
            }
        }
        // Scratch dirs: none of this run's; none at all when nothing else runs.
        let alone = self.in_flight.load(Ordering::SeqCst) == 0;
        for e in store_tmp_entries(self.store()) {
            if e.starts_with(&format!("run-{pid}-")) || (alone && e.starts_with("run-")) {
                problems.push(format!("scratch dir left: {}", self.store().join("tmp").join(&e).display()));
            }
        }
        // Cgroups: no `berth/<name>-<pid>` in any hierarchy.
        for d in container_cgroups(pid).into_iter().filter(|d| !cgroups_before.contains(d)) {
            problems.push(format!("cgroup left: {}", d.display()));
        }
        // Processes: none carrying the token (a short grace for exit).
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut procs = processes_with_token(token);
        while !procs.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            procs = processes_with_token(token);
        }
        for (p, cmd) in procs {
            problems.push(format!("process left: pid {p}: {cmd}"));
        }
        assert!(problems.is_empty(), "{what} left things behind on the host:\n  {}", problems.join("\n  "));
    }

    /// Asserts no `S/tmp/run-*` at all (after parallel runs).
    pub fn assert_no_scratch_dirs(&self) {
        let left: Vec<String> = store_tmp_entries(self.store()).into_iter().filter(|e| e.starts_with("run-")).collect();
        assert!(left.is_empty(), "scratch dirs left in {}/tmp: {left:?}", self.store().display());
    }

    /// `S/machines/NAME` exists.
    pub fn machine_exists(&self, name: &str) -> bool {
        self.store().join("machines").join(name).exists()
    }
}

enum Input {
    Null,
    Bytes(Vec<u8>),
}

fn store_tmp_entries(store: &Path) -> Vec<String> {
    fs::read_dir(store.join("tmp"))
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

/// A `berth run` in progress.
pub struct Running<'a> {
    ctx: &'a Ctx,
    pub pid: u32,
    child: Child,
    pub desc: String,
    pub token: String,
    pub stdin: Option<ChildStdin>,
    chunks: mpsc::Receiver<Vec<u8>>,
    seen: Vec<u8>,
    t_out: Option<std::thread::JoinHandle<Vec<u8>>>,
    t_err: Option<std::thread::JoinHandle<Vec<u8>>>,
    started: Instant,
    /// Host paths the run was given (where its mounts could show up).
    roots: Vec<PathBuf>,
    /// Cgroup dirs that existed before berth started (not ours).
    cgroups_before: Vec<PathBuf>,
    done: bool,
}

impl Running<'_> {
    /// Waits until stdout contains `needle` (panics after `timeout`).
    pub fn wait_for_output(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !String::from_utf8_lossy(&self.seen).contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.chunks.recv_timeout(left) {
                Ok(c) => self.seen.extend_from_slice(&c),
                Err(e) => {
                    let _ = self.child.kill();
                    let status = self.child.wait().map(|s| s.to_string()).unwrap_or_default();
                    let stderr = self.t_err.take().map(|t| t.join().unwrap_or_default()).unwrap_or_default();
                    self.finish_flight();
                    panic!(
                        "{}: {needle:?} did not appear on stdout ({}); berth: {status}\nstdout: {:?}\nstderr: {}",
                        self.desc,
                        if matches!(e, mpsc::RecvTimeoutError::Timeout) {
                            format!("not within {timeout:?}")
                        } else {
                            "stdout closed".into()
                        },
                        String::from_utf8_lossy(&self.seen),
                        String::from_utf8_lossy(&stderr)
                    );
                }
            }
        }
    }

    /// Sends `sig` to the berth process.
    pub fn signal(&self, sig: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.pid as i32).expect("pid");
        rustix::process::kill_process(pid, sig).expect("signal berth");
    }

    /// The cgroup directories of this run (`berth/<name>-<pid>`).
    pub fn cgroups(&self) -> Vec<PathBuf> {
        container_cgroups(self.pid).into_iter().filter(|d| !self.cgroups_before.contains(d)).collect()
    }

    /// Waits for berth to exit (killing it after `COMMAND_TIMEOUT`), then
    /// checks for leftovers.
    pub fn wait(mut self) -> Outcome {
        drop(self.stdin.take());
        let deadline = self.started + COMMAND_TIMEOUT;
        let status = loop {
            if let Some(st) = self.child.try_wait().expect("wait for berth") {
                break st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                self.finish_flight();
                panic!("{} did not finish within {COMMAND_TIMEOUT:?}", self.desc);
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let elapsed = self.started.elapsed();
        let stdout = self.t_out.take().expect("stdout reader").join().expect("stdout reader");
        let stderr = self.t_err.take().expect("stderr reader").join().expect("stderr reader");
        self.finish_flight();
        let out = Outcome {
            desc: self.desc.clone(),
            code: std::os::unix::process::ExitStatusExt::signal(&status).map_or(status.code(), |_| None),
            signal: std::os::unix::process::ExitStatusExt::signal(&status),
            stdout,
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            elapsed,
        };
        self.ctx.assert_no_leftovers_near(self.pid, &self.token, &out.describe(), &self.roots, &self.cgroups_before);
        out
    }

    /// Kills berth with SIGKILL and reaps it, without the leftover check
    /// (a SIGKILLed supervisor cannot clean up after itself).
    pub fn kill_unchecked(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.finish_flight();
    }

    fn finish_flight(&mut self) {
        if !self.done {
            self.done = true;
            self.ctx.in_flight.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.child.kill();
            let _ = self.child.wait();
            self.finish_flight();
        }
    }
}

/// A finished `berth run`.
#[derive(Debug)]
pub struct Outcome {
    pub desc: String,
    /// Exit code (None when berth itself died from a signal).
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Outcome {
    pub fn describe(&self) -> String {
        let how = match (self.code, self.signal) {
            (Some(c), _) => format!("exit {c}"),
            (None, Some(s)) => format!("killed by signal {s}"),
            _ => "?".into(),
        };
        format!(
            "`{}` → {how} after {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.desc,
            self.elapsed,
            String::from_utf8_lossy(&self.stdout),
            self.stderr
        )
    }

    /// stdout as text.
    pub fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Asserts exit status `code`.
    pub fn status(self, code: i32) -> Outcome {
        assert_eq!(self.code, Some(code), "expected exit status {code}: {}", self.describe());
        self
    }

    /// Asserts exit 0.
    pub fn success(self) -> Outcome {
        self.status(0)
    }

    /// Asserts a non-zero exit (not a crash) with a one-line error.
    pub fn failure(self) -> Outcome {
        assert!(
            matches!(self.code, Some(c) if c != 0),
            "berth should have failed with an exit code: {}",
            self.describe()
        );
        let lines: Vec<&str> = self.stderr.trim().lines().collect();
        assert_eq!(lines.len(), 1, "expected a one-line error on stderr: {}", self.describe());
        self
    }

    /// Asserts stderr contains every one of `needles` (case-insensitive).
    pub fn stderr_mentions(self, needles: &[&str]) -> Outcome {
        let err = self.stderr.to_lowercase();
        for n in needles {
            assert!(err.contains(&n.to_lowercase()), "stderr should mention {n:?}: {}", self.describe());
        }
        self
    }

    /// stdout's lines, trimmed.
    pub fn lines(&self) -> Vec<String> {
        self.out().lines().map(|l| l.trim_end().to_string()).collect()
    }

    /// The value of `KEY=` / `KEY:` lines in stdout (first match).
    pub fn field(&self, key: &str) -> Option<String> {
        self.out().lines().find_map(|l| {
            l.strip_prefix(&format!("{key}="))
                .or_else(|| l.strip_prefix(&format!("{key}:")))
                .map(|v| v.trim().to_string())
        })
    }
}

/// Candidate `berth` parent directories: for each cgroup hierarchy, the
/// test's own cgroup path + `berth`, and `berth.slice` at the top (v2).
pub fn berth_cgroup_parents() -> Vec<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let own: Vec<(Vec<String>, String)> = own
        .lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let (_, c, p) = (it.next()?, it.next()?, it.next()?);
            Some((c.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect(), p.to_string()))
        })
        .collect();
    let mut out = Vec::new();
    for line in info.lines() {
        let Some((left, right)) = line.split_once(" - ") else { continue };
        let f: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        if f.len() < 5 || r.len() < 3 {
            continue;
        }
        let mnt = PathBuf::from(f[4]);
        let path = match r[0] {
            "cgroup2" => own.iter().find(|(c, _)| c.is_empty()).map(|(_, p)| p.clone()),
            "cgroup" => {
                let opts: Vec<&str> = r[2].split(',').collect();
                own.iter()
                    .find(|(c, _)| !c.is_empty() && c.iter().all(|x| opts.contains(&x.as_str())))
                    .map(|(_, p)| p.clone())
            }
            _ => continue,
        };
        if let Some(p) = path {
            out.push(mnt.join(p.trim_start_matches('/')).join("berth"));
        }
        out.push(mnt.join("berth"));
        out.push(mnt.join("berth.slice"));
    }
    out.sort();
    out.dedup();
    out
}

/// Cgroup directories named `*-<pid>` under any `berth` parent.
pub fn container_cgroups(pid: u32) -> Vec<PathBuf> {
    let suffix = format!("-{pid}");
    all_container_cgroups()
        .into_iter()
        .filter(|d| d.file_name().is_some_and(|n| n.to_string_lossy().ends_with(&suffix)))
        .collect()
}

/// Every cgroup directory under any `berth` parent.
pub fn all_container_cgroups() -> Vec<PathBuf> {
    let mut v = Vec::new();
    for parent in berth_cgroup_parents() {
        let Ok(rd) = fs::read_dir(&parent) else { continue };
        for e in rd.flatten() {
            if e.path().is_dir() {
                v.push(e.path());
            }
        }
    }
    v
}

/// Processes whose argv or environment carries `BERTH_TEST_RUN=<token>`.
pub fn processes_with_token(token: &str) -> Vec<(u32, String)> {
    let needle = format!("{TOKEN_VAR}={token}");
    let me = std::process::id();
    let mut found = Vec::new();
    let Ok(rd) = fs::read_dir("/proc") else { return found };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        if pid == me {
            continue;
        }
        let has = |file: &str| {
            fs::read(e.path().join(file)).map(|b| b.split(|c| *c == 0).any(|a| a == needle.as_bytes())).unwrap_or(false)
        };
        if has("cmdline") || has("environ") {
            let cmd = fs::read(e.path().join("cmdline")).unwrap_or_default();
            let cmd: Vec<String> = cmd.split(|c| *c == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
            let state = fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            found.push((pid, format!("{} [{}]", cmd.join(" ").trim(), state.split(' ').nth(2).unwrap_or("?"))));
        }
    }
    found
}

/// PIDs of host processes whose argv is exactly `argv`.
pub fn processes_with_argv(argv: &[&str]) -> Vec<u32> {
    let want: Vec<u8> = argv.iter().flat_map(|a| a.bytes().chain([0u8])).collect();
    let mut found = Vec::new();
    let Ok(rd) = fs::read_dir("/proc") else { return found };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        if fs::read(e.path().join("cmdline")).is_ok_and(|c| c == want) {
            found.push(pid);
        }
    }
    found
}

/// A line of `/proc/self/status` (the value, trimmed).
pub fn status_field(status: &str, key: &str) -> Option<String> {
    status.lines().find_map(|l| l.strip_prefix(&format!("{key}:")).map(|v| v.trim().to_string()))
}

/// `OsString` helper for paths in argument lists.
pub fn s(p: &Path) -> String {
    p.to_str().expect("utf-8 path").to_string()
}

/// Host mount points, with multiplicity.
fn host_mounts() -> BTreeMap<PathBuf, usize> {
    let mut m = BTreeMap::new();
    for p in mount_points() {
        *m.entry(p).or_insert(0) += 1;
    }
    m
}

/// Whether a host mount point is one a berth run could plausibly leak or
/// remove: under the test's own dir, under a host path the run was given,
/// or one of the system's own directories (and /proc, /sys, /dev, /etc
/// below them).
fn relevant_mount(p: &Path, own: &Path, roots: &[PathBuf]) -> bool {
    const SYSTEM: &[&str] = &["/", "/run", "/tmp", "/usr", "/var", "/srv", "/mnt", "/home", "/root", "/opt", "/boot"];
    const SYSTEM_TREES: &[&str] =
        &["/proc", "/sys", "/dev", "/etc", "/bin", "/sbin", "/lib", "/usr/bin", "/var/lib/berth"];
    p.starts_with(own)
        || roots.iter().any(|r| p.starts_with(r))
        || SYSTEM.iter().any(|s| p == Path::new(s))
        || SYSTEM_TREES.iter().any(|s| p.starts_with(s))
}

/// Host paths named in a run's arguments (`/a`, `/a:/b:ro`, …) that exist.
pub fn host_paths_in(args: &[String]) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for a in args {
        for part in a.split(':') {
            let p = Path::new(part);
            if part.starts_with('/') && part.len() > 1 && p.exists() {
                if let Ok(c) = fs::canonicalize(p) {
                    if c != Path::new("/") {
                        v.push(c);
                    }
                }
            }
        }
    }
    v.sort();
    v.dedup();
    v
}
