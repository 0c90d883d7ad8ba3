//! `serve` with shared state (`wasi:keyvalue`), over real HTTP with a fresh instance per request
//! (how Spin runs a P2 component, and the hard case): cache hits, the breaker and rejected
//! tampering all carry across instances. Nothing here is visible through a single instance's
//! memory, so each assertion breaks if state stops being shared.

#[path = "serve/support.rs"]
mod support;

use std::sync::{Arc, Barrier};
use std::time::Duration;

use edge_secrets_host::keyvalue::DEFAULT_BUCKET;
use edge_secrets_tests::Fault;
use support::{App, ADMIN_TOKEN, DB_PASSWORD, DEV_TOKEN};

const KEY: &str = "f00dfeedf00dfeedf00dfeedf00dfeedf00dfeedf00dfeedf00dfeedf00dfeed";

fn metric(text: &str, line_start: &str) -> u64 {
    let line = text.lines().find(|l| l.starts_with(line_start)).unwrap_or_else(|| panic!("no {line_start} in /metrics"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn a_hundred_requests_on_fresh_instances_make_one_backend_request() {
    // `count_sample: 1`: every fresh instance adds its counts, so the totals below are exact
    // (the default samples shared hits; see the next test).
    let app = App::start_with(true, |p| p.shared(KEY).set_shared("count_sample", 1));
    for i in 0..100 {
        let r = app.get("/v1/secrets/dev/app/db", Some(DEV_TOKEN));
        assert_eq!((r.status, &r.body[..]), (200, DB_PASSWORD.as_bytes()));
        assert_eq!(r.header("x-secret-source"), Some(if i == 0 { "backend" } else { "cache" }));
    }
    assert_eq!(app.backend.request_count(), 1);
    assert!(app.server.instances_created() >= 100);
    // Metrics from yet another fresh instance are the totals over all of them.
    let metrics = app.get("/metrics", Some(ADMIN_TOKEN)).text();
    assert_eq!(metric(&metrics, r#"edge_secrets_shared_hits_total{environment="dev""#), 99);
    assert_eq!(metric(&metrics, r#"edge_secrets_cache_misses_total{environment="dev""#), 100);
    assert_eq!(metric(&metrics, r#"edge_secrets_backend_calls_total{environment="dev""#), 1);
    assert_eq!(metric(&metrics, r#"edge_secrets_counters_shared{environment="dev""#), 1);
    assert_eq!(metric(&metrics, r#"edge_secrets_shared_state{status="ok"}"#), 1);
    assert!(!metrics.contains(DB_PASSWORD));
}

#[test]
fn sampled_counts_on_fresh_instances_stay_consistent() {
    // The default `count_sample` (16): a fresh instance that only read the store adds its counts
    // with probability 1/16, times 16. What a miss counts is exact; a shared hit's `misses` and
    // `shared_hits` travel together, so their difference is the exact misses' number.
    let app = App::start_with(true, |p| p.shared(KEY));
    for _ in 0..200 {
        assert_eq!(app.get("/v1/secrets/dev/app/db", Some(DEV_TOKEN)).status, 200);
    }
    assert_eq!(app.backend.request_count(), 1);
    let metrics = app.get("/metrics", Some(ADMIN_TOKEN)).text();
    let shared_hits = metric(&metrics, r#"edge_secrets_shared_hits_total{environment="dev""#);
    let misses = metric(&metrics, r#"edge_secrets_cache_misses_total{environment="dev""#);
    assert_eq!(misses - shared_hits, 1, "the one backend read, counted exactly");
    assert_eq!(shared_hits % 16, 0, "shared hits are added 16 at a time");
    // 199 draws of 1 in 16: none sampled has a probability of about 3e-6.
    assert!((16..=199 * 16).contains(&shared_hits), "{shared_hits}");
    assert_eq!(metric(&metrics, r#"edge_secrets_backend_calls_total{environment="dev""#), 1);
}

#[test]
fn a_concurrent_burst_on_fresh_instances_makes_one_backend_request() {
    let app = App::start_with(true, |p| p.shared(KEY));
    app.backend.set_fault_always(Some(Fault::Delay(Duration::from_millis(150))));
    let barrier = Arc::new(Barrier::new(10));
    let addr = app.server.local_addr();
    let readers: Vec<_> = (0..10)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let client = support::HttpClient::new(addr);
                barrier.wait();
                let r = client.get("/v1/secrets/dev/app/db", Some(&format!("Bearer {DEV_TOKEN}")));
                (r.status, r.body.to_vec())
            })
        })
        .collect();
    for reader in readers {
        assert_eq!(reader.join().unwrap(), (200, DB_PASSWORD.as_bytes().to_vec()));
    }
    assert_eq!(app.backend.request_count(), 1, "one instance fetched under the lease, nine waited for it");
}

#[test]
fn the_breaker_opens_across_fresh_instances() {
    let app = App::start_with(true, |p| p.shared(KEY).set("dev", "retry.attempts", 1).set("dev", "breaker.failure_threshold", 3));
    app.backend.set_fault_always(Some(Fault::vault_error(503, "down")));
    for _ in 0..3 {
        assert_eq!(app.get("/v1/secrets/dev/app/db", Some(DEV_TOKEN)).error(), (502, "backend".to_string()));
    }
    let refused = app.get("/v1/secrets/dev/app/db", Some(DEV_TOKEN));
    assert_eq!(refused.error(), (503, "unavailable".to_string()));
    assert!(refused.header("retry-after").is_some());
    assert_eq!(app.backend.request_count(), 3, "the fourth instance sent nothing");
    let health = app.get("/healthz", Some(ADMIN_TOKEN)).json();
    let dev = health["environments"].as_array().unwrap().iter().find(|e| e["environment"] == "dev").unwrap();
    assert_eq!(dev["breaker"], "open");
    assert_eq!(health["shared"]["status"], "ok");
}

#[test]
fn a_tampered_shared_entry_is_rejected_and_the_value_refetched() {
    let app = App::start_with(true, |p| p.shared(KEY));
    assert_eq!(app.get("/v1/secrets/dev/app/db", Some(DEV_TOKEN)).status, 200);
    let kv = app.server.keyvalue().backend();
    let entries: Vec<String> = kv.keys(DEFAULT_BUCKET).unwrap().into_iter().filter(|k| k.starts_with("es1-entry-")).collect();
    assert!(!entries.is_empty());
    for key in &entries {
        let mut sealed = kv.get(DEFAULT_BUCKET, key).unwrap().unwrap();
        sealed[20] ^= 0x01;
        kv.set(DEFAULT_BUCKET, key, &sealed).unwrap();
    }
    let r = app.get("/v1/secrets/dev/app/db", Some(DEV_TOKEN));
    assert_eq!((r.status, &r.body[..], r.header("x-secret-source")), (200, DB_PASSWORD.as_bytes(), Some("backend")));
    assert_eq!(app.backend.request_count(), 2);
    let metrics = app.get("/metrics", Some(ADMIN_TOKEN)).text();
    assert!(metric(&metrics, r#"edge_secrets_shared_rejected_total{environment="dev""#) >= 1);
}
