//! `/metrics` and the detailed `/healthz` (the app's routes, spin-app/src/handler.rs: both need
//! the admin token) read counters and breaker states from the key-value store. Store calls run
//! on tokio's blocking pool, not on the server's two workers, but each is a round trip the
//! store itself must answer: one such request runs at a time, so a flood of them cannot
//! multiply the store's load and slow the secret reads that share it; the others wait briefly,
//! then get 503. Requests to them without `Authorization` read nothing (the app answers a bare liveness
//! `/healthz` or a 401) and pass ungated, so a liveness probe never waits behind a scrape.

use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};
use wasmtime_wasi_http::WasiBody;

use super::reply;

/// How long an admin request waits for the one running before it is answered 503.
const WAIT: Duration = Duration::from_secs(2);

pub(crate) struct AdminGate(Semaphore);

impl AdminGate {
    pub(crate) fn new() -> AdminGate {
        AdminGate(Semaphore::new(1))
    }

    /// `Ok(None)` for requests that are not gated, `Ok(Some(turn))` to hold while the app
    /// answers, or the 503.
    pub(crate) async fn enter(&self, request: &http::request::Parts) -> Result<Option<SemaphorePermit<'_>>, hyper::Response<WasiBody>> {
        let path = request.uri.path();
        if (path != "/healthz" && path != "/metrics") || !request.headers.contains_key(http::header::AUTHORIZATION) {
            return Ok(None);
        }
        match tokio::time::timeout(WAIT, self.0.acquire()).await {
            Ok(Ok(turn)) => Ok(Some(turn)),
            _ => {
                let mut busy = reply::error(503, "unavailable", "another health or metrics request is being answered; retry shortly");
                busy.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("1"));
                Err(busy)
            }
        }
    }
}
