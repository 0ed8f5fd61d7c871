//! Shared test harness: a local registry, OCI image builder and pusher,
//! fixtures (good and hostile), the umoci reference unpacker, tree
//! comparison, and a runner for the real `berth` binary.

#![allow(dead_code, unused_imports)]

pub mod aptrepo;
pub mod berth;
pub mod container;
pub mod debootstrap;
pub mod fixtures;
pub mod hostile;
pub mod listing;
pub mod mockhttp;
pub mod mounts;
pub mod oci;
pub mod probe;
pub mod push;
pub mod registry;
mod selfcheck;
pub mod tarball;
pub mod tmux;
pub mod tree;
pub mod umoci;

pub use self::berth::{Berth, Listing, Run};
pub use self::oci::{Compression, Image};
pub use self::registry::Registry;

/// These tests mount, mknod and chown: they need real root.
pub fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "berth's integration tests must run as root (they mount overlays and create device nodes)"
    );
}
