//! The pooled client's connector: TCP (hyper-util's `HttpConnector`: DNS, happy eyeballs,
//! `TCP_NODELAY`), then TLS for `https`, all under the request's `connect-timeout`.
//!
//! hyper-util builds one connector per client, but the guest sets a connect timeout per request.
//! The legacy client calls the connector from inside the request future it was asked to poll, so
//! the sender scopes the request's timeout in a task-local ([`CONNECT_TIMEOUT`]) and the connector
//! reads it when a connection is started. Outside such a scope the default applies.

use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::uri::{Scheme, Uri};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::{self, pki_types::ServerName};
use tokio_rustls::TlsConnector;
use tower_service::Service;

tokio::task_local! {
    /// The connect timeout of the request being sent (see the module docs).
    pub(super) static CONNECT_TIMEOUT: Duration;
}

/// Why a connection could not be established. The sender maps these to `wasi:http` error codes.
#[derive(Debug, thiserror::Error)]
pub(super) enum ConnectError {
    #[error("connect timed out")]
    Timeout,
    #[error("tcp connect failed: {0}")]
    Tcp(io::Error),
    #[error("tls handshake failed: {0}")]
    Tls(io::Error),
    #[error("invalid TLS server name")]
    InvalidServerName,
}

#[derive(Clone)]
pub(super) struct Connector {
    tcp: HttpConnector,
    tls: TlsConnector,
    default_timeout: Duration,
}

impl Connector {
    pub(super) fn new(default_timeout: Duration) -> Connector {
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false); // https URIs reach us too; TLS is layered below
        tcp.set_nodelay(true); // small request/response exchanges: don't wait for Nagle
        Connector { tcp, tls: TlsConnector::from(Arc::new(tls_config())), default_timeout }
    }
}

/// Web PKI roots (like wasmtime-wasi-http's default sender), HTTP/1.1 only. The crypto provider
/// is named explicitly so that another crate enabling a second rustls backend cannot make the
/// process-wide default ambiguous.
fn tls_config() -> rustls::ClientConfig {
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.into() };
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

impl Service<Uri> for Connector {
    type Response = TokioIo<Stream>;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<TokioIo<Stream>, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(())) // HttpConnector with the default resolver is always ready
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let timeout = CONNECT_TIMEOUT.try_with(|t| *t).unwrap_or(self.default_timeout);
        let mut tcp = self.tcp.clone();
        let tls = self.tls.clone();
        Box::pin(async move {
            let connect = async {
                let use_tls = uri.scheme() == Some(&Scheme::HTTPS);
                let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_string();
                let stream = tcp.call(uri).await.map_err(|e| ConnectError::Tcp(innermost_io_error(&e)))?.into_inner();
                if !use_tls {
                    return Ok(Stream::Plain(stream));
                }
                let name = ServerName::try_from(host).map_err(|_| ConnectError::InvalidServerName)?;
                let stream = tls.connect(name, stream).await.map_err(ConnectError::Tls)?;
                Ok(Stream::Tls(Box::new(stream)))
            };
            match tokio::time::timeout(timeout, connect).await {
                Ok(result) => result.map(TokioIo::new),
                Err(_) => Err(ConnectError::Timeout),
            }
        })
    }
}

/// hyper-util's connect error is opaque; the `io::Error` inside carries the kind and, for DNS
/// failures, the "failed to lookup address information" text wasmtime-wasi-http maps to a DNS
/// error code.
fn innermost_io_error(err: &(dyn StdError + 'static)) -> io::Error {
    let mut found: Option<&io::Error> = None;
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            found = Some(io);
        }
        cur = e.source();
    }
    match found {
        Some(io) => io::Error::new(io.kind(), io.to_string()),
        None => io::Error::other(err.to_string()),
    }
}

/// A pooled connection: plain TCP or TLS over TCP.
pub(super) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        match self {
            Stream::Plain(s) => s.connected(),
            Stream::Tls(s) => s.get_ref().0.connected(),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
