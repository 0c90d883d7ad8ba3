//! The fake's HTTP server: accepting and counting connections, recording requests, applying
//! faults, and routing the rest to the Vault, AppRole or GCP module.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{header, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::sync::{oneshot, Notify};

use super::fault::{Fault, RepeatBody, TrickleBody};
use super::{approle, aws_creds, azure, gcp, metadata, vault, Answer, RecordedRequest, Shared};

type Body = BoxBody<Bytes, Infallible>;

pub(super) async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    mut stopped: oneshot::Receiver<()>,
) {
    loop {
        let stream = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => { tokio::time::sleep(std::time::Duration::from_millis(10)).await; continue; }
            },
        };
        shared.connections.fetch_add(1, Ordering::SeqCst);
        // CloseConnection fires this; the task then drops the connection without answering.
        let kill = Arc::new(Notify::new());
        let service = service_fn({
            let (shared, kill) = (shared.clone(), kill.clone());
            move |req| handle(shared.clone(), kill.clone(), req)
        });
        tokio::spawn(async move {
            let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                _ = kill.notified() => {}
            }
        });
    }
}

async fn handle(
    shared: Arc<Shared>,
    kill: Arc<Notify>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let (req, body) = req.into_parts();
    // Read whole (logins carry their ids in it), but never recorded: it may hold credentials.
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let recorded = RecordedRequest {
        method: req.method.to_string(),
        path_and_query: req
            .uri
            .path_and_query()
            .map_or_else(|| req.uri.to_string(), |p| p.to_string()),
        headers: req
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
    };
    let fault = {
        let mut state = shared.state();
        state.log.push(recorded.clone());
        state.store.approle.count(&recorded.path_and_query);
        shared.requests.fetch_add(1, Ordering::SeqCst);
        let fault = match state.queued.pop_front().or_else(|| state.always.clone()) {
            Some(fault) => Some(fault),
            None => state.random.as_mut().and_then(|r| r.draw()),
        };
        if fault.is_some() {
            shared.faults.fetch_add(1, Ordering::SeqCst);
        }
        fault
    };
    // Like many gateways and simple servers (and unlike Vault), the fake reads a request body
    // only by its Content-Length: a body sent chunked, or without a length, is refused.
    if let Some(refusal) = unframed_body(&req) {
        return Ok(refusal);
    }
    let gcp = recorded.path_and_query.starts_with("/v1/projects/");
    let answer = match fault {
        None => normal(&shared, &recorded, &body, false),
        Some(Fault::Hang) => std::future::pending().await,
        Some(Fault::CloseConnection) => {
            kill.notify_one();
            std::future::pending().await
        }
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            normal(&shared, &recorded, &body, false)
        }
        Some(Fault::Status {
            code,
            body,
            retry_after,
        }) => Answer {
            status: code,
            body: body.into(),
            retry_after,
        },
        Some(Fault::Truncated) => {
            let mut answer = normal(&shared, &recorded, &body, false);
            answer.body.truncate(answer.body.len() / 2);
            answer
        }
        Some(Fault::Malformed) => Answer {
            status: 200,
            body: Bytes::from_static(b"{\"data\": <html>502</html"),
            retry_after: None,
        },
        Some(Fault::BadCrc) => normal(&shared, &recorded, &body, true),
        Some(Fault::HugeBody(len)) => return Ok(huge(gcp, len, false)),
        Some(Fault::HugeBodyDeclared(len)) => return Ok(huge(gcp, len, true)),
        Some(Fault::Trickle(every)) => return Ok(response(200, None, TrickleBody::new(every).boxed())),
    };
    let mut response = response(answer.status, answer.retry_after, Full::new(answer.body).boxed());
    if recorded.path_and_query.starts_with("/computeMetadata/") {
        response.headers_mut().insert("metadata-flavor", header::HeaderValue::from_static("Google"));
    }
    if let Some(challenge) = azure::challenge(&recorded.path_and_query, answer.status) {
        if let Ok(value) = header::HeaderValue::from_str(&challenge) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
    }
    Ok(response)
}

/// A 411 for a POST or PUT whose body is not framed by `Content-Length` alone.
fn unframed_body(req: &hyper::http::request::Parts) -> Option<Response<Body>> {
    let sends_body = req.method == hyper::Method::POST || req.method == hyper::Method::PUT;
    let chunked = req.headers.contains_key(header::TRANSFER_ENCODING);
    if sends_body && (chunked || !req.headers.contains_key(header::CONTENT_LENGTH)) {
        return Some(response(411, None, Full::new(Bytes::from_static(b"{\"errors\":[\"length required\"]}")).boxed()));
    }
    None
}

/// The answer the fake would give without faults.
fn normal(shared: &Shared, req: &RecordedRequest, body: &[u8], bad_crc: bool) -> Answer {
    let mut state = shared.state();
    let (path, query) = match req.path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (req.path_and_query.as_str(), None),
    };
    let header = |name: &str| req.header(name).map(str::to_owned);
    if aws_creds::is_sts(&req.method, path, body) {
        aws_creds::sts(&mut state.store, body)
    } else if path == "/v1/credentials" {
        aws_creds::container(&mut state.store, header("authorization"))
    } else if let Some(rest) = path.strip_prefix("/latest/") {
        aws_creds::imds(&mut state.store, &req.method, rest, header)
    } else if let Some(rest) = path.strip_prefix("/v1/projects/") {
        gcp::answer(&state.store, &req.method, rest, bad_crc, header)
    } else if let Some(rest) = path.strip_prefix("/computeMetadata/v1/") {
        metadata::answer(&mut state.store, &req.method, rest, header)
    } else if let Some(rest) = path.strip_prefix("/v1/auth/") {
        approle::answer(&mut state.store, &req.method, rest, body, header)
    } else if let Some(rest) = path.strip_prefix("/v1/").filter(|r| r.contains("/data/")) {
        vault::answer(&state.store, &req.method, rest, query, header)
    } else if let Some(answer) = azure::answer(&mut state.store, &req.method, path, query, body, header) {
        answer
    } else {
        vault::error(404, &[])
    }
}

/// A 200 whose body starts like the API's success JSON, then runs on for `len` bytes in all.
fn huge(gcp: bool, len: u64, declared: bool) -> Response<Body> {
    let prefix: &'static [u8] = if gcp {
        b"{\"name\":\"x\",\"payload\":{\"data\":\""
    } else {
        b"{\"data\":{\"data\":{\"value\":\""
    };
    response(200, None, RepeatBody::new(prefix, len, declared).boxed())
}

fn response(status: u16, retry_after: Option<String>, body: Body) -> Response<Body> {
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(value) = retry_after {
        builder = builder.header(header::RETRY_AFTER, value);
    }
    builder
        .body(body)
        .expect("fault status and Retry-After must be valid HTTP")
}
