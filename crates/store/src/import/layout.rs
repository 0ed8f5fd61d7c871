//! Local image sources for `berth import`: an OCI image layout directory
//! (also what an `oci-archive` unpacks to) and a `docker save` archive,
//! both served through the same [`Source`] trait as a registry, so their
//! blobs go through the same verified pull path.

use super::confined::{open_regular, read_bounded, DOCUMENT_LIMIT};
use crate::pull::Source;
use crate::StoreError;
use berth_oci::digest::HashingReader;
use berth_oci::manifest::{DOCKER_CONFIG, DOCKER_MANIFEST};
use berth_oci::registry::{Blob, FetchedManifest};
use berth_oci::Digest;
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The most layers a `docker save` image may list (Docker itself stops at
/// 125; a hostile manifest.json could name one huge file thousands of times).
const MAX_LAYERS: usize = 1000;
/// The manifest reference meaning "the layout's index.json itself".
pub const WHOLE_INDEX: &str = "index.json";

fn bad(path: &Path, why: impl Into<String>) -> StoreError {
    StoreError::Layer { layer: path.display().to_string(), what: why.into() }
}

/// Reads and parses the JSON document `rel` inside `dir`, bounded and
/// without leaving `dir`.
fn read_json(dir: &Path, rel: &str) -> Result<(Vec<u8>, serde_json::Value), StoreError> {
    let b = read_bounded(dir, rel, DOCUMENT_LIMIT)?;
    let v = serde_json::from_slice(&b).map_err(|e| bad(&dir.join(rel), format!("malformed JSON: {e}")))?;
    Ok((b, v))
}

/// An OCI image layout directory.
pub struct Layout {
    dir: PathBuf,
    index: Vec<u8>,
    entries: Vec<(Digest, Option<String>, Option<String>)>,
}

impl Layout {
    pub fn open(dir: &Path) -> Result<Layout, StoreError> {
        if !dir.join("oci-layout").is_file() {
            return Err(bad(dir, "not an OCI image layout (no oci-layout file)"));
        }
        let (index, v) = read_json(dir, "index.json")?;
        let mut entries = Vec::new();
        for m in v.get("manifests").and_then(|m| m.as_array()).into_iter().flatten() {
            let d: Digest = m
                .get("digest")
                .and_then(|d| d.as_str())
                .unwrap_or_default()
                .parse()
                .map_err(|e: berth_oci::DigestError| bad(dir, e.to_string()))?;
            let name = m.get("annotations").and_then(|a| a.get(REF_NAME)).and_then(|n| n.as_str()).map(str::to_string);
            let mt = m.get("mediaType").and_then(|n| n.as_str()).map(str::to_string);
            entries.push((d, name, mt));
        }
        Ok(Layout { dir: dir.to_path_buf(), index, entries })
    }

    /// The manifest to import: the one tagged `tag`, the only one, or the
    /// whole index (for a multi-platform layout). Also returns its tag.
    pub fn select(&self, tag: Option<&str>) -> Result<(String, Option<String>), StoreError> {
        if let Some(t) = tag {
            return self
                .entries
                .iter()
                .find(|(_, n, _)| n.as_deref() == Some(t))
                .map(|(d, n, _)| (d.to_string(), n.clone()))
                .ok_or_else(|| {
                    let have: Vec<String> = self.entries.iter().filter_map(|(_, n, _)| n.clone()).collect();
                    bad(
                        &self.dir,
                        format!(
                            "no image tagged {t:?}; the layout has: {}",
                            if have.is_empty() { "no tags".into() } else { have.join(", ") }
                        ),
                    )
                });
        }
        match self.entries.as_slice() {
            [] => Err(bad(&self.dir, "the layout's index.json lists no images")),
            [(d, n, _)] => Ok((d.to_string(), n.clone())),
            many => {
                let tags: Vec<&String> = many.iter().filter_map(|(_, n, _)| n.as_ref()).collect();
                if tags.len() > 1 && tags.iter().any(|t| *t != tags[0]) {
                    let names: Vec<&str> = tags.iter().map(|s| s.as_str()).collect();
                    return Err(bad(
                        &self.dir,
                        format!("the layout holds several images ({}): pick one with LAYOUT:TAG", names.join(", ")),
                    ));
                }
                Ok((WHOLE_INDEX.into(), tags.first().map(|t| t.to_string())))
            }
        }
    }

    /// A blob's path inside the layout.
    fn blob_path(d: &Digest) -> String {
        format!("blobs/sha256/{}", d.hex())
    }
}

impl Source for Layout {
    fn manifest(&self, reference: &str) -> Result<FetchedManifest, StoreError> {
        if reference == WHOLE_INDEX {
            return Ok(FetchedManifest {
                body: self.index.clone(),
                content_type: None,
                digest: Digest::of(&self.index),
            });
        }
        let d: Digest = reference.parse().map_err(|e: berth_oci::DigestError| bad(&self.dir, e.to_string()))?;
        let body = read_bounded(&self.dir, &Layout::blob_path(&d), DOCUMENT_LIMIT)?;
        let got = Digest::of(&body);
        if got != d {
            return Err(StoreError::DigestMismatch { digest: d.to_string(), got: got.to_string() });
        }
        let content_type = self.entries.iter().find(|(e, _, _)| *e == d).and_then(|(_, _, mt)| mt.clone());
        Ok(FetchedManifest { body, content_type, digest: d })
    }

    fn blob(&self, digest: &Digest) -> Result<Blob, StoreError> {
        let f = open_regular(&self.dir, &Layout::blob_path(digest))?;
        let size = f.metadata().ok().map(|m| m.len());
        Ok(Blob { reader: Box::new(f), size })
    }
}

/// A `docker save` archive, unpacked: `manifest.json` names the config and
/// layer files; berth serves a Docker schema2 manifest made from it.
pub struct DockerArchive {
    dir: PathBuf,
    manifest: Vec<u8>,
    /// Each blob's path inside `dir`.
    files: HashMap<Digest, String>,
    pub tags: Vec<String>,
}

/// Hashes the regular file `rel` inside `dir`; also returns its size and
/// first bytes.
fn hash_file(dir: &Path, rel: &str) -> Result<(Digest, u64, Vec<u8>), StoreError> {
    let f = open_regular(dir, rel)?;
    let mut hr = HashingReader::new(f);
    let mut head = vec![0u8; 4];
    let n = hr.read(&mut head).map_err(|e| StoreError::io(format!("reading {rel}"), e))?;
    head.truncate(n);
    std::io::copy(&mut hr, &mut std::io::sink()).map_err(|e| StoreError::io(format!("reading {rel}"), e))?;
    let (d, size) = hr.finish();
    Ok((d, size, head))
}

/// A path named inside the archive, cleaned; [`open_regular`] keeps it
/// from leading out.
fn inside(dir: &Path, name: &str) -> Result<String, StoreError> {
    let comps = crate::unpack::path::clean(name.as_bytes()).map_err(|w| bad(dir, format!("{name:?}: {w}")))?;
    Ok(crate::unpack::path::join(&comps).to_string_lossy().into_owned())
}

impl DockerArchive {
    /// Reads `dir/manifest.json`, picking the image tagged `want` (any of
    /// its RepoTags, as written or normalised) or the first.
    pub fn open(dir: &Path, want: Option<&str>) -> Result<DockerArchive, StoreError> {
        let (_, v) = read_json(dir, "manifest.json")?;
        let list = v.as_array().ok_or_else(|| bad(dir, "manifest.json is not a list"))?;
        let tags_of = |e: &serde_json::Value| -> Vec<String> {
            e.get("RepoTags")
                .and_then(|t| t.as_array())
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect()
        };
        let norm = |s: &str| crate::images::normalize_name(s).unwrap_or_else(|| s.to_string());
        let entry = match want {
            Some(w) => {
                list.iter().find(|e| tags_of(e).iter().any(|t| t == w || norm(t) == norm(w))).ok_or_else(|| {
                    let all: Vec<String> = list.iter().flat_map(tags_of).collect();
                    bad(dir, format!("no image tagged {w:?} in the archive; it has: {}", all.join(", ")))
                })?
            }
            None => list.first().ok_or_else(|| bad(dir, "manifest.json lists no images"))?,
        };
        let mut files = HashMap::new();
        let config_name = entry
            .get("Config")
            .and_then(|c| c.as_str())
            .ok_or_else(|| bad(dir, "manifest.json entry has no Config"))?;
        let config_path = inside(dir, config_name)?;
        let (cd, csize, _) = hash_file(dir, &config_path)?;
        files.insert(cd.clone(), config_path);
        let mut layers = Vec::new();
        let names = entry.get("Layers").and_then(|l| l.as_array()).map(Vec::as_slice).unwrap_or_default();
        if names.len() > MAX_LAYERS {
            return Err(bad(
                dir,
                format!("manifest.json lists {} layers; more than {MAX_LAYERS} is refused", names.len()),
            ));
        }
        // A file named many times is hashed once.
        let mut hashed: HashMap<String, (Digest, u64, Vec<u8>)> = HashMap::new();
        for l in names {
            let name = l.as_str().ok_or_else(|| bad(dir, "a layer name is not a string"))?;
            let p = inside(dir, name)?;
            let (d, size, head) = match hashed.get(&p) {
                Some(h) => h.clone(),
                None => {
                    let h = hash_file(dir, &p)?;
                    hashed.insert(p.clone(), h.clone());
                    h
                }
            };
            let mt = if head.starts_with(&[0x1f, 0x8b]) {
                "application/vnd.docker.image.rootfs.diff.tar.gzip"
            } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
                "application/vnd.oci.image.layer.v1.tar+zstd"
            } else {
                "application/vnd.docker.image.rootfs.diff.tar"
            };
            layers.push(serde_json::json!({ "mediaType": mt, "digest": d.to_string(), "size": size }));
            files.insert(d, p);
        }
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": { "mediaType": DOCKER_CONFIG, "digest": cd.to_string(), "size": csize },
            "layers": layers,
        }))
        .map_err(|e| bad(dir, e.to_string()))?;
        Ok(DockerArchive { dir: dir.to_path_buf(), manifest, files, tags: tags_of(entry) })
    }

    pub fn manifest_ref(&self) -> String {
        Digest::of(&self.manifest).to_string()
    }
}

impl Source for DockerArchive {
    fn manifest(&self, _reference: &str) -> Result<FetchedManifest, StoreError> {
        Ok(FetchedManifest {
            body: self.manifest.clone(),
            content_type: Some(DOCKER_MANIFEST.into()),
            digest: Digest::of(&self.manifest),
        })
    }

    fn blob(&self, digest: &Digest) -> Result<Blob, StoreError> {
        let p = self
            .files
            .get(digest)
            .ok_or_else(|| StoreError::io(format!("blob {digest}"), std::io::ErrorKind::NotFound.into()))?;
        let f = open_regular(&self.dir, p)?;
        let size = f.metadata().ok().map(|m| m.len());
        Ok(Blob { reader: Box::new(f), size })
    }
}
