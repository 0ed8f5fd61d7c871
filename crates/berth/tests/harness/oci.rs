//! OCI images built in memory: blobs, layers, configs, manifests, indexes,
//! and OCI image-layout directories (readable by umoci and skopeo).

use std::fs;
use std::io::Write;
use std::path::Path;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub const MT_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MT_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MT_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const MT_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MT_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MT_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// `sha256:HEX` of some bytes.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// How a layer's tar is compressed on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::None => MT_TAR,
            Compression::Gzip => MT_GZIP,
            Compression::Zstd => MT_ZSTD,
        }
    }

    pub fn compress(self, data: &[u8]) -> Vec<u8> {
        match self {
            Compression::None => data.to_vec(),
            Compression::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(data).expect("gzip to memory");
                e.finish().expect("gzip to memory")
            }
            Compression::Zstd => zstd::encode_all(data, 3).expect("zstd to memory"),
        }
    }
}

/// Content-addressed bytes with a media type.
#[derive(Clone, Debug)]
pub struct Blob {
    pub media_type: String,
    pub digest: String,
    pub data: Vec<u8>,
}

impl Blob {
    pub fn new(media_type: &str, data: Vec<u8>) -> Blob {
        Blob { media_type: media_type.to_string(), digest: sha256_digest(&data), data }
    }

    /// The digest without its `sha256:` prefix.
    pub fn hex(&self) -> &str {
        self.digest.trim_start_matches("sha256:")
    }

    pub fn descriptor(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.data.len()})
    }
}

/// A layer blob plus its diff_id (digest of the uncompressed tar).
#[derive(Clone, Debug)]
pub struct Layer {
    pub blob: Blob,
    pub diff_id: String,
    /// The uncompressed tar, kept so the layer can be re-encoded.
    pub tar: Option<Vec<u8>>,
}

impl Layer {
    pub fn new(tar: Vec<u8>, compression: Compression) -> Layer {
        let diff_id = sha256_digest(&tar);
        let blob = match compression {
            // Same bytes: skip hashing them twice (slow in debug builds).
            Compression::None => {
                Blob { media_type: compression.media_type().to_string(), digest: diff_id.clone(), data: tar.clone() }
            }
            c => Blob::new(c.media_type(), c.compress(&tar)),
        };
        Layer { blob, diff_id, tar: Some(tar) }
    }

    /// A layer given as finished bytes: any media type, any diff_id.
    pub fn raw(media_type: &str, data: Vec<u8>, diff_id: String) -> Layer {
        Layer { blob: Blob::new(media_type, data), diff_id, tar: None }
    }

    /// The same tar with another compression.
    pub fn recompressed(&self, compression: Compression) -> Layer {
        let tar = self.tar.clone().expect("layer keeps its tar for re-encoding");
        Layer::new(tar, compression)
    }
}

/// A single-platform image: config, layers and manifest.
#[derive(Clone, Debug)]
pub struct Image {
    pub os: String,
    pub arch: String,
    pub layers: Vec<Layer>,
    pub config: Blob,
    pub manifest: Blob,
}

impl Image {
    /// linux/`arch` image with a default runtime config (PATH, `/bin/sh`).
    pub fn new(arch: &str, layers: Vec<Layer>) -> Image {
        let runtime = json!({
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/sh"],
            "WorkingDir": "/",
        });
        Image::with_config(arch, layers, runtime)
    }

    /// linux/`arch` image with `runtime` as the config's `config` object.
    pub fn with_config(arch: &str, layers: Vec<Layer>, runtime: Value) -> Image {
        let diff_ids: Vec<&str> = layers.iter().map(|l| l.diff_id.as_str()).collect();
        let history: Vec<Value> = layers
            .iter()
            .map(|_| json!({"created": "2024-01-01T00:00:00Z", "created_by": "berth test harness"}))
            .collect();
        let config = json!({
            "created": "2024-01-01T00:00:00Z",
            "architecture": arch,
            "os": "linux",
            "config": runtime,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": history,
        });
        let config = Blob::new(MT_CONFIG, serde_json::to_vec(&config).expect("config json"));
        Image::assemble("linux", arch, layers, config)
    }

    /// Builds the manifest around an existing config blob.
    pub fn assemble(os: &str, arch: &str, layers: Vec<Layer>, config: Blob) -> Image {
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": config.descriptor(),
            "layers": layers.iter().map(|l| l.blob.descriptor()).collect::<Vec<_>>(),
        });
        let manifest = Blob::new(MT_MANIFEST, serde_json::to_vec(&manifest).expect("manifest json"));
        Image { os: os.to_string(), arch: arch.to_string(), layers, config, manifest }
    }

    /// Manifest digest.
    pub fn digest(&self) -> &str {
        &self.manifest.digest
    }

    /// Image id: the config digest.
    pub fn id(&self) -> &str {
        &self.config.digest
    }

    pub fn platform(&self) -> String {
        format!("{}/{}", self.os, self.arch)
    }

    pub fn config_json(&self) -> Value {
        serde_json::from_slice(&self.config.data).expect("config is JSON")
    }

    /// Config and layer blobs (what must be uploaded before the manifest).
    pub fn blobs(&self) -> impl Iterator<Item = &Blob> {
        std::iter::once(&self.config).chain(self.layers.iter().map(|l| &l.blob))
    }

    /// The same image with zstd layers re-encoded as gzip: umoci 0.4.7
    /// cannot read zstd, and the unpacked tree does not depend on it.
    pub fn for_umoci(&self) -> Image {
        if self.layers.iter().all(|l| l.blob.media_type != MT_ZSTD) {
            return self.clone();
        }
        let layers = self
            .layers
            .iter()
            .map(|l| if l.blob.media_type == MT_ZSTD { l.recompressed(Compression::Gzip) } else { l.clone() })
            .collect();
        Image::assemble(&self.os, &self.arch, layers, self.config.clone())
    }

    /// Adds this image to the OCI layout at `dir` under `tag`.
    pub fn write_layout(&self, dir: &Path, tag: &str) {
        let mut layout = Layout::open(dir);
        for b in self.blobs().chain([&self.manifest]) {
            layout.put_blob(b);
        }
        layout.add_ref(&self.manifest, tag);
        layout.save();
    }
}

/// A multi-platform image index.
#[derive(Clone, Debug)]
pub struct Index {
    pub images: Vec<Image>,
    pub index: Blob,
}

impl Index {
    pub fn new(images: Vec<Image>) -> Index {
        let manifests: Vec<Value> = images
            .iter()
            .map(|i| {
                let mut d = i.manifest.descriptor();
                d["platform"] = json!({"os": i.os, "architecture": i.arch});
                d
            })
            .collect();
        let index = json!({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": manifests});
        Index { images, index: Blob::new(MT_INDEX, serde_json::to_vec(&index).expect("index json")) }
    }

    pub fn digest(&self) -> &str {
        &self.index.digest
    }

    /// The image for `arch` (panics when the index has none).
    pub fn image(&self, arch: &str) -> &Image {
        self.images.iter().find(|i| i.arch == arch).unwrap_or_else(|| panic!("index has no {arch} image"))
    }

    /// Adds the index (and every image) to the layout at `dir` under `tag`.
    pub fn write_layout(&self, dir: &Path, tag: &str) {
        let mut layout = Layout::open(dir);
        for i in &self.images {
            for b in i.blobs().chain([&i.manifest]) {
                layout.put_blob(b);
            }
        }
        layout.put_blob(&self.index);
        layout.add_ref(&self.index, tag);
        layout.save();
    }
}

/// An OCI image layout directory being written.
struct Layout<'a> {
    dir: &'a Path,
    index: Value,
}

impl<'a> Layout<'a> {
    fn open(dir: &'a Path) -> Layout<'a> {
        fs::create_dir_all(dir.join("blobs/sha256")).expect("create layout dir");
        fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).expect("write oci-layout");
        let index = match fs::read(dir.join("index.json")) {
            Ok(b) => serde_json::from_slice(&b).expect("existing index.json is JSON"),
            Err(_) => json!({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": []}),
        };
        Layout { dir, index }
    }

    fn put_blob(&mut self, blob: &Blob) {
        fs::write(self.dir.join("blobs/sha256").join(blob.hex()), &blob.data).expect("write layout blob");
    }

    fn add_ref(&mut self, blob: &Blob, tag: &str) {
        let manifests = self.index["manifests"].as_array_mut().expect("manifests array");
        manifests.retain(|m| m["annotations"][REF_NAME] != tag);
        let mut d = blob.descriptor();
        d["annotations"] = json!({ REF_NAME: tag });
        manifests.push(d);
    }

    fn save(&self) {
        fs::write(self.dir.join("index.json"), serde_json::to_vec(&self.index).expect("index json"))
            .expect("write index.json");
    }
}
