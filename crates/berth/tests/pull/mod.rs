//! `berth pull`: results compared with umoci, registry auth, bad input,
//! hostile layers, concurrency and interrupted pulls.

mod auth;
mod concurrent;
mod credentials;
mod errors;
mod fixtures;
mod hostile;
mod private;
mod run_pull;
mod sparse;

use crate::harness::tree::{diff, snapshot};
use crate::harness::{umoci, Berth, Image};

/// Pulls `reference` (with `extra` flags) into a fresh store, mounts it,
/// and asserts the tree equals `umoci unpack` of `expected`; unmounts and
/// checks the mount is gone. Returns the store for further checks.
pub fn assert_pull_matches_umoci(reference: &str, extra: &[&str], expected: &Image) -> Berth {
    let berth = Berth::new();
    berth.pull(reference, extra).success();
    let oracle = umoci::unpack(expected);
    let mnt = berth.mount(reference);
    let d = diff(&snapshot(&mnt), &snapshot(&oracle.rootfs));
    berth.unmount(&mnt);
    assert!(
        d.is_empty(),
        "berth's mount of {reference} differs from umoci's unpack in {} ways (- missing, + unexpected, ~ changed):\n{}",
        d.len(),
        d.join("\n")
    );
    berth
}
