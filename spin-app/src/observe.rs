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

use crate::model::{BreakerState, EnvironmentStats, HealthReport, Histogram, TierStats};
use crate::reply::Reply;

pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// 200 when the configuration loaded (open breakers are reported, but the app still serves
/// the other environments), 503 when it or one of its environments did not (the report then
/// lists the environments that loaded).
pub fn health(report: &HealthReport) -> Reply {
    let environments: Vec<_> = report
        .environments
        .iter()
        .map(|e| {
            let tiers: Vec<_> = e.tiers.iter().map(|t| t.name()).collect();
            json!({ "environment": e.environment, "breaker": e.breaker.name(), "retry_after_ms": e.retry_after_ms, "tiers": tiers })
        })
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

/// `/healthz` without credentials: the app runs. Reads nothing (no store operation, no
/// configuration): a flood of it costs no more than the 404 route.
pub fn liveness() -> Reply {
    Reply::json(200, &json!({ "ok": true }))
}

/// The Prometheus exposition of `stats` and `health`.
pub fn metrics(stats: &[EnvironmentStats], health: &HealthReport) -> Reply {
    let mut out = String::new();
    let counters: [Counter; 12] = [
        ("edge_secrets_cache_hits_total", "Reads answered from an instance's in-memory cache.", |s| s.hits),
        ("edge_secrets_cache_misses_total", "Reads that missed the in-memory cache.", |s| s.misses),
        ("edge_secrets_shared_hits_total", "Misses answered from the shared (wasi:keyvalue) cache.", |s| s.shared_hits),
        ("edge_secrets_shared_rejected_total", "Shared records that failed to authenticate (never served).", |s| s.shared_rejected),
        ("edge_secrets_backend_calls_total", "HTTP requests sent to the backend, every attempt counted.", |s| s.backend_calls),
        ("edge_secrets_retries_total", "Attempts that retried an earlier failed attempt.", |s| s.retries),
        ("edge_secrets_stale_served_total", "Reads answered with a value past its TTL because the backends failed.", |s| s.stale_served),
        ("edge_secrets_negative_hits_total", "Reads answered from a cached not-found.", |s| s.negative_hits),
        ("edge_secrets_fallbacks_total", "Reads answered by a fallback tier.", |s| s.fallbacks),
        ("edge_secrets_refreshes_total", "Reads sent to the backend although a value was cached (refresh-ahead or refresh).", |s| s.refreshes),
        ("edge_secrets_refresh_limited_total", "Refresh reads answered from the cache, fetched within the refresh interval.", |s| s.refresh_limited),
        ("edge_secrets_budget_exhausted_total", "Reads that would have retried but found the retry budget spent.", |s| s.budget_exhausted),
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

    tier_metrics(&mut out, stats);

    family(&mut out, "edge_secrets_hit_latency_seconds", "histogram", "How long memory hits took inside the component (one hit in 8 is timed).");
    for s in stats {
        histogram(&mut out, "edge_secrets_hit_latency_seconds", &env_labels(s), &s.hit_latency);
    }
    family(&mut out, "edge_secrets_tier_call_latency_seconds", "histogram", "How long each attempt to a backend tier took, answer or failure.");
    for (s, tier, t) in tiers(stats) {
        histogram(&mut out, "edge_secrets_tier_call_latency_seconds", &tier_labels(s, tier, t), &t.call_latency);
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

/// [`Counter`] for one tier's stats.
type TierCounter = (&'static str, &'static str, fn(&TierStats) -> u64);

/// Per-tier families, labelled with the tier's number and its own backend kind (a fallback
/// may be another kind than the primary, which `edge_secrets_breaker_state` reports).
fn tier_metrics(out: &mut String, stats: &[EnvironmentStats]) {
    let counters: [TierCounter; 6] = [
        ("edge_secrets_tier_backend_calls_total", "HTTP requests sent to a backend tier, every attempt counted.", |t| t.backend_calls),
        ("edge_secrets_tier_retries_total", "Attempts to a tier that retried an earlier failed attempt.", |t| t.retries),
        ("edge_secrets_tier_failures_total", "Attempts to a tier that failed transiently (what its breaker counts).", |t| t.failures),
        ("edge_secrets_tier_breaker_opened_total", "Times a tier's breaker opened.", |t| t.breaker_opened),
        ("edge_secrets_tier_breaker_closed_total", "Times a tier's breaker closed again after probing.", |t| t.breaker_closed),
        ("edge_secrets_tier_skipped_total", "Reads that skipped a tier (breaker open, or a Retry-After pause).", |t| t.skipped),
    ];
    for (name, help, value) in counters {
        family(out, name, "counter", help);
        for (s, tier, t) in tiers(stats) {
            let _ = writeln!(out, "{name}{{{}}} {}", tier_labels(s, tier, t), value(t));
        }
    }
    family(out, "edge_secrets_tier_breaker_state", "gauge", "A tier's circuit breaker state: 1 for the current state, 0 for the others.");
    for (s, tier, t) in tiers(stats) {
        for state in BreakerState::ALL {
            let _ = writeln!(out, "edge_secrets_tier_breaker_state{{{},state=\"{}\"}} {}", tier_labels(s, tier, t), state.name(), u8::from(state == t.breaker));
        }
    }
}

/// One Prometheus histogram: cumulative `_bucket` lines (`le` in seconds), `_sum`, `_count`.
fn histogram(out: &mut String, name: &str, labels: &str, h: &Histogram) {
    let mut cumulative = 0u64;
    for (i, count) in h.counts.iter().enumerate() {
        cumulative = cumulative.saturating_add(*count);
        let le = match h.bounds_us.get(i) {
            Some(us) => seconds(*us),
            None => "+Inf".to_string(),
        };
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", seconds(h.sum_us));
    let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
}

/// Microseconds as decimal seconds, exactly (no float rounding): 2500 → `0.0025`.
fn seconds(us: u64) -> String {
    let (whole, frac) = (us / 1_000_000, us % 1_000_000);
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:06}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

fn tiers(stats: &[EnvironmentStats]) -> impl Iterator<Item = (&EnvironmentStats, usize, &TierStats)> {
    stats.iter().flat_map(|s| s.tiers.iter().enumerate().map(move |(i, t)| (s, i, t)))
}

fn tier_labels(s: &EnvironmentStats, tier: usize, t: &TierStats) -> String {
    format!("environment=\"{}\",backend=\"{}\",tier=\"{tier}\"", escape(&s.environment), escape(&t.backend))
}

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

    #[test]
    fn seconds_are_exact_decimals() {
        assert_eq!([seconds(0), seconds(1), seconds(2_500), seconds(1_000_000), seconds(2_503_000)], ["0", "0.000001", "0.0025", "1", "2.503"]);
    }
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
            stale_served: 0,
            negative_hits: 0,
            fallbacks: 0,
            refreshes: 0,
            refresh_limited: 0,
            budget_exhausted: 0,
            breaker: BreakerState::HalfOpen,
            cache_entries: 5,
            counters_shared: true,
            hit_latency: Histogram::default(),
            tiers: vec![],
        }]
    }

    fn report(config_error: Option<&str>) -> HealthReport {
        HealthReport {
            ok: config_error.is_none(),
            config_error: config_error.map(str::to_string),
            environments: vec![EnvironmentHealth {
                environment: "dev".into(),
                breaker: BreakerState::Open,
                retry_after_ms: Some(1500),
                tiers: vec![BreakerState::Open, BreakerState::HalfOpen],
            }],
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
                    "environments": [{ "environment": "dev", "breaker": "open", "retry_after_ms": 1500, "tiers": ["open", "half-open"] }],
                    "shared": { "status": "degraded", "last_error": "key-value get: connection refused" } })
        );
        assert_eq!(health(&report(Some("secrets_policy: is required"))).status, 503);
    }
}
