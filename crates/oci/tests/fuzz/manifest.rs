//! Manifests and indexes (`manifest::parse`): a registry's or an
//! archive's body, with whatever Content-Type it claims.

use crate::mutate::{apply, edits, json, replace, replace_leaf, scalars};
use crate::support::{bounded, config, PARSER_BUDGET};
use berth_oci::manifest::{self, Fetched};
use berth_oci::Platform;
use proptest::prelude::*;
use serde_json::{json, Value};

const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn valid_manifest() -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": manifest::OCI_MANIFEST,
        "config": { "mediaType": manifest::OCI_CONFIG, "digest": D, "size": 2 },
        "layers": [
            { "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": D, "size": 10 },
            { "mediaType": "application/vnd.oci.image.layer.v1.tar+zstd", "digest": D, "size": 20,
              "annotations": { "a": "b" } }
        ],
        "annotations": { "org.opencontainers.image.created": "2024-01-01T00:00:00Z" }
    })
}

fn valid_index() -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": manifest::DOCKER_LIST,
        "manifests": [
            { "mediaType": manifest::DOCKER_MANIFEST, "digest": D, "size": 1,
              "platform": { "os": "linux", "architecture": "amd64" } },
            { "mediaType": manifest::OCI_MANIFEST, "digest": D, "size": 1,
              "platform": { "os": "linux", "architecture": "arm64", "variant": "v8" } }
        ]
    })
}

fn content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        prop::sample::select(vec![
            manifest::OCI_MANIFEST,
            manifest::OCI_INDEX,
            manifest::DOCKER_MANIFEST,
            manifest::DOCKER_LIST,
            manifest::DOCKER_SCHEMA1_SIGNED,
            "application/json",
            "application/json; charset=utf-8",
        ])
        .prop_map(|s| Some(s.to_string())),
        any::<String>().prop_map(Some),
    ]
}

fn platform() -> impl Strategy<Value = Platform> {
    prop_oneof![
        Just("linux/amd64"),
        Just("linux/arm64"),
        Just("linux/arm64/v8"),
        Just("linux/arm/v7"),
        Just("windows/amd64")
    ]
    .prop_map(|p| p.parse().unwrap_or_else(|_| Platform::host()))
}

fn check(ct: Option<&str>, body: &[u8], want: &Platform) {
    let parsed = bounded(PARSER_BUDGET, || manifest::parse(ct, body));
    match parsed {
        Ok(Fetched::Index(idx)) => {
            let _ = bounded(PARSER_BUDGET, || manifest::select_platform(&idx, want).map(|r| r.0.to_string()));
        }
        Ok(Fetched::Manifest(m)) => {
            for l in m.layers() {
                assert!(manifest::LayerCompression::from_media_type(l.media_type().as_ref()).is_ok());
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn arbitrary_bytes(ct in content_type(), body in prop::collection::vec(any::<u8>(), 0..512), want in platform()) {
        check(ct.as_deref(), &body, &want);
    }

    #[test]
    fn arbitrary_json(ct in content_type(), doc in json(), want in platform()) {
        check(ct.as_deref(), &serde_json::to_vec(&doc).unwrap_or_default(), &want);
    }

    #[test]
    fn a_node_of_a_valid_manifest_replaced(
        index in any::<bool>(),
        path in prop::collection::vec(any::<usize>(), 0..6),
        with in json(),
        ct in content_type(),
        want in platform(),
    ) {
        let mut doc = if index { valid_index() } else { valid_manifest() };
        replace(&mut doc, &path, with);
        check(ct.as_deref(), &serde_json::to_vec(&doc).unwrap_or_default(), &want);
    }

    #[test]
    fn a_leaf_of_a_valid_manifest_changed(
        index in any::<bool>(),
        paths in prop::collection::vec((prop::collection::vec(any::<usize>(), 0..6), scalars()), 1..4),
        ct in content_type(),
        want in platform(),
    ) {
        let mut doc = if index { valid_index() } else { valid_manifest() };
        for (path, (s, n)) in paths {
            replace_leaf(&mut doc, &path, s, n);
        }
        check(ct.as_deref(), &serde_json::to_vec(&doc).unwrap_or_default(), &want);
    }

    #[test]
    fn bytes_of_a_valid_manifest_edited(index in any::<bool>(), e in edits(8), ct in content_type(), want in platform()) {
        let doc = if index { valid_index() } else { valid_manifest() };
        let mut body = serde_json::to_vec_pretty(&doc).unwrap_or_default();
        apply(&mut body, &e);
        check(ct.as_deref(), &body, &want);
    }
}

#[test]
fn the_valid_documents_parse() {
    let amd64: Platform = "linux/amd64".parse().unwrap();
    let body = serde_json::to_vec(&valid_manifest()).unwrap();
    assert!(matches!(manifest::parse(None, &body), Ok(Fetched::Manifest(_))));
    let body = serde_json::to_vec(&valid_index()).unwrap();
    let Ok(Fetched::Index(idx)) = manifest::parse(None, &body) else { panic!("not an index") };
    assert!(manifest::select_platform(&idx, &amd64).is_ok());
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    for open in ["[", "{\"manifests\":"] {
        let body = open.repeat(100_000).into_bytes();
        assert!(manifest::parse(None, &body).is_err());
    }
}
