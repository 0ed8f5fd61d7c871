//! Layers that try to write outside the image root. berth either refuses
//! them (one-line error naming the entry, store unchanged) or — for
//! absolute paths and symlinks, which it may resolve inside the root —
//! accepts them with the entry landing inside the image. Either way
//! nothing appears on the host.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::harness::berth::unique;
use crate::harness::hostile::{self, Hostile};
use crate::harness::oci::sha256_digest;
use crate::harness::tree::find_names;
use crate::harness::{fixtures, Berth, Registry};

/// Everything about a host file that a write, chmod, chown or new hard
/// link through it would change.
#[derive(Debug, PartialEq, Eq)]
struct HostFile {
    ino: u64,
    nlink: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    sha256: String,
}

impl HostFile {
    fn of(path: &Path) -> HostFile {
        let md = fs::symlink_metadata(path).unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()));
        HostFile {
            ino: md.ino(),
            nlink: md.nlink(),
            mode: md.mode(),
            uid: md.uid(),
            gid: md.gid(),
            size: md.size(),
            mtime: (md.mtime(), md.mtime_nsec()),
            ctime: (md.ctime(), md.ctime_nsec()),
            sha256: sha256_digest(&fs::read(path).expect("read host file")),
        }
    }
}

/// Pulls the hostile image into a store that already holds an image, and
/// judges the outcome. `watched` are host files that must stay untouched.
fn check(berth: &Berth, h: Hostile, token: &str, watched: &[PathBuf]) {
    let reg = Registry::start();
    reg.push_image("base", "latest", &fixtures::tiny("base"));
    berth.pull(&reg.reference("base", "latest"), &[]).success();
    reg.push_image("hostile", "latest", &h.image);
    let reference = reg.reference("hostile", "latest");

    let before = berth.listing();
    let watched_before: Vec<HostFile> = watched.iter().map(|p| HostFile::of(p)).collect();
    let run = berth.pull(&reference, &[]);
    let accepted = run.status.success();
    eprintln!(
        "hostile {:?}: {}",
        h.names[0],
        if accepted { "accepted".to_string() } else { format!("refused: {}", run.stderr.trim()) }
    );

    for p in &h.host_paths {
        assert!(
            fs::symlink_metadata(p).is_err(),
            "ESCAPE: {} exists on the host after pulling a layer with {:?}",
            p.display(),
            h.names[0]
        );
    }
    for (p, b) in watched.iter().zip(&watched_before) {
        assert_eq!(&HostFile::of(p), b, "ESCAPE: host file {} was changed by the pull", p.display());
    }
    // Outside the store, the test's temp dir must hold nothing of the image.
    let leaked: Vec<PathBuf> =
        find_names(berth.dir(), token).into_iter().filter(|p| !p.starts_with(berth.root())).collect();
    assert!(leaked.is_empty(), "ESCAPE: files from the image outside the store: {leaked:?}");
    for dir in [Path::new("/"), Path::new("/tmp")] {
        let found: Vec<_> = fs::read_dir(dir)
            .expect("read host dir")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(token))
            .map(|e| e.path())
            .collect();
        assert!(found.is_empty(), "ESCAPE: {found:?} appeared on the host");
    }

    if accepted {
        assert!(
            !h.must_fail,
            "berth accepted a layer with {:?}, which cannot be unpacked safely; stderr: {}",
            h.names[0], run.stderr
        );
        let inside = h.inside.as_ref().expect("accepted cases say where the entry lands");
        let mnt = berth.mount(&reference);
        let landed = fs::symlink_metadata(mnt.join(inside)).map(|m| m.is_file());
        berth.unmount(&mnt);
        assert!(
            matches!(landed, Ok(true)),
            "berth accepted {:?} but /{inside} is not a file in the image ({landed:?})",
            h.names[0]
        );
    } else {
        let names: Vec<&str> = h.names.iter().map(String::as_str).collect();
        run.failure().mentions_any(&names);
        before.assert_unchanged(&berth.listing(), "refused hostile pull");
    }
}

#[test]
fn entry_with_dotdot_is_refused() {
    let t = unique();
    check(&Berth::new(), hostile::dotdot(&t), &t, &[]);
}

#[test]
fn entry_with_inner_dotdot_that_escapes_is_refused() {
    let t = unique();
    check(&Berth::new(), hostile::dotdot_inner(&t), &t, &[]);
}

#[test]
fn absolute_entry_stays_inside_the_root() {
    let t = unique();
    check(&Berth::new(), hostile::absolute(&t), &t, &[]);
}

#[test]
fn file_through_symlink_to_root_stays_inside() {
    let t = unique();
    check(&Berth::new(), hostile::symlink_root(&t), &t, &[]);
}

#[test]
fn file_through_symlink_to_root_dot_stays_inside() {
    let t = unique();
    check(&Berth::new(), hostile::symlink_root_dot(&t), &t, &[]);
}

#[test]
fn file_through_symlink_with_many_dotdots_stays_inside() {
    let t = unique();
    check(&Berth::new(), hostile::symlink_dotdot(&t), &t, &[]);
}

#[test]
fn file_through_symlink_to_host_dir_stays_inside() {
    let t = unique();
    let berth = Berth::new();
    let host_dir = berth.new_dir("host-dir");
    check(&berth, hostile::symlink_host_dir(&host_dir, &t), &t, &[]);
    let left: Vec<_> = fs::read_dir(&host_dir).expect("read host dir").flatten().map(|e| e.path()).collect();
    assert!(left.is_empty(), "ESCAPE: the host dir behind the symlink now holds {left:?}");
}

#[test]
fn hardlink_to_dotdot_etc_passwd_is_refused() {
    let t = unique();
    check(&Berth::new(), hostile::hardlink_dotdot(&t), &t, &[PathBuf::from("/etc/passwd")]);
}

#[test]
fn hardlink_to_absolute_host_file_is_refused() {
    let t = unique();
    let berth = Berth::new();
    let victim = berth.new_dir("host-dir").join("victim");
    fs::write(&victim, "host data\n").expect("write victim file");
    check(&berth, hostile::hardlink_absolute(&victim, &t), &t, std::slice::from_ref(&victim));
    assert_eq!(fs::metadata(&victim).expect("victim").nlink(), 1, "ESCAPE: the host file got a hard link");
}
