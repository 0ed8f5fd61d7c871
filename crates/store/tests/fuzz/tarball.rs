//! Tar archives built block by block, so that any header field can hold
//! what a hostile layer puts there (the tar crate's builder refuses much
//! of it).

use proptest::prelude::*;

/// One archive member, as raw as a header allows.
#[derive(Debug, Clone)]
pub struct Member {
    pub kind: u8,
    pub name: Vec<u8>,
    pub link: Vec<u8>,
    /// The size field; `None`: the length of `data`.
    pub size: Option<u64>,
    pub data: Vec<u8>,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub dev: (u32, u32),
    /// PAX records sent in an `x` header before the member.
    pub pax: Vec<(String, Vec<u8>)>,
    /// For a GNU sparse member (`S`): where in the file its data lies.
    /// The file's size is that offset plus the data's length.
    pub sparse_at: u64,
}

/// A 12-byte numeric field: octal when it fits, else GNU base-256.
fn num12(v: u64) -> [u8; 12] {
    let mut f = [0u8; 12];
    if v < 8u64.pow(11) {
        f[..11].copy_from_slice(format!("{v:011o}").as_bytes());
    } else {
        f[0] = 0x80;
        f[4..].copy_from_slice(&v.to_be_bytes());
    }
    f
}

fn block(data: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

fn raw_header(name: &[u8], kind: u8, size: u64, link: &[u8], m: Option<&Member>) -> [u8; 512] {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_entry_type(tar::EntryType::new(kind));
    if let Some(m) = m {
        h.set_mode(m.mode);
        h.set_uid(m.uid);
        h.set_gid(m.gid);
        h.set_mtime(m.mtime);
        let _ = h.set_device_major(m.dev.0);
        let _ = h.set_device_minor(m.dev.1);
    }
    let b = h.as_mut_bytes();
    if let Some(m) = m.filter(|m| m.kind == b'S') {
        // One chunk of the sparse map, then the real size.
        b[386..398].copy_from_slice(&num12(m.sparse_at));
        b[398..410].copy_from_slice(&num12(m.data.len() as u64));
        b[483..495].copy_from_slice(&num12(m.sparse_at.saturating_add(m.data.len() as u64)));
    }
    let n = name.len().min(100);
    b[..n].copy_from_slice(&name[..n]);
    let l = link.len().min(100);
    b[157..157 + l].copy_from_slice(&link[..l]);
    h.set_cksum();
    *h.as_bytes()
}

/// An extension member (`L`, `K`, `x`) carrying `data`.
fn extension(kind: u8, data: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&raw_header(b"././@LongLink", kind, data.len() as u64, b"", None));
    block(data, out);
}

/// PAX records, each `LEN key=value\n` with LEN counting itself.
pub fn pax_records(recs: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in recs {
        let body = k.len() + v.len() + 3; // ' ', '=', '\n'
        let mut len = body + 1;
        while len != body + len.to_string().len() {
            len = body + len.to_string().len();
        }
        out.extend_from_slice(format!("{len} {k}=").as_bytes());
        out.extend_from_slice(v);
        out.push(b'\n');
    }
    out
}

/// The archive of `members`, with a GNU long name or link member before
/// each name or target longer than a header holds, then the end blocks.
pub fn build(members: &[Member]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in members {
        if !m.pax.is_empty() {
            extension(b'x', &pax_records(&m.pax), &mut out);
        }
        if m.name.len() > 100 {
            extension(b'L', &[&m.name[..], b"\0"].concat(), &mut out);
        }
        if m.link.len() > 100 {
            extension(b'K', &[&m.link[..], b"\0"].concat(), &mut out);
        }
        let size = m.size.unwrap_or(m.data.len() as u64);
        out.extend_from_slice(&raw_header(&m.name, m.kind, size, &m.link, Some(m)));
        block(&m.data, &mut out);
    }
    out.extend_from_slice(&[0; 1024]);
    out
}

/// Offsets of the header blocks of a well-formed archive.
pub fn header_offsets(tar: &[u8]) -> Vec<usize> {
    let mut v = Vec::new();
    let mut at = 0;
    while at + 512 <= tar.len() {
        let h = &tar[at..at + 512];
        if h.iter().all(|&b| b == 0) {
            break;
        }
        v.push(at);
        let size =
            std::str::from_utf8(&h[124..135]).ok().and_then(|s| u64::from_str_radix(s.trim_matches('\0'), 8).ok());
        at += 512 + size.unwrap_or(0).div_ceil(512) as usize * 512;
    }
    v
}

/// Recomputes the checksum of the header block at `at`.
pub fn fix_checksum(tar: &mut [u8], at: usize) {
    if at + 512 > tar.len() {
        return;
    }
    let h = &mut tar[at..at + 512];
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}

/// Names that reach the unpacker's corners: nesting, `.` and `..`,
/// absolute paths, whiteouts, the opaque marker, a long name, and names
/// that go through the symlinks `links()` makes.
pub fn names(outside: &str) -> impl Strategy<Value = Vec<u8>> {
    let bytes = |v: &[&str]| v.iter().map(|s| s.as_bytes().to_vec()).collect::<Vec<_>>();
    let mut fine = bytes(&[
        "a",
        "a/",
        "a/b",
        "./a/b/c",
        "/a",
        "b",
        "l",
        "l/x",
        "l/canary",
        "l/sub/y",
        "d",
        "d/e",
        "dl/x",
        ".wh.a",
        "a/.wh.b",
        ".wh..wh..opq",
        "a/.wh..wh..opq",
        ".wh..wh.plnk",
    ]);
    fine.extend([format!("{outside}/x").into_bytes(), "x/".repeat(70).into_bytes()]);
    // Each of these ends the unpack with an error, so they come rarely.
    let refused =
        bytes(&[".", "./", "/", "", "..", "../a", "a/../b", "a/..", "./../outside/x", ".wh.", ".wh..", "a\0b"]);
    prop_oneof![
        12 => prop::sample::select(fine),
        1 => prop::sample::select(refused),
        1 => prop::collection::vec(any::<u8>(), 0..12),
        1 => "[a-z./]{0,12}".prop_map(String::into_bytes),
    ]
}

/// Link targets: inside, outside (relative and absolute), the root, a
/// directory, nothing, and one longer than a header holds.
pub fn links(outside: &str) -> impl Strategy<Value = Vec<u8>> {
    let fixed: Vec<Vec<u8>> = ["a", "a/b", "b", "..", "../outside", "../outside/canary", "/", ".", "", "l/canary", "d"]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .chain([outside.as_bytes().to_vec(), format!("{outside}/canary").into_bytes(), "y/".repeat(70).into_bytes()])
        .collect();
    prop_oneof![6 => prop::sample::select(fixed), 1 => prop::collection::vec(any::<u8>(), 0..12)]
}

fn pax() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    let key = prop::sample::select(vec![
        "SCHILY.xattr.user.note",
        "SCHILY.xattr.user.overlay.opaque",
        "SCHILY.xattr.trusted.overlay.opaque",
        "SCHILY.xattr.security.capability",
        "SCHILY.xattr.",
        "uid",
        "gid",
        "mtime",
        "size",
        "path",
        "linkpath",
        "GNU.sparse.size",
    ])
    .prop_map(String::from);
    let value = prop_oneof![
        prop::sample::select(vec!["0", "1", "-1", "1.5", "-3.000000001", "18446744073709551616", "", "y", "../x"])
            .prop_map(|s| s.as_bytes().to_vec()),
        any::<u64>().prop_map(|n| n.to_string().into_bytes()),
        prop::collection::vec(any::<u8>(), 0..16),
    ];
    prop::collection::vec((key, value), 0..3)
}

/// A member of any kind, with fields mostly sensible and now and then
/// not.
pub fn member(outside: &str) -> impl Strategy<Value = Member> {
    let kind = prop_oneof![
        8 => prop::sample::select(b"0512346".to_vec()),
        1 => Just(b'S'),
        1 => prop::sample::select(vec![0, b'7', b'g', b'x', b'L', b'K', b'V', b'M', b'N', b'Z']),
        1 => any::<u8>(),
    ];
    let sparse_at = prop_oneof![6 => 0u64..8192, 1 => Just(1 << 40), 1 => Just(u64::MAX - 1024)];
    let size = prop_oneof![
        18 => Just(None),
        1 => prop::sample::select(vec![0, 1, 511, 513, 1 << 33, u64::MAX / 2, u64::MAX]).prop_map(Some),
        1 => any::<u64>().prop_map(Some),
    ];
    let id = prop_oneof![Just(0u64), Just(1000), any::<u32>().prop_map(u64::from), any::<u64>()];
    (
        (kind, names(outside), links(outside), size, prop::collection::vec(any::<u8>(), 0..600)),
        (prop_oneof![Just(0o755u32), Just(0o644), Just(0o4755), any::<u32>()], id.clone(), id, any::<u64>()),
        (prop::sample::select(vec![(0u32, 0u32), (0, 1), (0, 7)]), pax(), sparse_at),
    )
        .prop_map(|((kind, name, link, size, data), (mode, uid, gid, mtime), (dev, pax, sparse_at))| Member {
            kind,
            name,
            link,
            size,
            data,
            mode,
            uid,
            gid,
            mtime,
            dev,
            pax,
            sparse_at,
        })
}
