//! Garbage collection: image records no name points at, then layers and
//! blobs no remaining record uses, then stale staging under `tmp/`. What
//! a running container uses stays: see [`crate::runs`].

use crate::{Store, StoreError};
use berth_oci::Digest;
use std::collections::HashSet;

/// What a collection removed.
#[derive(Debug, Default, serde::Serialize)]
pub struct GcStats {
    pub images: Vec<String>,
    pub layers: usize,
    pub blobs: usize,
    pub tmp: usize,
    pub bytes: u64,
}

fn dir_size(p: &std::path::Path) -> u64 {
    let Ok(md) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    if !md.is_dir() {
        return md.len();
    }
    std::fs::read_dir(p).map(|rd| rd.flatten().map(|e| dir_size(&e.path())).sum()).unwrap_or(0)
}

impl Store {
    /// `berth gc`: takes the gc lock, so no pull is half-way, and sweeps.
    pub fn gc(&self) -> Result<GcStats, StoreError> {
        let _g = self.lock_exclusive("gc")?;
        let live = self.live_runs();
        let mut stats = self.sweep_keeping(&live)?;
        let tmp = self.tmp_dir();
        if let Ok(rd) = std::fs::read_dir(&tmp) {
            for e in rd.flatten() {
                if live.contains(&e.path()) {
                    continue;
                }
                stats.bytes += dir_size(&e.path());
                let r = if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    std::fs::remove_dir_all(e.path())
                } else {
                    std::fs::remove_file(e.path())
                };
                r.map_err(|err| StoreError::io(format!("removing {}", e.path().display()), err))?;
                stats.tmp += 1;
            }
        }
        Ok(stats)
    }

    /// Removes unreferenced records, layers and blobs. The caller holds the
    /// gc lock exclusively.
    pub(crate) fn sweep(&self) -> Result<GcStats, StoreError> {
        self.sweep_keeping(&self.live_runs())
    }

    /// [`Store::sweep`], keeping the layers of the runs in `live` (their
    /// scratch directories).
    fn sweep_keeping(&self, live: &[std::path::PathBuf]) -> Result<GcStats, StoreError> {
        let mut stats = GcStats::default();
        let refs = self.load_refs()?;
        // Images with a name, or with a machine built on them, are live.
        let used: Vec<Digest> = self.machines()?.into_iter().filter_map(|m| m.record.image).collect();
        let named: HashSet<&Digest> = refs.values().chain(used.iter()).collect();
        // Layers a running container has mounted stay, named or not.
        let mut keep_layers = crate::runs::layers_of(live);
        let mut keep_blobs = HashSet::new();
        for rec in self.images()? {
            if !named.contains(&rec.id) {
                std::fs::remove_file(self.image_path(&rec.id))
                    .map_err(|e| StoreError::io("removing image record", e))?;
                stats.images.push(rec.id.to_string());
                continue;
            }
            keep_blobs.insert(rec.id.hex().to_string());
            keep_blobs.insert(rec.digest.hex().to_string());
            if let Some(i) = &rec.index_digest {
                keep_blobs.insert(i.hex().to_string());
            }
            for l in &rec.layers {
                keep_blobs.insert(l.digest.hex().to_string());
                keep_layers.insert(l.diff_id.hex().to_string());
            }
        }
        for (dir, keep, count) in [
            (self.root().join("layers"), &keep_layers, &mut stats.layers),
            (self.root().join("blobs/sha256"), &keep_blobs, &mut stats.blobs),
        ] {
            let rd = std::fs::read_dir(&dir).map_err(|e| StoreError::io(format!("listing {}", dir.display()), e))?;
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if keep.contains(&name) {
                    continue;
                }
                let p = e.path();
                stats.bytes += dir_size(&p);
                let r = if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
                r.map_err(|err| StoreError::io(format!("removing {}", p.display()), err))?;
                *count += 1;
            }
        }
        Ok(stats)
    }
}
