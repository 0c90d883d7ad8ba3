//! A loopback HTTP load generator for the `serve` figures: a fixed number of keep-alive
//! connections, each sending one GET after another, until a request count or a time limit is
//! reached (whichever comes first), recording every request's latency.
//!
//! Bounded in count and time on purpose: this machine is shared, and every closed connection
//! parks an ephemeral port in TIME_WAIT; connections here stay open for the whole run.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// What to send, and how much.
#[derive(Debug, Clone)]
pub struct Load {
    pub addr: SocketAddr,
    /// Path and query, e.g. `/v1/secrets/dev/app/db`.
    pub target: String,
    /// `Authorization` header value, if any.
    pub authorization: Option<String>,
    /// The status every answer must have (200 for a secret; 404 for the app's own no-op route).
    pub expect_status: u16,
    /// Connections, each with one request in flight at a time.
    pub connections: usize,
    /// Total requests over all connections.
    pub requests: u64,
    /// Stop early after this long.
    pub time_limit: Duration,
}

/// What a run measured. Latencies are sorted.
#[derive(Debug, Clone)]
pub struct LoadResult {
    pub ok: u64,
    /// Requests answered with another status than `expect_status`, or failed.
    pub failed: u64,
    pub elapsed: Duration,
    latencies: Vec<Duration>,
    /// What the first failed request got (a status, or the client's error), for the message.
    pub first_failure: Option<String>,
}

impl LoadResult {
    /// Successful requests per second over the whole run.
    pub fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }

    /// Fails unless at least one request was sent and every one got its expected answer; the
    /// error names `what`, how many failed and what the first failure got.
    pub fn all_answered(&self, what: &str) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.failed == 0 && self.ok > 0,
            "{} of {} GETs of {what} failed (first: {})",
            self.failed,
            self.ok + self.failed,
            self.first_failure.as_deref().unwrap_or("none answered")
        );
        Ok(())
    }

    /// The `q` quantile (0..=1) of request latency (nearest rank).
    pub fn quantile(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.latencies.len() as f64).ceil() as usize).clamp(1, self.latencies.len());
        self.latencies[rank - 1]
    }
}

/// Runs `load` on `runtime` and returns what it measured. Fails only if a connection cannot be
/// opened at all; failed requests are counted.
pub fn run(runtime: &tokio::runtime::Runtime, load: &Load) -> anyhow::Result<LoadResult> {
    runtime.block_on(drive(load.clone()))
}

async fn drive(load: Load) -> anyhow::Result<LoadResult> {
    let issued = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + load.time_limit;
    let started = Instant::now();
    let mut workers = Vec::with_capacity(load.connections);
    for _ in 0..load.connections.max(1) {
        let stream = TcpStream::connect(load.addr).await.with_context(|| format!("connect to {}", load.addr))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        workers.push(tokio::spawn(worker(sender, load.clone(), issued.clone(), deadline)));
    }
    let mut result = LoadResult { ok: 0, failed: 0, elapsed: Duration::ZERO, latencies: Vec::new(), first_failure: None };
    for worker in workers {
        let (ok, failed, latencies, failure) = worker.await?;
        result.ok += ok;
        result.failed += failed;
        result.latencies.extend(latencies);
        result.first_failure = result.first_failure.or(failure);
    }
    result.elapsed = started.elapsed();
    result.latencies.sort_unstable();
    Ok(result)
}

async fn worker(
    mut sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    load: Load,
    issued: Arc<AtomicU64>,
    deadline: Instant,
) -> (u64, u64, Vec<Duration>, Option<String>) {
    let (mut ok, mut failed, mut latencies, mut failure) = (0, 0, Vec::new(), None);
    while issued.fetch_add(1, Ordering::Relaxed) < load.requests && Instant::now() < deadline {
        let mut request = Request::get(&load.target).header("host", load.addr.to_string());
        if let Some(auth) = &load.authorization {
            request = request.header("authorization", auth);
        }
        let Ok(request) = request.body(Empty::<Bytes>::new()) else {
            failed += 1;
            break;
        };
        let start = Instant::now();
        let answered = match sender.send_request(request).await {
            // The body is read to the end: a keep-alive connection is reusable only then.
            Ok(response) => {
                let status = response.status();
                match response.into_body().collect().await {
                    Ok(_) if status == load.expect_status => Ok(()),
                    // The status only: a body could hold a secret.
                    Ok(_) => Err(format!("HTTP {status}")),
                    Err(e) => Err(format!("HTTP {status}, body: {e}")),
                }
            }
            Err(e) => Err(format!("{e}")),
        };
        let answered = match answered {
            Ok(()) => true,
            Err(why) => {
                failure.get_or_insert(why);
                false
            }
        };
        if answered {
            ok += 1;
            latencies.push(start.elapsed());
        } else {
            failed += 1;
            if sender.ready().await.is_err() {
                break; // the connection is gone; the others carry on
            }
        }
    }
    (ok, failed, latencies, failure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let latencies = (1..=100).map(Duration::from_millis).collect();
        let r = LoadResult { ok: 100, failed: 0, elapsed: Duration::from_secs(2), latencies, first_failure: None };
        assert_eq!((r.quantile(0.5), r.quantile(0.99), r.quantile(1.0)), (Duration::from_millis(50), Duration::from_millis(99), Duration::from_millis(100)));
        assert_eq!(r.per_second(), 50.0);
        let empty = LoadResult { ok: 0, failed: 0, elapsed: Duration::from_secs(1), latencies: vec![], first_failure: None };
        assert_eq!(empty.quantile(0.5), Duration::ZERO);
    }

    #[test]
    fn it_stops_at_the_request_count_on_a_real_server() {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let store = edge_secrets_host::dev_store::DevStore::start(Default::default()).unwrap();
        let load = Load {
            addr: store.addr(),
            target: "/v1/sys/health".into(),
            authorization: None,
            expect_status: 200,
            connections: 3,
            requests: 40,
            time_limit: Duration::from_secs(20),
        };
        let result = run(&rt, &load).unwrap();
        assert_eq!(result.ok + result.failed, 40, "{result:?}");
        assert!(result.quantile(0.99) >= result.quantile(0.5));
    }
}
