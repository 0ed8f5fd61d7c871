//! Registry errors: one variant per thing a user can act on.

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("authentication required by {registry}: {detail}; pass --creds USER:PASS or run `berth login {registry}`")]
    Unauthorized { registry: String, detail: String },
    #[error("access to {name} denied by {registry} (HTTP 403): check the credentials' permissions")]
    Denied { registry: String, name: String },
    #[error("repository {name} not found on {registry}: check the name, or log in if it is private")]
    NameUnknown { registry: String, name: String },
    #[error("manifest {reference} not found in {name}: check the tag or digest")]
    ManifestUnknown { name: String, reference: String },
    #[error("blob {digest} not found in {name}: the image is incomplete on the registry")]
    BlobUnknown { name: String, digest: String },
    #[error("{url}: HTTP {status}: {body}")]
    Http { url: String, status: u16, body: String },
    #[error("cannot reach {url}: {detail}")]
    Transport { url: String, detail: String },
    #[error("{url} does not speak TLS: pass --tls-verify=false, or mark the registry insecure in {config}")]
    PlainHttp { url: String, config: String },
    #[error("token service {realm} failed: {detail}")]
    Token { realm: String, detail: String },
    #[error("manifest {reference} from {name} has digest {got}, not {want}: refusing it")]
    ManifestDigest { name: String, reference: String, want: String, got: String },
    #[error("manifest {reference} from {name} is larger than {limit} bytes: refusing it")]
    ManifestTooLarge { name: String, reference: String, limit: u64 },
    #[error("reading {what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("invalid registries config {path}: {detail}")]
    Config { path: String, detail: String },
    #[error("invalid auth file {path}: {detail}")]
    AuthFile { path: String, detail: String },
    #[error("too many redirects fetching {url}")]
    Redirects { url: String },
}
