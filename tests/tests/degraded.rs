//! Serving while backends fail: fallback tiers, stale answers, cached not-founds, refreshes,
//! the retry budget, breaker windows and `Retry-After`, through the real component against
//! fault-injecting loopback backends. Time moves through the host's manual clock, which runs at
//! real speed underneath its jumps: every "still within" check keeps a wide margin before its
//! boundary, and only "past" checks sit right after one.

use std::time::Duration;

use edge_secrets_host::{BreakerState, EnvironmentStats, ManualClock, Request, Runtime, Secret, SecretError, Source};
use edge_secrets_tests::harness::{quick_defaults, secret_error, test_options};
use edge_secrets_tests::{FakeBackend, Fault, Harness, PolicyBuilder};
use serde_json::json;

fn stats_of(h: &mut Harness, env: &str) -> EnvironmentStats {
    h.client.stats().unwrap().into_iter().find(|s| s.environment == env).unwrap()
}

/// `prod`: a Vault primary and a GCP mirror as its one fallback, each on its own backend.
struct Tiers {
    primary: FakeBackend,
    mirror: FakeBackend,
    h: Harness,
}

fn tiers(configure: impl FnOnce(PolicyBuilder) -> PolicyBuilder) -> Tiers {
    let (primary, mirror) = (FakeBackend::start(), FakeBackend::start());
    let fallback = json!([{ "backend": "gcp", "url": mirror.url(), "project": "mirror", "token_key": "mirror_token" }]);
    let policy = configure(
        quick_defaults().vault("prod", &primary.url(), "t-prod").set("prod", "fallbacks", fallback).credential("mirror_token", "t-mirror"),
    );
    primary.expect_vault_token("t-prod");
    mirror.expect_gcp_token("t-mirror");
    primary.put_vault("db", 1, &[("value", "from-vault")]);
    mirror.put_gcp("mirror", "db", 7, b"from-gcp");
    let clock = ManualClock::new();
    let runtime = Runtime::new(policy.config(), test_options().clock(clock.clone())).expect("start the component");
    let client = runtime.client().expect("instantiate the component");
    // The harness's own backend is unused here; the two tiers are the ones above.
    let h = Harness { backend: FakeBackend::start(), clock, runtime, client };
    Tiers { primary, mirror, h }
}

fn value(secret: &Secret) -> &[u8] {
    secret.value.expose()
}

#[test]
fn a_failing_primary_hands_the_read_to_the_fallback_tier_which_the_answer_names() {
    let mut t = tiers(|p| p.set_default("cache.ttl_ms", 0));
    let first = t.h.get("prod", "db").unwrap();
    assert_eq!((value(&first), first.tier), (&b"from-vault"[..], 0));
    assert_eq!(t.mirror.request_count(), 0, "the fallback is not asked while the primary answers");

    t.primary.set_fault_always(Some(Fault::vault_sealed()));
    let second = t.h.get("prod", "db").unwrap();
    assert_eq!((value(&second), second.tier, second.source, second.stale), (&b"from-gcp"[..], 1, Source::Backend, false));
    assert_eq!(second.version, "7");
    assert_eq!(t.primary.request_count(), 1 + 3, "the primary got its attempts first");
    let stats = stats_of(&mut t.h, "prod");
    assert_eq!(stats.fallbacks, 1);
    assert_eq!((stats.tiers[0].backend.as_str(), stats.tiers[1].backend.as_str()), ("vault", "gcp"));
    assert_eq!((stats.tiers[0].failures, stats.tiers[1].backend_calls), (3, 1));
}

#[test]
fn an_unusable_answer_from_the_primary_hands_the_read_on_but_permission_denied_does_not() {
    let mut t = tiers(|p| p.set_default("cache.ttl_ms", 0).set_default("retry.attempts", 1));
    t.primary.fail_next(1, Fault::Malformed);
    let secret = t.h.get("prod", "db").unwrap();
    assert_eq!((value(&secret), secret.tier), (&b"from-gcp"[..], 1), "a garbled 200 is a tier failure");
    t.primary.fail_next(1, Fault::vault_error(403, "permission denied"));
    assert!(matches!(secret_error(t.h.get("prod", "db")), SecretError::PermissionDenied(_)));
    assert_eq!(t.mirror.request_count(), 1, "a permission-denied is the primary's word, not a failure to pass over");
}

#[test]
fn an_open_primary_breaker_is_skipped_and_health_shows_each_tier() {
    let mut t = tiers(|p| {
        p.set_default("cache.ttl_ms", 0).set_default("retry.attempts", 1).set_default("breaker.failure_threshold", 1)
    });
    t.primary.set_fault_always(Some(Fault::vault_sealed()));
    assert_eq!(t.h.get("prod", "db").unwrap().tier, 1);
    assert_eq!(t.primary.request_count(), 1);
    for _ in 0..3 {
        assert_eq!(value(&t.h.get("prod", "db").unwrap()), b"from-gcp");
    }
    assert_eq!(t.primary.request_count(), 1, "an open breaker sends nothing to its tier");
    let stats = stats_of(&mut t.h, "prod");
    assert_eq!((stats.tiers[0].breaker, stats.tiers[0].breaker_opened, stats.tiers[0].skipped), (BreakerState::Open, 1, 3));
    let health = t.h.client.health().unwrap();
    assert!(!health.ok, "a tier's breaker is open");
    assert_eq!(health.environments[0].tiers, vec![BreakerState::Open, BreakerState::Closed]);
    assert_eq!(health.environments[0].breaker, BreakerState::Closed, "the environment still serves through its mirror");
}

#[test]
fn a_not_found_from_the_primary_is_authoritative_unless_configured() {
    let mut t = tiers(|p| p);
    t.mirror.put_gcp("mirror", "only-in-mirror", 1, b"m");
    assert!(matches!(secret_error(t.h.get("prod", "only-in-mirror")), SecretError::NotFound(_)));
    assert_eq!(t.mirror.request_count(), 0);

    let mut t = tiers(|p| p.set("prod", "fallback_on_not_found", true));
    t.mirror.put_gcp("mirror", "only-in-mirror", 1, b"m");
    let secret = t.h.get("prod", "only-in-mirror").unwrap();
    assert_eq!((value(&secret), secret.tier), (&b"m"[..], 1));
}

#[test]
fn pinned_versions_never_fall_back_since_version_numbers_are_each_backends_own() {
    let mut t = tiers(|p| p.set_default("retry.attempts", 1));
    t.primary.set_fault_always(Some(Fault::vault_sealed()));
    let err = secret_error(t.h.client.get(&Request::new("prod", "db").version("7")));
    assert!(matches!(err, SecretError::Backend { status: Some(503), .. }), "{err:?}");
    assert_eq!(t.mirror.request_count(), 0);
}

#[test]
fn an_expired_value_answers_transient_failures_within_max_stale_and_never_after() {
    let mut h = Harness::start(|p, url| {
        p.vault("prod", url, "t").set_default("cache.ttl_ms", 1_000).set_default("cache.max_stale_ms", 5_000)
    });
    h.backend.put_vault("db", 3, &[("value", "v3")]);
    h.get("prod", "db").unwrap();
    h.backend.set_fault_always(Some(Fault::vault_sealed()));

    h.clock.advance(Duration::from_millis(2_000));
    let stale = h.get("prod", "db").unwrap();
    assert_eq!((value(&stale), stale.stale, stale.source, stale.version.as_str()), (&b"v3"[..], true, Source::Cache, "3"));
    assert_eq!(stats_of(&mut h, "prod").stale_served, 1);

    h.clock.advance(Duration::from_millis(4_000)); // 6 s: past TTL + max_stale
    assert!(matches!(secret_error(h.get("prod", "db")), SecretError::Backend { status: Some(503), .. }));
    assert_eq!(stats_of(&mut h, "prod").stale_served, 1);
}

#[test]
fn not_found_and_permission_denied_are_never_answered_with_a_stale_value() {
    let mut h = Harness::start(|p, url| {
        p.vault("prod", url, "t").set_default("cache.ttl_ms", 1_000).set_default("cache.max_stale_ms", 60_000)
    });
    h.backend.put_vault("db", 1, &[("value", "v")]);
    h.get("prod", "db").unwrap();
    h.clock.advance(Duration::from_millis(2_000));
    h.backend.fail_next(1, Fault::vault_error(403, "permission denied"));
    assert!(matches!(secret_error(h.get("prod", "db")), SecretError::PermissionDenied(_)));
    h.backend.fail_next(1, Fault::vault_error(404, ""));
    assert!(matches!(secret_error(h.get("prod", "db")), SecretError::NotFound(_)));
    assert_eq!(stats_of(&mut h, "prod").stale_served, 0);
}

#[test]
fn a_not_found_is_cached_for_the_negative_ttl_only() {
    let mut h = Harness::start(|p, url| p.vault("prod", url, "t").set_default("cache.negative_ttl_ms", 10_000));
    for _ in 0..5 {
        assert!(matches!(secret_error(h.get("prod", "later")), SecretError::NotFound(_)));
    }
    assert_eq!(h.backend.request_count(), 1, "a hot miss asks the backend once");
    assert_eq!(stats_of(&mut h, "prod").negative_hits, 4);

    h.backend.put_vault("later", 1, &[("value", "now")]);
    h.clock.advance(Duration::from_millis(5_000));
    assert!(matches!(secret_error(h.get("prod", "later")), SecretError::NotFound(_)), "still cached");
    h.clock.advance(Duration::from_millis(5_000));
    assert_eq!(value(&h.get("prod", "later").unwrap()), b"now");
}

#[test]
fn refresh_bypasses_the_cache_at_most_once_per_interval() {
    let mut h = Harness::start(|p, url| p.vault("prod", url, "t").set_default("cache.refresh_interval_ms", 10_000));
    h.backend.put_vault("db", 1, &[("value", "old")]);
    h.get("prod", "db").unwrap();
    h.backend.put_vault("db", 2, &[("value", "rotated")]);
    let refresh = Request::new("prod", "db").refresh(true);
    for _ in 0..10 {
        assert_eq!(value(&h.client.get(&refresh).unwrap()), b"old", "within the interval the recent fetch answers");
    }
    assert_eq!(h.backend.request_count(), 1);
    h.clock.advance(Duration::from_millis(10_000));
    let fresh = h.client.get(&refresh).unwrap();
    assert_eq!((value(&fresh), fresh.source), (&b"rotated"[..], Source::Backend));
    assert_eq!(value(&h.get("prod", "db").unwrap()), b"rotated", "the refreshed value replaces the cached one");
    let stats = stats_of(&mut h, "prod");
    assert_eq!((stats.refresh_limited, stats.refreshes, h.backend.request_count()), (10, 1, 2));
}

#[test]
fn refresh_ahead_refreshes_once_per_interval_and_keeps_the_value_when_it_fails() {
    let mut h = Harness::start(|p, url| {
        p.vault("prod", url, "t")
            .set_default("cache.ttl_ms", 100_000)
            .set_default("cache.refresh_ahead_percent", 50)
            .set_default("cache.refresh_interval_ms", 10_000)
            .set_default("retry.attempts", 1)
    });
    h.backend.put_vault("db", 1, &[("value", "v1")]);
    h.get("prod", "db").unwrap();
    h.clock.advance(Duration::from_millis(30_000));
    h.get("prod", "db").unwrap();
    assert_eq!(h.backend.request_count(), 1, "not due before half the TTL");

    h.backend.put_vault("db", 2, &[("value", "v2")]);
    h.clock.advance(Duration::from_millis(20_000));
    h.backend.set_fault_always(Some(Fault::vault_sealed()));
    for _ in 0..10 {
        let kept = h.get("prod", "db").unwrap();
        assert_eq!((value(&kept), kept.stale), (&b"v1"[..], false), "a failed refresh keeps the fresh value");
    }
    assert_eq!(h.backend.request_count(), 2, "a burst of hits makes one refresh in the interval");

    h.backend.set_fault_always(None);
    h.clock.advance(Duration::from_millis(10_000));
    assert_eq!(value(&h.get("prod", "db").unwrap()), b"v2", "the next interval's refresh brings the new version");
    assert_eq!(h.backend.request_count(), 3);
}

#[test]
fn retries_stop_when_the_budget_is_empty() {
    let mut h = Harness::start(|p, url| {
        p.vault("prod", url, "t")
            .set_default("cache.max_stale_ms", 0)
            .set_default("retry.budget.ratio_percent", 0)
            .set_default("retry.budget.min_per_sec", 0)
    });
    h.backend.set_fault_always(Some(Fault::vault_sealed()));
    assert!(matches!(secret_error(h.get("prod", "db")), SecretError::Backend { status: Some(503), .. }));
    assert_eq!(h.backend.request_count(), 1, "an empty budget allows the first attempt only");
    let stats = stats_of(&mut h, "prod");
    assert_eq!((stats.budget_exhausted, stats.retries), (1, 0));
}

#[test]
fn a_failure_rate_window_opens_the_breaker_without_consecutive_failures() {
    let mut h = Harness::start(|p, url| {
        p.vault("prod", url, "t")
            .set_default("cache.ttl_ms", 0)
            .set_default("retry.attempts", 1)
            .set_default("breaker.failure_threshold", 100)
            .set_default("breaker.window_size", 4)
            .set_default("breaker.failure_rate_percent", 50)
            .set_default("breaker.min_calls", 4)
    });
    h.backend.put_vault("db", 1, &[("value", "v")]);
    for i in 0..4 {
        if i % 2 == 1 {
            h.backend.fail_next(1, Fault::vault_sealed());
        }
        let _ = h.get("prod", "db");
    }
    assert_eq!(stats_of(&mut h, "prod").breaker, BreakerState::Open, "2 failures in 4 calls is 50 %");
    assert!(matches!(secret_error(h.get("prod", "db")), SecretError::Unavailable { .. }));
    assert_eq!(h.backend.request_count(), 4);
}

#[test]
fn slow_successes_count_as_failures_and_open_the_breaker() {
    // Real time here: the call's duration is what is measured (200 ms against a 50 ms limit).
    let backend = FakeBackend::start();
    backend.put_vault("db", 1, &[("value", "v")]);
    let policy = quick_defaults()
        .vault("prod", &backend.url(), "t")
        .set_default("cache.ttl_ms", 0)
        .set_default("breaker.failure_threshold", 2)
        .set_default("breaker.slow_call_ms", 50);
    let runtime = Runtime::new(policy.config(), test_options()).unwrap();
    let mut client = runtime.client().unwrap();
    backend.set_fault_always(Some(Fault::Delay(Duration::from_millis(200))));
    for _ in 0..2 {
        assert_eq!(client.get(&Request::new("prod", "db")).unwrap().value.expose(), b"v", "slow, but delivered");
    }
    let stats = client.stats().unwrap().remove(0);
    assert_eq!(stats.breaker, BreakerState::Open);
    assert!(matches!(client.get(&Request::new("prod", "db")), Err(edge_secrets_host::Error::Secret(SecretError::Unavailable { .. }))));
}

#[test]
fn retry_after_pauses_the_tier_for_later_reads_too() {
    let mut h = Harness::start(|p, url| p.vault("prod", url, "t"));
    h.backend.put_vault("a", 1, &[("value", "a")]);
    h.backend.put_vault("b", 1, &[("value", "b")]);
    h.backend.fail_next(1, Fault::vault_error(429, "slow down").retry_after("30"));
    assert_eq!(secret_error(h.get("prod", "a")), SecretError::RateLimited { retry_after_ms: Some(30_000) });
    h.clock.advance(Duration::from_secs(10));
    match secret_error(h.get("prod", "b")) {
        SecretError::RateLimited { retry_after_ms: Some(left) } => assert!((15_000..=20_000).contains(&left), "{left} ms left"),
        other => panic!("expected rate-limited, got {other:?}"),
    }
    assert_eq!(h.backend.request_count(), 1, "nothing is sent during the pause the backend asked for");
    assert_eq!(stats_of(&mut h, "prod").tiers[0].skipped, 1);
    h.clock.advance(Duration::from_secs(20));
    assert_eq!(value(&h.get("prod", "b").unwrap()), b"b");
}
