//! The component's log sink: JSON lines on its stderr (`wasi:cli/stderr`), captured here with
//! a `GuestLog`.

use edge_secrets_host::{GuestLog, Request, Runtime, SecretError};
use edge_secrets_tests::harness::{secret_error, test_options};
use edge_secrets_tests::{FakeBackend, PolicyBuilder};
use serde_json::Value;

fn lines(log: &GuestLog) -> Vec<Value> {
    log.contents()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}")))
        .collect()
}

#[test]
fn a_config_failure_is_logged_once_per_instance_as_a_json_line_without_credentials() {
    let backend = FakeBackend::start();
    let policy = PolicyBuilder::new().vault("prod", &backend.url(), "s.TOPSECRET-TOKEN").log_level("verbose");
    let log = GuestLog::default();
    let runtime = Runtime::new(policy.config(), test_options().guest_log(log.clone())).unwrap();
    let mut client = runtime.client().unwrap();
    for _ in 0..3 {
        let err = secret_error(client.get(&Request::new("prod", "x")));
        assert_eq!(err, SecretError::Config("log.level: must be debug, info, warn or error".into()));
    }
    assert!(!client.health().unwrap().ok);
    let events = lines(&log);
    assert_eq!(events.len(), 1, "{events:#?}");
    let event = &events[0];
    assert_eq!(event["level"], "error");
    assert_eq!(event["event"], "config_error");
    assert_eq!(event["message"], "log.level: must be debug, info, warn or error");
    assert!(event["ts_ms"].is_u64());
    assert!(!log.contents().contains("TOPSECRET"));
    // A new instance has not logged it yet.
    let mut second = runtime.client().unwrap();
    assert!(second.get(&Request::new("prod", "x")).is_err());
    assert_eq!(lines(&log).len(), 2);
}

#[test]
fn a_full_log_sink_never_fails_a_call() {
    let backend = FakeBackend::start();
    backend.put_vault("app/db", 1, &[("value", "v1")]);
    // Room for 8 bytes: the first event's write fails part way.
    let log = GuestLog::new(8);
    let bad = PolicyBuilder::new().vault("prod", &backend.url(), "t").set("prod", "retry.attempts", 0);
    let runtime = Runtime::new(bad.config(), test_options().guest_log(log.clone())).unwrap();
    let mut client = runtime.client().unwrap();
    assert!(matches!(secret_error(client.get(&Request::new("prod", "x"))), SecretError::Config(_)));
    assert_eq!(log.contents().len(), 8);
    // With a valid policy at debug level, reads work with the sink full.
    let good = PolicyBuilder::new().vault("prod", &backend.url(), "t").log_level("debug");
    let runtime = Runtime::new(good.config(), test_options().guest_log(log.clone())).unwrap();
    let mut client = runtime.client().unwrap();
    for _ in 0..3 {
        assert_eq!(client.get(&Request::new("prod", "app/db")).unwrap().value.expose(), b"v1");
    }
}
