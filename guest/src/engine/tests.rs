//! Provider tests with a fake clock, fake randomness and a scripted
//! transport: no wasm, no sockets, no real sleeps.

use std::boxed::Box;
use std::cell::Cell;
use alloc::collections::BTreeMap;
use std::rc::Rc;

use super::*;
use crate::breaker::Phase;
use crate::config;
use crate::http::{HttpResponse, TransportError};

/// Time shared by the clock and the transport (a slow response moves it).
#[derive(Clone, Default)]
struct Time(Rc<Cell<u64>>);

impl Time {
    fn advance(&self, ms: u64) {
        self.0.set(self.0.get() + ms);
    }
}

struct FakeClock {
    time: Time,
    slept: Vec<u64>,
}

impl Clock for FakeClock {
    fn now_ms(&self) -> u64 {
        self.time.0.get()
    }
    fn sleep_ms(&mut self, ms: u64) {
        self.slept.push(ms);
        self.time.advance(ms);
    }
}

/// Always the same "random" number, so backoff is predictable.
struct FixedRandom(u64);
impl Random for FixedRandom {
    fn next_u64(&mut self) -> u64 {
        self.0
    }
}

type Handler = Box<dyn FnMut(&Outbound) -> Result<HttpResponse, TransportError>>;
type LatencyOf = Box<dyn Fn(&Outbound) -> u64>;

/// A transport on the fake clock: each request takes its latency (or times
/// out at its `timeout_ms`, as a real one would) and `wait` moves time to the
/// next answer.
struct ScriptTransport {
    time: Time,
    /// How long each request takes, unless `latency_of` says otherwise.
    latency_ms: u64,
    latency_of: Option<LatencyOf>,
    handler: Handler,
    sent: Vec<Outbound>,
    /// When each request in `sent` was started.
    started_at: Vec<u64>,
    /// Requests started between two waits: what one round sent together.
    batch_sizes: Vec<usize>,
    started_since_wait: usize,
    next_ticket: u64,
    in_flight: Vec<(Ticket, u64, Result<HttpResponse, TransportError>)>,
}

impl Transport for ScriptTransport {
    fn start(&mut self, outbound: Outbound) -> Ticket {
        let ticket = Ticket(self.next_ticket);
        self.next_ticket += 1;
        let latency = self.latency_of.as_ref().map_or(self.latency_ms, |f| f(&outbound));
        let now = self.time.0.get();
        let (done_at, result) = if latency > outbound.timeout_ms {
            (now + outbound.timeout_ms, Err(TransportError::Timeout))
        } else {
            (now + latency, (self.handler)(&outbound))
        };
        self.in_flight.push((ticket, done_at, result));
        self.sent.push(outbound);
        self.started_at.push(now);
        self.started_since_wait += 1;
        ticket
    }

    fn wait(&mut self, until_ms: Option<u64>) -> Vec<(Ticket, Result<HttpResponse, TransportError>)> {
        if self.started_since_wait > 0 {
            self.batch_sizes.push(self.started_since_wait);
            self.started_since_wait = 0;
        }
        let now = self.time.0.get();
        let Some(first) = self.in_flight.iter().map(|f| f.1).min() else {
            return Vec::new();
        };
        if let Some(until) = until_ms.filter(|u| *u < first) {
            self.time.0.set(until.max(now));
            return Vec::new();
        }
        self.time.0.set(first.max(now));
        let (done, still): (Vec<_>, Vec<_>) = self.in_flight.drain(..).partition(|f| f.1 <= first);
        self.in_flight = still;
        done.into_iter().map(|(ticket, _, result)| (ticket, result)).collect()
    }
}

struct Harness {
    provider: Provider,
    clock: FakeClock,
    random: FixedRandom,
    transport: ScriptTransport,
}

impl Harness {
    fn new(policy: &str, handler: Handler) -> Harness {
        let mut source = BTreeMap::new();
        source.insert(config::POLICY_KEY.to_string(), policy.to_string());
        source.insert("tok_a".to_string(), "token-a".to_string());
        source.insert("tok_b".to_string(), "token-b".to_string());
        let envs = config::load(&source).unwrap();
        let time = Time::default();
        time.advance(1_000);
        Harness {
            provider: Provider::new(envs),
            clock: FakeClock { time: time.clone(), slept: vec![] },
            random: FixedRandom(u64::MAX),
            transport: ScriptTransport {
                time,
                latency_ms: 1,
                latency_of: None,
                handler,
                sent: vec![],
                started_at: vec![],
                batch_sizes: vec![],
                started_since_wait: 0,
                next_ticket: 0,
                in_flight: vec![],
            },
        }
    }

    fn get(&mut self, env: &str, name: &str) -> Result<Secret, Error> {
        self.get_req(&req(env, name, None, None))
    }

    fn get_req(&mut self, request: &SecretRequest) -> Result<Secret, Error> {
        let mut io = Io { clock: &mut self.clock, random: &mut self.random, transport: &mut self.transport };
        self.provider.get(request, &mut io)
    }

    fn get_many(&mut self, requests: &[SecretRequest]) -> Vec<Result<Secret, Error>> {
        let mut io = Io { clock: &mut self.clock, random: &mut self.random, transport: &mut self.transport };
        self.provider.get_many(requests, &mut io)
    }

    fn sent(&self) -> usize {
        self.transport.sent.len()
    }

    fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    fn stats(&self, env: &str) -> stats::EnvironmentStats {
        self.provider.stats(self.now()).into_iter().find(|s| s.environment == env).unwrap()
    }
}

fn req(env: &str, name: &str, version: Option<&str>, field: Option<&str>) -> SecretRequest {
    SecretRequest {
        environment: env.into(),
        name: name.into(),
        version: version.map(Into::into),
        field: field.map(Into::into),
    }
}

fn vault_ok(version: u64, value: &str) -> Result<HttpResponse, TransportError> {
    let body = format!(r#"{{"data":{{"data":{{"value":"{value}","user":"admin"}},"metadata":{{"version":{version}}}}}}}"#);
    Ok(HttpResponse { status: 200, headers: vec![], body: body.into_bytes() })
}

fn status(code: u16) -> Result<HttpResponse, TransportError> {
    Ok(HttpResponse { status: code, headers: vec![], body: br#"{"errors":["boom"]}"#.to_vec() })
}

/// Vault env `a`, GCP env `b`. Small numbers keep the arithmetic readable.
fn policy(extra: &str) -> String {
    format!(
        r#"{{"defaults": {{"retry": {{"attempts": 3, "base_delay_ms": 100, "max_delay_ms": 400}},
              "timeouts": {{"attempt_ms": 500, "deadline_ms": 2000}},
              "cache": {{"ttl_ms": 10000, "pinned_ttl_ms": 50000}},
              "breaker": {{"failure_threshold": 3, "open_ms": 5000, "half_open_probes": 1, "success_threshold": 2}} {extra} }},
            "environments": {{
              "a": {{"backend": "vault", "url": "http://vault-a:8200", "token_key": "tok_a"}},
              "b": {{"backend": "gcp", "url": "http://gcp-b", "token_key": "tok_b", "project": "proj"}}
            }}}}"#
    )
}

#[test]
fn cache_hit_sends_nothing_and_ttl_expiry_refetches() {
    let mut h = Harness::new(&policy(""), Box::new(|_| vault_ok(3, "v1")));
    let first = h.get("a", "app/db").unwrap();
    assert_eq!((first.value.expose(), first.version.as_str(), first.source), (&b"v1"[..], "3", Source::Backend));
    let second = h.get("a", "app/db").unwrap();
    assert_eq!((second.value.expose(), second.source), (&b"v1"[..], Source::Cache));
    assert_eq!(h.sent(), 1);
    h.clock.time.advance(10_000);
    assert_eq!(h.get("a", "app/db").unwrap().source, Source::Backend);
    assert_eq!(h.sent(), 2);
    let s = h.stats("a");
    assert_eq!((s.counters.hits, s.counters.misses, s.counters.backend_calls), (1, 2, 2));
}

#[test]
fn latest_read_also_serves_its_pinned_version_and_pinned_lives_longer() {
    let mut h = Harness::new(&policy(""), Box::new(|_| vault_ok(3, "v")));
    h.get("a", "app/db").unwrap();
    h.clock.time.advance(20_000); // past ttl_ms, within pinned_ttl_ms
    let pinned = h.get_req(&req("a", "app/db", Some("3"), None)).unwrap();
    assert_eq!(pinned.source, Source::Cache);
    assert_eq!(h.sent(), 1);
}

#[test]
fn invalid_requests_send_nothing() {
    let mut h = Harness::new(&policy(""), Box::new(|_| vault_ok(1, "v")));
    for r in [
        req("a", "../sys/raw", None, None),
        req("a", "app/db?x=1", None, None),
        req("a", "app/db", Some("0"), None),
        req("a", "app/db", None, Some("")),
        req("b", "bad/name", None, None),
        req("b", "db", None, Some("user")),
    ] {
        assert!(matches!(h.get_req(&r), Err(Error::InvalidRequest(_))), "{r:?}");
    }
    assert!(matches!(h.get("nope", "app/db"), Err(Error::UnknownEnvironment(_))));
    assert_eq!(h.sent(), 0);
    assert_eq!(h.stats("a").counters.errors.invalid_request, 4);
    assert_eq!(h.provider.unknown_environment_errors(), 1);
}

#[test]
fn each_environment_sends_only_its_own_token_to_its_own_backend() {
    let mut h = Harness::new(&policy(""), Box::new(|o: &Outbound| {
        if o.request.authority == "gcp-b" {
            let body = r#"{"name":"projects/proj/secrets/db/versions/2","payload":{"data":"aGVsbG8="}}"#;
            Ok(HttpResponse { status: 200, headers: vec![], body: body.as_bytes().to_vec() })
        } else {
            vault_ok(1, "v")
        }
    }));
    h.get("a", "db").unwrap();
    h.get("b", "db").unwrap();
    let a = &h.transport.sent[0].request;
    let b = &h.transport.sent[1].request;
    assert_eq!(a.authority, "vault-a:8200");
    assert_eq!(a.headers, vec![("x-vault-token".to_string(), b"token-a".to_vec())]);
    assert_eq!(b.authority, "gcp-b");
    assert_eq!(b.headers, vec![("authorization".to_string(), b"Bearer token-b".to_vec())]);
}

#[test]
fn transient_failures_retry_with_full_jitter_backoff() {
    let mut calls = 0;
    let mut h = Harness::new(&policy(""), Box::new(move |_| {
        calls += 1;
        if calls < 3 { status(502) } else { vault_ok(1, "v") }
    }));
    h.random = FixedRandom(150); // 150 % (100+1) = 49; then 150 % (200+1) = 150
    assert_eq!(h.get("a", "x").unwrap().value.expose(), b"v");
    assert_eq!(h.sent(), 3);
    assert_eq!(h.clock.slept, vec![49, 150]);
    assert_eq!(h.stats("a").counters.retries, 2);
}

#[test]
fn retries_stop_after_the_attempt_budget_with_the_last_error() {
    let mut h = Harness::new(&policy(""), Box::new(|_| status(500)));
    let err = h.get("a", "x").unwrap_err();
    assert_eq!(err, Error::backend(Some(500), "boom"));
    assert_eq!(h.sent(), 3);
    assert_eq!(h.stats("a").counters.errors.backend, 1);
}

#[test]
fn permanent_failures_are_not_retried_and_map_to_their_kind() {
    let mut h = Harness::new(&policy(""), Box::new(|o: &Outbound| {
        if o.request.path_and_query.contains("denied") { status(403) } else { status(404) }
    }));
    assert!(matches!(h.get("a", "missing"), Err(Error::NotFound(_))));
    assert!(matches!(h.get("a", "denied"), Err(Error::PermissionDenied(_))));
    assert_eq!(h.sent(), 2);
    assert_eq!(h.stats("a").breaker, Phase::Closed);
}

#[test]
fn retry_after_is_honoured_when_it_fits_the_deadline() {
    let mut calls = 0;
    let mut h = Harness::new(&policy(""), Box::new(move |_| {
        calls += 1;
        if calls == 1 {
            Ok(HttpResponse { status: 429, headers: vec![("retry-after".into(), b"1".to_vec())], body: vec![] })
        } else {
            vault_ok(1, "v")
        }
    }));
    h.get("a", "x").unwrap();
    assert_eq!(h.clock.slept, vec![1_000]);
}

#[test]
fn retry_after_past_the_deadline_fails_at_once_as_rate_limited() {
    let mut h = Harness::new(&policy(""), Box::new(|_| {
        Ok(HttpResponse { status: 429, headers: vec![("retry-after".into(), b"30".to_vec())], body: vec![] })
    }));
    assert_eq!(h.get("a", "x").unwrap_err(), Error::RateLimited { retry_after_ms: Some(30_000) });
    assert_eq!(h.sent(), 1);
    assert!(h.clock.slept.is_empty());
}

#[test]
fn timed_out_attempts_are_retried_then_reported_as_timeout() {
    // attempt 500 ms, deadline 2000 ms, no backoff: attempts at 0, 500, 1000 use their full
    // 500 ms; the attempt budget (3) ends the call at 1500 ms with `timeout`.
    let mut h = Harness::new(&policy(""), Box::new(|_| Err(TransportError::Timeout)));
    h.transport.latency_ms = 500;
    h.random = FixedRandom(0);
    let start = h.now();
    let err = h.get("a", "x").unwrap_err();
    assert_eq!(err, Error::Timeout { deadline_ms: 2_000 });
    assert_eq!(h.now() - start, 1_500);
    let timeouts: Vec<u64> = h.transport.sent.iter().map(|o| o.timeout_ms).collect();
    assert_eq!(timeouts, vec![500, 500, 500]);
}

#[test]
fn get_many_keeps_at_most_max_in_flight_requests_per_round() {
    let mut h = Harness::new(&policy(""), Box::new(|_| vault_ok(1, "v")));
    let requests: Vec<SecretRequest> = (0..40).map(|i| req("a", &format!("s{i}"), None, None)).collect();
    let results = h.get_many(&requests);
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(h.transport.batch_sizes, vec![fetch::MAX_IN_FLIGHT, 40 - fetch::MAX_IN_FLIGHT]);
}

#[test]
fn deadline_shortens_the_last_attempt() {
    let policy = policy("").replace(r#""attempt_ms": 500, "deadline_ms": 2000"#, r#""attempt_ms": 1500, "deadline_ms": 2000"#);
    let mut h = Harness::new(&policy, Box::new(|_| Err(TransportError::Connect("refused".into()))));
    h.transport.latency_ms = 1_400;
    h.random = FixedRandom(0);
    let start = h.now();
    // 0: refused after 1400 ms; 1400: retried with the 600 ms left, which run out.
    let err = h.get("a", "x").unwrap_err();
    assert_eq!(err, Error::Timeout { deadline_ms: 2_000 });
    let timeouts: Vec<u64> = h.transport.sent.iter().map(|o| o.timeout_ms).collect();
    assert_eq!(timeouts, vec![1_500, 600]);
    assert_eq!(h.now() - start, 2_000, "the call ends exactly at its deadline");
}

#[test]
fn breaker_opens_after_n_failures_then_sends_nothing() {
    let mut h = Harness::new(&policy(r#", "retry": {"attempts": 1}"#), Box::new(|_| status(503)));
    for _ in 0..3 {
        assert!(matches!(h.get("a", "x"), Err(Error::Backend { .. })));
    }
    assert_eq!(h.stats("a").breaker, Phase::Open);
    let err = h.get("a", "x").unwrap_err();
    assert_eq!(err, Error::Unavailable { retry_after_ms: 5_000 });
    assert_eq!(h.sent(), 3, "an open breaker sends nothing");
    // the other environment is unaffected
    assert_eq!(h.stats("b").breaker, Phase::Closed);
}

#[test]
fn half_open_probes_then_closes_after_m_successes() {
    let healthy = Rc::new(Cell::new(false));
    let flag = healthy.clone();
    let mut h = Harness::new(
        &policy(r#", "retry": {"attempts": 1}, "cache": {"ttl_ms": 0, "pinned_ttl_ms": 0}"#),
        Box::new(move |_| if flag.get() { vault_ok(1, "v") } else { status(503) }),
    );
    for _ in 0..3 {
        let _ = h.get("a", "x");
    }
    h.clock.time.advance(5_000);
    // A failed probe re-opens.
    assert!(matches!(h.get("a", "x"), Err(Error::Backend { .. })));
    assert_eq!(h.stats("a").breaker, Phase::Open);
    assert_eq!(h.sent(), 4);
    h.clock.time.advance(5_000);
    healthy.set(true);
    h.get("a", "x").unwrap();
    assert_eq!(h.stats("a").breaker, Phase::HalfOpen, "one success of two");
    h.get("a", "x").unwrap();
    assert_eq!(h.stats("a").breaker, Phase::Closed);
}

#[test]
fn get_many_fetches_misses_in_one_parallel_batch_and_shares_identical_reads() {
    let mut h = Harness::new(&policy(""), Box::new(|o: &Outbound| {
        if o.request.authority == "gcp-b" {
            let body = r#"{"name":"projects/proj/secrets/db/versions/2","payload":{"data":"aGVsbG8="}}"#;
            Ok(HttpResponse { status: 200, headers: vec![], body: body.as_bytes().to_vec() })
        } else {
            vault_ok(1, "v")
        }
    }));
    h.get("a", "cached").unwrap();
    let results = h.get_many(&[
        req("a", "one", None, None),
        req("a", "one", None, Some("user")),
        req("b", "db", None, None),
        req("a", "cached", None, None),
        req("a", "bad//name", None, None),
        req("zzz", "x", None, None),
    ]);
    assert_eq!(h.transport.batch_sizes, vec![1, 2], "one batch for both backends, shared read for `one`");
    assert_eq!(results[0].as_ref().unwrap().value.expose(), b"v");
    assert_eq!(results[1].as_ref().unwrap().value.expose(), b"admin");
    assert_eq!(results[2].as_ref().unwrap().value.expose(), b"hello");
    assert_eq!(results[3].as_ref().unwrap().source, Source::Cache);
    assert!(matches!(results[4], Err(Error::InvalidRequest(_))));
    assert!(matches!(results[5], Err(Error::UnknownEnvironment(_))));
}

#[test]
fn a_hanging_backend_does_not_hold_back_another_environments_retry() {
    let mut calls_to_b = 0;
    let mut h = Harness::new(&policy(""), Box::new(move |o: &Outbound| {
        if o.request.authority == "gcp-b" {
            calls_to_b += 1;
            if calls_to_b == 1 {
                return status(502);
            }
            let body = r#"{"name":"projects/proj/secrets/db/versions/2","payload":{"data":"aGVsbG8="}}"#;
            return Ok(HttpResponse { status: 200, headers: vec![], body: body.as_bytes().to_vec() });
        }
        vault_ok(1, "v")
    }));
    // env a hangs (every attempt runs into its 500 ms timeout); env b answers in 5 ms.
    h.transport.latency_of = Some(Box::new(|o: &Outbound| if o.request.authority == "gcp-b" { 5 } else { 10_000 }));
    h.random = FixedRandom(1);
    let start = h.now();
    let results = h.get_many(&[req("a", "x", None, None), req("b", "db", None, None)]);
    assert!(matches!(results[0], Err(Error::Timeout { .. })));
    assert_eq!(results[1].as_ref().unwrap().value.expose(), b"hello");
    let b_starts: Vec<u64> = h
        .transport
        .sent
        .iter()
        .zip(&h.transport.started_at)
        .filter(|(o, _)| o.request.authority == "gcp-b")
        .map(|(_, at)| at - start)
        .collect();
    assert_eq!(b_starts.len(), 2);
    assert!(b_starts[1] < 500, "b's retry waited for a's timeout: started at {} ms", b_starts[1]);
}

#[test]
fn missing_field_is_not_found() {
    let mut h = Harness::new(&policy(""), Box::new(|_| vault_ok(1, "v")));
    assert!(matches!(h.get_req(&req("a", "x", None, Some("nope"))), Err(Error::NotFound(_))));
}

#[test]
fn invalidate_drops_entries_of_one_environment() {
    let mut h = Harness::new(&policy(""), Box::new(|_| vault_ok(1, "v")));
    h.get("a", "x").unwrap();
    h.get("a", "y").unwrap();
    assert_eq!(h.provider.invalidate("a", Some("x")).unwrap(), 2, "latest + pinned entry");
    assert_eq!(h.provider.invalidate("b", None).unwrap(), 0);
    assert_eq!(h.get("a", "x").unwrap().source, Source::Backend);
    assert_eq!(h.get("a", "y").unwrap().source, Source::Cache);
    assert!(matches!(h.provider.invalidate("nope", None), Err(Error::UnknownEnvironment(_))));
}

#[test]
fn body_too_large_is_a_permanent_backend_error() {
    let mut h = Harness::new(&policy(""), Box::new(|o: &Outbound| Err(TransportError::BodyTooLarge { limit: o.max_body_bytes })));
    let err = h.get("a", "x").unwrap_err();
    assert_eq!(err, Error::backend(None, "response body exceeds 1048576 bytes"));
    assert_eq!(h.sent(), 1);
}
