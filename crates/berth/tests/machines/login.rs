//! `berth login` / `berth logout` against the htpasswd registry, with a
//! containers auth.json given by `--authfile`.

use std::fs;
use std::path::Path;

use base64::Engine as _;
use serde_json::{json, Value};

use super::run_with_stdin;
use crate::harness::{fixtures, Berth, Registry};

fn auth_registry() -> (Registry, String) {
    let reg = Registry::start_with_auth("alice", "correct horse");
    reg.push_image("private/tiny", "latest", &fixtures::tiny("private"));
    let reference = reg.reference("private/tiny", "latest");
    (reg, reference)
}

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display())))
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display()))
}

#[test]
fn login_writes_the_auth_file_pull_uses_it_and_logout_removes_it() {
    let (reg, reference) = auth_registry();
    let berth = Berth::new();
    let authfile = berth.dir().join("auth.json");
    let af = authfile.to_str().unwrap();
    let host = reg.host();

    berth.pull(&reference, &["-q"]).failure();
    berth
        .run(["login", host.as_str(), "-u", "alice", "-p", "correct horse", "--authfile", af, "--tls-verify=false"])
        .success();
    let v = read_json(&authfile);
    let want = base64::engine::general_purpose::STANDARD.encode("alice:correct horse");
    assert_eq!(v["auths"][host.as_str()]["auth"], want, "auth.json entry for {host}: {v}");
    let mode = std::os::unix::fs::PermissionsExt::mode(&fs::metadata(&authfile).unwrap().permissions()) & 0o777;
    assert_eq!(mode & 0o077, 0, "auth file holds a password but is mode {mode:o}");

    berth.pull(&reference, &["-q", "--authfile", af]).success();
    let mnt = berth.mount(&reference);
    let marker = fs::read_to_string(mnt.join("etc/marker")).unwrap();
    berth.unmount(&mnt);
    assert_eq!(marker, "private");

    // push uses the same credentials.
    let pushed = reg.reference("private/again", "v1");
    berth.run(["push", reference.as_str(), pushed.as_str(), "--tls-verify=false", "--authfile", af]).success();
    berth.run(["push", reference.as_str(), pushed.as_str(), "--tls-verify=false"]).failure();

    berth.run(["logout", host.as_str(), "--authfile", af]).success();
    let v = read_json(&authfile);
    assert!(v["auths"].get(host.as_str()).is_none(), "logout left the entry: {v}");
    berth.run(["logout", host.as_str(), "--authfile", af]).failure().mentions_any(&["not logged in"]);
    // Without the entry, pulling again fails (the store still has the image,
    // so use a fresh store).
    let fresh = Berth::new();
    fresh.pull(&reference, &["-q", "--authfile", af]).failure();
}

#[test]
fn wrong_password_fails_and_writes_nothing() {
    let (reg, _reference) = auth_registry();
    let berth = Berth::new();
    let host = reg.host();
    let authfile = berth.dir().join("auth.json");
    let af = authfile.to_str().unwrap();
    berth
        .run(["login", host.as_str(), "-u", "alice", "-p", "wrong", "--authfile", af, "--tls-verify=false"])
        .failure()
        .mentions_any(&["login failed"]);
    assert!(!authfile.exists(), "a failed login wrote {}", authfile.display());

    // An existing file with other entries is left exactly as it was.
    let other = json!({"auths": {"other.example:5000": {"auth": "dXNlcjpwYXNz"}}});
    let text = serde_json::to_vec_pretty(&other).unwrap();
    fs::write(&authfile, &text).unwrap();
    berth
        .run(["login", host.as_str(), "-u", "alice", "-p", "wrong", "--authfile", af, "--tls-verify=false"])
        .failure()
        .mentions_any(&["login failed"]);
    assert_eq!(fs::read(&authfile).unwrap(), text, "a failed login changed the auth file");
}

#[test]
fn login_keeps_other_entries_and_reads_the_password_from_stdin() {
    let (reg, reference) = auth_registry();
    let berth = Berth::new();
    let host = reg.host();
    let authfile = berth.dir().join("auth.json");
    let af = authfile.to_str().unwrap();
    fs::write(&authfile, r#"{"auths":{"other.example:5000":{"auth":"dXNlcjpwYXNz"}}}"#).unwrap();
    let pw = berth.dir().join("pw");
    fs::write(&pw, "correct horse\n").unwrap();
    run_with_stdin(
        &berth,
        ["login", host.as_str(), "-u", "alice", "--password-stdin", "--authfile", af, "--tls-verify=false"],
        &pw,
    )
    .success();
    let v = read_json(&authfile);
    assert_eq!(v["auths"]["other.example:5000"]["auth"], "dXNlcjpwYXNz", "login dropped another entry: {v}");
    assert!(v["auths"][host.as_str()]["auth"].is_string(), "no entry for {host}: {v}");
    berth.pull(&reference, &["-q", "--authfile", af]).success();
    berth.run(["logout", host.as_str(), "--authfile", af]).success();
    let v = read_json(&authfile);
    assert_eq!(v["auths"]["other.example:5000"]["auth"], "dXNlcjpwYXNz", "logout dropped another entry: {v}");
}
