//! The registry API v2 client: ping, manifests, blobs; Bearer and Basic
//! auth; retries with backoff; redirects that drop credentials on a host
//! change; mirrors from `registries.toml`; per-registry CA certificates.
//!
//! Built on `ureq` (blocking, small) with `rustls`: berth is a short-lived
//! CLI process and runs downloads on plain threads, so an async stack would
//! only add start-up cost and code.

mod auth;
pub mod authfile;
mod client;
pub mod config;
mod error;
mod tls;

pub use authfile::Credentials;
pub use client::{Blob, Client, ClientOptions, FetchedManifest};
pub use config::RegistriesConfig;
pub use error::RegistryError;
