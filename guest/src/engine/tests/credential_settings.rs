//! An environment's credentials are read from the config store with its first
//! read that goes to a backend: cached reads (a fresh instance's shared hit
//! included) make no config read for them, and a broken setting is a
//! `config` error for the reads that need it.

use super::shared::{instance, ok, twin};
use super::*;

const MISSING: &str = "environments.a.token_key: config key `tok_a` is not set";

#[test]
fn a_fresh_instances_shared_hit_reads_no_credential() {
    let mut first = instance(ok());
    assert_eq!(first.get("a", "app/db").unwrap().source, Source::Backend);
    assert_eq!(first.config.took(), ["tok_a"], "the miss read the credential it sent");
    assert_eq!(first.get("a", "app/db").unwrap().source, Source::Cache);
    assert!(first.config.took().is_empty(), "read once per instance");

    let mut second = twin(&first, ok());
    // Even with the setting gone: a cached value needs no credential.
    second.config.values.remove("tok_a");
    let secret = second.get("a", "app/db").unwrap();
    assert_eq!((secret.source, secret.value.expose()), (Source::Cache, &b"s3cr3t-value"[..]));
    assert!(second.config.took().is_empty(), "no config read for a shared hit");
    assert_eq!(second.sent(), 0);
}

#[test]
fn a_missing_credential_is_a_config_error_for_reads_that_need_the_backend() {
    let mut h = Harness::new(&policy(""), Box::new(both_backends_ok));
    h.config.values.remove("tok_a");
    for round in 0..2 {
        assert_eq!(h.get("a", "app/db").unwrap_err(), Error::Config(MISSING.into()), "round {round}");
        assert_eq!(h.sent(), 0, "nothing goes out without the credential");
    }
    assert_eq!(h.config.took(), ["tok_a"], "the error is kept: the store is read once");
    let events = h.provider.take_log();
    let config_errors: Vec<_> = events.iter().filter(|e| e.event == "config_error").collect();
    assert_eq!(config_errors.len(), 1, "logged once per instance: {events:?}");
    assert_eq!((config_errors[0].environment.as_deref(), config_errors[0].message.as_deref()), (Some("a"), Some(MISSING)));
    let tier = &h.stats("a").tiers[0];
    assert_eq!((tier.breaker, tier.counters.backend_calls), (Phase::Closed, 0), "not a backend failure");
    assert_eq!(h.get("b", "db").unwrap().value.expose(), b"hello", "the other environment reads on");
}

#[test]
fn a_credential_that_is_wrong_is_named_without_its_value() {
    let mut h = Harness::new(&policy(""), Box::new(both_backends_ok));
    h.config.values.insert("tok_a".into(), "leaked-token\nvalue".into());
    let Error::Config(message) = h.get("a", "app/db").unwrap_err() else { panic!("not a config error") };
    assert_eq!(message, "environments.a.token_key: config key `tok_a` is empty or has control characters");
    assert!(!format!("{:?}", h.provider.take_log()).contains("leaked"));
}

#[test]
fn a_config_store_failure_is_retried_by_the_next_read() {
    let mut h = Harness::new(&policy(""), Box::new(both_backends_ok));
    h.config.failing = Some("tok_a".into());
    let Error::Config(message) = h.get("a", "app/db").unwrap_err() else { panic!("not a config error") };
    assert!(message.starts_with("environments.a.token_key: config store error for `tok_a`"), "{message}");
    h.config.failing = None;
    assert_eq!(h.get("a", "app/db").unwrap().source, Source::Backend);
    assert_eq!(h.config.took(), ["tok_a", "tok_a"]);
}

#[test]
fn the_health_check_reads_every_credential() {
    let mut h = Harness::new(&policy(""), Box::new(both_backends_ok));
    h.config.values.remove("tok_b");
    let mut io = Io { clock: &mut h.clock, random: &mut h.random, transport: &mut h.transport, store: &mut h.store, config: &h.config };
    assert_eq!(h.provider.read_all_credentials(&mut io).as_deref(), Some("environments.b.token_key: config key `tok_b` is not set"));
    h.config.values.insert("tok_b".into(), "token-b".into());
    // Kept: this instance's view of the setting does not change.
    let mut io = Io { clock: &mut h.clock, random: &mut h.random, transport: &mut h.transport, store: &mut h.store, config: &h.config };
    assert!(h.provider.read_all_credentials(&mut io).is_some());
    let mut fresh = Harness::new(&policy(""), Box::new(both_backends_ok));
    let mut io = Io { clock: &mut fresh.clock, random: &mut fresh.random, transport: &mut fresh.transport, store: &mut fresh.store, config: &fresh.config };
    assert_eq!(fresh.provider.read_all_credentials(&mut io), None);
    assert_eq!(fresh.config.took(), ["tok_a", "tok_b"]);
}

#[test]
fn a_refresh_ahead_that_cannot_read_the_credential_keeps_the_fresh_value() {
    // The value came from shared state, so this instance never read the credential.
    let ahead = r#", "cache": {"ttl_ms": 10000, "refresh_ahead_percent": 50, "refresh_interval_ms": 1000}"#;
    let shared = super::shared::shared_policy(ahead);
    let mut first = Harness::new(&shared, ok());
    first.get("a", "app/db").unwrap();
    let mut second = super::shared::twin_with(&first, &shared, ok());
    second.config.values.remove("tok_a");
    assert_eq!(second.get("a", "app/db").unwrap().source, Source::Cache);
    second.clock.time.advance(6_000); // past the refresh-ahead point, within the TTL
    let secret = second.get("a", "app/db").unwrap();
    assert_eq!((secret.source, secret.stale, secret.value.expose()), (Source::Cache, false, &b"s3cr3t-value"[..]));
    assert_eq!(second.sent(), 0);
    assert!(second.provider.take_log().iter().any(|e| e.event == "config_error"), "the broken setting is logged");
    // A forced refresh asked for the backend: it gets the error.
    let forced = SecretRequest { refresh: true, ..req("a", "app/db", None, None) };
    second.clock.time.advance(1_000);
    assert_eq!(second.get_req(&forced).unwrap_err(), Error::Config(MISSING.into()));
}

#[test]
fn a_config_store_outage_costs_a_get_many_one_read_and_the_instance_one_log_line() {
    let mut h = Harness::new(&policy(""), Box::new(both_backends_ok));
    h.config.failing = Some("tok_a".into());
    for _ in 0..2 {
        let results = h.get_many(&[req("a", "one", None, None), req("a", "two", None, None), req("a", "three", None, None)]);
        assert!(results.iter().all(|r| matches!(r, Err(Error::Config(m)) if m.contains("config store error for `tok_a`"))), "{results:?}");
    }
    assert_eq!(h.config.took(), ["tok_a", "tok_a"], "one read per call: a store failure is not kept");
    let logged = h.provider.take_log().iter().filter(|e| e.event == "config_error").count();
    assert_eq!(logged, 1, "once per instance");
    assert_eq!(h.sent(), 0);
}
