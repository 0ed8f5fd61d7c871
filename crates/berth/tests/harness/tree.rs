//! Snapshot and diff of a directory tree, without following symlinks.
//!
//! Per path: type, permission bits (with setuid/setgid/sticky), uid, gid,
//! size and sha256 (regular files), symlink target, rdev (devices), mtime
//! in seconds (non-directories), xattrs (minus `trusted.overlay.*` and
//! `security.selinux`); plus the hardlink groups (paths sharing an inode).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// What we record about one path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: Option<u64>,
    pub sha256: Option<String>,
    pub target: Option<String>,
    pub rdev: Option<(u32, u32)>,
    pub mtime: Option<i64>,
    pub xattrs: BTreeMap<String, String>,
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:04o} {}:{}", self.kind, self.mode, self.uid, self.gid)?;
        if let Some(s) = self.size {
            write!(f, " size={s}")?;
        }
        if let Some(h) = &self.sha256 {
            write!(f, " sha256={}", &h[..12])?;
        }
        if let Some(t) = &self.target {
            write!(f, " -> {t:?}")?;
        }
        if let Some((ma, mi)) = self.rdev {
            write!(f, " rdev={ma},{mi}")?;
        }
        if let Some(m) = self.mtime {
            write!(f, " mtime={m}")?;
        }
        for (k, v) in &self.xattrs {
            write!(f, " {k}={v}")?;
        }
        Ok(())
    }
}

/// A whole tree: paths relative to the root (the root itself is ".").
#[derive(Clone, Debug, Default)]
pub struct Tree {
    pub nodes: BTreeMap<String, Node>,
    pub hardlinks: BTreeSet<BTreeSet<String>>,
}

impl Tree {
    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }
}

/// Records the tree under `root`.
pub fn snapshot(root: &Path) -> Tree {
    let mut tree = Tree::default();
    let mut inodes: HashMap<(u64, u64), BTreeSet<String>> = HashMap::new();
    walk(root, ".", &mut tree, &mut inodes);
    tree.hardlinks = inodes.into_values().filter(|g| g.len() > 1).collect();
    tree
}

fn walk(path: &Path, rel: &str, tree: &mut Tree, inodes: &mut HashMap<(u64, u64), BTreeSet<String>>) {
    let md = fs::symlink_metadata(path).unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()));
    let ft = md.file_type();
    let kind = if ft.is_dir() {
        "dir"
    } else if ft.is_file() {
        "file"
    } else if ft.is_symlink() {
        "symlink"
    } else if ft.is_char_device() {
        "char"
    } else if ft.is_block_device() {
        "block"
    } else if ft.is_fifo() {
        "fifo"
    } else {
        "socket"
    };
    let node = Node {
        kind,
        mode: md.mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
        size: ft.is_file().then(|| md.size()),
        sha256: ft.is_file().then(|| file_sha256(path)),
        target: ft.is_symlink().then(|| {
            let t = fs::read_link(path).unwrap_or_else(|e| panic!("readlink {}: {e}", path.display()));
            String::from_utf8_lossy(t.as_os_str().as_bytes()).into_owned()
        }),
        rdev: (ft.is_char_device() || ft.is_block_device()).then(|| {
            let dev = md.rdev() as rustix::fs::Dev;
            (rustix::fs::major(dev), rustix::fs::minor(dev))
        }),
        mtime: (!ft.is_dir()).then(|| md.mtime()),
        xattrs: xattrs(path),
    };
    if !ft.is_dir() {
        inodes.entry((md.dev(), md.ino())).or_default().insert(rel.to_string());
    }
    tree.nodes.insert(rel.to_string(), node);
    if ft.is_dir() {
        let mut names: Vec<_> = fs::read_dir(path)
            .unwrap_or_else(|e| panic!("readdir {}: {e}", path.display()))
            .map(|e| e.expect("readdir entry").file_name())
            .collect();
        names.sort();
        for name in names {
            let child_rel = if rel == "." {
                String::from_utf8_lossy(name.as_bytes()).into_owned()
            } else {
                format!("{rel}/{}", String::from_utf8_lossy(name.as_bytes()))
            };
            walk(&path.join(&name), &child_rel, tree, inodes);
        }
    }
}

/// sha256 (hex) of a file's content.
pub fn file_sha256(path: &Path) -> String {
    let mut f = fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    hex::encode(h.finalize())
}

/// xattrs of `path` (no-follow), values as text when printable, else hex.
pub fn xattrs(path: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut list = vec![0u8; 64 * 1024];
    let n = match rustix::fs::llistxattr(path, &mut list[..]) {
        Ok(n) => n,
        Err(rustix::io::Errno::NOTSUP) => return out,
        Err(e) => panic!("llistxattr {}: {e}", path.display()),
    };
    for name in list[..n].split(|b| *b == 0).filter(|s| !s.is_empty()) {
        let name = String::from_utf8_lossy(name).into_owned();
        if name.starts_with("trusted.overlay.") || name == "security.selinux" {
            continue;
        }
        let mut value = vec![0u8; 64 * 1024];
        let len = match rustix::fs::lgetxattr(path, name.as_str(), &mut value[..]) {
            Ok(len) => len,
            Err(rustix::io::Errno::NODATA) => continue,
            Err(e) => panic!("lgetxattr {} {name}: {e}", path.display()),
        };
        let value = &value[..len];
        let shown = match std::str::from_utf8(value) {
            Ok(s) if s.chars().all(|c| !c.is_control()) => format!("{s:?}"),
            _ => format!("0x{}", hex::encode(value)),
        };
        out.insert(name, shown);
    }
    out
}

/// Differences between two trees, one line each; empty when equal.
pub fn diff(actual: &Tree, expected: &Tree) -> Vec<String> {
    let mut out = Vec::new();
    let paths: BTreeSet<&String> = actual.nodes.keys().chain(expected.nodes.keys()).collect();
    for p in paths {
        match (actual.nodes.get(p), expected.nodes.get(p)) {
            (Some(a), Some(e)) if a != e => out.push(format!("~ {p}\n    got:  {a}\n    want: {e}")),
            (Some(a), None) => out.push(format!("+ {p} (unexpected): {a}")),
            (None, Some(e)) => out.push(format!("- {p} (missing): {e}")),
            _ => {}
        }
    }
    for g in actual.hardlinks.difference(&expected.hardlinks) {
        out.push(format!("+ hardlink group (unexpected): {g:?}"));
    }
    for g in expected.hardlinks.difference(&actual.hardlinks) {
        out.push(format!("- hardlink group (missing): {g:?}"));
    }
    out
}

/// Panics with a readable diff unless the trees under `actual` and
/// `expected` are the same.
pub fn assert_same_tree(actual: &Path, expected: &Path, what: &str) {
    let d = diff(&snapshot(actual), &snapshot(expected));
    assert!(
        d.is_empty(),
        "{what}: tree at {} differs from {} in {} ways:\n{}",
        actual.display(),
        expected.display(),
        d.len(),
        d.join("\n")
    );
}

/// All paths (relative, as strings) under `root` whose file name contains
/// `needle`, without following symlinks; for escape hunting.
pub fn find_names(root: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if e.file_name().to_string_lossy().contains(needle) {
                found.push(p.clone());
            }
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(p);
            }
        }
    }
    found
}
