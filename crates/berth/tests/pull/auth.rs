//! Pulling from a registry that demands basic auth (htpasswd).

use base64::Engine as _;

use crate::harness::berth::find_image;
use crate::harness::fixtures;
use crate::harness::{Berth, Registry};

const AUTH_WORDS: &[&str] = &["auth", "credential", "login", "401", "password"];

/// A registry with `user:pass` holding `private:latest`.
fn private_registry() -> (Registry, String) {
    let reg = Registry::start_with_auth("user", "pass");
    reg.push_image("private", "latest", &fixtures::tiny("private"));
    let reference = reg.reference("private", "latest");
    (reg, reference)
}

fn assert_pulled(berth: &Berth, reference: &str) {
    let images = berth.images();
    assert!(
        find_image(&images, reference).is_some(),
        "{reference} missing from `images --json` after a successful pull: {images:?}"
    );
}

#[test]
fn pull_without_credentials_fails_naming_authentication() {
    let (_reg, reference) = private_registry();
    let berth = Berth::new();
    berth.pull(&reference, &[]).failure().mentions_any(AUTH_WORDS);
    assert!(berth.images().is_empty(), "a refused pull left an image behind");
}

#[test]
fn pull_with_creds_flag_succeeds() {
    let (_reg, reference) = private_registry();
    let berth = Berth::new();
    berth.pull(&reference, &["--creds", "user:pass"]).success();
    assert_pulled(&berth, &reference);
}

#[test]
fn pull_with_authfile_succeeds() {
    let (reg, reference) = private_registry();
    let berth = Berth::new();
    let token = base64::engine::general_purpose::STANDARD.encode("user:pass");
    let authfile = berth.dir().join("auth.json");
    let json = serde_json::json!({"auths": {reg.host(): {"auth": token}}});
    std::fs::write(&authfile, json.to_string()).expect("write auth.json");
    let authfile = authfile.to_str().expect("utf-8 path");
    berth.pull(&reference, &["--authfile", authfile]).success();
    assert_pulled(&berth, &reference);
}

#[test]
fn pull_with_wrong_password_fails_naming_authentication() {
    let (_reg, reference) = private_registry();
    let berth = Berth::new();
    berth.pull(&reference, &["--creds", "user:wrong"]).failure().mentions_any(AUTH_WORDS);
    assert!(berth.images().is_empty(), "a refused pull left an image behind");
}

#[test]
fn pull_with_authfile_for_another_registry_fails() {
    let (_reg, reference) = private_registry();
    let berth = Berth::new();
    let token = base64::engine::general_purpose::STANDARD.encode("user:pass");
    let authfile = berth.dir().join("auth.json");
    let json = serde_json::json!({"auths": {"registry.example:5000": {"auth": token}}});
    std::fs::write(&authfile, json.to_string()).expect("write auth.json");
    let authfile = authfile.to_str().expect("utf-8 path");
    berth.pull(&reference, &["--authfile", authfile]).failure().mentions_any(AUTH_WORDS);
}
