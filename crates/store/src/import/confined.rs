//! Opening files named by an archive or an image layout without leaving
//! it. An OCI layout's blobs, a `docker save` archive's layers and an
//! ACI's manifest are opened with `openat2(RESOLVE_BENEATH)` from the
//! source's directory, so a symlink to `/etc/shadow` or `../../host` is
//! refused instead of followed; only regular files are accepted (a FIFO
//! would hang the import, `/dev/zero` would never end), opened
//! non-blocking so even the open of a FIFO cannot wait for a writer; and
//! JSON documents are read up to a bound before anything is parsed.

use crate::StoreError;
use rustix::fs::{self as rfs, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// The largest index.json, manifest or ACI manifest read from a local
/// source: the registry client's manifest bound.
pub const DOCUMENT_LIMIT: u64 = berth_oci::registry::MANIFEST_LIMIT;

fn refused(dir: &Path, rel: &str, why: impl std::fmt::Display) -> StoreError {
    StoreError::Import(format!("import: {}: {rel} {why}", dir.display()))
}

/// Opens `rel` below `dir` for reading: a regular file reached without
/// leaving `dir` (symlinks inside it are followed, ones that lead out are
/// refused).
pub fn open_regular(dir: &Path, rel: &str) -> Result<File, StoreError> {
    let base = rfs::open(dir, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| StoreError::io(format!("opening {}", dir.display()), e.into()))?;
    let how = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK;
    let fd = match crate::openat2::openat2(&base, rel, flags, Mode::empty(), how) {
        Ok(fd) => fd,
        Err(Errno::XDEV) | Err(Errno::LOOP) => {
            return Err(refused(dir, rel, "is a link that leads outside it: refusing to follow it"))
        }
        Err(Errno::NOENT) => return Err(refused(dir, rel, "is missing")),
        Err(e) => return Err(StoreError::io(format!("opening {rel} in {}", dir.display()), e.into())),
    };
    let st = rfs::fstat(&fd).map_err(|e| StoreError::io(format!("examining {rel}"), e.into()))?;
    if rfs::FileType::from_raw_mode(st.st_mode) != rfs::FileType::RegularFile {
        return Err(refused(dir, rel, "is not a regular file"));
    }
    // Reads of a regular file never block; clear the flag anyway so the
    // reader sees an ordinary descriptor.
    rfs::fcntl_setfl(&fd, OFlags::empty()).map_err(|e| StoreError::io(format!("opening {rel}"), e.into()))?;
    Ok(File::from(fd))
}

/// Reads `rel` below `dir` (as [`open_regular`] opens it), refusing one
/// larger than `limit` bytes before reading it.
pub fn read_bounded(dir: &Path, rel: &str, limit: u64) -> Result<Vec<u8>, StoreError> {
    let f = open_regular(dir, rel)?;
    let too_big = || refused(dir, rel, format_args!("is larger than {limit} bytes: refusing it"));
    let len = f.metadata().map_err(|e| StoreError::io(format!("examining {rel}"), e))?.len();
    if len > limit {
        return Err(too_big());
    }
    let mut body = Vec::with_capacity(len as usize);
    f.take(limit + 1).read_to_end(&mut body).map_err(|e| StoreError::io(format!("reading {rel}"), e))?;
    if body.len() as u64 > limit {
        return Err(too_big());
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_out_devices_fifos_and_big_files_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("layout");
        std::fs::create_dir_all(d.join("blobs")).unwrap();
        std::fs::write(t.path().join("host-secret"), "secret").unwrap();
        std::fs::write(d.join("blobs/ok"), "ok").unwrap();
        std::os::unix::fs::symlink("ok", d.join("blobs/inner-link")).unwrap();
        std::os::unix::fs::symlink("../../host-secret", d.join("blobs/up")).unwrap();
        std::os::unix::fs::symlink(t.path().join("host-secret"), d.join("blobs/abs")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", d.join("blobs/zero")).unwrap();
        rustix::fs::mknodat(rustix::fs::CWD, d.join("blobs/fifo"), rfs::FileType::Fifo, Mode::RUSR | Mode::WUSR, 0)
            .unwrap();
        std::fs::write(d.join("big"), vec![b' '; 100]).unwrap();
        assert_eq!(read_bounded(&d, "blobs/ok", 10).unwrap(), b"ok");
        assert_eq!(read_bounded(&d, "blobs/inner-link", 10).unwrap(), b"ok");
        for bad in ["blobs/up", "blobs/abs", "blobs/zero", "blobs/fifo", "blobs/none", "blobs", "../layout/blobs/ok"] {
            let e = read_bounded(&d, bad, 10).expect_err(bad).to_string();
            assert!(e.contains(bad), "{bad}: {e}");
        }
        assert!(read_bounded(&d, "big", 99).unwrap_err().to_string().contains("larger than 99 bytes"));
        assert_eq!(read_bounded(&d, "big", 100).unwrap().len(), 100);
    }
}
