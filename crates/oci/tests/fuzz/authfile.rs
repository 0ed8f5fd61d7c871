//! Auth files (`registry::authfile`): containers' `auth.json` and
//! docker's `config.json`, which any program of the user's may have
//! written.

use crate::mutate::{apply, edits, json, replace};
use crate::support::{bounded, config, PARSER_BUDGET};
use berth_oci::registry::authfile::{keys_for, lookup_in, store, Credentials};
use proptest::prelude::*;
use serde_json::{json, Value};

fn valid() -> Value {
    json!({
        "auths": {
            "reg.io": { "auth": "YTox" },
            "reg.io/team": { "auth": "Yjoy", "email": "x@y" },
            "https://index.docker.io/v1/": { "auth": "ZDoz" }
        },
        "credHelpers": { "gcr.io": "gcloud" }
    })
}

/// Looks names up in an auth file holding `body`, then stores and
/// removes an entry in it: `Ok` or `Err`, never a panic.
fn check(body: &[u8], registry: &str, repository: &str) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let f = dir.path().join("auth.json");
    std::fs::write(&f, body).expect("writing the auth file");
    let found = bounded(PARSER_BUDGET, || lookup_in(&f, registry, repository));
    if let Ok(Some(c)) = found {
        let _ = format!("{c:?} {}", c.basic_header());
    }
    let creds = Credentials::parse("user:pass");
    if bounded(PARSER_BUDGET, || store(&f, "reg.io", Some(&creds))).is_ok() {
        // What berth wrote it reads back.
        assert_eq!(lookup_in(&f, "reg.io", "x").ok().flatten(), Some(creds));
        assert!(bounded(PARSER_BUDGET, || store(&f, "reg.io", None)).is_ok());
    }
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![Just("reg.io".to_string()), Just("docker.io".to_string()), ".{0,16}"]
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn any_bytes(body in prop::collection::vec(any::<u8>(), 0..256), reg in name(), repo in ".{0,16}") {
        check(&body, &reg, &repo);
    }

    #[test]
    fn a_node_replaced(path in prop::collection::vec(any::<usize>(), 0..4), with in json(), reg in name()) {
        let mut doc = valid();
        replace(&mut doc, &path, with);
        check(&serde_json::to_vec(&doc).unwrap_or_default(), &reg, "team/app");
    }

    #[test]
    fn bytes_edited(e in edits(6), reg in name()) {
        let mut body = serde_json::to_vec_pretty(&valid()).unwrap_or_default();
        apply(&mut body, &e);
        check(&body, &reg, "team/app");
    }

    #[test]
    fn credentials_and_keys(s in any::<String>(), reg in ".{0,20}", repo in ".{0,40}") {
        let c = Credentials::parse(&s);
        prop_assert!(s.starts_with(&c.username));
        let keys = bounded(PARSER_BUDGET, || keys_for(&reg, &repo));
        prop_assert!(!keys.is_empty() && keys.len() <= repo.len() + reg.len() + 2);
    }
}
