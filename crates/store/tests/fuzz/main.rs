//! Fuzz tests of the store's parsers of hostile bytes, on stable Rust:
//! layer tarballs through the unpacker, disk partition tables and ACI
//! manifests. Each must return `Ok` or `Err` without a panic, within a
//! heap budget, and the unpacker must write nothing outside its root.
//! `scripts/fuzz.sh` runs many more cases.

// The store's errors are large, as in the library (see its lib.rs).
#![allow(clippy::result_large_err)]

#[path = "../../../oci/tests/fuzz/support.rs"]
mod support;

#[path = "../../../oci/tests/fuzz/mutate.rs"]
mod mutate;

mod aci;
mod disk;
mod tarball;
mod unpack;
