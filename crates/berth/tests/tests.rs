//! Integration tests for the `berth` binary (one test binary, ripgrep style).
//!
//! Every test starts its own registry and store, so they run in parallel.
//! They need root and Debian's docker-registry, skopeo, umoci,
//! busybox-static and apache2-utils (scripts/deps.sh installs them).
//!
//! Run: `cargo test -p berth --test tests` (as root); one area with a
//! filter, e.g. `-- pull::hostile`; `harness::selfcheck` tests only the
//! harness, so run it first when a berth test fails for no clear reason.

mod boot;
mod harness;
mod images;
mod machines;
mod pull;
mod run;
