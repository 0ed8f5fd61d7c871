//! `registries.toml`: which registries are insecure (plain http or no TLS
//! verification) and which mirrors to try before the origin. The format is
//! the `[[registry]]` table of containers-registries.conf(5):
//!
//! ```toml
//! [[registry]]
//! location = "127.0.0.1:5000"
//! insecure = true
//! [[registry.mirror]]
//! location = "mirror.example:5000/cache"
//! insecure = true
//! ```

use super::RegistryError;
use std::path::{Path, PathBuf};

/// Default location of the config; `BERTH_REGISTRIES_CONF` overrides it.
pub const DEFAULT_PATH: &str = "/etc/berth/registries.toml";
/// Default extra CA directories, one sub-directory per `host[:port]`.
pub const CERTS_DIRS: &[&str] = &["/etc/berth/certs.d", "/etc/containers/certs.d", "/etc/docker/certs.d"];

#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct RegistriesConfig {
    #[serde(default)]
    pub registry: Vec<RegistryEntry>,
    #[serde(skip)]
    pub path: PathBuf,
}

#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct RegistryEntry {
    pub location: String,
    #[serde(default)]
    pub insecure: bool,
    #[serde(default)]
    pub mirror: Vec<MirrorEntry>,
}

#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct MirrorEntry {
    pub location: String,
    #[serde(default)]
    pub insecure: bool,
}

impl RegistriesConfig {
    /// The path in force: `$BERTH_REGISTRIES_CONF` or the default.
    pub fn default_path() -> PathBuf {
        std::env::var_os("BERTH_REGISTRIES_CONF").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(DEFAULT_PATH))
    }

    /// Loads the config; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<Self, RegistryError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(RegistriesConfig { path: path.to_path_buf(), ..Default::default() })
            }
            Err(e) => return Err(RegistryError::Config { path: path.display().to_string(), detail: e.to_string() }),
        };
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self, RegistryError> {
        let mut cfg: RegistriesConfig = toml::from_str(text)
            .map_err(|e| RegistryError::Config { path: path.display().to_string(), detail: e.message().to_string() })?;
        cfg.path = path.to_path_buf();
        Ok(cfg)
    }

    /// The entry for `registry/repository`: the longest matching location.
    pub fn entry_for(&self, registry: &str, repository: &str) -> Option<&RegistryEntry> {
        let full = format!("{registry}/{repository}");
        self.registry
            .iter()
            .filter(|e| {
                let loc = e.location.trim_end_matches('/');
                full == loc || full.starts_with(&format!("{loc}/")) || registry == loc
            })
            .max_by_key(|e| e.location.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_location_wins() {
        let cfg = RegistriesConfig::parse(
            r#"
            [[registry]]
            location = "example.com"
            insecure = false
            [[registry]]
            location = "example.com/team"
            insecure = true
            [[registry.mirror]]
            location = "127.0.0.1:5001/cache"
            "#,
            Path::new("x"),
        )
        .unwrap();
        let e = cfg.entry_for("example.com", "team/app").unwrap();
        assert!(e.insecure);
        assert_eq!(e.mirror[0].location, "127.0.0.1:5001/cache");
        assert!(!cfg.entry_for("example.com", "other/app").unwrap().insecure);
        assert!(cfg.entry_for("example.org", "x").is_none());
        assert!(RegistriesConfig::parse("[[registry]]\nnope = 1", Path::new("x")).is_err());
    }
}
