//! Provider tests with a fake clock, fake randomness and a scripted
//! transport: no wasm, no sockets, no real sleeps. This file is the harness;
//! `reads` covers the read path, `failures` retries, deadlines and the breaker.

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
    /// The same time: these tests read breaker periods off `now()`.
    fn wall_ms(&self) -> u64 {
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
    store: crate::shared::MemoryStore,
    /// The instance's config store (credentials are read from it on a backend read).
    config: TestConfig,
}

/// A config store that records the keys read, and can fail one key.
struct TestConfig {
    values: BTreeMap<String, String>,
    read: core::cell::RefCell<Vec<String>>,
    failing: Option<String>,
}

impl TestConfig {
    /// The keys read since the last call.
    fn took(&self) -> Vec<String> {
        core::mem::take(&mut *self.read.borrow_mut())
    }
}

impl config::ConfigSource for TestConfig {
    fn get(&self, key: &str) -> Result<Option<String>, String> {
        self.read.borrow_mut().push(key.to_string());
        if self.failing.as_deref() == Some(key) {
            return Err("config store offline".into());
        }
        Ok(self.values.get(key).cloned())
    }
}

/// The config store of a test instance: `policy` and the credentials and
/// sealing key the test policies name.
fn source_of(policy: &str) -> BTreeMap<String, String> {
    let mut source = BTreeMap::new();
    source.insert(config::POLICY_KEY.to_string(), policy.to_string());
    source.insert("tok_a".to_string(), "token-a".to_string());
    source.insert("tok_b".to_string(), "token-b".to_string());
    source.insert("state_key".to_string(), "5e".repeat(32));
    source
}

impl Harness {
    fn new(policy: &str, handler: Handler) -> Harness {
        Harness::with_source(policy, &[], handler)
    }

    /// [`Harness::new`] with more config keys (credentials of other methods).
    fn with_source(policy: &str, extra: &[(&str, &str)], handler: Handler) -> Harness {
        let mut source = source_of(policy);
        for (key, value) in extra {
            source.insert(key.to_string(), value.to_string());
        }
        // As the component loads it: each environment with its credentials unread.
        let config = TestConfig { values: source, read: Default::default(), failing: None };
        let config::LazyLoaded { loaded, mut unread } = config::load_lazy(&config).unwrap();
        let mut provider = Provider::with_shared(loaded.environments, loaded.shared);
        for name in unread.names() {
            provider.add_environment(unread.load(&name).unwrap().unwrap());
        }
        config.took();
        let time = Time::default();
        time.advance(1_000);
        Harness {
            provider,
            store: crate::shared::MemoryStore::default(),
            config,
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
        let mut io = Io { clock: &mut self.clock, random: &mut self.random, transport: &mut self.transport, store: &mut self.store, config: &self.config };
        self.provider.get(request, &mut io)
    }

    fn get_many(&mut self, requests: &[SecretRequest]) -> Vec<Result<Secret, Error>> {
        let mut io = Io { clock: &mut self.clock, random: &mut self.random, transport: &mut self.transport, store: &mut self.store, config: &self.config };
        self.provider.get_many(requests, &mut io)
    }

    fn invalidate(&mut self, env: &str, name: Option<&str>) -> Result<u32, Error> {
        let mut io = Io { clock: &mut self.clock, random: &mut self.random, transport: &mut self.transport, store: &mut self.store, config: &self.config };
        self.provider.invalidate(env, name, &mut io)
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
        refresh: false,
        traceparent: None,
    }
}

fn vault_ok(version: u64, value: &str) -> Result<HttpResponse, TransportError> {
    let body = format!(r#"{{"data":{{"data":{{"value":"{value}","user":"admin"}},"metadata":{{"version":{version}}}}}}}"#);
    Ok(HttpResponse { status: 200, headers: vec![], body: body.into_bytes() })
}

/// GCP's answer for `projects/proj/secrets/db`, version 2, payload "hello".
fn gcp_ok() -> Result<HttpResponse, TransportError> {
    let body = r#"{"name":"projects/proj/secrets/db/versions/2","payload":{"data":"aGVsbG8="}}"#;
    Ok(HttpResponse { status: 200, headers: vec![], body: body.as_bytes().to_vec() })
}

/// Answers env `b`'s GCP requests with [`gcp_ok`] and env `a`'s Vault requests with value `v`.
fn both_backends_ok(o: &Outbound) -> Result<HttpResponse, TransportError> {
    if o.request.authority == "gcp-b" {
        gcp_ok()
    } else {
        vault_ok(1, "v")
    }
}

/// `b`'s requests answer in 5 ms; `a`'s would take 10 s (they hit their timeouts).
fn a_hangs_b_is_fast(o: &Outbound) -> u64 {
    if o.request.authority == "gcp-b" { 5 } else { 10_000 }
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

mod azure;
mod budget;
mod credentials;
mod credential_settings;
mod failures;
mod reads;
mod config_view;
mod shared;
mod shared_degraded;
mod shared_counts;
mod shared_ops;
mod shared_replay;
mod vault_jwt;
mod signals;
mod tiers;
