//! Blobs by digest: atomic writes of verified bytes, reads that re-verify.
//! Every rename that publishes something in the store is followed by an
//! fsync of the directory it lands in, so a power cut cannot roll back a
//! blob, a layer, an image record or `refs.json` that was reported done.

use crate::{Store, StoreError};
use berth_oci::Digest;
use std::io::Write;
use std::path::Path;

/// Writes `data` to `path` atomically: a temporary name in the same
/// directory, fsync, rename.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.{}.{}", std::process::id(), unique()));
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res.map_err(|e| StoreError::io(format!("writing {}", path.display()), e))
}

/// Flushes a directory's entries (renames into it) to disk.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(dir, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
    rustix::fs::fsync(&fd)?;
    Ok(())
}

/// Flushes the directory holding `path`.
pub fn sync_parent(path: &Path) -> std::io::Result<()> {
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// A process-unique counter for temporary names.
pub fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    (N.fetch_add(1, Ordering::Relaxed) << 32) ^ t
}

impl Store {
    /// Stores `data` under its digest, after checking it is `want`.
    pub fn put_blob(&self, want: &Digest, data: &[u8]) -> Result<(), StoreError> {
        let got = Digest::of(data);
        if &got != want {
            return Err(StoreError::DigestMismatch { digest: want.to_string(), got: got.to_string() });
        }
        let path = self.blob_path(want);
        if path.exists() {
            return Ok(());
        }
        write_atomic(&path, data)
    }

    /// Moves a verified, synced file to blob `digest` unless the store has
    /// it already (then `staged` is left for its staging dir to remove).
    pub(crate) fn adopt_blob(&self, staged: &Path, digest: &Digest) -> Result<(), StoreError> {
        let dest = self.blob_path(digest);
        if dest.exists() {
            return Ok(());
        }
        std::fs::rename(staged, &dest)
            .and_then(|()| sync_parent(&dest))
            .map_err(|e| StoreError::io(format!("storing blob {digest}"), e))
    }

    /// Reads a small blob (manifest, config) and re-verifies it.
    pub fn read_blob(&self, d: &Digest) -> Result<Vec<u8>, StoreError> {
        let path = self.blob_path(d);
        let data = std::fs::read(&path).map_err(|e| StoreError::io(format!("reading blob {d}"), e))?;
        let got = Digest::of(&data);
        if &got != d {
            return Err(StoreError::DigestMismatch { digest: d.to_string(), got: got.to_string() });
        }
        Ok(data)
    }

    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).exists()
    }
}
