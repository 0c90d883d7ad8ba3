//! `/healthz` (JSON from `admin.health`) and `/metrics` (Prometheus text format 0.0.4 from
//! `admin.stats` and `admin.health`). Both are secret-free: the admin interface carries
//! counters, names and breaker states only.
//!
//! With shared state (the policy's `shared` object) the counters are totals over every instance
//! sharing the key-value store — under Spin, one instance per request — and the breaker states
//! are the shared ones. Without it they belong to the instance that answers: a host that reuses
//! instances shows counts since that instance started, a fresh instance shows zeros.
//! `edge_secrets_counters_shared` says which.

use std::fmt::Write as _;

use serde_json::json;

use crate::model::{BreakerState, EnvironmentStats, HealthReport};
use crate::reply::Reply;

pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// 200 when the configuration loaded (open breakers are reported, but the app still serves
/// the other environments), 503 when it did not.
pub fn health(report: &HealthReport) -> Reply {
    let environments: Vec<_> = report
        .environments
        .iter()
        .map(|e| json!({ "environment": e.environment, "breaker": e.breaker.name(), "retry_after_ms": e.retry_after_ms }))
        .collect();
    let body = json!({
        "ok": report.ok,
        "config_error": report.config_error,
        "unknown_environment_errors": report.unknown_environment_errors,
        "environments": environments,
        "shared": { "status": report.shared_status, "last_error": report.shared_error },
    });
    Reply::json(if report.config_error.is_some() { 503 } else { 200 }, &body)
}

/// The Prometheus exposition of `stats` and `health`.
pub fn metrics(stats: &[EnvironmentStats], health: &HealthReport) -> Reply {
    let mut out = String::new();
    let counters: [Counter; 6] = [
        ("edge_secrets_cache_hits_total", "Reads answered from an instance's in-memory cache.", |s| s.hits),
        ("edge_secrets_cache_misses_total", "Reads that missed the in-memory cache.", |s| s.misses),
        ("edge_secrets_shared_hits_total", "Misses answered from the shared (wasi:keyvalue) cache.", |s| s.shared_hits),
        ("edge_secrets_shared_rejected_total", "Shared records that failed to authenticate (never served).", |s| s.shared_rejected),
        ("edge_secrets_backend_calls_total", "HTTP requests sent to the backend, every attempt counted.", |s| s.backend_calls),
        ("edge_secrets_retries_total", "Attempts that retried an earlier failed attempt.", |s| s.retries),
    ];
    for (name, help, value) in counters {
        family(&mut out, name, "counter", help);
        for s in stats {
            let _ = writeln!(out, "{name}{{{}}} {}", env_labels(s), value(s));
        }
    }

    family(&mut out, "edge_secrets_errors_total", "counter", "Errors returned to callers, by kind.");
    for s in stats {
        for (kind, count) in s.errors.by_kind() {
            let _ = writeln!(out, "edge_secrets_errors_total{{{},kind=\"{kind}\"}} {count}", env_labels(s));
        }
    }

    family(&mut out, "edge_secrets_breaker_state", "gauge", "Circuit breaker state: 1 for the current state, 0 for the others.");
    for s in stats {
        for state in BreakerState::ALL {
            let _ = writeln!(out, "edge_secrets_breaker_state{{{},state=\"{}\"}} {}", env_labels(s), state.name(), u8::from(state == s.breaker));
        }
    }

    family(&mut out, "edge_secrets_cache_entries", "gauge", "Entries currently in the answering instance's in-memory cache.");
    for s in stats {
        let _ = writeln!(out, "edge_secrets_cache_entries{{{}}} {}", env_labels(s), s.cache_entries);
    }

    family(&mut out, "edge_secrets_counters_shared", "gauge", "1 when the counters are totals over every instance sharing the key-value store.");
    for s in stats {
        let _ = writeln!(out, "edge_secrets_counters_shared{{{}}} {}", env_labels(s), u8::from(s.counters_shared));
    }

    family(&mut out, "edge_secrets_unknown_environment_errors_total", "counter", "Requests that named an environment that is not configured.");
    let _ = writeln!(out, "edge_secrets_unknown_environment_errors_total {}", health.unknown_environment_errors);
    family(&mut out, "edge_secrets_config_ok", "gauge", "1 when the component's configuration loaded.");
    let _ = writeln!(out, "edge_secrets_config_ok {}", u8::from(health.config_error.is_none()));
    family(&mut out, "edge_secrets_shared_state", "gauge", "Shared-state layer status: 1 for the current one, 0 for the others.");
    for status in ["disabled", "no-key", "ok", "degraded"] {
        let _ = writeln!(out, "edge_secrets_shared_state{{status=\"{status}\"}} {}", u8::from(status == health.shared_status));
    }
    Reply::text(200, METRICS_CONTENT_TYPE, out)
}

/// A counter family: name, help text, and how to read it from one environment's stats.
type Counter = (&'static str, &'static str, fn(&EnvironmentStats) -> u64);

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn env_labels(s: &EnvironmentStats) -> String {
    format!("environment=\"{}\",backend=\"{}\"", escape(&s.environment), escape(&s.backend))
}

/// Label values escape `\`, `"` and newlines (the exposition format's only escapes).
fn escape(value: &str) -> String {
    value.replace('\\', r"\\").replace('"', "\\\"").replace('\n', r"\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EnvironmentHealth, ErrorCounts};

    fn stats() -> Vec<EnvironmentStats> {
        vec![EnvironmentStats {
            environment: "dev".into(),
            backend: "vault".into(),
            hits: 3,
            misses: 2,
            shared_hits: 6,
            shared_rejected: 1,
            backend_calls: 4,
            retries: 1,
            errors: ErrorCounts { not_found: 1, rate_limited: 2, ..Default::default() },
            breaker: BreakerState::HalfOpen,
            cache_entries: 5,
            counters_shared: true,
        }]
    }

    fn report(config_error: Option<&str>) -> HealthReport {
        HealthReport {
            ok: config_error.is_none(),
            config_error: config_error.map(str::to_string),
            environments: vec![EnvironmentHealth { environment: "dev".into(), breaker: BreakerState::Open, retry_after_ms: Some(1500) }],
            unknown_environment_errors: 7,
            shared_status: "degraded",
            shared_error: Some("key-value get: connection refused".into()),
        }
    }

    #[test]
    fn metrics_render_every_family_per_environment() {
        let reply = metrics(&stats(), &report(None));
        assert_eq!((reply.status, reply.header("content-type")), (200, Some(METRICS_CONTENT_TYPE)));
        let text = String::from_utf8(reply.body).unwrap();
        for line in [
            "# TYPE edge_secrets_cache_hits_total counter",
            r#"edge_secrets_cache_hits_total{environment="dev",backend="vault"} 3"#,
            r#"edge_secrets_cache_misses_total{environment="dev",backend="vault"} 2"#,
            r#"edge_secrets_backend_calls_total{environment="dev",backend="vault"} 4"#,
            r#"edge_secrets_retries_total{environment="dev",backend="vault"} 1"#,
            r#"edge_secrets_errors_total{environment="dev",backend="vault",kind="not-found"} 1"#,
            r#"edge_secrets_errors_total{environment="dev",backend="vault",kind="rate-limited"} 2"#,
            r#"edge_secrets_errors_total{environment="dev",backend="vault",kind="timeout"} 0"#,
            "# TYPE edge_secrets_breaker_state gauge",
            r#"edge_secrets_breaker_state{environment="dev",backend="vault",state="half-open"} 1"#,
            r#"edge_secrets_breaker_state{environment="dev",backend="vault",state="closed"} 0"#,
            r#"edge_secrets_cache_entries{environment="dev",backend="vault"} 5"#,
            r#"edge_secrets_shared_hits_total{environment="dev",backend="vault"} 6"#,
            r#"edge_secrets_shared_rejected_total{environment="dev",backend="vault"} 1"#,
            r#"edge_secrets_counters_shared{environment="dev",backend="vault"} 1"#,
            r#"edge_secrets_shared_state{status="degraded"} 1"#,
            r#"edge_secrets_shared_state{status="ok"} 0"#,
            "edge_secrets_unknown_environment_errors_total 7",
            "edge_secrets_config_ok 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        // Every sample line is `name{labels} value` or `name value` with a numeric value.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<u64>().is_ok(), "{line}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), r#"a\"b\\c\nd"#);
    }

    #[test]
    fn health_is_json_and_503_only_without_a_configuration() {
        let reply = health(&report(None));
        assert_eq!((reply.status, reply.header("content-type")), (200, Some("application/json")));
        let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(
            body,
            json!({ "ok": true, "config_error": null, "unknown_environment_errors": 7,
                    "environments": [{ "environment": "dev", "breaker": "open", "retry_after_ms": 1500 }],
                    "shared": { "status": "degraded", "last_error": "key-value get: connection refused" } })
        );
        assert_eq!(health(&report(Some("secrets_policy: is required"))).status, 503);
    }
}
