//! `berth pull`: resolve the reference, pick the platform, then stream each
//! layer download → sha256 → decompress → diff_id hash → unpack, several
//! layers at once, into staging under `tmp/`. Nothing is renamed into the
//! store until every digest has checked out, so a failed or killed pull
//! leaves the store as it was (bar staging that `gc` sweeps).

use crate::images::{ImageRecord, LayerRecord};
use crate::unpack::{unpack_layer, UnpackOptions};
use crate::{Store, StoreError};
use berth_oci::digest::HashingReader;
use berth_oci::manifest::{self, Fetched, LayerCompression};
use berth_oci::registry::{Blob, Client, ClientOptions, FetchedManifest};
use berth_oci::{Digest, Platform, Reference};
use oci_spec::image::{Descriptor, ImageConfiguration, ImageManifest};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Condvar, Mutex};

/// Configs larger than this are refused; real ones are a few KiB.
const CONFIG_LIMIT: u64 = 16 << 20;
/// Default bound on a layer's unpacked size (`--max-layer-size`).
pub const DEFAULT_MAX_LAYER_BYTES: u64 = 64 << 30;

#[derive(Debug, Clone)]
pub struct PullOptions {
    pub platform: Platform,
    pub client: ClientOptions,
    pub max_layer_bytes: u64,
    /// Layers fetched at once.
    pub jobs: usize,
    /// An extra local name for the image (`--name`).
    pub name: Option<String>,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            platform: Platform::host(),
            client: ClientOptions::default(),
            max_layer_bytes: DEFAULT_MAX_LAYER_BYTES,
            jobs: 3,
            name: None,
        }
    }
}

/// Callbacks for progress display; all default to nothing.
pub trait Progress: Sync {
    fn resolved(&self, _reference: &str, _digest: &Digest, _layers: usize) {}
    fn layer_start(&self, _digest: &Digest, _size: u64) {}
    fn layer_bytes(&self, _digest: &Digest, _n: u64) {}
    fn layer_done(&self, _digest: &Digest, _cached: bool) {}
}

/// Progress that shows nothing.
pub struct Quiet;
impl Progress for Quiet {}

/// Where manifests and blobs come from: a registry, or a local OCI layout
/// or archive (`berth import`).
pub trait Source: Sync {
    fn manifest(&self, reference: &str) -> Result<FetchedManifest, StoreError>;
    fn blob(&self, digest: &Digest) -> Result<Blob, StoreError>;
}

impl Source for Client {
    fn manifest(&self, reference: &str) -> Result<FetchedManifest, StoreError> {
        Ok(Client::manifest(self, reference)?)
    }
    fn blob(&self, digest: &Digest) -> Result<Blob, StoreError> {
        Ok(Client::blob(self, digest)?)
    }
}

/// Pulls `reference` into the store and names it.
pub fn pull(
    store: &Store,
    reference: &Reference,
    opts: &PullOptions,
    progress: &dyn Progress,
) -> Result<ImageRecord, StoreError> {
    let client = Client::new(reference, &opts.client)?;
    client.ping()?;
    let mut names = vec![reference.to_string()];
    if let Some(n) = &opts.name {
        names.push(crate::images::local_name(n)?);
    }
    pull_from(store, &client, &reference.api_reference(), &reference.to_string(), names, opts, progress)
}

/// Fetches the image `manifest_ref` names in `source`, verifies and stores
/// it, and gives it `names`. `label` is what progress shows.
pub fn pull_from(
    store: &Store,
    client: &dyn Source,
    manifest_ref: &str,
    label: &str,
    names: Vec<String>,
    opts: &PullOptions,
    progress: &dyn Progress,
) -> Result<ImageRecord, StoreError> {
    let first = client.manifest(manifest_ref)?;
    let mut index_blob = None;
    let (mbody, mdigest, manifest) = match manifest::parse(first.content_type.as_deref(), &first.body)? {
        Fetched::Manifest(m) => (first.body, first.digest, m),
        Fetched::Index(idx) => {
            let (digest, _) = manifest::select_platform(&idx, &opts.platform)?;
            let m = client.manifest(&digest.to_string())?;
            match manifest::parse(m.content_type.as_deref(), &m.body)? {
                Fetched::Manifest(man) => {
                    index_blob = Some((first.digest, first.body));
                    (m.body, m.digest, man)
                }
                Fetched::Index(_) => {
                    return Err(StoreError::Layer {
                        layer: digest.to_string(),
                        what: "nested image indexes are not supported".into(),
                    })
                }
            }
        }
    };
    let (config_digest, config_body, config) = fetch_config(client, &manifest)?;
    let platform = Platform {
        os: config.os().to_string(),
        architecture: config.architecture().to_string(),
        variant: config.variant().clone(),
    };
    if !opts.platform.matches(&platform) {
        return Err(manifest::ManifestError::WrongPlatform { want: opts.platform.clone(), have: platform }.into());
    }
    let diff_ids: Vec<Digest> = config
        .rootfs()
        .diff_ids()
        .iter()
        .map(|d| d.parse::<Digest>())
        .collect::<Result<_, _>>()
        .map_err(|e| StoreError::Config { digest: config_digest.to_string(), why: e.to_string() })?;
    if diff_ids.len() != manifest.layers().len() {
        return Err(StoreError::Config {
            digest: config_digest.to_string(),
            why: format!("{} diff_ids for {} layers", diff_ids.len(), manifest.layers().len()),
        });
    }
    progress.resolved(label, &mdigest, diff_ids.len());

    let _gc = store.lock_shared("gc")?;
    let staged = fetch_layers(store, client, manifest.layers(), &diff_ids, opts, progress)?;

    // Everything verified: publish blobs and layers, then the record, then the name.
    let mut records = Vec::new();
    for (desc, stage) in manifest.layers().iter().zip(staged) {
        records.push(stage.commit(store, desc)?);
    }
    store.put_blob(&config_digest, &config_body)?;
    store.put_blob(&mdigest, &mbody)?;
    if let Some((d, body)) = &index_blob {
        store.put_blob(d, body)?;
    }
    let rec = ImageRecord {
        id: config_digest,
        digest: mdigest,
        index_digest: index_blob.map(|(d, _)| d),
        manifest_media_type: manifest
            .media_type()
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_else(|| manifest::OCI_MANIFEST.into()),
        platform,
        created: config.created().clone(),
        added: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        layers: records,
    };
    store.publish_image(&rec, names)?;
    Ok(rec)
}

fn fetch_config(
    client: &dyn Source,
    manifest: &ImageManifest,
) -> Result<(Digest, Vec<u8>, ImageConfiguration), StoreError> {
    let desc = manifest.config();
    let digest: Digest = desc.digest().to_string().parse().map_err(|e: berth_oci::DigestError| StoreError::Config {
        digest: desc.digest().to_string(),
        why: e.to_string(),
    })?;
    let blob = client.blob(&digest)?;
    let mut hr = HashingReader::new(blob.reader.take(CONFIG_LIMIT + 1));
    let mut body = Vec::new();
    hr.read_to_end(&mut body).map_err(|e| StoreError::io(format!("reading config {digest}"), e))?;
    let (got, n) = hr.finish();
    if n > CONFIG_LIMIT {
        return Err(StoreError::Config {
            digest: digest.to_string(),
            why: format!("larger than {CONFIG_LIMIT} bytes"),
        });
    }
    if got != digest {
        return Err(StoreError::DigestMismatch { digest: digest.to_string(), got: got.to_string() });
    }
    let config: ImageConfiguration = serde_json::from_slice(&body)
        .map_err(|e| StoreError::Config { digest: digest.to_string(), why: e.to_string() })?;
    Ok((digest, body, config))
}

/// A layer ready to publish: already in the store, or staged and verified.
enum Staged {
    /// The layer is unpacked already; `blob` holds its compressed blob
    /// when the store lacked that one (another image brought the layer).
    Cached {
        diff_id: Digest,
        unpacked: u64,
        blob: Option<StagingDir>,
    },
    Fresh {
        dir: StagingDir,
        diff_id: Digest,
        unpacked: u64,
    },
}

impl Staged {
    fn commit(self, store: &Store, desc: &Descriptor) -> Result<LayerRecord, StoreError> {
        let digest: Digest = desc.digest().to_string().parse().map_err(|e: berth_oci::DigestError| {
            StoreError::Layer { layer: desc.digest().to_string(), what: e.to_string() }
        })?;
        let (diff_id, unpacked) = match self {
            Staged::Cached { diff_id, unpacked, blob } => {
                if let Some(dir) = blob {
                    store.adopt_blob(&dir.path.join("blob"), &digest)?;
                }
                (diff_id, unpacked)
            }
            Staged::Fresh { dir, diff_id, unpacked } => {
                store.adopt_blob(&dir.path.join("blob"), &digest)?;
                dir.publish(&store.layer_path(&diff_id))?;
                (diff_id, unpacked)
            }
        };
        Ok(LayerRecord {
            digest,
            diff_id,
            size: desc.size(),
            media_type: desc.media_type().to_string(),
            unpacked_size: unpacked,
        })
    }
}

/// A directory under `tmp/` that is removed unless published.
pub(crate) struct StagingDir {
    pub(crate) path: PathBuf,
    keep: bool,
}

impl StagingDir {
    pub(crate) fn new(store: &Store, tag: &str) -> Result<Self, StoreError> {
        let path = store.tmp_dir().join(format!("{tag}-{}-{:x}", std::process::id(), crate::blobs::unique()));
        std::fs::create_dir(&path).map_err(|e| StoreError::io(format!("creating {}", path.display()), e))?;
        Ok(StagingDir { path, keep: false })
    }

    /// Renames the staging dir to `dest` unless something is there already
    /// (a concurrent pull won the race: its copy is as good as ours).
    pub(crate) fn publish(mut self, dest: &Path) -> Result<(), StoreError> {
        match rustix::fs::renameat_with(
            rustix::fs::CWD,
            &self.path,
            rustix::fs::CWD,
            dest,
            rustix::fs::RenameFlags::NOREPLACE,
        ) {
            Ok(()) => {
                self.keep = true;
                crate::blobs::sync_parent(dest).map_err(|e| StoreError::io(format!("publishing {}", dest.display()), e))
            }
            Err(rustix::io::Errno::EXIST) | Err(rustix::io::Errno::NOTEMPTY) => Ok(()),
            Err(e) => Err(StoreError::io(format!("publishing {}", dest.display()), e.into())),
        }
    }
}

impl Drop for StagingDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

#[derive(Clone)]
enum Slot {
    Pending,
    Ready(PathBuf),
    Failed,
}

struct Shared {
    slots: Mutex<Vec<Slot>>,
    changed: Condvar,
    abort: AtomicBool,
}

impl Shared {
    fn set(&self, i: usize, s: Slot) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots[i] = s;
        self.changed.notify_all();
    }

    /// Waits until every layer below `i` is unpacked; their roots, nearest first.
    fn lowers(&self, i: usize) -> io::Result<Vec<PathBuf>> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if slots[..i].iter().any(|s| matches!(s, Slot::Failed)) || self.abort.load(Ordering::Relaxed) {
                return Err(io::Error::other("a lower layer failed"));
            }
            if slots[..i].iter().all(|s| matches!(s, Slot::Ready(_))) {
                return Ok(slots[..i]
                    .iter()
                    .rev()
                    .filter_map(|s| if let Slot::Ready(p) = s { Some(p.clone()) } else { None })
                    .collect());
            }
            slots = self.changed.wait(slots).unwrap_or_else(|p| p.into_inner());
        }
    }
}

fn fetch_layers(
    store: &Store,
    client: &dyn Source,
    layers: &[Descriptor],
    diff_ids: &[Digest],
    opts: &PullOptions,
    progress: &dyn Progress,
) -> Result<Vec<Staged>, StoreError> {
    let n = layers.len();
    let shared =
        Shared { slots: Mutex::new(vec![Slot::Pending; n]), changed: Condvar::new(), abort: AtomicBool::new(false) };
    let results: Mutex<Vec<Option<Result<Staged, StoreError>>>> = Mutex::new((0..n).map(|_| None).collect());
    let next = AtomicUsize::new(0);
    let jobs = opts.jobs.clamp(1, n.max(1));
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= n || shared.abort.load(Ordering::Relaxed) {
                    break;
                }
                let r = fetch_one(store, client, &layers[i], &diff_ids[i], i, &shared, opts, progress);
                match &r {
                    Ok(Staged::Cached { diff_id, .. }) => {
                        shared.set(i, Slot::Ready(store.layer_path(diff_id).join("root")))
                    }
                    Ok(Staged::Fresh { dir, .. }) => shared.set(i, Slot::Ready(dir.path.join("root"))),
                    Err(_) => {
                        shared.abort.store(true, Ordering::Relaxed);
                        shared.set(i, Slot::Failed);
                    }
                }
                results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(r);
            });
        }
    });
    let results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    // Report the real cause: the first layer that failed on its own, not
    // one that stopped because another failed.
    let mut out = Vec::with_capacity(n);
    let mut first_err = None;
    for r in results {
        match r {
            Some(Ok(s)) => out.push(s),
            Some(Err(StoreError::Layer { what, .. }))
                if what.contains("a lower layer failed") || what.contains("pull aborted") => {}
            Some(Err(e)) => {
                first_err.get_or_insert(e);
            }
            None => {}
        }
    }
    match first_err {
        Some(e) => Err(e),
        None if out.len() == n => Ok(out),
        None => Err(StoreError::Layer { layer: "?".into(), what: "pull aborted".into() }),
    }
}

/// Tees the compressed stream into the staged blob file, hashing and
/// counting it, and reporting progress.
struct Tee<'a, R> {
    inner: HashingReader<R>,
    out: io::BufWriter<std::fs::File>,
    digest: &'a Digest,
    progress: &'a dyn Progress,
    abort: &'a AtomicBool,
    limit: u64,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.abort.load(Ordering::Relaxed) {
            return Err(io::Error::other("pull aborted"));
        }
        let room = (self.limit.saturating_sub(self.inner.count()) as usize).min(buf.len());
        if room == 0 {
            return Ok(0);
        }
        let n = self.inner.read(&mut buf[..room])?;
        self.out.write_all(&buf[..n])?;
        self.progress.layer_bytes(self.digest, n as u64);
        Ok(n)
    }
}

/// Bytes per chunk handed from the decompressing thread to the unpacker;
/// below malloc's mmap threshold so recycled buffers stay cheap.
const CHUNK: usize = 120 << 10;

/// The producer stage: sniffs the compression, decompresses, hashes the
/// diff and sends chunks to the unpacker. Hands the tee back so the caller
/// can drain and check the compressed stream.
fn decode<'a, R: Read>(
    mut tee: Tee<'a, R>,
    tx: SyncSender<io::Result<Vec<u8>>>,
    recycle: Receiver<Vec<u8>>,
    max: u64,
) -> (Tee<'a, R>, io::Result<Digest>) {
    let r = (|| {
        let mut br = BufReader::with_capacity(256 << 10, &mut tee);
        let head = br.fill_buf()?;
        let decoded: Box<dyn Read + '_> = match LayerCompression::sniff(head) {
            Some(LayerCompression::Gzip) => Box::new(flate2::bufread::MultiGzDecoder::new(br)),
            Some(LayerCompression::Zstd) => Box::new(zstd::stream::read::Decoder::with_buffer(br)?),
            _ => Box::new(br),
        };
        let mut diff = HashingReader::new(Bounded { inner: decoded, left: max });
        loop {
            let mut buf = recycle.try_recv().unwrap_or_default();
            buf.resize(CHUNK, 0);
            let mut n = 0;
            while n < CHUNK {
                match diff.read(&mut buf[n..]) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            if n == 0 {
                break;
            }
            buf.truncate(n);
            if tx.send(Ok(buf)).is_err() {
                return Err(io::Error::other("the unpacker stopped"));
            }
        }
        Ok(diff.finish().0)
    })();
    if let Err(e) = &r {
        let _ = tx.send(Err(io::Error::new(e.kind(), e.to_string())));
    }
    (tee, r)
}

/// The consumer end of the chunk channel.
struct ChannelReader {
    rx: Receiver<io::Result<Vec<u8>>>,
    recycle: SyncSender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(Ok(next)) => {
                    let old = std::mem::replace(&mut self.cur, next);
                    let _ = self.recycle.try_send(old);
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0), // the producer finished
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Stops a decompressed stream that grows past the limit.
struct Bounded<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Err(io::Error::other(TOO_LARGE));
        }
        let want = (buf.len() as u64).min(self.left) as usize;
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}

const TOO_LARGE: &str = "decompressed stream exceeds the layer size limit";

#[allow(clippy::too_many_arguments)]
fn fetch_one(
    store: &Store,
    client: &dyn Source,
    desc: &Descriptor,
    diff_id: &Digest,
    index: usize,
    shared: &Shared,
    opts: &PullOptions,
    progress: &dyn Progress,
) -> Result<Staged, StoreError> {
    let digest: Digest = desc.digest().to_string().parse().map_err(|e: berth_oci::DigestError| StoreError::Layer {
        layer: desc.digest().to_string(),
        what: e.to_string(),
    })?;
    LayerCompression::from_media_type(desc.media_type().as_ref())?;
    let layer_dir = store.layer_path(diff_id);
    if layer_dir.join("root").is_dir() {
        // The unpacked layer is here; its blob may not be (another image
        // brought the same diff_id compressed differently): fetch just the
        // blob, verified, so export and push of this image work.
        let blob = if store.has_blob(&digest) { None } else { Some(fetch_blob_only(store, client, desc, &digest)?) };
        progress.layer_done(&digest, true);
        let unpacked = read_meta(&layer_dir).unwrap_or(0);
        return Ok(Staged::Cached { diff_id: diff_id.clone(), unpacked, blob });
    }
    let dir = StagingDir::new(store, "layer")?;
    let root = dir.path.join("root");
    std::fs::create_dir(&root).map_err(|e| StoreError::io(format!("creating {}", root.display()), e))?;
    let blob_path = dir.path.join("blob");
    let blob_file = std::fs::File::create(&blob_path)
        .map_err(|e| StoreError::io(format!("creating {}", blob_path.display()), e))?;
    let blob = client.blob(&digest)?;
    progress.layer_start(&digest, desc.size());
    let tee = Tee {
        inner: HashingReader::new(blob.reader),
        out: io::BufWriter::with_capacity(256 << 10, blob_file),
        digest: &digest,
        progress,
        abort: &shared.abort,
        // Read at most one byte past the declared size: enough to tell
        // "too long" without letting a server stream forever.
        limit: desc.size() + 1,
    };
    let layer_name = digest.to_string();
    let lowers_fn = || shared.lowers(index);
    let unpack_opts =
        UnpackOptions { layer: layer_name.clone(), has_lowers: index > 0, max_bytes: opts.max_layer_bytes };
    // Two stages on two threads, like `gzip -dc | tar -x`: download, hash
    // and decompress on one; unpack (mostly system calls) on the other.
    let max_decoded = opts.max_layer_bytes.saturating_add(1 << 20);
    let (unpacked, (mut tee, decoded)) = std::thread::scope(|s| {
        let (tx, rx) = sync_channel::<io::Result<Vec<u8>>>(8);
        let (recycle_tx, recycle_rx) = sync_channel::<Vec<u8>>(10);
        let producer = s.spawn(move || decode(tee, tx, recycle_rx, max_decoded));
        let mut reader = ChannelReader { rx, recycle: recycle_tx, cur: Vec::new(), pos: 0 };
        let res = unpack_layer(&mut reader, &root, &unpack_opts, &lowers_fn).and_then(|stats| {
            // The tar's trailing blocks count towards the diff_id too.
            io::copy(&mut reader, &mut io::sink())
                .map_err(|e| StoreError::Layer { layer: layer_name.clone(), what: e.to_string() })?;
            Ok(stats)
        });
        drop(reader); // unblocks the producer if the unpack stopped early
        let produced = producer.join().unwrap_or_else(|_| std::process::abort());
        (res, produced)
    });
    let unpacked = unpacked
        .map_err(|e| match e {
            StoreError::Layer { what, .. } if what.contains(TOO_LARGE) => {
                StoreError::TooLarge { layer: layer_name.clone(), limit: opts.max_layer_bytes }
            }
            e => e,
        })
        .and_then(|stats| {
            let d = decoded.map_err(|e| StoreError::Layer { layer: layer_name.clone(), what: e.to_string() })?;
            Ok((stats, d))
        });
    // Whatever the unpack said, read the blob to its end: a bad download
    // (truncated, corrupt) is the root cause to report.
    let _ = io::copy(&mut tee, &mut io::sink());
    let Tee { inner, out, .. } = tee;
    let (got, count) = inner.finish();
    if shared.abort.load(Ordering::Relaxed) && unpacked.is_err() {
        return Err(StoreError::Layer { layer: layer_name, what: "pull aborted".into() });
    }
    if count < desc.size() {
        return Err(StoreError::Truncated { digest: layer_name, got: count, want: desc.size() });
    }
    if got != digest || count != desc.size() {
        return Err(StoreError::DigestMismatch { digest: layer_name, got: got.to_string() });
    }
    let (stats, diff_got) = unpacked?;
    if &diff_got != diff_id {
        return Err(StoreError::DiffIdMismatch { diff_id: diff_id.to_string(), got: diff_got.to_string() });
    }
    let file = out.into_inner().map_err(|e| StoreError::io(format!("writing blob {digest}"), e.into_error()))?;
    file.sync_all().map_err(|e| StoreError::io(format!("writing blob {digest}"), e))?;
    sync_tree(&root)?;
    crate::blobs::write_atomic(
        &dir.path.join("meta.json"),
        format!("{{\"unpacked_size\":{}}}", stats.bytes).as_bytes(),
    )?;
    progress.layer_done(&digest, false);
    Ok(Staged::Fresh { dir, diff_id: diff_id.clone(), unpacked: stats.bytes })
}

/// Downloads a blob into staging and verifies its digest and size.
fn fetch_blob_only(
    store: &Store,
    client: &dyn Source,
    desc: &Descriptor,
    digest: &Digest,
) -> Result<StagingDir, StoreError> {
    let dir = StagingDir::new(store, "blob")?;
    let path = dir.path.join("blob");
    let mut file =
        std::fs::File::create(&path).map_err(|e| StoreError::io(format!("creating {}", path.display()), e))?;
    let blob = client.blob(digest)?;
    let mut hr = HashingReader::new(blob.reader.take(desc.size() + 1));
    io::copy(&mut hr, &mut file).map_err(|e| StoreError::io(format!("reading blob {digest}"), e))?;
    file.sync_all().map_err(|e| StoreError::io(format!("writing blob {digest}"), e))?;
    let (got, count) = hr.finish();
    if count < desc.size() {
        return Err(StoreError::Truncated { digest: digest.to_string(), got: count, want: desc.size() });
    }
    if &got != digest || count != desc.size() {
        return Err(StoreError::DigestMismatch { digest: digest.to_string(), got: got.to_string() });
    }
    Ok(dir)
}

fn read_meta(layer_dir: &Path) -> Option<u64> {
    let b = std::fs::read(layer_dir.join("meta.json")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&b).ok()?;
    v.get("unpacked_size")?.as_u64()
}

/// Syncs the filesystem holding `dir` and returns the tree's size in bytes.
pub(crate) fn sync_tree_size(dir: &Path) -> Result<u64, StoreError> {
    sync_tree(dir)?;
    fn du(p: &Path) -> u64 {
        let Ok(md) = std::fs::symlink_metadata(p) else { return 0 };
        if md.is_dir() {
            std::fs::read_dir(p).map(|rd| rd.flatten().map(|e| du(&e.path())).sum()).unwrap_or(0)
        } else if md.is_file() {
            md.len()
        } else {
            0
        }
    }
    Ok(du(dir))
}

/// Flushes the filesystem holding `dir`: one `syncfs` instead of an fsync
/// per file, so a crash after publishing never shows a half-written layer.
fn sync_tree(dir: &Path) -> Result<(), StoreError> {
    let f = std::fs::File::open(dir).map_err(|e| StoreError::io(format!("opening {}", dir.display()), e))?;
    rustix::fs::syncfs(&f).map_err(|e| StoreError::io(format!("syncing {}", dir.display()), e.into()))
}
