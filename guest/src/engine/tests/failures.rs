//! Failures: retries, Retry-After, deadlines, the breaker, scheduling under load.

use super::*;

#[test]
fn transient_failures_retry_with_full_jitter_backoff() {
    let mut calls = 0;
    let mut h = Harness::new(&policy(""), Box::new(move |_| {
        calls += 1;
        if calls < 3 { status(502) } else { vault_ok(1, "v") }
    }));
    h.random = FixedRandom(150); // 150 % (100+1) = 49; then 150 % (200+1) = 150
    assert_eq!(h.get("a", "x").unwrap().value.expose(), b"v");
    assert_eq!(h.sent(), 3);
    assert_eq!(h.clock.slept, vec![49, 150]);
    assert_eq!(h.stats("a").retries(), 2);
}

#[test]
fn retries_stop_after_the_attempt_budget_with_the_last_error() {
    let mut h = Harness::new(&policy(""), Box::new(|_| status(500)));
    let err = h.get("a", "x").unwrap_err();
    assert_eq!(err, Error::backend(Some(500), "boom"));
    assert_eq!(h.sent(), 3);
    assert_eq!(h.stats("a").counters.errors.backend, 1);
}

#[test]
fn permanent_failures_are_not_retried_and_map_to_their_kind() {
    let mut h = Harness::new(&policy(""), Box::new(|o: &Outbound| {
        if o.request.path_and_query.contains("denied") { status(403) } else { status(404) }
    }));
    assert!(matches!(h.get("a", "missing"), Err(Error::NotFound(_))));
    assert!(matches!(h.get("a", "denied"), Err(Error::PermissionDenied(_))));
    assert_eq!(h.sent(), 2);
    assert_eq!(h.stats("a").breaker, Phase::Closed);
}

#[test]
fn retry_after_is_honoured_when_it_fits_the_deadline() {
    let mut calls = 0;
    let mut h = Harness::new(&policy(""), Box::new(move |_| {
        calls += 1;
        if calls == 1 {
            Ok(HttpResponse { status: 429, headers: vec![("retry-after".into(), b"1".to_vec())], body: vec![] })
        } else {
            vault_ok(1, "v")
        }
    }));
    h.get("a", "x").unwrap();
    assert_eq!(h.clock.slept, vec![1_000]);
}

#[test]
fn retry_after_past_the_deadline_fails_at_once_as_rate_limited() {
    let mut h = Harness::new(&policy(""), Box::new(|_| {
        Ok(HttpResponse { status: 429, headers: vec![("retry-after".into(), b"30".to_vec())], body: vec![] })
    }));
    assert_eq!(h.get("a", "x").unwrap_err(), Error::RateLimited { retry_after_ms: Some(30_000) });
    assert_eq!(h.sent(), 1);
    assert!(h.clock.slept.is_empty());
}

#[test]
fn timed_out_attempts_are_retried_then_reported_as_timeout() {
    // attempt 500 ms, deadline 2000 ms, no backoff: attempts at 0, 500, 1000 use their full
    // 500 ms; the attempt budget (3) ends the call at 1500 ms with `timeout`.
    let mut h = Harness::new(&policy(""), Box::new(|_| Err(TransportError::Timeout)));
    h.transport.latency_ms = 500;
    h.random = FixedRandom(0);
    let start = h.now();
    let err = h.get("a", "x").unwrap_err();
    assert_eq!(err, Error::Timeout { deadline_ms: 2_000 });
    assert_eq!(h.now() - start, 1_500);
    let timeouts: Vec<u64> = h.transport.sent.iter().map(|o| o.timeout_ms).collect();
    assert_eq!(timeouts, vec![500, 500, 500]);
}

#[test]
fn get_many_keeps_at_most_max_in_flight_requests_per_round() {
    let mut h = Harness::new(&policy(""), Box::new(|_| vault_ok(1, "v")));
    let requests: Vec<SecretRequest> = (0..40).map(|i| req("a", &format!("s{i}"), None, None)).collect();
    let results = h.get_many(&requests);
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(h.transport.batch_sizes, vec![fetch::MAX_IN_FLIGHT, 40 - fetch::MAX_IN_FLIGHT]);
}

#[test]
fn deadline_shortens_the_last_attempt() {
    let policy = policy("").replace(r#""attempt_ms": 500, "deadline_ms": 2000"#, r#""attempt_ms": 1500, "deadline_ms": 2000"#);
    let mut h = Harness::new(&policy, Box::new(|_| Err(TransportError::Connect("refused".into()))));
    h.transport.latency_ms = 1_400;
    h.random = FixedRandom(0);
    let start = h.now();
    // 0: refused after 1400 ms; 1400: retried with the 600 ms left, which run out.
    let err = h.get("a", "x").unwrap_err();
    assert_eq!(err, Error::Timeout { deadline_ms: 2_000 });
    let timeouts: Vec<u64> = h.transport.sent.iter().map(|o| o.timeout_ms).collect();
    assert_eq!(timeouts, vec![1_500, 600]);
    assert_eq!(h.now() - start, 2_000, "the call ends exactly at its deadline");
}

#[test]
fn breaker_opens_after_n_failures_then_sends_nothing() {
    let mut h = Harness::new(&policy(r#", "retry": {"attempts": 1}"#), Box::new(|_| status(503)));
    for _ in 0..3 {
        assert!(matches!(h.get("a", "x"), Err(Error::Backend { .. })));
    }
    assert_eq!(h.stats("a").breaker, Phase::Open);
    let err = h.get("a", "x").unwrap_err();
    assert_eq!(err, Error::Unavailable { retry_after_ms: 5_000 });
    assert_eq!(h.sent(), 3, "an open breaker sends nothing");
    // the other environment is unaffected
    assert_eq!(h.stats("b").breaker, Phase::Closed);
}

#[test]
fn half_open_probes_then_closes_after_m_successes() {
    let healthy = Rc::new(Cell::new(false));
    let flag = healthy.clone();
    let mut h = Harness::new(
        &policy(r#", "retry": {"attempts": 1}, "cache": {"ttl_ms": 0, "pinned_ttl_ms": 0}"#),
        Box::new(move |_| if flag.get() { vault_ok(1, "v") } else { status(503) }),
    );
    for _ in 0..3 {
        let _ = h.get("a", "x");
    }
    h.clock.time.advance(5_000);
    // A failed probe re-opens.
    assert!(matches!(h.get("a", "x"), Err(Error::Backend { .. })));
    assert_eq!(h.stats("a").breaker, Phase::Open);
    assert_eq!(h.sent(), 4);
    h.clock.time.advance(5_000);
    healthy.set(true);
    h.get("a", "x").unwrap();
    assert_eq!(h.stats("a").breaker, Phase::HalfOpen, "one success of two");
    h.get("a", "x").unwrap();
    assert_eq!(h.stats("a").breaker, Phase::Closed);
}

#[test]
fn a_hanging_backend_does_not_hold_back_another_environments_retry() {
    let mut calls_to_b = 0;
    let mut h = Harness::new(&policy(""), Box::new(move |o: &Outbound| {
        if o.request.authority == "gcp-b" {
            calls_to_b += 1;
            if calls_to_b == 1 {
                return status(502);
            }
            return gcp_ok();
        }
        vault_ok(1, "v")
    }));
    // env a hangs (every attempt runs into its 500 ms timeout); env b answers in 5 ms.
    h.transport.latency_of = Some(Box::new(a_hangs_b_is_fast));
    h.random = FixedRandom(1);
    let start = h.now();
    let results = h.get_many(&[req("a", "x", None, None), req("b", "db", None, None)]);
    assert!(matches!(results[0], Err(Error::Timeout { .. })));
    assert_eq!(results[1].as_ref().unwrap().value.expose(), b"hello");
    let b_starts: Vec<u64> = h
        .transport
        .sent
        .iter()
        .zip(&h.transport.started_at)
        .filter(|(o, _)| o.request.authority == "gcp-b")
        .map(|(_, at)| at - start)
        .collect();
    assert_eq!(b_starts.len(), 2);
    assert!(b_starts[1] < 500, "b's retry waited for a's timeout: started at {} ms", b_starts[1]);
}

#[test]
fn one_environment_filling_its_slots_does_not_block_another() {
    let mut h = Harness::new(&policy(r#", "retry": {"attempts": 1}"#), Box::new(both_backends_ok));
    h.transport.latency_of = Some(Box::new(a_hangs_b_is_fast));
    let start = h.now();
    let mut requests: Vec<SecretRequest> = (0..fetch::MAX_IN_FLIGHT + 1).map(|i| req("a", &format!("s{i}"), None, None)).collect();
    requests.push(req("b", "db", None, None));
    let results = h.get_many(&requests);
    assert_eq!(results.last().unwrap().as_ref().unwrap().value.expose(), b"hello");
    let b_start = h.transport.sent.iter().zip(&h.transport.started_at).find(|(o, _)| o.request.authority == "gcp-b").map(|(_, at)| at - start);
    assert_eq!(b_start, Some(0), "b started with the first round, not after a's slots freed");
    assert!(results[..fetch::MAX_IN_FLIGHT].iter().all(|r| matches!(r, Err(Error::Timeout { .. }))));
    // The 33rd waited for a slot; by then its siblings' timeouts had opened a's breaker.
    assert!(matches!(results[fetch::MAX_IN_FLIGHT], Err(Error::Unavailable { .. })), "{:?}", results[fetch::MAX_IN_FLIGHT]);
}

#[test]
fn body_too_large_is_a_permanent_backend_error() {
    let mut h = Harness::new(&policy(""), Box::new(|o: &Outbound| Err(TransportError::BodyTooLarge { limit: o.max_body_bytes })));
    let err = h.get("a", "x").unwrap_err();
    assert_eq!(err, Error::backend(None, "response body exceeds 1048576 bytes"));
    assert_eq!(h.sent(), 1);
}

#[test]
fn slow_answers_are_delivered_but_open_the_breaker() {
    let extra = r#", "retry": {"attempts": 1}, "cache": {"ttl_ms": 0, "pinned_ttl_ms": 0},
        "breaker": {"failure_threshold": 3, "slow_call_ms": 300}"#;
    let mut h = Harness::new(&policy(extra), Box::new(|_| vault_ok(1, "v")));
    h.transport.latency_ms = 299;
    h.get("a", "x").unwrap();
    h.transport.latency_ms = 300;
    for _ in 0..2 {
        assert_eq!(h.get("a", "x").unwrap().value.expose(), b"v", "a slow answer still reaches the caller");
        assert_eq!(h.stats("a").breaker, Phase::Closed);
    }
    h.get("a", "x").unwrap();
    assert_eq!(h.stats("a").breaker, Phase::Open, "three slow answers in a row");
    assert!(matches!(h.get("a", "x"), Err(Error::Unavailable { .. })));
    assert_eq!(h.sent(), 4);
}

#[test]
fn a_failure_rate_window_opens_on_interleaved_failures() {
    let extra = r#", "retry": {"attempts": 1}, "cache": {"ttl_ms": 0, "pinned_ttl_ms": 0},
        "breaker": {"failure_threshold": 3, "window_size": 4, "failure_rate_percent": 50, "min_calls": 4}"#;
    let mut calls = 0;
    let mut h = Harness::new(&policy(extra), Box::new(move |_| {
        calls += 1;
        if calls % 2 == 1 { status(503) } else { vault_ok(1, "v") }
    }));
    for _ in 0..3 {
        let _ = h.get("a", "x");
        assert_eq!(h.stats("a").breaker, Phase::Closed);
    }
    h.get("a", "x").unwrap();
    assert_eq!(h.stats("a").breaker, Phase::Open, "2 of the last 4 failed, never 2 in a row");
}
