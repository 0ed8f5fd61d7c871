//! appc discovery for `berth import aci:NAME[:VERSION]` (appc spec,
//! "App Container Image Discovery", meta discovery): fetch
//! `https://NAME?ac-discovery=1`, read its
//! `<meta name="ac-discovery" content="PREFIX TEMPLATE">` tags, take the
//! first template whose prefix matches NAME and whose every `{label}` is
//! known (`{name}`, `{version}`, `{os}`, `{arch}`, `{ext}`), and fill it.
//! When the page has no matching template, the walk repeats with the next
//! shorter path prefix of NAME (`host/a/b`, `host/a`, `host`), at most
//! [`MAX_WALK`] pages. `ac-discovery-pubkeys` tags are collected so an
//! error can point at the publisher's keys; they are never trusted
//! automatically (a key fetched from the same server proves nothing).
//!
//! The meta tags are read by a small hand-written scanner rather than an
//! HTML parser: no HTML crate is in the dependency tree, and only `<meta>`
//! start tags matter. It skips comments, `<script>` and `<style>` bodies,
//! takes attributes in any order, quoted or not, names in any case, and
//! decodes the character references a URL may carry (`&amp;`, numeric).
//!
//! Plain http is used only with `--tls-verify=false`: with no certificate
//! check https proves nothing more than http, so http is tried first (a
//! plain-http server answers at once) and https only when http gets no
//! answer at all (a 404 is an answer: the host has no page there).

use berth_oci::registry::fetch::{fetch_document, DOCUMENT_LIMIT};
use berth_oci::registry::RegistryError;

/// Most discovery pages fetched for one name (the prefix walk).
pub const MAX_WALK: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("invalid appc name {0:?}: {1} (expected aci:HOST/PATH[:VERSION], e.g. aci:quay.io/coreos/etcd:v3.1.0)")]
    BadName(String, &'static str),
    #[error("no ac-discovery template for {name} on {tried}{detail}: check the name, or the host's discovery page")]
    NotFound { name: String, tried: String, detail: String },
    #[error("discovery for {name} gave {url}: {why}")]
    BadUrl { name: String, url: String, why: &'static str },
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// An appc name and version label, from `aci:NAME[:VERSION]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AciName {
    pub name: String,
    pub version: String,
}

impl AciName {
    /// Parses what follows `aci:`. The version is what follows the last
    /// `:` after the last `/` (a `:` before it is a port); `latest`
    /// without one, as rkt does.
    pub fn parse(s: &str) -> Result<AciName, DiscoveryError> {
        let bad = |why| DiscoveryError::BadName(s.to_string(), why);
        let tail_at = s.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, version) = match s[tail_at..].rfind(':') {
            Some(i) => (&s[..tail_at + i], &s[tail_at + i + 1..]),
            None => (s, "latest"),
        };
        if name.is_empty() {
            return Err(bad("the name is empty"));
        }
        // appc identifiers: lowercase letters, digits and -._~/ (a `:`
        // for a host's port). Nothing that changes a URL's meaning (`?`,
        // `#`, `@`, `%`) and no `.`/`..` segments.
        if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._~/:".contains(&b)) {
            return Err(bad("a name has only lowercase letters, digits and -._~/"));
        }
        if name.split('/').any(|seg| seg.is_empty() || seg == "." || seg == "..") {
            return Err(bad("empty, . or .. path segment"));
        }
        if name.split('/').skip(1).any(|seg| seg.contains(':')) {
            return Err(bad("a : is allowed only in the host"));
        }
        if version.is_empty() || !version.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._+~".contains(&b)) {
            return Err(bad("a version has only letters, digits and -._+~"));
        }
        Ok(AciName { name: name.to_string(), version: version.to_string() })
    }
}

/// Where an image is, per its discovery page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// The `.aci`.
    pub aci: String,
    /// Its detached signature (the template with `{ext}` = `aci.asc`).
    pub asc: String,
    /// `ac-discovery-pubkeys` URLs whose prefix matches the name.
    pub pubkeys: Vec<String>,
}

/// appc's `arch` label for this machine (`x86_64` is `amd64`).
pub fn appc_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "i386",
        "aarch64" => "aarch64",
        "arm" => "armv7l",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        other => other,
    }
}

/// The names to try, longest first: `host/a/b`, `host/a`, `host`.
fn prefixes(name: &str) -> Vec<&str> {
    let mut out = vec![name];
    let mut cur = name;
    while let Some(i) = cur.rfind('/') {
        cur = &cur[..i];
        out.push(cur);
    }
    out.truncate(MAX_WALK);
    out
}

/// Runs meta discovery for `name`.
pub fn discover(name: &AciName, tls_verify: bool) -> Result<Endpoints, DiscoveryError> {
    let schemes: &[&str] = if tls_verify { &["https"] } else { &["http", "https"] };
    let mut tried = Vec::new();
    let mut errors = Vec::new();
    for prefix in prefixes(&name.name) {
        let mut page = None;
        for scheme in schemes {
            let url = format!("{scheme}://{prefix}?ac-discovery=1");
            match fetch_document(&url, tls_verify, DOCUMENT_LIMIT) {
                Ok(Some(body)) => {
                    page = Some(body);
                    tried.push(url);
                    break;
                }
                // The server speaks this scheme and has no page here:
                // no need to ask the other one.
                Ok(None) => {
                    tried.push(url);
                    break;
                }
                Err(e) => {
                    tried.push(url);
                    errors.push(e.to_string());
                }
            }
        }
        let Some(body) = page else { continue };
        let tags = meta_tags(&String::from_utf8_lossy(&body));
        if let Some(found) = pick(&tags, name, tls_verify)? {
            return Ok(found);
        }
    }
    let detail = match errors.last() {
        Some(e) => format!(" ({e})"),
        None => String::new(),
    };
    Err(DiscoveryError::NotFound { name: name.name.clone(), tried: tried.join(", "), detail })
}

/// The first template of `tags` that matches `name` and fills completely.
fn pick(tags: &[(String, String)], name: &AciName, tls_verify: bool) -> Result<Option<Endpoints>, DiscoveryError> {
    let matching = |kind: &str| {
        tags.iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(kind))
            .filter_map(|(_, content)| {
                let mut words = content.split_whitespace();
                let (prefix, url) = (words.next()?, words.next()?);
                prefix_matches(prefix, &name.name).then(|| url.to_string())
            })
            .collect::<Vec<_>>()
    };
    let pubkeys = matching("ac-discovery-pubkeys");
    for template in matching("ac-discovery") {
        let (Some(aci), Some(asc)) = (render(&template, name, "aci"), render(&template, name, "aci.asc")) else {
            continue;
        };
        for url in [&aci, &asc] {
            let why = if url.starts_with("https://") {
                None
            } else if url.starts_with("http://") {
                tls_verify.then_some("plain http (pass --tls-verify=false to allow it)")
            } else {
                Some("not an http(s) URL")
            };
            if let Some(why) = why {
                return Err(DiscoveryError::BadUrl { name: name.name.clone(), url: url.clone(), why });
            }
        }
        return Ok(Some(Endpoints { aci, asc, pubkeys }));
    }
    Ok(None)
}

/// A prefix matches at a path boundary: `example.com/app` is matched by
/// `example.com` and `example.com/`, not by `example.com/ap` (rkt matches
/// any string prefix; a boundary is stricter and what publishers mean).
fn prefix_matches(prefix: &str, name: &str) -> bool {
    let Some(rest) = name.strip_prefix(prefix) else { return false };
    rest.is_empty() || prefix.ends_with('/') || rest.starts_with('/')
}

/// Fills a template; `None` when a `{label}` is left unknown (the appc
/// spec skips such a template).
fn render(template: &str, name: &AciName, ext: &str) -> Option<String> {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}')? + open;
        let value = match &rest[open + 1..close] {
            "name" => name.name.as_str(),
            "version" => name.version.as_str(),
            "os" => "linux",
            "arch" => appc_arch(),
            "ext" => ext,
            _ => return None,
        };
        out.push_str(value);
        rest = &rest[close + 1..];
    }
    if rest.contains('}') {
        return None;
    }
    out.push_str(rest);
    Some(out)
}

/// Every `<meta name=N content=C>` of an HTML page, in order, as (N, C).
pub fn meta_tags(html: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let lower = html.to_ascii_lowercase();
    let mut at = 0;
    while let Some(off) = lower[at..].find('<') {
        let start = at + off;
        let after = &lower[start + 1..];
        if after.starts_with("!--") {
            at = lower[start + 4..].find("-->").map(|e| start + 4 + e + 3).unwrap_or(lower.len());
            continue;
        }
        // Raw-text elements: their bodies are not markup.
        if let Some(tag) = ["script", "style"].into_iter().find(|t| starts_tag(after, t)) {
            let close = format!("</{tag}");
            at = lower[start + 1..].find(&close).map(|e| start + 1 + e + close.len()).unwrap_or(lower.len());
            continue;
        }
        let end = tag_end(html, start + 1);
        if starts_tag(after, "meta") {
            let attrs = attributes(&html[start + 5..end]);
            let get = |k: &str| attrs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            if let (Some(n), Some(c)) = (get("name"), get("content")) {
                out.push((n, c));
            }
        }
        at = (end + 1).min(html.len());
    }
    out
}

/// Whether `s` (lowercased, after `<`) opens element `tag`.
fn starts_tag(s: &str, tag: &str) -> bool {
    s.strip_prefix(tag)
        .is_some_and(|r| r.is_empty() || r.starts_with(|c: char| c.is_ascii_whitespace() || c == '>' || c == '/'))
}

/// The index of the `>` closing a tag that starts at `from`, skipping
/// quoted attribute values (which may hold `>`); the end of the text when
/// it is not closed.
fn tag_end(html: &str, from: usize) -> usize {
    let mut quote = None;
    for (i, c) in html[from..].char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '>') => return from + i,
            _ => {}
        }
    }
    html.len()
}

/// The attributes of a start tag's inside: lowercased names, decoded values.
fn attributes(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && (b[*i].is_ascii_whitespace() || b[*i] == b'/') {
            *i += 1;
        }
    };
    while i < b.len() {
        skip_ws(&mut i);
        let n0 = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && !b"=/>".contains(&b[i]) {
            i += 1;
        }
        if i == n0 {
            i += 1;
            continue;
        }
        let name = s[n0..i].to_ascii_lowercase();
        let mut j = i;
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        if j >= b.len() || b[j] != b'=' {
            out.push((name, String::new()));
            continue;
        }
        i = j + 1;
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let value = if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
            let q = b[i];
            let v0 = i + 1;
            let v1 = s[v0..].bytes().position(|c| c == q).map(|p| v0 + p).unwrap_or(b.len());
            i = (v1 + 1).min(b.len());
            &s[v0..v1]
        } else {
            let v0 = i;
            while i < b.len() && !b[i].is_ascii_whitespace() {
                i += 1;
            }
            &s[v0..i]
        };
        out.push((name, decode_entities(value)));
    }
    out
}

/// Decodes `&amp;` `&lt;` `&gt;` `&quot;` `&apos;` and numeric references;
/// anything else is left as written.
fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(semi) = rest.bytes().take(12).position(|b| b == b';') else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let ent = &rest[1..semi];
        let ch = match ent {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => ent
                .strip_prefix("#x")
                .or_else(|| ent.strip_prefix("#X"))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| ent.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match ch {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> AciName {
        AciName::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn names() {
        assert_eq!(
            n("127.0.0.1:8080/example/app:1.0"),
            AciName { name: "127.0.0.1:8080/example/app".into(), version: "1.0".into() }
        );
        assert_eq!(n("quay.io/coreos/etcd").version, "latest");
        assert_eq!(n("example.com:v2").name, "example.com");
        for bad in ["", ":1.0", "Example.com/app", "h/a?x=1", "h/../etc", "h//a", "h/a:b/c:1", "h/a:", "h/a@x"] {
            assert!(AciName::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn meta_scanner() {
        let html = r#"<!DOCTYPE html><html><head>
            <!-- <meta name="ac-discovery" content="example.com https://evil/{name}.{ext}"> -->
            <script>var s = '<meta name="ac-discovery" content="example.com https://evil2/{name}.{ext}">';</script>
            <META content='example.com https://h/{name}-{version}-{os}-{arch}.{ext}?a=1&amp;b=2' NAME=ac-discovery >
            <meta name=ac-discovery-pubkeys content="example.com https://h/pubkeys.gpg"/>
            <meta charset="utf-8"><meta name="x" content="a > b">
            <meta name="unterminated" content="x"#;
        let tags = meta_tags(html);
        assert_eq!(
            tags,
            vec![
                ("ac-discovery".into(), "example.com https://h/{name}-{version}-{os}-{arch}.{ext}?a=1&b=2".into()),
                ("ac-discovery-pubkeys".into(), "example.com https://h/pubkeys.gpg".into()),
                ("x".into(), "a > b".into()),
                ("unterminated".into(), "x".into()),
            ]
        );
        assert_eq!(decode_entities("&#65;&#x42;&bogus;&"), "AB&bogus;&");
    }

    #[test]
    fn templates() {
        let name = n("example.com/app:1.0");
        let tags = vec![
            ("ac-discovery".to_string(), "example.com/ap https://wrong/{name}.{ext}".to_string()),
            ("ac-discovery".to_string(), "example.com https://h/{name}-{unknown}.{ext}".to_string()),
            ("ac-discovery".to_string(), "example.com https://h/{os}/{arch}/{name}-{version}.{ext}".to_string()),
        ];
        let e = pick(&tags, &name, true).unwrap().unwrap();
        let arch = appc_arch();
        assert_eq!(e.aci, format!("https://h/linux/{arch}/example.com/app-1.0.aci"));
        assert_eq!(e.asc, format!("https://h/linux/{arch}/example.com/app-1.0.aci.asc"));
        let plain = vec![("ac-discovery".to_string(), "example.com http://h/{name}.{ext}".to_string())];
        assert!(pick(&plain, &name, true).is_err(), "plain http needs --tls-verify=false");
        assert!(pick(&plain, &name, false).unwrap().is_some());
        assert_eq!(prefixes("h/a/b"), vec!["h/a/b", "h/a", "h"]);
    }
}
