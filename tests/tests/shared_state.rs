//! Shared state through `wasi:keyvalue`, seen from outside: fresh instances (as Spin runs one
//! per request) share cache hits and breaker state, sealed entries that are edited or moved are
//! never served, and a failing or unkeyed store leaves the component working from memory.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use edge_secrets_host::keyvalue::{KvBackend, KvError, DEFAULT_BUCKET};
use edge_secrets_host::{KeyValue, Request, Runtime, SecretError, SharedStatus, Source};
use edge_secrets_tests::harness::{quick_defaults, secret_error, test_options};
use edge_secrets_tests::{Fault, Harness, PolicyBuilder};

const KEY: &str = "8d1b0c4f9e2a7d3b5c6e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c";

fn shared_vault() -> Harness {
    shared_vault_with(|p| p)
}

/// [`shared_vault`] with more policy settings.
fn shared_vault_with(more: impl Fn(PolicyBuilder) -> PolicyBuilder) -> Harness {
    let h = Harness::start(|p, url| more(p.vault("prod", url, "t-prod").shared(KEY)));
    h.backend.expect_vault_token("t-prod");
    h.backend.put_vault("app/db", 3, &[("value", "pw-shared"), ("user", "admin")]);
    h
}

/// One read through a brand-new instance, as a Spin request would make it.
fn fresh_get(runtime: &Runtime, name: &str) -> Result<edge_secrets_host::Secret, edge_secrets_host::Error> {
    runtime.client().expect("instantiate").get(&Request::new("prod", name))
}

#[test]
fn a_hundred_fresh_instances_make_one_backend_request() {
    // Every fresh instance adds its counts (the default samples shared hits: 1 in 16, times 16).
    let h = shared_vault_with(|p| p.set_shared("count_sample", 1));
    for i in 0..100 {
        let secret = fresh_get(&h.runtime, "app/db").unwrap();
        assert_eq!(secret.value.expose(), b"pw-shared");
        assert_eq!(secret.source, if i == 0 { Source::Backend } else { Source::Cache });
    }
    assert_eq!(h.backend.request_count(), 1);
    // Stats from yet another fresh instance are the totals of all of them.
    let stats = h.runtime.client().unwrap().stats().unwrap();
    assert!(stats[0].counters_shared);
    assert_eq!((stats[0].misses, stats[0].shared_hits, stats[0].backend_calls, stats[0].hits), (100, 99, 1, 0));
}

#[test]
fn a_burst_of_concurrent_fresh_instances_makes_one_backend_request() {
    let h = shared_vault();
    // A slow backend, so that every instance misses while the first one is still fetching.
    h.backend.set_fault_always(Some(Fault::Delay(Duration::from_millis(150))));
    let barrier = Arc::new(Barrier::new(12));
    let readers: Vec<_> = (0..12)
        .map(|_| {
            let (runtime, barrier) = (h.runtime.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut client = runtime.client().unwrap();
                barrier.wait();
                client.get(&Request::new("prod", "app/db")).map(|s| s.value.expose().to_vec())
            })
        })
        .collect();
    for reader in readers {
        assert_eq!(reader.join().unwrap().unwrap(), b"pw-shared");
    }
    assert_eq!(h.backend.request_count(), 1, "the fetch lease lets one instance fetch while the others wait");
}

#[test]
fn the_breaker_opens_across_fresh_instances() {
    let h = Harness::start(|p, url| {
        p.vault("prod", url, "t").shared(KEY).set("prod", "retry.attempts", 1).set("prod", "breaker.failure_threshold", 3)
    });
    h.backend.accept_any_credentials();
    h.backend.set_fault_always(Some(Fault::vault_error(503, "unavailable")));
    for _ in 0..3 {
        assert!(matches!(secret_error(fresh_get(&h.runtime, "a")), SecretError::Backend { status: Some(503), .. }));
    }
    assert_eq!(h.backend.request_count(), 3);
    let error = secret_error(fresh_get(&h.runtime, "b"));
    assert!(matches!(error, SecretError::Unavailable { .. }), "{error:?}");
    assert_eq!(h.backend.request_count(), 3, "an open breaker sends nothing, even from a new instance");
    let health = h.runtime.client().unwrap().health().unwrap();
    assert_eq!(health.environments[0].breaker, edge_secrets_host::BreakerState::Open);

    // After open_ms (30 s by default) a probe goes through, and its success closes it for all.
    h.backend.clear_faults();
    h.backend.put_vault("a", 1, &[("value", "back")]);
    h.clock.advance(Duration::from_secs(31));
    assert_eq!(fresh_get(&h.runtime, "a").unwrap().value.expose(), b"back");
    let health = h.runtime.client().unwrap().health().unwrap();
    assert_eq!(health.environments[0].breaker, edge_secrets_host::BreakerState::Closed);
}

#[test]
fn an_edited_shared_entry_is_rejected_counted_and_never_served() {
    let h = shared_vault();
    fresh_get(&h.runtime, "app/db").unwrap();
    let kv = h.runtime.keyvalue().backend();
    let keys: Vec<String> = kv.keys(DEFAULT_BUCKET).unwrap().into_iter().filter(|k| k.starts_with("es1-entry-")).collect();
    assert!(!keys.is_empty());
    for key in &keys {
        let mut value = kv.get(DEFAULT_BUCKET, key).unwrap().unwrap();
        let middle = value.len() / 2;
        value[middle] ^= 0x40;
        kv.set(DEFAULT_BUCKET, key, &value).unwrap();
    }
    let mut client = h.runtime.client().unwrap();
    let secret = client.get(&Request::new("prod", "app/db")).unwrap();
    assert_eq!((secret.value.expose(), secret.source), (&b"pw-shared"[..], Source::Backend));
    assert!(client.stats().unwrap()[0].shared_rejected >= 1);
    assert_eq!(h.backend.request_count(), 2);
}

#[test]
fn an_entry_copied_under_another_secrets_key_is_never_served() {
    let h = shared_vault();
    h.backend.put_vault("other", 1, &[("value", "pw-other")]);
    fresh_get(&h.runtime, "app/db").unwrap();
    let kv = h.runtime.keyvalue().backend();
    let db_keys = kv.keys(DEFAULT_BUCKET).unwrap();
    fresh_get(&h.runtime, "other").unwrap();
    let sealed_db = kv.get(DEFAULT_BUCKET, &db_keys[0]).unwrap().unwrap();
    for key in kv.keys(DEFAULT_BUCKET).unwrap().iter().filter(|k| !db_keys.contains(k)) {
        kv.set(DEFAULT_BUCKET, key, &sealed_db).unwrap();
    }
    let secret = fresh_get(&h.runtime, "other").unwrap();
    assert_eq!(secret.value.expose(), b"pw-other");
}

#[test]
fn a_dump_of_the_bucket_shows_no_names_values_or_tokens() {
    let h = shared_vault();
    fresh_get(&h.runtime, "app/db").unwrap();
    let kv = h.runtime.keyvalue().backend();
    for key in kv.keys(DEFAULT_BUCKET).unwrap() {
        assert!(!key.contains("app") && !key.contains("prod"), "{key}");
        let value = kv.get(DEFAULT_BUCKET, &key).unwrap().unwrap();
        for needle in [&b"pw-shared"[..], b"t-prod", b"app/db", b"admin"] {
            assert!(!value.windows(needle.len()).any(|w| w == needle), "{key} holds plaintext");
        }
    }
}

#[test]
fn two_runtimes_sharing_one_store_share_hits() {
    let h = shared_vault();
    let policy = quick_defaults().vault("prod", &h.backend.url(), "t-prod").shared(KEY);
    let other_host = Runtime::new(policy.config(), test_options().keyvalue(h.runtime.keyvalue().clone())).unwrap();
    fresh_get(&h.runtime, "app/db").unwrap();
    assert_eq!(fresh_get(&other_host, "app/db").unwrap().source, Source::Cache);
    assert_eq!(h.backend.request_count(), 1);
    // A host with another key does not even find the first host's entries (ids are keyed too).
    let cache_entries = |kv: &KeyValue| kv.backend().keys(DEFAULT_BUCKET).unwrap().iter().filter(|k| k.starts_with("es1-entry-")).count();
    let entries = cache_entries(h.runtime.keyvalue());
    let wrong_key = quick_defaults().vault("prod", &h.backend.url(), "t-prod").shared(&"ab".repeat(32));
    let stranger = Runtime::new(wrong_key.config(), test_options().keyvalue(h.runtime.keyvalue().clone())).unwrap();
    let mut client = stranger.client().unwrap();
    assert_eq!(client.get(&Request::new("prod", "app/db")).unwrap().source, Source::Backend);
    assert_eq!(cache_entries(h.runtime.keyvalue()), 2 * entries, "its own entries, beside the first host's");
}

#[test]
fn a_fresh_instances_shared_hit_needs_no_backend_credential() {
    let h = shared_vault();
    assert_eq!(fresh_get(&h.runtime, "app/db").unwrap().source, Source::Backend);
    // Another host on the same store without the backend token: the credential is read only
    // when a read goes to the backend, so its cached reads are served.
    let key = PolicyBuilder::token_key("prod");
    let policy = quick_defaults().vault("prod", &h.backend.url(), "t-prod").shared(KEY).without_credential(&key);
    let without = Runtime::new(policy.config(), test_options().keyvalue(h.runtime.keyvalue().clone())).unwrap();
    let secret = fresh_get(&without, "app/db").unwrap();
    assert_eq!((secret.source, secret.value.expose()), (Source::Cache, &b"pw-shared"[..]));
    // A read that needs the backend names the missing key, and health reports it before then.
    let missing = format!("environments.prod.token_key: config key `{key}` is not set");
    assert_eq!(secret_error(fresh_get(&without, "app/other")), SecretError::Config(missing.clone()));
    let health = without.client().unwrap().health().unwrap();
    assert_eq!((health.ok, health.config_error), (false, Some(missing)));
    assert_eq!(h.backend.request_count(), 1);
}

/// A key-value backend that is down.
struct Down;

impl KvBackend for Down {
    fn get(&self, _: &str, _: &str) -> Result<Option<Vec<u8>>, KvError> {
        Err(KvError("connection refused".into()))
    }
    fn set(&self, _: &str, _: &str, _: &[u8]) -> Result<(), KvError> {
        Err(KvError("connection refused".into()))
    }
    fn delete(&self, _: &str, _: &str) -> Result<(), KvError> {
        Err(KvError("connection refused".into()))
    }
    fn keys(&self, _: &str) -> Result<Vec<String>, KvError> {
        Err(KvError("connection refused".into()))
    }
    fn increment(&self, _: &str, _: &str, _: i64) -> Result<i64, KvError> {
        Err(KvError("connection refused".into()))
    }
    fn compare_and_swap(&self, _: &str, _: &str, _: Option<&[u8]>, _: &[u8], _: usize) -> Result<bool, KvError> {
        Err(KvError("connection refused".into()))
    }
}

#[test]
fn a_failing_store_leaves_the_component_serving_from_memory_and_reported() {
    let backend = edge_secrets_tests::FakeBackend::start();
    backend.put_vault("app/db", 1, &[("value", "pw")]);
    backend.accept_any_credentials();
    let policy = quick_defaults().vault("prod", &backend.url(), "t").shared(KEY);
    let down = KeyValue::new(Arc::new(Down), [DEFAULT_BUCKET]);
    let runtime = Runtime::new(policy.config(), test_options().keyvalue(down)).unwrap();
    let mut client = runtime.client().unwrap();
    assert_eq!(client.get(&Request::new("prod", "app/db")).unwrap().value.expose(), b"pw");
    assert_eq!(client.get(&Request::new("prod", "app/db")).unwrap().source, Source::Cache);
    let health = client.health().unwrap();
    assert_eq!(health.shared.status, SharedStatus::Degraded);
    assert!(health.shared.last_error.as_deref().unwrap().contains("connection refused"), "{:?}", health.shared);
    assert!(health.ok, "a degraded store does not make the component unhealthy");

    // A bucket the host does not provide is reported the same way.
    let policy = quick_defaults().vault("prod", &backend.url(), "t").shared(KEY).set_shared("bucket", "elsewhere");
    let runtime = Runtime::new(policy.config(), test_options()).unwrap();
    let mut client = runtime.client().unwrap();
    client.get(&Request::new("prod", "app/db")).unwrap();
    let shared = client.health().unwrap().shared;
    assert_eq!(shared.status, SharedStatus::Degraded);
    assert!(shared.last_error.unwrap().contains("no such store"));
}

#[test]
fn without_the_key_the_component_runs_from_memory_and_says_so() {
    let backend = edge_secrets_tests::FakeBackend::start();
    backend.accept_any_credentials();
    backend.put_vault("app/db", 1, &[("value", "pw")]);
    let policy = quick_defaults().vault("prod", &backend.url(), "t").shared(KEY).without_credential(edge_secrets_tests::STATE_KEY_KEY);
    let runtime = Runtime::new(policy.config(), test_options()).unwrap();
    fresh_get(&runtime, "app/db").unwrap();
    fresh_get(&runtime, "app/db").unwrap();
    assert_eq!(backend.request_count(), 2, "nothing shared without a key");
    assert!(runtime.keyvalue().backend().keys(DEFAULT_BUCKET).unwrap().is_empty(), "nothing written unsealed");
    assert_eq!(runtime.client().unwrap().health().unwrap().shared.status, SharedStatus::NoKey);

    // A malformed key is a configuration error naming the key, not a silent fallback.
    let bad = quick_defaults().vault("prod", &backend.url(), "t").shared("not-hex");
    let runtime = Runtime::new(bad.config(), test_options()).unwrap();
    match secret_error(fresh_get(&runtime, "app/db")) {
        SecretError::Config(message) => assert!(message.contains("shared.key_key") && message.contains("state_key"), "{message}"),
        other => panic!("expected a config error, got {other:?}"),
    }
}
