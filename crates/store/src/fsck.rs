//! `berth fsck`: verifies the store without changing it. Every blob's
//! content must hash to its name; every image record must parse, be
//! named by its config digest, and find its config, manifest (which must
//! list that config and the record's layers), index and layer blobs and
//! its unpacked layer directories; every name in `refs.json` must point at
//! a record; every machine record must parse and find its image. Each
//! problem is reported on its own, so one broken record does not hide the
//! others. Runs under the shared gc lock: pulls may go on, gc waits.

use crate::images::ImageRecord;
use crate::{Store, StoreError};
use berth_oci::digest::HashingReader;
use berth_oci::Digest;
use std::collections::BTreeSet;
use std::path::Path;

/// One thing found broken: what (a blob, an image, a name, a machine) and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Problem {
    pub what: String,
    pub why: String,
}

/// What `fsck` checked and found.
#[derive(Debug, Default, serde::Serialize)]
pub struct FsckReport {
    pub blobs: usize,
    pub images: usize,
    pub layers: usize,
    pub names: usize,
    pub machines: usize,
    pub problems: Vec<Problem>,
}

impl FsckReport {
    fn problem(&mut self, what: impl Into<String>, why: impl Into<String>) {
        self.problems.push(Problem { what: what.into(), why: why.into() });
    }
}

/// The sha256 of a file's content, streamed.
fn hash_file(p: &Path) -> std::io::Result<Digest> {
    let mut r = HashingReader::new(std::fs::File::open(p)?);
    std::io::copy(&mut r, &mut std::io::sink())?;
    Ok(r.finish().0)
}

/// The digests a manifest names: its config and its layers.
fn manifest_refs(body: &[u8]) -> Option<(String, Vec<String>)> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let config = v.get("config")?.get("digest")?.as_str()?.to_string();
    let layers = v
        .get("layers")?
        .as_array()?
        .iter()
        .filter_map(|l| l.get("digest").and_then(|d| d.as_str()).map(str::to_string))
        .collect();
    Some((config, layers))
}

impl Store {
    /// Checks the whole store; problems are in the report, `Err` only when
    /// the store cannot be read at all.
    pub fn fsck(&self) -> Result<FsckReport, StoreError> {
        let _g = self.lock_shared("gc")?;
        let mut report = FsckReport::default();
        // Names first, records after: a pull publishes the record before
        // the name, so a name read now finds its record below.
        let refs = self.load_refs();
        let good_blobs = self.check_blobs(&mut report)?;
        let ids = self.check_images(&good_blobs, &mut report)?;
        match refs {
            Ok(refs) => {
                for (name, id) in refs {
                    report.names += 1;
                    if !ids.contains(&id) && !self.image_path(&id).exists() {
                        report.problem(
                            format!("name {name}"),
                            format!("points at image {} which has no record", id.short()),
                        );
                    }
                }
            }
            Err(e) => report.problem("refs.json", e.to_string()),
        }
        let dir = self.root().join("machines");
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            report.machines += 1;
            match self.load_machine(&name) {
                Ok(rec) => {
                    if let Some(id) = rec.image.filter(|id| !ids.contains(id)) {
                        report.problem(
                            format!("machine {name}"),
                            format!("is built on image {} which has no record", id.short()),
                        );
                    }
                    if !e.path().join("upper").is_dir() {
                        report.problem(format!("machine {name}"), "has no upper directory");
                    }
                }
                Err(err) => report.problem(format!("machine {name}"), err.to_string()),
            }
        }
        Ok(report)
    }

    /// Hashes every blob; returns the names of those whose content matches.
    fn check_blobs(&self, report: &mut FsckReport) -> Result<BTreeSet<String>, StoreError> {
        let dir = self.root().join("blobs/sha256");
        let mut good = BTreeSet::new();
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(good),
            Err(e) => return Err(StoreError::io(format!("listing {}", dir.display()), e)),
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue; // a write in progress (write_atomic's temporary name)
            }
            report.blobs += 1;
            let what = format!("blob sha256:{name}");
            let Ok(want) = Digest::from_hex(&name) else {
                report.problem(what, "is not named by a sha256 digest");
                continue;
            };
            if !e.file_type().map(|t| t.is_file()).unwrap_or(false) {
                report.problem(what, "is not a regular file");
                continue;
            }
            match hash_file(&e.path()) {
                Ok(got) if got == want => {
                    good.insert(name);
                }
                Ok(got) => {
                    report.problem(what, format!("content hashes to {got}: it is corrupt; pull the image again"))
                }
                Err(err) => report.problem(what, format!("cannot be read: {err}")),
            }
        }
        Ok(good)
    }

    /// Checks every image record; returns the IDs of those that parse.
    fn check_images(
        &self,
        good_blobs: &BTreeSet<String>,
        report: &mut FsckReport,
    ) -> Result<BTreeSet<Digest>, StoreError> {
        let dir = self.root().join("images");
        let mut ids = BTreeSet::new();
        let mut layers = BTreeSet::new();
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let file = e.file_name().to_string_lossy().into_owned();
            let Some(hex) = file.strip_suffix(".json") else { continue };
            report.images += 1;
            let what = format!("image {}", &hex[..hex.len().min(12)]);
            let rec: ImageRecord = match std::fs::read(e.path())
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
            {
                Ok(r) => r,
                Err(why) => {
                    report.problem(what, format!("record {file} is unreadable: {why}"));
                    continue;
                }
            };
            if rec.id.hex() != hex {
                report.problem(what, format!("record {file} holds image {}", rec.id));
                continue;
            }
            ids.insert(rec.id.clone());
            let mut need = vec![("config", &rec.id), ("manifest", &rec.digest)];
            if let Some(i) = &rec.index_digest {
                need.push(("index", i));
            }
            need.extend(rec.layers.iter().map(|l| ("layer blob", &l.digest)));
            for (kind, d) in need {
                if good_blobs.contains(d.hex()) {
                    continue;
                }
                // Published by a pull after the blobs were listed: check it now.
                let state = match hash_file(&self.blob_path(d)) {
                    Ok(got) if &got == d => continue,
                    Ok(_) => "is corrupt",
                    Err(_) => "is missing",
                };
                report.problem(what.clone(), format!("its {kind} {d} {state}"));
            }
            if let Ok(body) = std::fs::read(self.blob_path(&rec.digest)) {
                match manifest_refs(&body) {
                    Some((config, ls)) => {
                        let want: Vec<String> = rec.layers.iter().map(|l| l.digest.to_string()).collect();
                        if config != rec.id.to_string() || ls != want {
                            report.problem(
                                what.clone(),
                                "its manifest names another config or other layers than its record",
                            );
                        }
                    }
                    None => report.problem(what.clone(), "its manifest is not an image manifest"),
                }
            }
            for l in &rec.layers {
                if layers.insert(l.diff_id.clone()) {
                    report.layers += 1;
                }
                if !self.layer_path(&l.diff_id).is_dir() {
                    report.problem(what.clone(), format!("its unpacked layer {} is missing", l.diff_id));
                }
            }
        }
        Ok(ids)
    }
}
