//! The HTTP side of the registry API: endpoints (mirrors, then the origin),
//! scheme discovery, auth, retries, redirects, and blob streams that resume
//! with a `Range` request when a connection drops mid-way.

use super::auth::{self, Challenge, Token};
use super::authfile::{self, Credentials};
use super::config::{RegistriesConfig, CERTS_DIRS};
use super::{tls, RegistryError};
use crate::digest::Digest;
use crate::manifest::ACCEPT;
use crate::reference::Reference;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Manifests larger than this are refused: real ones are a few KiB.
pub const MANIFEST_LIMIT: u64 = 4 << 20;
const MAX_REDIRECTS: usize = 5;

/// How to reach registries.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// `Some(false)`: allow plain http and unverified TLS for this pull.
    pub tls_verify: Option<bool>,
    pub creds: Option<Credentials>,
    pub authfile: Option<PathBuf>,
    pub config: RegistriesConfig,
    pub certs_dirs: Vec<PathBuf>,
    /// Attempts after the first on connection errors, 5xx and 429.
    pub retries: u32,
    /// Token scope actions: `pull`, or `pull,push`.
    pub actions: String,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            tls_verify: None,
            creds: None,
            authfile: None,
            config: RegistriesConfig::default(),
            certs_dirs: CERTS_DIRS.iter().map(PathBuf::from).collect(),
            retries: 4,
            actions: "pull".into(),
        }
    }
}

#[derive(Debug)]
struct Endpoint {
    host: String,
    repository: String,
    insecure: bool,
    mirror: bool,
    /// What this endpoint gets when it asks: the origin's credentials for
    /// the origin, a mirror's own auth-file entry for a mirror.
    creds: Option<Credentials>,
    state: Mutex<EndpointState>,
}

#[derive(Debug, Default)]
struct EndpointState {
    scheme: Option<&'static str>,
    challenge: Option<Challenge>,
    token: Option<Token>,
}

struct Inner {
    name: String,
    endpoints: Vec<Endpoint>,
    active: Mutex<usize>,
    secure_agents: Mutex<Vec<(String, ureq::Agent)>>,
    certs_dirs: Vec<PathBuf>,
    insecure_agent: ureq::Agent,
    token_agent: ureq::Agent,
    retries: u32,
    actions: String,
    config_path: String,
}

/// A client for one repository on one registry (and its mirrors).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

/// A manifest body as served, verified against the digest it was asked by
/// (or the `Docker-Content-Digest` the registry sent).
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub body: Vec<u8>,
    pub content_type: Option<String>,
    pub digest: Digest,
}

/// A blob being streamed.
pub struct Blob {
    pub reader: Box<dyn Read + Send>,
    pub size: Option<u64>,
}

fn agent_builder() -> ureq::AgentBuilder {
    ureq::AgentBuilder::new()
        .redirects(0)
        .timeout_connect(Duration::from_secs(15))
        .timeout_read(Duration::from_secs(60))
        .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
}

fn is_retryable_status(code: u16) -> bool {
    code == 429 || (500..600).contains(&code)
}

fn backoff(attempt: u32, retry_after: Option<&str>) -> Duration {
    if let Some(secs) = retry_after.and_then(|v| v.trim().parse::<u64>().ok()) {
        return Duration::from_secs(secs.min(30));
    }
    Duration::from_millis((200u64 << attempt.min(5)).min(5000))
}

fn error_code(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v.get("errors")?.get(0)?.get("code")?.as_str().map(str::to_string)
}

fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    rest.split('/').next().unwrap_or(rest)
}

impl Client {
    /// A client for `reference`'s repository; nothing is sent yet.
    pub fn new(reference: &Reference, opts: &ClientOptions) -> Result<Client, RegistryError> {
        let entry = opts.config.entry_for(&reference.registry, &reference.repository);
        let force_insecure = opts.tls_verify == Some(false);
        let mut endpoints = Vec::new();
        if let Some(e) = entry {
            for m in &e.mirror {
                let (host, prefix) = match m.location.split_once('/') {
                    Some((h, p)) => (h.to_string(), format!("{}/", p.trim_matches('/'))),
                    None => (m.location.clone(), String::new()),
                };
                let repository = format!("{prefix}{}", reference.repository);
                let creds = authfile::lookup(opts.authfile.as_deref(), &host, &repository)?;
                endpoints.push(Endpoint {
                    host,
                    repository,
                    insecure: m.insecure || force_insecure,
                    mirror: true,
                    creds,
                    state: Mutex::default(),
                });
            }
        }
        let creds = match &opts.creds {
            Some(c) => Some(c.clone()),
            None => authfile::lookup(opts.authfile.as_deref(), &reference.registry, &reference.repository)?,
        };
        endpoints.push(Endpoint {
            host: reference.api_host().to_string(),
            repository: reference.repository.clone(),
            insecure: force_insecure || (opts.tls_verify.is_none() && entry.is_some_and(|e| e.insecure)),
            mirror: false,
            creds,
            state: Mutex::default(),
        });
        let insecure_agent = agent_builder().tls_config(tls::insecure()).build();
        Ok(Client {
            inner: Arc::new(Inner {
                name: reference.name(),
                endpoints,
                active: Mutex::new(0),
                secure_agents: Mutex::new(Vec::new()),
                certs_dirs: opts.certs_dirs.clone(),
                insecure_agent,
                token_agent: agent_builder().redirects(3).build(),
                retries: opts.retries,
                actions: opts.actions.clone(),
                config_path: opts.config.path.display().to_string(),
            }),
        })
    }

    /// `registry/repository`.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Checks that the registry answers `/v2/` (and learns how it wants to
    /// be authenticated), trying mirrors before the origin.
    pub fn ping(&self) -> Result<(), RegistryError> {
        let mut last = None;
        for i in 0..self.inner.endpoints.len() {
            match self.inner.ping(i) {
                Ok(()) => {
                    *lock(&self.inner.active) = i;
                    return Ok(());
                }
                Err(e) => {
                    tracing::debug!(endpoint = %self.inner.endpoints[i].host, error = %e, "ping failed");
                    last = Some(e);
                }
            }
        }
        Err(last
            .unwrap_or_else(|| RegistryError::Transport { url: self.inner.name.clone(), detail: "no endpoint".into() }))
    }

    /// Checks the credentials in use against the registry: a `login`.
    pub fn check_login(&self) -> Result<(), RegistryError> {
        let i = self.inner.endpoints.len() - 1;
        self.inner.ping(i)?;
        let challenge = lock(&self.inner.endpoints[i].state).challenge.clone();
        match challenge {
            None => Ok(()),
            Some(_) => self.inner.request(i, "GET", "/v2/", None, None).map(|_| ()),
        }
    }

    /// Fetches a manifest by tag or digest and verifies its digest.
    pub fn manifest(&self, reference: &str) -> Result<FetchedManifest, RegistryError> {
        let start = *lock(&self.inner.active);
        let mut last = None;
        for i in start..self.inner.endpoints.len() {
            match self.inner.manifest_from(i, reference) {
                Ok(m) => {
                    *lock(&self.inner.active) = i;
                    return Ok(m);
                }
                Err(e) if self.inner.endpoints[i].mirror => {
                    tracing::debug!(mirror = %self.inner.endpoints[i].host, error = %e, "mirror failed; trying the next");
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last
            .unwrap_or_else(|| RegistryError::Transport { url: self.inner.name.clone(), detail: "no endpoint".into() }))
    }

    /// Opens a blob stream. The stream resumes with a `Range` request if
    /// the connection drops; verifying the digest is the caller's job (it
    /// streams the bytes through a hasher).
    pub fn blob(&self, digest: &Digest) -> Result<Blob, RegistryError> {
        let start = *lock(&self.inner.active);
        let mut last = None;
        for i in start..self.inner.endpoints.len() {
            let path = format!("/v2/{}/blobs/{digest}", self.inner.endpoints[i].repository);
            match self.inner.request(i, "GET", &path, None, None) {
                Ok(resp) => {
                    let size = resp.header("content-length").and_then(|v| v.parse().ok());
                    let reader = ResumingReader {
                        inner: self.inner.clone(),
                        endpoint: i,
                        path,
                        digest: digest.to_string(),
                        offset: 0,
                        current: Some(resp.into_reader()),
                        failures: 0,
                    };
                    return Ok(Blob { reader: Box::new(reader), size });
                }
                Err(RegistryError::Http { status: 404, .. }) | Err(RegistryError::BlobUnknown { .. })
                    if !self.inner.endpoints[i].mirror =>
                {
                    return Err(RegistryError::BlobUnknown {
                        name: self.inner.name.clone(),
                        digest: digest.to_string(),
                    })
                }
                Err(e) if self.inner.endpoints[i].mirror => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| RegistryError::BlobUnknown {
            name: self.inner.name.clone(),
            digest: digest.to_string(),
        }))
    }
}

/// Opens a blob's bytes again for each upload attempt.
pub type BodyFn<'a> = &'a (dyn Fn() -> io::Result<Box<dyn Read + Send>> + Sync);

impl Client {
    fn origin(&self) -> usize {
        self.inner.endpoints.len() - 1
    }

    fn origin_url(&self, path: &str) -> Result<String, RegistryError> {
        let i = self.origin();
        self.inner.ping(i)?;
        let ep = &self.inner.endpoints[i];
        let scheme = lock(&ep.state).scheme.unwrap_or("https");
        Ok(format!("{scheme}://{}{path}", ep.host))
    }

    /// Whether the registry already has `digest` in this repository.
    pub fn blob_exists(&self, digest: &Digest) -> Result<bool, RegistryError> {
        let url = self.origin_url(&format!("/v2/{}/blobs/{digest}", self.inner.endpoints[self.origin()].repository))?;
        match self.inner.send_authed(self.origin(), "HEAD", &url, &[], None) {
            Ok(_) => Ok(true),
            Err(RegistryError::Http { status: 404, .. }) | Err(RegistryError::BlobUnknown { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Asks the registry to mount `digest` from repository `from` (same
    /// registry) instead of uploading it; `false` when it would rather
    /// have the bytes.
    pub fn mount_blob(&self, digest: &Digest, from: &str) -> Result<bool, RegistryError> {
        let i = self.origin();
        let repo = self.inner.endpoints[i].repository.clone();
        let url = self.origin_url(&format!("/v2/{repo}/blobs/uploads/?mount={digest}&from={from}"))?;
        let resp = self.inner.send_authed(i, "POST", &url, &[("Content-Length", "0".into())], None)?;
        Ok(resp.status() == 201)
    }

    /// Uploads a blob in one PUT (POST for a session, then PUT ?digest=).
    pub fn upload_blob(&self, digest: &Digest, size: u64, body: BodyFn<'_>) -> Result<(), RegistryError> {
        let i = self.origin();
        let repo = self.inner.endpoints[i].repository.clone();
        let url = self.origin_url(&format!("/v2/{repo}/blobs/uploads/"))?;
        let resp = self.inner.send_authed(i, "POST", &url, &[("Content-Length", "0".into())], None)?;
        let loc = resp.header("location").ok_or_else(|| RegistryError::Http {
            url: url.clone(),
            status: resp.status(),
            body: "the upload session has no Location".into(),
        })?;
        let loc = if loc.contains("://") {
            loc.to_string()
        } else {
            let base = url.split("/v2/").next().unwrap_or(&url);
            format!("{base}{loc}")
        };
        let sep = if loc.contains('?') { '&' } else { '?' };
        let put = format!("{loc}{sep}digest={digest}");
        let headers = [("Content-Type", "application/octet-stream".to_string()), ("Content-Length", size.to_string())];
        self.inner.send_authed(i, "PUT", &put, &headers, Some(body))?;
        Ok(())
    }

    /// Uploads a manifest under `reference` (a tag or its digest).
    pub fn put_manifest(&self, reference: &str, media_type: &str, body: &[u8]) -> Result<Digest, RegistryError> {
        let i = self.origin();
        let url = self.origin_url(&format!("/v2/{}/manifests/{reference}", self.inner.endpoints[i].repository))?;
        let data = body.to_vec();
        let open = move || -> io::Result<Box<dyn Read + Send>> { Ok(Box::new(io::Cursor::new(data.clone()))) };
        let headers = [("Content-Type", media_type.to_string()), ("Content-Length", body.len().to_string())];
        self.inner.send_authed(i, "PUT", &url, &headers, Some(&open))?;
        Ok(Digest::of(body))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inner {
    fn agent(&self, i: usize) -> ureq::Agent {
        let ep = &self.endpoints[i];
        if ep.insecure {
            return self.insecure_agent.clone();
        }
        let mut agents = lock(&self.secure_agents);
        if let Some((_, a)) = agents.iter().find(|(h, _)| *h == ep.host) {
            return a.clone();
        }
        let a = agent_builder().tls_config(tls::verifying(&ep.host, &self.certs_dirs)).build();
        agents.push((ep.host.clone(), a.clone()));
        a
    }

    fn ping(&self, i: usize) -> Result<(), RegistryError> {
        let ep = &self.endpoints[i];
        if lock(&ep.state).scheme.is_some() {
            return Ok(());
        }
        let schemes: &[&'static str] = if ep.insecure { &["https", "http"] } else { &["https"] };
        let mut last = None;
        for &scheme in schemes {
            let url = format!("{scheme}://{}/v2/", ep.host);
            match self.send_with_retries(i, "GET", &url, None, None) {
                Ok(_) => {
                    lock(&ep.state).scheme = Some(scheme);
                    return Ok(());
                }
                Err(ureq::Error::Status(401, resp)) => {
                    let challenge = resp.header("www-authenticate").and_then(auth::parse_challenge);
                    let mut st = lock(&ep.state);
                    st.scheme = Some(scheme);
                    st.challenge = challenge.or(Some(Challenge::Basic));
                    return Ok(());
                }
                Err(ureq::Error::Status(code, resp)) => {
                    // Some registries answer /v2/ with 404 yet serve the API.
                    if code == 404 {
                        lock(&ep.state).scheme = Some(scheme);
                        return Ok(());
                    }
                    last = Some(self.status_error(&url, code, resp));
                }
                Err(ureq::Error::Transport(t)) => {
                    let detail = t.to_string();
                    // Does it answer plain http? A ping carries no credentials,
                    // so asking is harmless and gives the user the real fix.
                    let plain = !ep.insecure
                        && scheme == "https"
                        && match self.insecure_agent.get(&format!("http://{}/v2/", ep.host)).call() {
                            Ok(_) | Err(ureq::Error::Status(..)) => true,
                            Err(ureq::Error::Transport(_)) => false,
                        };
                    last = Some(if plain {
                        RegistryError::PlainHttp { url, config: self.config_path.clone() }
                    } else {
                        RegistryError::Transport { url, detail }
                    });
                }
            }
        }
        Err(last.unwrap_or_else(|| RegistryError::Transport { url: ep.host.clone(), detail: "no scheme".into() }))
    }

    fn manifest_from(&self, i: usize, reference: &str) -> Result<FetchedManifest, RegistryError> {
        self.ping(i)?;
        let ep = &self.endpoints[i];
        let path = format!("/v2/{}/manifests/{reference}", ep.repository);
        let resp = self.request(i, "GET", &path, Some(ACCEPT), None).map_err(|e| match e {
            RegistryError::Http { status: 404, .. } => {
                RegistryError::ManifestUnknown { name: self.name.clone(), reference: reference.to_string() }
            }
            e => e,
        })?;
        let content_type = resp.header("content-type").map(str::to_string);
        let header_digest = resp.header("docker-content-digest").map(str::to_string);
        let mut body = Vec::new();
        resp.into_reader()
            .take(MANIFEST_LIMIT + 1)
            .read_to_end(&mut body)
            .map_err(|source| RegistryError::Io { what: format!("manifest {reference} from {}", self.name), source })?;
        if body.len() as u64 > MANIFEST_LIMIT {
            return Err(RegistryError::ManifestTooLarge {
                name: self.name.clone(),
                reference: reference.into(),
                limit: MANIFEST_LIMIT,
            });
        }
        let digest = Digest::of(&body);
        let want = if reference.contains(':') { Some(reference.to_string()) } else { header_digest };
        if let Some(want) = want {
            if want != digest.to_string() {
                return Err(RegistryError::ManifestDigest {
                    name: self.name.clone(),
                    reference: reference.into(),
                    want,
                    got: digest.to_string(),
                });
            }
        }
        Ok(FetchedManifest { body, content_type, digest })
    }

    /// The Authorization header to send to endpoint `i`, fetching a token
    /// when the registry wants Bearer and the cached one ran out.
    fn authorization(&self, i: usize, force_new: bool) -> Result<Option<String>, RegistryError> {
        let ep = &self.endpoints[i];
        let mut st = lock(&ep.state);
        match st.challenge.clone() {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(ep.creds.as_ref().map(Credentials::basic_header)),
            Some(Challenge::Bearer { realm, service, scope }) => {
                if let Some(t) = &st.token {
                    if t.fresh() && !force_new {
                        return Ok(Some(format!("Bearer {}", t.value)));
                    }
                }
                let scope = scope.unwrap_or_else(|| format!("repository:{}:{}", ep.repository, self.actions));
                let token = self.fetch_token(i, &realm, service.as_deref(), &scope)?;
                let header = format!("Bearer {}", token.value);
                st.token = Some(token);
                Ok(Some(header))
            }
        }
    }

    /// Fetches a token from endpoint `i`'s realm, with its credentials.
    /// The realm may be on another host (Docker Hub's is), but it gets
    /// them only over https, or plain http when the registry itself is
    /// marked insecure; the token agent never follows a redirect with them.
    fn fetch_token(&self, i: usize, realm: &str, service: Option<&str>, scope: &str) -> Result<Token, RegistryError> {
        let ep = &self.endpoints[i];
        if ep.creds.is_some() {
            realm_allowed(realm, ep.insecure).map_err(|detail| RegistryError::Token { realm: realm.into(), detail })?;
        }
        let mut req = self.token_agent.get(realm).query("scope", scope);
        if let Some(s) = service {
            req = req.query("service", s);
        }
        if let Some(c) = &ep.creds {
            req = req.set("Authorization", &c.basic_header());
        }
        match req.call() {
            Ok(resp) => {
                let mut body = Vec::new();
                resp.into_reader()
                    .take(1 << 20)
                    .read_to_end(&mut body)
                    .map_err(|e| RegistryError::Token { realm: realm.into(), detail: e.to_string() })?;
                auth::parse_token(&body).map_err(|detail| RegistryError::Token { realm: realm.into(), detail })
            }
            Err(ureq::Error::Status(401 | 403, _)) => Err(RegistryError::Unauthorized {
                registry: ep.host.clone(),
                detail: if ep.creds.is_some() {
                    "the credentials were refused".into()
                } else {
                    "no credentials given".into()
                },
            }),
            Err(e) => Err(RegistryError::Token { realm: realm.into(), detail: e.to_string() }),
        }
    }

    /// Sends one API request with auth, retries and redirects.
    fn request(
        &self,
        i: usize,
        method: &str,
        path: &str,
        accept: Option<&str>,
        range_from: Option<u64>,
    ) -> Result<ureq::Response, RegistryError> {
        self.ping(i)?;
        let ep = &self.endpoints[i];
        let scheme = lock(&ep.state).scheme.unwrap_or("https");
        let url = format!("{scheme}://{}{path}", ep.host);
        let mut reauthed = false;
        loop {
            let auth = self.authorization(i, false)?;
            let mut headers: Vec<(&str, String)> = Vec::new();
            if let Some(a) = accept {
                headers.push(("Accept", a.to_string()));
            }
            if let Some(r) = range_from {
                headers.push(("Range", format!("bytes={r}-")));
            }
            match self.send_with_retries(i, method, &url, auth.as_deref(), Some(&headers)) {
                Ok(resp) => return Ok(resp),
                Err(ureq::Error::Status(401, resp)) if !reauthed => {
                    reauthed = true;
                    let challenge = resp.header("www-authenticate").and_then(auth::parse_challenge);
                    let mut st = lock(&ep.state);
                    let had = st.challenge.is_some();
                    st.challenge = challenge.or(Some(Challenge::Basic));
                    st.token = None;
                    drop(st);
                    if had && ep.creds.is_none() && !matches!(lock(&ep.state).challenge, Some(Challenge::Bearer { .. }))
                    {
                        return Err(self.unauthorized(i));
                    }
                }
                Err(ureq::Error::Status(401, _)) => return Err(self.unauthorized(i)),
                Err(ureq::Error::Status(code, resp)) => return Err(self.status_error(&url, code, resp)),
                Err(ureq::Error::Transport(t)) => return Err(RegistryError::Transport { url, detail: t.to_string() }),
            }
        }
    }

    /// A request with a body (or none), with auth and retries; for
    /// uploads, which never follow redirects.
    fn send_authed(
        &self,
        i: usize,
        method: &str,
        url: &str,
        headers: &[(&str, String)],
        body: Option<BodyFn<'_>>,
    ) -> Result<ureq::Response, RegistryError> {
        let ep = &self.endpoints[i];
        let mut reauthed = false;
        let mut attempt = 0;
        loop {
            let auth = self.authorization(i, false)?;
            let mut req = self.agent(i).request(method, url);
            for (k, v) in headers {
                req = req.set(k, v);
            }
            // An upload Location on another host (or downgraded to http)
            // gets no credentials.
            if let Some(a) = auth.as_ref().filter(|_| credentials_go_to(url, ep)) {
                req = req.set("Authorization", a);
            }
            let r = match body {
                Some(open) => {
                    let rd = open().map_err(|source| RegistryError::Io {
                        what: format!("reading the upload for {url}"),
                        source,
                    })?;
                    req.send(rd)
                }
                None => req.call(),
            };
            match r {
                Ok(resp) => return Ok(resp),
                Err(ureq::Error::Status(401, resp)) if !reauthed => {
                    reauthed = true;
                    let challenge = resp.header("www-authenticate").and_then(auth::parse_challenge);
                    let mut st = lock(&ep.state);
                    st.challenge = challenge.or(Some(Challenge::Basic));
                    st.token = None;
                }
                Err(ureq::Error::Status(401, _)) => return Err(self.unauthorized(i)),
                Err(ureq::Error::Status(code, resp)) if is_retryable_status(code) && attempt < self.retries => {
                    std::thread::sleep(backoff(attempt, resp.header("retry-after")));
                    attempt += 1;
                }
                Err(ureq::Error::Status(code, resp)) => return Err(self.status_error(url, code, resp)),
                Err(ureq::Error::Transport(t)) if is_retryable_transport(&t) && attempt < self.retries => {
                    std::thread::sleep(backoff(attempt, None));
                    attempt += 1;
                }
                Err(ureq::Error::Transport(t)) => {
                    return Err(RegistryError::Transport { url: url.into(), detail: t.to_string() })
                }
            }
        }
    }

    fn unauthorized(&self, i: usize) -> RegistryError {
        RegistryError::Unauthorized {
            registry: self.endpoints[i].host.clone(),
            detail: if self.endpoints[i].creds.is_some() {
                "the credentials were refused".into()
            } else {
                "no credentials given".into()
            },
        }
    }

    fn status_error(&self, url: &str, code: u16, resp: ureq::Response) -> RegistryError {
        let mut body = String::new();
        let _ = resp.into_reader().take(64 << 10).read_to_string(&mut body);
        let registry = host_of(url).to_string();
        match (code, error_code(&body).as_deref()) {
            (404, Some("NAME_UNKNOWN")) => RegistryError::NameUnknown { registry, name: self.name.clone() },
            (404, Some("BLOB_UNKNOWN")) => RegistryError::BlobUnknown {
                name: self.name.clone(),
                digest: url.rsplit('/').next().unwrap_or_default().into(),
            },
            (403, _) => RegistryError::Denied { registry, name: self.name.clone() },
            _ => {
                let body = body.trim();
                let body = if body.len() > 200 {
                    format!("{}…", &body[..body.floor_char_boundary(200)])
                } else {
                    body.to_string()
                };
                RegistryError::Http { url: url.to_string(), status: code, body }
            }
        }
    }

    /// One request, retried with backoff on connection errors, 5xx and
    /// 429, following redirects by hand so credentials never go to another
    /// host.
    fn send_with_retries(
        &self,
        i: usize,
        method: &str,
        url: &str,
        auth: Option<&str>,
        headers: Option<&[(&str, String)]>,
    ) -> Result<ureq::Response, ureq::Error> {
        let agent = self.agent(i);
        let mut attempt = 0;
        loop {
            let r = send_following(&agent, &self.endpoints[i], method, url, auth, headers.unwrap_or(&[]));
            let retry_after = match &r {
                Err(ureq::Error::Status(code, resp)) if is_retryable_status(*code) => {
                    Some(resp.header("retry-after").map(str::to_string))
                }
                Err(ureq::Error::Transport(t)) if is_retryable_transport(t) => Some(None),
                _ => None,
            };
            match retry_after {
                Some(ra) if attempt < self.retries => {
                    let wait = backoff(attempt, ra.as_deref());
                    tracing::debug!(url, attempt, ?wait, "retrying");
                    std::thread::sleep(wait);
                    attempt += 1;
                }
                _ => return r,
            }
        }
    }
}

/// Whether a token realm may receive credentials: https always, plain
/// http only for a registry marked insecure.
fn realm_allowed(realm: &str, insecure: bool) -> Result<(), String> {
    match realm.split_once("://").map(|(s, _)| s.to_ascii_lowercase()) {
        Some(s) if s == "https" => Ok(()),
        Some(s) if s == "http" && insecure => Ok(()),
        Some(s) if s == "http" => Err("the registry's token realm is plain http, which would expose the credentials: \
             berth sends them to a realm only over https (mark the registry insecure in registries.toml to allow it)"
            .into()),
        _ => Err("the token realm is not an http(s) URL".into()),
    }
}

/// Whether a request to `url` on behalf of `ep` may carry its
/// credentials: the endpoint's own host, and https unless the endpoint is
/// marked insecure.
fn credentials_go_to(url: &str, ep: &Endpoint) -> bool {
    let https = url.get(..8).is_some_and(|s| s.eq_ignore_ascii_case("https://"));
    let canon = |h: &str| {
        let h = h.to_ascii_lowercase();
        match h.strip_suffix(if https { ":443" } else { ":80" }) {
            Some(bare) => bare.to_string(),
            None => h,
        }
    };
    canon(host_of(url)) == canon(&ep.host) && (https || ep.insecure)
}

fn is_retryable_transport(t: &ureq::Transport) -> bool {
    use ureq::ErrorKind::*;
    matches!(t.kind(), ConnectionFailed | Io | Dns)
        && !t.to_string().contains("corrupt message")
        && !t.to_string().contains("InvalidContentType")
}

fn send_following(
    agent: &ureq::Agent,
    ep: &Endpoint,
    method: &str,
    url: &str,
    auth: Option<&str>,
    headers: &[(&str, String)],
) -> Result<ureq::Response, ureq::Error> {
    let mut url = url.to_string();
    for _ in 0..=MAX_REDIRECTS {
        let mut req = agent.request(method, &url);
        for (k, v) in headers {
            req = req.set(k, v);
        }
        // A redirect to another host (a CDN), or to plain http, must not
        // receive our credentials: the rule uploads follow too.
        if let Some(a) = auth.filter(|_| credentials_go_to(&url, ep)) {
            req = req.set("Authorization", a);
        }
        let resp = req.call()?;
        if !(300..400).contains(&resp.status()) {
            return Ok(resp);
        }
        let Some(loc) = resp.header("location") else {
            return Ok(resp);
        };
        url = if loc.contains("://") {
            loc.to_string()
        } else if loc.starts_with('/') {
            let scheme = url.split("://").next().unwrap_or("https");
            format!("{scheme}://{}{loc}", host_of(&url))
        } else {
            let base = url.rsplit_once('/').map(|(b, _)| b).unwrap_or(&url);
            format!("{base}/{loc}")
        };
    }
    Err(io::Error::other(format!("too many redirects at {url}")).into())
}

/// A blob stream that reopens itself at the current offset with `Range`
/// when the connection fails mid-way.
struct ResumingReader {
    inner: Arc<Inner>,
    endpoint: usize,
    path: String,
    digest: String,
    offset: u64,
    current: Option<Box<dyn Read + Send + Sync>>,
    failures: u32,
}

impl Read for ResumingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(r) = self.current.as_mut() else {
                return Err(io::Error::other(format!("blob {} stream is closed", self.digest)));
            };
            match r.read(buf) {
                Ok(n) => {
                    self.offset += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if self.failures < self.inner.retries => {
                    self.failures += 1;
                    tracing::debug!(digest = %self.digest, offset = self.offset, error = %e, "blob stream broke; resuming");
                    std::thread::sleep(backoff(self.failures, None));
                    let resp = self
                        .inner
                        .request(self.endpoint, "GET", &self.path, None, Some(self.offset))
                        .map_err(|e| io::Error::other(e.to_string()))?;
                    let full = resp.status() != 206;
                    let mut reader = resp.into_reader();
                    if full {
                        // The server ignored Range and starts from 0: skip what we have.
                        let skipped = io::copy(&mut (&mut reader).take(self.offset), &mut io::sink())?;
                        if skipped != self.offset {
                            return Err(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                format!("blob {} shrank on retry", self.digest),
                            ));
                        }
                    }
                    self.current = Some(reader);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(host: &str, insecure: bool) -> Endpoint {
        Endpoint {
            host: host.into(),
            repository: "x".into(),
            insecure,
            mirror: false,
            creds: None,
            state: Mutex::default(),
        }
    }

    #[test]
    fn token_realms_get_credentials_only_over_https_unless_insecure() {
        assert!(realm_allowed("https://auth.docker.io/token", false).is_ok());
        assert!(realm_allowed("HTTPS://auth.example/t", false).is_ok());
        assert!(realm_allowed("http://evil.example/token", false).unwrap_err().contains("plain http"));
        assert!(realm_allowed("http://127.0.0.1:5000/token", true).is_ok());
        assert!(realm_allowed("file:///etc/passwd", true).is_err());
        assert!(realm_allowed("/token", false).is_err());
    }

    #[test]
    fn upload_locations_elsewhere_or_downgraded_get_no_credentials() {
        let ep = endpoint("reg.example:5000", false);
        assert!(credentials_go_to("https://reg.example:5000/v2/x/blobs/uploads/u?digest=d", &ep));
        assert!(!credentials_go_to("https://storage.example/upload/u", &ep));
        assert!(!credentials_go_to("https://reg.example:5001/upload", &ep));
        assert!(!credentials_go_to("http://reg.example:5000/v2/x/blobs/uploads/u", &ep));
        assert!(credentials_go_to("https://REG.example:5000/upload", &ep));
        assert!(credentials_go_to("https://quay.io:443/upload", &endpoint("quay.io", false)));
        let plain = endpoint("127.0.0.1:5000", true);
        assert!(credentials_go_to("http://127.0.0.1:5000/v2/x/blobs/uploads/u", &plain));
        assert!(!credentials_go_to("http://127.0.0.2:5000/v2/x/blobs/uploads/u", &plain));
    }
}
