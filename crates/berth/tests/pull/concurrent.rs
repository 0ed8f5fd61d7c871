//! Two pulls at once, and a pull killed half-way.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use crate::harness::berth::{find_image, wait_with_timeout};
use crate::harness::oci::sha256_digest;
use crate::harness::tree::file_sha256;
use crate::harness::{fixtures, Berth, Registry};

#[test]
fn two_simultaneous_pulls_both_succeed_and_store_each_layer_once() {
    let reg = Registry::start();
    let image = fixtures::multilayer();
    reg.push_image("multilayer", "latest", &image);
    let reference = reg.reference("multilayer", "latest");
    let berth = Berth::new();

    let args = ["pull", "--tls-verify=false", reference.as_str()];
    let mut a = berth.spawn(args);
    let mut b = berth.spawn(args);
    let ra = wait_with_timeout(&mut a, format!("first {args:?}"));
    let rb = wait_with_timeout(&mut b, format!("second {args:?}"));
    ra.success();
    rb.success();

    let layers = berth.layer_dirs();
    assert_eq!(layers.len(), image.layers.len(), "expected one unpacked dir per layer under layers/, found {layers:?}");
    let known: Vec<&str> = image.blobs().chain([&image.manifest]).map(|b| b.hex()).collect();
    let blobs = berth.blob_files();
    for b in &blobs {
        assert!(known.contains(&b.as_str()), "unexpected file in blobs/sha256: {b} (all: {blobs:?})");
    }
    for l in &image.layers {
        assert!(blobs.contains(&l.blob.hex().to_string()), "layer blob {} missing", l.blob.digest);
    }
    let staging = tmp_entries(&berth);
    assert!(staging.is_empty(), "the pulls left staging files behind in tmp/: {staging:?}");
    let images = berth.images();
    assert_eq!(images.len(), 1, "two pulls of one image must give one image: {images:?}");
    assert_eq!(images[0]["id"], image.id());
}

/// Total bytes of regular files under `dir`.
fn bytes_under(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) if m.is_file() => total += m.size(),
                _ => {}
            }
        }
    }
    total
}

#[test]
fn pull_killed_midway_leaves_no_image_and_the_next_pull_succeeds() {
    const SIZE: usize = 32 * 1024 * 1024;
    let reg = Registry::start();
    let image = fixtures::big(SIZE);
    reg.push_image("big", "latest", &image);
    let reference = reg.reference("big", "latest");
    let berth = Berth::new();

    let mut child = berth.spawn(["pull", "--tls-verify=false", reference.as_str()]);
    // Kill once the download is under way: more than 1 MB has landed in the
    // store (or after 2 s at the latest).
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline && bytes_under(berth.root()) < 1024 * 1024 {
        if child.try_wait().expect("poll berth").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let finished_early = child.try_wait().expect("poll berth");
    assert!(
        finished_early.is_none(),
        "the pull of a {SIZE}-byte layer finished ({finished_early:?}) before it could be killed; \
         make the fixture bigger"
    );
    eprintln!("killing berth with {} bytes in the store", bytes_under(berth.root()));
    child.kill().expect("SIGKILL berth");
    child.wait().expect("reap berth");

    let images = berth.images();
    assert!(images.is_empty(), "a killed pull left an image visible: {images:?}");

    berth.pull(&reference, &[]).success();
    let images = berth.images();
    let entry = find_image(&images, &reference)
        .unwrap_or_else(|| panic!("{reference} missing after the second pull: {images:?}"));
    assert_eq!(entry["id"], image.id());

    // The layer must be whole, not a leftover of the killed pull.
    let tar = image.layers[0].tar.as_ref().expect("tar kept");
    let want = sha256_digest(&tar[512..512 + SIZE]);
    let mnt = berth.mount(&reference);
    let got = format!("sha256:{}", file_sha256(&mnt.join("big.bin")));
    berth.unmount(&mnt);
    assert_eq!(got, want, "big.bin in the re-pulled image has the wrong content");

    berth.run(["gc"]).success();
    let staging = tmp_entries(&berth);
    assert!(staging.is_empty(), "gc left the killed pull's staging in tmp/: {staging:?}");
    assert_eq!(berth.layer_dirs().len(), 1, "one layer after gc: {:?}", berth.layer_dirs());
}

/// What is left in the store's staging dir `tmp/`.
fn tmp_entries(berth: &Berth) -> Vec<String> {
    fs::read_dir(berth.root().join("tmp"))
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

/// Two images with the same layer content, compressed differently: the
/// layer is unpacked once, and each image's own compressed blob is kept,
/// so the second image can still be exported (regression: its blob was
/// never fetched because the layer was already there).
#[test]
fn same_layer_compressed_differently_keeps_both_blobs() {
    use crate::harness::oci::Compression;
    let reg = Registry::start();
    let gz = fixtures::compressed(Compression::Gzip);
    let plain = fixtures::compressed(Compression::None);
    reg.push_image("gz", "latest", &gz);
    reg.push_image("plain", "latest", &plain);
    let berth = Berth::new();
    berth.pull(&reg.reference("gz", "latest"), &[]).success();
    berth.pull(&reg.reference("plain", "latest"), &[]).success();
    assert_eq!(berth.layer_dirs().len(), gz.layers.len(), "each layer is unpacked once");
    let blobs = berth.blob_files();
    for l in gz.layers.iter().chain(plain.layers.iter()) {
        assert!(blobs.contains(&l.blob.hex().to_string()), "blob {} missing from the store", l.blob.digest);
    }
    let out = tempfile::tempdir().expect("tempdir");
    let layout = out.path().join("layout");
    let reference = reg.reference("plain", "latest");
    berth.run(["export", reference.as_str(), layout.to_str().expect("utf-8"), "--format", "oci"]).success();
}
