//! The reference unpacker: `umoci unpack` of an image into a runc bundle.

use std::path::PathBuf;
use std::process::Command;

use super::oci::Image;

/// A bundle unpacked by umoci; `rootfs` is the tree berth must reproduce.
pub struct Unpacked {
    _dir: tempfile::TempDir,
    pub layout: PathBuf,
    pub rootfs: PathBuf,
}

/// Writes `image` (zstd layers re-encoded as gzip, which umoci 0.4.7 needs)
/// to a layout and unpacks it with `umoci unpack` as root.
pub fn unpack(image: &Image) -> Unpacked {
    let (dir, layout, bundle, out) = run(image);
    assert!(
        out.status.success(),
        "umoci unpack failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Unpacked { rootfs: bundle.join("rootfs"), layout, _dir: dir }
}

/// What `umoci unpack` says when it refuses `image`; None when it unpacks it.
pub fn refusal(image: &Image) -> Option<String> {
    let (_dir, _, _, out) = run(image);
    (!out.status.success()).then(|| String::from_utf8_lossy(&out.stderr).into_owned())
}

fn run(image: &Image) -> (tempfile::TempDir, PathBuf, PathBuf, std::process::Output) {
    let dir = tempfile::Builder::new().prefix("berth-umoci-").tempdir().expect("umoci temp dir");
    let layout = dir.path().join("layout");
    image.for_umoci().write_layout(&layout, "oracle");
    let bundle = dir.path().join("bundle");
    let out = Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:oracle", layout.display()))
        .arg(&bundle)
        .output()
        .expect("run umoci (apt-get install umoci)");
    (dir, layout, bundle, out)
}
