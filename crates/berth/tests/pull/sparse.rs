//! GNU sparse files in a layer (`tar --format=gnu -S`): a 1 GiB file with
//! 3 bytes of data stays sparse on disk after the pull, and its real size
//! counts against `--max-layer-size`, so a sparse bomb is refused.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use crate::harness::oci::{Compression, Layer};
use crate::harness::{Berth, Image, Registry};

const SIZE: u64 = (1 << 30) + 3;

/// A GNU-format tar holding `holes`: 1 GiB of hole, then "end".
fn sparse_tar(dir: &Path) -> Vec<u8> {
    let src = dir.join("sparse-src");
    fs::create_dir_all(&src).unwrap();
    let f = fs::File::create(src.join("holes")).unwrap();
    f.set_len(1 << 30).unwrap();
    drop(f);
    fs::OpenOptions::new()
        .append(true)
        .open(src.join("holes"))
        .and_then(|mut f| {
            use std::io::Write;
            f.write_all(b"end")
        })
        .unwrap();
    let out = dir.join("sparse.tar");
    let st = Command::new("tar")
        .args(["--format=gnu", "-S", "-C"])
        .arg(&src)
        .arg("-cf")
        .arg(&out)
        .arg("holes")
        .status()
        .unwrap();
    assert!(st.success());
    let data = fs::read(&out).unwrap();
    assert!(data.len() < 1 << 20, "tar -S wrote {} bytes: not sparse", data.len());
    data
}

#[test]
fn a_sparse_file_stays_sparse_and_counts_against_the_layer_limit() {
    let berth = Berth::new();
    let reg = Registry::start();
    let image = Image::new("amd64", vec![Layer::new(sparse_tar(berth.dir()), Compression::Gzip)]);
    reg.push_image("sparse", "latest", &image);
    let reference = reg.reference("sparse", "latest");

    berth.pull(&reference, &["--max-layer-size", "100M"]).failure().mentions_any(&["decompression bomb"]);
    assert!(berth.layer_dirs().is_empty(), "a refused layer was kept");

    berth.pull(&reference, &[]).success();
    let mnt = berth.mount(&reference);
    let md = fs::metadata(mnt.join("holes")).unwrap();
    let data_end = {
        use std::io::{Read, Seek};
        let mut f = fs::File::open(mnt.join("holes")).unwrap();
        f.seek(std::io::SeekFrom::End(-3)).unwrap();
        let mut b = String::new();
        f.read_to_string(&mut b).unwrap();
        b
    };
    berth.unmount(&mnt);
    assert_eq!(md.len(), SIZE);
    assert_eq!(data_end, "end");
    assert!(md.blocks() * 512 < 1 << 20, "the sparse file takes {} bytes on disk", md.blocks() * 512);
}
