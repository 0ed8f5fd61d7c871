//! `berth export`: an image as an OCI layout or `oci-archive` (readable by
//! skopeo and umoci: Docker media types are rewritten to OCI ones, blobs
//! are copied byte for byte), or any root tree as a tarball, plain or
//! compressed with gzip, xz (liblzma's multithreaded encoder, on every
//! core), zstd or bzip2. Without `--format` the file name decides, and a
//! name that says nothing (or something else) is refused, never written
//! in a format it does not name.

use crate::commit::oci_media_type;
use crate::images::ImageRecord;
use crate::{Store, StoreError};
use berth_oci::Digest;
use std::io::{self, Write};
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Tar,
    TarGz,
    TarXz,
    TarZst,
    TarBz2,
    Oci,
    OciArchive,
}

impl std::str::FromStr for ExportFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "tar" => ExportFormat::Tar,
            "tar.gz" | "tgz" => ExportFormat::TarGz,
            "tar.xz" | "txz" => ExportFormat::TarXz,
            "tar.zst" | "tzst" => ExportFormat::TarZst,
            "tar.bz2" | "tbz2" => ExportFormat::TarBz2,
            "oci" => ExportFormat::Oci,
            "oci-archive" => ExportFormat::OciArchive,
            _ => {
                return Err(format!(
                    "unknown --format {s:?}: use tar, tar.gz, tar.xz, tar.zst, tar.bz2, oci or oci-archive"
                ))
            }
        })
    }
}

impl ExportFormat {
    /// The format a file name names, for when `--format` is not given
    /// (`-`, standard output, is a plain tar); `Err` for a name that names
    /// none, as machinectl's export-tar refuses it.
    pub fn guess(file: &str) -> Result<ExportFormat, String> {
        if file == "-" {
            return Ok(ExportFormat::Tar);
        }
        let f = file.to_ascii_lowercase();
        let table: [(&[&str], ExportFormat); 5] = [
            (&[".tar.gz", ".tgz", ".gz"], ExportFormat::TarGz),
            (&[".tar.xz", ".txz", ".xz"], ExportFormat::TarXz),
            (&[".tar.zst", ".tzst", ".zst"], ExportFormat::TarZst),
            (&[".tar.bz2", ".tbz2", ".bz2"], ExportFormat::TarBz2),
            (&[".tar"], ExportFormat::Tar),
        ];
        for (ends, format) in table {
            if ends.iter().any(|e| f.ends_with(e)) {
                return Ok(format);
            }
        }
        Err(format!(
            "cannot tell a format from the name {file:?}: end it in .tar, .tar.gz, .tar.xz, .tar.zst or .tar.bz2 \
             (or .gz, .xz, .zst, .bz2), or give --format"
        ))
    }

    pub fn is_oci(self) -> bool {
        matches!(self, ExportFormat::Oci | ExportFormat::OciArchive)
    }
}

fn err(what: String) -> StoreError {
    StoreError::Import(format!("export: {what}"))
}

/// The manifest to export: the stored one when it is OCI already, else
/// the same content described with OCI media types.
fn oci_manifest(store: &Store, rec: &ImageRecord) -> Result<Vec<u8>, StoreError> {
    if rec.manifest_media_type == berth_oci::manifest::OCI_MANIFEST {
        return store.read_blob(&rec.digest);
    }
    let config_size = std::fs::metadata(store.blob_path(&rec.id)).map(|m| m.len()).unwrap_or(0);
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": berth_oci::manifest::OCI_MANIFEST,
        "config": { "mediaType": berth_oci::manifest::OCI_CONFIG, "digest": rec.id.to_string(), "size": config_size },
        "layers": rec.layers.iter().map(|l| serde_json::json!({
            "mediaType": oci_media_type(&l.media_type), "digest": l.digest.to_string(), "size": l.size })).collect::<Vec<_>>(),
    }))
    .map_err(|e| err(e.to_string()))
}

/// The files of an OCI layout for `rec` tagged `tag`: (name, source).
enum Item {
    Bytes(String, Vec<u8>),
    Blob(String, std::path::PathBuf),
}

fn layout_items(store: &Store, rec: &ImageRecord, tag: &str) -> Result<Vec<Item>, StoreError> {
    let manifest = oci_manifest(store, rec)?;
    let mdigest = Digest::of(&manifest);
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": berth_oci::manifest::OCI_INDEX,
        "manifests": [{
            "mediaType": berth_oci::manifest::OCI_MANIFEST,
            "digest": mdigest.to_string(),
            "size": manifest.len(),
            "annotations": { "org.opencontainers.image.ref.name": tag },
            "platform": { "os": rec.platform.os, "architecture": rec.platform.architecture },
        }],
    }))
    .map_err(|e| err(e.to_string()))?;
    let mut items = vec![
        Item::Bytes("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
        Item::Bytes("index.json".into(), index),
        Item::Bytes(format!("blobs/sha256/{}", mdigest.hex()), manifest),
    ];
    let mut seen = std::collections::HashSet::new();
    for d in std::iter::once(&rec.id).chain(rec.layers.iter().map(|l| &l.digest)) {
        if !seen.insert(d.clone()) {
            continue;
        }
        let p = store.blob_path(d);
        if !p.exists() {
            return Err(err(format!(
                "blob {d} of image {} is not in the store (the layer came from another image); pull the image again",
                rec.id.short()
            )));
        }
        items.push(Item::Blob(format!("blobs/sha256/{}", d.hex()), p));
    }
    Ok(items)
}

/// Writes `rec` as an OCI image layout in the new directory `dir`.
pub fn write_oci_layout(store: &Store, rec: &ImageRecord, tag: &str, dir: &Path) -> Result<(), StoreError> {
    if dir.exists() && std::fs::read_dir(dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
        return Err(err(format!("{} exists and is not empty", dir.display())));
    }
    let items = layout_items(store, rec, tag)?;
    std::fs::create_dir_all(dir.join("blobs/sha256"))
        .map_err(|e| StoreError::io(format!("creating {}", dir.display()), e))?;
    for item in items {
        match item {
            Item::Bytes(name, data) => std::fs::write(dir.join(&name), data),
            Item::Blob(name, src) => std::fs::copy(&src, dir.join(&name)).map(|_| ()),
        }
        .map_err(|e| StoreError::io(format!("writing {}", dir.display()), e))?;
    }
    Ok(())
}

/// Writes `rec` as an `oci-archive` (a tar of the layout) to `out`.
pub fn write_oci_archive<W: Write>(store: &Store, rec: &ImageRecord, tag: &str, out: W) -> Result<W, StoreError> {
    let items = layout_items(store, rec, tag)?;
    let mut b = tar::Builder::new(out);
    let io = |e: io::Error| {
        if e.kind() == io::ErrorKind::BrokenPipe {
            err("the output was closed before the archive was complete".into())
        } else {
            StoreError::io("writing the archive", e)
        }
    };
    let mut dir = tar::Header::new_ustar();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    for d in ["blobs/", "blobs/sha256/"] {
        b.append_data(&mut dir.clone(), d, io::empty()).map_err(io)?;
    }
    for item in items {
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        match item {
            Item::Bytes(name, data) => {
                h.set_size(data.len() as u64);
                b.append_data(&mut h, name, &data[..]).map_err(io)?;
            }
            Item::Blob(name, src) => {
                let f = std::fs::File::open(&src).map_err(io)?;
                h.set_size(f.metadata().map_err(io)?.len());
                b.append_data(&mut h, name, f).map_err(io)?;
            }
        }
    }
    b.into_inner().map_err(io)
}

/// An xz encoder at `xz -6` on every core: liblzma's multithreaded
/// encoder cuts the input into blocks (3 × the 8 MiB dictionary) that
/// compress in parallel; any xz decoder reads the result.
fn xz_stream() -> io::Result<liblzma::stream::Stream> {
    let threads = std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1);
    liblzma::stream::MtStreamBuilder::new()
        .threads(threads)
        .preset(6)
        .check(liblzma::stream::Check::Crc64)
        .encoder()
        .map_err(io::Error::other)
}

/// Writes the tree at `root` as a tarball (GNU tar: numeric owners, xattrs,
/// sorted names), compressed as `format` says, to `out`.
pub fn write_tree_tar<W: Write>(root: &Path, format: ExportFormat, out: W) -> Result<(), StoreError> {
    if format.is_oci() {
        return Err(err("an OCI format is not a tarball of a tree".into()));
    }
    let mut child = crate::import::spawn_tar(root)?;
    let mut stdout = child.stdout.take().ok_or_else(|| err("tar has no stdout".into()))?;
    let copied = (|| -> io::Result<()> {
        match format {
            ExportFormat::TarGz => {
                let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::default());
                io::copy(&mut stdout, &mut enc)?;
                enc.finish()?.flush()
            }
            ExportFormat::TarXz => {
                let mut enc = liblzma::write::XzEncoder::new_stream(out, xz_stream()?);
                io::copy(&mut stdout, &mut enc)?;
                enc.finish()?.flush()
            }
            ExportFormat::TarBz2 => {
                let mut enc = bzip2::write::BzEncoder::new(out, bzip2::Compression::best());
                io::copy(&mut stdout, &mut enc)?;
                enc.finish()?.flush()
            }
            ExportFormat::TarZst => {
                let mut enc = zstd::stream::write::Encoder::new(out, 3)?;
                // One worker thread beside this one, as `zstd -T1` runs:
                // reading tar's output overlaps with compressing.
                enc.multithread(1)?;
                io::copy(&mut stdout, &mut enc)?;
                enc.finish()?.flush()
            }
            _ => {
                let mut out = out;
                io::copy(&mut stdout, &mut out)?;
                out.flush()
            }
        }
    })();
    if let Err(e) = copied {
        // Stop tar before the caller unmounts the tree it is reading.
        let _ = child.kill();
        let _ = child.wait();
        // A reader that went away mid-stream got a truncated tarball: that
        // is a failure here, not the quiet broken pipe of a listing.
        return Err(if e.kind() == io::ErrorKind::BrokenPipe {
            err("the output was closed before the tarball was complete".into())
        } else {
            StoreError::io("writing the tarball", e)
        });
    }
    let o = child.wait_with_output().map_err(|e| StoreError::io("running tar", e))?;
    if !o.status.success() {
        return Err(err(format!("tar failed: {}", String::from_utf8_lossy(&o.stderr).trim())));
    }
    Ok(())
}
