//! Machines and every image source and sink (issue 4): `create`,
//! `machines`, `clone`, `rename`, `rm`, `read-only`, `run -M`; `import`
//! of root tarballs, OCI layouts and archives, docker-archives, ACIs and
//! disk images (raw GPT/MBR/bare ext4, compressed, qcow2, vmdk, Vagrant
//! boxes); `bootstrap`; `export`; `commit`; `push`; `login`/`logout`;
//! completions and man pages; `verify`: `import --verify` (SHA256SUMS,
//! gpg signatures) and `import aci:NAME` (appc discovery).
//!
//! Every input is built here from scratch (tar entries, `mkfs.ext4 -d`,
//! `sfdisk`, `qemu-img`, `skopeo copy … docker-archive:`), and every
//! result is checked by comparing trees (`harness::tree`) against the
//! source tree or against a peer tool (`umoci unpack`, `skopeo`, GNU tar).
//! Tests that attach disks check that no loop device backed by a file of
//! the test and no mount under the test's dir is left behind. `disks`
//! builds disk images; `btrfs` runs the machine verbs on a btrfs store.
//! `bootstrap` is the one test that needs the Debian mirror (~1 min).
//!
//! Host tools: fdisk (sfdisk), e2fsprogs, btrfs-progs, qemu-utils, skopeo,
//! umoci, python3; squashfs-tools and erofs-utils are installed with
//! apt-get on first use when missing (`disks::need`).

mod bootstrap;
mod btrfs;
mod cli;
mod commit;
mod disks;
mod durable;
mod errors;
mod export;
mod fsck;
mod import_archives;
mod import_disks;
mod import_hostile;
mod import_tar;
mod lifecycle;
mod login;
mod push;
mod verify;

use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::berth::{mount_points, unique, Run};
use crate::harness::oci::{Compression, Layer};
use crate::harness::tarball::{tar, Entry};
use crate::harness::tree::{self, Tree};
use crate::harness::{fixtures, Berth, Image, Registry};

/// The busybox fixture plus a layer with things to delete and change in
/// machines: `/somedir/sub/f`, `/etc/keep`, `/srv/data`.
pub fn machine_image() -> Image {
    let base = fixtures::busybox();
    let extra = [
        Entry::dir("somedir"),
        Entry::dir("somedir/sub"),
        Entry::file("somedir/sub/f", "in a dir that gets removed\n"),
        Entry::file("somedir/g", "also removed\n"),
        Entry::file("etc/keep", "kept\n"),
        Entry::dir("srv"),
        Entry::file("srv/data", "image data\n"),
    ];
    let mut layers = base.layers.clone();
    layers.push(Layer::new(tar(&extra), Compression::Gzip));
    Image::new("amd64", layers)
}

/// A private registry with `image` pushed under a unique repository, and
/// a fresh store that pulled it. Returns the full reference.
pub fn pulled(image: &Image) -> (Registry, Berth, String) {
    let reg = Registry::start();
    let repo = format!("m-{}", unique());
    reg.push_image(&repo, "latest", image);
    let reference = reg.reference(&repo, "latest");
    let berth = Berth::new();
    berth.pull(&reference, &["-q"]).success();
    (reg, berth, reference)
}

/// `pulled(&machine_image())`.
pub fn with_machine_image() -> (Registry, Berth, String) {
    pulled(&machine_image())
}

/// `berth machines --json`, parsed; asserts it is an array.
pub fn machines(berth: &Berth) -> Vec<Value> {
    let run = berth.run(["machines", "--json"]).success();
    match run.json() {
        Value::Array(a) => a,
        other => panic!("`machines --json` is not a JSON array: {other}"),
    }
}

/// The entry named `name` of `machines --json`.
pub fn machine<'a>(list: &'a [Value], name: &str) -> Option<&'a Value> {
    list.iter().find(|m| m["name"] == name)
}

/// Sorted machine names.
pub fn machine_names(berth: &Berth) -> Vec<String> {
    let mut v: Vec<String> =
        machines(berth).iter().map(|m| m["name"].as_str().unwrap_or_else(|| panic!("name: {m}")).to_string()).collect();
    v.sort();
    v
}

/// `berth run -M NAME /bin/sh -c SCRIPT`.
pub fn sh_in(berth: &Berth, machine: &str, script: &str) -> Run {
    berth.run(["run", "-M", machine, "/bin/sh", "-c", script])
}

/// A host command that must succeed; returns stdout.
pub fn host(cmd: &mut Command) -> String {
    let desc = format!("{cmd:?}");
    let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("spawn {desc}: {e}"));
    assert!(
        out.status.success(),
        "{desc} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `sh -c SCRIPT` on the host, which must succeed.
pub fn host_sh(script: &str) -> String {
    host(Command::new("sh").arg("-c").arg(script))
}

/// A path as a shell word, single-quoted.
pub fn q(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

/// Runs `cmd` (piped output) to completion, killing it after `timeout`.
pub fn run_long(mut cmd: Command, timeout: Duration) -> Run {
    let args = format!("{cmd:?}");
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {args}: {e}"));
    crate::harness::berth::wait_for(&mut child, args, timeout)
}

/// `berth ARGS…` with the file `input` on stdin.
pub fn run_with_stdin<I, S>(berth: &Berth, args: I, input: &Path) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = berth.command(args);
    cmd.stdin(fs::File::open(input).unwrap_or_else(|e| panic!("open {}: {e}", input.display())));
    crate::harness::berth::run_command(cmd)
}

/// The image ID (`sha256:…`) a command printed as its last stdout line.
pub fn printed_id(run: &Run) -> String {
    let last = run.stdout.trim().lines().last().unwrap_or("").trim().to_string();
    assert!(
        last.starts_with("sha256:") && last.len() == 71,
        "expected an image ID (sha256:64 hex) on stdout, got {:?} (stderr: {})",
        run.stdout,
        run.stderr
    );
    last
}

// ---------------------------------------------------------------- trees

/// The entries of the "rich" source tree used for imports: the busybox
/// root (binary, every applet symlink, passwd/group), plus hardlinks,
/// setuid/setgid/sticky, odd owners and mtimes, a fifo, a char device, a
/// user xattr, an empty file, dangling and absolute symlinks, a nested dir.
pub fn rich_entries() -> Vec<Entry> {
    let mut e = vec![Entry::dir("./").mode(0o755)];
    e.extend(crate::harness::fixtures::busybox_entries());
    e.extend([
        Entry::file("etc/os-release", "ID=berth-machines-test\nVERSION_ID=1\n"),
        Entry::dir("srv"),
        Entry::dir("srv/data"),
        Entry::dir("srv/other"),
        Entry::file("srv/data/orig", "hardlinked\n").mode(0o640).owner(1234, 5678).mtime(1_600_000_000),
        Entry::hardlink("srv/data/link", "srv/data/orig"),
        Entry::hardlink("srv/other/link2", "srv/data/orig"),
        Entry::file("srv/suid", "#!/bin/sh\n").mode(0o4755),
        Entry::file("srv/sgid", "#!/bin/sh\n").mode(0o2755).owner(0, 50),
        Entry::dir("srv/sticky").mode(0o1777),
        Entry::file("srv/odd", "odd owner\n").mode(0o604).owner(4321, 8765).mtime(1_234_567_890),
        Entry::fifo("srv/fifo").mode(0o600),
        Entry::char_dev("srv/null", 1, 3).mode(0o666),
        Entry::file("srv/xattr", "has an xattr\n").xattr("user.berth", "machines"),
        Entry::file("srv/empty", b"").mtime(1),
        Entry::symlink("srv/dangling", "does/not/exist"),
        Entry::symlink("srv/abs", "/etc/passwd"),
        Entry::dir("somedir"),
        Entry::dir("somedir/sub"),
        Entry::file("somedir/sub/deep", "deep\n"),
    ]);
    e
}

/// The uncompressed tar of `rich_entries()`.
pub fn rich_tar() -> Vec<u8> {
    tar(&rich_entries())
}

/// Extracts tar bytes (any compression GNU tar detects) into a new dir
/// `name` of the test's temp dir, as root, keeping owners, modes and
/// xattrs: the reference tree for comparisons.
pub fn extract_bytes(berth: &Berth, data: &[u8], name: &str) -> PathBuf {
    let file = berth.dir().join(format!("{name}.src.tar"));
    fs::write(&file, data).expect("write tar");
    let dir = extract_file(berth, &file, name);
    fs::remove_file(&file).expect("remove tar");
    dir
}

/// `tar --xattrs --numeric-owner -xpf FILE` into a new dir `name`.
pub fn extract_file(berth: &Berth, file: &Path, name: &str) -> PathBuf {
    let dir = berth.new_dir(name);
    host(
        Command::new("tar")
            .args(["--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf"])
            .arg(file)
            .arg("-C")
            .arg(&dir),
    );
    dir
}

/// The rich tree extracted on disk (the source for disks and directories).
pub fn rich_tree(berth: &Berth, name: &str) -> PathBuf {
    let dir = extract_bytes(berth, &rich_tar(), name);
    // The tar's `./` entry sets the root's mode; make it explicit anyway.
    host(Command::new("chmod").arg("0755").arg(&dir));
    dir
}

fn strip(t: &mut Tree, ignore: &[&str]) {
    let hit = |p: &str| ignore.iter().any(|i| p == *i || p.starts_with(&format!("{i}/")));
    t.nodes.retain(|p, _| !hit(p));
    t.hardlinks = t
        .hardlinks
        .iter()
        .map(|g| g.iter().filter(|p| !hit(p)).cloned().collect::<std::collections::BTreeSet<_>>())
        .filter(|g| g.len() > 1)
        .collect();
}

/// Panics with a readable diff unless the trees are equal (minus `ignore`).
pub fn assert_same(actual: &Tree, expected: &Tree, ignore: &[&str], what: &str) {
    let (mut a, mut e) = (actual.clone(), expected.clone());
    strip(&mut a, ignore);
    strip(&mut e, ignore);
    let d = tree::diff(&a, &e);
    assert!(d.is_empty(), "{what}: the trees differ in {} ways (got vs want):\n{}", d.len(), d.join("\n"));
}

/// The merged tree of image `name` (`berth mount`, snapshot, unmount).
pub fn image_tree(berth: &Berth, name: &str) -> Tree {
    let mnt = berth.mount(name);
    let t = tree::snapshot(&mnt);
    berth.unmount(&mnt);
    let _ = fs::remove_dir(&mnt);
    t
}

/// Asserts the image `name` holds exactly the tree at `expected`
/// (minus `ignore` on both sides).
pub fn assert_image_is(berth: &Berth, name: &str, expected: &Path, ignore: &[&str], what: &str) {
    let got = image_tree(berth, name);
    assert_same(&got, &tree::snapshot(expected), ignore, what);
}

// ---------------------------------------------------------------- leaks

/// Loop devices whose backing file lies under `dir` (`(deleted)` ones too).
pub fn loops_backed_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(rd) = fs::read_dir("/sys/block") else { return found };
    let dir = dir.to_string_lossy().into_owned();
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("loop") {
            continue;
        }
        let Ok(back) = fs::read_to_string(e.path().join("loop/backing_file")) else { continue };
        if back.trim().starts_with(&dir) {
            found.push(format!("/dev/{name} ({})", back.trim()));
        }
    }
    found
}

/// Asserts no mount under the test's dir and no loop device backed by a
/// file under it (berth stages disks in its store, inside that dir).
pub fn assert_nothing_attached(berth: &Berth, what: &str) {
    let mounts: Vec<PathBuf> = mount_points().into_iter().filter(|m| m.starts_with(berth.dir())).collect();
    assert!(mounts.is_empty(), "{what}: left mounted: {mounts:?}");
    // `losetup --detach` is synchronous, but give the kernel a moment to
    // drop autoclear devices.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let loops = loops_backed_under(berth.dir());
        if loops.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: loop devices left attached: {loops:?}\n`losetup -a`:\n{}",
            losetup_a()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `losetup -a` output, for messages.
pub fn losetup_a() -> String {
    Command::new("losetup")
        .arg("-a")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

// ---------------------------------------------------------------- http

/// `python3 -m http.server` serving a directory on 127.0.0.1.
pub struct HttpServer {
    child: Child,
    port: u16,
}

impl HttpServer {
    pub fn serve(dir: &Path) -> HttpServer {
        let python = if Path::new("/usr/bin/python3").exists() { "/usr/bin/python3" } else { "python3" };
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
            let mut child = Command::new(python)
                .args(["-m", "http.server", "--bind", "127.0.0.1", "--directory"])
                .arg(dir)
                .arg(port.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn python3 -m http.server");
            let deadline = Instant::now() + Duration::from_secs(10);
            let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(2)).build();
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if agent.get(&format!("http://127.0.0.1:{port}/")).call().is_ok() {
                    return HttpServer { child, port };
                }
                std::thread::sleep(Duration::from_millis(30));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("python3 -m http.server did not come up");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{}", self.port, path.trim_start_matches('/'))
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- misc

/// Compresses `data` with a host tool (`gzip`, `xz`, `zstd`, `bzip2`).
pub fn compress_with(tool: &str, data: &[u8]) -> Vec<u8> {
    let mut child = Command::new(tool)
        .args(["-c", "-q"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {tool}: {e}"));
    let mut stdin = child.stdin.take().expect("stdin");
    let data = data.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait compressor");
    feeder.join().expect("feeder");
    assert!(out.status.success(), "{tool} failed: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// Compresses a file with a host tool into `FILE.EXT`; returns that path.
pub fn compress_file(tool: &str, file: &Path, ext: &str) -> PathBuf {
    let out = PathBuf::from(format!("{}.{ext}", file.display()));
    host_sh(&format!("{tool} -c -q {} > {}", q(file), q(&out)));
    out
}

/// `berth images --json` names, sorted and flattened.
pub fn image_names(berth: &Berth) -> Vec<String> {
    let mut v: Vec<String> = berth
        .images()
        .iter()
        .flat_map(|i| i["names"].as_array().cloned().unwrap_or_default())
        .filter_map(|n| n.as_str().map(str::to_string))
        .collect();
    v.sort();
    v
}

/// The image ID `inspect` gives for `name`.
pub fn image_id(berth: &Berth, name: &str) -> String {
    berth.inspect(name)["id"].as_str().unwrap_or_else(|| panic!("inspect {name}: no id")).to_string()
}

/// The store's listing without empty lock files under `locks/`: berth
/// makes `locks/machine-NAME` the first time it locks a machine, which
/// is no change to the store's content (nor is making `locks/` itself).
pub fn listing(berth: &Berth) -> crate::harness::Listing {
    let mut l = berth.listing();
    l.0.retain(|k, v| !(k == "locks" || k.starts_with("locks/") && v.starts_with("file 0 ")));
    l
}

// ---------------------------------------------------------------- proxy

/// A TCP proxy on 127.0.0.1 in front of `target` (host:port) that counts
/// the bytes clients send, to see what a push uploads.
pub struct CountingProxy {
    port: u16,
    sent: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl CountingProxy {
    pub fn start(target: &str) -> CountingProxy {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        use std::sync::Arc;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().unwrap().port();
        let sent = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (sent2, stop2, target) = (sent.clone(), stop.clone(), target.to_string());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = conn else { continue };
                let Ok(server) = std::net::TcpStream::connect(&target) else { continue };
                let (mut c_r, mut c_w) = (client.try_clone().unwrap(), client);
                let (mut s_r, mut s_w) = (server.try_clone().unwrap(), server);
                let sent = sent2.clone();
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 << 10];
                    loop {
                        match c_r.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                sent.fetch_add(n as u64, Ordering::SeqCst);
                                if s_w.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    let _ = s_w.shutdown(std::net::Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s_r, &mut c_w);
                    let _ = c_w.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        CountingProxy { port, sent, stop }
    }

    /// `127.0.0.1:PORT`, to use as the registry part of references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Bytes clients sent since the last call.
    pub fn take(&self) -> u64 {
        self.sent.swap(0, std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Asserts berth left no staging directories in the store's `tmp/`.
pub fn assert_no_staging(berth: &Berth, what: &str) {
    let tmp = berth.root().join("tmp");
    let left: Vec<String> = fs::read_dir(&tmp)
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{what}: staging left in {}: {left:?}", tmp.display());
}
