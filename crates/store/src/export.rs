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
use berth_oci::digest::HashingWriter;
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

/// How an OCI export's layers are compressed: gzip by default, which every
/// reader (umoci 0.4, containerd, skopeo, docker) takes; zstd; or none.
/// A stored blob already in that form is copied byte for byte; any other
/// is recompressed (its diff_id, the uncompressed tar, stays the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LayerCompression {
    #[default]
    Gzip,
    Zstd,
    None,
}

impl std::str::FromStr for LayerCompression {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "gzip" => Ok(LayerCompression::Gzip),
            "zstd" => Ok(LayerCompression::Zstd),
            "none" => Ok(LayerCompression::None),
            _ => Err(format!("unknown --compress {s:?}: use gzip, zstd or none")),
        }
    }
}

impl LayerCompression {
    fn media_type(self) -> &'static str {
        match self {
            LayerCompression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            LayerCompression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
            LayerCompression::None => "application/vnd.oci.image.layer.v1.tar",
        }
    }

    /// Whether a stored layer of `media_type` is already in this form.
    fn is(self, media_type: &str) -> bool {
        match self {
            LayerCompression::Gzip => media_type.contains("gzip"),
            LayerCompression::Zstd => media_type.contains("zstd"),
            LayerCompression::None => !media_type.contains("gzip") && !media_type.contains("zstd"),
        }
    }

    /// Recompresses the blob at `src` into `dst`; returns its digest and size.
    fn recompress(self, src: &Path, dst: &Path) -> Result<(Digest, u64), StoreError> {
        let io = |e: io::Error| StoreError::io(format!("recompressing {}", src.display()), e);
        let f = std::fs::File::open(src).map_err(io)?;
        let (_, mut plain) =
            crate::import::decompress::decompress(io::BufReader::with_capacity(256 << 10, f)).map_err(io)?;
        let file = std::fs::File::create(dst).map_err(io)?;
        let out = HashingWriter::new(io::BufWriter::with_capacity(256 << 10, file));
        let out = match self {
            LayerCompression::Gzip => {
                let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::default());
                io::copy(&mut plain, &mut enc).map_err(io)?;
                enc.finish().map_err(io)?
            }
            LayerCompression::Zstd => {
                let mut enc = zstd::stream::write::Encoder::new(out, 3).map_err(io)?;
                enc.multithread(1).map_err(io)?;
                io::copy(&mut plain, &mut enc).map_err(io)?;
                enc.finish().map_err(io)?
            }
            LayerCompression::None => {
                let mut out = out;
                io::copy(&mut plain, &mut out).map_err(io)?;
                out
            }
        };
        let (mut file, digest, size) = out.finish();
        file.flush().map_err(io)?;
        Ok((digest, size))
    }
}

fn err(what: String) -> StoreError {
    StoreError::Import(format!("export: {what}"))
}

/// One exported layer: its descriptor and where its bytes are.
struct OutLayer {
    media_type: String,
    digest: Digest,
    size: u64,
    path: std::path::PathBuf,
}

/// The manifest to export: the stored one when it is OCI already and no
/// layer was recompressed, else the same content described with OCI media
/// types and the exported layers.
fn oci_manifest(store: &Store, rec: &ImageRecord, layers: &[OutLayer], same: bool) -> Result<Vec<u8>, StoreError> {
    if same && rec.manifest_media_type == berth_oci::manifest::OCI_MANIFEST {
        return store.read_blob(&rec.digest);
    }
    let config_size = std::fs::metadata(store.blob_path(&rec.id)).map(|m| m.len()).unwrap_or(0);
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": berth_oci::manifest::OCI_MANIFEST,
        "config": { "mediaType": berth_oci::manifest::OCI_CONFIG, "digest": rec.id.to_string(), "size": config_size },
        "layers": layers.iter().map(|l| serde_json::json!({
            "mediaType": l.media_type, "digest": l.digest.to_string(), "size": l.size })).collect::<Vec<_>>(),
    }))
    .map_err(|e| err(e.to_string()))
}

/// The files of an OCI layout for `rec` tagged `tag`: (name, source).
enum Item {
    Bytes(String, Vec<u8>),
    Blob(String, std::path::PathBuf),
}

/// What must outlive the writing of a layout's files: the shared gc lock
/// (so gc removes neither the blobs nor the staging dir meanwhile) and the
/// staging dir holding recompressed layers.
struct Held {
    _gc: crate::lock::LockGuard,
    _staging: Option<crate::pull::StagingDir>,
}

/// The layout's files, and what must be held while they are written.
fn layout_items(
    store: &Store,
    rec: &ImageRecord,
    tag: &str,
    compress: LayerCompression,
) -> Result<(Vec<Item>, Held), StoreError> {
    let gc = store.lock_shared("gc")?;
    let mut staging = None;
    let mut layers = Vec::new();
    let mut same = true;
    for l in &rec.layers {
        let p = store.blob_path(&l.digest);
        if !p.exists() {
            return Err(err(format!(
                "blob {} of image {} is not in the store (the layer came from another image); pull the image again",
                l.digest,
                rec.id.short()
            )));
        }
        if compress.is(&l.media_type) {
            let media_type = oci_media_type(&l.media_type).to_string();
            layers.push(OutLayer { media_type, digest: l.digest.clone(), size: l.size, path: p });
            continue;
        }
        same = false;
        if staging.is_none() {
            staging = Some(crate::pull::StagingDir::new(store, "export")?);
        }
        let dir = staging.as_ref().map(|s| s.path.clone()).unwrap_or_default();
        let out = dir.join(format!("layer-{}", layers.len()));
        let (digest, size) = compress.recompress(&p, &out)?;
        layers.push(OutLayer { media_type: compress.media_type().into(), digest, size, path: out });
    }
    let manifest = oci_manifest(store, rec, &layers, same)?;
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
    let config = (rec.id.clone(), store.blob_path(&rec.id));
    for (d, p) in std::iter::once(config).chain(layers.into_iter().map(|l| (l.digest, l.path))) {
        if seen.insert(d.clone()) {
            items.push(Item::Blob(format!("blobs/sha256/{}", d.hex()), p));
        }
    }
    Ok((items, Held { _gc: gc, _staging: staging }))
}

/// Writes `rec` as an OCI image layout in the new directory `dir`.
pub fn write_oci_layout(
    store: &Store,
    rec: &ImageRecord,
    tag: &str,
    compress: LayerCompression,
    dir: &Path,
) -> Result<(), StoreError> {
    if dir.exists() && std::fs::read_dir(dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
        return Err(err(format!("{} exists and is not empty", dir.display())));
    }
    let (items, _staging) = layout_items(store, rec, tag, compress)?;
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
pub fn write_oci_archive<W: Write>(
    store: &Store,
    rec: &ImageRecord,
    tag: &str,
    compress: LayerCompression,
    out: W,
) -> Result<W, StoreError> {
    let (items, _staging) = layout_items(store, rec, tag, compress)?;
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
    // Each thread holds about 100 MB at preset 6: eight at most.
    let threads = std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1).min(8);
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
    let stderr = crate::import::drain_stderr(&mut child);
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
    let status = child.wait().map_err(|e| StoreError::io("running tar", e))?;
    let msg = stderr.join().unwrap_or_default();
    if !status.success() {
        return Err(err(format!("tar failed: {msg}")));
    }
    Ok(())
}
