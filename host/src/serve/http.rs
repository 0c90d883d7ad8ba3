//! The HTTP/1.1 front: accepts connections, hands each request to the `ProxyHandler`, and on
//! shutdown stops accepting and lets in-flight requests finish (hyper's graceful shutdown: the
//! current request on each connection completes, keep-alive ends).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Semaphore};
use wasmtime_wasi_http::handler::{ExpirationError, InstantiationError, ProxyHandler};
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

use super::instances::Instances;

/// Accepts until `stop` fires (or its sender is dropped), then drains within `grace`.
pub(crate) async fn run(listener: TcpListener, handler: ProxyHandler<Instances>, in_flight: Arc<Semaphore>, stop: oneshot::Receiver<()>, grace: Duration) {
    let local = listener.local_addr().ok();
    let graceful = GracefulShutdown::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        let stream = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    eprintln!("edge-secrets serve: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let (handler, in_flight) = (handler.clone(), in_flight.clone());
        let service = service_fn(move |request| {
            let (handler, in_flight) = (handler.clone(), in_flight.clone());
            async move { Ok::<_, Infallible>(respond(&handler, &in_flight, request, local).await) }
        });
        let connection = graceful.watch(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // Client resets and the like end the connection; nothing to report.
            let _ = connection.await;
        });
    }
    drop(listener); // refuse new connections from here on
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        eprintln!("edge-secrets serve: connections still open after {} ms; closing them", grace.as_millis());
    }
}

async fn respond(handler: &ProxyHandler<Instances>, in_flight: &Semaphore, request: hyper::Request<Incoming>, local: Option<SocketAddr>) -> hyper::Response<WasiBody> {
    // Bounds host-side work: `ProxyHandler` queues without limit (its docs ask for this).
    let Ok(_permit) = in_flight.acquire().await else {
        return error(503, "unavailable", "the server is not taking requests");
    };
    let request = match to_wasi(request, local) {
        Ok(request) => request,
        Err(message) => return error(400, "invalid-request", message),
    };
    match handler.handle((), request).await {
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

/// The request as wasi:http sees it: an absolute URI (`http://<Host>/path?query`), as Spin and
/// `wasmtime serve` give the handler.
fn to_wasi(request: hyper::Request<Incoming>, local: Option<SocketAddr>) -> Result<http::Request<WasiBody>, &'static str> {
    let (mut parts, body) = request.into_parts();
    let authority = parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<http::uri::Authority>().ok())
        .or_else(|| local.and_then(|a| a.to_string().parse().ok()))
        .ok_or("the request has no usable Host")?;
    let path = parts.uri.path_and_query().cloned().unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
    parts.uri = http::Uri::builder().scheme("http").authority(authority).path_and_query(path).build().map_err(|_| "the request target is not a valid URI")?;
    Ok(http::Request::from_parts(parts, body.map_err(HttpError::Hyper).boxed_unsync()))
}

/// A host-side failure, in the app's JSON error shape.
fn error(status: u16, kind: &str, message: &str) -> hyper::Response<WasiBody> {
    let body = serde_json::json!({ "error": kind, "message": message }).to_string();
    let mut response = hyper::Response::new(Full::new(Bytes::from(body)).map_err(|never: Infallible| match never {}).boxed_unsync());
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    headers.insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    response
}
