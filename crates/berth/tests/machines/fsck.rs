//! `berth fsck`: a sound store passes; a blob with a flipped byte, an
//! unpacked layer removed, a name pointing at no image and a machine on an
//! unknown image are each reported, with exit status 1, and fsck itself
//! changes nothing.

use std::fs;

use super::{listing, with_machine_image};

#[test]
fn fsck_reports_each_broken_thing_and_changes_nothing() {
    let (_reg, berth, image) = with_machine_image();
    berth.run(["create", &image, "m"]).success();
    let clean = berth.run(["fsck"]).success();
    assert!(clean.stdout.contains("no problems"), "{}", clean.stdout);

    // The largest blob is a layer: flip a byte in its middle.
    let blobs = berth.root().join("blobs/sha256");
    let layer = berth.blob_files().into_iter().max_by_key(|b| fs::metadata(blobs.join(b)).unwrap().len()).unwrap();
    let mut data = fs::read(blobs.join(&layer)).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    fs::write(blobs.join(&layer), data).unwrap();
    // An unpacked layer gone.
    let gone = berth.layer_dirs().pop().unwrap();
    fs::remove_dir_all(berth.root().join("layers").join(&gone)).unwrap();
    // A name pointing at no image.
    let refs_path = berth.root().join("refs.json");
    let mut refs: serde_json::Value = serde_json::from_slice(&fs::read(&refs_path).unwrap()).unwrap();
    let ghost = format!("sha256:{}", "0".repeat(64));
    refs["localhost/ghost:latest"] = ghost.clone().into();
    fs::write(&refs_path, refs.to_string()).unwrap();
    // A machine on an image the store does not have.
    let mrec = berth.root().join("machines/m/machine.json");
    let mut m: serde_json::Value = serde_json::from_slice(&fs::read(&mrec).unwrap()).unwrap();
    m["image"] = ghost.clone().into();
    fs::write(&mrec, m.to_string()).unwrap();

    let before = listing(&berth);
    let r = berth.run(["fsck"]);
    assert_eq!(r.status.code(), Some(1), "fsck of a broken store must exit 1: {r:?}");
    assert!(r.stdout.contains(&format!("blob sha256:{layer}: content hashes to")), "{}", r.stdout);
    assert!(r.stdout.contains(&format!("unpacked layer sha256:{gone} is missing")), "{}", r.stdout);
    assert!(r.stdout.contains("name localhost/ghost:latest: points at image 000000000000"), "{}", r.stdout);
    assert!(r.stdout.contains(&format!("layer blob sha256:{layer} is corrupt")), "{}", r.stdout);
    assert!(r.stdout.contains("machine m: is built on image 000000000000"), "{}", r.stdout);
    let j = berth.run(["fsck", "--json"]);
    assert_eq!(j.status.code(), Some(1));
    let problems = j.json()["problems"].as_array().unwrap().len();
    assert!(problems >= 5, "{}", j.stdout);
    before.assert_unchanged(&listing(&berth), "berth fsck");
}
