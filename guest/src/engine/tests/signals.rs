//! What a read tells operators and backends: trace context on every attempt,
//! log events for retries, breaker transitions, fallbacks and stale answers,
//! and latency histograms.

use super::*;
use crate::engine::HIT_SAMPLE;
use crate::log::{render, Level};

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn traced(name: &str, traceparent: &str) -> SecretRequest {
    SecretRequest { traceparent: Some(traceparent.into()), ..req("a", name, None, None) }
}

fn header<'a>(o: &'a Outbound, name: &str) -> Option<&'a str> {
    o.request.headers.iter().find(|(n, _)| n == name).and_then(|(_, v)| core::str::from_utf8(v).ok())
}

#[test]
fn every_attempt_carries_the_callers_trace_id_with_a_new_span_id() {
    let mut calls = 0;
    let mut h = Harness::new(&policy(""), Box::new(move |_| {
        calls += 1;
        if calls == 1 { status(503) } else { vault_ok(1, "v") }
    }));
    h.get_req(&traced("db", PARENT)).unwrap();
    assert_eq!(h.sent(), 2);
    for sent in &h.transport.sent {
        let child = header(sent, "traceparent").expect("a traceparent on every attempt");
        let parts: Vec<&str> = child.split('-').collect();
        assert_eq!((parts[0], parts[1], parts[3]), ("00", "4bf92f3577b34da6a3ce929d0e0e4736", "01"), "{child}");
        assert_ne!(parts[2], "00f067aa0ba902b7", "a span of its own, not the caller's");
    }
}

#[test]
fn without_a_traceparent_a_read_starts_a_trace_of_its_own() {
    let mut h = Harness::new(&policy(""), Box::new(|_| vault_ok(1, "v")));
    h.get("a", "db").unwrap();
    let child = header(&h.transport.sent[0], "traceparent").unwrap();
    assert!(crate::trace::TraceParent::parse(child).is_ok(), "{child}");
}

#[test]
fn a_malformed_traceparent_is_an_invalid_request_and_nothing_is_sent() {
    let mut h = Harness::new(&policy(""), Box::new(|_| vault_ok(1, "v")));
    for bad in ["", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "not a trace"] {
        assert!(matches!(h.get_req(&traced("db", bad)), Err(Error::InvalidRequest(_))), "{bad:?}");
    }
    assert_eq!(h.sent(), 0);
}

#[test]
fn retries_and_breaker_transitions_are_logged_with_context_but_no_secrets() {
    let mut h = Harness::new(&policy(""), Box::new(|_| status(503)));
    h.provider.set_log_level(Level::Debug);
    let _ = h.get_req(&traced("db", PARENT));
    let events = h.provider.take_log();
    let kinds: Vec<&str> = events.iter().map(|e| e.event).collect();
    assert_eq!(kinds, ["retry", "retry", "breaker_opened", "read_failed"], "3 failed attempts open a threshold-3 breaker");
    let retry = &events[0];
    assert_eq!(
        (retry.environment.as_deref(), retry.secret.as_deref(), retry.backend, retry.tier, retry.error_kind),
        (Some("a"), Some("db"), Some("vault"), Some(0), Some("backend"))
    );
    assert_eq!(retry.trace_id.as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
    for event in &events {
        let line = render(event, 0);
        assert!(!line.contains("token-a") && !line.contains("boom"), "{line}");
    }
    assert!(h.provider.take_log().is_empty(), "drained");
}

#[test]
fn the_log_level_filters_events() {
    let mut h = Harness::new(&policy(""), Box::new(|_| status(503)));
    h.provider.set_log_level(Level::Warn);
    let _ = h.get("a", "db");
    let kinds: Vec<&str> = h.provider.take_log().iter().map(|e| e.event).collect();
    assert_eq!(kinds, ["breaker_opened", "read_failed"], "retries are info");
}

#[test]
fn stale_answers_are_logged_and_counted() {
    let mut up = true;
    let mut h = Harness::new(&policy(r#", "cache": {"ttl_ms": 100, "max_stale_ms": 1000}"#), Box::new(move |_| {
        let answer = if up { vault_ok(1, "v") } else { status(503) };
        up = false;
        answer
    }));
    h.get("a", "db").unwrap();
    h.clock.time.advance(200);
    let stale = h.get("a", "db").unwrap();
    assert!(stale.stale);
    let events = h.provider.take_log();
    assert_eq!(events.last().map(|e| e.event), Some("stale_served"));
    assert_eq!(h.stats("a").counters.stale_served, 1);
}

#[test]
fn hits_and_backend_attempts_land_in_their_histograms() {
    let mut h = Harness::new(&policy(""), Box::new(|_| vault_ok(1, "v")));
    h.get("a", "db").unwrap();
    for _ in 0..3 * HIT_SAMPLE {
        h.get("a", "db").unwrap();
    }
    let stats = h.stats("a");
    assert_eq!(stats.hit_latency.count(), 3, "one hit in HIT_SAMPLE is timed");
    assert_eq!(stats.tiers[0].call_latency.count(), 1);
    // The fake transport answers in 1 ms of fake time.
    assert_eq!(stats.tiers[0].call_latency.sum_us, 1_000);
}
