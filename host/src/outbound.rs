//! Outbound HTTP for the guest: a keep-alive connection pool behind
//! [`WasiHttpHooks::send_request`].
//!
//! wasmtime-wasi-http's default sender opens a connection per request: on loopback that is about
//! twice the cost of a pooled client, and a few tens of thousands of requests fill the ephemeral
//! port range with TIME_WAIT sockets. One hyper-util legacy client (HTTP/1.1, TLS via rustls) is
//! shared by every store of a [`Runtime`](crate::Runtime), so connections outlive instances too.
//!
//! The pool's connection tasks run on the runtime's own tokio runtime (see [`Outbound::new`]),
//! whichever runtime happens to poll the guest's request: a connection never dies with a
//! caller's short-lived runtime.
//!
//! `RequestOptions` are honoured per request: `connect-timeout` bounds DNS + TCP + TLS of a new
//! connection; `first-byte-timeout` bounds the wait for response headers (counted together with
//! the connect time, since a reused connection has none); `between-bytes-timeout` bounds each
//! wait for the next body frame.

mod connector;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy;
use hyper_util::rt::TokioTimer;
use tokio::runtime::Handle;
use tokio::time::Sleep;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use connector::{ConnectError, Connector, CONNECT_TIMEOUT};

/// Used when the guest sets no timeout (the same as wasmtime-wasi-http's default sender).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// Idle pooled connections are closed after this long (Vault and Google close theirs sooner).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;
type SendFuture = Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), HttpError>> + Send>;

/// The shared client. Cheap to clone: clones share one pool.
#[derive(Clone)]
pub(crate) struct Outbound {
    client: legacy::Client<Connector, WasiBody>,
    handle: Handle,
}

impl Outbound {
    /// `handle` must belong to a runtime that outlives the stores using this client and has
    /// time and I/O drivers enabled.
    pub(crate) fn new(handle: Handle, max_idle_per_host: usize) -> Outbound {
        let client = legacy::Client::builder(HandleExecutor(handle.clone()))
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(max_idle_per_host)
            .pool_timer(TokioTimer::new())
            .build(Connector::new(DEFAULT_TIMEOUT));
        Outbound { client, handle }
    }

    async fn send(self, request: http::Request<WasiBody>, options: Option<RequestOptions>) -> Result<(http::Response<WasiBody>, IoFuture), HttpError> {
        let opt = options.unwrap_or_default();
        let connect = opt.connect_timeout.unwrap_or(DEFAULT_TIMEOUT);
        let first_byte = opt.first_byte_timeout.unwrap_or(DEFAULT_TIMEOUT);
        let between_bytes = opt.between_bytes_timeout.unwrap_or(DEFAULT_TIMEOUT);
        let client = self.client;
        let task = self.handle.spawn(CONNECT_TIMEOUT.scope(connect, async move {
            tokio::time::timeout(connect.saturating_add(first_byte), client.request(request)).await
        }));
        // Abort the request if the guest gives up on it (drops the future-incoming-response).
        let response = match AbortOnDrop(task).await {
            Ok(Ok(Ok(response))) => response,
            Ok(Ok(Err(err))) => return Err(map_client_error(&err)),
            Ok(Err(_elapsed)) => return Err(HttpError::ConnectionReadTimeout),
            Err(join) => return Err(HttpError::InternalError(Some(format!("outbound request task failed: {join}")))),
        };
        let response = response.map(|body| BetweenBytes { inner: body, timeout: between_bytes, sleep: None }.boxed_unsync());
        // The pool drives the connection; there is no per-request connection future to report on.
        Ok((response, Box::new(async { Ok(()) })))
    }
}

/// Store-side hooks: everything default except how requests are sent.
pub(crate) struct PooledHooks(pub(crate) Outbound);

impl WasiHttpHooks for PooledHooks {
    fn send_request(&mut self, request: http::Request<WasiBody>, options: Option<RequestOptions>, _fut: IoFuture) -> SendFuture {
        Box::new(self.0.clone().send(request, options))
    }
}

/// Spawns hyper's connection tasks on our runtime, not on whatever runtime is current.
#[derive(Clone)]
struct HandleExecutor(Handle);

impl<F> hyper::rt::Executor<F> for HandleExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        self.0.spawn(fut);
    }
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The legacy client's error is opaque: classify it by what it wraps.
fn map_client_error(err: &legacy::Error) -> HttpError {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(c) = e.downcast_ref::<ConnectError>() {
            return match c {
                ConnectError::Timeout => HttpError::ConnectionTimeout,
                ConnectError::Tcp(io) => HttpError::Connect(std::io::Error::new(io.kind(), io.to_string())),
                ConnectError::Tls(io) => HttpError::Tls(std::io::Error::new(io.kind(), io.to_string())),
                ConnectError::InvalidServerName => HttpError::DnsError { rcode: Some("invalid dns name".into()), info_code: None },
            };
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            return map_hyper_error(h);
        }
        cur = e.source();
    }
    if err.is_connect() {
        return HttpError::ConnectionRefused;
    }
    HttpError::HttpProtocolError
}

fn map_hyper_error(err: &hyper::Error) -> HttpError {
    if err.is_timeout() {
        HttpError::ConnectionReadTimeout
    } else if err.is_incomplete_message() || err.is_closed() || err.is_canceled() {
        HttpError::ConnectionTerminated
    } else if err.is_parse_too_large() {
        HttpError::HttpResponseHeaderSectionSize(None)
    } else {
        HttpError::HttpProtocolError
    }
}

/// The response body with a between-bytes timeout: the timer runs only while waiting.
struct BetweenBytes {
    inner: Incoming,
    timeout: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Body for BetweenBytes {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.sleep = None;
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) => {
                this.sleep = None;
                Poll::Ready(Some(Err(if err.is_timeout() { HttpError::HttpResponseTimeout } else { HttpError::Hyper(err) })))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let timeout = this.timeout;
                let sleep = this.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests;
