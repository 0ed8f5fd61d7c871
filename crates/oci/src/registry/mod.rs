//! The registry API v2 client: ping, manifests, blobs; Bearer and Basic
//! auth; retries with backoff; redirects that drop credentials on a host
//! change; mirrors from `registries.toml`; per-registry CA certificates.
//!
//! Built on `ureq` (blocking, small) with `rustls`: berth is a short-lived
//! CLI process and runs downloads on plain threads, so an async stack would
//! only add start-up cost and code.

/// Public for the fuzz tests (`tests/fuzz/auth.rs`): its parsers take a
/// registry's `WWW-Authenticate` header and token body as they come.
pub mod auth;
pub mod authfile;
mod client;
pub mod config;
mod error;
pub mod fetch;
mod tls;

pub use authfile::Credentials;
pub use client::{Blob, Client, ClientOptions, FetchedManifest, MANIFEST_LIMIT};
pub use config::RegistriesConfig;
pub use error::RegistryError;

/// Opens an http(s) URL for streaming (`berth import URL`): redirects
/// followed, connection errors retried. Returns the body and its length.
pub fn open_url(url: &str, tls_verify: bool) -> Result<(Box<dyn std::io::Read + Send>, Option<u64>), RegistryError> {
    let mut b = ureq::AgentBuilder::new()
        .redirects(5)
        .timeout_connect(std::time::Duration::from_secs(15))
        .timeout_read(std::time::Duration::from_secs(60))
        .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")));
    b = b.tls_config(if tls_verify { tls::verifying("", &[]) } else { tls::insecure() });
    let agent = b.build();
    let mut attempt = 0;
    loop {
        match agent.get(url).call() {
            Ok(resp) => {
                let len = resp.header("content-length").and_then(|v| v.parse().ok());
                return Ok((Box::new(resp.into_reader()), len));
            }
            Err(ureq::Error::Status(code, resp)) if code >= 500 && attempt < 3 => drop(resp),
            Err(ureq::Error::Status(code, _)) => {
                return Err(RegistryError::Http { url: url.into(), status: code, body: "download failed".into() })
            }
            Err(ureq::Error::Transport(t)) if attempt >= 3 => {
                return Err(RegistryError::Transport { url: url.into(), detail: t.to_string() })
            }
            Err(ureq::Error::Transport(_)) => {}
        }
        attempt += 1;
        std::thread::sleep(std::time::Duration::from_millis(300 << attempt));
    }
}
