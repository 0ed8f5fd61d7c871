//! Manifests as registries serve them: OCI image manifest and index, Docker
//! schema2 manifest and manifest list. Schema1 and foreign media types get a
//! clear "unsupported" error. Pure parsing; the types come from `oci-spec`.

use crate::digest::Digest;
use crate::platform::Platform;
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// The `Accept` header for manifest requests, most wanted first.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json;q=0.9";

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("unsupported manifest: {0} is Docker schema1, which berth does not read; ask the publisher to push a schema2 or OCI image")]
    Schema1(String),
    #[error("unsupported manifest media type {0:?}: berth reads OCI and Docker schema2 images")]
    MediaType(String),
    #[error("malformed {what}: {source}")]
    Json { what: &'static str, source: serde_json::Error },
    #[error("unsupported layer media type {0:?}: berth reads tar layers, uncompressed, gzip or zstd")]
    LayerType(String),
    #[error("unsupported config media type {0:?}: expected an OCI or Docker image config")]
    ConfigType(String),
    #[error("no image for platform {want} in the index; it has {have}")]
    NoPlatform { want: Platform, have: String },
    #[error("image is for {have}, not the requested {want}; pass --platform {have} to pull it anyway")]
    WrongPlatform { want: Platform, have: Platform },
}

/// A manifest document, once its kind is known.
#[derive(Debug)]
pub enum Fetched {
    Index(Box<ImageIndex>),
    Manifest(Box<ImageManifest>),
}

#[derive(serde::Deserialize)]
struct Probe {
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    #[serde(rename = "schemaVersion")]
    schema_version: Option<u32>,
    manifests: Option<serde_json::Value>,
    layers: Option<serde_json::Value>,
}

/// Parses a manifest body; `content_type` is the response's Content-Type.
pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Fetched, ManifestError> {
    let probe: Probe =
        serde_json::from_slice(body).map_err(|source| ManifestError::Json { what: "manifest", source })?;
    let header = content_type.map(|c| c.split(';').next().unwrap_or(c).trim().to_string());
    let media_type = probe.media_type.clone().or(header.clone()).unwrap_or_default();
    if probe.schema_version == Some(1) || media_type == DOCKER_SCHEMA1 || media_type == DOCKER_SCHEMA1_SIGNED {
        return Err(ManifestError::Schema1(media_type));
    }
    let kind = match media_type.as_str() {
        OCI_INDEX | DOCKER_LIST => "index",
        OCI_MANIFEST | DOCKER_MANIFEST => "manifest",
        // OCI allows omitting mediaType; guess from the shape.
        "" | "application/json" if probe.manifests.is_some() => "index",
        "" | "application/json" if probe.layers.is_some() => "manifest",
        other => return Err(ManifestError::MediaType(other.to_string())),
    };
    if kind == "index" {
        serde_json::from_slice(body)
            .map(|i| Fetched::Index(Box::new(i)))
            .map_err(|source| ManifestError::Json { what: "image index", source })
    } else {
        let m: ImageManifest =
            serde_json::from_slice(body).map_err(|source| ManifestError::Json { what: "image manifest", source })?;
        let ct = m.config().media_type().to_string();
        if ct != OCI_CONFIG && ct != DOCKER_CONFIG {
            return Err(ManifestError::ConfigType(ct));
        }
        for l in m.layers() {
            LayerCompression::from_media_type(l.media_type().as_ref())?;
        }
        Ok(Fetched::Manifest(Box::new(m)))
    }
}

/// How a layer blob is compressed, by its media type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerCompression {
    None,
    Gzip,
    Zstd,
}

impl LayerCompression {
    pub fn from_media_type(mt: &str) -> Result<Self, ManifestError> {
        match mt {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar" => Ok(Self::None),
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Ok(Self::Gzip),
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => Ok(Self::Zstd),
            other => Err(ManifestError::LayerType(other.to_string())),
        }
    }

    /// Sniffs the compression from a blob's first bytes; registries do
    /// mislabel layers, and the bytes do not lie.
    pub fn sniff(head: &[u8]) -> Option<Self> {
        if head.starts_with(&[0x1f, 0x8b]) {
            Some(Self::Gzip)
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some(Self::Zstd)
        } else {
            None
        }
    }
}

fn desc_platform(d: &Descriptor) -> Option<Platform> {
    d.platform().as_ref().map(|p| Platform {
        os: p.os().to_string(),
        architecture: p.architecture().to_string(),
        variant: p.variant().clone(),
    })
}

/// Picks the entry of an index for `want`.
pub fn select_platform(index: &ImageIndex, want: &Platform) -> Result<(Digest, Platform), ManifestError> {
    let mut have = Vec::new();
    for d in index.manifests() {
        let Some(p) = desc_platform(d) else { continue };
        if want.matches(&p) {
            let digest =
                d.digest().to_string().parse::<Digest>().map_err(|e| ManifestError::MediaType(e.to_string()))?;
            return Ok((digest, p));
        }
        have.push(p.to_string());
    }
    Err(ManifestError::NoPlatform {
        want: want.clone(),
        have: if have.is_empty() { "no platforms".into() } else { have.join(", ") },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema1_is_refused_clearly() {
        let body = br#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#;
        let e = parse(Some(DOCKER_SCHEMA1_SIGNED), body).unwrap_err().to_string();
        assert!(e.contains("schema1"), "{e}");
    }

    #[test]
    fn unknown_layer_type_is_refused() {
        let body = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
          "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0},
          "layers":[{"mediaType":"application/vnd.example.thing","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0}]}"#;
        let e = parse(None, body).unwrap_err().to_string();
        assert!(e.contains("unsupported layer media type"), "{e}");
    }

    #[test]
    fn index_selects_platform() {
        let body = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
          {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":1,"platform":{"os":"linux","architecture":"amd64"}},
          {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222","size":1,"platform":{"os":"linux","architecture":"arm64","variant":"v8"}}]}"#;
        let Fetched::Index(idx) = parse(None, body).unwrap() else { panic!("not an index") };
        let (d, _) = select_platform(&idx, &"linux/arm64".parse().unwrap()).unwrap();
        assert!(d.hex().starts_with("2222"));
        let e = select_platform(&idx, &"linux/riscv64".parse().unwrap()).unwrap_err().to_string();
        assert!(e.contains("linux/amd64"), "{e}");
    }
}
