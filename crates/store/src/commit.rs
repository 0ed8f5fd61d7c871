//! `berth commit MACHINE IMAGE`: the machine's changes (its overlay upper
//! directory) become a new gzip layer on top of its image's layers; a
//! machine without an image becomes a one-layer image.

use crate::images::{local_name, ImageRecord, LayerRecord};
use crate::pull::StagingDir;
use crate::{Store, StoreError};
use berth_oci::digest::HashingWriter;
use berth_oci::Digest;
use std::io;

const GZIP_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Commits machine `machine` as image `name`.
pub fn commit(store: &Store, machine: &str, name: &str) -> Result<ImageRecord, StoreError> {
    let m = store.load_machine(machine)?;
    let name = local_name(name)?;
    let _lock = store.lock_machine_shared(machine)?;
    let _gc = store.lock_shared("gc")?;
    let base = match &m.image {
        Some(id) => Some(store.load_image(id)?),
        None => None,
    };
    let upper = store.machine_dir(machine).join("upper");
    let staging = StagingDir::new(store, "commit")?;
    let blob_path = staging.path.join("blob");
    let file = std::fs::File::create(&blob_path).map_err(|e| StoreError::io("creating the layer blob", e))?;
    let compressed = HashingWriter::new(io::BufWriter::with_capacity(256 << 10, file));
    let gz = flate2::write::GzEncoder::new(compressed, flate2::Compression::fast());
    let tar = HashingWriter::new(gz);
    let tar = crate::layerwriter::write_layer(&upper, tar)
        .map_err(|e| StoreError::io(format!("writing machine {machine}'s changes"), e))?;
    let (gz, diff_id, _) = tar.finish();
    let compressed = gz.finish().map_err(|e| StoreError::io("compressing the layer", e))?;
    let (buf, digest, size) = compressed.finish();
    buf.into_inner()
        .map_err(|e| StoreError::io("writing the layer blob", e.into_error()))?
        .sync_all()
        .map_err(|e| StoreError::io("syncing", e))?;
    // The layer directory is the upper dir itself: already overlayfs form.
    let out = std::process::Command::new("cp")
        .args(["-a", "--reflink=auto", "--no-target-directory", "--"])
        .arg(&upper)
        .arg(staging.path.join("root"))
        .output()
        .map_err(|e| StoreError::io("running cp", e))?;
    if !out.status.success() {
        return Err(StoreError::Import(format!(
            "copying the machine's changes: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let unpacked = crate::pull::sync_tree_size(&staging.path.join("root"))?;
    crate::blobs::write_atomic(
        &staging.path.join("meta.json"),
        format!("{{\"unpacked_size\":{unpacked}}}").as_bytes(),
    )?;

    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let created = crate::import::rfc3339(now);
    let mut config: serde_json::Value = match &base {
        Some(b) => serde_json::from_slice(&store.read_blob(&b.id)?)
            .map_err(|e| StoreError::Config { digest: b.id.to_string(), why: e.to_string() })?,
        None => {
            let p = berth_oci::Platform::host();
            serde_json::json!({ "architecture": p.architecture, "os": "linux", "config": { "Cmd": ["/bin/sh"] }, "rootfs": { "type": "layers", "diff_ids": [] } })
        }
    };
    config["created"] = created.clone().into();
    let mut diff_ids: Vec<serde_json::Value> = config["rootfs"]["diff_ids"].as_array().cloned().unwrap_or_default();
    diff_ids.push(diff_id.to_string().into());
    config["rootfs"] = serde_json::json!({ "type": "layers", "diff_ids": diff_ids });
    let mut history = config["history"].as_array().cloned().unwrap_or_default();
    history.push(serde_json::json!({ "created": created, "created_by": format!("berth commit {machine}") }));
    config["history"] = history.into();
    let config_body = serde_json::to_vec(&config).map_err(|e| StoreError::Import(e.to_string()))?;
    let config_digest = Digest::of(&config_body);

    let mut layers: Vec<LayerRecord> = base.as_ref().map(|b| b.layers.clone()).unwrap_or_default();
    layers.push(LayerRecord {
        digest: digest.clone(),
        diff_id: diff_id.clone(),
        size,
        media_type: GZIP_LAYER.into(),
        unpacked_size: unpacked,
    });
    let manifest_body = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": berth_oci::manifest::OCI_MANIFEST,
        "config": { "mediaType": berth_oci::manifest::OCI_CONFIG, "digest": config_digest.to_string(), "size": config_body.len() },
        "layers": layers.iter().map(|l| serde_json::json!({ "mediaType": oci_media_type(&l.media_type), "digest": l.digest.to_string(), "size": l.size })).collect::<Vec<_>>(),
    }))
    .map_err(|e| StoreError::Import(e.to_string()))?;
    let manifest_digest = Digest::of(&manifest_body);

    store.adopt_blob(&blob_path, &digest)?;
    staging.publish(&store.layer_path(&diff_id))?;
    store.put_blob(&config_digest, &config_body)?;
    store.put_blob(&manifest_digest, &manifest_body)?;
    let rec = ImageRecord {
        id: config_digest,
        digest: manifest_digest,
        index_digest: None,
        manifest_media_type: berth_oci::manifest::OCI_MANIFEST.into(),
        platform: base.as_ref().map(|b| b.platform.clone()).unwrap_or_else(berth_oci::Platform::host),
        created: Some(created),
        added: now,
        layers,
    };
    store.publish_image(&rec, vec![name])?;
    Ok(rec)
}

/// The OCI media type for a stored layer's (possibly Docker) media type.
pub fn oci_media_type(mt: &str) -> &str {
    match mt {
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
        | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.docker.image.rootfs.diff.tar" => "application/vnd.oci.image.layer.v1.tar",
        other => other,
    }
}
