//! Disk partition tables (`import::disk::find_root`, `fs_type`): the
//! first sectors of a disk image anyone may have made, and whatever the
//! GPT header says lies further out.

use crate::mutate::{apply, edits};
use crate::support::{bounded, config};
use berth_store::import::disk::{find_root, fs_type, Part};
use proptest::prelude::*;

/// `find_root` reads at most 1024 GPT entries of 4 KiB: 4 MiB, once.
const DISK_BUDGET: usize = 32 << 20;

const LINUX_DATA: [u8; 16] = guid(0x0fc63daf, 0x8483, 0x4772, [0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d, 0xe4]);
const ROOT_X86_64: [u8; 16] = guid(0x4f68bce3, 0xe8cd, 0x4db1, [0x96, 0xe7, 0xfb, 0xca, 0xf9, 0x84, 0xb7, 0x09]);
const ROOT_ARM64: [u8; 16] = guid(0xb921b045, 0x1df0, 0x41c3, [0xaf, 0x44, 0x4c, 0x6f, 0x28, 0x0d, 0x3f, 0xae]);

/// A type GUID as it lies on disk (mixed-endian).
const fn guid(a: u32, b: u16, c: u16, d: [u8; 8]) -> [u8; 16] {
    let (a, b, c) = (a.to_le_bytes(), b.to_le_bytes(), c.to_le_bytes());
    [a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]
}

/// A GPT entry: type, first and last LBA.
#[derive(Debug, Clone)]
struct Entry {
    kind: [u8; 16],
    first: u64,
    last: u64,
}

fn entry() -> impl Strategy<Value = Entry> {
    let kind = prop_oneof![Just(LINUX_DATA), Just(ROOT_X86_64), Just(ROOT_ARM64), any::<[u8; 16]>()];
    let lba = prop_oneof![0u64..100_000, Just(u64::MAX), Just(u64::MAX / 512), Just(u64::MAX / 512 + 1), any::<u64>()];
    (kind, lba.clone(), lba).prop_map(|(kind, first, last)| Entry { kind, first, last })
}

/// A protective MBR, a GPT header with the given entry array LBA, count
/// and entry size, and the entries written at LBA 2 (where a sane header
/// puts them) with `esize`-byte strides.
fn gpt(lba: u64, count: u32, esize: u32, entries: &[Entry]) -> Vec<u8> {
    let mut d = vec![0u8; 34 * 512];
    d[510] = 0x55;
    d[511] = 0xaa;
    d[446 + 4] = 0xee;
    d[512..520].copy_from_slice(b"EFI PART");
    d[512 + 72..512 + 80].copy_from_slice(&lba.to_le_bytes());
    d[512 + 80..512 + 84].copy_from_slice(&count.to_le_bytes());
    d[512 + 84..512 + 88].copy_from_slice(&esize.to_le_bytes());
    let stride = (esize as usize).clamp(128, 4096);
    for (i, e) in entries.iter().enumerate() {
        let o = 1024 + i * stride;
        if o + 48 > d.len() {
            d.resize(o + 48, 0);
        }
        d[o..o + 16].copy_from_slice(&e.kind);
        d[o + 32..o + 40].copy_from_slice(&e.first.to_le_bytes());
        d[o + 40..o + 48].copy_from_slice(&e.last.to_le_bytes());
    }
    d
}

/// How `read_at` answers: with the image's bytes, cut short at its end
/// (as a raw read past the end does), an error, or zeros.
#[derive(Debug, Clone, Copy)]
enum Reads {
    Image,
    Error,
    Zeros,
}

fn check(disk: &[u8], head_len: usize, reads: Reads) {
    let head = &disk[..head_len.min(disk.len())];
    let mut read_at = |off: u64, len: usize| -> std::io::Result<Vec<u8>> {
        match reads {
            Reads::Image => {
                let start = usize::try_from(off).unwrap_or(usize::MAX).min(disk.len());
                Ok(disk[start..start.saturating_add(len).min(disk.len())].to_vec())
            }
            Reads::Error => Err(std::io::Error::other("read error")),
            Reads::Zeros => Ok(vec![0; len]),
        }
    };
    let r = bounded(DISK_BUDGET, || find_root(head, &mut read_at));
    if let Ok(Some(Part { offset, size })) = r {
        // A partition that losetup can attach: not empty, not over the
        // partition table, and addressable.
        assert!(size > 0 && offset >= 512, "{offset} {size}");
        assert!(offset.checked_add(size).is_some(), "{offset} + {size} overflows");
    }
    let _ = bounded(DISK_BUDGET, || fs_type(disk));
}

fn reads() -> impl Strategy<Value = Reads> {
    prop_oneof![8 => Just(Reads::Image), 1 => Just(Reads::Error), 1 => Just(Reads::Zeros)]
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn any_bytes(disk in prop::collection::vec(any::<u8>(), 0..2048), head in 0usize..2048, r in reads()) {
        check(&disk, head, r);
    }

    #[test]
    fn gpt_fields(
        lba in prop_oneof![Just(2u64), 0u64..64, Just(u64::MAX), Just(u64::MAX / 512 + 1), any::<u64>()],
        count in prop_oneof![0u32..8, Just(128), Just(1024), Just(u32::MAX), any::<u32>()],
        esize in prop_oneof![Just(128u32), Just(256), Just(4096), Just(127), Just(4097), any::<u32>()],
        entries in prop::collection::vec(entry(), 0..6),
        head in prop_oneof![Just(34 * 512), 1024usize..34 * 512],
        r in reads(),
    ) {
        check(&gpt(lba, count, esize, &entries), head, r);
    }

    #[test]
    fn mbr_entries(
        parts in prop::collection::vec((prop_oneof![Just(0x83u8), Just(0), Just(0xee), any::<u8>()], any::<u32>(), any::<u32>()), 4),
        e in edits(4),
    ) {
        let mut d = vec![0u8; 34 * 512];
        d[510] = 0x55;
        d[511] = 0xaa;
        for (i, (kind, start, len)) in parts.into_iter().enumerate() {
            let o = 446 + i * 16;
            d[o + 4] = kind;
            d[o + 8..o + 12].copy_from_slice(&start.to_le_bytes());
            d[o + 12..o + 16].copy_from_slice(&len.to_le_bytes());
        }
        apply(&mut d, &e);
        check(&d, 34 * 512, Reads::Image);
    }

    #[test]
    fn superblocks(mut sb in prop::collection::vec(any::<u8>(), 0..70_000), magic in 0usize..6) {
        let (at, m): (usize, &[u8]) =
            [(1080, &[0x53, 0xef][..]), (0, b"XFSB"), (65600, b"_BHRfS_M"), (0, b"hsqs"), (1024, &[0xe2, 0xe1, 0xf5, 0xe0]), (0, b"")][magic];
        if sb.len() >= at + m.len() {
            sb[at..at + m.len()].copy_from_slice(m);
        }
        let _ = bounded(DISK_BUDGET, || fs_type(&sb));
    }
}
