//! Images whose symlinks aim berth's mounts and writes at host paths:
//! every target is resolved inside the container's root, so the host is
//! never touched (whether the run then succeeds or fails cleanly).

use std::fs;
use std::path::Path;

use crate::harness::berth::unique;
use crate::harness::container::{run_image, s, Ctx};
use crate::harness::oci::{Compression, Image, Layer};
use crate::harness::tarball::{tar, Entry};

/// `run_image()` plus a top layer with `entries`.
fn with_layer(entries: &[Entry]) -> Image {
    let base = run_image();
    let mut layers = base.layers.clone();
    layers.push(Layer::new(tar(entries), Compression::Gzip));
    Image::with_config("amd64", layers, base.config_json()["config"].clone())
}

/// `../` enough times to climb from any root to `/`.
fn climb(p: &Path) -> String {
    format!("{}{}", "../".repeat(20), s(p).trim_start_matches('/'))
}

fn assert_empty_dir(p: &Path, what: &str) {
    let entries: Vec<String> =
        fs::read_dir(p).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    assert!(entries.is_empty(), "{what}: berth wrote into the host directory {}: {entries:?}", p.display());
    assert!(!crate::harness::mounts::is_mounted(p), "{what}: {} is a mount point on the host", p.display());
}

/// The run either works or fails with a one-line message; never crashes.
fn run_any(c: &Ctx, args: &[&str], what: &str) {
    let o = c.run(args);
    assert!(o.code.is_some(), "{what}: berth crashed: {}", o.describe());
    if o.code != Some(0) {
        assert_eq!(o.stderr.trim().lines().count(), 1, "{what}: one-line error expected: {}", o.describe());
    }
}

#[test]
fn symlinked_mount_targets_never_reach_the_host() {
    let c = Ctx::busybox();
    let abs_dir = c.dir("host-abs");
    let rel_dir = c.dir("host-rel");
    let tmp_dir = c.dir("host-tmp");
    let src = c.dir("bind-src");
    fs::write(src.join("f"), "bind source\n").unwrap();
    let cases: Vec<(&str, Vec<Entry>, Vec<String>, &Path)> = vec![
        (
            "abs-mnt",
            vec![Entry::symlink("mnt", s(&abs_dir))],
            vec!["--bind".into(), format!("{}:/mnt/sub/x", s(&src)), "--tmpfs".into(), "/mnt/t".into()],
            &abs_dir,
        ),
        (
            "rel-mnt",
            vec![Entry::symlink("mnt", climb(&rel_dir))],
            vec!["--bind-ro".into(), format!("{}:/mnt/sub/x", s(&src)), "--tmpfs".into(), "/mnt/t".into()],
            &rel_dir,
        ),
        ("tmp", vec![Entry::symlink("tmp", climb(&tmp_dir))], vec![], &tmp_dir),
    ];
    for (tag, entries, opts, host_dir) in cases {
        let img = c.add_image(tag, &with_layer(&entries));
        let mut args: Vec<&str> = opts.iter().map(String::as_str).collect();
        args.extend_from_slice(&[&img, "/bin/sh", "-c", "touch /mnt/t/x /tmp/x 2>/dev/null; true"]);
        run_any(&c, &args, tag);
        assert_empty_dir(host_dir, tag);
    }
}

#[test]
fn symlink_to_a_path_that_exists_on_both_sides_resolves_inside() {
    let c = Ctx::busybox();
    // /srv exists in the image and usually on the host too.
    let name = format!("berth-hostile-{}", unique());
    let img = c.add_image("srv", &with_layer(&[Entry::symlink("mnt", "/srv")]));
    let src = c.dir("bind-src2");
    fs::write(src.join("f"), "bind source\n").unwrap();
    let bind = format!("{}:/mnt/{name}", s(&src));
    let o = c.run(&["--bind", &bind, &img, "cat", &format!("/srv/{name}/f")]).success();
    assert_eq!(o.out(), "bind source\n", "the bind lands inside the container's /srv: {}", o.describe());
    assert!(!Path::new("/srv").join(&name).exists(), "berth created /srv/{name} on the host");
}

#[test]
fn symlinked_resolv_conf_never_writes_the_host_file() {
    let c = Ctx::busybox();
    let victim = c.dir("victim").join("file");
    fs::write(&victim, "host content\n").unwrap();
    let img = c.add_image("resolv", &with_layer(&[Entry::dir("etc"), Entry::symlink("etc/resolv.conf", s(&victim))]));
    let rel =
        c.add_image("resolv-rel", &with_layer(&[Entry::dir("etc"), Entry::symlink("etc/resolv.conf", climb(&victim))]));
    for image in [&img, &rel] {
        for mode in ["copy-host", "replace-host", "bind-host", "delete", "off"] {
            run_any(&c, &["--resolv-conf", mode, image, "true"], mode);
            assert_eq!(fs::read_to_string(&victim).ok().as_deref(), Some("host content\n"), "--resolv-conf {mode}");
        }
        run_any(&c, &["--read-only", image, "true"], "--read-only");
        assert_eq!(fs::read_to_string(&victim).ok().as_deref(), Some("host content\n"), "--read-only");
    }
}

/// A running machine that made its os-release a symlink to a host file
/// (then a FIFO) and its passwd `/dev/zero` and its group a FIFO: `status`
/// shows no host file and does not hang, and user lookups by `exec -u`
/// and `run -u` fail at once instead of reading forever. (On berth before
/// this, `status` printed the host file's PRETTY_NAME.)
#[test]
fn status_and_user_lookups_read_the_guest_s_own_files_bounded() {
    let c = Ctx::busybox();
    let secret = format!("HOST-SECRET-{}", unique());
    let host = c.berth.dir().join("host-os-release");
    fs::write(&host, format!("PRETTY_NAME=\"{secret}\"\n")).unwrap();
    let name = format!("guest-{}", unique());
    let script = format!(
        "ln -sf {} /etc/os-release && mkdir -p /usr/lib && ln -sf {} /usr/lib/os-release && touch /ready && sleep 60",
        s(&host),
        s(&host)
    );
    c.berth.run(["run", "-d", "--name", &name, &c.image, "/bin/sh", "-c", &script]).success();
    let ready = || c.berth.run(["exec", &name, "test", "-e", "/ready"]).status.success();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !ready() {
        assert!(std::time::Instant::now() < deadline, "machine {name} did not get ready");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let st = c.berth.run(["status", &name]).success();
    assert!(!st.stdout.contains(&secret), "status read a host file through the machine's symlink:\n{}", st.stdout);

    // Now a FIFO and a device where the files are: nothing hangs.
    let swap = "rm -f /etc/os-release /usr/lib/os-release && mkfifo /etc/os-release && mkfifo /usr/lib/os-release \
                && cp /etc/passwd /etc/passwd.real && ln -sf /dev/zero /etc/passwd && rm -f /etc/group && mkfifo /etc/group";
    c.berth.run(["exec", &name, "/bin/sh", "-c", swap]).success();
    let st = c.berth.run(["status", &name]).success();
    assert!(!st.stdout.contains(&secret), "{}", st.stdout);
    let by_name = c.berth.run(["exec", "-u", "nobody", &name, "/bin/true"]);
    assert!(!by_name.status.success() && by_name.stderr.contains("nobody"), "exec -u nobody: {by_name:?}");
    c.berth.run(["exec", "-u", "0", &name, "/bin/true"]).success();
    crate::run::kill_and_remove(&c, &name);
}
