//! `berth import`: images from local sources. Streams (files, stdin, URLs)
//! are decompressed by content (gzip, zstd, xz, bzip2), unpacked with the
//! same safe unpacker as pulls, and then classified by what they held: an
//! OCI layout (`oci-archive`), a `docker save` archive, an appc ACI, or a
//! plain root filesystem. Directories are an OCI layout or a root tree.
//! Archives with manifests go through the verified pull path; root trees
//! become a one-layer image whose blob is the uncompressed tar.

pub mod aci;
mod confined;
pub mod decompress;
pub mod discovery;
pub mod disk;
pub mod layout;
pub mod verify;

use crate::images::{local_name, ImageRecord, LayerRecord};
use crate::pull::{pull_from, Progress, PullOptions, StagingDir};
use crate::unpack::{unpack_layer, UnpackOptions};
use crate::{Store, StoreError};
use berth_oci::digest::HashingReader;
use berth_oci::{Digest, Platform};
use layout::{DockerArchive, Layout};
use std::io::{self, BufReader, Read, Write};
use std::path::Path;

/// `--format`: what the source is; `Auto` detects it from content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Auto,
    Tar,
    Oci,
    OciArchive,
    DockerArchive,
    Aci,
    Raw,
    Qcow2,
    Vmdk,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "auto" => Format::Auto,
            "tar" => Format::Tar,
            "oci" => Format::Oci,
            "oci-archive" => Format::OciArchive,
            "docker-archive" => Format::DockerArchive,
            "aci" => Format::Aci,
            "raw" => Format::Raw,
            "qcow2" => Format::Qcow2,
            "vmdk" => Format::Vmdk,
            _ => {
                return Err(format!(
                    "unknown --format {s:?}: use auto, tar, oci, oci-archive, docker-archive, aci, raw, qcow2 or vmdk"
                ))
            }
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    pub format: Format,
    /// Only this sub-directory of a root tarball becomes the root (`rootfs/`).
    pub strip_prefix: Option<String>,
    /// The image's name; a default comes from the source.
    pub name: Option<String>,
    /// Which image of an OCI layout or docker archive (a tag or name).
    pub select: Option<String>,
    pub pull: PullOptions,
}

fn bad(what: impl Into<String>) -> StoreError {
    StoreError::Import(format!("import: {}", what.into()))
}

/// The name an import gets when none is given: the source's file stem.
pub fn default_name(label: &str) -> String {
    let base = label.trim_end_matches('/').rsplit('/').next().unwrap_or(label);
    let mut stem = base.to_string();
    for ext in [
        ".gz", ".tgz", ".xz", ".txz", ".zst", ".bz2", ".tar", ".box", ".aci", ".raw", ".img", ".qcow2", ".vmdk", ".oci",
    ] {
        if let Some(s) = stem.strip_suffix(ext) {
            stem = s.to_string();
        }
    }
    let clean: String = stem
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' { c } else { '-' })
        .collect();
    let clean = clean.trim_matches(|c: char| !c.is_ascii_alphanumeric()).to_string();
    if clean.is_empty() {
        "imported".into()
    } else {
        clean
    }
}

/// Imports a directory: an OCI layout, or a root tree.
pub fn import_dir(
    store: &Store,
    dir: &Path,
    opts: &ImportOptions,
    progress: &dyn Progress,
) -> Result<ImageRecord, StoreError> {
    let label = dir.display().to_string();
    if dir.join("oci-layout").is_file() || opts.format == Format::Oci {
        return import_layout(store, dir, &label, opts, progress);
    }
    if !matches!(opts.format, Format::Auto | Format::Tar) {
        return Err(bad(format!("{} is a directory; --format {:?} needs a file", dir.display(), opts.format)));
    }
    let _gc = store.lock_shared("gc")?;
    let staging = StagingDir::new(store, "import")?;
    let root = staging.path.join("root");
    let out = std::process::Command::new("cp")
        .args(["-a", "--reflink=auto", "--no-target-directory", "--"])
        .arg(dir)
        .arg(&root)
        .output()
        .map_err(|e| StoreError::io("running cp", e))?;
    if !out.status.success() {
        return Err(bad(format!("copying {}: {}", dir.display(), String::from_utf8_lossy(&out.stderr).trim())));
    }
    let (diff, size) = tar_tree(&root, &staging.path.join("blob"))?;
    let name = opts.name.clone().unwrap_or_else(|| default_name(&label));
    finish_rootfs(store, staging, diff, size, None, vec![local_name(&name)?])
}

fn import_layout(
    store: &Store,
    dir: &Path,
    label: &str,
    opts: &ImportOptions,
    progress: &dyn Progress,
) -> Result<ImageRecord, StoreError> {
    let layout = Layout::open(dir)?;
    let (manifest_ref, tag) = layout.select(opts.select.as_deref())?;
    let base = opts.name.clone().unwrap_or_else(|| match &tag {
        Some(t) => format!("{}:{t}", default_name(label)),
        None => default_name(label),
    });
    let names = vec![local_name(&base)?];
    pull_from(store, &layout, &manifest_ref, label, names, &opts.pull, progress)
}

/// Imports a stream (file, stdin, URL body). `label` names it in messages
/// and gives the default image name.
pub fn import_stream<R: Read + Send>(
    store: &Store,
    reader: R,
    label: &str,
    opts: &ImportOptions,
    progress: &dyn Progress,
) -> Result<ImageRecord, StoreError> {
    // A gzip or zstd source is a valid layer blob as it is: keep those
    // bytes (smaller than the tar); anything else stores the tar.
    let mut reader = reader;
    let magic = read_head(&mut reader, 8).map_err(|e| StoreError::io(format!("reading {label}"), e))?;
    let keep = match decompress::sniff(&magic) {
        decompress::Compression::Gzip => Some("application/vnd.oci.image.layer.v1.tar+gzip"),
        decompress::Compression::Zstd => Some("application/vnd.oci.image.layer.v1.tar+zstd"),
        _ => None,
    };
    let _gc = store.lock_shared("gc")?;
    let staging = StagingDir::new(store, "import")?;
    let blob_path = staging.path.join("blob");
    let blob_file = std::fs::File::create(&blob_path).map_err(|e| StoreError::io("creating the staged blob", e))?;
    let blob_out = Some(io::BufWriter::with_capacity(256 << 10, blob_file));
    let (raw_tap, diff_tap) =
        if keep.is_some() { (Tap::new(blob_out), Tap::new(None)) } else { (Tap::new(None), Tap::new(blob_out)) };
    let raw = Tapped { inner: io::Cursor::new(magic).chain(reader), tap: raw_tap.clone() };
    let (_, decoded) = decompress::decompress(BufReader::with_capacity(256 << 10, raw))
        .map_err(|e| StoreError::io(format!("reading {label}"), e))?;
    let mut decoded = decoded;
    let head = read_head(&mut decoded, 72 << 10).map_err(|e| StoreError::io(format!("reading {label}"), e))?;
    // Put the peeked bytes back in front of the rest.
    let mut decoded = io::Cursor::new(head.clone()).chain(decoded);
    let disk = match opts.format {
        Format::Raw => Some("raw"),
        Format::Qcow2 => Some("qcow2"),
        Format::Vmdk => Some("vmdk"),
        Format::Auto => disk_kind(&head),
        _ => None,
    };
    if let Some(kind) = disk {
        let img = staging.path.join("disk.img");
        write_sparse(&mut decoded, &img, opts.pull.max_layer_bytes).map_err(|e| match e.kind() {
            io::ErrorKind::FileTooLarge => {
                StoreError::TooLarge { layer: label.to_string(), limit: opts.pull.max_layer_bytes }
            }
            _ => StoreError::io(format!("reading {label}"), e),
        })?;
        drop(decoded);
        let _ = std::fs::remove_file(&blob_path);
        return import_disk(store, staging, &img, kind, label, opts);
    }
    let root = staging.path.join("root");
    std::fs::create_dir(&root).map_err(|e| StoreError::io("creating the staging root", e))?;
    let diff_reader = Tapped { inner: decoded, tap: diff_tap.clone() };
    let uopts = UnpackOptions { layer: label.to_string(), has_lowers: false, max_bytes: opts.pull.max_layer_bytes };
    let no_lowers = || Ok(Vec::new());
    // Decompress and hash on one thread, unpack on this one, like
    // `zstd -dc | tar -x`.
    let (unpacked, copied) = std::thread::scope(|s| -> Result<_, StoreError> {
        let (mut pr, mut pw) = io::pipe().map_err(|e| StoreError::io("creating a pipe", e))?;
        let producer = s.spawn(move || {
            let mut r = diff_reader;
            let copied = io::copy(&mut r, &mut pw);
            drop(pw);
            copied
        });
        let res = unpack_layer(&mut pr, &root, &uopts, &no_lowers).and_then(|stats| {
            io::copy(&mut pr, &mut io::sink()).map_err(|e| StoreError::io(format!("reading {label}"), e))?;
            Ok(stats)
        });
        drop(pr);
        let copied = producer.join().unwrap_or_else(|_| std::process::abort());
        Ok((res, copied))
    })?;
    unpacked?;
    copied.map_err(|e| StoreError::io(format!("reading {label}"), e))?;
    let (raw_digest, raw_size) = raw_tap.finish()?;
    let (diff, size) = diff_tap.finish()?;
    let blob = match keep {
        Some(media_type) => StagedBlob { digest: raw_digest, size: raw_size, media_type },
        None => StagedBlob { digest: diff.clone(), size, media_type: TAR },
    };
    if std::fs::read_dir(&root).map(|mut d| d.next().is_none()).unwrap_or(true) {
        return Err(bad(format!("{label} holds no files: is it a tarball, an archive or a disk image?")));
    }

    let looks_oci = root.join("oci-layout").is_file() && root.join("index.json").is_file();
    let looks_docker = root.join("manifest.json").is_file() && !root.join("etc").exists();
    let looks_aci = root.join("manifest").is_file() && root.join("rootfs").is_dir();
    // A Vagrant box: metadata.json beside a disk image.
    let box_disk = if root.join("metadata.json").is_file() && opts.format == Format::Auto {
        std::fs::read_dir(&root)
            .ok()
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .find(|p| matches!(p.extension().and_then(|x| x.to_str()), Some("vmdk" | "qcow2" | "img" | "raw")))
    } else {
        None
    };
    // A tarball holding one disk image and nothing else, as CentOS's
    // GenericCloud.raw.tar.gz and many cloud images ship: the disk.
    let box_disk =
        box_disk.or_else(|| single_disk(&root).filter(|_| opts.format == Format::Auto && opts.strip_prefix.is_none()));
    if let Some(d) = box_disk {
        // The disk must be the box's own file: a symlink to a host file or
        // a device would import the host's data.
        let is_file = std::fs::symlink_metadata(&d).map(|m| m.file_type().is_file()).unwrap_or(false);
        if !is_file {
            let name = d.file_name().unwrap_or_default().to_string_lossy().into_owned();
            return Err(bad(format!(
                "{label}: the box's disk {name} is not a regular file (a link or a device): refusing it"
            )));
        }
        let inner = StagingDir::new(store, "import")?;
        let img = inner.path.join("disk.img");
        std::fs::rename(&d, &img).map_err(|e| StoreError::io("moving the box's disk", e))?;
        drop(staging);
        let head = std::fs::File::open(&img).and_then(|mut f| {
            let mut h = vec![0u8; 1024];
            let n = f.read(&mut h)?;
            h.truncate(n);
            Ok(h)
        });
        let kind = disk_kind(&head.map_err(|e| StoreError::io("reading the box's disk", e))?).unwrap_or("raw");
        return import_disk(store, inner, &img, kind, label, opts);
    }
    let format = match opts.format {
        // --strip-prefix says it is a root tarball, whatever else it holds.
        Format::Auto if opts.strip_prefix.is_some() => Format::Tar,
        Format::Auto if looks_oci => Format::OciArchive,
        Format::Auto if looks_docker => Format::DockerArchive,
        Format::Auto if looks_aci => Format::Aci,
        Format::Auto => Format::Tar,
        f => f,
    };
    match format {
        Format::OciArchive | Format::Oci => {
            drop(_gc);
            import_layout(store, &root, label, opts, progress)
        }
        Format::DockerArchive => {
            let archive = DockerArchive::open(&root, opts.select.as_deref())?;
            let mut names: Vec<String> = archive.tags.iter().filter_map(|t| crate::images::normalize_name(t)).collect();
            if let Some(n) = &opts.name {
                names.push(local_name(n)?);
            }
            if names.is_empty() {
                names.push(local_name(&default_name(label))?);
            }
            drop(_gc);
            pull_from(store, &archive, &archive.manifest_ref(), label, names, &opts.pull, progress)
        }
        Format::Aci => import_aci(store, staging, label, opts),
        _ => {
            let name = local_name(&opts.name.clone().unwrap_or_else(|| default_name(label)))?;
            match &opts.strip_prefix {
                None => finish_rootfs_blob(store, staging, diff, blob, None, vec![name]),
                Some(prefix) => {
                    let staging = restage_subdir(store, staging, prefix)?;
                    let (diff, size) = tar_tree(&staging.path.join("root"), &staging.path.join("blob"))?;
                    finish_rootfs(store, staging, diff, size, None, vec![name])
                }
            }
        }
    }
}

/// The only entry of `root` when it is a regular file holding a disk
/// image (by its magic, not its name).
fn single_disk(root: &Path) -> Option<std::path::PathBuf> {
    let mut entries = std::fs::read_dir(root).ok()?.flatten();
    let only = entries.next()?;
    if entries.next().is_some() || !only.file_type().ok()?.is_file() {
        return None;
    }
    let mut f = std::fs::File::open(only.path()).ok()?;
    let head = read_head(&mut f, 72 << 10).ok()?;
    disk_kind(&head).map(|_| only.path())
}

/// Reads up to `n` bytes from the front of a stream.
fn read_head<R: Read>(r: &mut R, n: usize) -> io::Result<Vec<u8>> {
    let mut head = vec![0u8; n];
    let mut got = 0;
    while got < n {
        match r.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    head.truncate(got);
    Ok(head)
}

/// Tells disk images from archives by their magic.
fn disk_kind(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(b"QFI\xfb") {
        Some("qcow2")
    } else if head.starts_with(b"KDMV") || head.starts_with(b"# Disk DescriptorFile") {
        Some("vmdk")
    } else if head.len() >= 520 && &head[512..520] == b"EFI PART" {
        Some("GPT")
    } else if head.len() >= 512 && head[510] == 0x55 && head[511] == 0xaa && head[257..262] != *b"ustar" {
        Some("MBR")
    } else if bare_filesystem(head) {
        Some("raw")
    } else {
        None
    }
}

/// A filesystem image without a partition table: ext2/3/4, xfs, btrfs,
/// squashfs or erofs superblock magic.
fn bare_filesystem(h: &[u8]) -> bool {
    let at = |o: usize, m: &[u8]| h.len() >= o + m.len() && &h[o..o + m.len()] == m;
    at(1080, &[0x53, 0xef])
        || at(0, b"XFSB")
        || at(65600, b"_BHRfS_M")
        || at(0, b"hsqs")
        || at(1024, &[0xe2, 0xe1, 0xf5, 0xe0])
}

/// Copies a stream to `path`, seeking over all-zero blocks so a raw disk
/// image stays sparse; a stream longer than `limit` is refused
/// (`FileTooLarge`), so a small file of compressed zeros cannot run for hours.
fn write_sparse<R: Read>(r: &mut R, path: &Path, limit: u64) -> io::Result<()> {
    use std::io::Seek;
    let mut f = std::fs::File::create(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let mut n = 0;
        while n < buf.len() {
            match r.read(&mut buf[n..])? {
                0 => break,
                k => n += k,
            }
        }
        if n == 0 {
            break;
        }
        if buf[..n].iter().all(|&b| b == 0) {
            f.seek(io::SeekFrom::Current(n as i64))?;
        } else {
            f.write_all(&buf[..n])?;
        }
        len += n as u64;
        if len > limit {
            return Err(io::ErrorKind::FileTooLarge.into());
        }
    }
    f.set_len(len)?;
    f.sync_all()
}

/// A disk image in `staging/disk.img`: convert it to raw if needed, copy
/// its root filesystem out, and publish it as a one-layer image.
fn import_disk(
    store: &Store,
    staging: StagingDir,
    img: &Path,
    kind: &str,
    label: &str,
    opts: &ImportOptions,
) -> Result<ImageRecord, StoreError> {
    let raw = if matches!(kind, "qcow2" | "vmdk") {
        let raw = staging.path.join("disk.raw");
        disk::convert_to_raw(img, &raw, kind).map_err(|e| bad(format!("{label}: {e}")))?;
        let _ = std::fs::remove_file(img);
        raw
    } else {
        img.to_path_buf()
    };
    let root = staging.path.join("root");
    disk::copy_root(&raw, &root, &staging.path.join("mnt")).map_err(|e| bad(format!("{label}: {e}")))?;
    let _ = std::fs::remove_file(&raw);
    let (diff, size) = tar_tree(&root, &staging.path.join("blob"))?;
    let name = local_name(&opts.name.clone().unwrap_or_else(|| default_name(label)))?;
    finish_rootfs(store, staging, diff, size, None, vec![name])
}

/// Where a stream's bytes are hashed, counted and (maybe) written, shared
/// so the hash can be read after the stream moved into a decoder and a
/// thread.
#[derive(Clone)]
struct Tap(std::sync::Arc<std::sync::Mutex<TapState>>);

struct TapState {
    hasher: sha2::Sha256,
    count: u64,
    out: Option<io::BufWriter<std::fs::File>>,
}

impl Tap {
    fn new(out: Option<io::BufWriter<std::fs::File>>) -> Tap {
        use sha2::Digest as _;
        Tap(std::sync::Arc::new(std::sync::Mutex::new(TapState { hasher: sha2::Sha256::new(), count: 0, out })))
    }

    /// The digest and size of everything that passed, with the written
    /// copy flushed to disk.
    fn finish(&self) -> Result<(Digest, u64), StoreError> {
        use sha2::Digest as _;
        let mut st = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(out) = st.out.take() {
            out.into_inner()
                .map_err(|e| StoreError::io("writing the staged blob", e.into_error()))?
                .sync_all()
                .map_err(|e| StoreError::io("syncing the staged blob", e))?;
        }
        let hash = std::mem::take(&mut st.hasher).finalize();
        let d = Digest::from_hex(&hex::encode(hash)).map_err(|e| bad(e.to_string()))?;
        Ok((d, st.count))
    }
}

/// A reader whose bytes go through a [`Tap`].
struct Tapped<R> {
    inner: R,
    tap: Tap,
}

impl<R: Read> Read for Tapped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use sha2::Digest as _;
        let n = self.inner.read(buf)?;
        let mut st = self.tap.0.lock().unwrap_or_else(|p| p.into_inner());
        st.hasher.update(&buf[..n]);
        st.count += n as u64;
        if let Some(out) = &mut st.out {
            out.write_all(&buf[..n])?;
        }
        Ok(n)
    }
}

/// Moves `root/PREFIX` of a staging dir into a fresh staging dir's `root`.
fn restage_subdir(store: &Store, old: StagingDir, prefix: &str) -> Result<StagingDir, StoreError> {
    let comps =
        crate::unpack::path::clean(prefix.as_bytes()).map_err(|w| bad(format!("--strip-prefix {prefix:?}: {w}")))?;
    // Each component must be a directory of the archive itself: a link
    // (`a -> /some/host/dir`) would move a host directory into the store.
    let mut sub = old.path.join("root");
    for (i, c) in comps.iter().enumerate() {
        sub.push(c);
        let is_link = std::fs::symlink_metadata(&sub).map(|m| m.file_type().is_symlink()).unwrap_or(false);
        if is_link {
            let at = crate::unpack::path::join(&comps[..=i]);
            return Err(bad(format!(
                "--strip-prefix {prefix:?}: {} is a symlink in the archive; name the directory it points to",
                at.display()
            )));
        }
    }
    let md = std::fs::symlink_metadata(&sub)
        .map_err(|_| bad(format!("--strip-prefix {prefix:?}: the archive has no such directory")))?;
    if !md.is_dir() {
        return Err(bad(format!("--strip-prefix {prefix:?} is not a directory in the archive")));
    }
    let new = StagingDir::new(store, "import")?;
    std::fs::rename(&sub, new.path.join("root")).map_err(|e| StoreError::io("moving the root", e))?;
    Ok(new)
}

/// Starts GNU tar writing the tree at `root` to its stdout: numeric owners,
/// xattrs, sorted names, PAX format (so the output is reproducible).
pub(crate) fn spawn_tar(root: &Path) -> Result<std::process::Child, StoreError> {
    std::process::Command::new("tar")
        .args([
            "--create",
            "--file=-",
            "--numeric-owner",
            "--xattrs",
            "--xattrs-include=*",
            "--sort=name",
            "--format=pax",
            "-C",
        ])
        .arg(root)
        .arg(".")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| StoreError::io("running tar", e))
}

/// Reads a child's stderr on a thread of its own, so a chatty child (tar
/// printing "socket ignored" for each of a hostile tree's sockets) never
/// blocks on a full pipe while its stdout is read; keeps the last 4 KB.
pub(crate) fn drain_stderr(child: &mut std::process::Child) -> std::thread::JoinHandle<String> {
    let stderr = child.stderr.take();
    std::thread::spawn(move || {
        let mut kept: Vec<u8> = Vec::new();
        if let Some(mut e) = stderr {
            let mut buf = [0u8; 8192];
            while let Ok(n) = e.read(&mut buf) {
                if n == 0 {
                    break;
                }
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > 4096 {
                    kept.drain(..kept.len() - 4096);
                }
            }
        }
        String::from_utf8_lossy(&kept).trim().to_string()
    })
}

/// Writes a tar of `root` to `blob` (GNU tar: numeric owners, xattrs,
/// sorted names, PAX) and returns its digest and size.
pub(crate) fn tar_tree(root: &Path, blob: &Path) -> Result<(Digest, u64), StoreError> {
    let mut child = spawn_tar(root)?;
    let stderr = drain_stderr(&mut child);
    let stdout = child.stdout.take().ok_or_else(|| bad("tar has no stdout"))?;
    let mut hr = HashingReader::new(stdout);
    let mut f = std::fs::File::create(blob).map_err(|e| StoreError::io("creating the layer blob", e))?;
    let copied = io::copy(&mut hr, &mut f).map_err(|e| StoreError::io("writing the layer blob", e));
    if copied.is_err() {
        let _ = child.kill();
    }
    let status = child.wait().map_err(|e| StoreError::io("running tar", e))?;
    let err = stderr.join().unwrap_or_default();
    copied?;
    if !status.success() {
        return Err(bad(format!("tar failed: {err}")));
    }
    f.sync_all().map_err(|e| StoreError::io("syncing the layer blob", e))?;
    Ok(hr.finish())
}

fn diff_list(d: &Digest) -> Vec<Digest> {
    vec![d.clone()]
}

/// RFC 3339 UTC time for `secs` since the epoch (civil-from-days).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z.rem_euclid(146097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// An image config for a plain root tree: the host platform, a shell.
fn default_config(diff_ids: &[Digest]) -> serde_json::Value {
    let p = Platform::host();
    serde_json::json!({
        "created": rfc3339(now()),
        "architecture": p.architecture,
        "os": p.os,
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/sh"],
        },
        "rootfs": { "type": "layers", "diff_ids": diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>() },
        "history": [{ "created": rfc3339(now()), "created_by": "berth import" }],
    })
}

/// Publishes a one-layer image whose staging dir holds `root/` and the
/// uncompressed `blob` (digest `diff`).
pub(crate) fn finish_rootfs(
    store: &Store,
    staging: StagingDir,
    diff: Digest,
    size: u64,
    config: Option<serde_json::Value>,
    names: Vec<String>,
) -> Result<ImageRecord, StoreError> {
    let blob = StagedBlob { digest: diff.clone(), size, media_type: TAR };
    finish_rootfs_blob(store, staging, diff, blob, config, names)
}

const TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// The layer blob staged beside `root/`: the uncompressed tar, or the
/// source's own gzip or zstd stream.
struct StagedBlob {
    digest: Digest,
    size: u64,
    media_type: &'static str,
}

fn finish_rootfs_blob(
    store: &Store,
    staging: StagingDir,
    diff: Digest,
    blob: StagedBlob,
    config: Option<serde_json::Value>,
    names: Vec<String>,
) -> Result<ImageRecord, StoreError> {
    let StagedBlob { digest, size, media_type: media } = blob;
    let config = config.unwrap_or_else(|| default_config(&diff_list(&diff)));
    let config_body = serde_json::to_vec(&config).map_err(|e| bad(e.to_string()))?;
    let config_digest = Digest::of(&config_body);
    let manifest_body = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": berth_oci::manifest::OCI_MANIFEST,
        "config": { "mediaType": berth_oci::manifest::OCI_CONFIG, "digest": config_digest.to_string(), "size": config_body.len() },
        "layers": [{ "mediaType": media, "digest": digest.to_string(), "size": size }],
    }))
    .map_err(|e| bad(e.to_string()))?;
    let manifest_digest = Digest::of(&manifest_body);
    let unpacked = crate::pull::sync_tree_size(&staging.path.join("root"))?;
    crate::blobs::write_atomic(
        &staging.path.join("meta.json"),
        format!("{{\"unpacked_size\":{unpacked}}}").as_bytes(),
    )?;
    store.adopt_blob(&staging.path.join("blob"), &digest)?;
    staging.publish(&store.layer_path(&diff))?;
    store.put_blob(&config_digest, &config_body)?;
    store.put_blob(&manifest_digest, &manifest_body)?;
    let p = Platform::host();
    let rec = ImageRecord {
        id: config_digest,
        digest: manifest_digest,
        index_digest: None,
        manifest_media_type: berth_oci::manifest::OCI_MANIFEST.into(),
        platform: Platform { os: "linux".into(), ..p },
        created: config.get("created").and_then(|c| c.as_str()).map(str::to_string),
        added: now(),
        layers: vec![LayerRecord { digest, diff_id: diff, size, media_type: media.into(), unpacked_size: unpacked }],
    };
    store.publish_image(&rec, names)?;
    Ok(rec)
}

/// An appc ACI: `manifest` (JSON) and `rootfs/` (see [`aci`]).
fn import_aci(
    store: &Store,
    staging: StagingDir,
    label: &str,
    opts: &ImportOptions,
) -> Result<ImageRecord, StoreError> {
    let body = confined::read_bounded(&staging.path.join("root"), "manifest", confined::DOCUMENT_LIMIT)?;
    let m = aci::Manifest::parse(&body).map_err(|e| bad(format!("{label}: {e}")))?;
    let staging = restage_subdir(store, staging, "rootfs")?;
    let (diff, size) = tar_tree(&staging.path.join("root"), &staging.path.join("blob"))?;
    let mut config = default_config(&diff_list(&diff));
    if let Some(c) = config.as_object_mut() {
        m.apply(c);
    }
    let default = m.name().map(str::to_string).unwrap_or_else(|| default_name(label));
    let name = local_name(&opts.name.clone().unwrap_or(default))?;
    finish_rootfs(store, staging, diff, size, Some(config), vec![name])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_times() {
        assert_eq!(default_name("/x/ubuntu-24.04-root.tar.xz"), "ubuntu-24.04-root");
        assert_eq!(default_name("Fedora Cloud.raw.xz"), "fedora-cloud");
        assert_eq!(default_name("-"), "imported");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_764_000_000), "2025-11-24T16:00:00Z");
        assert!("oci-archive".parse::<Format>().is_ok());
        assert!("zip".parse::<Format>().is_err());
    }

    #[test]
    fn disk_magic() {
        let mut mbr = vec![0u8; 600];
        mbr[510] = 0x55;
        mbr[511] = 0xaa;
        assert_eq!(disk_kind(&mbr), Some("MBR"));
        assert_eq!(disk_kind(b"QFI\xfb...."), Some("qcow2"));
        assert_eq!(disk_kind(b"plain tar"), None);
    }
}
