//! `serve` with a stalled shared store: store calls must not hold the tokio workers that answer
//! requests (issue 12 item 2). `serve` runs on two workers; with the synchronous key-value
//! binding two reads stalled in the store took both, and nothing else was answered, not even
//! the app's 404 or a bare `/healthz`, which never touch the store.

#[path = "serve/support.rs"]
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
use support::{options, App, HttpClient, DB_PASSWORD, DEV_TOKEN};

const KEY: &str = "f00dfeedf00dfeedf00dfeedf00dfeedf00dfeedf00dfeedf00dfeedf00dfeed";

/// Far more than `serve`'s tokio workers (two), or any machine's core count.
const READERS: usize = 32;

#[test]
fn a_stalled_store_leaves_requests_that_do_not_use_it_answered() {
    let store = Arc::new(GatedStore::default());
    let keyvalue = KeyValue::new(store.clone(), [DEFAULT_BUCKET]);
    // A fresh instance per request: each stalled read holds an instance of its own, as under
    // Spin, so only the store can hold the others up.
    let fresh = ServeOptions { fresh_instance_per_request: true, ..options() };
    let app = App::start_full(fresh, test_options().keyvalue(keyvalue), |p| p.shared(KEY));
    // The secret in the shared store, so the stalled reads below are shared hits once released.
    assert_eq!(app.get("/v1/secrets/dev/app/db", Some(DEV_TOKEN)).status, 200);
    let backend_requests = app.backend.request_count();

    store.set_closed(true);
    let _open_at_the_end = OpenOnDrop(store.clone());
    let addr = app.server.local_addr();
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            std::thread::spawn(move || {
                let client = HttpClient::new(addr);
                let reply = client.try_request_within(Duration::from_secs(120), "GET", "/v1/secrets/dev/app/db", vec![&format!("Bearer {DEV_TOKEN}")]);
                reply.map(|r| (r.status, r.body == DB_PASSWORD.as_bytes(), r.header("x-secret-source").map(str::to_string)))
            })
        })
        .collect();
    // Every read reaches the store and waits there: none is queued behind a worker another
    // holds. (With the synchronous binding only two would get here; the wait then ends at its
    // limit and the checks below say what went wrong.)
    let waiting = store.wait_for_running(READERS, Duration::from_secs(60));

    // Requests that never touch the store, on a new connection each, while all the reads stall.
    let not_found = HttpClient::new(addr).try_request_within(Duration::from_secs(10), "GET", "/no/such/route", vec![]);
    let liveness = HttpClient::new(addr).try_request_within(Duration::from_secs(10), "GET", "/healthz", vec![]);
    let not_found = not_found.map(|r| r.status);
    let liveness = liveness.map(|r| (r.status, r.json()["ok"].as_bool()));

    store.set_closed(false);
    let answers: Vec<_> = readers.into_iter().map(|t| t.join().unwrap()).collect();

    assert_eq!(not_found, Ok(404), "the app's 404 while the store stalls");
    assert_eq!(liveness, Ok((200, Some(true))), "a bare /healthz while the store stalls");
    assert_eq!(waiting, READERS, "reads waiting in the store at once");
    // Released, the stalled reads finish as shared hits: the right value, no backend request.
    let shared_hit = Ok((200, true, Some("cache".to_string())));
    assert!(answers.iter().all(|a| *a == shared_hit), "{answers:?}");
    assert_eq!(app.backend.request_count(), backend_requests);
}
