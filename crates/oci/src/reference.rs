//! Image references as docker and podman write them.
//!
//! `alpine` → `docker.io/library/alpine:latest`; `host:5000/x/y:z`;
//! `name@sha256:…`. The first path component is a registry host when it
//! contains a `.` or a `:`, or is `localhost`; otherwise the registry is
//! `docker.io` and a single-component name gets the `library/` prefix.
//! Pure parsing, no I/O.

use crate::digest::Digest;
use std::fmt;
use std::str::FromStr;

pub const DEFAULT_REGISTRY: &str = "docker.io";
pub const DEFAULT_TAG: &str = "latest";

/// A fully qualified image reference.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host, with port if any (`docker.io`, `127.0.0.1:5000`).
    pub registry: String,
    /// Repository path (`library/alpine`).
    pub repository: String,
    /// Tag; `latest` when neither tag nor digest was given.
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ReferenceError {
    #[error("invalid reference {0:?}: it is empty")]
    Empty(String),
    #[error("invalid reference {reference:?}: {why}")]
    Invalid { reference: String, why: String },
}

fn invalid(reference: &str, why: impl Into<String>) -> ReferenceError {
    ReferenceError::Invalid { reference: reference.to_string(), why: why.into() }
}

fn is_domain(component: &str) -> bool {
    component.contains('.') || component.contains(':') || component == "localhost"
}

/// A repository path component: lowercase alphanumerics separated by `.`,
/// `_`, `__` or one or more `-`.
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let ch = b[i];
        if ch.is_ascii_lowercase() || ch.is_ascii_digit() {
            i += 1;
            continue;
        }
        // a separator run
        let start = i;
        while i < b.len() && matches!(b[i], b'.' | b'_' | b'-') {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok || i == start {
            return false;
        }
    }
    true
}

fn valid_domain(d: &str) -> bool {
    let (host, port) = match d.rsplit_once(':') {
        Some((h, _)) if !h.ends_with(']') && h.contains(']') => return false,
        Some((h, p)) => (h, Some(p)),
        None => (d, None),
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.len() > 5 {
            return false;
        }
    }
    if host.starts_with('[') && host.ends_with(']') {
        return host[1..host.len() - 1].bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter().all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::Empty(s.to_string()));
        }
        if s.chars().any(|c| c.is_whitespace()) {
            return Err(invalid(s, "it contains white space"));
        }
        let (name_tag, digest) = match s.split_once('@') {
            Some((n, d)) => {
                let digest = d.parse::<Digest>().map_err(|e| invalid(s, e.to_string()))?;
                (n, Some(digest))
            }
            None => (s, None),
        };
        // A tag is after the last ':' that follows the last '/'.
        let last_slash = name_tag.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match name_tag[last_slash..].rfind(':') {
            Some(i) => {
                let t = &name_tag[last_slash + i + 1..];
                if !valid_tag(t) {
                    return Err(invalid(
                        s,
                        format!("tag {t:?} must be 1-128 characters of letters, digits, '_', '.' and '-', not starting with '.' or '-'"),
                    ));
                }
                (&name_tag[..last_slash + i], Some(t.to_string()))
            }
            None => (name_tag, None),
        };
        if name.is_empty() {
            return Err(invalid(s, "the repository name is empty"));
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, rest)) if is_domain(first) => {
                if !valid_domain(first) {
                    return Err(invalid(s, format!("registry host {first:?} is not a valid host[:port]")));
                }
                (first.to_string(), rest.to_string())
            }
            _ => (DEFAULT_REGISTRY.to_string(), name.to_string()),
        };
        let registry = if registry == "index.docker.io" { DEFAULT_REGISTRY.to_string() } else { registry };
        let repository =
            if registry == DEFAULT_REGISTRY && !path.contains('/') { format!("library/{path}") } else { path };
        for c in repository.split('/') {
            if !valid_component(c) {
                let why = if c.bytes().any(|b| b.is_ascii_uppercase()) {
                    format!("repository component {c:?} must be lowercase")
                } else if c.is_empty() {
                    "the repository name has an empty path component".to_string()
                } else {
                    format!("repository component {c:?} may hold only lowercase letters, digits and separators '.', '_', '__', '-'")
                };
                return Err(invalid(s, why));
            }
        }
        if registry.len() + 1 + repository.len() > 255 {
            return Err(invalid(s, "the repository name is longer than 255 characters"));
        }
        let tag = if tag.is_none() && digest.is_none() { Some(DEFAULT_TAG.to_string()) } else { tag };
        Ok(Reference { registry, repository, tag, digest })
    }
}

impl Reference {
    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// What the registry API's manifest endpoint takes: the digest when
    /// given (it pins the content), else the tag.
    pub fn api_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => DEFAULT_TAG.to_string(),
        }
    }

    /// The host to speak the API to: Docker Hub's API lives on another host.
    pub fn api_host(&self) -> &str {
        if self.registry == DEFAULT_REGISTRY {
            "registry-1.docker.io"
        } else {
            &self.registry
        }
    }

    /// A copy with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference { tag: Some(tag.to_string()), digest: None, ..self.clone() }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> String {
        s.parse::<Reference>().unwrap().to_string()
    }

    #[test]
    fn normalises_like_docker() {
        assert_eq!(p("alpine"), "docker.io/library/alpine:latest");
        assert_eq!(p("alpine:3.20"), "docker.io/library/alpine:3.20");
        assert_eq!(p("docker.io/library/debian:bookworm"), "docker.io/library/debian:bookworm");
        assert_eq!(p("index.docker.io/foo/bar"), "docker.io/foo/bar:latest");
        assert_eq!(p("user/repo"), "docker.io/user/repo:latest");
        assert_eq!(p("127.0.0.1:5000/x/y:z"), "127.0.0.1:5000/x/y:z");
        assert_eq!(p("localhost/x"), "localhost/x:latest");
        assert_eq!(p("localhost:5000/a_b/c-d.e__f"), "localhost:5000/a_b/c-d.e__f:latest");
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(p(&format!("quay.io/x/y@{d}")), format!("quay.io/x/y@{d}"));
        assert_eq!(p(&format!("quay.io/x/y:t@{d}")), format!("quay.io/x/y:t@{d}"));
        let r: Reference = format!("x@{d}").parse().unwrap();
        assert_eq!(r.api_reference(), d);
        assert_eq!(r.api_host(), "registry-1.docker.io");
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "Alpine",
            "a b",
            "alpine:",
            "alpine:-x",
            "x@sha256:abc",
            "x@md5:abc",
            "a//b",
            "host:5000/",
            "-a",
            "a/b_",
            "a:b:c/d",
            "example.com:po/x",
        ] {
            let e = bad.parse::<Reference>();
            assert!(e.is_err(), "{bad:?} parsed as {:?}", e);
        }
        let e = "Alpine".parse::<Reference>().unwrap_err().to_string();
        assert!(e.contains("lowercase"), "{e}");
    }
}
