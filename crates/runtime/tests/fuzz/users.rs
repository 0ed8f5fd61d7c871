//! `-u/--user` against an image's `/etc/passwd` and `/etc/group`
//! (`users::resolve`): both files come from the image, as its author
//! wrote them.

use crate::support::{bounded, config, PARSER_BUDGET};
use berth_runtime::users::resolve;
use proptest::prelude::*;

/// A field: often a name or number the spec names, sometimes anything.
fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec!["root", "alice", "0", "1000", "4294967295", "4294967296", "-1", "", "x"])
            .prop_map(String::from),
        "[a-z0-9,]{0,8}",
        ".{0,6}",
    ]
}

/// Lines of a passwd- or group-like file: `fields` colon-separated fields
/// each, with now and then a comment, a missing or an extra field.
fn db(fields: usize) -> impl Strategy<Value = String> {
    let line = prop::collection::vec(field(), fields - 2..fields + 2).prop_map(|f| f.join(":"));
    let line = prop_oneof![8 => line, 1 => "#.{0,10}", 1 => ".{0,20}"];
    prop::collection::vec(line, 0..8).prop_map(|l| l.join("\n"))
}

fn spec() -> impl Strategy<Value = String> {
    prop_oneof![
        (field(), prop::option::of(field())).prop_map(|(u, g)| match g {
            Some(g) => format!("{u}:{g}"),
            None => u,
        }),
        any::<String>(),
    ]
}

fn check(spec: &str, passwd: &str, group: &str) {
    if let Ok(u) = bounded(PARSER_BUDGET, || resolve(spec, passwd, group)) {
        // The primary group leads the list, and no group is listed twice.
        assert_eq!(u.groups.first(), Some(&u.gid));
        let mut g = u.groups.clone();
        g.sort_unstable();
        g.dedup();
        assert_eq!(g.len(), u.groups.len(), "{u:?}");
        assert!(!u.home.is_empty());
    }
}

proptest! {
    #![proptest_config(config(2048))]

    #[test]
    fn any_text(spec in spec(), passwd in any::<String>(), group in any::<String>()) {
        check(&spec, &passwd, &group);
    }

    #[test]
    fn passwd_shaped(spec in spec(), passwd in db(7), group in db(4)) {
        check(&spec, &passwd, &group);
    }
}
