//! Pulled images, once mounted, are exactly the tree `umoci unpack` makes.

use std::fs;

use super::assert_pull_matches_umoci;
use crate::harness::berth::find_image;
use crate::harness::fixtures;
use crate::harness::{Compression, Image, Registry};

/// Pushes `image` as `repo:latest` and checks berth against umoci.
fn push_and_compare(repo: &str, image: &Image) {
    let reg = Registry::start();
    reg.push_image(repo, "latest", image);
    let reference = reg.reference(repo, "latest");
    let berth = assert_pull_matches_umoci(&reference, &[], image);
    let images = berth.images();
    let entry = find_image(&images, &reference)
        .unwrap_or_else(|| panic!("`images --json` has no entry named {reference}: {images:?}"));
    assert_eq!(entry["id"], image.id(), "image id must be the config digest");
    assert_eq!(entry["digest"], image.digest(), "digest must be the manifest digest");
}

#[test]
fn busybox_matches_umoci() {
    push_and_compare("busybox", &fixtures::busybox());
}

#[test]
fn multilayer_whiteouts_and_opaque_dirs_match_umoci() {
    push_and_compare("multilayer", &fixtures::multilayer());
}

#[test]
fn special_files_and_metadata_match_umoci() {
    push_and_compare("special", &fixtures::special());
}

#[test]
fn gzip_layers_match_umoci() {
    push_and_compare("gzip", &fixtures::compressed(Compression::Gzip));
}

#[test]
fn zstd_layers_match_umoci() {
    push_and_compare("zstd", &fixtures::compressed(Compression::Zstd));
}

#[test]
fn uncompressed_layers_match_umoci() {
    push_and_compare("none", &fixtures::compressed(Compression::None));
}

#[test]
fn mixed_compression_layers_match_umoci() {
    push_and_compare("mixed", &fixtures::mixed_compression());
}

#[test]
fn busybox_pushed_by_skopeo_matches_umoci() {
    let reg = Registry::start();
    let image = fixtures::busybox();
    let layout = tempfile::tempdir().expect("layout dir");
    image.write_layout(layout.path(), "latest");
    reg.skopeo_push(layout.path(), "latest", "skopeo-busybox", false);
    assert_pull_matches_umoci(&reg.reference("skopeo-busybox", "latest"), &["-q"], &image);
}

#[test]
fn quiet_pull_prints_nothing_on_stderr() {
    let reg = Registry::start();
    reg.push_image("tiny", "latest", &fixtures::tiny("quiet"));
    let berth = crate::harness::Berth::new();
    let run = berth.pull(&reg.reference("tiny", "latest"), &["-q"]).success();
    assert!(run.stderr.trim().is_empty(), "`pull -q` wrote to stderr: {}", run.stderr);
}

/// Pulls the multi-arch index with `extra` flags and checks the platform
/// berth picked against umoci's unpack of that platform's image.
fn multiarch(arch: &str, extra: &[&str]) {
    let reg = Registry::start();
    let index = fixtures::multiarch();
    reg.push_index("multiarch", "latest", &index);
    let reference = reg.reference("multiarch", "latest");
    let image = index.image(arch);
    let berth = assert_pull_matches_umoci(&reference, extra, image);

    let images = berth.images();
    let entry = find_image(&images, &reference)
        .unwrap_or_else(|| panic!("`images --json` has no entry named {reference}: {images:?}"));
    assert_eq!(entry["platform"], format!("linux/{arch}"), "platform in `images --json`");
    assert_eq!(entry["id"], image.id(), "id must be the {arch} config digest");
    assert!(
        entry["digest"] == image.digest() || entry["digest"] == index.digest(),
        "digest should be the {arch} manifest's (or the index's): {entry}"
    );
    let mnt = berth.mount(&reference);
    let content = fs::read_to_string(mnt.join("arch")).expect("read /arch in the mount");
    berth.unmount(&mnt);
    assert_eq!(content.trim(), arch, "/arch of the pulled image");
}

#[test]
fn multiarch_index_defaults_to_the_host_platform_and_matches_umoci() {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => panic!("the multiarch fixture has no image for host arch {other}"),
    };
    multiarch(arch, &[]);
}

#[test]
fn multiarch_index_with_platform_arm64_matches_umoci() {
    multiarch("arm64", &["--platform", "linux/arm64"]);
}

#[test]
fn root_dir_entry_and_implicit_parent_dirs_match_umoci() {
    push_and_compare("implicit", &fixtures::implicit_dirs());
}

#[test]
fn whiteout_in_the_same_layer_as_its_file_matches_umoci() {
    push_and_compare("same-layer", &fixtures::same_layer_whiteouts());
}

/// The paths a container inside a user namespace sees: the image's layers
/// stacked by an overlayfs that the namespace's root mounts itself, with
/// `userxattr` (only `user.overlay.*` metadata counts there). Opaque
/// directories and whiteouts must act as they do in umoci's tree.
fn paths_seen_from_a_user_namespace(store: &std::path::Path, image: &Image) -> Vec<String> {
    let mnt = tempfile::tempdir().expect("mount point");
    let lowers: Vec<String> = image
        .layers
        .iter()
        .rev()
        .map(|l| store.join("layers").join(l.diff_id.trim_start_matches("sha256:")).join("root").display().to_string())
        .collect();
    let script = format!(
        "mount -t overlay overlay -o lowerdir={},userxattr {} && cd {} && find . | LC_ALL=C sort",
        lowers.join(":"),
        mnt.path().display(),
        mnt.path().display()
    );
    let out = std::process::Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c", &script])
        .output()
        .expect("run unshare");
    assert!(out.status.success(), "mounting the layers in a user namespace: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

#[test]
fn opaque_dirs_and_whiteouts_hold_inside_a_user_namespace_as_in_umoci() {
    let image = fixtures::multilayer();
    let reg = Registry::start();
    reg.push_image("userns", "latest", &image);
    let reference = reg.reference("userns", "latest");
    let berth = crate::harness::Berth::new();
    berth.pull(&reference, &["-q"]).success();
    let seen = paths_seen_from_a_user_namespace(berth.root(), &image);
    let oracle = crate::harness::umoci::unpack(&image);
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("cd {} && find . | LC_ALL=C sort", oracle.rootfs.display()))
        .output()
        .expect("find in umoci's tree");
    let expected: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
    assert_eq!(seen, expected, "the tree seen from a user namespace differs from umoci's");
    assert!(seen.iter().any(|p| p == "./opq1/new1") && !seen.iter().any(|p| p == "./opq1/old1"), "{seen:?}");
}

/// Writing through symlinks whose target directories do not exist yet
/// (relative, absolute, and one through another): umoci makes the
/// directories inside the root, and berth's tree must be the same.
#[test]
fn writes_through_symlinks_to_missing_directories_match_umoci() {
    use crate::harness::oci::Layer;
    use crate::harness::tarball::{tar, Entry};
    let layer = tar(&[
        Entry::symlink("rel", "missing/dir"),
        Entry::file("rel/f", "1"),
        Entry::symlink("abs", "/elsewhere/deep"),
        Entry::file("abs/g", "2"),
        Entry::dir("x"),
        Entry::symlink("x/up", "../rel/sub"),
        Entry::file("x/up/h", "3"),
    ]);
    push_and_compare("symlinkdirs", &Image::new("amd64", vec![Layer::new(layer, Compression::Gzip)]));
}
