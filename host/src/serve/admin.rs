//! `/healthz` and `/metrics` (the app's routes, spin-app/src/route.rs) need no token and, with
//! shared state, read every counter from the key-value store: a store call blocks the tokio
//! worker running the app, and the server has two. One admin request runs at a time, so a
//! flood of them leaves a worker for secret reads; the others wait briefly, then get 503.

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

    /// `Ok(None)` for other paths, `Ok(Some(turn))` to hold while the app answers, or the 503.
    pub(crate) async fn enter(&self, path: &str) -> Result<Option<SemaphorePermit<'_>>, hyper::Response<WasiBody>> {
        if path != "/healthz" && path != "/metrics" {
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
