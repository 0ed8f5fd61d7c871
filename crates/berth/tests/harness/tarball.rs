//! Layer tarballs built entry by entry.
//!
//! Headers are filled in by hand (through `tar::Header`, never `set_path`),
//! so hostile names such as `../x` or `/abs` reach the archive byte for byte.
//! Long names, long link targets and xattrs go into PAX `x` records
//! (`path`, `linkpath`, `SCHILY.xattr.NAME`), the way Docker and Go write them.

use std::io::{self, Read, Write};

/// Fixed mtime for entries that do not choose one, so digests are stable.
pub const MTIME: u64 = 1_700_000_000;

/// What an entry is.
#[derive(Clone, Debug)]
pub enum Kind {
    File(Vec<u8>),
    Dir,
    Symlink(Vec<u8>),
    Hardlink(Vec<u8>),
    Char(u32, u32),
    Block(u32, u32),
    Fifo,
}

/// One tar entry with its metadata.
#[derive(Clone, Debug)]
pub struct Entry {
    pub path: Vec<u8>,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub xattrs: Vec<(String, Vec<u8>)>,
}

impl Entry {
    fn new(path: impl AsRef<[u8]>, kind: Kind, mode: u32) -> Entry {
        Entry { path: path.as_ref().to_vec(), kind, mode, uid: 0, gid: 0, mtime: MTIME, xattrs: Vec::new() }
    }

    /// Regular file, mode 0644.
    pub fn file(path: impl AsRef<[u8]>, data: impl AsRef<[u8]>) -> Entry {
        Entry::new(path, Kind::File(data.as_ref().to_vec()), 0o644)
    }

    /// Directory, mode 0755; a trailing `/` is added when missing.
    pub fn dir(path: impl AsRef<[u8]>) -> Entry {
        let mut p = path.as_ref().to_vec();
        if !p.ends_with(b"/") {
            p.push(b'/');
        }
        Entry::new(p, Kind::Dir, 0o755)
    }

    /// Symbolic link `path -> target`.
    pub fn symlink(path: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> Entry {
        Entry::new(path, Kind::Symlink(target.as_ref().to_vec()), 0o777)
    }

    /// Hard link `path` to the earlier entry `target`.
    pub fn hardlink(path: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> Entry {
        Entry::new(path, Kind::Hardlink(target.as_ref().to_vec()), 0o644)
    }

    /// Character device node.
    pub fn char_dev(path: impl AsRef<[u8]>, major: u32, minor: u32) -> Entry {
        Entry::new(path, Kind::Char(major, minor), 0o666)
    }

    /// Block device node.
    pub fn block_dev(path: impl AsRef<[u8]>, major: u32, minor: u32) -> Entry {
        Entry::new(path, Kind::Block(major, minor), 0o660)
    }

    /// Named pipe.
    pub fn fifo(path: impl AsRef<[u8]>) -> Entry {
        Entry::new(path, Kind::Fifo, 0o644)
    }

    /// OCI whiteout deleting `path` (`dir/name` becomes `dir/.wh.name`).
    pub fn whiteout(path: &str) -> Entry {
        let name = match path.rsplit_once('/') {
            Some((dir, base)) => format!("{dir}/.wh.{base}"),
            None => format!(".wh.{path}"),
        };
        Entry::file(name, b"")
    }

    /// OCI opaque-directory marker `dir/.wh..wh..opq`.
    pub fn opaque(dir: &str) -> Entry {
        Entry::file(format!("{}/.wh..wh..opq", dir.trim_end_matches('/')), b"")
    }

    pub fn mode(mut self, mode: u32) -> Entry {
        self.mode = mode;
        self
    }

    pub fn owner(mut self, uid: u64, gid: u64) -> Entry {
        self.uid = uid;
        self.gid = gid;
        self
    }

    pub fn mtime(mut self, mtime: u64) -> Entry {
        self.mtime = mtime;
        self
    }

    pub fn xattr(mut self, name: &str, value: impl AsRef<[u8]>) -> Entry {
        self.xattrs.push((name.to_string(), value.as_ref().to_vec()));
        self
    }
}

/// Writes entries to any sink; `finish` adds the two zero end blocks.
pub struct TarWriter<W: Write> {
    out: tar::Builder<W>,
    pax_count: u32,
}

impl<W: Write> TarWriter<W> {
    pub fn new(out: W) -> Self {
        TarWriter { out: tar::Builder::new(out), pax_count: 0 }
    }

    /// Appends one entry (with a PAX record first when it needs one).
    pub fn add(&mut self, e: &Entry) -> io::Result<()> {
        let data: &[u8] = match &e.kind {
            Kind::File(d) => d,
            _ => &[],
        };
        let header = self.header_for(e, data.len() as u64)?;
        self.out.append(&header, data)
    }

    /// Appends an entry whose content is streamed (`size` bytes from `data`),
    /// for huge files that should not sit in memory.
    pub fn add_stream(&mut self, e: &Entry, size: u64, data: impl Read) -> io::Result<()> {
        let header = self.header_for(e, size)?;
        self.out.append(&header, data)
    }

    pub fn finish(self) -> io::Result<W> {
        self.out.into_inner()
    }

    fn header_for(&mut self, e: &Entry, size: u64) -> io::Result<tar::Header> {
        let link: &[u8] = match &e.kind {
            Kind::Symlink(t) | Kind::Hardlink(t) => t,
            _ => &[],
        };
        let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
        if e.path.len() > 100 {
            pax.push(("path".into(), e.path.clone()));
        }
        if link.len() > 100 {
            pax.push(("linkpath".into(), link.to_vec()));
        }
        for (name, value) in &e.xattrs {
            pax.push((format!("SCHILY.xattr.{name}"), value.clone()));
        }
        if !pax.is_empty() {
            self.write_pax(&pax)?;
        }

        let mut h = tar::Header::new_ustar();
        let (ty, size) = match &e.kind {
            Kind::File(_) => (tar::EntryType::Regular, size),
            Kind::Dir => (tar::EntryType::Directory, 0),
            Kind::Symlink(_) => (tar::EntryType::Symlink, 0),
            Kind::Hardlink(_) => (tar::EntryType::Link, 0),
            Kind::Char(..) => (tar::EntryType::Char, 0),
            Kind::Block(..) => (tar::EntryType::Block, 0),
            Kind::Fifo => (tar::EntryType::Fifo, 0),
        };
        h.set_entry_type(ty);
        h.set_size(size);
        h.set_mode(e.mode);
        h.set_uid(e.uid);
        h.set_gid(e.gid);
        h.set_mtime(e.mtime);
        // Like Go's archive/tar (so Docker and umoci), fill the device
        // fields of every entry, with zeros when it is not a device.
        let (ma, mi) = match e.kind {
            Kind::Char(ma, mi) | Kind::Block(ma, mi) => (ma, mi),
            _ => (0, 0),
        };
        h.set_device_major(ma)?;
        h.set_device_minor(mi)?;
        {
            let old = h.as_old_mut();
            let n = e.path.len().min(100);
            old.name[..n].copy_from_slice(&e.path[..n]);
            let l = link.len().min(100);
            old.linkname[..l].copy_from_slice(&link[..l]);
        }
        h.set_cksum();
        Ok(h)
    }

    fn write_pax(&mut self, records: &[(String, Vec<u8>)]) -> io::Result<()> {
        let mut body = Vec::new();
        for (k, v) in records {
            body.extend_from_slice(&pax_record(k, v));
        }
        self.pax_count += 1;
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::XHeader);
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(MTIME);
        let name = format!("PaxHeaders.0/entry{}", self.pax_count);
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        self.out.append(&h, &body[..])
    }
}

/// One PAX record: `"LEN key=value\n"`, LEN counting itself.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let base = key.len() + value.len() + 3;
    let mut len = base + base.to_string().len();
    if len.to_string().len() != base.to_string().len() {
        len = base + len.to_string().len();
    }
    let mut r = format!("{len} {key}=").into_bytes();
    r.extend_from_slice(value);
    r.push(b'\n');
    assert_eq!(r.len(), len, "PAX record length for {key}");
    r
}

/// Builds an uncompressed tar from entries.
pub fn tar<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> Vec<u8> {
    let mut w = TarWriter::new(Vec::new());
    for e in entries {
        w.add(e).expect("writing a tar entry to memory");
    }
    w.finish().expect("finishing an in-memory tar")
}

/// Deterministic pseudo-random bytes (xorshift64*), incompressible enough
/// to make a layer big on the wire.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}
