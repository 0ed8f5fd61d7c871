//! The registry client against small scripted HTTP servers on loopback:
//! the Bearer token flow (anonymous and with credentials, `token` and
//! `access_token`, renewal after expiry), Basic auth, retries on 5xx, 429
//! with `Retry-After` and dropped connections, redirects to another host
//! that must not receive the credentials, mirrors tried before the origin,
//! and extra CA certificates per registry.

use berth_oci::registry::{Client, ClientOptions, Credentials, RegistriesConfig};
use berth_oci::{Digest, Reference};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Req {
    path: String,
    headers: Vec<(String, String)>,
}

impl Req {
    fn header(&self, k: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.as_str())
    }
}

/// What the handler answers: status, headers, body. `None` drops the
/// connection without answering.
type Answer = Option<(u16, Vec<(String, String)>, Vec<u8>)>;

struct Server {
    port: u16,
    log: Arc<Mutex<Vec<Req>>>,
}

impl Server {
    fn start(handler: impl Fn(&Req, usize) -> Answer + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let log: Arc<Mutex<Vec<Req>>> = Arc::default();
        let handler = Arc::new(handler);
        let l2 = log.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (h, log) = (handler.clone(), l2.clone());
                std::thread::spawn(move || serve(stream, &*h, &log));
            }
        });
        Server { port, log }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn requests(&self) -> Vec<Req> {
        self.log.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, handler: &(dyn Fn(&Req, usize) -> Answer + Send + Sync), log: &Mutex<Vec<Req>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut stream = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                break;
            }
            if let Some((k, v)) = h.trim_end().split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let req = Req { path, headers };
        let n = {
            let mut l = log.lock().unwrap();
            l.push(req.clone());
            l.iter().filter(|r| r.path == req.path).count()
        };
        let Some((status, hdrs, body)) = handler(&req, n) else { return };
        let mut out = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", body.len());
        for (k, v) in hdrs {
            out += &format!("{k}: {v}\r\n");
        }
        out += "\r\n";
        if stream.write_all(out.as_bytes()).and_then(|_| stream.write_all(&body)).is_err() {
            return;
        }
    }
}

fn ok(body: &[u8]) -> Answer {
    Some((200, vec![], body.to_vec()))
}

fn with(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    Some((status, headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), body.to_vec()))
}

fn opts() -> ClientOptions {
    ClientOptions { tls_verify: Some(false), retries: 3, ..ClientOptions::default() }
}

fn client(reference: &str, o: &ClientOptions) -> Client {
    Client::new(&reference.parse::<Reference>().expect("reference"), o).expect("client")
}

const BLOB: &[u8] = b"hello blob";

#[test]
fn bearer_token_flow_with_credentials_and_renewal() {
    let realm_port = Arc::new(Mutex::new(0u16));
    let token_srv = Server::start(|req, n| {
        // The first token lives 1 s, so the second blob fetch must renew it.
        let auth = req.header("authorization").unwrap_or("");
        if auth != Credentials::parse("alice:secret").basic_header() {
            return with(401, &[], b"{}");
        }
        if n == 1 {
            ok(br#"{"token":"t1","expires_in":1}"#)
        } else {
            ok(br#"{"access_token":"t2","expires_in":300}"#)
        }
    });
    *realm_port.lock().unwrap() = token_srv.port;
    let realm = format!("http://{}/token", token_srv.host());
    let reg = Server::start(move |req, _| {
        let challenge = format!(r#"Bearer realm="{realm}",service="test-registry""#);
        match req.header("authorization") {
            Some("Bearer t1") | Some("Bearer t2") if req.path.contains("/blobs/") => ok(BLOB),
            Some("Bearer t1") | Some("Bearer t2") => ok(b"{}"),
            _ => with(401, &[("WWW-Authenticate", &challenge)], b"{}"),
        }
    });
    let mut o = opts();
    o.creds = Some(Credentials::parse("alice:secret"));
    let c = client(&format!("{}/team/app:1", reg.host()), &o);
    c.ping().expect("ping");
    let d = Digest::of(BLOB);
    let mut got = Vec::new();
    c.blob(&d).expect("blob").reader.read_to_end(&mut got).expect("read");
    assert_eq!(got, BLOB);
    std::thread::sleep(Duration::from_millis(1200));
    got.clear();
    c.blob(&d).expect("blob after expiry").reader.read_to_end(&mut got).expect("read");
    assert_eq!(got, BLOB);
    let tokens = token_srv.requests();
    assert_eq!(tokens.len(), 2, "the expired token was renewed once: {tokens:?}");
    assert!(
        tokens[0].path.contains("scope=repository%3Ateam%2Fapp%3Apull")
            || tokens[0].path.contains("scope=repository:team/app:pull"),
        "{}",
        tokens[0].path
    );
    assert!(tokens[0].path.contains("service=test-registry"), "{}", tokens[0].path);
}

#[test]
fn bearer_refused_credentials_give_a_clear_error() {
    let token_srv = Server::start(|_, _| with(401, &[], b"{}"));
    let realm = format!("http://{}/token", token_srv.host());
    let reg =
        Server::start(move |_, _| with(401, &[("WWW-Authenticate", &format!(r#"Bearer realm="{realm}""#))], b"{}"));
    let mut o = opts();
    o.creds = Some(Credentials::parse("bob:wrong"));
    let c = client(&format!("{}/x:1", reg.host()), &o);
    let e = c.manifest("1").unwrap_err().to_string();
    assert!(e.contains("authentication required") && e.contains("refused"), "{e}");
}

#[test]
fn retries_on_503_and_429_with_retry_after_and_dropped_connections() {
    let reg = Server::start(|req, n| {
        if req.path == "/v2/" {
            return ok(b"{}");
        }
        match n {
            1 => with(503, &[], b"busy"),
            2 => with(429, &[("Retry-After", "1")], b"slow down"),
            3 => None, // connection dropped
            _ => ok(BLOB),
        }
    });
    let c = client(&format!("{}/x:1", reg.host()), &opts());
    let start = std::time::Instant::now();
    let mut got = Vec::new();
    c.blob(&Digest::of(BLOB)).expect("blob after retries").reader.read_to_end(&mut got).expect("read");
    assert_eq!(got, BLOB);
    assert!(start.elapsed() >= Duration::from_millis(900), "Retry-After honoured");
}

#[test]
fn gives_up_after_the_retry_budget() {
    let reg = Server::start(|req, _| if req.path == "/v2/" { ok(b"{}") } else { with(500, &[], b"down") });
    let mut o = opts();
    o.retries = 1;
    let c = client(&format!("{}/x:1", reg.host()), &o);
    let e = c.blob(&Digest::of(BLOB)).err().expect("fails").to_string();
    assert!(e.contains("500"), "{e}");
    assert_eq!(reg.requests().iter().filter(|r| r.path.contains("/blobs/")).count(), 2);
}

#[test]
fn redirect_to_another_host_drops_the_credentials() {
    let cdn = Server::start(|_, _| ok(BLOB));
    let cdn_url = format!("http://localhost:{}/cdn/blob", cdn.port);
    let reg =
        Server::start(
            move |req, _| {
                if req.path.contains("/blobs/") {
                    with(307, &[("Location", &cdn_url)], b"")
                } else {
                    ok(b"{}")
                }
            },
        );
    let mut o = opts();
    // Basic auth: the registry gets the header on every request.
    o.creds = Some(Credentials::parse("u:p"));
    let c = client(&format!("{}/x:1", reg.host()), &o);
    let mut got = Vec::new();
    c.blob(&Digest::of(BLOB)).expect("blob").reader.read_to_end(&mut got).expect("read");
    assert_eq!(got, BLOB);
    let cdn_reqs = cdn.requests();
    assert_eq!(cdn_reqs.len(), 1);
    assert!(cdn_reqs[0].header("authorization").is_none(), "credentials leaked to the CDN: {:?}", cdn_reqs[0]);
}

#[test]
fn basic_challenge_sends_credentials_and_401_without_them_is_clear() {
    let reg = Server::start(|req, _| match req.header("authorization") {
        Some(a) if a == Credentials::parse("u:p").basic_header() => ok(b"{}"),
        _ => with(401, &[("WWW-Authenticate", r#"Basic realm="r""#)], b"{}"),
    });
    let c = client(&format!("{}/x:1", reg.host()), &opts());
    let e =
        c.manifest("sha256:0000000000000000000000000000000000000000000000000000000000000000").unwrap_err().to_string();
    assert!(e.contains("authentication required") && e.contains("no credentials"), "{e}");
    let mut o = opts();
    o.creds = Some(Credentials::parse("u:p"));
    let c = client(&format!("{}/x:1", reg.host()), &o);
    c.check_login().expect("login with the right credentials");
}

#[test]
fn mirror_is_tried_before_the_origin_and_falls_back() {
    let manifest = br#"{"schemaVersion":2}"#.to_vec();
    let m2 = manifest.clone();
    let mirror = Server::start(move |req, _| {
        if req.path == "/v2/" {
            ok(b"{}")
        } else if req.path.starts_with("/v2/cache/x/manifests/") {
            ok(&m2)
        } else {
            with(404, &[], br#"{"errors":[{"code":"BLOB_UNKNOWN"}]}"#)
        }
    });
    let origin = Server::start(|_, _| ok(BLOB));
    let conf = format!(
        "[[registry]]\nlocation = \"{}\"\ninsecure = true\n[[registry.mirror]]\nlocation = \"{}/cache\"\ninsecure = true\n",
        origin.host(),
        mirror.host()
    );
    let mut o = opts();
    o.tls_verify = None;
    o.config = RegistriesConfig::parse(&conf, Path::new("test.toml")).expect("config");
    let c = client(&format!("{}/x:1", origin.host()), &o);
    let m = c.manifest("1").expect("manifest from the mirror");
    assert_eq!(m.body, manifest);
    assert!(origin.requests().iter().all(|r| !r.path.contains("/manifests/")), "origin asked for the manifest");
    let mut got = Vec::new();
    c.blob(&Digest::of(BLOB)).expect("blob falls back to origin").reader.read_to_end(&mut got).expect("read");
    assert_eq!(got, BLOB);
}

#[test]
fn manifest_digest_is_verified() {
    let reg = Server::start(|req, _| {
        if req.path == "/v2/" {
            ok(b"{}")
        } else {
            with(
                200,
                &[("Docker-Content-Digest", "sha256:1111111111111111111111111111111111111111111111111111111111111111")],
                b"{}",
            )
        }
    });
    let c = client(&format!("{}/x:1", reg.host()), &opts());
    let e = c.manifest("1").unwrap_err().to_string();
    assert!(e.contains("refusing it"), "{e}");
}

#[test]
fn plain_http_registry_needs_tls_verify_false() {
    let reg = Server::start(|_, _| ok(b"{}"));
    let mut o = opts();
    o.tls_verify = None;
    o.retries = 0;
    let c = client(&format!("{}/x:1", reg.host()), &o);
    let e = c.ping().unwrap_err().to_string();
    assert!(e.contains("--tls-verify=false"), "{e}");
}

/// A TLS registry whose certificate is signed by a CA only the certs.d
/// directory knows: trusted with it, refused without.
#[test]
fn extra_ca_certificates_per_registry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let sh = |args: &str| {
        let st = std::process::Command::new("sh").arg("-c").arg(args).current_dir(d).output().expect("sh");
        assert!(st.status.success(), "{args}: {}", String::from_utf8_lossy(&st.stderr));
    };
    sh("openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=berth-test-ca 2>/dev/null");
    sh("openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj /CN=127.0.0.1 2>/dev/null");
    sh("printf 'subjectAltName=IP:127.0.0.1\\n' > ext && openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out srv.crt -days 2 -extfile ext 2>/dev/null");
    let port = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let script = format!(
        "import http.server, ssl\n\
         class H(http.server.BaseHTTPRequestHandler):\n\
         \x20   def do_GET(self):\n\
         \x20       self.send_response(200); self.send_header('Content-Length','2'); self.end_headers(); self.wfile.write(b'{{}}')\n\
         \x20   def log_message(self, *a): pass\n\
         s = http.server.HTTPServer(('127.0.0.1', {port}), H)\n\
         c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); c.load_cert_chain('srv.crt', 'srv.key')\n\
         s.socket = c.wrap_socket(s.socket, server_side=True)\n\
         s.serve_forever()\n"
    );
    std::fs::write(d.join("srv.py"), script).expect("write");
    let mut child = std::process::Command::new("python3").arg("srv.py").current_dir(d).spawn().expect("python3");
    for _ in 0..50 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let host = format!("127.0.0.1:{port}");
    let certs = d.join("certs.d");
    std::fs::create_dir_all(certs.join(&host)).expect("mkdir");
    let mut o =
        ClientOptions { tls_verify: None, retries: 0, certs_dirs: vec![certs.clone()], ..ClientOptions::default() };
    let without =
        client(&format!("{host}/x:1"), &ClientOptions { certs_dirs: vec![d.join("none")], ..o.clone() }).ping();
    std::fs::copy(d.join("ca.crt"), certs.join(&host).join("ca.crt")).expect("copy");
    o.certs_dirs = vec![certs];
    let with_ca = client(&format!("{host}/x:1"), &o).ping();
    let _ = child.kill();
    let _ = child.wait();
    assert!(without.is_err(), "an unknown CA must be refused");
    with_ca.expect("the CA from certs.d is trusted");
}
