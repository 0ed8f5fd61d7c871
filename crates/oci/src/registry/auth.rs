//! `WWW-Authenticate` challenges and the Bearer token flow
//! (distribution's token spec): realm, service, scope; `token` or
//! `access_token`; cached until `expires_in` runs out.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A parsed challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer { realm: String, service: Option<String>, scope: Option<String> },
}

/// Parses one `WWW-Authenticate` value (`Bearer realm="…",service="…"`).
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(char::is_whitespace).unwrap_or((header, ""));
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => {
            let params = parse_params(rest);
            Some(Challenge::Bearer {
                realm: params.get("realm")?.clone(),
                service: params.get("service").cloned(),
                scope: params.get("scope").cloned(),
            })
        }
        _ => None,
    }
}

/// `k="v", k2=v2` → map; quoted values may hold commas and `\"`.
fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while matches!(chars.peek(), Some(c) if c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ',')).collect();
        if key.is_empty() {
            break;
        }
        if chars.next() != Some('=') {
            continue;
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            val.push(n)
                        }
                    }
                    '"' => break,
                    c => val.push(c),
                }
            }
        } else {
            val = std::iter::from_fn(|| chars.next_if(|c| *c != ',')).collect::<String>().trim().to_string();
        }
        out.insert(key.trim().to_ascii_lowercase(), val);
    }
    out
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

/// A bearer token and when it stops being good.
#[derive(Debug, Clone)]
pub struct Token {
    pub value: String,
    pub expires: Instant,
}

impl Token {
    pub fn fresh(&self) -> bool {
        Instant::now() + Duration::from_secs(5) < self.expires
    }
}

/// The longest a token is kept, whatever the server says: an
/// `expires_in` near `u64::MAX` overflowed `Instant` and panicked, and no
/// berth process lives a day anyway.
pub const MAX_TOKEN_LIFE: Duration = Duration::from_secs(24 * 3600);

/// Parses the token endpoint's answer; tokens default to 60 s of life.
pub fn parse_token(body: &[u8]) -> Result<Token, String> {
    let r: TokenResponse = serde_json::from_slice(body).map_err(|e| format!("malformed token response: {e}"))?;
    let value = r.token.or(r.access_token).filter(|t| !t.is_empty()).ok_or("token response has no token")?;
    let life = Duration::from_secs(r.expires_in.unwrap_or(60).max(1)).min(MAX_TOKEN_LIFE);
    Ok(Token { value, expires: Instant::now() + life })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer() {
        let c = parse_challenge(r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull,push""#).unwrap();
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/alpine:pull,push".into())
            }
        );
        assert_eq!(parse_challenge(r#"Basic realm="Registry Realm""#), Some(Challenge::Basic));
        assert_eq!(parse_challenge("Negotiate"), None);
    }

    #[test]
    fn token_fields() {
        let t = parse_token(br#"{"access_token":"abc","expires_in":300}"#).unwrap();
        assert_eq!(t.value, "abc");
        assert!(t.fresh());
        let t = parse_token(br#"{"token":"xyz","expires_in":1}"#).unwrap();
        assert!(!t.fresh());
        assert!(parse_token(br#"{}"#).is_err());
    }

    #[test]
    fn a_huge_expires_in_is_capped_not_a_panic() {
        // Found by tests/fuzz/auth.rs: `Instant + u64::MAX s` panicked.
        let t = parse_token(br#"{"token":"t","expires_in":18446744073709551615}"#).unwrap();
        assert!(t.fresh());
        assert!(t.expires <= Instant::now() + MAX_TOKEN_LIFE);
    }
}
