//! `berth cp` and `berth bind` (issue 10, item 6): files into and out of
//! stopped and running machines with owners and modes kept, resolved
//! inside the machine's root however its links point, never written with
//! the host's rights into what a running machine can see, and nothing
//! setuid handed back to the host; binds that a machine root holding
//! CAP_SYS_ADMIN cannot make writable.

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;

use super::kill_and_remove;
use crate::harness::berth::unique;
use crate::harness::container::{s, Ctx};
use crate::harness::probe::{assert_blocked, verdict};

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).mode() & 0o7777
}

fn owner(p: &Path) -> (u32, u32) {
    let m = fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (m.uid(), m.gid())
}

/// A host tree to copy in: a file owned by 1000:1001 mode 0640, a
/// setuid file, a relative link and a FIFO.
fn host_tree(c: &Ctx) -> std::path::PathBuf {
    let src = c.dir("cp-src");
    fs::create_dir(src.join("sub")).expect("mkdir");
    fs::write(src.join("sub/f"), "payload\n").expect("write");
    std::os::unix::fs::chown(src.join("sub/f"), Some(1000), Some(1001)).expect("chown");
    fs::set_permissions(src.join("sub/f"), fs::Permissions::from_mode(0o640)).expect("chmod");
    fs::write(src.join("tool"), "#!/bin/sh\n").expect("write");
    fs::set_permissions(src.join("tool"), fs::Permissions::from_mode(0o4755)).expect("chmod");
    symlink("sub/f", src.join("rel")).expect("symlink");
    let fifo = std::ffi::CString::new(s(&src.join("fifo"))).expect("cstring");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        fifo.as_c_str(),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .expect("mkfifo");
    src
}

#[test]
fn cp_into_and_out_of_a_stopped_machine_keeps_owners_and_stays_inside_its_root() {
    let c = Ctx::probe();
    let m = format!("cps-{}", unique());
    c.berth.run(["create", &c.image, &m]).success();
    // The machine's links aim at the host: an absolute one at a host
    // directory, one at "/", one at a host file.
    let host_dir = c.dir("cp-host-target");
    fs::write(host_dir.join("marker"), "host\n").expect("marker");
    let script = format!(
        "ln -s {hd} /evil && ln -s / /up && ln -s /etc/hostname /data/hostfile && cp /bin/busybox /data/suid && chmod 4755 /data/suid && dd if=/dev/zero of=/data/sparse bs=1 count=0 seek=1073741824",
        hd = s(&host_dir)
    );
    c.berth.run(["run", "-M", &m, "/bin/sh", "-c", &script]).success();
    let upper = c.store().join("machines").join(&m).join("upper");

    // In: into an existing directory under the source's name.
    let src = host_tree(&c);
    c.berth.run(["cp", &s(&src), &format!("{m}:/data")]).success();
    let got = upper.join("data").join(src.file_name().expect("name"));
    assert_eq!(fs::read_to_string(got.join("sub/f")).expect("copied file"), "payload\n");
    assert_eq!(owner(&got.join("sub/f")), (1000, 1001), "owners are kept");
    assert_eq!(mode(&got.join("sub/f")), 0o640, "modes are kept");
    assert_eq!(mode(&got.join("tool")), 0o4755, "a setuid file copied in stays setuid in the machine");
    assert_eq!(fs::read_link(got.join("rel")).expect("link"), Path::new("sub/f"));
    use std::os::unix::fs::FileTypeExt;
    assert!(fs::symlink_metadata(got.join("fifo")).expect("fifo").file_type().is_fifo(), "the FIFO is a FIFO");

    // A host owner the machine has no ID for becomes its root, and loses
    // its setuid bit with it; a host path may go through "..".
    let far = c.dir("cp-far");
    fs::create_dir(far.join("sub")).expect("mkdir");
    fs::write(far.join("far"), "far\n").expect("write");
    std::os::unix::fs::chown(far.join("far"), Some(70000), Some(70000)).expect("chown");
    fs::set_permissions(far.join("far"), fs::Permissions::from_mode(0o6755)).expect("chmod");
    c.berth.run(["cp", &format!("{}/sub/../far", s(&far)), &format!("{m}:/data/")]).success();
    assert_eq!(owner(&upper.join("data/far")), (0, 0));
    assert_eq!(mode(&upper.join("data/far")), 0o755, "setuid-root made from an owner the machine cannot map");

    // In, through the machine's links: "/up" is the machine's own root,
    // "/evil" names a host directory the machine does not have.
    let file = c.dir("cp-one").join("note");
    fs::write(&file, "note\n").expect("write");
    c.berth.run(["cp", &s(&file), &format!("{m}:/up/etc/")]).success();
    assert_eq!(fs::read_to_string(upper.join("etc/note")).expect("in the machine's /etc"), "note\n");
    assert!(!Path::new("/etc/note").exists(), "the copy followed /up to the host's /etc");
    c.berth.run(["cp", &s(&file), &format!("{m}:/evil/")]).failure().mentions_any(&["does not exist"]);
    c.berth.run(["cp", &s(&file), &format!("{m}:/evil/new")]).failure().mentions_any(&["does not exist"]);
    assert_eq!(fs::read_dir(&host_dir).expect("host dir").count(), 1, "the host directory the link names was written");

    // Out: links come out as links, setuid bits do not come out.
    let out = c.dir("cp-out");
    c.berth.run(["cp", &format!("{m}:/data"), &s(&out.join("data"))]).success();
    assert_eq!(fs::read_link(out.join("data/hostfile")).expect("link"), Path::new("/etc/hostname"));
    assert_eq!(mode(&out.join("data/suid")), 0o755, "a setuid file came out of the machine setuid");
    assert_eq!(owner(&out.join("data/suid")), (0, 0));
    // A machine's 1 GiB hole comes out as a hole, not a gigabyte of zeros.
    let sparse = fs::metadata(out.join("data/sparse")).expect("sparse");
    assert_eq!(sparse.len(), 1 << 30);
    assert!(
        sparse.blocks() * 512 < 1 << 20,
        "the sparse file filled {} bytes of the host's disk",
        sparse.blocks() * 512
    );
    c.berth.run(["cp", &format!("{m}:/evil"), &s(&out.join("evil"))]).success();
    assert!(fs::symlink_metadata(out.join("evil")).expect("evil").file_type().is_symlink(), "the link was followed");
    // A path through a link resolves in the machine: /evil/marker is not there.
    c.berth.run(["cp", &format!("{m}:/evil/marker"), &s(&out)]).failure().mentions_any(&["does not exist"]);
    assert!(!out.join("marker").exists(), "the host file behind the machine's link was copied out");
    // And the round trip is what went in.
    c.berth.run(["cp", &format!("{m}:/up/etc/note"), &s(&out.join("note"))]).success();
    assert_eq!(fs::read_to_string(out.join("note")).expect("note"), "note\n");
}

#[test]
fn cp_with_a_running_machine_works_with_its_roots_rights_not_the_hosts() {
    let c = Ctx::probe();
    let m = format!("cpr-{}", unique());
    // A host directory the machine sees, which its root may not write
    // (owned by host root, mode 0755): host root could.
    let shared = c.dir("cp-shared");
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o755)).expect("chmod");
    let bind = format!("{}:/shared", s(&shared));
    c.berth.run(["run", "-d", "--name", &m, "--bind", &bind, &c.image, "/probe", "sleep:300"]).success();
    let exec = |script: &str| c.berth.run(["exec", &m, "/bin/sh", "-c", script]);
    exec("ln -s /shared /etc/app && echo made > /tmp/o && chown 7:8 /tmp/o && chmod 4755 /tmp/o").success();

    let src = host_tree(&c);
    c.berth.run(["cp", &s(&src), &format!("{m}:/tmp/in")]).success();
    let st = exec("stat -c '%u:%g %a' /tmp/in/sub/f /tmp/in/tool; cat /tmp/in/sub/f; readlink /tmp/in/rel").success();
    assert_eq!(st.stdout, "1000:1001 640\n0:0 4755\npayload\nsub/f\n", "what the machine sees of the copy");

    // The machine's link leads the copy into the host directory it may
    // not write: the copy has the machine root's rights there, not the host's.
    let file = c.dir("cp-one").join("cfg");
    fs::write(&file, "cfg\n").expect("write");
    c.berth.run(["cp", &s(&file), &format!("{m}:/etc/app/")]).failure();
    assert_eq!(fs::read_dir(&shared).expect("shared").count(), 0, "host root wrote through the machine's link");

    // Out: the caller's files, or with -a the machine's owners as numbers;
    // never setuid.
    let out = c.dir("cp-out");
    c.berth.run(["cp", &format!("{m}:/tmp/o"), &s(&out.join("o"))]).success();
    assert_eq!(fs::read_to_string(out.join("o")).expect("o"), "made\n");
    assert_eq!(owner(&out.join("o")), (0, 0), "without -a, what comes out is the caller's");
    assert_eq!(mode(&out.join("o")), 0o755, "a setuid file came out of the running machine setuid");
    c.berth.run(["cp", "-a", &format!("{m}:/tmp/o"), &s(&out.join("oa"))]).success();
    assert_eq!(owner(&out.join("oa")), (7, 8), "with -a, the machine's owners as numbers");
    assert_eq!(mode(&out.join("oa")), 0o755, "a setuid file came out of the running machine setuid");
    kill_and_remove(&c, &m);
}

#[test]
fn bind_into_a_running_machine_stays_read_only_for_a_root_with_cap_sys_admin() {
    let c = Ctx::probe();
    let m = format!("bnd-{}", unique());
    c.berth.run(["run", "-d", "--name", &m, "--capability", "sys_admin", &c.image, "/probe", "sleep:300"]).success();
    let ro = c.dir("bind-ro");
    fs::write(ro.join("marker"), "from the host\n").expect("marker");
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o777)).expect("chmod");
    c.berth.run(["bind", &m, &s(&ro), "/mnt/ro"]).failure().mentions_any(&["--mkdir"]);
    c.berth.run(["bind", &m, &s(&ro), "/mnt/ro", "--read-only", "--mkdir"]).success();
    let seen = c.berth.run(["exec", &m, "cat", "/mnt/ro/marker"]).success();
    assert_eq!(seen.stdout, "from the host\n");
    let out = c.berth.run(["exec", &m, "/probe", "remount-rw:/mnt/ro", "create:/mnt/ro/pwned"]).success().stdout;
    assert_blocked(&out, "remount-rw:/mnt/ro", "remounting a read-only berth bind writable");
    assert_blocked(&out, "create:/mnt/ro/pwned", "a file below a read-only berth bind");
    assert!(!ro.join("pwned").exists(), "the host directory was written");

    // A writable one, with the host path as the default destination.
    let rw = c.dir("bind-rw");
    fs::set_permissions(&rw, fs::Permissions::from_mode(0o777)).expect("chmod");
    c.berth.run(["bind", &m, &s(&rw), "--mkdir"]).success();
    let target = format!("{}/new", s(&rw));
    let out = c.berth.run(["exec", &m, "/probe", &format!("create:{target}")]).success().stdout;
    assert_eq!(verdict(&out, &format!("create:{target}")), "ok", "{out}");
    assert!(rw.join("new").exists(), "the writable bind did not reach the host directory");
    kill_and_remove(&c, &m);
    c.berth.run(["create", &c.image, &m]).success();
    c.berth.run(["bind", &m, &s(&rw)]).failure().mentions_any(&["not running"]);
}

#[test]
fn cp_refuses_what_it_cannot_do_with_one_line_and_no_change() {
    let c = Ctx::probe();
    let m = format!("cpe-{}", unique());
    c.berth.run(["create", &c.image, &m]).success();
    let file = c.dir("cp-e").join("f");
    fs::write(&file, "x\n").expect("write");
    let f = s(&file);
    c.berth.run(["cp", &f, "/tmp/elsewhere"]).failure().mentions_any(&["NAME:PATH"]);
    c.berth.run(["cp", &format!("{m}:/etc/hostname"), &format!("{m}:/tmp/")]).failure().mentions_any(&["one machine"]);
    c.berth.run(["cp", &f, "no-such-machine:/tmp/"]).failure().mentions_any(&["not found"]);
    c.berth.run(["cp", "/no/such/file", &format!("{m}:/tmp/")]).failure().mentions_any(&["does not exist"]);
    c.berth.run(["cp", &f, &format!("{m}:/no/such/dir/")]).failure().mentions_any(&["does not exist"]);
    c.berth.run(["cp", &f, &format!("{m}:/a/../b")]).failure().mentions_any(&[".."]);
    let sock = c.dir("cp-sock").join("s");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).expect("socket");
    c.berth.run(["cp", &s(&sock), &format!("{m}:/tmp/")]).failure().mentions_any(&["socket"]);
    c.berth.run(["read-only", &m, "true"]).success();
    c.berth.run(["cp", &f, &format!("{m}:/tmp/")]).failure().mentions_any(&["read-only"]);
    let upper = c.store().join("machines").join(&m).join("upper");
    assert!(!upper.join("tmp/f").exists(), "a refused copy changed the machine");
}
