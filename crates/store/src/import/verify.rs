//! `berth import URL --verify=no|checksum|signature`, as importctl and
//! `machinectl pull-tar` do it: `SHA256SUMS` beside the file names its
//! sha256 (`HEX *NAME` or `HEX  NAME`; BSD `SHA256 (NAME) = HEX` too), and
//! `SHA256SUMS.gpg` is a detached signature of it, checked with `gpgv`
//! against a keyring (`/etc/berth/import-pubring.gpg` or `--keyring`). An
//! appc ACI carries its own detached signature (`.aci.asc`) instead.
//!
//! **Where the check sits.** A verified download is written to a file
//! under the store's `tmp/` (hashed as it streams in, one download) and
//! only imported once its sha256 and signature check out. `import_stream`
//! publishes at five places (a root tarball, `--strip-prefix`, a disk, an
//! ACI, and blob by blob through `pull_from` for OCI and docker archives),
//! and the sha256 of the *file* includes bytes the decoder never reads (a
//! compressed stream's trailer, padding): hashing inside that pipeline
//! would need a check before each publish and a drain after each decoder.
//! The spool file gives one check before any of them, at the cost of the
//! download's size in `tmp/` for the import's duration. Unverified imports
//! (nothing to check) still stream straight into the store.
//!
//! Local files and stdin are refused with `--verify=checksum|signature`:
//! the file could change between the check and the import, and
//! `sha256sum -c` and `gpgv` already do that check by hand.

use super::{import_stream, ImportOptions};
use crate::images::ImageRecord;
use crate::pull::{Progress, StagingDir};
use crate::{Store, StoreError};
use berth_oci::registry::fetch::{fetch_document, DOCUMENT_LIMIT};
use berth_oci::registry::RegistryError;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// The keyring `--verify=signature` uses without `--keyring` (importctl's
/// is `/usr/lib/systemd/import-pubring.gpg`).
pub const DEFAULT_KEYRING: &str = "/etc/berth/import-pubring.gpg";

/// `--verify=`: what must check out before an import is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    No,
    Checksum,
    Signature,
}

impl std::str::FromStr for Verify {
    type Err = VerifyError;
    fn from_str(s: &str) -> Result<Self, VerifyError> {
        match s {
            "no" | "false" => Ok(Verify::No),
            "checksum" => Ok(Verify::Checksum),
            "signature" => Ok(Verify::Signature),
            _ => Err(VerifyError::BadMode(s.to_string())),
        }
    }
}

impl std::fmt::Display for Verify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verify::No => "no",
            Verify::Checksum => "checksum",
            Verify::Signature => "signature",
        })
    }
}

/// `--verify` (None: the default, verify what is there), `--keyring` and
/// `--tls-verify` of one import.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    pub mode: Option<Verify>,
    pub keyring: Option<PathBuf>,
    pub tls_verify: bool,
}

impl VerifyOptions {
    fn keyring(&self) -> PathBuf {
        self.keyring.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_KEYRING))
    }

    /// Whether a signature is wanted: always with `signature`; by default
    /// when a keyring was named or the default one exists.
    fn wants_signature(&self) -> bool {
        match self.mode {
            Some(Verify::Signature) => true,
            Some(_) => false,
            None => self.keyring.is_some() || Path::new(DEFAULT_KEYRING).exists(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("invalid --verify {0:?}: use no, checksum or signature")]
    BadMode(String),
    #[error("--verify applies to http(s) URLs and aci: names, not to {0}: check a local file with `sha256sum -c SHA256SUMS` (and gpgv) before importing it")]
    NotAUrl(String),
    #[error("--verify=checksum does not apply to an ACI (appc publishes .aci.asc signatures, not SHA256SUMS): use --verify=signature or --verify=no")]
    AciChecksum,
    #[error("no SHA256SUMS beside {url} ({sums} is missing): cannot --verify={mode}; pass --verify=no to import it unverified")]
    NoSums { url: String, sums: String, mode: Verify },
    #[error("{sums} has no line for {name}: cannot verify {url}; pass --verify=no to import it unverified")]
    NoEntry { url: String, sums: String, name: String },
    #[error("{name} has sha256 {got}, but {sums} says {want}: the download is corrupt or was tampered with; nothing was imported")]
    Mismatch { name: String, sums: String, want: String, got: String },
    #[error("no signature {sig} for {what}: cannot --verify=signature; {advice}")]
    NoSignature { sig: String, what: String, advice: &'static str },
    #[error("keyring {path} does not exist: put the publisher's public key there (`gpg --export KEYID > {path}`) or pass --keyring FILE{hint}")]
    NoKeyring { path: String, hint: String },
    #[error("bad signature: {sig} does not verify {what} with keyring {keyring} ({detail}); nothing was imported")]
    BadSignature { sig: String, what: String, keyring: String, detail: String },
    #[error("cannot run gpgv to check {what}: {source}; install it (apt-get install gpgv) or pass --verify=checksum")]
    Gpgv { what: String, source: io::Error },
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What must check out once the download is in, found before it starts,
/// and the one-line notice to print when less than that was possible.
#[derive(Debug, Default)]
pub struct Plan {
    /// The file's name and its sha256 (lowercase hex) from `SHA256SUMS`.
    sha256: Option<Expected>,
    /// A detached signature of the downloaded file itself (`.aci.asc`).
    signature: Option<Detached>,
    /// Says what was not verified (print after a successful import).
    pub notice: Option<String>,
}

#[derive(Debug)]
struct Expected {
    name: String,
    sums: String,
    hex: String,
}

#[derive(Debug)]
struct Detached {
    url: String,
    body: Vec<u8>,
    keyring: PathBuf,
}

impl Plan {
    /// Nothing to check: the download may stream straight into the store.
    pub fn is_empty(&self) -> bool {
        self.sha256.is_none() && self.signature.is_none()
    }
}

/// The URL without its query or fragment.
fn strip_query(url: &str) -> &str {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    &url[..end]
}

/// `URL`'s directory joined with `name` (`…/dir/SHA256SUMS`), and the
/// file name `URL` names in it.
fn beside(url: &str, name: &str) -> (String, String) {
    let base = strip_query(url);
    match base.rfind('/') {
        Some(i) => (format!("{}{name}", &base[..=i]), base[i + 1..].to_string()),
        None => (name.to_string(), base.to_string()),
    }
}

/// Refuses `--verify=checksum|signature` for a local file or stdin.
pub fn refuse_local(source: &str, mode: Option<Verify>) -> Result<(), VerifyError> {
    match mode {
        Some(Verify::Checksum | Verify::Signature) => Err(VerifyError::NotAUrl(source.to_string())),
        _ => Ok(()),
    }
}

/// Fetches `SHA256SUMS` (and `SHA256SUMS.gpg`) beside `url`, checks the
/// signature, and returns the sha256 the download must have.
pub fn plan_url(url: &str, opts: &VerifyOptions) -> Result<Plan, VerifyError> {
    if opts.mode == Some(Verify::No) {
        return Ok(Plan::default());
    }
    let (sums_url, name) = beside(url, "SHA256SUMS");
    let shown = strip_query(url);
    let Some(sums) = fetch_document(&sums_url, opts.tls_verify, DOCUMENT_LIMIT)? else {
        return match opts.mode {
            Some(mode) => Err(VerifyError::NoSums { url: shown.into(), sums: sums_url, mode }),
            None => Ok(Plan {
                notice: Some(format!(
                    "berth: no SHA256SUMS beside {shown}; the download is not verified (--verify=no to silence)"
                )),
                ..Plan::default()
            }),
        };
    };
    let mut notice = None;
    if opts.wants_signature() {
        let keyring = opts.keyring();
        let sig_url = format!("{sums_url}.gpg");
        if !keyring.exists() {
            return Err(no_keyring(&keyring, None));
        }
        match fetch_document(&sig_url, opts.tls_verify, DOCUMENT_LIMIT)? {
            Some(sig) => gpgv(&keyring, &sig, &sig_url, Signed::Bytes(&sums), &sums_url)?,
            None if opts.mode == Some(Verify::Signature) => {
                return Err(VerifyError::NoSignature {
                    sig: sig_url,
                    what: sums_url,
                    advice: "use --verify=checksum to check the checksum only",
                })
            }
            None => {
                notice = Some(format!(
                    "berth: {sums_url} is not signed (no SHA256SUMS.gpg); checked the checksum only (--verify=checksum to silence)"
                ))
            }
        }
    }
    let text = String::from_utf8_lossy(&sums);
    let Some(hex) = find_sum(&text, &name) else {
        return Err(VerifyError::NoEntry { url: shown.into(), sums: sums_url, name });
    };
    Ok(Plan { sha256: Some(Expected { name, sums: sums_url, hex }), signature: None, notice })
}

/// Fetches an ACI's detached signature (`asc_url`) when one is wanted.
pub fn plan_aci(aci_url: &str, asc_url: &str, pubkeys: &[String], opts: &VerifyOptions) -> Result<Plan, VerifyError> {
    let hint = || match pubkeys.first() {
        Some(k) => format!("; the discovery page offers keys at {k}: check them before trusting them"),
        None => String::new(),
    };
    match opts.mode {
        Some(Verify::No) => return Ok(Plan::default()),
        Some(Verify::Checksum) => return Err(VerifyError::AciChecksum),
        _ => {}
    }
    let keyring = opts.keyring();
    if !opts.wants_signature() {
        return Ok(Plan {
            notice: Some(format!(
                "berth: no keyring {}; the signature of {aci_url} is not checked (--keyring FILE, or --verify=no to silence)",
                keyring.display()
            )),
            ..Plan::default()
        });
    }
    if !keyring.exists() {
        return Err(no_keyring(&keyring, Some(hint())));
    }
    match fetch_document(asc_url, opts.tls_verify, DOCUMENT_LIMIT)? {
        Some(body) => Ok(Plan { signature: Some(Detached { url: asc_url.into(), body, keyring }), ..Plan::default() }),
        None if opts.mode == Some(Verify::Signature) => Err(VerifyError::NoSignature {
            sig: asc_url.into(),
            what: aci_url.into(),
            advice: "pass --verify=no to import it unverified",
        }),
        None => Ok(Plan {
            notice: Some(format!("berth: no signature {asc_url}; {aci_url} is not verified (--verify=no to silence)")),
            ..Plan::default()
        }),
    }
}

fn no_keyring(keyring: &Path, hint: Option<String>) -> VerifyError {
    VerifyError::NoKeyring { path: keyring.display().to_string(), hint: hint.unwrap_or_default() }
}

/// The sha256 `SHA256SUMS` gives for `name`: GNU lines (`HEX *NAME`,
/// `HEX  NAME`) and BSD lines (`SHA256 (NAME) = HEX`). A name listed
/// twice with different sums is no answer.
pub fn find_sum(text: &str, name: &str) -> Option<String> {
    let mut found: Option<String> = None;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        let entry = if let Some(rest) = line.strip_prefix("SHA256 (") {
            rest.rsplit_once(") = ").map(|(n, h)| (h.trim(), n))
        } else {
            line.split_once(' ').and_then(|(h, rest)| {
                let n = rest.strip_prefix('*').or_else(|| rest.strip_prefix(' '))?;
                Some((h, n))
            })
        };
        let Some((hex, n)) = entry else { continue };
        let n = n.strip_prefix("./").unwrap_or(n);
        if n != name || hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        let hex = hex.to_ascii_lowercase();
        match &found {
            Some(f) if *f != hex => return None,
            _ => found = Some(hex),
        }
    }
    found
}

/// What a detached signature covers.
enum Signed<'a> {
    Bytes(&'a [u8]),
    File(&'a Path),
}

/// Checks a detached signature with `gpgv` against `keyring` only: an
/// empty home of its own (the caller's `~/.gnupg/trustedkeys.kbx` does not
/// count), and the status lines must show a valid signature and no signed
/// data of its own (an inline-signed message passed off as a detached
/// signature verifies its own content, not ours).
fn gpgv(keyring: &Path, sig: &[u8], sig_url: &str, data: Signed<'_>, what: &str) -> Result<(), VerifyError> {
    let run = |e: io::Error| VerifyError::Gpgv { what: what.to_string(), source: e };
    let home = tempfile_dir().map_err(run)?;
    let sig_path = home.0.join("signature");
    std::fs::write(&sig_path, sig).map_err(run)?;
    let data_path = match data {
        Signed::Bytes(b) => {
            let p = home.0.join("data");
            std::fs::write(&p, b).map_err(run)?;
            p
        }
        Signed::File(p) => p.to_path_buf(),
    };
    // gpgv reads a keyring name without a slash from its home: make it absolute.
    let keyring = std::path::absolute(keyring).map_err(run)?;
    let out = std::process::Command::new("gpgv")
        .arg("--homedir")
        .arg(&home.0)
        .args(["--status-fd", "1", "--keyring"])
        .arg(&keyring)
        .arg("--")
        .arg(&sig_path)
        .arg(&data_path)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(run)?;
    let status = String::from_utf8_lossy(&out.stdout);
    let has = |tag: &str| status.lines().any(|l| l.split_whitespace().nth(1) == Some(tag));
    if out.status.success() && has("VALIDSIG") && !has("PLAINTEXT") && !has("BADSIG") {
        tracing::debug!(%what, sig = %sig_url, "signature verified");
        return Ok(());
    }
    let detail = if has("BADSIG") {
        "the signed content differs".to_string()
    } else if has("NO_PUBKEY") || has("ERRSIG") {
        "signed by a key that is not in the keyring".to_string()
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        err.lines().rev().map(str::trim).find(|l| !l.is_empty()).unwrap_or("gpgv failed").to_string()
    };
    Err(VerifyError::BadSignature {
        sig: sig_url.to_string(),
        what: what.to_string(),
        keyring: keyring.display().to_string(),
        detail,
    })
}

/// A private temp dir (mode 0700, as gpg wants its home), removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempfile_dir() -> io::Result<TempDir> {
    use std::os::unix::fs::DirBuilderExt;
    let base = std::env::temp_dir();
    let p = base.join(format!("berth-gpgv-{}-{:x}", std::process::id(), crate::blobs::unique()));
    std::fs::DirBuilder::new().mode(0o700).create(&p)?;
    Ok(TempDir(p))
}

/// Imports `reader` (the body of `label`) once it satisfies `plan`: with
/// nothing to check it streams straight in; otherwise it is spooled under
/// the store's `tmp/` (hashed as it is written), checked, then imported.
pub fn import_checked<R: Read + Send>(
    store: &Store,
    reader: R,
    label: &str,
    plan: &Plan,
    opts: &ImportOptions,
    progress: &dyn Progress,
) -> Result<ImageRecord, VerifyError> {
    if plan.is_empty() {
        return Ok(import_stream(store, reader, label, opts, progress)?);
    }
    // Held until the import is done: `gc` empties `tmp/` under the
    // exclusive lock.
    let _gc = store.lock_shared("gc")?;
    let staging = StagingDir::new(store, "download")?;
    let file = staging.path.join("download");
    let got = spool(reader, &file, opts.pull.max_layer_bytes, label)?;
    if let Some(want) = &plan.sha256 {
        if got != want.hex {
            return Err(VerifyError::Mismatch {
                name: want.name.clone(),
                sums: want.sums.clone(),
                want: want.hex.clone(),
                got,
            });
        }
    }
    if let Some(sig) = &plan.signature {
        gpgv(&sig.keyring, &sig.body, &sig.url, Signed::File(&file), strip_query(label))?;
    }
    let f = std::fs::File::open(&file).map_err(|e| StoreError::io(format!("reading the download of {label}"), e))?;
    Ok(import_stream(store, f, label, opts, progress)?)
}

/// Copies `reader` to `path`, returning the sha256 (hex) of what passed;
/// more than `limit` bytes is refused.
fn spool<R: Read>(mut reader: R, path: &Path, limit: u64, label: &str) -> Result<String, StoreError> {
    use sha2::Digest as _;
    let err = |e: io::Error| StoreError::io(format!("downloading {label}"), e);
    let f = std::fs::File::create(path).map_err(err)?;
    let mut out = io::BufWriter::with_capacity(256 << 10, f);
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 256 << 10];
    let mut len = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(err(e)),
        };
        len += n as u64;
        if len > limit {
            return Err(super::bad(format!("{label} is larger than {limit} bytes: refusing it")));
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(err)?;
    }
    out.flush().map_err(err)?;
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";

    #[test]
    fn sums_lines() {
        let text = format!("{A} *root.tar.xz\n{B}  other.raw\r\nSHA256 (fedora.raw.xz) = {A}\n# comment\nshort *x\n");
        assert_eq!(find_sum(&text, "root.tar.xz").as_deref(), Some(A));
        assert_eq!(find_sum(&text, "other.raw"), Some(B.to_ascii_lowercase()));
        assert_eq!(find_sum(&text, "fedora.raw.xz").as_deref(), Some(A));
        assert_eq!(find_sum(&text, "x"), None);
        assert_eq!(find_sum(&text, "root.tar"), None);
        // One space and no star is not the GNU format.
        assert_eq!(find_sum(&format!("{A} root.tar.xz\n"), "root.tar.xz"), None);
        // Two different sums for one name: no answer.
        assert_eq!(find_sum(&format!("{A} *f\n{B} *f\n"), "f"), None);
    }

    #[test]
    fn beside_the_file() {
        assert_eq!(
            beside("https://h/d/root.tar.xz?x=1#f", "SHA256SUMS"),
            ("https://h/d/SHA256SUMS".to_string(), "root.tar.xz".to_string())
        );
        assert!("maybe".parse::<Verify>().is_err());
        assert_eq!("signature".parse::<Verify>().ok(), Some(Verify::Signature));
    }
}
