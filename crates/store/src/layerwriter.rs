//! Writes a directory in overlayfs form (a machine's upper dir, a layer
//! dir) as an OCI layer tar: 0:0 character devices become `.wh.NAME`,
//! `user.overlay.opaque=y` (or the `trusted.` one of older uppers) becomes `.wh..wh..opq`, hardlinks become link
//! entries, xattrs go in PAX records (overlayfs' own are left out).
//! Written with the `tar` crate's builder; the tree walk and whiteout
//! conversion are ours because no crate converts overlayfs whiteouts.

use crate::unpack::{is_overlay_xattr, LEGACY_OPAQUE_XATTR, OPAQUE_XATTR};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

fn xattrs(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut names = vec![0u8; 65536];
    let Ok(n) = rustix::fs::llistxattr(path, &mut names) else { return Vec::new() };
    let mut out = Vec::new();
    for key in names[..n].split(|&b| b == 0).filter(|k| !k.is_empty()) {
        if is_overlay_xattr(key) || key == b"security.selinux" {
            continue;
        }
        let mut val = vec![0u8; 65536];
        if let Ok(len) = rustix::fs::lgetxattr(path, OsStr::from_bytes(key), &mut val) {
            val.truncate(len);
            out.push((key.to_vec(), val));
        }
    }
    out
}

fn is_opaque(path: &Path) -> bool {
    let mut v = [0u8; 4];
    [OPAQUE_XATTR, LEGACY_OPAQUE_XATTR]
        .iter()
        .any(|x| matches!(rustix::fs::lgetxattr(path, *x, &mut v), Ok(1) if v[0] == b'y'))
}

struct Walker<W: Write> {
    b: tar::Builder<W>,
    links: HashMap<(u64, u64), Vec<u8>>,
}

impl<W: Write> Walker<W> {
    fn header(md: &std::fs::Metadata, kind: tar::EntryType) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(md.mode() & 0o7777);
        h.set_uid(md.uid() as u64);
        h.set_gid(md.gid() as u64);
        h.set_mtime(md.mtime().max(0) as u64);
        h.set_size(0);
        h
    }

    fn pax(&mut self, path: &Path) -> io::Result<()> {
        let x = xattrs(path);
        if x.is_empty() {
            return Ok(());
        }
        let recs: Vec<(String, Vec<u8>)> =
            x.into_iter().map(|(k, v)| (format!("SCHILY.xattr.{}", String::from_utf8_lossy(&k)), v)).collect();
        self.b.append_pax_extensions(recs.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
    }

    fn walk(&mut self, root: &Path, rel: &Path) -> io::Result<()> {
        let dir = root.join(rel);
        let mut names: Vec<_> = std::fs::read_dir(&dir)?.flatten().map(|e| e.file_name()).collect();
        names.sort();
        for name in names {
            let path = dir.join(&name);
            let relp = rel.join(&name);
            let md = std::fs::symlink_metadata(&path)?;
            let ft = md.file_type();
            if ft.is_char_device() && md.rdev() == 0 {
                let mut h = Self::header(&md, tar::EntryType::Regular);
                h.set_mode(0o644);
                let wh = rel.join(format!(".wh.{}", name.to_string_lossy()));
                self.b.append_data(&mut h, wh, io::empty())?;
                continue;
            }
            self.pax(&path)?;
            if ft.is_dir() {
                let mut h = Self::header(&md, tar::EntryType::Directory);
                self.b.append_data(&mut h, &relp, io::empty())?;
                if is_opaque(&path) {
                    let mut o = Self::header(&md, tar::EntryType::Regular);
                    o.set_mode(0o644);
                    self.b.append_data(&mut o, relp.join(".wh..wh..opq"), io::empty())?;
                }
                self.walk(root, &relp)?;
            } else if ft.is_symlink() {
                let mut h = Self::header(&md, tar::EntryType::Symlink);
                let target = std::fs::read_link(&path)?;
                self.b.append_link(&mut h, &relp, target)?;
            } else if ft.is_file() {
                let key = (md.dev(), md.ino());
                if md.nlink() > 1 {
                    if let Some(first) = self.links.get(&key) {
                        let mut h = Self::header(&md, tar::EntryType::Link);
                        self.b.append_link(&mut h, &relp, Path::new(OsStr::from_bytes(first)))?;
                        continue;
                    }
                    self.links.insert(key, relp.as_os_str().as_bytes().to_vec());
                }
                let mut h = Self::header(&md, tar::EntryType::Regular);
                h.set_size(md.len());
                let f = std::fs::File::open(&path)?;
                self.b.append_data(&mut h, &relp, f)?;
            } else {
                let kind = if ft.is_char_device() {
                    tar::EntryType::Char
                } else if ft.is_block_device() {
                    tar::EntryType::Block
                } else if ft.is_fifo() {
                    tar::EntryType::Fifo
                } else {
                    continue; // sockets do not go in layers
                };
                let mut h = Self::header(&md, kind);
                let dev = md.rdev();
                h.set_device_major(rustix::fs::major(dev))?;
                h.set_device_minor(rustix::fs::minor(dev))?;
                self.b.append_data(&mut h, &relp, io::empty())?;
            }
        }
        Ok(())
    }
}

/// Writes `root` as a layer tar to `out`.
pub fn write_layer<W: Write>(root: &Path, out: W) -> io::Result<W> {
    let mut w = Walker { b: tar::Builder::new(out), links: HashMap::new() };
    w.b.mode(tar::HeaderMode::Complete);
    w.b.follow_symlinks(false);
    let md = std::fs::symlink_metadata(root)?;
    let mut h = Walker::<W>::header(&md, tar::EntryType::Directory);
    w.b.append_data(&mut h, "./", io::empty())?;
    w.walk(root, Path::new(""))?;
    w.b.into_inner()
}
