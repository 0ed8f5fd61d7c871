//! The store's error type: one variant per thing a user can act on.

use berth_oci::registry::RegistryError;
use berth_oci::ManifestError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("layer {layer}: entry {entry:?}: {why}")]
    Unsafe { layer: String, entry: String, why: String },
    #[error("layer {layer}: {what}")]
    Layer { layer: String, what: String },
    #[error("blob {digest} failed verification: expected {digest}, got {got}; the registry served corrupt data")]
    DigestMismatch { digest: String, got: String },
    #[error("layer {diff_id}: uncompressed content hashes to {got}, not the config's diff_id; the image is corrupt")]
    DiffIdMismatch { diff_id: String, got: String },
    #[error("blob {digest} truncated: got {got} of {want} bytes")]
    Truncated { digest: String, got: u64, want: u64 },
    #[error("layer {layer} unpacks to more than {limit} bytes: refusing it as a decompression bomb (raise --max-layer-size to allow it)")]
    TooLarge { layer: String, limit: u64 },
    #[error("malformed image config {digest}: {why}")]
    Config { digest: String, why: String },
    #[error("image {0:?} not found: see `berth images`")]
    UnknownImage(String),
    #[error("image name {name:?} is ambiguous: it matches {matches}")]
    Ambiguous { name: String, matches: String },
    #[error("image {id} has several names ({names}): remove them one by one or pass --force")]
    MultipleNames { id: String, names: String },
    #[error("invalid name {0:?}: {1}")]
    BadName(String, String),
    #[error("store record {path} is corrupt: {why}")]
    Corrupt { path: String, why: String },
    #[error("{0}")]
    Mount(String),
    #[error("{0}")]
    Import(String),
    #[error("image {image} is used by machine(s) {machines}: remove them first (berth rm)")]
    ImageInUse { image: String, machines: String },
    #[error("machine {0:?} already exists: run it with `berth run -M {0}`, or pick another name")]
    MachineExists(String),
    #[error("machine {0:?} not found: see `berth machines`")]
    UnknownMachine(String),
    #[error("machine {0:?} is running: stop it first")]
    MachineRunning(String),
}

impl StoreError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        StoreError::Io { what: what.into(), source }
    }
}
