//! Image records (`images/ID.json`) and names (`refs.json`): listing,
//! resolving a name the user typed, tagging and removing.

use crate::blobs::write_atomic;
use crate::{Store, StoreError};
use berth_oci::{Digest, Platform, Reference};
use std::collections::BTreeMap;

/// One layer of an image.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LayerRecord {
    /// Digest of the blob as the registry serves it (compressed).
    pub digest: Digest,
    /// Digest of the uncompressed tar: the key of `layers/`.
    pub diff_id: Digest,
    /// Compressed size in bytes.
    pub size: u64,
    pub media_type: String,
    /// Sum of the sizes of the layer's entries.
    #[serde(default)]
    pub unpacked_size: u64,
}

/// Everything berth knows about one image; its ID is the config digest.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ImageRecord {
    pub id: Digest,
    /// The image manifest's digest.
    pub digest: Digest,
    /// The index it was picked from, for multi-platform images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_digest: Option<Digest>,
    pub manifest_media_type: String,
    pub platform: Platform,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Unix time the image entered the store.
    pub added: u64,
    pub layers: Vec<LayerRecord>,
}

impl ImageRecord {
    pub fn size(&self) -> u64 {
        self.layers.iter().map(|l| l.unpacked_size).sum()
    }
}

pub type Refs = BTreeMap<String, Digest>;

/// The canonical form of a name the user typed, if it is a reference.
pub fn normalize_name(name: &str) -> Option<String> {
    name.parse::<Reference>().ok().map(|r| r.to_string())
}

/// The stored form of a local name (`--name`, `tag`): a name without a
/// registry host lives under `localhost/`, as podman does.
pub fn local_name(name: &str) -> Result<String, StoreError> {
    let first = name.split('/').next().unwrap_or_default();
    let has_host = name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let full = if has_host { name.to_string() } else { format!("localhost/{name}") };
    let r: Reference =
        full.parse().map_err(|e: berth_oci::ReferenceError| StoreError::BadName(name.into(), e.to_string()))?;
    if r.digest.is_some() {
        return Err(StoreError::BadName(name.into(), "a local name cannot carry a digest".into()));
    }
    Ok(r.to_string())
}

/// The keys a typed name may be stored under, in lookup order.
fn candidate_keys(name: &str) -> Vec<String> {
    let mut v = vec![name.to_string()];
    v.extend(normalize_name(name));
    v.extend(local_name(name).ok());
    v
}

impl Store {
    fn refs_path(&self) -> std::path::PathBuf {
        self.root().join("refs.json")
    }

    pub fn load_refs(&self) -> Result<Refs, StoreError> {
        let p = self.refs_path();
        match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| StoreError::Corrupt { path: p.display().to_string(), why: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Refs::new()),
            Err(e) => Err(StoreError::io(format!("reading {}", p.display()), e)),
        }
    }

    /// Changes `refs.json` under its lock; `f` returns whether to save.
    pub fn update_refs<T>(&self, f: impl FnOnce(&mut Refs) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let _g = self.lock_exclusive("refs")?;
        let mut refs = self.load_refs()?;
        let before = refs.clone();
        let out = f(&mut refs)?;
        if refs != before {
            let body = serde_json::to_vec_pretty(&refs)
                .map_err(|e| StoreError::Corrupt { path: "refs.json".into(), why: e.to_string() })?;
            write_atomic(&self.refs_path(), &body)?;
        }
        Ok(out)
    }

    pub fn load_image(&self, id: &Digest) -> Result<ImageRecord, StoreError> {
        let p = self.image_path(id);
        let b = std::fs::read(&p).map_err(|e| StoreError::io(format!("reading {}", p.display()), e))?;
        serde_json::from_slice(&b)
            .map_err(|e| StoreError::Corrupt { path: p.display().to_string(), why: e.to_string() })
    }

    /// Writes an image record (before any name points at it).
    pub fn save_image(&self, rec: &ImageRecord) -> Result<(), StoreError> {
        let body = serde_json::to_vec_pretty(rec)
            .map_err(|e| StoreError::Corrupt { path: "image".into(), why: e.to_string() })?;
        write_atomic(&self.image_path(&rec.id), &body)
    }

    /// Makes an image visible: its record first, then its names, so a
    /// crash in between leaves an unnamed record for gc, never a name
    /// without an image.
    pub fn publish_image(&self, rec: &ImageRecord, names: Vec<String>) -> Result<(), StoreError> {
        self.save_image(rec)?;
        self.update_refs(|refs| {
            for n in names {
                refs.insert(n, rec.id.clone());
            }
            Ok(())
        })
    }

    /// Every image record, newest first.
    pub fn images(&self) -> Result<Vec<ImageRecord>, StoreError> {
        let dir = self.root().join("images");
        let mut out = Vec::new();
        let rd = std::fs::read_dir(&dir).map_err(|e| StoreError::io(format!("listing {}", dir.display()), e))?;
        for e in rd.flatten() {
            let name = e.file_name();
            let Some(hex) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            let Ok(id) = Digest::from_hex(hex) else {
                continue;
            };
            out.push(self.load_image(&id)?);
        }
        out.sort_by(|a, b| b.added.cmp(&a.added).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Names pointing at `id`, sorted.
    pub fn names_of(refs: &Refs, id: &Digest) -> Vec<String> {
        refs.iter().filter(|(_, v)| *v == id).map(|(k, _)| k.clone()).collect()
    }

    /// Resolves what a user typed: a name (as typed or normalised), a full
    /// `sha256:` ID, or a unique ID prefix.
    pub fn resolve(&self, name: &str) -> Result<ImageRecord, StoreError> {
        let refs = self.load_refs()?;
        if let Some(id) = candidate_keys(name).iter().find_map(|k| refs.get(k)) {
            return self.load_image(id);
        }
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        if hex.len() >= 4 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let matches: Vec<ImageRecord> =
                self.images()?.into_iter().filter(|r| r.id.hex().starts_with(hex)).collect();
            match matches.len() {
                0 => {}
                1 => return Ok(matches.into_iter().next().expect("one match")),
                _ => {
                    return Err(StoreError::Ambiguous {
                        name: name.into(),
                        matches: matches.iter().map(|m| m.id.short().to_string()).collect::<Vec<_>>().join(", "),
                    })
                }
            }
        }
        Err(StoreError::UnknownImage(name.to_string()))
    }

    /// Adds the name `dst` for the image `src` resolves to.
    pub fn tag(&self, src: &str, dst: &str) -> Result<String, StoreError> {
        let rec = self.resolve(src)?;
        let name = local_name(dst)?;
        self.update_refs(|refs| {
            refs.insert(name.clone(), rec.id.clone());
            Ok(())
        })?;
        Ok(name)
    }

    /// Removes names (or, for an ID, the image with all its names), then
    /// the images no name points at and what only they used. All names are
    /// checked before anything changes.
    pub fn remove_images(&self, names: &[String], force: bool) -> Result<Vec<String>, StoreError> {
        let _gc = self.lock_exclusive("gc")?;
        let mut report = Vec::new();
        self.update_refs(|refs| {
            let mut plan: Vec<(String, Vec<String>)> = Vec::new();
            for n in names {
                let key = candidate_keys(n).into_iter().find(|k| refs.contains_key(k));
                if let Some(k) = key {
                    plan.push((n.clone(), vec![k]));
                    continue;
                }
                let rec = self.resolve(n)?;
                let all = Store::names_of(refs, &rec.id);
                if all.len() > 1 && !force {
                    return Err(StoreError::MultipleNames { id: rec.id.short().into(), names: all.join(", ") });
                }
                plan.push((n.clone(), all));
            }
            // Refuse to orphan an image that machines are built on.
            let mut after = refs.clone();
            for (_, keys) in &plan {
                for k in keys {
                    after.remove(k);
                }
            }
            for (_, keys) in &plan {
                for k in keys {
                    let Some(id) = refs.get(k) else { continue };
                    if !after.values().any(|v| v == id) {
                        let users = self.machines_using(id)?;
                        if !users.is_empty() {
                            return Err(StoreError::ImageInUse { image: k.clone(), machines: users.join(", ") });
                        }
                    }
                }
            }
            for (_, keys) in plan {
                for k in &keys {
                    if refs.remove(k).is_some() {
                        report.push(format!("Untagged: {k}"));
                    }
                }
            }
            Ok(())
        })?;
        let stats = self.sweep()?;
        for id in stats.images {
            report.push(format!("Deleted: {id}"));
        }
        Ok(report)
    }
}
