//! berth's content-addressed store: verified blobs, unpacked layers shared
//! by every image that uses them, image records and the names that point at
//! them. Nothing here knows about namespaces.
//!
//! ```text
//! ROOT/                      /var/lib/berth, --root DIR or BERTH_ROOT
//! ├── blobs/sha256/HEX       manifests, configs and compressed layers,
//! │                          each verified against HEX before it lands
//! ├── layers/HEX/            one unpacked layer per diff_id HEX, in
//! │                          overlayfs form: whiteouts are 0:0 character
//! │                          devices, opaque dirs carry user.overlay.opaque=y
//! │                          (mounted with userxattr; see format.rs)
//! ├── images/HEX.json        image record, HEX = config digest (the image ID)
//! ├── refs.json              { "registry/repo:tag": "sha256:CONFIG", … }
//! ├── machines/NAME/          writable machines (see machines.rs)
//! ├── tmp/                   staging: everything is built here, then renamed
//! ├── overlay-format         `user` once layers and uppers use user.overlay.*
//! └── locks/
//!     ├── gc                 shared by pulls, exclusive for gc and rmi
//!     └── refs               exclusive around every change of refs.json
//! ```
//!
//! **Atomicity.** Blobs and layers are written under `tmp/` and renamed into
//! place only once their digests check out (`renameat2(RENAME_NOREPLACE)`
//! for layers, so of two concurrent pulls one wins and the other drops its
//! copy). An image record is written before its name is added to
//! `refs.json`, and `refs.json` is replaced by rename: an image is visible
//! whole or not at all, whenever the process dies.
//!
//! **Permissions.** The root is 0700 and owned by root: layers hold the
//! setuid files and device nodes of every image, machines the files their
//! containers wrote, so no other local user may reach anything below it.
//! A store made looser (by an older berth, or by hand) is tightened when
//! it is next opened. Containers never need a path into the store: berth
//! opens what they use on the host side and hands it over as mounts.
//!
//! **Garbage collection.** `gc` takes `locks/gc` exclusively (so no pull is
//! half-way), drops image records no name points at, then every layer and
//! blob no remaining record uses, then everything under `tmp/`.

// Errors carry the names and digests a user needs; they are built once per
// failed command, so their size costs nothing that matters.
#![allow(clippy::result_large_err)]

pub mod blobs;
pub mod bootstrap;
pub mod commit;
pub mod error;
pub mod export;
pub mod format;
pub mod fsck;
pub mod gc;
pub mod images;
pub mod import;
pub mod layerwriter;
pub mod lock;
pub mod machineroot;
pub mod machines;
pub mod mount;
mod openat2;
pub mod pull;
pub mod runs;
pub mod unpack;

pub use error::StoreError;
pub use images::{ImageRecord, LayerRecord};

use std::path::{Path, PathBuf};

/// The default store location.
pub const DEFAULT_ROOT: &str = "/var/lib/berth";

/// A store rooted at a directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens (creating its skeleton if needed) the store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store, StoreError> {
        let root = root.into();
        for d in ["blobs/sha256", "layers", "images", "tmp", "locks"] {
            let p = root.join(d);
            std::fs::create_dir_all(&p).map_err(|e| StoreError::io(format!("creating {}", p.display()), e))?;
        }
        let root =
            std::fs::canonicalize(&root).map_err(|e| StoreError::io(format!("resolving {}", root.display()), e))?;
        tighten(&root)?;
        let store = Store { root };
        format::upgrade(&store)?;
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob_path(&self, d: &berth_oci::Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.hex())
    }

    pub fn layer_path(&self, diff_id: &berth_oci::Digest) -> PathBuf {
        self.root.join("layers").join(diff_id.hex())
    }

    pub fn image_path(&self, id: &berth_oci::Digest) -> PathBuf {
        self.root.join("images").join(format!("{}.json", id.hex()))
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub fn lock_path(&self, name: &str) -> PathBuf {
        self.root.join("locks").join(name)
    }
}

/// Makes `root` 0700 if it grants anything to group or others.
fn tighten(root: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(root).map_err(|e| StoreError::io(format!("reading {}", root.display()), e))?;
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| StoreError::io(format!("making {} private (0700)", root.display()), e))?;
    }
    Ok(())
}
