//! Layers that try to write outside the image root, and a decompression
//! bomb. Each case says what a safe berth may do with it.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::oci::{sha256_digest, Compression, Image, Layer, MT_GZIP};
use super::tarball::{tar, Entry, TarWriter};

/// A hostile image and how to judge berth's handling of it.
pub struct Hostile {
    pub image: Image,
    /// Strings of which the error must mention at least one (the entry).
    pub names: Vec<String>,
    /// Whether berth must refuse the image (no safe way to accept it).
    pub must_fail: bool,
    /// Host paths that must not exist afterwards.
    pub host_paths: Vec<PathBuf>,
    /// If berth accepts the image, this path (relative to the image root)
    /// is where the entry must have landed.
    pub inside: Option<String>,
}

fn one_layer(entries: &[Entry]) -> Image {
    Image::new("amd64", vec![Layer::new(tar(entries), Compression::Gzip)])
}

/// Entry `../escape-TOKEN`.
pub fn dotdot(token: &str) -> Hostile {
    let name = format!("../escape-{token}");
    Hostile {
        image: one_layer(&[Entry::file("ok", "fine\n"), Entry::file(&name, "escaped\n")]),
        names: vec![name, format!("escape-{token}")],
        must_fail: true,
        host_paths: vec![],
        inside: None,
    }
}

/// Entry `./a/../../escape-TOKEN` (a `..` that only escapes after `a/..`).
pub fn dotdot_inner(token: &str) -> Hostile {
    let name = format!("./a/../../escape-{token}");
    Hostile {
        image: one_layer(&[Entry::dir("a"), Entry::file(&name, "escaped\n")]),
        names: vec![name, format!("escape-{token}")],
        must_fail: true,
        host_paths: vec![],
        inside: None,
    }
}

/// Absolute entry `/escape-abs-TOKEN`: refused, or put inside the root.
pub fn absolute(token: &str) -> Hostile {
    let name = format!("/escape-abs-{token}");
    Hostile {
        image: one_layer(&[Entry::file(&name, "absolute\n")]),
        names: vec![name.clone(), format!("escape-abs-{token}")],
        must_fail: false,
        host_paths: vec![PathBuf::from(&name)],
        inside: Some(name.trim_start_matches('/').to_string()),
    }
}

/// `s -> /`, then `s/tmp/pwned-TOKEN`.
pub fn symlink_root(token: &str) -> Hostile {
    let file = format!("s/tmp/pwned-{token}");
    Hostile {
        image: one_layer(&[
            Entry::dir("tmp").mode(0o1777),
            Entry::symlink("s", "/"),
            Entry::file(&file, "through a symlink to /\n"),
        ]),
        names: vec![file, format!("pwned-{token}")],
        must_fail: false,
        host_paths: vec![PathBuf::from(format!("/tmp/pwned-{token}"))],
        inside: Some(format!("tmp/pwned-{token}")),
    }
}

/// `s -> /.`, then `s/pwned-TOKEN`.
pub fn symlink_root_dot(token: &str) -> Hostile {
    let file = format!("s/pwned-{token}");
    Hostile {
        image: one_layer(&[Entry::symlink("s", "/."), Entry::file(&file, "through /.\n")]),
        names: vec![file, format!("pwned-{token}")],
        must_fail: false,
        host_paths: vec![PathBuf::from(format!("/pwned-{token}"))],
        inside: Some(format!("pwned-{token}")),
    }
}

/// `s -> ../../../..`, then `s/pwned-TOKEN`.
pub fn symlink_dotdot(token: &str) -> Hostile {
    let file = format!("s/pwned-{token}");
    Hostile {
        image: one_layer(&[Entry::symlink("s", "../../../.."), Entry::file(&file, "through ..\n")]),
        names: vec![file, format!("pwned-{token}")],
        must_fail: false,
        host_paths: vec![PathBuf::from(format!("/pwned-{token}")), PathBuf::from(format!("/tmp/pwned-{token}"))],
        inside: Some(format!("pwned-{token}")),
    }
}

/// `s -> HOST_DIR` (an absolute dir that exists on the host), then
/// `s/pwned-TOKEN`.
pub fn symlink_host_dir(host_dir: &Path, token: &str) -> Hostile {
    let file = format!("s/pwned-{token}");
    let host = host_dir.to_str().expect("utf-8 temp path");
    Hostile {
        image: one_layer(&[Entry::symlink("s", host), Entry::file(&file, "through a host dir\n")]),
        names: vec![file, format!("pwned-{token}")],
        must_fail: false,
        host_paths: vec![host_dir.join(format!("pwned-{token}"))],
        inside: Some(format!("{}/pwned-{token}", host.trim_start_matches('/'))),
    }
}

/// Hardlink `hl-TOKEN` to `../../etc/passwd`.
pub fn hardlink_dotdot(token: &str) -> Hostile {
    let name = format!("hl-{token}");
    Hostile {
        image: one_layer(&[Entry::hardlink(&name, "../../etc/passwd")]),
        names: vec![name, "../../etc/passwd".into()],
        must_fail: true,
        host_paths: vec![],
        inside: None,
    }
}

/// Hardlink `hl-TOKEN` to an absolute host file.
pub fn hardlink_absolute(host_file: &Path, token: &str) -> Hostile {
    let name = format!("hl-{token}");
    let target = host_file.to_str().expect("utf-8 temp path").to_string();
    Hostile {
        image: one_layer(&[Entry::hardlink(&name, &target)]),
        names: vec![name, target],
        must_fail: true,
        host_paths: vec![],
        inside: None,
    }
}

/// A gzip layer whose tar holds one file of `size` zero bytes (200 MB
/// compresses to about 200 KB). The tar is streamed through the system's
/// `gzip -9` and `sha256sum`, which take about a second where unoptimised
/// Rust crates would take a minute.
pub fn bomb(size: u64) -> Image {
    let spawn = |prog: &str, args: &[&str]| {
        Command::new(prog)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {prog}: {e}"))
    };
    let mut gzip = spawn("gzip", &["-9", "-n", "-c"]);
    let mut sha = spawn("sha256sum", &[]);
    let drain = |child: &mut Child| {
        let mut out = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            let mut v = Vec::new();
            out.read_to_end(&mut v).expect("read child output");
            v
        })
    };
    let (gz_out, sha_out) = (drain(&mut gzip), drain(&mut sha));
    let fan = Fanout(gzip.stdin.take().expect("gzip stdin"), sha.stdin.take().expect("sha256sum stdin"));
    let mut w = TarWriter::new(fan);
    w.add_stream(&Entry::file("zeros", b""), size, std::io::repeat(0).take(size)).expect("stream the bomb");
    drop(w.finish().expect("finish the bomb tar"));
    for (name, child) in [("gzip", &mut gzip), ("sha256sum", &mut sha)] {
        let st = child.wait().expect("wait for child");
        assert!(st.success(), "{name} failed: {st}");
    }
    let data = gz_out.join().expect("gzip reader");
    let sum = String::from_utf8(sha_out.join().expect("sha256sum reader")).expect("utf-8");
    let hex = sum.split_whitespace().next().expect("sha256sum output").to_string();
    assert_eq!(hex.len(), 64, "sha256sum printed {sum:?}");
    Image::new("amd64", vec![Layer::raw(MT_GZIP, data, format!("sha256:{hex}"))])
}

/// Writes everything to two sinks.
struct Fanout<A: Write, B: Write>(A, B);

impl<A: Write, B: Write> Write for Fanout<A, B> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write_all(buf)?;
        self.1.write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()?;
        self.1.flush()
    }
}

/// An image whose only layer has a media type no runtime knows.
pub fn unknown_media_type() -> (Image, &'static str) {
    const MT: &str = "application/vnd.example.berth-test.layer.v1+weird";
    let t = tar(&[Entry::file("x", "x\n")]);
    let layer = Layer::raw(MT, t.clone(), sha256_digest(&t));
    (Image::new("amd64", vec![layer]), MT)
}
