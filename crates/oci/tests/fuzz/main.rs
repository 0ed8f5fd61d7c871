//! Fuzz tests of berth-oci's parsers of hostile bytes, on stable Rust:
//! property tests that feed arbitrary input and mutations of valid input,
//! and check that each parser returns `Ok` or `Err` without a panic and
//! within a heap budget. `cargo test` runs a few hundred cases of each;
//! `scripts/fuzz.sh` runs many more.

// The library's errors are large, and allowed there (see its lib.rs).
#![allow(clippy::result_large_err)]

mod support;

mod auth;
mod authfile;
mod manifest;
mod mutate;
mod reference;
mod registries;
