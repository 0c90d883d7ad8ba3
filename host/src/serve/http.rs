//! The HTTP/1.1 front: accepts connections (at most `max_connections` open), optionally runs
//! TLS, hands each request to the `ProxyHandler`, and on shutdown stops accepting and lets
//! in-flight requests finish (hyper's graceful shutdown: the current request on each connection
//! completes, keep-alive ends).
//!
//! Hostile callers are held to: a deadline for each request head (hyper's timer, which also
//! closes connections idle between requests), the connection cap, a request limit per
//! connection, the `Host` check on loopback listeners, the authentication throttle, and one
//! admin request (`/healthz`, `/metrics`) at a time.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::rt::{Read, Write};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use wasmtime_wasi_http::handler::{ExpirationError, InstantiationError, ProxyHandler};
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

use super::admin::AdminGate;
use super::host_header;
use super::instances::Instances;
use super::limits::{suppressed_note, RateLimitedLog, LOG_INTERVAL};
use super::reply::{self, error};
use super::throttle::AuthThrottle;

/// What every connection shares.
pub(crate) struct Front {
    pub handler: ProxyHandler<Instances>,
    /// Bounds host-side work: `ProxyHandler` queues without limit (its docs ask for this).
    pub in_flight: Semaphore,
    pub local: SocketAddr,
    pub tls: Option<TlsAcceptor>,
    pub header_read_timeout: Duration,
    pub max_requests_per_connection: u32,
    pub throttle: AuthThrottle,
    pub admin: AdminGate,
}

/// One connection's counters.
struct Connection {
    peer: SocketAddr,
    requests: AtomicU32,
    auth_failures: AtomicU32,
}

/// Accepts until `stop` fires (or its sender is dropped), then drains within `grace`.
pub(crate) async fn run(listener: TcpListener, front: Arc<Front>, max_connections: usize, stop: oneshot::Receiver<()>, grace: Duration) {
    let graceful = GracefulShutdown::new();
    let open = Arc::new(Semaphore::new(max_connections));
    let (cap_log, accept_log) = (RateLimitedLog::new(LOG_INTERVAL), RateLimitedLog::new(LOG_INTERVAL));
    let mut stop = std::pin::pin!(stop);
    loop {
        // The slot is taken before `accept`: at the cap, new connections wait in the kernel's
        // listen backlog instead of each holding a descriptor here.
        let permit = match open.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                cap_log.log(|n| {
                    format!("edge-secrets serve: {max_connections} connections open (max_connections); new ones wait until one closes{}", suppressed_note(n))
                });
                tokio::select! {
                    _ = &mut stop => break,
                    permit = open.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
                }
            }
        };
        let (stream, peer) = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    accept_log.log(|n| format!("edge-secrets serve: accept failed: {e}{}", suppressed_note(n)));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        tokio::spawn(connection(front.clone(), stream, peer, permit, graceful.watcher()));
    }
    drop(listener); // refuse new connections from here on
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        eprintln!("edge-secrets serve: connections still open after {} ms; closing them", grace.as_millis());
    }
}

/// Serves one connection; `_slot` is its place under the connection cap.
async fn connection(front: Arc<Front>, stream: TcpStream, peer: SocketAddr, _slot: OwnedSemaphorePermit, watcher: Watcher) {
    let _ = stream.set_nodelay(true);
    match &front.tls {
        None => serve(front, TokioIo::new(stream), peer, watcher).await,
        Some(tls) => {
            // The handshake gets the same deadline as a request head: a silent client must not
            // hold its slot.
            let Ok(Ok(stream)) = tokio::time::timeout(front.header_read_timeout, tls.accept(stream)).await else { return };
            serve(front, TokioIo::new(stream), peer, watcher).await
        }
    }
}

async fn serve<I: Read + Write + Unpin + Send + 'static>(front: Arc<Front>, io: I, peer: SocketAddr, watcher: Watcher) {
    let mut builder = http1::Builder::new();
    // Without a timer hyper's header-read timeout does nothing.
    builder.timer(TokioTimer::new()).header_read_timeout(front.header_read_timeout);
    let connection = Arc::new(Connection { peer, requests: AtomicU32::new(0), auth_failures: AtomicU32::new(0) });
    let service = service_fn(move |request| {
        let (front, connection) = (front.clone(), connection.clone());
        async move { Ok::<_, Infallible>(answer(&front, &connection, request).await) }
    });
    // Client resets, timeouts and the like end the connection; nothing to report.
    let _ = watcher.watch(builder.serve_connection(io, service)).await;
}

/// The connection's limits, the `Host` check and the admin gate, then the app.
async fn answer(front: &Front, connection: &Connection, request: hyper::Request<Incoming>) -> hyper::Response<WasiBody> {
    let nth = connection.requests.fetch_add(1, Ordering::Relaxed).saturating_add(1);
    let peer = connection.peer.ip();
    let mut response = if let Some(refusal) = front.throttle.refusal(&connection.auth_failures, peer) {
        refusal
    } else if front.local.ip().is_loopback() && !host_header::allowed_on_loopback(request.headers()) {
        error(421, "misdirected-request", "this server answers only loopback names (localhost, 127.0.0.1, [::1]) in Host")
    } else {
        let (parts, body) = request.into_parts();
        match front.admin.enter(&parts).await {
            Err(busy) => busy,
            Ok(turn) => {
                let response = respond(front, hyper::Request::from_parts(parts, body)).await;
                drop(turn); // not held through a throttle delay
                front.throttle.after_answer(&connection.auth_failures, peer, response).await
            }
        }
    };
    if nth >= front.max_requests_per_connection {
        reply::close_after(&mut response);
    }
    response
}

async fn respond(front: &Front, request: hyper::Request<Incoming>) -> hyper::Response<WasiBody> {
    let Ok(_permit) = front.in_flight.acquire().await else {
        return error(503, "unavailable", "the server is not taking requests");
    };
    let scheme = if front.tls.is_some() { "https" } else { "http" };
    let request = match to_wasi(request, scheme, front.local) {
        Ok(request) => request,
        Err(message) => return error(400, "invalid-request", message),
    };
    match front.handler.handle((), request).await {
        Ok(response) => response,
        Err(e) if e.is::<InstantiationError<()>>() => {
            eprintln!("edge-secrets serve: {e:#}");
            error(503, "unavailable", "no instance of the app is available")
        }
        Err(e) if e.is::<ExpirationError>() => error(504, "timeout", "the app did not answer in time"),
        Err(e) => {
            eprintln!("edge-secrets serve: request failed: {e:#}");
            error(500, "internal", "the app failed")
        }
    }
}

/// The request as wasi:http sees it: an absolute URI (`<scheme>://<Host>/path?query`), as Spin
/// and `wasmtime serve` give the handler.
fn to_wasi(request: hyper::Request<Incoming>, scheme: &str, local: SocketAddr) -> Result<http::Request<WasiBody>, &'static str> {
    let (mut parts, body) = request.into_parts();
    let authority = parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<http::uri::Authority>().ok())
        .or_else(|| local.to_string().parse().ok())
        .ok_or("the request has no usable Host")?;
    let path = parts.uri.path_and_query().cloned().unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
    parts.uri = http::Uri::builder().scheme(scheme).authority(authority).path_and_query(path).build().map_err(|_| "the request target is not a valid URI")?;
    Ok(http::Request::from_parts(parts, body.map_err(HttpError::Hyper).boxed_unsync()))
}
