//! A bound on tar extension headers, enforced on the stream before the tar
//! crate sees it. tar-rs reads a PAX header (`x`, `g`) or a GNU long name
//! or link name (`L`, `K`) into memory whole, as large as its header says:
//! a few MB of zstd can make that tens of GB. This reader follows the
//! archive's blocks as they pass (each header, then its data rounded up to
//! 512 bytes, old-GNU sparse extension blocks, a PAX `size` for the next
//! entry) and fails with `InvalidData` as soon as an extension header
//! announces more than the limit, before a byte of it is read. Written by
//! hand: no crate frames a tar stream without also parsing it into memory.

use std::io::{self, Read};

/// The largest extension header let through: far above any real long name
/// or set of xattrs, far below what hurts.
pub const EXTENSION_LIMIT: u64 = 8 << 20;

const BLOCK: usize = 512;

/// A `Read` that passes a tar stream through unchanged, checking the size
/// of every extension header.
pub struct Bounded<R> {
    inner: R,
    limit: u64,
    block: [u8; BLOCK],
    /// Bytes of `block` collected so far (a header or a sparse extension).
    got: usize,
    /// Data bytes (padding included) before the next header.
    data_left: u64,
    /// Sparse extension blocks follow; then `after_ext` data bytes.
    sparse_ext: bool,
    after_ext: u64,
    /// A PAX header's data, collected (it is bounded) for its `size`.
    pax: Option<Vec<u8>>,
    /// The size the last PAX header gave the next entry.
    next_size: Option<u64>,
    /// The stream stopped looking like a tar archive here: no more checks
    /// (the tar crate refuses what it cannot read anyway).
    lost: bool,
}

impl<R: Read> Bounded<R> {
    pub fn new(inner: R, limit: u64) -> Self {
        Bounded {
            inner,
            limit,
            block: [0; BLOCK],
            got: 0,
            data_left: 0,
            sparse_ext: false,
            after_ext: 0,
            pax: None,
            next_size: None,
            lost: false,
        }
    }

    fn scan(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() && !self.lost {
            if self.data_left > 0 {
                let n = self.data_left.min(data.len() as u64) as usize;
                if let Some(p) = &mut self.pax {
                    p.extend_from_slice(&data[..n]);
                }
                self.data_left -= n as u64;
                data = &data[n..];
                if self.data_left == 0 {
                    if let Some(p) = self.pax.take() {
                        self.next_size = pax_size(&p);
                    }
                }
                continue;
            }
            let n = (BLOCK - self.got).min(data.len());
            self.block[self.got..self.got + n].copy_from_slice(&data[..n]);
            self.got += n;
            data = &data[n..];
            if self.got < BLOCK {
                continue;
            }
            self.got = 0;
            if self.sparse_ext {
                self.sparse_ext = self.block[504] != 0;
                if !self.sparse_ext {
                    self.data_left = self.after_ext;
                }
            } else {
                self.header()?;
            }
        }
        Ok(())
    }

    /// A whole header block has passed.
    fn header(&mut self) -> io::Result<()> {
        let b = &self.block;
        if b.iter().all(|&x| x == 0) {
            return Ok(()); // end-of-archive padding
        }
        if !checksum_ok(b) {
            self.lost = true;
            return Ok(());
        }
        let kind = b[156];
        let Some(size) = parse_number(&b[124..136]) else {
            self.lost = true;
            return Ok(());
        };
        if matches!(kind, b'x' | b'g' | b'L' | b'K') {
            if size > self.limit {
                let what = match kind {
                    b'x' | b'g' => "PAX extended header",
                    b'L' => "GNU long name",
                    _ => "GNU long link name",
                };
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("a {what} of {size} bytes (more than {} allowed): a hostile or broken layer", self.limit),
                ));
            }
            if kind == b'x' {
                self.pax = Some(Vec::with_capacity(size as usize));
            }
            self.data_left = padded(size);
            return Ok(());
        }
        // An entry: its data is what a PAX header before it said, if any.
        let size = self.next_size.take().unwrap_or(size);
        let padded = padded(size);
        // Old GNU sparse files: extension blocks before the data.
        if kind == b'S' && b[482] != 0 {
            self.sparse_ext = true;
            self.after_ext = padded;
        } else {
            self.data_left = padded;
        }
        Ok(())
    }
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.scan(&buf[..n])?;
        Ok(n)
    }
}

fn padded(size: u64) -> u64 {
    size.div_ceil(BLOCK as u64).saturating_mul(BLOCK as u64)
}

/// The header checksum: the byte sum with the checksum field as spaces.
fn checksum_ok(b: &[u8; BLOCK]) -> bool {
    let Some(want) = parse_number(&b[148..156]) else { return false };
    let sum: u64 = b.iter().enumerate().map(|(i, &x)| if (148..156).contains(&i) { 32 } else { x as u64 }).sum();
    sum == want
}

/// A numeric header field: octal text, or GNU's base-256 (high bit set).
fn parse_number(f: &[u8]) -> Option<u64> {
    if f.first().is_some_and(|&x| x & 0x80 != 0) {
        let mut v: u64 = (f[0] & 0x7f) as u64;
        for &x in &f[1..] {
            v = v.checked_mul(256)?.checked_add(x as u64)?;
        }
        return Some(v);
    }
    let t: Vec<u8> = f.iter().copied().take_while(|&x| x != 0).filter(|&x| x != b' ').collect();
    if t.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(std::str::from_utf8(&t).ok()?, 8).ok()
}

/// The `size` record of PAX header data (`LEN size=N\n` records).
fn pax_size(data: &[u8]) -> Option<u64> {
    let mut rest = data;
    let mut size = None;
    while !rest.is_empty() {
        let sp = rest.iter().position(|&x| x == b' ')?;
        let len: usize = std::str::from_utf8(&rest[..sp]).ok()?.parse().ok()?;
        if len <= sp || len > rest.len() {
            return size;
        }
        let rec = &rest[sp + 1..len];
        if let Some(v) = rec.strip_prefix(b"size=") {
            size = std::str::from_utf8(v).ok()?.trim_end_matches('\n').parse().ok();
        }
        rest = &rest[len..];
    }
    size
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `data` through `Bounded` in chunks of `chunk` bytes.
    fn pass(data: &[u8], chunk: usize, limit: u64) -> io::Result<Vec<u8>> {
        struct Chunky<'a>(&'a [u8], usize);
        impl Read for Chunky<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(self.1).min(buf.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut out = Vec::new();
        Bounded::new(Chunky(data, chunk), limit).read_to_end(&mut out)?;
        Ok(out)
    }

    fn archive(long: usize, pax: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(5);
        h.set_mode(0o644);
        b.append_data(&mut h, "a".repeat(long), &b"hello"[..]).unwrap();
        if !pax.is_empty() {
            b.append_pax_extensions(pax.iter().copied()).unwrap();
        }
        let mut h = tar::Header::new_ustar();
        h.set_size(700);
        h.set_mode(0o644);
        b.append_data(&mut h, "b", &[7u8; 700][..]).unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn real_archives_pass_through_unchanged() {
        let a = archive(300, &[("user.note", b"x"), ("path", b"c")]);
        for chunk in [1, 7, 512, 4096] {
            assert_eq!(pass(&a, chunk, 1024).unwrap(), a, "chunk {chunk}");
        }
        // And the tar crate reads them through it as before.
        let names: Vec<String> = tar::Archive::new(Bounded::new(&a[..], 1024))
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, vec!["a".repeat(300), "c".to_string()]);
    }

    #[test]
    fn a_huge_extension_header_fails_before_it_is_read() {
        for kind in [b'x', b'L', b'g', b'K'] {
            let mut h = tar::Header::new_gnu();
            h.set_size(2 << 30);
            h.set_entry_type(tar::EntryType::new(kind));
            h.set_path("ext").unwrap_or_default();
            h.set_cksum();
            // Only the header: the 2 GB never has to exist.
            let e = pass(h.as_bytes(), 512, EXTENSION_LIMIT).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData);
            assert!(e.to_string().contains("2147483648 bytes"), "{e}");
        }
        // A long name past a small limit, through the tar crate too.
        let a = archive(3000, &[]);
        assert!(pass(&a, 4096, 1024).is_err());
        assert!(tar::Archive::new(Bounded::new(&a[..], 1024)).entries().unwrap().any(|e| e.is_err()));
    }

    #[test]
    fn numbers_and_pax_sizes_parse() {
        assert_eq!(parse_number(b"00000001000\0"), Some(512));
        assert_eq!(parse_number(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0]), Some(512));
        assert_eq!(pax_size(b"13 size=4096\n20 path=some/where\n"), Some(4096));
        assert_eq!(pax_size(b"bogus"), None);
    }
}
