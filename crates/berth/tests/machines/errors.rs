//! Bad input to `import`: each a one-line error, a non-zero exit, the
//! store exactly as before, nothing written outside it, and nothing left
//! mounted or loop-attached. (Also: a killed import, and bootstrap onto a
//! taken machine name.)

use std::fs;
use std::path::Path;

use super::disks::{self, Part, ESP, LINUX_DATA};
use super::{assert_nothing_attached, compress_with, rich_tar, rich_tree};
use crate::harness::tarball::{tar, Entry};
use crate::harness::tree::find_names;
use crate::harness::{Berth, Run};

/// A store that already holds one imported image (so "unchanged" covers
/// a real store, not a missing one).
fn store_with_an_image() -> Berth {
    let berth = Berth::new();
    let path = berth.dir().join("good.tar.gz");
    fs::write(&path, compress_with("gzip", &rich_tar())).unwrap();
    berth.run(["import".as_ref(), path.as_os_str(), "good".as_ref()]).success();
    fs::remove_file(&path).unwrap();
    berth
}

/// `berth import ARGS…` must fail with a one-line error mentioning one of
/// `needles`, and leave the store and the host as they were.
fn refused(berth: &Berth, args: &[&std::ffi::OsStr], needles: &[&str], what: &str) -> Run {
    let before = super::listing(berth);
    let mut full = vec![std::ffi::OsStr::new("import")];
    full.extend_from_slice(args);
    let mut run = berth.run(full).failure();
    if !needles.is_empty() {
        run = run.mentions_any(needles);
    }
    before.assert_unchanged(&super::listing(berth), what);
    assert_nothing_attached(berth, what);
    super::assert_no_staging(berth, what);
    run
}

fn write(berth: &Berth, name: &str, data: &[u8]) -> std::path::PathBuf {
    let p = berth.dir().join(name);
    fs::write(&p, data).unwrap();
    p
}

#[test]
fn empty_and_garbage_files_hold_no_files() {
    let berth = store_with_an_image();
    let empty = write(&berth, "empty.tar", b"");
    refused(&berth, &[empty.as_os_str()], &["holds no files"], "empty file");
    let garbage: Vec<u8> = (0..64 * 1024u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let junk = write(&berth, "junk.bin", &garbage);
    refused(&berth, &[junk.as_os_str()], &["holds no files", "junk.bin"], "garbage file");
    // Text is garbage too.
    let text = write(&berth, "notes.txt", b"just some text, no archive here\n");
    refused(&berth, &[text.as_os_str()], &["holds no files", "notes.txt"], "a text file");
}

#[test]
fn unknown_format_and_missing_source() {
    let berth = store_with_an_image();
    let good = write(&berth, "ok.tar", &rich_tar());
    refused(&berth, &[good.as_os_str(), "x".as_ref(), "--format".as_ref(), "zip".as_ref()], &["zip"], "--format zip");
    let missing = berth.dir().join("no-such-file.tar.gz");
    refused(&berth, &[missing.as_os_str()], &["no-such-file"], "missing file");
    // A format that does not match the content.
    refused(
        &berth,
        &[good.as_os_str(), "x".as_ref(), "--format".as_ref(), "qcow2".as_ref()],
        &[],
        "tar forced as qcow2",
    );
    refused(
        &berth,
        &[good.as_os_str(), "x".as_ref(), "--format".as_ref(), "docker-archive".as_ref()],
        &[],
        "root tar forced as docker-archive",
    );
}

#[test]
fn strip_prefix_naming_a_missing_directory() {
    let berth = store_with_an_image();
    let good = write(&berth, "ok.tar.xz", &compress_with("xz", &rich_tar()));
    refused(
        &berth,
        &[good.as_os_str(), "x".as_ref(), "--strip-prefix".as_ref(), "rootfs/".as_ref()],
        &["rootfs"],
        "--strip-prefix rootfs/ (absent)",
    );
    // Naming a file, not a directory.
    refused(
        &berth,
        &[good.as_os_str(), "x".as_ref(), "--strip-prefix".as_ref(), "etc/passwd".as_ref()],
        &["etc/passwd"],
        "--strip-prefix naming a file",
    );
}

#[test]
fn tarball_with_dotdot_entries_is_refused_and_writes_nothing_outside() {
    let berth = store_with_an_image();
    let marker = format!("escape-marker-{}", crate::harness::berth::unique());
    for (i, bad) in
        [format!("../{marker}"), format!("etc/../../{marker}"), format!("./../../../{marker}")].iter().enumerate()
    {
        let entries = [Entry::dir("etc"), Entry::file("etc/ok", "fine\n"), Entry::file(bad.as_str(), "escaped!\n")];
        let data = compress_with("gzip", &tar(&entries));
        let file = write(&berth, &format!("hostile{i}.tar.gz"), &data);
        refused(&berth, &[file.as_os_str(), "hostile".as_ref()], &["..", &marker], &format!("tar entry {bad}"));
    }
    let found = find_names(berth.dir(), &marker);
    assert!(found.is_empty(), "an entry escaped: {found:?}");
    assert!(!Path::new("/").join(&marker).exists() && !Path::new("/tmp").join(&marker).exists(), "escaped to the host");
}

#[test]
fn tarball_writing_through_a_symlink_stays_inside() {
    let berth = store_with_an_image();
    let outside = berth.new_dir("outside");
    let marker = format!("through-link-{}", crate::harness::berth::unique());
    let entries = [
        Entry::dir("etc"),
        Entry::symlink("out", outside.to_str().unwrap()),
        Entry::file(format!("out/{marker}"), "escaped through a symlink\n"),
        Entry::symlink("up", "../../../../../../../.."),
        Entry::file(format!("up/tmp/{marker}"), "escaped through ..\n"),
    ];
    let file = write(&berth, "links.tar", &tar(&entries));
    let before = super::listing(&berth);
    let run = berth.run(["import".as_ref(), file.as_os_str(), "links".as_ref()]);
    if run.status.success() {
        // Resolved inside the root: the files are in the image, not outside.
        let mnt = berth.mount("links");
        let inside = find_names(&mnt, &marker);
        berth.unmount(&mnt);
        assert!(!inside.is_empty(), "import succeeded but the entries went nowhere visible: {run:?}");
    } else {
        let _ = run.failure();
        before.assert_unchanged(&super::listing(&berth), "refused symlink escape");
    }
    assert!(
        find_names(&outside, &marker).is_empty(),
        "an entry was written through the symlink to {}",
        outside.display()
    );
    assert!(!Path::new("/tmp").join(&marker).exists(), "an entry escaped to /tmp");
    assert_nothing_attached(&berth, "symlink tar");
}

#[test]
fn a_killed_import_leaves_no_image_and_gc_sweeps_its_staging() {
    use std::io::Write;
    let berth = store_with_an_image();
    let before = super::listing(&berth);
    // Feed half of a tarball on stdin, then kill berth.
    let data = rich_tar();
    let mut cmd = berth.command(["import", "-", "half"]);
    cmd.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&data[..data.len() / 2]).unwrap();
    stdin.flush().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    child.kill().unwrap();
    child.wait().unwrap();
    drop(stdin);
    let names = super::image_names(&berth);
    assert_eq!(names, vec!["localhost/good:latest".to_string()], "a killed import left an image");
    berth.run(["gc"]).success();
    before.assert_unchanged(&super::listing(&berth), "after a killed import and gc");
    assert_nothing_attached(&berth, "killed import");
}

#[test]
fn truncated_and_corrupt_compressed_streams() {
    let berth = store_with_an_image();
    for tool in ["gzip", "xz", "zstd", "bzip2"] {
        let data = compress_with(tool, &rich_tar());
        let cut = write(&berth, &format!("cut.tar.{tool}"), &data[..data.len() / 2]);
        refused(&berth, &[cut.as_os_str(), "cut".as_ref()], &[], &format!("{tool} stream cut in half"));
    }
    // A gzip stream with its middle flipped.
    let mut data = compress_with("gzip", &rich_tar());
    let mid = data.len() / 2;
    for b in &mut data[mid..mid + 64] {
        *b ^= 0x5a;
    }
    let bad = write(&berth, "corrupt.tar.gz", &data);
    refused(&berth, &[bad.as_os_str(), "corrupt".as_ref()], &[], "corrupt gzip stream");
}

#[test]
fn disks_without_a_linux_root_or_filesystem() {
    let berth = store_with_an_image();
    // GPT with only an ESP.
    let esp_only =
        disks::partitioned(&berth.dir().join("esp-only.img"), "gpt", &[Part { kind: ESP, size_mib: 8, content: None }]);
    // The errors name the user's file, not berth's staging copy of it.
    refused(&berth, &[esp_only.as_os_str()], &["linux", "root"], "GPT without a Linux partition")
        .mentions_any(&["esp-only.img"]);
    // MBR with only a FAT partition.
    let fat =
        disks::partitioned(&berth.dir().join("fat-only.img"), "dos", &[Part { kind: "c", size_mib: 8, content: None }]);
    refused(&berth, &[fat.as_os_str()], &["linux", "0x83"], "MBR without a Linux partition")
        .mentions_any(&["fat-only.img"]);
    // A Linux partition that holds no filesystem.
    let blank = disks::partitioned(
        &berth.dir().join("blank.img"),
        "gpt",
        &[Part { kind: LINUX_DATA, size_mib: 8, content: None }],
    );
    refused(&berth, &[blank.as_os_str()], &["filesystem"], "Linux partition without a filesystem")
        .mentions_any(&["blank.img"]);
    // A truncated qcow2.
    let tree = rich_tree(&berth, "t");
    let root = disks::ext4(&tree, &berth.dir().join("r.ext4"), 16);
    let qcow = disks::convert(&root, "qcow2", &berth.dir().join("r.qcow2"));
    let data = fs::read(&qcow).unwrap();
    let cut = write(&berth, "cut.qcow2", &data[..data.len() / 3]);
    refused(&berth, &[cut.as_os_str(), "cut".as_ref()], &[], "truncated qcow2");
}

#[test]
fn bad_image_names_and_a_taken_machine_name_are_refused() {
    let berth = store_with_an_image();
    let good = write(&berth, "ok.tar", &rich_tar());
    refused(&berth, &[good.as_os_str(), "Bad Name!".as_ref()], &["Bad Name!"], "invalid image name");
    refused(&berth, &[good.as_os_str(), "../up".as_ref()], &["../up"], "image name with ..");
    berth.run(["create", "good", "taken"]).success();
    let before = super::listing(&berth);
    berth.run(["bootstrap", "debian", "bookworm", "taken", "--variant", "minbase"]).failure().mentions_any(&["taken"]);
    before.assert_unchanged(&super::listing(&berth), "bootstrap onto a taken machine name");
}
