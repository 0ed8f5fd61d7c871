//! ACI manifests (`import::aci::Manifest`): the JSON an appc image's
//! author wrote, turned into an image config.

use crate::mutate::{apply, edits, json, replace, replace_leaf, scalars};
use crate::support::{bounded, config, PARSER_BUDGET};
use berth_store::import::aci::Manifest;
use proptest::prelude::*;
use serde_json::{json, Value};

fn valid() -> Value {
    json!({
        "acKind": "ImageManifest",
        "acVersion": "0.8.11",
        "name": "example.com/app",
        "labels": [{ "name": "os", "value": "linux" }, { "name": "arch", "value": "amd64" }],
        "app": {
            "exec": ["/bin/sh", "-c", "echo aci"],
            "user": "0",
            "group": "0",
            "workingDirectory": "/tmp",
            "environment": [{ "name": "FOO", "value": "bar" }]
        }
    })
}

fn check(body: &[u8]) {
    let Ok(m) = bounded(PARSER_BUDGET, || Manifest::parse(body)) else { return };
    let mut config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": { "Env": ["PATH=/bin"], "Cmd": ["/bin/sh"] },
        "rootfs": { "type": "layers", "diff_ids": [] },
    });
    let Some(c) = config.as_object_mut() else { return };
    bounded(PARSER_BUDGET, || m.apply(c));
    let _ = m.name();
    // Still an image config: the keys berth reads have their types.
    assert!(config["architecture"].is_string());
    assert!(config["config"].is_object());
    assert!(config["config"]["Env"].as_array().is_some_and(|e| e.iter().all(Value::is_string)));
    assert!(config["rootfs"]["diff_ids"].is_array());
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn any_bytes(body in prop::collection::vec(any::<u8>(), 0..256)) {
        check(&body);
    }

    #[test]
    fn a_node_replaced(path in prop::collection::vec(any::<usize>(), 0..5), with in json()) {
        let mut doc = valid();
        replace(&mut doc, &path, with);
        check(&serde_json::to_vec(&doc).unwrap_or_default());
    }

    #[test]
    fn leaves_changed(paths in prop::collection::vec((prop::collection::vec(any::<usize>(), 0..5), scalars()), 1..4)) {
        let mut doc = valid();
        for (path, (s, n)) in paths {
            replace_leaf(&mut doc, &path, s, n);
        }
        check(&serde_json::to_vec(&doc).unwrap_or_default());
    }

    #[test]
    fn bytes_edited(e in edits(6)) {
        let mut body = serde_json::to_vec_pretty(&valid()).unwrap_or_default();
        apply(&mut body, &e);
        check(&body);
    }
}
