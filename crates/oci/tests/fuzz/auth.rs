//! `WWW-Authenticate` challenges and token endpoint bodies
//! (`registry::auth`): what any registry, or a man in the middle of a
//! plain-http one, sends back.

use crate::mutate::{json, replace};
use crate::support::{bounded, config, PARSER_BUDGET};
use berth_oci::registry::auth::{parse_challenge, parse_token, Challenge};
use proptest::prelude::*;
use serde_json::json;

/// `"…"` with `"` and `\` escaped, as a server quotes a parameter.
fn quoted(v: &str) -> String {
    let mut s = String::from("\"");
    for c in v.chars() {
        if c == '"' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('"');
    s
}

proptest! {
    #![proptest_config(config(2048))]

    #[test]
    fn any_header(h in any::<String>()) {
        bounded(PARSER_BUDGET, || parse_challenge(&h));
    }

    #[test]
    fn header_shaped(
        scheme in prop_oneof![prop::sample::select(vec!["Bearer", "bearer", "BASIC", "Negotiate"]).prop_map(String::from), "[A-Za-z]{0,8}"],
        gap in "[ \t]{0,3}",
        params in prop::collection::vec(
            (prop_oneof![prop::sample::select(vec!["realm", "Service", "scope"]).prop_map(String::from), ".{0,6}"], any::<bool>(), ".{0,20}"),
            0..6,
        ),
        sep in prop_oneof![Just(","), Just(", "), Just(",,"), Just(" "), Just("")],
    ) {
        let body: Vec<String> = params
            .iter()
            .map(|(k, q, v)| if *q { format!("{k}={}", quoted(v)) } else { format!("{k}={v}") })
            .collect();
        let h = format!("{scheme}{gap}{}", body.join(sep));
        bounded(PARSER_BUDGET, || parse_challenge(&h));
    }

    /// A well-formed Bearer challenge reads back exactly the values the
    /// server quoted, whatever characters they hold.
    #[test]
    fn quoted_values_read_back(realm in any::<String>(), service in any::<String>(), scope in any::<String>()) {
        let h = format!("Bearer realm={},service={}, scope={}", quoted(&realm), quoted(&service), quoted(&scope));
        let c = bounded(PARSER_BUDGET, || parse_challenge(&h));
        prop_assert_eq!(c, Some(Challenge::Bearer { realm, service: Some(service), scope: Some(scope) }));
    }

    #[test]
    fn any_token_body(body in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = bounded(PARSER_BUDGET, || parse_token(&body));
    }

    #[test]
    fn token_body_fields(
        path in prop::collection::vec(any::<usize>(), 0..3),
        with in json(),
        expires in prop_oneof![any::<u64>().prop_map(|v| json!(v)), any::<i64>().prop_map(|v| json!(v)), any::<f64>().prop_map(|v| json!(v))],
    ) {
        let mut doc = json!({ "token": "t", "access_token": "a", "expires_in": expires });
        replace(&mut doc, &path, with);
        let body = serde_json::to_vec(&doc).unwrap_or_default();
        if let Ok(t) = bounded(PARSER_BUDGET, || parse_token(&body)) {
            prop_assert!(!t.value.is_empty());
            let _ = t.fresh();
        }
    }
}
