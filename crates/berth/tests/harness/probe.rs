//! The attacker's probe: `probe.c` built once per test process with
//! `gcc -static`, and an image that ships it as `/probe` next to a device
//! node (`/srv/loopctl`, c 10 237, mode 0666: the host's loop-control) an
//! attacker put in a layer. `Ctx::probe()` gives a store holding it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::container::{run_image, Ctx};
use super::oci::{Compression, Image, Layer};
use super::tarball::{tar, Entry};

const SOURCE: &str = include_str!("probe.c");

/// The static probe binary (built on first use).
pub fn binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("berth-probe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("probe dir");
        let src = dir.join("probe.c");
        std::fs::write(&src, SOURCE).expect("write probe.c");
        let bin = dir.join("probe");
        let out = Command::new("gcc")
            .args(["-static", "-O1", "-Wall", "-o"])
            .arg(&bin)
            .arg(&src)
            .output()
            .expect("run gcc (install gcc and libc6-dev)");
        assert!(out.status.success(), "building the probe failed:\n{}", String::from_utf8_lossy(&out.stderr));
        bin
    })
}

/// `run_image()` plus a layer with `/probe` and an image-shipped device node.
pub fn image() -> Image {
    let base = run_image();
    let probe = std::fs::read(binary()).expect("read probe");
    let extra = [Entry::file("probe", probe).mode(0o755), Entry::char_dev("srv/loopctl", 10, 237).mode(0o666)];
    let mut layers = base.layers.clone();
    layers.push(Layer::new(tar(&extra), Compression::Gzip));
    Image::with_config(
        "amd64",
        layers,
        serde_json::json!({
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/probe", "fds"],
        }),
    )
}

/// `NAME=…` lines of a probe's output, for one check.
pub fn verdict(out: &str, check: &str) -> String {
    // A terminal may echo control characters ahead of a line: look for the
    // check at a word start anywhere in it.
    let key = format!("{check}=");
    out.lines()
        .find_map(|l| {
            let at = l.find(&key)?;
            let before = l[..at].chars().last();
            before.is_none_or(|c| !c.is_ascii_alphanumeric()).then(|| &l[at + key.len()..])
        })
        .unwrap_or_else(|| panic!("the probe printed nothing for {check}:\n{out}"))
        .to_string()
}

/// Asserts the probe's attempt `check` was refused by the kernel.
pub fn assert_blocked(out: &str, check: &str, what: &str) {
    let v = verdict(out, check);
    assert!(v.starts_with("blocked:"), "{what}: the container's attempt {check} must fail, it said {v:?}\n{out}");
}

impl Ctx {
    /// A store holding the probe image.
    pub fn probe() -> Ctx {
        Ctx::with_image(&image())
    }
}
