//! TLS (wss://) with rustls: load a certificate chain and key from PEM files.

use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
pub use tokio_rustls::rustls;

/// A rustls server configuration from a PEM certificate chain and a PEM
/// private key (PKCS#8, PKCS#1 or SEC1), speaking HTTP/1.1 over ALPN.
///
/// ```no_run
/// # async fn run(router: lariat::Router) -> std::io::Result<()> {
/// let tls = lariat::tls::config_from_pem("cert.pem", "key.pem")?;
/// lariat::Server::bind("127.0.0.1:8443").await?.tls(tls).serve(router).await
/// # }
/// ```
pub fn config_from_pem(
    cert: impl AsRef<Path>,
    key: impl AsRef<Path>,
) -> io::Result<Arc<rustls::ServerConfig>> {
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {e}"))
    };
    let certs = CertificateDer::pem_file_iter(cert.as_ref())
        .map_err(|e| bad("certificate file", &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("certificate file", &e))?;
    if certs.is_empty() {
        return Err(bad("certificate file", &"no certificate found"));
    }
    let key = PrivateKeyDer::from_pem_file(key.as_ref()).map_err(|e| bad("key file", &e))?;
    config_from_der(certs, key)
}

/// A rustls server configuration from DER certificates and key.
pub fn config_from_der(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> io::Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
