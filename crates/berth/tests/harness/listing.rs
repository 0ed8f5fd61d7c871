//! A store's recursive listing, for "the store is exactly as before" checks.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Path → "type size hash" for everything under a store; `locks` and `tmp`
/// at the top are left out while they are empty directories.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listing(pub BTreeMap<String, String>);

impl Listing {
    pub fn of(root: &Path) -> Listing {
        let mut map = BTreeMap::new();
        if root.exists() {
            list(root, root, &mut map);
        }
        for d in ["locks", "tmp"] {
            let p = root.join(d);
            if fs::read_dir(&p).map(|mut r| r.next().is_none()).unwrap_or(false) {
                map.remove(d);
            }
        }
        Listing(map)
    }

    /// Panics with the differing paths unless `after` equals `self`.
    pub fn assert_unchanged(&self, after: &Listing, what: &str) {
        let mut d = Vec::new();
        for (k, v) in &self.0 {
            match after.0.get(k) {
                None => d.push(format!("- {k} ({v}) was removed")),
                Some(w) if w != v => d.push(format!("~ {k}: {v} → {w}")),
                _ => {}
            }
        }
        for (k, v) in &after.0 {
            if !self.0.contains_key(k) {
                d.push(format!("+ {k} ({v}) was added"));
            }
        }
        assert!(d.is_empty(), "{what}: the store changed:\n{}", d.join("\n"));
    }
}

fn list(root: &Path, dir: &Path, map: &mut BTreeMap<String, String>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        let rel = p.strip_prefix(root).expect("under root").to_string_lossy().into_owned();
        let Ok(md) = fs::symlink_metadata(&p) else { continue };
        let desc = if md.is_dir() {
            list(root, &p, map);
            "dir".to_string()
        } else if md.is_file() {
            let data = fs::read(&p).unwrap_or_default();
            format!("file {} {}", md.size(), super::oci::sha256_digest(&data))
        } else if md.file_type().is_symlink() {
            format!("symlink -> {}", fs::read_link(&p).map(|t| t.display().to_string()).unwrap_or_default())
        } else {
            format!("special mode={:o} rdev={}", md.mode(), md.rdev())
        };
        map.insert(rel, desc);
    }
}
