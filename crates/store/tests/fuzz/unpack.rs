//! Layer tarballs through the unpacker (`unpack::unpack_layer`): a
//! registry's or an archive's bytes, unpacked as root. Whatever they
//! hold, the unpacker returns `Ok` or `Err`, stays within its heap
//! budget, and writes nothing outside the layer's root.

use crate::mutate::{apply, edits};
use crate::support::{bounded, config};
use crate::tarball::{build, fix_checksum, header_offsets, member, Member};
use berth_store::unpack::{unpack_layer, UnpackOptions};
use berth_store::StoreError;
use proptest::prelude::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The unpacker's own buffers (a 256 KiB copy buffer, PAX headers of up
/// to 8 MiB, kept twice) and the tar crate's, with room to spare.
const UNPACK_BUDGET: usize = 64 << 20;

/// A temp dir holding the layer root `root/` and, beside it, `outside/`
/// with a file the layer must not touch.
struct Scene {
    dir: tempfile::TempDir,
}

impl Scene {
    fn new() -> Scene {
        let dir = tempfile::tempdir().expect("a temp dir");
        std::fs::create_dir(dir.path().join("root")).expect("mkdir root");
        std::fs::create_dir_all(dir.path().join("outside/sub")).expect("mkdir outside");
        std::fs::write(dir.path().join("outside/canary"), b"canary").expect("writing the canary");
        Scene { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// Everything in the temp dir but the root: names, kinds, modes,
    /// owners, link counts, sizes, contents and link targets.
    fn outside(&self) -> Vec<String> {
        fn walk(p: &Path, skip: &Path, out: &mut Vec<String>) {
            let Ok(rd) = std::fs::read_dir(p) else { return };
            let mut entries: Vec<_> = rd.flatten().map(|e| e.path()).collect();
            entries.sort();
            for e in entries {
                if e == skip {
                    continue;
                }
                let Ok(md) = std::fs::symlink_metadata(&e) else { continue };
                let extra = if md.is_file() {
                    format!("{:?}", std::fs::read(&e).ok())
                } else if md.file_type().is_symlink() {
                    format!("{:?}", std::fs::read_link(&e).ok())
                } else {
                    String::new()
                };
                out.push(format!(
                    "{} {:o} {}:{} n{} {} {extra}",
                    e.display(),
                    md.mode(),
                    md.uid(),
                    md.gid(),
                    md.nlink(),
                    md.len()
                ));
                if md.is_dir() {
                    walk(&e, skip, out);
                }
            }
        }
        let mut v = vec![format!("{:o}", std::fs::symlink_metadata(self.dir.path()).map(|m| m.mode()).unwrap_or(0))];
        walk(self.dir.path(), &self.root(), &mut v);
        v
    }

    fn outside_path(&self) -> String {
        self.dir.path().join("outside").display().to_string()
    }
}

impl Drop for Scene {
    /// Opens up every directory a layer made unreadable, so that the temp
    /// dir can go when the tests run without root.
    fn drop(&mut self) {
        fn open_up(p: &Path) {
            let Ok(md) = std::fs::symlink_metadata(p) else { return };
            if md.is_dir() {
                let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700));
                for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
                    open_up(&e.path());
                }
            }
        }
        open_up(&self.root());
    }
}

/// Unpacks `tar` into a fresh scene with `max_bytes` as the size bound.
fn check(tar: &[u8], max_bytes: u64) -> Result<(), StoreError> {
    check_in(|_| tar.to_vec(), max_bytes)
}

/// Unpacks the archive `make` builds for a fresh scene, given the
/// absolute path of its `outside/`.
fn check_in(make: impl FnOnce(&str) -> Vec<u8>, max_bytes: u64) -> Result<(), StoreError> {
    let scene = Scene::new();
    let tar = make(&scene.outside_path());
    let tar = &tar[..];
    let before = scene.outside();
    let opts = UnpackOptions { layer: "fuzz".into(), has_lowers: false, max_bytes };
    let no_lowers = || Ok(Vec::new());
    let r = bounded(UNPACK_BUDGET, || unpack_layer(tar, &scene.root(), &opts, &no_lowers));
    assert_eq!(scene.outside(), before, "the layer changed something outside its root");
    assert!(std::fs::symlink_metadata(scene.root()).is_ok_and(|m| m.is_dir()), "the root is gone");
    if let Err(e) = &r {
        let _ = e.to_string();
    }
    r.map(|_| ())
}

fn max_bytes() -> impl Strategy<Value = u64> {
    prop_oneof![8 => Just(1u64 << 20), 1 => Just(0), 1 => Just(1000)]
}

/// Members whose names and targets may refer to the scene's `outside/`
/// by its absolute path, which the strategy only learns at run time: the
/// placeholder `@OUT@` stands for it.
fn members() -> impl Strategy<Value = Vec<Member>> {
    prop::collection::vec(member("@OUT@"), 0..10)
}

fn place(members: &[Member], outside: &str) -> Vec<Member> {
    let fill = |b: &[u8]| -> Vec<u8> {
        match b.strip_prefix(b"@OUT@") {
            Some(rest) => [outside.as_bytes(), rest].concat(),
            None => b.to_vec(),
        }
    };
    members.iter().map(|m| Member { name: fill(&m.name), link: fill(&m.link), ..m.clone() }).collect()
}

proptest! {
    #![proptest_config(config(384))]

    #[test]
    fn any_bytes(tar in prop::collection::vec(any::<u8>(), 0..2048), max in max_bytes()) {
        let _ = check(&tar, max);
    }

    /// Random blocks with valid checksums: the tar crate reads them as
    /// headers of every kind.
    #[test]
    fn blocks_with_valid_checksums(blocks in prop::collection::vec(prop::collection::vec(any::<u8>(), 512), 1..5), max in max_bytes()) {
        let mut tar: Vec<u8> = blocks.concat();
        for at in (0..tar.len()).step_by(512) {
            fix_checksum(&mut tar, at);
        }
        let _ = check(&tar, max);
    }

    #[test]
    fn hostile_members(ms in members(), max in max_bytes()) {
        let _ = check_in(|out| build(&place(&ms, out)), max);
    }

    /// Half the members GNU sparse files, whose size is the file they
    /// expand to (up to 2^64), not the bytes they carry.
    #[test]
    fn sparse_members(ms in prop::collection::vec((member("@OUT@"), any::<bool>()), 0..8), max in max_bytes()) {
        let ms: Vec<Member> =
            ms.into_iter().map(|(m, s)| if s { Member { kind: b'S', size: None, ..m } } else { m }).collect();
        let _ = check_in(|out| build(&place(&ms, out)), max);
    }

    /// A well-formed archive with header bytes changed (checksums fixed,
    /// so the change is read) and then any bytes edited.
    #[test]
    fn mutated_archives(
        ms in members(),
        header_edits in prop::collection::vec((any::<usize>(), 0usize..512, any::<u8>()), 0..6),
        byte_edits in edits(3),
        max in max_bytes(),
    ) {
        let mutate = |out: &str| {
            let mut tar = build(&place(&ms, out));
            let headers = header_offsets(&tar);
            if !headers.is_empty() {
                for (h, off, b) in header_edits {
                    let at = headers[h % headers.len()];
                    tar[at + off] = b;
                    fix_checksum(&mut tar, at);
                }
            }
            apply(&mut tar, &byte_edits);
            tar
        };
        let _ = check_in(mutate, max);
    }
}

fn file(name: &str, size: Option<u64>, data: &[u8]) -> Member {
    Member {
        kind: b'0',
        name: name.as_bytes().to_vec(),
        link: Vec::new(),
        size,
        data: data.to_vec(),
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime: 0,
        dev: (0, 0),
        pax: Vec::new(),
        sparse_at: 0,
    }
}

#[test]
fn a_valid_archive_unpacks() {
    let scene = Scene::new();
    let mut link = file("l", None, b"");
    link.kind = b'2';
    link.link = b"a".to_vec();
    let tar = build(&[file("a", None, b"hello"), link]);
    let no_lowers = || Ok(Vec::new());
    let opts = UnpackOptions { layer: "t".into(), has_lowers: false, max_bytes: 1 << 20 };
    let stats = unpack_layer(&tar[..], &scene.root(), &opts, &no_lowers).unwrap();
    assert_eq!(stats.entries, 2);
    assert_eq!(std::fs::read(scene.root().join("a")).unwrap(), b"hello");
}

#[test]
fn sparse_sizes_adding_past_u64_max_hit_the_bound() {
    // Found by `sparse_members`: the running total of entry sizes
    // overflowed (a panic in debug builds). A GNU sparse entry's size is
    // the file it expands to, not the bytes it carries, so in a release
    // build the total wrapped to a small number, passed the bound, and
    // the unpacker went on to write a file of nearly 2^64 zero bytes.
    let sparse = |name: &str, at: u64| Member { kind: b'S', sparse_at: at, ..file(name, None, b"data") };
    let tar = build(&[sparse("a", 5000), sparse("b", u64::MAX - 1024)]);
    let e = check(&tar, 1 << 20).unwrap_err();
    assert!(matches!(e, StoreError::TooLarge { .. }), "{e}");
}
