//! `berth import URL --verify=…` and `berth import aci:NAME:VERSION`
//! (issue 10): a scripted server on 127.0.0.1 serves a root tarball with
//! `SHA256SUMS` and a `SHA256SUMS.gpg` made by a key the test generates
//! (`gpg --quick-gen-key` in a private home, exported to a binary keyring
//! for `--keyring`), and an ACI behind an appc discovery page. Every
//! refused import must leave the store exactly as it was (listing
//! compared) with no staging left in `tmp/`.
//!
//! Host tools: gpg, gpgv, gzip.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use super::{assert_no_staging, compress_with, host, image_names, listing, printed_id};
use crate::harness::mockhttp::{MockHttp, Reply};
use crate::harness::tarball::{tar, Entry};
use crate::harness::Berth;

/// A gpg signing key in a private home, and its public half as a keyring.
struct Key {
    home: PathBuf,
    pubring: PathBuf,
}

impl Key {
    fn new(dir: &Path, name: &str) -> Key {
        let home = dir.join(format!("gnupg-{name}"));
        std::fs::create_dir_all(&home).unwrap();
        host(Command::new("chmod").arg("0700").arg(&home));
        host(
            Command::new("gpg")
                .arg("--homedir")
                .arg(&home)
                .args(["--batch", "--passphrase", "", "--quick-gen-key"])
                .arg(format!("berth test {name} <{name}@berth.test>"))
                .args(["ed25519", "sign", "never"]),
        );
        let pubring = dir.join(format!("{name}-pubring.gpg"));
        let export = host(Command::new("sh").arg("-c").arg(format!(
            "gpg --homedir {} --batch --export > {} && echo ok",
            super::q(&home),
            super::q(&pubring)
        )));
        assert_eq!(export.trim(), "ok");
        Key { home, pubring }
    }

    /// A detached binary signature of `data` (`--detach-sign`), or an
    /// inline signed message holding `data` (`--sign`) when `inline`.
    fn sign(&self, data: &[u8], inline: bool) -> Vec<u8> {
        let input = self.home.join("to-sign");
        let out = self.home.join("signature");
        std::fs::write(&input, data).unwrap();
        let _ = std::fs::remove_file(&out);
        host(
            Command::new("gpg")
                .arg("--homedir")
                .arg(&self.home)
                .args(["--batch", "--yes", if inline { "--sign" } else { "--detach-sign" }, "-o"])
                .arg(&out)
                .arg(&input),
        );
        std::fs::read(&out).unwrap()
    }
}

/// Files served by path (with its query, for discovery pages); 404 for
/// anything else. The map can change while the server runs.
type Site = Arc<Mutex<BTreeMap<String, Vec<u8>>>>;

fn serve() -> (MockHttp, Site) {
    let site: Site = Arc::new(Mutex::new(BTreeMap::new()));
    let files = site.clone();
    let server = MockHttp::start(move |r| match files.lock().unwrap().get(&r.path) {
        Some(body) if r.method == "GET" => Reply { body: body.clone(), ..Reply::new(200) },
        _ => Reply::new(404),
    });
    (server, site)
}

fn put(site: &Site, path: &str, body: impl Into<Vec<u8>>) {
    site.lock().unwrap().insert(path.to_string(), body.into());
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(data))
}

/// A gzip root tarball whose `/etc/marker` says `marker`.
fn rootfs(marker: &str) -> Vec<u8> {
    compress_with(
        "gzip",
        &tar(&[
            Entry::dir("etc"),
            Entry::file("etc/marker", format!("{marker}\n")),
            Entry::file("etc/os-release", "ID=verify\n"),
        ]),
    )
}

/// `SHA256SUMS` naming `file` with `data`'s sum, among other lines.
fn sums_for(file: &str, data: &[u8]) -> String {
    format!("{} *other.tar.xz\n{}  {file}\n", sha256_hex(b"something else"), sha256_hex(data))
}

/// `/etc/marker` of image `name`.
fn marker(berth: &Berth, name: &str) -> String {
    let mnt = berth.mount(name);
    let m = std::fs::read_to_string(mnt.join("etc/marker")).unwrap_or_else(|e| panic!("{name}: /etc/marker: {e}"));
    berth.unmount(&mnt);
    m
}

/// A store that already holds one image, and its listing.
fn store_with_one_image(berth: &Berth) -> crate::harness::Listing {
    let seed = berth.dir().join("seed.tar.gz");
    std::fs::write(&seed, rootfs("seed")).unwrap();
    berth.run(["import".as_ref(), seed.as_os_str(), "seed".as_ref()]).success();
    listing(berth)
}

/// Asserts the store is as `before` and nothing is staged.
fn unchanged(berth: &Berth, before: &crate::harness::Listing, what: &str) {
    before.assert_unchanged(&listing(berth), what);
    assert_no_staging(berth, what);
    assert_eq!(image_names(berth), vec!["localhost/seed:latest".to_string()], "{what}: images after");
}

/// The site of a signed release: `/rel/root.tar.gz`, its `SHA256SUMS`
/// and `SHA256SUMS.gpg` by `key`.
fn release(site: &Site, key: &Key, data: &[u8]) -> String {
    let sums = sums_for("root.tar.gz", data);
    put(site, "/rel/root.tar.gz", data.to_vec());
    put(site, "/rel/SHA256SUMS", sums.clone());
    put(site, "/rel/SHA256SUMS.gpg", key.sign(sums.as_bytes(), false));
    sums
}

#[test]
fn a_checksummed_signed_download_is_imported() {
    let berth = Berth::new();
    let key = Key::new(berth.dir(), "publisher");
    let (server, site) = serve();
    release(&site, &key, &rootfs("signed"));
    let url = format!("http://{}/rel/root.tar.gz", server.host());
    let keyring = key.pubring.to_str().unwrap();

    let run = berth.run(["import", &url, "signed", "--verify=signature", "--keyring", keyring]).success();
    printed_id(&run);
    assert_eq!(run.stderr.trim(), "", "a verified import says nothing on stderr");
    assert_eq!(marker(&berth, "signed"), "signed\n");
    let paths: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
    for p in ["/rel/SHA256SUMS", "/rel/SHA256SUMS.gpg"] {
        assert!(paths.iter().any(|q| q == p), "{p} was never fetched: {paths:?}");
    }
    // One download of the file: the hash is taken as it streams.
    assert_eq!(paths.iter().filter(|p| *p == "/rel/root.tar.gz").count(), 1, "{paths:?}");

    // The default (no --verify) with a keyring checks both as well.
    berth.run(["import", &url, "again", "--keyring", keyring]).success();
    assert_eq!(marker(&berth, "again"), "signed\n");
    // --verify=checksum needs no keyring.
    berth.run(["import", &url, "summed", "--verify=checksum"]).success();
}

#[test]
fn a_tampered_download_fails_its_checksum_and_the_store_is_unchanged() {
    let berth = Berth::new();
    let key = Key::new(berth.dir(), "publisher");
    let (server, site) = serve();
    release(&site, &key, &rootfs("genuine"));
    // A valid tarball, only not the one SHA256SUMS names: without a check
    // it imports fine.
    put(&site, "/rel/root.tar.gz", rootfs("tampered"));
    let url = format!("http://{}/rel/root.tar.gz", server.host());
    let before = store_with_one_image(&berth);
    let keyring = key.pubring.to_str().unwrap();
    for args in [
        vec!["import", &url, "evil"],
        vec!["import", &url, "evil", "--verify=checksum"],
        vec!["import", &url, "evil", "--verify=signature", "--keyring", keyring],
        vec!["import", &url, "evil", "--machine"],
    ] {
        let what = args.join(" ");
        berth.run(&args).failure().mentions_any(&["sha256", "tampered"]);
        unchanged(&berth, &before, &what);
    }
    assert!(super::machine_names(&berth).is_empty(), "a refused --machine import made a machine");
}

#[test]
fn a_signature_by_another_key_or_over_other_content_fails() {
    let berth = Berth::new();
    let trusted = Key::new(berth.dir(), "trusted");
    let stranger = Key::new(berth.dir(), "stranger");
    let (server, site) = serve();
    let url = format!("http://{}/rel/root.tar.gz", server.host());
    let keyring = trusted.pubring.to_str().unwrap();
    let before = store_with_one_image(&berth);

    // SHA256SUMS signed by a key not in the keyring.
    release(&site, &stranger, &rootfs("stranger's"));
    for args in [
        vec!["import", &url, "evil", "--verify=signature", "--keyring", keyring],
        vec!["import", &url, "evil", "--keyring", keyring],
    ] {
        berth.run(&args).failure().mentions_any(&["signature"]);
        unchanged(&berth, &before, "SHA256SUMS signed by another key");
    }

    // A tampered file with a SHA256SUMS rewritten to match, under the
    // publisher's genuine signature of the original SHA256SUMS.
    release(&site, &trusted, &rootfs("genuine"));
    let evil = rootfs("tampered");
    put(&site, "/rel/root.tar.gz", evil.clone());
    put(&site, "/rel/SHA256SUMS", sums_for("root.tar.gz", &evil));
    berth
        .run(["import", &url, "evil", "--verify=signature", "--keyring", keyring])
        .failure()
        .mentions_any(&["bad signature"]);
    unchanged(&berth, &before, "a rewritten SHA256SUMS");

    // An inline-signed message of the trusted key passed off as the
    // detached signature: it verifies its own content, not SHA256SUMS.
    let sums = sums_for("root.tar.gz", &evil);
    put(&site, "/rel/SHA256SUMS.gpg", trusted.sign(sums.as_bytes(), true));
    berth
        .run(["import", &url, "evil", "--verify=signature", "--keyring", keyring])
        .failure()
        .mentions_any(&["signature"]);
    unchanged(&berth, &before, "an inline signature as SHA256SUMS.gpg");

    // No SHA256SUMS.gpg at all, with --verify=signature.
    site.lock().unwrap().remove("/rel/SHA256SUMS.gpg");
    berth
        .run(["import", &url, "evil", "--verify=signature", "--keyring", keyring])
        .failure()
        .mentions_any(&["SHA256SUMS.gpg"]);
    // No keyring, with --verify=signature.
    let none = berth.dir().join("no-such-keyring.gpg");
    berth
        .run(["import", &url, "evil", "--verify=signature", "--keyring", none.to_str().unwrap()])
        .failure()
        .mentions_any(&["keyring"]);
    unchanged(&berth, &before, "no signature or no keyring");
}

#[test]
fn without_sha256sums_the_default_imports_with_a_one_line_notice_and_checksum_fails() {
    let berth = Berth::new();
    let (server, site) = serve();
    put(&site, "/bare/root.tar.gz", rootfs("bare"));
    let url = format!("http://{}/bare/root.tar.gz", server.host());

    let before = store_with_one_image(&berth);
    berth.run(["import", &url, "x", "--verify=checksum"]).failure().mentions_any(&["no SHA256SUMS"]);
    unchanged(&berth, &before, "--verify=checksum without SHA256SUMS");

    let run = berth.run(["import", &url, "bare"]).success();
    printed_id(&run);
    let lines: Vec<&str> = run.stderr.trim().lines().collect();
    assert_eq!(lines.len(), 1, "one line of notice, got: {:?}", run.stderr);
    assert!(lines[0].contains("SHA256SUMS") && lines[0].contains("not verified"), "{lines:?}");
    assert_eq!(marker(&berth, "bare"), "bare\n");

    let run = berth.run(["import", &url, "quiet", "--verify=no"]).success();
    assert_eq!(run.stderr.trim(), "", "--verify=no silences the notice");

    // A SHA256SUMS that does not name the file fails, default included.
    put(&site, "/bare/SHA256SUMS", sums_for("other-name.tar.gz", b"x"));
    let before = listing(&berth);
    for args in [vec!["import", &url, "y"], vec!["import", &url, "y", "--verify=checksum"]] {
        berth.run(&args).failure().mentions_any(&["no line for root.tar.gz"]);
        before.assert_unchanged(&listing(&berth), "SHA256SUMS without the file");
    }
}

#[test]
fn verify_on_a_local_file_or_stdin_is_refused() {
    let berth = Berth::new();
    let file = berth.dir().join("root.tar.gz");
    std::fs::write(&file, rootfs("local")).unwrap();
    let before = store_with_one_image(&berth);
    berth
        .run(["import".as_ref(), file.as_os_str(), "x".as_ref(), "--verify=checksum".as_ref()])
        .failure()
        .mentions_any(&["sha256sum -c"]);
    berth.run(["import", "-", "x", "--verify=signature"]).failure().mentions_any(&["sha256sum -c"]);
    berth.run(["import", "-", "x", "--verify=maybe"]).failure().mentions_any(&["--verify"]);
    unchanged(&berth, &before, "--verify on local sources");
}

// ---------------------------------------------------------------- appc

const ACI_MANIFEST: &str = r#"{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.test/app","labels":[{"name":"version","value":"1.0"},{"name":"os","value":"linux"},{"name":"arch","value":"amd64"}],"app":{"exec":["/bin/sh"],"user":"0","group":"0"}}"#;

/// A gzip ACI: `manifest` and `rootfs/etc/marker`.
fn aci(marker: &str) -> Vec<u8> {
    compress_with(
        "gzip",
        &tar(&[
            Entry::file("manifest", ACI_MANIFEST),
            Entry::dir("rootfs"),
            Entry::dir("rootfs/etc"),
            Entry::file("rootfs/etc/marker", format!("{marker}\n")),
        ]),
    )
}

/// A discovery page for `HOST/example` (found by walking up from
/// `HOST/example/app`), with decoys a naive parser would take: a tag in a
/// comment, one for another prefix, one for a prefix that is not at a
/// path boundary, and a template with an unknown label.
fn discovery_site(site: &Site, host: &str) {
    let page = format!(
        r#"<!DOCTYPE html>
<html><head>
<!-- <meta name="ac-discovery" content="{host}/example http://{host}/decoy/comment/{{name}}.{{ext}}"> -->
<meta name="ac-discovery" content="{host}/other http://{host}/decoy/other/{{name}}.{{ext}}">
<meta name="ac-discovery" content="{host}/exam http://{host}/decoy/boundary/{{name}}.{{ext}}">
<meta name="ac-discovery" content="{host}/example http://{host}/decoy/label/{{name}}-{{flavour}}.{{ext}}">
<META content='{host}/example http://{host}/images/{{os}}/{{arch}}/{{name}}-{{version}}.{{ext}}?from=meta&amp;x=1' NAME="ac-discovery">
<meta name="ac-discovery-pubkeys" content="{host}/example http://{host}/pubkeys.gpg">
</head><body>discovery</body></html>"#
    );
    put(site, "/example?ac-discovery=1", page);
}

/// A listener on 127.0.0.1 that records the first byte each connection
/// sends and hangs up.
fn first_byte_recorder() -> (u16, Arc<Mutex<Vec<u8>>>) {
    use std::io::Read;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            let mut b = [0u8; 1];
            if conn.read_exact(&mut b).is_ok() {
                record.lock().unwrap().push(b[0]);
            }
        }
    });
    (port, seen)
}

fn aci_path(host: &str, ext: &str) -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        other => other,
    };
    format!("/images/linux/{arch}/{host}/example/app-1.0.{ext}?from=meta&x=1")
}

#[test]
fn an_aci_found_by_discovery_is_imported() {
    let berth = Berth::new();
    let (server, site) = serve();
    let host = server.host();
    discovery_site(&site, &host);
    put(&site, &aci_path(&host, "aci"), aci("discovered"));
    let name = format!("aci:{host}/example/app:1.0");

    let run = berth.run(["import", &name, "app", "--tls-verify=false", "--machine"]).success();
    printed_id(&run);
    // No keyring: one line says the signature was not checked.
    assert_eq!(run.stderr.trim().lines().count(), 1, "{}", run.stderr);
    assert!(run.stderr.contains("not checked"), "{}", run.stderr);
    assert_eq!(marker(&berth, "app"), "discovered\n");
    assert_eq!(super::machine_names(&berth), vec!["app".to_string()]);
    let paths: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
    assert!(paths.iter().any(|p| p == "/example/app?ac-discovery=1"), "the full name first: {paths:?}");
    assert!(!paths.iter().any(|p| p.starts_with("/decoy/")), "a decoy template was used: {paths:?}");

    // Without --tls-verify=false discovery speaks only TLS: a listener
    // that records each connection's first byte sees TLS handshakes
    // (0x16), never a plain `GET`.
    let before = listing(&berth);
    let (port, first_bytes) = first_byte_recorder();
    let https_only = format!("aci:127.0.0.1:{port}/example/app:1.0");
    berth.run(["import", &https_only, "no-tls", "--verify=no"]).failure().mentions_any(&["no ac-discovery template"]);
    let seen = first_bytes.lock().unwrap().clone();
    assert!(!seen.is_empty(), "discovery never connected");
    assert!(seen.iter().all(|b| *b == 0x16), "plain http without --tls-verify=false: first bytes {seen:?}");
    before.assert_unchanged(&listing(&berth), "discovery over https only");
    // --verify=checksum means nothing for an ACI.
    berth
        .run(["import", &name, "x", "--tls-verify=false", "--verify=checksum"])
        .failure()
        .mentions_any(&["--verify=signature"]);
    before.assert_unchanged(&listing(&berth), "--verify=checksum of an ACI");
}

#[test]
fn an_aci_with_a_bad_signature_is_refused_and_a_good_one_imports() {
    let berth = Berth::new();
    let trusted = Key::new(berth.dir(), "trusted");
    let stranger = Key::new(berth.dir(), "stranger");
    let keyring = trusted.pubring.to_str().unwrap().to_string();
    let (server, site) = serve();
    let host = server.host();
    discovery_site(&site, &host);
    let body = aci("signed-aci");
    put(&site, &aci_path(&host, "aci"), body.clone());
    let name = format!("aci:{host}/example/app:1.0");
    let import = |extra: &[&str]| {
        let mut args = vec!["import", name.as_str(), "app", "--tls-verify=false", "--keyring", keyring.as_str()];
        args.extend_from_slice(extra);
        berth.run(args)
    };
    let before = store_with_one_image(&berth);

    put(&site, &aci_path(&host, "aci.asc"), stranger.sign(&body, false));
    for extra in [&["--verify=signature"][..], &[][..]] {
        import(extra).failure().mentions_any(&["signature"]);
        unchanged(&berth, &before, "an .aci.asc by another key");
    }
    // The trusted key's signature of other bytes.
    put(&site, &aci_path(&host, "aci.asc"), trusted.sign(&aci("something else"), false));
    import(&["--verify=signature"]).failure().mentions_any(&["bad signature"]);
    unchanged(&berth, &before, "an .aci.asc of other content");
    // No .aci.asc at all.
    site.lock().unwrap().remove(&aci_path(&host, "aci.asc"));
    import(&["--verify=signature"]).failure().mentions_any(&["no signature"]);
    unchanged(&berth, &before, "no .aci.asc");

    put(&site, &aci_path(&host, "aci.asc"), trusted.sign(&body, false));
    let run = import(&["--verify=signature"]).success();
    printed_id(&run);
    assert_eq!(run.stderr.trim(), "", "a verified ACI import says nothing on stderr");
    assert_eq!(marker(&berth, "app"), "signed-aci\n");
}

#[test]
fn a_signed_gpt_disk_in_a_raw_tar_gz_url_becomes_a_machine_and_a_tampered_one_does_not() {
    // CentOS's GenericCloud.raw.tar.gz as its mirror serves it: a GPT
    // disk alone in a tarball, with SHA256SUMS and a signature beside it.
    let berth = Berth::new();
    let key = Key::new(berth.dir(), "cloud");
    let (tree, disk) = super::import_disks::gpt_dps_disk(&berth);
    let inner = "CentOS-7-x86_64-GenericCloud-2211.raw";
    let stage = berth.new_dir("cloud-stage");
    std::fs::copy(&disk, stage.join(inner)).unwrap();
    let tgz = berth.dir().join(format!("{inner}.tar.gz"));
    host(Command::new("tar").arg("-C").arg(&stage).arg("-czSf").arg(&tgz).arg(inner));
    let good = std::fs::read(&tgz).unwrap();
    let (server, site) = serve();
    let path = format!("/centos/7/images/{inner}.tar.gz");
    let sums = sums_for(&format!("{inner}.tar.gz"), &good);
    put(&site, "/centos/7/images/SHA256SUMS", sums.clone());
    put(&site, "/centos/7/images/SHA256SUMS.gpg", key.sign(sums.as_bytes(), false));
    let url = format!("http://{}{path}", server.host());
    let keyring = key.pubring.to_str().unwrap();
    let import = ["import", url.as_str(), "centos", "--machine", "--verify=signature", "--keyring", keyring];

    // The same disk with one byte of the tarball's tail changed: still a
    // valid gzip stream up to there, refused by its sum.
    let before = store_with_one_image(&berth);
    let mut bad = good.clone();
    let at = bad.len() / 2;
    bad[at] ^= 0x5a;
    put(&site, &path, bad);
    berth.run(import).failure().mentions_any(&["sha256", "SHA256SUMS", "gzip", "corrupt"]);
    unchanged(&berth, &before, "a tampered raw.tar.gz");
    assert!(super::machine_names(&berth).is_empty(), "a refused --machine import made a machine");

    put(&site, &path, good);
    let run = berth.run(import).success();
    printed_id(&run);
    super::assert_nothing_attached(&berth, "a signed raw.tar.gz");
    assert_no_staging(&berth, "a signed raw.tar.gz");
    super::assert_image_is(&berth, "centos", &tree, super::import_disks::LOST, "the disk of a signed raw.tar.gz");
    assert_eq!(super::machine_names(&berth), vec!["centos".to_string()]);
    // The cloud workflow: the machine runs with --volatile=overlay and
    // keeps nothing of it.
    let sh = "echo scratch > /volatile-probe && cat /volatile-probe";
    let r = berth.run(["run", "-M", "centos", "--volatile=overlay", "/bin/sh", "-c", sh]).success();
    assert_eq!(r.stdout, "scratch\n", "{r:?}");
    let r = berth.run(["run", "-M", "centos", "/bin/sh", "-c", "test -e /volatile-probe && echo kept; true"]).success();
    assert_eq!(r.stdout, "", "--volatile=overlay wrote into the machine: {r:?}");
}
