//! Small documents fetched over http(s) beside a download: `SHA256SUMS`,
//! its `.gpg` signature, an appc discovery page, an `.aci.asc`. Each is
//! read whole into memory, so each is bounded ([`DOCUMENT_LIMIT`]), and a
//! missing one (404, 410) is `Ok(None)`, not an error, because callers
//! decide what a missing document means.

use super::{tls, RegistryError, MANIFEST_LIMIT};
use std::io::Read;

/// Largest document read: a `SHA256SUMS` of a whole release directory is
/// a few KB, a discovery page rarely 100 KB. Anything bigger is refused.
pub const DOCUMENT_LIMIT: u64 = MANIFEST_LIMIT;

/// Redirects followed per fetch (`ureq` counts them and stops there).
pub const MAX_REDIRECTS: u32 = 5;

/// GETs `url` and returns its body, or `None` when the server says the
/// document is not there (404 or 410). No retries: these are small
/// documents fetched next to a download that is retried on its own.
pub fn fetch_document(url: &str, tls_verify: bool, limit: u64) -> Result<Option<Vec<u8>>, RegistryError> {
    let agent = ureq::AgentBuilder::new()
        .redirects(MAX_REDIRECTS)
        .timeout_connect(std::time::Duration::from_secs(15))
        .timeout_read(std::time::Duration::from_secs(60))
        .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
        .tls_config(if tls_verify { tls::verifying("", &[]) } else { tls::insecure() })
        .build();
    let resp = match agent.get(url).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(404 | 410, _)) => return Ok(None),
        Err(ureq::Error::Status(code, _)) => {
            return Err(RegistryError::Http { url: url.into(), status: code, body: "fetch failed".into() })
        }
        Err(ureq::Error::Transport(t)) => {
            return Err(RegistryError::Transport { url: url.into(), detail: t.to_string() })
        }
    };
    let mut body = Vec::new();
    resp.into_reader()
        .take(limit + 1)
        .read_to_end(&mut body)
        .map_err(|e| RegistryError::Io { what: url.into(), source: e })?;
    if body.len() as u64 > limit {
        return Err(RegistryError::Http {
            url: url.into(),
            status: 200,
            body: format!("the document is larger than {limit} bytes: refusing it"),
        });
    }
    Ok(Some(body))
}
