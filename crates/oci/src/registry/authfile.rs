//! Credentials: `--creds`, `--authfile`, and the auth files podman and docker
//! write (`$XDG_RUNTIME_DIR/containers/auth.json`,
//! `~/.config/containers/auth.json`, `~/.docker/config.json`), looked up most
//! specific key first (`host/ns/repo`, `host/ns`, `host`). `berth login`
//! and `logout` edit the containers auth file.

use super::RegistryError;
use base64::Engine as _;
use std::path::{Path, PathBuf};

#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <redacted>)", self.username)
    }
}

impl Credentials {
    /// Parses `USER:PASS`; `USER` alone has an empty password.
    pub fn parse(s: &str) -> Credentials {
        let (u, p) = s.split_once(':').unwrap_or((s, ""));
        Credentials { username: u.to_string(), password: p.to_string() }
    }

    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
    }
}

/// The auth files read, in order, when no `--authfile` is given.
pub fn default_files() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE") {
        v.push(PathBuf::from(p));
    }
    if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR") {
        v.push(Path::new(&x).join("containers/auth.json"));
    }
    if let Some(h) = std::env::var_os("HOME") {
        v.push(Path::new(&h).join(".config/containers/auth.json"));
        v.push(Path::new(&h).join(".docker/config.json"));
    }
    v
}

/// The file `berth login` writes when no `--authfile` is given.
pub fn default_write_file() -> PathBuf {
    if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE") {
        return PathBuf::from(p);
    }
    match (std::env::var_os("XDG_RUNTIME_DIR"), std::env::var_os("HOME")) {
        (Some(x), _) => Path::new(&x).join("containers/auth.json"),
        (None, Some(h)) => Path::new(&h).join(".config/containers/auth.json"),
        (None, None) => PathBuf::from("/root/.config/containers/auth.json"),
    }
}

/// Normalises an auth-file key: docker writes `https://index.docker.io/v1/`.
fn normalize_key(k: &str) -> String {
    let k = k.trim_start_matches("https://").trim_start_matches("http://").trim_end_matches('/');
    let k = k.strip_suffix("/v1").or_else(|| k.strip_suffix("/v2")).unwrap_or(k);
    match k {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        other => other.to_string(),
    }
}

/// The keys to try for `registry/repository`, most specific first.
pub fn keys_for(registry: &str, repository: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut path = format!("{registry}/{repository}");
    loop {
        keys.push(path.clone());
        match path.rfind('/') {
            Some(i) => path.truncate(i),
            None => break,
        }
    }
    keys
}

fn read_json(path: &Path) -> Result<Option<serde_json::Value>, RegistryError> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| RegistryError::AuthFile { path: path.display().to_string(), detail: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(RegistryError::AuthFile { path: path.display().to_string(), detail: e.to_string() }),
    }
}

/// Looks `registry/repository` up in one auth file.
pub fn lookup_in(path: &Path, registry: &str, repository: &str) -> Result<Option<Credentials>, RegistryError> {
    let Some(json) = read_json(path)? else {
        return Ok(None);
    };
    let Some(auths) = json.get("auths").and_then(|a| a.as_object()) else {
        return Ok(None);
    };
    for key in keys_for(registry, repository) {
        for (k, v) in auths {
            if normalize_key(k) != key {
                continue;
            }
            let Some(auth) = v.get("auth").and_then(|a| a.as_str()) else {
                continue;
            };
            let raw = base64::engine::general_purpose::STANDARD.decode(auth.trim()).map_err(|e| {
                RegistryError::AuthFile { path: path.display().to_string(), detail: format!("entry {k:?}: {e}") }
            })?;
            let s = String::from_utf8_lossy(&raw);
            return Ok(Some(Credentials::parse(&s)));
        }
    }
    Ok(None)
}

/// Looks credentials up in `authfile` alone when given, else in the default files.
pub fn lookup(authfile: Option<&Path>, registry: &str, repository: &str) -> Result<Option<Credentials>, RegistryError> {
    let files = match authfile {
        Some(f) => vec![f.to_path_buf()],
        None => default_files(),
    };
    for f in files {
        if let Some(c) = lookup_in(&f, registry, repository)? {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

/// Stores (`Some`) or removes (`None`) the entry `key` in the auth file at
/// `path`, atomically. Returns whether an entry was there before.
pub fn store(path: &Path, key: &str, creds: Option<&Credentials>) -> Result<bool, RegistryError> {
    let err = |detail: String| RegistryError::AuthFile { path: path.display().to_string(), detail };
    let mut json = read_json(path)?.unwrap_or_else(|| serde_json::json!({ "auths": {} }));
    let obj = json.as_object_mut().ok_or_else(|| err("not a JSON object".into()))?;
    let auths = obj.entry("auths").or_insert_with(|| serde_json::json!({}));
    let auths = auths.as_object_mut().ok_or_else(|| err("\"auths\" is not an object".into()))?;
    let existed = auths.remove(key).is_some();
    if let Some(c) = creds {
        let raw = format!("{}:{}", c.username, c.password);
        auths.insert(
            key.to_string(),
            serde_json::json!({ "auth": base64::engine::general_purpose::STANDARD.encode(raw) }),
        );
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    let tmp =
        dir.join(format!(".{}.tmp{}", path.file_name().and_then(|n| n.to_str()).unwrap_or("auth"), std::process::id()));
    let body = serde_json::to_vec_pretty(&json).map_err(|e| err(e.to_string()))?;
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| err(e.to_string()))?;
        f.write_all(&body).and_then(|_| f.sync_all()).map_err(|e| err(e.to_string()))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| err(e.to_string()))?;
    Ok(existed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_specific_key_wins() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("auth.json");
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        std::fs::write(
            &f,
            format!(
                r#"{{"auths":{{"reg.io":{{"auth":"{}"}},"reg.io/team":{{"auth":"{}"}},"https://index.docker.io/v1/":{{"auth":"{}"}}}}}}"#,
                b64("a:1"),
                b64("b:2"),
                b64("d:3")
            ),
        )
        .unwrap();
        assert_eq!(lookup_in(&f, "reg.io", "team/app").unwrap().unwrap().username, "b");
        assert_eq!(lookup_in(&f, "reg.io", "other/app").unwrap().unwrap().username, "a");
        assert_eq!(lookup_in(&f, "docker.io", "library/x").unwrap().unwrap().password, "3");
        assert!(lookup_in(&f, "nope.io", "x").unwrap().is_none());
        let c = Credentials::parse("u:p:q");
        assert_eq!(c.password, "p:q");
        assert!(store(&f, "reg.io", None).unwrap());
        assert_eq!(lookup_in(&f, "reg.io", "other/app").unwrap(), None);
    }
}
