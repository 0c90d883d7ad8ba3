//! A hostile or broken shared store: someone with write access to the key-value store (Redis)
//! plants, replays or grows records. What is promised (docs/security.md): such a writer can
//! delay freshness within the stated bound and deny service, but never forge a value, move one to
//! another name or environment, or make the component trap; and what callers can make the
//! component write stays bounded.

use edge_secrets_host::keyvalue::DEFAULT_BUCKET;
use edge_secrets_host::{KeyValue, Request, Runtime, Source};
use edge_secrets_tests::harness::{quick_defaults, test_options};
use edge_secrets_tests::FakeBackend;

const KEY: &str = "3c1d0e9f8a7b6c5d4e3f2a1b0c8d1b0c4f9e2a7d3b5c6e1f0a9b8c7d6e5f4a2b";

fn keys_of(kv: &KeyValue, kind: &str) -> Vec<String> {
    let prefix = format!("es1-{kind}-");
    kv.backend().keys(DEFAULT_BUCKET).unwrap().into_iter().filter(|k| k.starts_with(&prefix)).collect()
}

/// A Vault backend holding `app/db`, and a runtime (fresh instance per read) sharing `kv`.
fn start(kv: &KeyValue, memory_mib: usize) -> (FakeBackend, Runtime) {
    let backend = FakeBackend::start();
    backend.expect_vault_token("t-prod");
    backend.put_vault("app/db", 1, &[("value", "pw-hostile")]);
    let policy = quick_defaults().vault("prod", &backend.url(), "t-prod").shared(KEY);
    let options = test_options().keyvalue(kv.clone()).memory_limit_mib(memory_mib);
    let runtime = Runtime::new(policy.config(), options).expect("start the component");
    (backend, runtime)
}

fn fresh_get(runtime: &Runtime, name: &str) -> Result<edge_secrets_host::Secret, edge_secrets_host::Error> {
    runtime.client().expect("instantiate").get(&Request::new("prod", name))
}

#[test]
fn a_planted_value_larger_than_the_guest_is_read_as_absent_refetched_and_overwritten() {
    let kv = KeyValue::memory();
    let (backend, runtime) = start(&kv, 32);
    assert_eq!(fresh_get(&runtime, "app/db").unwrap().source, Source::Backend);
    let entries = keys_of(&kv, "entry");
    assert!(!entries.is_empty());
    // Larger than the instance's whole memory: handed to the guest, it could only trap.
    for entry in &entries {
        kv.backend().set(DEFAULT_BUCKET, entry, &vec![0x5a; 40 << 20]).unwrap();
    }
    let secret = fresh_get(&runtime, "app/db").expect("the read is served from the backend, no trap");
    assert_eq!((secret.value.expose(), secret.source), (&b"pw-hostile"[..], Source::Backend));
    for entry in &entries {
        let record = kv.backend().get(DEFAULT_BUCKET, entry).unwrap().unwrap();
        assert!(record.len() < 4096, "the planted value was overwritten by a fresh record");
    }
    assert_eq!(fresh_get(&runtime, "app/db").unwrap().source, Source::Cache, "and it serves again");
    assert_eq!(backend.request_count(), 2);
}
