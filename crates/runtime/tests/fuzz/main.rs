//! Fuzz tests of the runtime's parsers of hostile text, on stable Rust:
//! an image's `/etc/passwd` and `/etc/group`, and the host's
//! `/etc/subuid`-style files. Each returns a result without a panic and
//! within a heap budget. `scripts/fuzz.sh` runs many more cases.

#[path = "../../../oci/tests/fuzz/support.rs"]
mod support;

mod subids;
mod users;
