//! `berth run --pull=missing|always|never`: an image the store lacks is
//! pulled by `run` (the default, as podman does), `always` pulls a tag
//! that moved, and `never` fails in one line with the store unchanged.

use crate::harness::oci::{Compression, Layer};
use crate::harness::tarball::{tar, Entry};
use crate::harness::{fixtures, Berth, Image, Registry};

/// busybox with `/etc/marker` holding `marker`.
fn marked(marker: &str) -> Image {
    let mut layers = fixtures::busybox().layers;
    layers.push(Layer::new(tar(&[Entry::dir("etc"), Entry::file("etc/marker", marker)]), Compression::Gzip));
    Image::new("amd64", layers)
}

#[test]
fn run_pulls_what_the_store_lacks_and_pull_always_follows_a_moved_tag() {
    let reg = Registry::start();
    reg.push_image("app", "latest", &marked("first"));
    let reference = reg.reference("app", "latest");
    let berth = Berth::new();

    // never: nothing pulled, a one-line error naming the image.
    berth.run(["images"]).success();
    let before = crate::machines::listing(&berth);
    berth.run(["run", "--pull=never", &reference, "/bin/true"]).failure().mentions_any(&["not found"]);
    before.assert_unchanged(&crate::machines::listing(&berth), "run --pull=never of a missing image");

    // missing (the default): pulled, then run.
    let o = berth.run(["run", "--tls-verify=false", &reference, "cat", "/etc/marker"]).success();
    assert_eq!(o.stdout, "first");
    assert_eq!(berth.images().len(), 1);

    // The tag moves: missing keeps the stored image, always pulls the new one.
    reg.push_image("app", "latest", &marked("second"));
    let o = berth.run(["run", "--tls-verify=false", &reference, "cat", "/etc/marker"]).success();
    assert_eq!(o.stdout, "first", "--pull=missing must not pull an image the store has");
    let o = berth.run(["run", "--pull=always", "--tls-verify=false", &reference, "cat", "/etc/marker"]).success();
    assert_eq!(o.stdout, "second", "--pull=always must pull the moved tag");
}
