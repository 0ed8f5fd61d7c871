//! berth's image side that needs no store: image references, digests,
//! platforms, manifest parsing and the registry v2 client (auth, token cache,
//! retries, mirrors). Nothing here touches the store or mounts anything.

// Errors carry the names and digests a user needs; they are built once per
// failed command, so their size costs nothing that matters.
#![allow(clippy::result_large_err)]

pub mod digest;
pub mod manifest;
pub mod platform;
pub mod reference;
pub mod registry;

pub use digest::{Digest, DigestError};
pub use manifest::{Fetched, LayerCompression, ManifestError};
pub use platform::Platform;
pub use reference::{Reference, ReferenceError};
