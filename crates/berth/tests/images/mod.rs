//! `images`, `inspect`, `tag`, `rmi` and `gc` on pulled images.

use serde_json::Value;

use crate::harness::berth::find_image;
use crate::harness::oci::{Compression, Layer};
use crate::harness::tarball::{tar, Entry};
use crate::harness::{fixtures, Berth, Image, Registry};

/// A registry with `image` as `repo:latest`, pulled into a fresh store.
fn pulled(repo: &str, image: &Image) -> (Registry, Berth, String) {
    let reg = Registry::start();
    reg.push_image(repo, "latest", image);
    let reference = reg.reference(repo, "latest");
    let berth = Berth::new();
    berth.pull(&reference, &[]).success();
    (reg, berth, reference)
}

fn names_of(entry: &Value) -> Vec<String> {
    entry["names"]
        .as_array()
        .unwrap_or_else(|| panic!("`names` is not an array: {entry}"))
        .iter()
        .map(|n| n.as_str().expect("names are strings").to_string())
        .collect()
}

#[test]
fn images_json_lists_id_names_digest_size_and_platform() {
    let image = fixtures::multilayer();
    let (_reg, berth, reference) = pulled("multilayer", &image);
    let images = berth.images();
    assert_eq!(images.len(), 1, "one pulled image: {images:?}");
    let e = &images[0];
    assert_eq!(e["id"], image.id(), "id is the config digest: {e}");
    assert_eq!(names_of(e), vec![reference.clone()], "names: {e}");
    assert_eq!(e["digest"], image.digest(), "digest is the manifest digest: {e}");
    assert!(e["size"].as_u64().is_some_and(|s| s > 0), "size must be a positive integer: {e}");
    assert_eq!(e["platform"], "linux/amd64", "platform: {e}");
}

#[test]
fn inspect_json_has_config_and_layers() {
    let image = fixtures::mixed_compression();
    let (_reg, berth, reference) = pulled("mixed", &image);
    let v = berth.inspect(&reference);
    assert_eq!(v["id"], image.id(), "id: {v}");
    assert!(names_of(&v).contains(&reference), "names: {v}");
    assert_eq!(v["digest"], image.digest(), "digest: {v}");
    assert_eq!(v["platform"], "linux/amd64", "platform: {v}");
    assert_eq!(v["config"], image.config_json(), "config must be the image's OCI config");
    let layers = v["layers"].as_array().unwrap_or_else(|| panic!("`layers` is not an array: {v}"));
    assert_eq!(layers.len(), image.layers.len(), "layer count: {v}");
    for (got, want) in layers.iter().zip(&image.layers) {
        assert_eq!(got["digest"], want.blob.digest, "layer digest: {got}");
        assert_eq!(got["diff_id"], want.diff_id, "layer diff_id: {got}");
        assert_eq!(got["size"], want.blob.data.len() as u64, "layer size: {got}");
        assert_eq!(got["media_type"], want.blob.media_type, "layer media_type: {got}");
    }
    // The image's id works as a name too.
    let by_id = berth.inspect(image.id());
    assert_eq!(by_id["id"], image.id(), "inspect by id");
}

#[test]
fn tag_adds_a_name_and_rmi_of_one_name_keeps_the_image() {
    let image = fixtures::tiny("tagged");
    let (reg, berth, reference) = pulled("tiny", &image);
    let second = reg.reference("other", "v2");
    berth.run(["tag", reference.as_str(), second.as_str()]).success();

    let images = berth.images();
    assert_eq!(images.len(), 1, "tag must not create a second image: {images:?}");
    let mut names = names_of(&images[0]);
    names.sort();
    let mut want = vec![reference.clone(), second.clone()];
    want.sort();
    assert_eq!(names, want, "names after tag");
    assert_eq!(berth.inspect(&second)["id"], image.id(), "the new name points at the image");

    let blobs = berth.blob_files();
    let layers = berth.layer_dirs();
    berth.run(["rmi", reference.as_str()]).success();
    let images = berth.images();
    let e = find_image(&images, &second).unwrap_or_else(|| panic!("{second} gone after rmi of {reference}"));
    assert_eq!(names_of(e), vec![second.clone()], "only the other name is left");
    berth.run(["gc"]).success();
    assert_eq!(berth.blob_files(), blobs, "gc must keep blobs of a named image");
    assert_eq!(berth.layer_dirs(), layers, "gc must keep layers of a named image");
    let mnt = berth.mount(&second);
    berth.unmount(&mnt);
}

#[test]
fn rmi_of_last_name_and_gc_remove_all_blobs_and_layers() {
    let image = fixtures::multilayer();
    let (_reg, berth, reference) = pulled("multilayer", &image);
    assert!(!berth.blob_files().is_empty(), "pull stored no blobs under blobs/sha256");
    assert_eq!(berth.layer_dirs().len(), image.layers.len(), "one dir per layer under layers/");
    berth.run(["rmi", reference.as_str()]).success();
    assert!(berth.images().is_empty(), "image still listed after rmi of its only name");
    berth.run(["gc"]).success();
    assert_eq!(berth.blob_files(), Vec::<String>::new(), "blobs/sha256 must be empty after gc");
    assert_eq!(berth.layer_dirs(), Vec::<String>::new(), "layers/ must be empty after gc");
}

#[test]
fn gc_keeps_layers_shared_with_a_remaining_image() {
    let shared = tar(&[Entry::dir("etc"), Entry::file("etc/shared", "shared base\n")]);
    let own = |n: &str| tar(&[Entry::file(format!("own-{n}"), n)]);
    let a = Image::new(
        "amd64",
        vec![Layer::new(shared.clone(), Compression::Gzip), Layer::new(own("a"), Compression::Gzip)],
    );
    let b = Image::new("amd64", vec![Layer::new(shared, Compression::Gzip), Layer::new(own("b"), Compression::Gzip)]);
    let reg = Registry::start();
    reg.push_image("a", "latest", &a);
    reg.push_image("b", "latest", &b);
    let (ra, rb) = (reg.reference("a", "latest"), reg.reference("b", "latest"));
    let berth = Berth::new();
    berth.pull(&ra, &[]).success();
    berth.pull(&rb, &[]).success();
    assert_eq!(berth.layer_dirs().len(), 3, "the shared layer is stored once");

    berth.run(["rmi", ra.as_str()]).success();
    berth.run(["gc"]).success();
    let mut want: Vec<String> = b.layers.iter().map(|l| l.diff_id.trim_start_matches("sha256:").to_string()).collect();
    want.sort();
    assert_eq!(berth.layer_dirs(), want, "gc keeps exactly b's two layers (layers/DIFF_ID_HEX)");
    let blobs = berth.blob_files();
    assert!(!blobs.contains(&a.layers[1].blob.hex().to_string()), "a's own layer blob survived gc");
    for l in &b.layers {
        assert!(blobs.contains(&l.blob.hex().to_string()), "b's layer blob {} removed by gc", l.blob.digest);
    }
    let mnt = berth.mount(&rb);
    let ok = mnt.join("etc/shared").is_file() && mnt.join("own-b").is_file();
    berth.unmount(&mnt);
    assert!(ok, "b no longer mounts whole after gc");
}

#[test]
fn unknown_name_is_an_error_for_inspect_rmi_tag_and_mount() {
    let image = fixtures::tiny("known");
    let (_reg, berth, reference) = pulled("tiny", &image);
    let before = berth.listing();
    berth.run(["inspect", "no-such-image", "--json"]).failure().mentions_any(&["no-such-image"]);
    berth.run(["rmi", "no-such-image"]).failure().mentions_any(&["no-such-image"]);
    berth.run(["tag", "no-such-image", "other:v1"]).failure().mentions_any(&["no-such-image"]);
    let mnt = berth.new_dir("mnt-unknown");
    let mnt = mnt.to_str().expect("utf-8 path");
    berth.run(["mount", "no-such-image", mnt]).failure().mentions_any(&["no-such-image"]);
    before.assert_unchanged(&berth.listing(), "commands on an unknown name");
    assert!(find_image(&berth.images(), &reference).is_some(), "the known image survived");
}
