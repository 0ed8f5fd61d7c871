//! Credentials go only where they belong: a mirror that asks for Basic
//! auth gets its own auth-file entry, never the origin's `--creds`; an
//! upload session whose Location is another host gets no Authorization.
//! The mirror and the upload host are scripted servers that record what
//! they are sent; the origin of the pull is the real registry.

use base64::Engine as _;

use crate::harness::berth::run_command;
use crate::harness::fixtures;
use crate::harness::mockhttp::{MockHttp, Reply};
use crate::harness::{Berth, Registry};

fn basic(user_pass: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(user_pass))
}

/// registries.toml: `origin` insecure, with `mirror` (plain http) first.
fn mirrored(berth: &Berth, origin: &str, mirror: &str) -> std::path::PathBuf {
    let conf = berth.dir().join("registries.toml");
    let text = format!(
        "[[registry]]\nlocation = \"{origin}\"\ninsecure = true\n\n[[registry.mirror]]\nlocation = \"{mirror}\"\ninsecure = true\n"
    );
    std::fs::write(&conf, text).unwrap();
    conf
}

#[test]
fn a_mirror_asking_for_basic_auth_gets_its_own_credentials_never_the_origin_s() {
    let reg = Registry::start_with_auth("user", "pass");
    reg.push_image("private", "latest", &fixtures::tiny("private"));
    let reference = reg.reference("private", "latest");
    let mirror = MockHttp::start(|_| Reply::new(401).header("WWW-Authenticate", "Basic realm=\"mirror\""));

    // --creds are the origin's: the mirror must not see them.
    let berth = Berth::new();
    let conf = mirrored(&berth, &reg.host(), &mirror.host());
    let mut cmd = berth.command(["pull", "--creds", "user:pass", &reference]);
    cmd.env("BERTH_REGISTRIES_CONF", &conf);
    run_command(cmd).success();
    let seen = mirror.requests();
    assert!(seen.iter().any(|r| r.path.contains("/manifests/")), "the mirror was never asked: {seen:?}");
    for r in &seen {
        assert_eq!(r.header("authorization"), None, "the mirror got credentials: {} {}", r.method, r.path);
    }

    // With an auth file holding both, each gets its own entry.
    let before = seen.len();
    let berth = Berth::new();
    let conf = mirrored(&berth, &reg.host(), &mirror.host());
    let authfile = berth.dir().join("auth.json");
    let entry = |up: &str| serde_json::json!({ "auth": base64::engine::general_purpose::STANDARD.encode(up) });
    let json =
        serde_json::json!({"auths": {reg.host(): entry("user:pass"), mirror.host(): entry("mirror-user:mirror-pass")}});
    std::fs::write(&authfile, json.to_string()).unwrap();
    let mut cmd = berth.command(["pull", "--authfile", authfile.to_str().unwrap(), &reference]);
    cmd.env("BERTH_REGISTRIES_CONF", &conf);
    run_command(cmd).success();
    let seen: Vec<_> = mirror.requests().into_iter().skip(before).collect();
    let sent: Vec<Option<&str>> = seen.iter().map(|r| r.header("authorization")).collect();
    assert!(sent.contains(&Some(basic("mirror-user:mirror-pass").as_str())), "the mirror never got its own: {sent:?}");
    assert!(!sent.contains(&Some(basic("user:pass").as_str())), "the mirror got the origin's credentials: {sent:?}");
}

#[test]
fn an_upload_location_on_another_host_gets_no_credentials() {
    // An image in the store to push.
    let plain = Registry::start();
    plain.push_image("tiny", "latest", &fixtures::tiny("push"));
    let berth = Berth::new();
    berth.pull(&plain.reference("tiny", "latest"), &[]).success();

    let elsewhere = MockHttp::start(|_| Reply::new(201));
    let upload_to = format!("http://{}/upload/session", elsewhere.host());
    let want = basic("pusher:secret");
    let origin = MockHttp::start(move |r| {
        if r.header("authorization") != Some(want.as_str()) {
            return Reply::new(401).header("WWW-Authenticate", "Basic realm=\"registry\"");
        }
        match r.method.as_str() {
            "GET" => Reply::new(200),
            "HEAD" => Reply::new(404),
            "POST" => Reply::new(202).header("Location", &upload_to),
            "PUT" if r.path.contains("/manifests/") => Reply::new(201),
            _ => Reply::new(404),
        }
    });
    let target = format!("{}/team/app:1", origin.host());
    berth
        .run(["push", "--tls-verify=false", "--creds", "pusher:secret", &plain.reference("tiny", "latest"), &target])
        .success();
    let uploads = elsewhere.requests();
    assert!(uploads.iter().any(|r| r.method == "PUT"), "no blob reached the upload location: {uploads:?}");
    for r in &uploads {
        assert_eq!(r.header("authorization"), None, "the upload host got the registry's credentials: {r:?}");
    }
    assert!(origin.requests().iter().any(|r| r.method == "PUT" && r.path.contains("/manifests/")));
}
