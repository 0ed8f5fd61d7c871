//! Well-formed test images. Each function builds its image from scratch
//! (deterministically, so digests are stable) and returns it unpushed.

use std::fs;
use std::process::Command;

use super::oci::{Compression, Image, Index, Layer};
use super::tarball::{random_bytes, tar, Entry};

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                      daemon:x:1:1:daemon:/usr/sbin:/bin/false\n\
                      nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\ndaemon:x:1:\nnogroup:x:65534:\n";

/// `security.capability` v2 blob: cap_net_raw (bit 13) permitted + effective.
pub const CAP_NET_RAW_V2: [u8; 20] = [
    0x01, 0x00, 0x00, 0x02, // magic_etc = VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE
    0x00, 0x20, 0x00, 0x00, // data[0].permitted: 1 << 13
    0x00, 0x00, 0x00, 0x00, // data[0].inheritable
    0x00, 0x00, 0x00, 0x00, // data[1].permitted
    0x00, 0x00, 0x00, 0x00, // data[1].inheritable
];

/// A busybox-static rootfs in one gzip layer: `/bin/busybox`, one symlink
/// per applet, passwd/group, and the usual top-level dirs.
/// The entries of a busybox-static root: applet symlinks, passwd, group.
pub fn busybox_entries() -> Vec<Entry> {
    let bin = fs::read("/bin/busybox").expect("read /bin/busybox (apt-get install busybox-static)");
    let out = Command::new("/bin/busybox").arg("--list").output().expect("busybox --list");
    assert!(out.status.success(), "busybox --list failed");
    let mut e = vec![
        Entry::dir("bin"),
        Entry::dir("dev"),
        Entry::dir("etc"),
        Entry::dir("proc").mode(0o555),
        Entry::dir("root").mode(0o700),
        Entry::dir("sys").mode(0o555),
        Entry::dir("tmp").mode(0o1777),
        Entry::dir("usr"),
        Entry::dir("var"),
        Entry::file("bin/busybox", &bin).mode(0o755),
    ];
    for applet in String::from_utf8_lossy(&out.stdout).lines() {
        let applet = applet.trim();
        if !applet.is_empty() && applet != "busybox" {
            e.push(Entry::symlink(format!("bin/{applet}"), "busybox"));
        }
    }
    e.push(Entry::file("etc/passwd", PASSWD));
    e.push(Entry::file("etc/group", GROUP));
    e
}

pub fn busybox() -> Image {
    let e = busybox_entries();
    Image::new("amd64", vec![Layer::new(tar(&e), Compression::Gzip)])
}

/// A one-layer image with a few files; `marker` makes images distinct.
pub fn tiny(marker: &str) -> Image {
    let e = [Entry::dir("etc"), Entry::file("etc/marker", marker), Entry::dir("tmp").mode(0o1777)];
    Image::new("amd64", vec![Layer::new(tar(&e), Compression::Gzip)])
}

/// Three gzip layers exercising whiteouts: deleted files and dirs, opaque
/// dirs with same-layer additions (marker before and after them), type
/// changes (file → dir, dir → symlink), content and mode changes, a dir
/// deleted and re-created, and a whiteout of something that never existed.
pub fn multilayer() -> Image {
    let base = [
        Entry::dir("etc"),
        Entry::file("etc/hostname", "base\n"),
        Entry::file("etc/keep", "kept from layer 1\n"),
        Entry::file("del-file", "deleted in layer 2\n"),
        Entry::dir("del-dir"),
        Entry::file("del-dir/a", "a\n"),
        Entry::dir("del-dir/sub"),
        Entry::file("del-dir/sub/b", "b\n"),
        Entry::dir("opq1"),
        Entry::file("opq1/old1", "hidden by opaque\n"),
        Entry::dir("opq1/oldsub"),
        Entry::file("opq1/oldsub/f", "hidden too\n"),
        Entry::dir("opq2"),
        Entry::file("opq2/old2", "hidden by opaque\n"),
        Entry::file("file-to-dir", "becomes a dir\n"),
        Entry::dir("dir-to-link"),
        Entry::file("dir-to-link/inner", "gone when the dir becomes a link\n"),
        Entry::dir("keepdir"),
        Entry::file("keepdir/a", "deleted in layer 3\n"),
        Entry::file("keepdir/c", "stays\n"),
        Entry::file("modify", "v1\n"),
        Entry::file("chmod-me", "same content\n"),
    ];
    let middle = [
        Entry::whiteout("del-file"),
        Entry::whiteout("del-dir"),
        // Opaque marker first, then the new content of the same layer.
        Entry::dir("opq1"),
        Entry::opaque("opq1"),
        Entry::file("opq1/new1", "added with the opaque marker\n"),
        // New content first, then the opaque marker: it must survive too.
        Entry::dir("opq2"),
        Entry::file("opq2/new2", "added before the opaque marker\n"),
        Entry::dir("opq2/newsub"),
        Entry::file("opq2/newsub/f", "nested, before the marker\n"),
        Entry::opaque("opq2"),
        Entry::dir("file-to-dir"),
        Entry::file("file-to-dir/child", "inside the new dir\n"),
        Entry::symlink("dir-to-link", "keepdir"),
        Entry::file("modify", "v2, longer than v1\n"),
        Entry::dir("keepdir"),
        Entry::file("keepdir/b", "added in layer 2\n"),
    ];
    let top = [
        Entry::dir("del-dir"),
        Entry::file("del-dir/fresh", "re-created dir, old content must stay gone\n"),
        Entry::whiteout("keepdir/a"),
        Entry::file("chmod-me", "same content\n").mode(0o600),
        Entry::whiteout("etc/hostname"),
        Entry::whiteout("never-existed"),
        Entry::file("top", "layer 3\n"),
    ];
    let layers =
        [&base[..], &middle[..], &top[..]].iter().map(|e| Layer::new(tar(e.iter()), Compression::Gzip)).collect();
    Image::new("amd64", layers)
}

/// One layer full of unusual metadata: hardlinks across dirs, all kinds of
/// symlinks, device nodes, a fifo, setuid/setgid/sticky, odd owners and
/// mtimes, xattrs (user, trusted, security.capability), an empty file, a
/// 3 MB random file, long (PAX) names and a UTF-8 name with spaces.
pub fn special() -> Image {
    let long_dir = format!("long/{}", "d".repeat(90));
    let e = vec![
        Entry::dir("data"),
        Entry::dir("other"),
        Entry::file("data/orig", "hardlinked content\n").mode(0o640).owner(1234, 5678).mtime(1_600_000_000),
        Entry::hardlink("data/link1", "data/orig"),
        Entry::hardlink("other/link2", "data/orig"),
        Entry::symlink("rel-link", "data/orig").mtime(1_500_000_000),
        Entry::symlink("abs-link", "/etc/passwd"),
        Entry::symlink("dangling", "does/not/exist"),
        Entry::symlink("dir-link", "data"),
        Entry::symlink("dotdot-link", "../../../etc/shadow"),
        Entry::dir("dev"),
        Entry::char_dev("dev/null", 1, 3).mode(0o666),
        Entry::char_dev("dev/tty5", 4, 5).mode(0o620).owner(0, 5),
        Entry::block_dev("dev/loop7", 7, 7).mode(0o660).owner(0, 6),
        Entry::dir("run"),
        Entry::fifo("run/fifo").mode(0o600).mtime(1_400_000_000),
        Entry::dir("bin"),
        Entry::file("bin/suid", "#!/bin/sh\n").mode(0o4755),
        Entry::file("bin/sgid", "#!/bin/sh\n").mode(0o2755).owner(0, 50),
        Entry::file("bin/both", "#!/bin/sh\n").mode(0o6711),
        Entry::file("bin/ping-like", "not really ping\n").mode(0o755).xattr("security.capability", CAP_NET_RAW_V2),
        Entry::dir("tmp").mode(0o1777),
        Entry::dir("shared").mode(0o2775).owner(0, 5678),
        Entry::dir("sticky-private").mode(0o1700).owner(1234, 5678),
        Entry::file("odd-owner", "owned by 1234:5678\n").mode(0o604).owner(1234, 5678).mtime(1_234_567_890),
        Entry::dir("xattrs").xattr("user.dirattr", "on a dir"),
        Entry::file("xattrs/file", "has xattrs\n")
            .xattr("user.foo", "bar")
            .xattr("trusted.x", "trusted value")
            .xattr("user.binary", [0u8, 1, 2, 255]),
        Entry::file("empty", b"").mtime(1),
        Entry::file("big.bin", random_bytes(3 * 1024 * 1024, 42)),
        Entry::dir("dir with spaces"),
        Entry::file("dir with spaces/héllo wörld ☃.txt", "unicode name\n"),
        Entry::dir("long"),
        Entry::dir(&long_dir),
        Entry::file(format!("{long_dir}/a-file-name-that-pushes-the-path-past-100-bytes"), "pax path\n"),
        Entry::symlink("long-target", format!("{long_dir}/a-file-name-that-pushes-the-path-past-100-bytes")),
    ];
    Image::new("amd64", vec![Layer::new(tar(&e), Compression::Gzip)])
}

fn compression_layers() -> [Vec<Entry>; 3] {
    [
        vec![
            Entry::dir("usr"),
            Entry::dir("usr/share"),
            Entry::file("usr/share/words", "lorem ipsum dolor sit amet\n".repeat(4000)),
            Entry::file("usr/share/noise", random_bytes(200 * 1024, 7)),
        ],
        vec![Entry::dir("etc"), Entry::file("etc/os-release", "ID=berth-test\n"), Entry::whiteout("usr/share/noise")],
        vec![
            Entry::dir("usr"),
            Entry::dir("usr/share"),
            Entry::file("usr/share/words", "replaced\n"),
            Entry::symlink("words", "usr/share/words"),
        ],
    ]
}

/// Three layers, all with the given compression.
pub fn compressed(c: Compression) -> Image {
    let layers = compression_layers().iter().map(|e| Layer::new(tar(e), c)).collect();
    Image::new("amd64", layers)
}

/// The same three layers as gzip, zstd and uncompressed.
pub fn mixed_compression() -> Image {
    let cs = [Compression::Gzip, Compression::Zstd, Compression::None];
    let layers = compression_layers().iter().zip(cs).map(|(e, c)| Layer::new(tar(e), c)).collect();
    Image::new("amd64", layers)
}

/// An index of linux/amd64 and linux/arm64 images; `/arch` holds the arch.
pub fn multiarch() -> Index {
    let image = |arch: &str| {
        let e = [
            Entry::file("arch", format!("{arch}\n")),
            Entry::dir("etc"),
            Entry::file("etc/common", "same on every arch\n"),
            Entry::dir(format!("only-{arch}")),
        ];
        Image::new(arch, vec![Layer::new(tar(&e), Compression::Gzip)])
    };
    Index::new(vec![image("amd64"), image("arm64")])
}

/// One uncompressed layer holding `size` random bytes in `big.bin`, slow
/// enough to pull that a test can interrupt it.
pub fn big(size: usize) -> Image {
    let e = [Entry::file("big.bin", random_bytes(size, 99))];
    Image::new("amd64", vec![Layer::new(tar(&e), Compression::None)])
}

/// A root-dir entry (`./`, as `tar -C dir -c .` writes) and parents that
/// later layers create only implicitly: `a/` and `a/b/` keep the mode and
/// owner layer 1 gave them, `new/dir/` appear from nothing.
pub fn implicit_dirs() -> Image {
    let lower = [
        Entry::dir("./").mode(0o750),
        Entry::dir("./a").mode(0o700).owner(1234, 5678),
        Entry::dir("./a/b").mode(0o711),
        Entry::file("./a/b/f", "lower\n"),
    ];
    let upper = [Entry::file("a/b/g", "upper, no dir entries\n"), Entry::file("new/dir/file", "implicit parents\n")];
    let layers = [&lower[..], &upper[..]].iter().map(|e| Layer::new(tar(e.iter()), Compression::Gzip)).collect();
    Image::new("amd64", layers)
}

/// Whiteouts and files of the same name in one layer: the whiteout only
/// hides what lies below, so the layer's own file stays whichever comes
/// first in the tar (OCI image spec, "Whiteouts").
pub fn same_layer_whiteouts() -> Image {
    let lower = [Entry::file("wh-after", "lower\n"), Entry::file("wh-before", "lower\n")];
    let upper = [
        Entry::file("wh-after", "upper, whiteout follows\n"),
        Entry::whiteout("wh-after"),
        Entry::whiteout("wh-before"),
        Entry::file("wh-before", "upper, whiteout precedes\n"),
    ];
    let layers = [&lower[..], &upper[..]].iter().map(|e| Layer::new(tar(e.iter()), Compression::Gzip)).collect();
    Image::new("amd64", layers)
}
