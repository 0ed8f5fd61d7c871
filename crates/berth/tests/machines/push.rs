//! `berth push NAME REF`: to the harness registry (open, and behind
//! htpasswd with `--creds`). skopeo must see the digest berth printed, a
//! fresh store must pull the same tree, and skopeo + umoci must unpack
//! the same tree (commit → push → pull round trip).

use std::process::Command;

use serde_json::Value;

use super::{assert_same, host, image_tree, sh_in, with_machine_image};
use crate::harness::berth::unique;
use crate::harness::tree;
use crate::harness::{fixtures, Berth, Registry};

fn skopeo_inspect(reference: &str, creds: Option<&str>) -> Value {
    let mut cmd = Command::new("skopeo");
    cmd.args(["inspect", "--tls-verify=false"]);
    if let Some(c) = creds {
        cmd.arg("--creds").arg(c);
    }
    cmd.arg(format!("docker://{reference}"));
    serde_json::from_str(&host(&mut cmd)).expect("skopeo inspect JSON")
}

/// The `sha256:…` digest printed by push (its last stdout line).
fn printed_digest(run: &crate::harness::Run) -> String {
    let last = run.stdout.trim().lines().last().unwrap_or("").trim().to_string();
    assert!(last.starts_with("sha256:") && last.len() == 71, "push should print the manifest digest: {run:?}");
    last
}

#[test]
fn commit_push_pull_round_trip_with_berth_and_with_skopeo_and_umoci() {
    let (_src, berth, image) = with_machine_image();
    berth.run(["create", image.as_str(), "m"]).success();
    sh_in(&berth, "m", super::commit::CHANGES).success();
    berth.run(["commit", "m", "shipped"]).success();
    let want = image_tree(&berth, "shipped");

    let dest = Registry::start();
    let reference = dest.reference(&format!("team/shipped-{}", unique()), "v1");
    let run = berth.run(["push", "shipped", reference.as_str(), "--tls-verify=false"]).success();
    let digest = printed_digest(&run);
    let sk = skopeo_inspect(&reference, None);
    assert_eq!(sk["Digest"], digest, "skopeo sees another manifest than berth printed: {sk}");
    let layers = berth.inspect("shipped")["layers"].as_array().unwrap().len();
    assert_eq!(sk["Layers"].as_array().map(|l| l.len()), Some(layers), "{sk}");

    // A fresh store pulls the same tree and the same image ID.
    let fresh = Berth::new();
    fresh.pull(&reference, &["-q"]).success();
    assert_eq!(fresh.inspect(&reference)["id"], berth.inspect("shipped")["id"], "the pulled image has another ID");
    assert_eq!(fresh.inspect(&reference)["digest"], digest, "the pulled manifest digest");
    assert_same(&image_tree(&fresh, &reference), &want, &[], "fresh pull of the pushed image");

    // skopeo + umoci agree.
    let layout = berth.dir().join("sk-layout");
    host(
        Command::new("skopeo")
            .args(["copy", "--quiet", "--src-tls-verify=false"])
            .arg(format!("docker://{reference}"))
            .arg(format!("oci:{}:t", layout.display())),
    );
    let bundle = berth.dir().join("bundle");
    host(Command::new("umoci").arg("unpack").arg("--image").arg(format!("{}:t", layout.display())).arg(&bundle));
    assert_same(
        &tree::snapshot(&bundle.join("rootfs")),
        &want,
        &["."],
        "skopeo copy + umoci unpack of the pushed image",
    );
}

#[test]
fn push_twice_and_to_a_second_repository_gives_the_same_digest() {
    let (_src, berth, image) = super::pulled(&fixtures::multilayer());
    let dest = Registry::start();
    let r1 = dest.reference("one/app", "v1");
    let r2 = dest.reference("two/app", "v2");
    let d1 = printed_digest(&berth.run(["push", image.as_str(), r1.as_str(), "--tls-verify=false"]).success());
    let again = printed_digest(&berth.run(["push", image.as_str(), r1.as_str(), "--tls-verify=false"]).success());
    let d2 = printed_digest(&berth.run(["push", image.as_str(), r2.as_str(), "--tls-verify=false"]).success());
    assert_eq!(d1, again, "pushing again changed the digest");
    assert_eq!(d1, d2, "pushing to another repository changed the digest");
    // An image pulled unchanged keeps its manifest digest when pushed.
    assert_eq!(d1, fixtures::multilayer().digest(), "push of a pulled image must keep its manifest");
    assert_eq!(skopeo_inspect(&r2, None)["Digest"], d2);
}

#[test]
fn push_to_a_registry_with_basic_auth_needs_credentials() {
    let (_src, berth, image) = super::pulled(&fixtures::tiny("auth"));
    let dest = Registry::start_with_auth("pusher", "s3cret");
    let reference = dest.reference("private/app", "v1");
    let before = super::listing(&berth);
    berth.run(["push", image.as_str(), reference.as_str(), "--tls-verify=false"]).failure().mentions_any(&[
        "auth",
        "401",
        "unauthorized",
        "credentials",
        "denied",
    ]);
    berth
        .run(["push", image.as_str(), reference.as_str(), "--tls-verify=false", "--creds", "pusher:wrong"])
        .failure()
        .mentions_any(&["auth", "401", "unauthorized", "credentials", "denied"]);
    before.assert_unchanged(&super::listing(&berth), "refused pushes");
    let run = berth
        .run(["push", image.as_str(), reference.as_str(), "--tls-verify=false", "--creds", "pusher:s3cret"])
        .success();
    let digest = printed_digest(&run);
    assert_eq!(skopeo_inspect(&reference, Some("pusher:s3cret"))["Digest"], digest);
    let fresh = Berth::new();
    fresh.pull(&reference, &["-q", "--creds", "pusher:s3cret"]).success();
    assert_same(&image_tree(&fresh, &reference), &image_tree(&berth, &image), &[], "pull of the pushed private image");
}

#[test]
fn push_errors() {
    let (_src, berth, image) = super::pulled(&fixtures::tiny("err"));
    let dest = Registry::start();
    let before = super::listing(&berth);
    berth
        .run(["push", "no-such-image", dest.reference("x/y", "z").as_str(), "--tls-verify=false"])
        .failure()
        .mentions_any(&["no-such-image"]);
    berth.run(["push", image.as_str(), "bad ref!", "--tls-verify=false"]).failure();
    // Plain http without --tls-verify=false is refused.
    berth.run(["push", image.as_str(), dest.reference("x/y", "z").as_str()]).failure();
    before.assert_unchanged(&super::listing(&berth), "failed pushes");
}

#[test]
fn blobs_the_registry_has_are_not_uploaded_again() {
    // A 4 MB incompressible layer, pulled from `src/big` of a registry
    // reached through a byte-counting proxy: whether it crosses the wire
    // again on push shows.
    let reg = Registry::start();
    reg.push_image("src/big", "latest", &fixtures::big(4 << 20));
    let proxy = super::CountingProxy::start(&reg.host());
    let origin = format!("{}/src/big:latest", proxy.host());
    let berth = Berth::new();
    berth.pull(&origin, &["-q"]).success();
    let pulled = proxy.take();
    assert!(pulled < 256 << 10, "a pull sent {pulled} bytes upstream");

    // Same repository, new tag: every blob is there already.
    let again = format!("{}/src/big:again", proxy.host());
    berth.run(["push", origin.as_str(), again.as_str(), "--tls-verify=false"]).success();
    let sent = proxy.take();
    assert!(sent < 256 << 10, "pushing to the repository the image came from sent {sent} bytes: blobs re-uploaded");

    // Another repository of the same registry: the registry offers
    // cross-repository mounts (`POST …/uploads/?mount=DIGEST&from=src/big`).
    let other = format!("{}/dst/big:v1", proxy.host());
    berth.run(["push", origin.as_str(), other.as_str(), "--tls-verify=false"]).success();
    let sent = proxy.take();
    assert!(
        sent < 256 << 10,
        "pushing to another repository of the registry the image came from sent {sent} bytes: \
         no cross-repository mount from src/big"
    );
    let fresh = Berth::new();
    fresh.pull(&reg.reference("dst/big", "v1"), &["-q"]).success();
}
