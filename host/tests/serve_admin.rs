//! `serve` runs one `/healthz` or `/metrics` request at a time: with shared state each reads
//! every counter from the key-value store, so a flood of them would multiply the store's load.
//! A store that takes a moment per call and counts how many calls overlap shows it.

#[path = "serve/support.rs"]
#[allow(dead_code)] // each test file compiles its own copy and uses part of it
mod support;
#[path = "serve/gated_store.rs"]
#[allow(dead_code)] // each test file compiles its own copy and uses part of it
mod gated_store;

use std::sync::Arc;
use std::time::Duration;

use edge_secrets_host::keyvalue::DEFAULT_BUCKET;
use edge_secrets_host::serve::ServeOptions;
use edge_secrets_host::KeyValue;
use edge_secrets_tests::harness::test_options;
use gated_store::{GatedStore, OpenOnDrop};
use support::{options, App, HttpClient, ADMIN_TOKEN, DB_PASSWORD, DEV_TOKEN};

const KEY: &str = "c0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ff";

/// A store call takes 2 ms, long enough for admin requests to overlap in it if they could.
fn slow_store() -> Arc<GatedStore> {
    Arc::new(GatedStore::with_delay(Duration::from_millis(2)))
}

#[test]
fn admin_requests_run_one_at_a_time_and_the_rest_wait_or_get_503() {
    let store = slow_store();
    let keyvalue = KeyValue::new(store.clone(), [DEFAULT_BUCKET]);
    let app = App::start_full(options(), test_options().keyvalue(keyvalue), |p| p.shared(KEY));
    let read = app.get("/v1/secrets/dev/app/db", Some(DEV_TOKEN));
    assert_eq!((read.status, &read.body[..]), (200, DB_PASSWORD.as_bytes()));
    assert_eq!(store.running(), 0);
    store.reset_most();

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
    assert_eq!(store.most(), 1, "two admin requests used the store at once");
}

#[test]
fn while_an_admin_request_holds_its_turn_the_next_gets_503_and_liveness_answers() {
    let store = slow_store();
    let keyvalue = KeyValue::new(store.clone(), [DEFAULT_BUCKET]);
    // A fresh instance per request: with reuse, requests that overlap can share an instance,
    // and one stalled in a (synchronous) store call holds the others on it too.
    let fresh = ServeOptions { fresh_instance_per_request: true, ..options() };
    let app = App::start_full(fresh, test_options().keyvalue(keyvalue), |p| p.shared(KEY));
    assert_eq!(app.get("/v1/secrets/dev/app/db", Some(DEV_TOKEN)).status, 200);

    // An authenticated /metrics stalls in the store, holding the admin turn.
    store.set_closed(true);
    let _open_at_the_end = OpenOnDrop(store.clone());
    let addr = app.server.local_addr();
    let stalled = std::thread::spawn(move || HttpClient::new(addr).get("/metrics", Some(&format!("Bearer {ADMIN_TOKEN}"))).status);
    assert!(store.wait_for_running(1, Duration::from_secs(20)) >= 1, "the admin request never reached the store");

    let busy = app.get("/healthz", Some(ADMIN_TOKEN));
    assert_eq!((busy.error(), busy.header("retry-after")), ((503, "unavailable".into()), Some("1")), "a second admin request waits, then 503");
    let liveness = app.get("/healthz", None);
    assert_eq!((liveness.status, liveness.json()["ok"].as_bool()), (200, Some(true)), "the bare liveness answer is not gated");

    store.set_closed(false);
    assert_eq!(stalled.join().unwrap(), 200);
    assert_eq!(app.get("/healthz", Some(ADMIN_TOKEN)).status, 200, "the turn is free again");
}
