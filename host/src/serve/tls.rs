//! HTTPS for listeners that are not loopback: rustls (ring, like the outbound client) with the
//! operator's PEM certificate chain and key, HTTP/1.1 only.

use std::sync::Arc;

use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

use super::{ServeError, TlsFiles};

/// Reads both files and builds the acceptor; every failure names the file, never its contents.
pub(crate) fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, ServeError> {
    let setup = |what: &str, path: &std::path::Path, why: String| ServeError::Setup(format!("TLS {what} {}: {why}", path.display()));
    let cert_pem = std::fs::read(&files.cert_chain).map_err(|e| setup("certificate chain", &files.cert_chain, e.to_string()))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| setup("certificate chain", &files.cert_chain, format!("not PEM: {e}")))?;
    if chain.is_empty() {
        return Err(setup("certificate chain", &files.cert_chain, "no CERTIFICATE section".into()));
    }
    let key_pem = std::fs::read(&files.private_key).map_err(|e| setup("private key", &files.private_key, e.to_string()))?;
    // The parser's own messages can quote a line of the file: say only what was expected.
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        let why = match e {
            pem::Error::NoItemsFound => "no PRIVATE KEY section (PKCS#8, PKCS#1 or SEC1)",
            _ => "not a readable PEM private key",
        };
        setup("private key", &files.private_key, why.into())
    })?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| ServeError::Setup(format!("TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        // e.g. a key that does not match the certificate; rustls' message names no key bytes.
        .map_err(|e| setup("certificate and key", &files.cert_chain, e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
