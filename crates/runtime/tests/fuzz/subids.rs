//! The host's `/etc/subuid`, `/etc/subgid`, `/etc/passwd` and
//! `/etc/group` as the ID range picker reads them
//! (`userns::range::parse_subids`, `parse_db_ids`, `slots`): whatever
//! other tools wrote there must not make berth panic, nor hand out IDs
//! that a listed range covers.

use crate::support::{bounded, config, PARSER_BUDGET};
use berth_runtime::userns::range::{parse_db_ids, parse_subids, slots, END, FIRST, SIZE};
use proptest::prelude::*;

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        (0u64..0x8000_0000).prop_map(|n| n.to_string()),
        prop::sample::select(vec!["18446744073709551615", "18446744073709551616", "-1", "", " 65536 ", "0x10"])
            .prop_map(String::from),
    ]
}

fn subid_text() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        8 => ("[a-z]{0,6}", number(), number()).prop_map(|(n, s, c)| format!("{n}:{s}:{c}")),
        1 => "#.{0,10}",
        1 => ".{0,20}",
    ];
    prop::collection::vec(line, 0..6).prop_map(|l| l.join("\n"))
}

/// The first slots picked for `reserved` lie in berth's span and overlap
/// none of the reserved ranges.
fn check_slots(reserved: &[(u64, u64)]) {
    for r in bounded(PARSER_BUDGET, || slots(reserved).take(4).collect::<Vec<_>>()) {
        assert!(r.base >= FIRST && r.base as u64 + r.count as u64 <= END as u64 && r.count == SIZE);
        let (a, b) = (r.base as u64, r.base as u64 + r.count as u64);
        for &(s, c) in reserved {
            let end = s.saturating_add(c);
            assert!(!(s < b && a < end), "slot {a}..{b} overlaps reserved {s}+{c}");
        }
    }
}

proptest! {
    #![proptest_config(config(2048))]

    #[test]
    fn any_text(text in any::<String>()) {
        check_slots(&bounded(PARSER_BUDGET, || parse_subids(&text)));
        check_slots(&bounded(PARSER_BUDGET, || parse_db_ids(&text)));
    }

    #[test]
    fn subid_shaped(text in subid_text()) {
        check_slots(&bounded(PARSER_BUDGET, || parse_subids(&text)));
        check_slots(&bounded(PARSER_BUDGET, || parse_db_ids(&text)));
    }
}
