//! `serve` runs one `/healthz` or `/metrics` request at a time: with shared state each reads
//! every counter from the key-value store, and a store call (Redis here is synchronous) blocks
//! one of the server's two workers. A store that takes a moment per call and counts how many
//! calls overlap shows it.

#[path = "serve/support.rs"]
#[allow(dead_code)] // each test file compiles its own copy and uses part of it
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use edge_secrets_host::keyvalue::{Bounded, KvBackend, KvError, MemoryBackend, ValueLimits, DEFAULT_BUCKET};
use edge_secrets_host::serve::ServeOptions;
use edge_secrets_host::KeyValue;
use edge_secrets_tests::harness::test_options;
use support::{options, App, HttpClient, ADMIN_TOKEN, DB_PASSWORD, DEV_TOKEN};

const KEY: &str = "c0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ff";

/// The in-memory store, 2 ms per call, with the most calls seen in progress at once; while
/// `paused`, calls wait (as on a stalled Redis).
#[derive(Default)]
struct SlowStore {
    inner: MemoryBackend,
    running: AtomicUsize,
    most: AtomicUsize,
    paused: Mutex<bool>,
    resumed: Condvar,
}

impl SlowStore {
    fn pause(&self, paused: bool) {
        *self.paused.lock().unwrap() = paused;
        self.resumed.notify_all();
    }

    fn call<R>(&self, op: impl FnOnce(&MemoryBackend) -> R) -> R {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        drop(self.resumed.wait_while(self.paused.lock().unwrap(), |paused| *paused).unwrap());
        std::thread::sleep(Duration::from_millis(2));
        let result = op(&self.inner);
        self.running.fetch_sub(1, Ordering::SeqCst);
        result
    }
}

impl KvBackend for SlowStore {
    fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.call(|s| s.get(bucket, key))
    }
    fn set(&self, bucket: &str, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.call(|s| s.set(bucket, key, value))
    }
    fn delete(&self, bucket: &str, key: &str) -> Result<(), KvError> {
        self.call(|s| s.delete(bucket, key))
    }
    fn keys(&self, bucket: &str) -> Result<Vec<String>, KvError> {
        self.call(|s| s.keys(bucket))
    }
    fn increment(&self, bucket: &str, key: &str, delta: i64) -> Result<i64, KvError> {
        self.call(|s| s.increment(bucket, key, delta))
    }
    fn compare_and_swap(&self, bucket: &str, key: &str, expected: Option<&[u8]>, value: &[u8], absent_above: usize) -> Result<bool, KvError> {
        self.call(|s| s.compare_and_swap(bucket, key, expected, value, absent_above))
    }
    fn read_bounded(&self, bucket: &str, keys: &[String], limits: ValueLimits) -> Result<Vec<Bounded>, KvError> {
        self.call(|s| s.read_bounded(bucket, keys, limits))
    }
}

#[test]
fn admin_requests_run_one_at_a_time_and_the_rest_wait_or_get_503() {
    let store = Arc::new(SlowStore::default());
    let keyvalue = KeyValue::new(store.clone(), [DEFAULT_BUCKET]);
    let app = App::start_full(options(), test_options().keyvalue(keyvalue), |p| p.shared(KEY));
    let read = app.get("/v1/secrets/dev/app/db", Some(DEV_TOKEN));
    assert_eq!((read.status, &read.body[..]), (200, DB_PASSWORD.as_bytes()));
    assert_eq!(store.running.load(Ordering::SeqCst), 0);
    store.most.store(0, Ordering::SeqCst);

    let addr = app.server.local_addr();
    let flood: Vec<_> = (0..6)
        .map(|i| {
            std::thread::spawn(move || {
                let path = if i % 2 == 0 { "/metrics" } else { "/healthz" };
                let reply = HttpClient::new(addr).get(path, Some(&format!("Bearer {ADMIN_TOKEN}")));
                (reply.status, reply.header("retry-after").map(str::to_string))
            })
        })
        .collect();
    let answers: Vec<_> = flood.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(answers.iter().all(|(s, retry)| *s == 200 || (*s == 503 && retry.as_deref() == Some("1"))), "{answers:?}");
    assert!(answers.iter().any(|(s, _)| *s == 200), "{answers:?}");
    assert_eq!(store.most.load(Ordering::SeqCst), 1, "two admin requests used the store at once");
}

#[test]
fn while_an_admin_request_holds_its_turn_the_next_gets_503_and_liveness_answers() {
    let store = Arc::new(SlowStore::default());
    let keyvalue = KeyValue::new(store.clone(), [DEFAULT_BUCKET]);
    // A fresh instance per request: with reuse, requests that overlap can share an instance,
    // and one stalled in a (synchronous) store call holds the others on it too.
    let fresh = ServeOptions { fresh_instance_per_request: true, ..options() };
    let app = App::start_full(fresh, test_options().keyvalue(keyvalue), |p| p.shared(KEY));
    assert_eq!(app.get("/v1/secrets/dev/app/db", Some(DEV_TOKEN)).status, 200);

    // An authenticated /metrics stalls in the store, holding the admin turn.
    store.pause(true);
    let addr = app.server.local_addr();
    let stalled = std::thread::spawn(move || HttpClient::new(addr).get("/metrics", Some(&format!("Bearer {ADMIN_TOKEN}"))).status);
    let started = Instant::now();
    while store.running.load(Ordering::SeqCst) == 0 {
        assert!(started.elapsed() < Duration::from_secs(20), "the admin request never reached the store");
        std::thread::sleep(Duration::from_millis(5));
    }

    let busy = app.get("/healthz", Some(ADMIN_TOKEN));
    assert_eq!((busy.error(), busy.header("retry-after")), ((503, "unavailable".into()), Some("1")), "a second admin request waits, then 503");
    let liveness = app.get("/healthz", None);
    assert_eq!((liveness.status, liveness.json()["ok"].as_bool()), (200, Some(true)), "the bare liveness answer is not gated");

    store.pause(false);
    assert_eq!(stalled.join().unwrap(), 200);
    assert_eq!(app.get("/healthz", Some(ADMIN_TOKEN)).status, 200, "the turn is free again");
}
