//! Platforms (`os/arch[/variant]`): parsing `--platform`, the host's default,
//! and matching index entries the way containerd does (arm64's missing
//! variant means `v8`, amd64's missing variant matches any).

use std::fmt;
use std::str::FromStr;

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid platform {0:?}: expected OS/ARCH[/VARIANT], e.g. linux/arm64/v8")]
pub struct PlatformError(String);

/// Maps Rust's and uname's architecture names onto the OCI ones.
pub fn normalize_arch(arch: &str) -> &str {
    match arch {
        "x86_64" | "x86-64" => "amd64",
        "aarch64" => "arm64",
        "i386" | "i486" | "i586" | "i686" | "x86" => "386",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64le" => "ppc64le",
        "armhf" | "armel" => "arm",
        other => other,
    }
}

impl Platform {
    /// The platform berth itself runs on.
    pub fn host() -> Platform {
        let architecture = normalize_arch(std::env::consts::ARCH).to_string();
        let variant = match architecture.as_str() {
            "arm64" => Some("v8".to_string()),
            "arm" => Some("v7".to_string()),
            _ => None,
        };
        Platform { os: "linux".into(), architecture, variant }
    }

    fn effective_variant(&self) -> Option<&str> {
        match (self.architecture.as_str(), self.variant.as_deref()) {
            ("arm64", None) => Some("v8"),
            (_, v) => v,
        }
    }

    /// Whether an image for `other` runs on (is what was asked for by) `self`.
    pub fn matches(&self, other: &Platform) -> bool {
        if self.os != other.os || normalize_arch(&self.architecture) != normalize_arch(&other.architecture) {
            return false;
        }
        match (self.effective_variant(), other.effective_variant()) {
            (Some(want), Some(have)) => want == have,
            // amd64 and friends: variants are optional refinements.
            (None, _) | (_, None) => self.architecture != "arm",
        }
    }
}

impl FromStr for Platform {
    type Err = PlatformError;
    fn from_str(s: &str) -> Result<Self, PlatformError> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(|p| ok(p)) {
            return Err(PlatformError(s.to_string()));
        }
        Ok(Platform {
            os: parts[0].to_lowercase(),
            architecture: normalize_arch(&parts[1].to_lowercase()).to_string(),
            variant: parts.get(2).map(|v| v.to_lowercase()),
        })
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_match() {
        let want: Platform = "linux/arm64/v8".parse().unwrap();
        let have = Platform { os: "linux".into(), architecture: "arm64".into(), variant: None };
        assert!(want.matches(&have));
        let amd: Platform = "linux/x86_64".parse().unwrap();
        assert_eq!(amd.architecture, "amd64");
        assert!(!amd.matches(&have));
        let v7: Platform = "linux/arm/v7".parse().unwrap();
        let v6: Platform = "linux/arm/v6".parse().unwrap();
        assert!(!v7.matches(&v6));
        assert!("linux".parse::<Platform>().is_err());
        assert!("linux/amd64/v1/x".parse::<Platform>().is_err());
        assert_eq!(want.to_string(), "linux/arm64/v8");
    }
}
