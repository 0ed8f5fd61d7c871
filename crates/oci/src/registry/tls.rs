//! TLS settings per registry: the system's roots plus extra CA certificates
//! from `certs.d/HOST[:PORT]/*.crt` (the layout podman and docker use), or no
//! verification at all when the user asked for `--tls-verify=false`.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::Path;
use std::sync::{Arc, OnceLock};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn system_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        roots
    })
}

/// A verifying config with the system roots and every `*.crt` under
/// `certs_dirs/<host>/`.
pub fn verifying(host: &str, certs_dirs: &[std::path::PathBuf]) -> Arc<ClientConfig> {
    let mut roots = system_roots().clone();
    for dir in certs_dirs {
        add_dir(&mut roots, &dir.join(host));
    }
    let cfg = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth());
    match cfg {
        Ok(c) => Arc::new(c),
        Err(_) => {
            Arc::new(ClientConfig::builder().with_root_certificates(RootCertStore::empty()).with_no_client_auth())
        }
    }
}

fn add_dir(roots: &mut RootCertStore, dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.extension().and_then(|x| x.to_str()) != Some("crt") {
            continue;
        }
        let Ok(data) = std::fs::read(&p) else {
            continue;
        };
        for cert in rustls_pemfile::certs(&mut &data[..]).flatten() {
            if roots.add(cert).is_err() {
                tracing::warn!(path = %p.display(), "ignoring unusable CA certificate");
            }
        }
    }
}

/// A config that accepts any certificate: `--tls-verify=false`.
pub fn insecure() -> Arc<ClientConfig> {
    let p = provider();
    let verifier = Arc::new(NoVerify(p.clone()));
    let cfg = ClientConfig::builder_with_provider(p)
        .with_safe_default_protocol_versions()
        .map(|b| b.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth());
    match cfg {
        Ok(c) => Arc::new(c),
        Err(_) => verifying("", &[]),
    }
}

#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The user turned verification off for this registry on purpose.
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
