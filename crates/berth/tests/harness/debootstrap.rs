//! A Debian bookworm minbase tree built once with debootstrap and cached
//! at `/var/cache/berth-test/bookworm-minbase`, and the same tree as a
//! one-layer gzip image (cached next to it).
//!
//! Builds go to a temp dir and are renamed into place under a file lock,
//! so parallel tests (and test processes) build once. When the benchmark's
//! tree (`/var/cache/berth-bench/rootfs-bookworm-minbase`) exists it is
//! copied instead, which is quicker; `BERTH_TEST_DEBOOTSTRAP=1` forces a
//! real debootstrap run. The tree is shared: run it with `-x` (or another
//! mode that keeps it untouched) — never write into it.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use super::oci::{Compression, Layer, MT_GZIP};

pub const CACHE: &str = "/var/cache/berth-test";
const BENCH_TREE: &str = "/var/cache/berth-bench/rootfs-bookworm-minbase";

/// Holds `CACHE/.lock` exclusively until dropped.
struct CacheLock(#[allow(dead_code)] fs::File);

fn lock() -> CacheLock {
    fs::create_dir_all(CACHE).expect("create the test cache dir");
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(Path::new(CACHE).join(".lock"))
        .expect("open the cache lock");
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive).expect("lock the test cache");
    CacheLock(f)
}

/// The cached minbase tree, built first if missing.
pub fn tree() -> PathBuf {
    cached_tree("bookworm-minbase", &[], BENCH_TREE, complete)
}

/// A bookworm minbase tree with `include` packages, cached as
/// `CACHE/NAME` and built once under the cache lock: copied from `seed`
/// when that is a complete tree, else run through debootstrap
/// (`BERTH_TEST_DEBOOTSTRAP=1` forces that). `complete` tells a finished
/// tree from a missing or half-built one.
pub fn cached_tree(name: &str, include: &[&str], seed: &str, complete: fn(&Path) -> bool) -> PathBuf {
    let dest = Path::new(CACHE).join(name);
    if complete(&dest) {
        return dest;
    }
    let _lock = lock();
    if complete(&dest) {
        return dest;
    }
    remove_stale_builds();
    let tmp = Path::new(CACHE).join(format!(".build-{name}-{}", std::process::id()));
    let started = Instant::now();
    let force = std::env::var_os("BERTH_TEST_DEBOOTSTRAP").is_some_and(|v| v == "1");
    let how = if !force && complete(Path::new(seed)) {
        let st = Command::new("cp").args(["-a", "--reflink=auto", seed]).arg(&tmp).status().expect("run cp");
        assert!(st.success(), "copying {seed} failed");
        format!("copied from {seed}")
    } else {
        let mirror = mirror();
        let mut args = vec!["--variant=minbase".to_string()];
        if !include.is_empty() {
            args.push(format!("--include={}", include.join(",")));
        }
        args.push("bookworm".into());
        let out = Command::new("debootstrap")
            .args(&args)
            .arg(&tmp)
            .arg(&mirror)
            .stdin(Stdio::null())
            .output()
            .expect("run debootstrap (apt-get install debootstrap)");
        if !out.status.success() {
            detach_mounts_under(&tmp);
            let _ = fs::remove_dir_all(&tmp);
            panic!(
                "debootstrap {} {} {mirror} failed:\n{}{}",
                args.join(" "),
                tmp.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        format!("debootstrap from {mirror}")
    };
    detach_mounts_under(&tmp);
    assert!(complete(&tmp), "the new tree at {} is incomplete", tmp.display());
    fs::rename(&tmp, &dest).expect("rename the tree into place");
    let note = format!("{how} in {:.1}s\n", started.elapsed().as_secs_f64());
    let _ = fs::write(Path::new(CACHE).join(format!("{name}.built")), &note);
    eprintln!("berth tests: {name} tree {note}");
    dest
}

fn complete(dir: &Path) -> bool {
    dir.join("usr/bin/id").is_file() && dir.join("etc/passwd").is_file() && dir.join("usr/bin/sh").exists()
}

/// Removes half-built trees left by a crashed build (under the lock).
fn remove_stale_builds() {
    let Ok(rd) = fs::read_dir(CACHE) else { return };
    for e in rd.flatten() {
        if e.file_name().to_string_lossy().starts_with(".build-") {
            detach_mounts_under(&e.path());
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

/// Detaches every mount under `dir` (debootstrap mounts /proc and /sys).
pub fn detach_mounts_under(dir: &Path) {
    let mut ms: Vec<PathBuf> = super::mounts::mount_points().into_iter().filter(|m| m.starts_with(dir)).collect();
    ms.sort_by_key(|m| std::cmp::Reverse(m.as_os_str().len()));
    for m in ms {
        let _ = rustix::mount::unmount(&m, rustix::mount::UnmountFlags::DETACH);
    }
}

/// The Debian mirror from APT's sources (one-line or deb822 format).
pub fn mirror() -> String {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(rd) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut v: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        v.sort();
        files.extend(v);
    }
    for f in files {
        let Ok(text) = fs::read_to_string(&f) else { continue };
        let name = f.to_string_lossy();
        if name.ends_with(".list") {
            for l in text.lines() {
                let words: Vec<&str> = l.split_whitespace().filter(|w| !w.starts_with('[')).collect();
                if words.len() >= 3 && words[0] == "deb" && words[2] == "bookworm" && !words[1].contains("security") {
                    return words[1].to_string();
                }
            }
        } else if name.ends_with(".sources") {
            for stanza in text.split("\n\n") {
                let get = |k: &str| {
                    stanza.lines().find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_string())).unwrap_or_default()
                };
                let uris = get("URIs:");
                let suites = get("Suites:");
                if suites.split_whitespace().any(|s| s == "bookworm") && !uris.contains("security") {
                    if let Some(u) = uris.split_whitespace().next() {
                        return u.to_string();
                    }
                }
            }
        }
    }
    "http://deb.debian.org/debian".to_string()
}

/// The tree as one gzip layer (`tar --numeric-owner --xattrs`), cached as
/// `CACHE/bookworm-minbase.layer.tar.gz` with its diff_id alongside.
pub fn layer() -> Layer {
    let tree = tree();
    let gz = Path::new(CACHE).join("bookworm-minbase.layer.tar.gz");
    let id = Path::new(CACHE).join("bookworm-minbase.layer.diffid");
    let fresh = |p: &Path| fs::metadata(p).is_ok_and(|m| m.size() > 0);
    if !(fresh(&gz) && fresh(&id)) {
        let _lock = lock();
        if !(fresh(&gz) && fresh(&id)) {
            let out = Command::new("tar")
                .args(["--numeric-owner", "--xattrs", "--xattrs-include=*", "--sort=name", "-C"])
                .arg(&tree)
                .args(["-cf", "-", "."])
                .stderr(Stdio::inherit())
                .output()
                .expect("run tar");
            assert!(out.status.success(), "tar of {} failed", tree.display());
            let layer = Layer::new(out.stdout, Compression::Gzip);
            let tmp = gz.with_extension(format!("tmp-{}", std::process::id()));
            fs::write(&tmp, &layer.blob.data).expect("write the cached layer");
            fs::rename(&tmp, &gz).expect("rename the cached layer");
            fs::write(&id, &layer.diff_id).expect("write the cached diff_id");
            return Layer { tar: None, ..layer };
        }
    }
    let data = fs::read(&gz).expect("read the cached layer");
    let diff_id = fs::read_to_string(&id).expect("read the cached diff_id").trim().to_string();
    Layer::raw(MT_GZIP, data, diff_id)
}

/// The tree's `/etc/group` with `extra` members appended to groups:
/// `[("adm", "daemon"), …]`.
pub fn group_with_members(extra: &[(&str, &str)]) -> String {
    let text = fs::read_to_string(tree().join("etc/group")).expect("read the tree's /etc/group");
    let mut out = String::new();
    for line in text.lines() {
        let mut f: Vec<String> = line.split(':').map(str::to_string).collect();
        if f.len() == 4 {
            for (g, u) in extra {
                if f[0] == *g {
                    let mut members: Vec<&str> = f[3].split(',').filter(|m| !m.is_empty()).collect();
                    members.push(u);
                    f[3] = members.join(",");
                }
            }
        }
        out.push_str(&f.join(":"));
        out.push('\n');
    }
    out
}
