//! Bad input to `berth pull`: each fails with a one-line error naming the
//! thing, a non-zero exit, and the store exactly as it was before.

use std::fs;
use std::io::Read;

use crate::harness::hostile;
use crate::harness::{fixtures, Berth, Image, Listing, Registry};

/// A registry and a store that already holds one image, with its listing.
struct Setup {
    reg: Registry,
    berth: Berth,
    before: Listing,
}

impl Setup {
    fn new() -> Setup {
        let reg = Registry::start();
        reg.push_image("base", "latest", &fixtures::tiny("base"));
        let berth = Berth::new();
        berth.pull(&reg.reference("base", "latest"), &[]).success();
        let before = berth.listing();
        Setup { reg, berth, before }
    }

    /// Pushes `image` as `repo:latest` and returns its reference.
    fn push(&self, repo: &str, image: &Image) -> String {
        self.reg.push_image(repo, "latest", image);
        self.reg.reference(repo, "latest")
    }

    fn assert_store_unchanged(&self, what: &str) {
        self.before.assert_unchanged(&self.berth.listing(), what);
    }
}

/// The first 12 hex digits of a digest: what any digest mention contains.
fn short(digest: &str) -> String {
    digest.trim_start_matches("sha256:")[..12].to_string()
}

#[test]
fn unknown_repository_fails_naming_it() {
    let s = Setup::new();
    let reference = s.reg.reference("no-such-repo", "latest");
    s.berth.pull(&reference, &[]).failure().mentions_any(&["no-such-repo"]);
    s.assert_store_unchanged("pull of an unknown repository");
}

#[test]
fn unknown_tag_fails_naming_it() {
    let s = Setup::new();
    let reference = s.reg.reference("base", "no-such-tag");
    s.berth.pull(&reference, &[]).failure().mentions_any(&["no-such-tag"]);
    s.assert_store_unchanged("pull of an unknown tag");
}

#[test]
fn corrupt_layer_blob_fails_naming_its_digest() {
    let s = Setup::new();
    let image = fixtures::tiny("corrupt");
    let reference = s.push("corrupt", &image);
    let layer = &image.layers[0].blob;
    // Flip a byte of the gzip header's MTIME field: the layer still
    // decompresses to the same tar, so only digest verification catches it.
    let path = s.reg.blob_data_path(&layer.digest);
    let mut data = fs::read(&path).expect("read registry blob");
    data[4] ^= 0xff;
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(&data[..]).read_to_end(&mut tar).expect("the corrupted layer still decompresses");
    fs::write(&path, &data).expect("corrupt registry blob");

    s.berth.pull(&reference, &[]).failure().mentions_any(&[&short(&layer.digest)]);
    s.assert_store_unchanged("pull of a corrupt layer");
}

#[test]
fn corrupt_config_blob_fails_naming_its_digest() {
    let s = Setup::new();
    let image = fixtures::tiny("corrupt-config");
    let reference = s.push("corrupt-config", &image);
    let path = s.reg.blob_data_path(&image.config.digest);
    let text = fs::read_to_string(&path).expect("read registry config blob");
    // Same length, still valid JSON, other content.
    let corrupted = text.replace("/bin/sh", "/bin/xx");
    assert_ne!(corrupted, text, "the tiny fixture's config should mention /bin/sh");
    fs::write(&path, corrupted).expect("corrupt config blob");

    s.berth.pull(&reference, &[]).failure().mentions_any(&[&short(&image.config.digest)]);
    s.assert_store_unchanged("pull of a corrupt config");
}

#[test]
fn truncated_layer_blob_fails_naming_its_digest() {
    let s = Setup::new();
    let image = fixtures::compressed(crate::harness::Compression::Gzip);
    let reference = s.push("truncated", &image);
    let layer = &image.layers[0].blob;
    let path = s.reg.blob_data_path(&layer.digest);
    let f = fs::OpenOptions::new().write(true).open(&path).expect("open registry blob");
    f.set_len(layer.data.len() as u64 / 2).expect("truncate registry blob");

    s.berth.pull(&reference, &[]).failure().mentions_any(&[&short(&layer.digest)]);
    s.assert_store_unchanged("pull of a truncated layer");
}

#[test]
fn unsupported_layer_media_type_fails_naming_it() {
    let s = Setup::new();
    let (image, media_type) = hostile::unknown_media_type();
    let reference = s.push("weird", &image);
    s.berth.pull(&reference, &[]).failure().mentions_any(&[media_type]);
    s.assert_store_unchanged("pull of an unsupported media type");
}

#[test]
fn malformed_reference_fails_naming_it() {
    let s = Setup::new();
    s.berth.pull("Bad:Ref", &[]).failure().mentions_any(&["Bad:Ref"]);
    s.assert_store_unchanged("pull of a malformed reference");
}

#[test]
fn decompression_bomb_over_max_layer_size_fails() {
    let s = Setup::new();
    let image = hostile::bomb(200 * 1024 * 1024);
    assert!(image.layers[0].blob.data.len() < 2 * 1024 * 1024, "the bomb should be small on the wire");
    let reference = s.push("bomb", &image);
    s.berth.pull(&reference, &["--max-layer-size", "10000000"]).failure().mentions_any(&[
        "size",
        "limit",
        "large",
        "exceed",
        &short(&image.layers[0].blob.digest),
    ]);
    s.assert_store_unchanged("pull of a decompression bomb");
}

/// A GNU long name of 64 MB (a few KB of zstd): tar-rs read such a header
/// into memory whole, whatever size it gave, before the entry's path was
/// even looked at. Now the stream is refused at that header.
#[test]
fn a_huge_tar_extension_header_fails_at_the_header() {
    let s = Setup::new();
    let size = 64usize << 20;
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::GNULongName);
    h.set_size(size as u64);
    h.as_gnu_mut().expect("gnu header").name[..13].copy_from_slice(b"././@LongLink");
    h.set_cksum();
    let mut t = h.as_bytes().to_vec();
    t.resize(512 + size, b'a');
    let mut f = tar::Header::new_gnu();
    f.set_size(0);
    f.set_mode(0o644);
    f.set_cksum();
    t.extend_from_slice(f.as_bytes());
    t.resize(t.len() + 1024, 0);
    let image = Image::new("amd64", vec![crate::harness::oci::Layer::new(t, crate::harness::oci::Compression::Zstd)]);
    assert!(image.layers[0].blob.data.len() < 1 << 20, "small on the wire");
    let reference = s.push("longname", &image);
    s.berth.pull(&reference, &[]).failure().mentions_any(&["GNU long name"]);
    s.assert_store_unchanged("pull of a layer with a 64 MB long name");
}

/// An empty whiteout `.wh.` names nothing: umoci refuses such a layer, and
/// so does berth now (it used to drop the entry silently).
#[test]
fn an_empty_whiteout_is_refused_as_umoci_refuses_it() {
    use crate::harness::oci::{Compression, Layer};
    use crate::harness::tarball::{tar, Entry};
    let s = Setup::new();
    let layers = vec![
        Layer::new(tar(&[Entry::dir("d"), Entry::file("d/x", "x")]), Compression::Gzip),
        Layer::new(tar(&[Entry::file("d/.wh.", "")]), Compression::Gzip),
    ];
    let image = Image::new("amd64", layers);
    let umoci = crate::harness::umoci::refusal(&image);
    assert!(umoci.is_some(), "the oracle: umoci refuses the layer too");
    let reference = s.push("emptywh", &image);
    s.berth.pull(&reference, &[]).failure().mentions_any(&[".wh."]);
    s.assert_store_unchanged("pull of a layer with an empty whiteout");
}
