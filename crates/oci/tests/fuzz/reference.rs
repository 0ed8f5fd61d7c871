//! Image references (`reference.rs`), digests and platforms: the strings
//! a user, a registry's answer or an archive's tags hand in.

use crate::support::{bounded, config, PARSER_BUDGET};
use berth_oci::{Digest, Platform, Reference};
use proptest::prelude::*;

/// Something shaped like a reference: each part drawn from valid and
/// almost-valid pieces, so the grammar's corners are reached.
fn reference_like() -> impl Strategy<Value = String> {
    let host = prop_oneof![
        Just(String::new()),
        Just("localhost/".to_string()),
        Just("docker.io/".to_string()),
        Just("index.docker.io/".to_string()),
        Just("[::1]:5000/".to_string()),
        "[a-zA-Z0-9.:\\[\\]-]{0,20}/",
        "[a-z0-9-]{1,8}(\\.[a-z0-9-]{0,8}){0,3}(:[0-9]{0,7})?/",
    ];
    let component = "[a-zA-Z0-9._-]{0,12}";
    let path = prop::collection::vec(component, 1..5).prop_map(|c| c.join("/"));
    let tag = prop_oneof![Just(String::new()), ":[A-Za-z0-9_.-]{0,140}", ":.{0,8}"];
    let digest = prop_oneof![
        Just(String::new()),
        "@sha256:[a-f0-9]{64}",
        "@sha256:[a-fA-F0-9]{0,70}",
        "@[a-z0-9]{0,8}:[a-f0-9]{0,8}",
        "@.{0,8}",
    ];
    (host, path, tag, digest).prop_map(|(h, p, t, d)| format!("{h}{p}{t}{d}"))
}

fn check(s: &str) {
    let parsed = bounded(PARSER_BUDGET, || s.parse::<Reference>());
    if let Ok(r) = parsed {
        // What berth prints it parses back to the same reference: names
        // are stored and looked up in that form.
        let again = r.to_string().parse::<Reference>();
        assert_eq!(again.as_ref(), Ok(&r), "{s:?} printed as {r}");
        assert!(r.tag.is_some() || r.digest.is_some());
        let _ = (r.name(), r.api_reference(), r.api_host());
    }
}

proptest! {
    #![proptest_config(config(2048))]

    #[test]
    fn any_string_parses_or_is_refused(s in any::<String>()) {
        check(&s);
    }

    #[test]
    fn reference_shaped_strings(s in reference_like()) {
        check(&s);
    }

    #[test]
    fn digests_and_platforms(s in prop_oneof![any::<String>(), "sha256:[a-f0-9]{60,68}", "[a-z0-9_/-]{0,30}"]) {
        if let Ok(d) = bounded(PARSER_BUDGET, || s.parse::<Digest>()) {
            prop_assert_eq!(d.to_string().parse::<Digest>().ok(), Some(d.clone()));
            prop_assert_eq!(d.short().len(), 12);
        }
        if let Ok(p) = bounded(PARSER_BUDGET, || s.parse::<Platform>()) {
            prop_assert_eq!(p.to_string().parse::<Platform>().ok(), Some(p.clone()));
            let _ = p.matches(&Platform::host());
        }
    }
}
