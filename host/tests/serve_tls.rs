//! `serve` over HTTPS (rustls) with a test certificate, and the refusal of plain HTTP on an
//! address that is not loopback. The fixture is a self-signed P-256 certificate for
//! `localhost`/127.0.0.1/::1, valid until 2126 (made with `openssl req -x509`).

#[path = "serve/support.rs"]
#[allow(dead_code)] // each test file compiles its own copy and uses part of it
mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use edge_secrets_host::serve::{ServeError, ServeOptions, Server, TlsFiles};
use edge_secrets_tests::harness::test_options;
use support::{options, App, DB_PASSWORD, DEV_TOKEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls").join(name)
}

fn tls_files() -> TlsFiles {
    TlsFiles { cert_chain: fixture("cert.pem"), private_key: fixture("key.pem") }
}

/// A client that trusts only the fixture certificate; `GET path` with `Connection: close`.
fn https_get(addr: SocketAddr, path: &str, token: &str) -> std::io::Result<String> {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(fixture("cert.pem")).unwrap()).unwrap();
    let config = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let mut tls = TlsConnector::from(Arc::new(config)).connect(ServerName::try_from("localhost").unwrap(), tcp).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: localhost:{}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n", addr.port());
        tls.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        tls.read_to_end(&mut response).await?;
        Ok(String::from_utf8_lossy(&response).into_owned())
    })
}

#[test]
fn secrets_are_served_over_https_with_the_given_certificate() {
    let app = App::start_serving(ServeOptions { tls: Some(tls_files()), ..options() }, |p| p);
    let addr = app.server.local_addr();
    let response = https_get(addr, "/v1/secrets/dev/app/db", DEV_TOKEN).expect("an HTTPS exchange");
    assert!(response.starts_with("HTTP/1.1 200"), "{}", response.lines().next().unwrap_or(""));
    assert!(response.contains(DB_PASSWORD), "the value");
    let denied = https_get(addr, "/v1/secrets/dev/app/db", "wrong").unwrap();
    assert!(denied.starts_with("HTTP/1.1 403"), "{}", denied.lines().next().unwrap_or(""));

    // Plain HTTP to the TLS port gets no answer from the app.
    let plain = support::HttpClient::new(addr).try_request_within(std::time::Duration::from_secs(10), "GET", "/healthz", vec![]);
    assert!(plain.is_err(), "plain HTTP was answered on the HTTPS port");
    assert_eq!(app.backend.request_count(), 1);
}

#[test]
fn plain_http_off_loopback_and_unusable_tls_files_are_refused_at_start() {
    let open = ServeOptions { listen: SocketAddr::from(([0, 0, 0, 0], 0)), ..options() };
    match Server::start(std::collections::BTreeMap::<String, String>::new(), test_options(), open) {
        Err(e @ ServeError::Plaintext { .. }) => {
            let message = e.to_string();
            assert!(message.contains("0.0.0.0:0") && message.contains("unencrypted"), "{message}");
        }
        Err(e) => panic!("another error: {e}"),
        Ok(_) => panic!("plain HTTP on 0.0.0.0 started"),
    }
    // The key file given as the certificate (and vice versa): refused at start, naming the file.
    let swapped = TlsFiles { cert_chain: fixture("key.pem"), private_key: fixture("cert.pem") };
    match Server::start(std::collections::BTreeMap::<String, String>::new(), test_options(), ServeOptions { tls: Some(swapped), ..options() }) {
        Err(ServeError::Setup(message)) => {
            assert!(message.contains("key.pem") && message.contains("no CERTIFICATE"), "{message}");
            assert!(!message.contains("BEGIN"), "no file contents in errors: {message}");
        }
        Err(e) => panic!("another error: {e}"),
        Ok(_) => panic!("started with swapped TLS files"),
    }
}
