//! Retries, Retry-After, deadlines and the circuit breaker, through the real component
//! against a fault-injecting loopback backend.

use std::time::{Duration, Instant};

use edge_secrets_host::{BreakerState, Request, SecretError};
use edge_secrets_tests::harness::secret_error;
use edge_secrets_tests::{Fault, Harness};

fn breaker_of(h: &mut Harness, env: &str) -> BreakerState {
    h.client.stats().unwrap().into_iter().find(|s| s.environment == env).unwrap().breaker
}

#[test]
fn transient_failures_are_retried_up_to_the_attempt_limit() {
    let mut h = Harness::vault();
    h.backend.fail_next(2, Fault::vault_sealed());
    assert_eq!(h.get("prod", "app/db").unwrap().value.expose(), b"pw-one");
    assert_eq!(h.backend.request_count(), 3);
    assert_eq!(h.client.stats().unwrap()[0].retries, 2);

    h.client.invalidate("prod", None).unwrap();
    h.backend.reset_counts();
    h.backend.fail_next(10, Fault::vault_error(500, "internal"));
    let err = secret_error(h.get("prod", "app/db"));
    assert_eq!(err, SecretError::Backend { status: Some(500), reason: "internal".into() });
    assert_eq!(h.backend.request_count(), 3, "default retry.attempts is 3");
}

#[test]
fn permanent_failures_are_not_retried() {
    let mut h = Harness::vault();
    h.backend.fail_next(1, Fault::vault_error(400, "bad request"));
    assert!(matches!(secret_error(h.get("prod", "app/db")), SecretError::Backend { status: Some(400), .. }));
    assert_eq!(h.backend.request_count(), 1);
}

#[test]
fn retry_after_is_honoured() {
    let mut h = Harness::vault();
    h.backend.fail_next(1, Fault::vault_error(429, "slow down").retry_after("1"));
    let started = Instant::now();
    assert_eq!(h.get("prod", "app/db").unwrap().value.expose(), b"pw-one");
    // Backoff alone would retry within 5 ms (max_delay_ms in the test defaults).
    assert!(started.elapsed() >= Duration::from_millis(1_000), "retried after {:?}", started.elapsed());
    assert_eq!(h.backend.request_count(), 2);
}

#[test]
fn retry_after_beyond_the_deadline_returns_rate_limited_at_once() {
    let mut h = Harness::start(|p, url| p.gcp("g", url, "proj", "t"));
    h.backend.put_gcp("proj", "s", 1, b"x");
    h.backend.fail_next(1, Fault::gcp_error(429, "quota").retry_after("30"));
    assert_eq!(secret_error(h.get("g", "s")), SecretError::RateLimited { retry_after_ms: Some(30_000) });
    assert_eq!(h.backend.request_count(), 1);
}

#[test]
fn a_hanging_backend_times_out_within_the_deadline() {
    let mut h = Harness::start(|p, url| {
        p.vault("prod", url, "t").set("prod", "timeouts.attempt_ms", 200).set("prod", "timeouts.deadline_ms", 700)
    });
    h.backend.set_fault_always(Some(Fault::Hang));
    let started = Instant::now();
    let err = secret_error(h.get("prod", "app/db"));
    assert_eq!(err, SecretError::Timeout { deadline_ms: 700 });
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert!(h.backend.request_count() >= 2, "attempts time out one by one and are retried");
}

#[test]
fn a_trickling_backend_is_cut_off_by_the_guests_own_deadline() {
    // Headers at once, then a byte every 50 ms: the host's connect, first-byte and
    // between-bytes timeouts (all 300 ms here) never fire. Only the guest's whole-exchange
    // deadline ends each attempt; without it the call would run until the host's 30 s call
    // limit and fail as a host error, not as `timeout`.
    let mut h = Harness::start(|p, url| {
        p.vault("prod", url, "t").set("prod", "timeouts.attempt_ms", 300).set("prod", "timeouts.deadline_ms", 1_000)
    });
    h.backend.set_fault_always(Some(Fault::Trickle(Duration::from_millis(50))));
    let started = Instant::now();
    let err = secret_error(h.get("prod", "app/db"));
    assert_eq!(err, SecretError::Timeout { deadline_ms: 1_000 });
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
}

#[test]
fn the_breaker_opens_after_n_failures_and_then_sends_nothing() {
    let mut h = Harness::start(|p, url| {
        p.vault("prod", url, "t")
            .vault("other", url, "t")
            .set_default("retry.attempts", 1)
            .set_default("breaker.failure_threshold", 3)
            .set_default("breaker.open_ms", 30_000)
    });
    h.backend.set_fault_always(Some(Fault::vault_sealed()));
    for _ in 0..3 {
        assert!(matches!(secret_error(h.get("prod", "a")), SecretError::Backend { status: Some(503), .. }));
    }
    assert_eq!(breaker_of(&mut h, "prod"), BreakerState::Open);
    h.backend.reset_counts();
    for _ in 0..20 {
        match secret_error(h.get("prod", "a")) {
            SecretError::Unavailable { retry_after_ms } => assert!(retry_after_ms > 0 && retry_after_ms <= 30_000),
            other => panic!("expected unavailable, got {other}"),
        }
    }
    assert_eq!(h.backend.request_count(), 0, "an open breaker sends nothing");
    assert_eq!(breaker_of(&mut h, "other"), BreakerState::Closed, "breakers are per environment");
    let health = h.client.health().unwrap();
    assert!(!health.ok);
}

#[test]
fn not_found_and_denied_never_open_the_breaker() {
    let mut h = Harness::start(|p, url| p.vault("prod", url, "t").set_default("breaker.failure_threshold", 2));
    for _ in 0..5 {
        assert!(matches!(secret_error(h.get("prod", "missing")), SecretError::NotFound(_)));
    }
    assert_eq!(breaker_of(&mut h, "prod"), BreakerState::Closed);
}

#[test]
fn half_open_probes_then_closes_after_m_successes_and_a_failed_probe_reopens() {
    let mut h = Harness::start(|p, url| {
        p.vault("prod", url, "t")
            .set_default("retry.attempts", 1)
            .set_default("cache.ttl_ms", 0)
            .set_default("breaker.failure_threshold", 2)
            .set_default("breaker.open_ms", 10_000)
            .set_default("breaker.success_threshold", 2)
    });
    h.backend.put_vault("a", 1, &[("value", "v")]);
    h.backend.fail_next(3, Fault::vault_sealed());
    let _ = h.get("prod", "a");
    let _ = h.get("prod", "a");
    assert_eq!(breaker_of(&mut h, "prod"), BreakerState::Open);

    // After the open period one probe goes through; it fails (third queued fault) and re-opens.
    h.clock.advance(Duration::from_secs(10));
    assert!(matches!(secret_error(h.get("prod", "a")), SecretError::Backend { .. }));
    assert_eq!(h.backend.request_count(), 3);
    assert!(matches!(secret_error(h.get("prod", "a")), SecretError::Unavailable { .. }));
    assert_eq!(h.backend.request_count(), 3);

    // Next period: the probe succeeds, but two successes are needed to close.
    h.clock.advance(Duration::from_secs(10));
    assert_eq!(h.get("prod", "a").unwrap().value.expose(), b"v");
    assert_eq!(breaker_of(&mut h, "prod"), BreakerState::HalfOpen);
    h.get("prod", "a").unwrap();
    assert_eq!(breaker_of(&mut h, "prod"), BreakerState::Closed);
    assert!(h.client.health().unwrap().ok);
}

#[test]
fn half_open_lets_only_the_configured_number_of_probes_through() {
    let mut h = Harness::start(|p, url| {
        p.vault("prod", url, "t")
            .set_default("retry.attempts", 1)
            .set_default("breaker.failure_threshold", 1)
            .set_default("breaker.open_ms", 10_000)
            .set_default("breaker.half_open_probes", 1)
    });
    for name in ["a", "b", "c"] {
        h.backend.put_vault(name, 1, &[("value", name)]);
    }
    h.backend.fail_next(1, Fault::vault_sealed());
    let _ = h.get("prod", "a");
    h.clock.advance(Duration::from_secs(10));
    h.backend.reset_counts();
    let requests = [Request::new("prod", "a"), Request::new("prod", "b"), Request::new("prod", "c")];
    let results = h.client.get_many(&requests).unwrap();
    assert_eq!(h.backend.request_count(), 1, "one probe while half-open");
    assert_eq!(results[0].as_ref().unwrap().value.expose(), b"a");
    for r in &results[1..] {
        assert!(matches!(r, Err(SecretError::Unavailable { .. })), "{r:?}");
    }
}

#[test]
fn connection_failures_are_transient_backend_errors() {
    let mut h = Harness::vault();
    h.backend.fail_next(10, Fault::CloseConnection);
    let err = secret_error(h.get("prod", "app/db"));
    assert!(matches!(err, SecretError::Backend { status: None, .. }), "{err}");
    assert_eq!(h.backend.request_count(), 3);
}

#[test]
fn a_hanging_environment_does_not_hold_back_another_environments_retry() {
    // `slow` hangs for its whole 2 s deadline; `fast` fails once and must retry within its
    // own 1 s deadline. If answers were collected batch by batch, `fast`'s retry would wait
    // for `slow`'s timeout and miss its deadline.
    let slow = edge_secrets_tests::FakeBackend::start();
    slow.set_fault_always(Some(Fault::Hang));
    let mut h = Harness::start(|p, url| {
        p.vault("fast", url, "t")
            .set("fast", "timeouts.attempt_ms", 500)
            .set("fast", "timeouts.deadline_ms", 1_000)
            .vault("slow", &slow.url(), "t")
            .set("slow", "timeouts.attempt_ms", 2_000)
            .set("slow", "timeouts.deadline_ms", 2_000)
    });
    h.backend.put_vault("s", 1, &[("value", "fast-value")]);
    h.backend.fail_next(1, Fault::vault_sealed());
    let results = h.client.get_many(&[Request::new("slow", "s"), Request::new("fast", "s")]).unwrap();
    assert!(matches!(results[0], Err(SecretError::Timeout { deadline_ms: 2_000 })), "{:?}", results[0]);
    assert_eq!(results[1].as_ref().expect("fast env answered").value.expose(), b"fast-value");
    assert_eq!(h.backend.request_count(), 2, "one failure, one retry");
}
