//! Failed authentications (the app's 401 and `forbidden` 403 answers) cost the caller: a connection that
//! collected `max_auth_failures_per_connection` is answered 429 and closed, and an address with
//! many recent failures gets each further failing answer only after a growing delay. Answers
//! that succeed are never delayed, so token holders behind the same address (NAT, loopback) are
//! not slowed by a guesser. Each decision is logged as a JSON event naming the peer address and
//! the count, never a token or header.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full, Limited};
use wasmtime_wasi_http::WasiBody;

use super::limits::{RateLimitedLog, LOG_INTERVAL};
use super::reply;

/// Failures an address may collect (with gaps under `PEER_WINDOW`) before its failing answers
/// are delayed: enough for a misconfigured client to show up in its own logs first.
const PEER_FREE_FAILURES: u32 = 20;
/// An address's count starts over after this long without a failure.
const PEER_WINDOW: Duration = Duration::from_secs(60);
/// The first delay; it doubles with every further failure up to `MAX_DELAY`.
const FIRST_DELAY: Duration = Duration::from_millis(50);
const MAX_DELAY: Duration = Duration::from_secs(5);
/// Addresses tracked at once. When full (and nothing has expired), new addresses go untracked:
/// the per-connection limit still applies to them.
const MAX_PEERS: usize = 4096;
/// What the 429 suggests; the connection is closed either way.
const RETRY_AFTER_SECONDS: &str = "10";

pub(crate) struct AuthThrottle {
    max_per_connection: u32,
    peers: Mutex<HashMap<IpAddr, PeerFailures>>,
    log: RateLimitedLog,
}

struct PeerFailures {
    count: u32,
    last: Instant,
}

impl AuthThrottle {
    pub(crate) fn new(max_per_connection: u32) -> AuthThrottle {
        AuthThrottle { max_per_connection, peers: Mutex::default(), log: RateLimitedLog::new(LOG_INTERVAL) }
    }

    /// A 429 (closing the connection) when the connection has used up its failures; the app
    /// is not run for it.
    pub(crate) fn refusal(&self, connection_failures: &AtomicU32, peer: IpAddr) -> Option<hyper::Response<WasiBody>> {
        let failures = connection_failures.load(Ordering::Relaxed);
        if failures < self.max_per_connection {
            return None;
        }
        self.event(peer, failures, "connection-closed", None);
        let mut response = reply::error(429, "rate-limited", "too many failed authentications on this connection");
        response.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from_static(RETRY_AFTER_SECONDS));
        reply::close_after(&mut response);
        Some(response)
    }

    /// Counts an authentication failure against the connection and the address, and waits
    /// out the address's delay before the answer goes out; passes other answers through.
    pub(crate) async fn after_answer(&self, connection_failures: &AtomicU32, peer: IpAddr, response: hyper::Response<WasiBody>) -> hyper::Response<WasiBody> {
        let (response, failed) = authentication_failed(response).await;
        if !failed {
            return response;
        }
        connection_failures.fetch_add(1, Ordering::Relaxed);
        let (failures, delay) = self.count_peer(peer, Instant::now());
        if let Some(delay) = delay {
            self.event(peer, failures, "answer-delayed", Some(delay));
            tokio::time::sleep(delay).await;
        }
        response
    }

    /// The address's failures including this one, and the delay its answer gets.
    fn count_peer(&self, peer: IpAddr, now: Instant) -> (u32, Option<Duration>) {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        if peers.len() >= MAX_PEERS && !peers.contains_key(&peer) {
            peers.retain(|_, p| now.saturating_duration_since(p.last) < PEER_WINDOW);
            if peers.len() >= MAX_PEERS {
                return (0, None);
            }
        }
        let entry = peers.entry(peer).or_insert(PeerFailures { count: 0, last: now });
        if now.saturating_duration_since(entry.last) >= PEER_WINDOW {
            entry.count = 0;
        }
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
        (entry.count, peer_delay(entry.count))
    }

    fn event(&self, peer: IpAddr, failures: u32, action: &str, delay: Option<Duration>) {
        self.log.log(|suppressed| {
            let mut event = serde_json::json!({ "event": "auth-throttled", "peer": peer.to_string(), "failures": failures, "action": action });
            if let Some(delay) = delay {
                event["delay_ms"] = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX).into();
            }
            if suppressed > 0 {
                event["suppressed"] = suppressed.into();
            }
            event.to_string()
        });
    }
}

/// Every 401 is a refused credential. A 403 is one only with the app's `forbidden` body: the
/// app also answers 403 `permission-denied` when a backend refuses a valid caller, which must
/// not count against that caller. 403 bodies are small JSON errors (never secret values), so
/// they are read here (up to `MAX_403_BODY`) and passed on unchanged.
async fn authentication_failed(response: hyper::Response<WasiBody>) -> (hyper::Response<WasiBody>, bool) {
    match response.status() {
        http::StatusCode::UNAUTHORIZED => (response, true),
        http::StatusCode::FORBIDDEN => {
            let (parts, body) = response.into_parts();
            let collected = match Limited::new(body, MAX_403_BODY).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(_) => return (reply::error(500, "internal", "the app's answer could not be read"), false),
            };
            let forbidden = serde_json::from_slice::<serde_json::Value>(&collected).is_ok_and(|v| v["error"] == "forbidden");
            let body = Full::new(collected).map_err(|never: Infallible| match never {}).boxed_unsync();
            (hyper::Response::from_parts(parts, body), forbidden)
        }
        _ => (response, false),
    }
}

/// Larger 403 bodies are not the app's error shape.
const MAX_403_BODY: usize = 64 * 1024;

fn peer_delay(failures: u32) -> Option<Duration> {
    let excess = failures.checked_sub(PEER_FREE_FAILURES).filter(|e| *e > 0)?;
    Some(FIRST_DELAY.saturating_mul(1 << (excess - 1).min(16)).min(MAX_DELAY))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_start_after_the_free_failures_double_and_are_capped() {
        assert_eq!(peer_delay(1), None);
        assert_eq!(peer_delay(PEER_FREE_FAILURES), None);
        assert_eq!(peer_delay(PEER_FREE_FAILURES + 1), Some(FIRST_DELAY));
        assert_eq!(peer_delay(PEER_FREE_FAILURES + 2), Some(FIRST_DELAY * 2));
        assert_eq!(peer_delay(u32::MAX), Some(MAX_DELAY));
    }

    #[test]
    fn an_address_starts_over_after_a_quiet_window() {
        let throttle = AuthThrottle::new(5);
        let peer = IpAddr::from([192, 0, 2, 1]);
        let t0 = Instant::now();
        for i in 1..=PEER_FREE_FAILURES + 1 {
            assert_eq!(throttle.count_peer(peer, t0).0, i);
        }
        assert_eq!(throttle.count_peer(peer, t0).1, Some(FIRST_DELAY * 2));
        assert_eq!(throttle.count_peer(peer, t0 + PEER_WINDOW), (1, None));
        assert_eq!(throttle.count_peer(IpAddr::from([192, 0, 2, 2]), t0).0, 1, "per address");
    }
}
