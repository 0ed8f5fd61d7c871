//! Mutations of valid input, shared by the fuzz tests of the crates that
//! parse JSON or binary formats: arbitrary JSON values, a JSON document
//! with one node replaced, and byte-level edits.

use proptest::prelude::*;
use serde_json::Value;

/// Keys and strings the parsers look for, so that replaced nodes often
/// land where they are read.
const KEYS: &[&str] = &[
    "schemaVersion",
    "mediaType",
    "config",
    "layers",
    "manifests",
    "digest",
    "size",
    "platform",
    "os",
    "architecture",
    "variant",
    "annotations",
    "urls",
    "auths",
    "auth",
    "token",
    "access_token",
    "expires_in",
    "acKind",
    "name",
    "app",
    "exec",
    "environment",
    "value",
    "labels",
    "user",
    "group",
    "workingDirectory",
];
const STRINGS: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "sha256:e3b0",
    "linux",
    "amd64",
    "arm64",
    "ImageManifest",
    "",
];

/// Any JSON value, at most four levels deep.
pub fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop::sample::select(STRINGS).prop_map(Value::from),
        ".{0,24}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let key = prop_oneof![prop::sample::select(KEYS).prop_map(str::to_string), ".{0,10}"];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key, inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Replaces the node that `path` leads to in `doc` with `with`: each step
/// picks a child (modulo the number of children) until the path or the
/// tree runs out. An object may instead lose the key or gain a new one.
pub fn replace(doc: &mut Value, path: &[usize], with: Value) {
    let Some((&step, rest)) = path.split_first() else {
        *doc = with;
        return;
    };
    match doc {
        Value::Object(m) if !m.is_empty() => {
            let key = m.keys().nth(step % m.len()).cloned().unwrap_or_default();
            if rest.is_empty() && step % 7 == 0 {
                m.remove(&key);
            } else if rest.is_empty() && step % 7 == 1 {
                m.insert(KEYS[step % KEYS.len()].to_string(), with);
            } else if let Some(child) = m.get_mut(&key) {
                replace(child, rest, with);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            let len = a.len();
            replace(&mut a[step % len], rest, with);
        }
        _ => *doc = with,
    }
}

/// A string and a number for [`replace_leaf`].
pub fn scalars() -> impl Strategy<Value = (String, Value)> {
    let s = prop_oneof![prop::sample::select(STRINGS).prop_map(str::to_string), any::<String>()];
    let n = prop_oneof![
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        (0u64..600).prop_map(Value::from),
    ];
    (s, n)
}

/// Follows `path` down to a leaf and gives it a new value of its own
/// kind, so the document keeps its shape and gets past type checks.
pub fn replace_leaf(doc: &mut Value, path: &[usize], s: String, n: Value) {
    match doc {
        Value::Object(m) if !m.is_empty() => {
            let step = path.first().copied().unwrap_or(0);
            let key = m.keys().nth(step % m.len()).cloned().unwrap_or_default();
            if let Some(child) = m.get_mut(&key) {
                replace_leaf(child, path.get(1..).unwrap_or(&[]), s, n);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            let len = a.len();
            let step = path.first().copied().unwrap_or(0);
            replace_leaf(&mut a[step % len], path.get(1..).unwrap_or(&[]), s, n);
        }
        Value::String(old) => *old = s,
        Value::Number(_) => *doc = n,
        Value::Bool(b) => *b = !*b,
        _ => {}
    }
}

/// A change to a byte string.
#[derive(Debug, Clone)]
pub enum Edit {
    Set(usize, u8),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
    Truncate(usize),
}

pub fn edits(max: usize) -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        6 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        1 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16)).prop_map(|(i, b)| Edit::Insert(i, b)),
        1 => (any::<usize>(), 1..64usize).prop_map(|(i, n)| Edit::Remove(i, n)),
        1 => any::<usize>().prop_map(Edit::Truncate),
    ];
    prop::collection::vec(edit, 0..max)
}

/// Applies `edits` to `data`; offsets are taken modulo its length.
pub fn apply(data: &mut Vec<u8>, edits: &[Edit]) {
    for e in edits {
        let len = data.len();
        match e {
            Edit::Set(i, b) if len > 0 => data[i % len] = *b,
            Edit::Insert(i, b) => {
                let at = i % (len + 1);
                data.splice(at..at, b.iter().copied());
            }
            Edit::Remove(i, n) if len > 0 => {
                let at = i % len;
                data.drain(at..(at + n).min(len));
            }
            Edit::Truncate(i) => data.truncate(i % (len + 1)),
            _ => {}
        }
    }
}
