//! Answers the host gives itself, without running the app, in the app's JSON error shape.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use wasmtime_wasi_http::WasiBody;

/// `{"error": kind, "message": message}` with `status`, never cached.
pub(crate) fn error(status: u16, kind: &str, message: &str) -> hyper::Response<WasiBody> {
    let body = serde_json::json!({ "error": kind, "message": message }).to_string();
    let mut response = hyper::Response::new(Full::new(Bytes::from(body)).map_err(|never: Infallible| match never {}).boxed_unsync());
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    headers.insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    response
}

/// Tells hyper to close the connection once this answer is written.
pub(crate) fn close_after(response: &mut hyper::Response<WasiBody>) {
    response.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
}
