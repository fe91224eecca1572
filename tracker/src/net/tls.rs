//! TLS for `https://` and `wss://` trackers and for the server's HTTP/WebSocket listener:
//! rustls (ring provider), Mozilla's roots from `webpki-roots`, PEM files for the server.

use std::sync::{Arc, OnceLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;

use super::TrackerError;

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// The PEM text holds no usable certificate, or one does not parse.
    #[error("certificates: {0}")]
    Certificates(String),
    /// The PEM text holds no usable private key.
    #[error("private key: {0}")]
    PrivateKey(String),
    /// rustls refused the certificate or key (e.g. the key does not match).
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client configuration trusting the Mozilla root certificates (`webpki-roots`) plus the
/// PEM certificates in `extra_roots_pem` (for a private CA or tests; may be empty).
pub fn client_config(extra_roots_pem: &[u8]) -> Result<Arc<rustls::ClientConfig>, TlsConfigError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let mut added = 0;
    for c in CertificateDer::pem_slice_iter(extra_roots_pem) {
        let c = c.map_err(|e| TlsConfigError::Certificates(e.to_string()))?;
        roots
            .add(c)
            .map_err(|e| TlsConfigError::Certificates(e.to_string()))?;
        added += 1;
    }
    if added == 0 && !extra_roots_pem.iter().all(u8::is_ascii_whitespace) {
        return Err(TlsConfigError::Certificates(
            "no PEM certificate in the extra roots".into(),
        ));
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The client configuration used when none is given: Mozilla's roots only.
pub(crate) fn default_client_config() -> Result<Arc<rustls::ClientConfig>, TrackerError> {
    static CONFIG: OnceLock<Option<Arc<rustls::ClientConfig>>> = OnceLock::new();
    CONFIG
        .get_or_init(|| client_config(b"").ok())
        .clone()
        .ok_or_else(|| TrackerError::Tls("no usable TLS configuration".into()))
}

/// A server configuration from a PEM certificate chain (leaf first) and a PEM private key
/// (PKCS#8, PKCS#1 or SEC1), for [`TrackerServer::bind_tls`](super::TrackerServer::bind_tls).
pub fn server_config(
    cert_chain_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<rustls::ServerConfig>, TlsConfigError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_chain_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsConfigError::Certificates(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsConfigError::Certificates(
            "no PEM certificate found".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| TlsConfigError::PrivateKey(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// TLS over `tcp` to `host` (a DNS name or an IP address, checked against the certificate).
pub(crate) async fn connect(
    tcp: TcpStream,
    host: &str,
    config: Option<&Arc<rustls::ClientConfig>>,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, TrackerError> {
    let name = ServerName::try_from(host.to_owned()).map_err(|_| TrackerError::BadUrl {
        url: host.to_owned(),
        why: "host is not a valid TLS server name",
    })?;
    let config = match config {
        Some(c) => c.clone(),
        None => default_client_config()?,
    };
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| TrackerError::Tls(e.to_string()))
}
