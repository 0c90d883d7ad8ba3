use std::collections::BTreeMap;

use super::*;
use crate::model::{BreakerState, EnvironmentHealth, EnvironmentStats, ErrorCounts, HealthReport, Secret, SecretRead, Histogram, TierStats};

const TOKENS: &str = r#"{"dev": ["dev-Xq7vK2pL9mN4rT8wY3zB"], "prod": "prod-Hc5jW1sD6fG0aE2uJ7"}"#;

struct FakeSettings(BTreeMap<String, String>);

impl Settings for FakeSettings {
    fn get(&self, key: &str) -> Result<Option<String>, String> {
        Ok(self.0.get(key).cloned())
    }
}

/// Bounds 1 µs and 2.5 ms, then the overflow bucket.
fn histogram(counts: &[u64], sum_us: u64) -> Histogram {
    Histogram { bounds_us: vec![1, 2_500], counts: counts.to_vec(), sum_us }
}

/// The admin token `settings` configures.
const ADMIN: &str = "admin-Lm3nB8vC1xZ6qW0eR5tY";
const AS_ADMIN: &[&str] = &["Bearer admin-Lm3nB8vC1xZ6qW0eR5tY"];

fn settings(tokens: Option<&str>) -> FakeSettings {
    let mut all: BTreeMap<String, String> = tokens.map(|t| (CALLER_TOKENS_KEY.to_string(), t.to_string())).into_iter().collect();
    all.insert(crate::auth::ADMIN_TOKENS_KEY.to_string(), ADMIN.to_string());
    FakeSettings(all)
}

/// Answers `dev/app/db` with `pw` (and `dev/old` with a stale value from tier 1); records
/// every call.
#[derive(Default)]
struct FakeSecrets {
    reads: Vec<SecretRead>,
    admin_calls: usize,
    answer: Option<SecretError>,
}

/// A value the tests can look for in output that must never contain it.
const STALE_VALUE: &[u8] = b"stale-pw";

impl Secrets for FakeSecrets {
    fn get(&mut self, read: &SecretRead) -> Result<Secret, SecretError> {
        self.reads.push(read.clone());
        if let Some(error) = &self.answer {
            return Err(error.clone());
        }
        match (read.environment.as_str(), read.name.as_str()) {
            ("dev", "app/db") => Ok(Secret { value: b"pw".to_vec(), version: "2".into(), from_cache: false, stale: false, tier: 0 }),
            ("dev", "old") => Ok(Secret { value: STALE_VALUE.to_vec(), version: "9".into(), from_cache: true, stale: true, tier: 1 }),
            ("dev" | "prod", _) => Err(SecretError::NotFound("no such secret".into())),
            (env, _) => Err(SecretError::UnknownEnvironment(env.into())),
        }
    }

    fn stats(&mut self) -> Vec<EnvironmentStats> {
        self.admin_calls += 1;
        vec![EnvironmentStats {
            environment: "dev".into(),
            backend: "vault".into(),
            hits: 1,
            misses: 1,
            shared_hits: 0,
            shared_rejected: 0,
            backend_calls: 1,
            retries: 0,
            errors: ErrorCounts::default(),
            // Distinct values, so a test catches one counter rendered from another's field.
            stale_served: 11,
            negative_hits: 12,
            fallbacks: 13,
            refreshes: 14,
            refresh_limited: 15,
            budget_exhausted: 16,
            breaker: BreakerState::Closed,
            cache_entries: 1,
            counters_shared: false,
            hit_latency: histogram(&[5, 2, 0], 12),
            tiers: vec![
                TierStats { backend: "vault".into(), breaker: BreakerState::Open, backend_calls: 21, retries: 22, failures: 23, breaker_opened: 24, breaker_closed: 25, skipped: 26, call_latency: histogram(&[3, 0, 1], 2_503_000) },
                TierStats { backend: "gcp".into(), breaker: BreakerState::Closed, backend_calls: 31, retries: 32, failures: 33, breaker_opened: 34, breaker_closed: 35, skipped: 36, call_latency: Histogram::default() },
            ],
        }]
    }

    fn health(&mut self) -> HealthReport {
        self.admin_calls += 1;
        HealthReport {
            ok: true,
            config_error: None,
            environments: vec![EnvironmentHealth {
                environment: "dev".into(),
                breaker: BreakerState::Closed,
                retry_after_ms: None,
                tiers: vec![BreakerState::Open, BreakerState::Closed],
            }],
            unknown_environment_errors: 0,
            shared_status: "disabled",
            shared_error: None,
        }
    }
}

fn get(target: &str, authorization: &[&str], secrets: &mut FakeSecrets) -> Reply {
    get_with(target, authorization, secrets, &settings(Some(TOKENS)))
}

fn get_with(target: &str, authorization: &[&str], secrets: &mut FakeSecrets, settings: &FakeSettings) -> Reply {
    get_traced(target, authorization, &[], secrets, settings)
}

fn get_traced(target: &str, authorization: &[&str], traceparent: &[&str], secrets: &mut FakeSecrets, settings: &FakeSettings) -> Reply {
    fn bytes<'a>(values: &[&'a str]) -> Vec<&'a [u8]> {
        values.iter().map(|v| v.as_bytes()).collect()
    }
    let request = Incoming { method: "GET", target, authorization: bytes(authorization), traceparent: bytes(traceparent) };
    handle(&request, settings, secrets)
}

#[test]
fn an_authorized_read_returns_the_value() {
    let mut secrets = FakeSecrets::default();
    let reply = get("/v1/secrets/dev/app%2Fdb?field=password&version=2", &["Bearer dev-Xq7vK2pL9mN4rT8wY3zB"], &mut secrets);
    assert_eq!((reply.status, reply.body.as_slice()), (200, &b"pw"[..]));
    let expected = SecretRead {
        environment: "dev".into(),
        name: "app/db".into(),
        version: Some("2".into()),
        field: Some("password".into()),
        refresh: false,
        traceparent: None,
    };
    assert_eq!(secrets.reads, [expected]);
    assert_eq!((reply.header("x-secret-stale"), reply.header("x-secret-tier"), reply.header("warning")), (Some("false"), Some("0"), None));
}

#[test]
fn refusals_happen_before_the_secrets_interface_is_touched() {
    let mut secrets = FakeSecrets::default();
    let cases: [(&str, &[&str], u16); 8] = [
        ("/v1/secrets/dev/app/db", &[], 401),
        ("/v1/secrets/dev/app/db", &["Basic ZGV2"], 401),
        ("/v1/secrets/dev/app/db", &["Bearer"], 401),
        ("/v1/secrets/dev/app/db", &["Bearer wrong"], 403),
        ("/v1/secrets/prod/app/db", &["Bearer dev-Xq7vK2pL9mN4rT8wY3zB"], 403),
        ("/v1/secrets/qa/app/db", &["Bearer dev-Xq7vK2pL9mN4rT8wY3zB"], 403),
        ("/v1/secrets/d%65v/app/db", &["Bearer dev-Xq7vK2pL9mN4rT8wY3zB"], 403),
        ("/v1/secrets/dev/%zz", &[], 401),
    ];
    for (target, auth, status) in cases {
        assert_eq!(get(target, auth, &mut secrets).status, status, "{target} {auth:?}");
    }
    assert!(secrets.reads.is_empty(), "no read may happen before authentication: {:?}", secrets.reads);
}

#[test]
fn refusal_bodies_do_not_depend_on_what_exists() {
    let mut secrets = FakeSecrets::default();
    for auth in [&[][..], &["Bearer wrong"][..], &["Bearer dev-Xq7vK2pL9mN4rT8wY3zB"][..]] {
        let answers: Vec<(u16, Vec<u8>)> = ["/v1/secrets/prod/app/db", "/v1/secrets/prod/nope", "/v1/secrets/nowhere/app/db"]
            .iter()
            .map(|t| {
                let r = get(t, auth, &mut secrets);
                (r.status, r.body)
            })
            .collect();
        assert!(answers.iter().all(|a| a == &answers[0]), "{auth:?}: {answers:?}");
        assert!(answers[0].0 == 401 || answers[0].0 == 403);
    }
}

#[test]
fn a_malformed_name_or_query_is_a_400_after_authentication() {
    let mut secrets = FakeSecrets::default();
    let reply = get("/v1/secrets/dev/a%zz", &["Bearer dev-Xq7vK2pL9mN4rT8wY3zB"], &mut secrets);
    assert_eq!(reply.status, 400);
    let reply = get("/v1/secrets/dev/a?color=red", &["Bearer dev-Xq7vK2pL9mN4rT8wY3zB"], &mut secrets);
    assert_eq!(reply.status, 400);
    assert!(secrets.reads.is_empty());
}

#[test]
fn component_errors_are_mapped() {
    let mut secrets = FakeSecrets::default();
    assert_eq!(get("/v1/secrets/dev/missing", &["Bearer dev-Xq7vK2pL9mN4rT8wY3zB"], &mut secrets).status, 404);
    secrets.answer = Some(SecretError::Unavailable(2500));
    let reply = get("/v1/secrets/dev/app/db", &["Bearer dev-Xq7vK2pL9mN4rT8wY3zB"], &mut secrets);
    assert_eq!((reply.status, reply.header("retry-after")), (503, Some("3")));
}

#[test]
fn a_missing_or_broken_token_setting_is_a_500_config_error() {
    let mut secrets = FakeSecrets::default();
    for broken in [None, Some("{not json"), Some(r#"{"dev": 1}"#)] {
        let reply = get_with("/v1/secrets/dev/app/db", &["Bearer dev-Xq7vK2pL9mN4rT8wY3zB"], &mut secrets, &settings(broken));
        assert_eq!(reply.status, 500, "{broken:?}");
        let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(body["error"], "config");
        assert!(body["message"].as_str().unwrap().starts_with("caller_tokens"), "{body}");
    }
    // Without a header it is still a 401: nothing about the configuration is revealed.
    assert_eq!(get_with("/v1/secrets/dev/app/db", &[], &mut secrets, &settings(None)).status, 401);
    assert!(secrets.reads.is_empty());
}

#[test]
fn details_need_the_admin_token_and_unknown_routes_are_404_or_405() {
    let mut secrets = FakeSecrets::default();
    assert_eq!(get("/healthz", AS_ADMIN, &mut secrets).status, 200);
    let metrics = get("/metrics", AS_ADMIN, &mut secrets);
    assert_eq!(metrics.status, 200);
    assert!(String::from_utf8(metrics.body).unwrap().contains(r#"edge_secrets_cache_hits_total{environment="dev",backend="vault"} 1"#));
    assert_eq!(secrets.admin_calls, 3);
    // Without a token: a bare liveness answer that reads nothing, and no metrics.
    let live = get("/healthz", &[], &mut secrets);
    assert_eq!((live.status, live.body.as_slice()), (200, &br#"{"ok":true}"#[..]));
    assert_eq!(get("/metrics", &[], &mut secrets).status, 401);
    // A caller token is not an admin token; nor is a malformed header.
    for (auth, status) in [(&["Bearer dev-Xq7vK2pL9mN4rT8wY3zB"][..], 403), (&["Bearer wrong"][..], 403), (&["Basic eA=="][..], 401)] {
        assert_eq!(get("/metrics", auth, &mut secrets).status, status, "{auth:?}");
        assert_eq!(get("/healthz", auth, &mut secrets).status, status, "{auth:?}");
    }
    assert_eq!(secrets.admin_calls, 3, "no refused or anonymous request reached the store");
    // Without `admin_tokens` every token is refused; a weak one is a config error naming the key.
    let unset = FakeSettings(BTreeMap::from([(CALLER_TOKENS_KEY.to_string(), TOKENS.to_string())]));
    assert_eq!(get_with("/metrics", AS_ADMIN, &mut secrets, &unset).status, 403);
    let weak = FakeSettings(BTreeMap::from([(crate::auth::ADMIN_TOKENS_KEY.to_string(), "admin".to_string())]));
    let reply = get_with("/metrics", &["Bearer admin"], &mut secrets, &weak);
    assert_eq!(reply.status, 500);
    assert!(String::from_utf8(reply.body).unwrap().contains("admin_tokens[0]: the token is too weak"));
    assert_eq!(get("/v1/other", &[], &mut secrets).status, 404);
    let request = Incoming { method: "DELETE", target: "/v1/secrets/dev/app/db", authorization: vec![b"Bearer dev-Xq7vK2pL9mN4rT8wY3zB"], traceparent: vec![] };
    let reply = handle(&request, &settings(Some(TOKENS)), &mut secrets);
    assert_eq!((reply.status, reply.header("allow")), (405, Some("GET")));
    assert!(secrets.reads.is_empty());
}

#[test]
fn refresh_true_or_1_is_passed_and_other_values_are_a_400_naming_it() {
    let mut secrets = FakeSecrets::default();
    for query in ["refresh=true", "refresh=1", "field=password&refresh=true"] {
        let reply = get(&format!("/v1/secrets/dev/app/db?{query}"), &["Bearer dev-Xq7vK2pL9mN4rT8wY3zB"], &mut secrets);
        assert_eq!(reply.status, 200, "{query}");
        assert!(secrets.reads.pop().unwrap().refresh, "{query}");
    }
    get("/v1/secrets/dev/app/db", &["Bearer dev-Xq7vK2pL9mN4rT8wY3zB"], &mut secrets);
    assert!(!secrets.reads.pop().unwrap().refresh);
    for query in ["refresh=yes", "refresh=false", "refresh=0", "refresh=True", "refresh", "refresh=1&refresh=1"] {
        let reply = get(&format!("/v1/secrets/dev/app/db?{query}"), &["Bearer dev-Xq7vK2pL9mN4rT8wY3zB"], &mut secrets);
        assert_eq!(reply.status, 400, "{query}");
        let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(body["error"], "invalid-request");
        assert!(body["message"].as_str().unwrap().contains("`refresh`"), "{query}: {body}");
    }
    assert!(secrets.reads.is_empty(), "a bad refresh value must not reach the provider");
    // Still authenticated first: a bad value tells an unauthenticated caller nothing.
    assert_eq!(get("/v1/secrets/dev/app/db?refresh=yes", &[], &mut secrets).status, 401);
}

#[test]
fn a_valid_traceparent_is_forwarded_and_a_malformed_one_dropped() {
    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut secrets = FakeSecrets::default();
    let tokens = settings(Some(TOKENS));
    let mut read_with = |traceparent: &[&str]| {
        let reply = get_traced("/v1/secrets/dev/app/db", &["Bearer dev-Xq7vK2pL9mN4rT8wY3zB"], traceparent, &mut secrets, &tokens);
        assert_eq!(reply.status, 200, "{traceparent:?}: a bad traceparent never fails the read");
        secrets.reads.pop().unwrap().traceparent
    };
    assert_eq!(read_with(&[VALID]).as_deref(), Some(VALID));
    // A later version is passed on in the version-00 form the provider parses.
    let future = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more";
    assert_eq!(read_with(&[future]).as_deref(), Some(VALID));
    assert_eq!(read_with(&[]), None);
    for malformed in [
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        "garbage",
    ] {
        assert_eq!(read_with(&[malformed]), None, "{malformed}");
    }
    assert_eq!(read_with(&[VALID, VALID]), None, "two traceparent headers start a new trace");
}

#[test]
fn a_stale_fallback_answer_carries_stale_tier_and_warning_headers() {
    let mut secrets = FakeSecrets::default();
    let reply = get("/v1/secrets/dev/old", &["Bearer dev-Xq7vK2pL9mN4rT8wY3zB"], &mut secrets);
    assert_eq!((reply.status, reply.body.as_slice()), (200, STALE_VALUE));
    assert_eq!((reply.header("x-secret-stale"), reply.header("x-secret-tier")), (Some("true"), Some("1")));
    assert_eq!(reply.header("warning"), Some(r#"110 - "response is stale""#));
    assert_eq!((reply.header("x-secret-version"), reply.header("x-secret-source")), (Some("9"), Some("cache")));
    assert!(reply.headers.iter().all(|(_, v)| !v.as_bytes().windows(STALE_VALUE.len()).any(|w| w == STALE_VALUE)), "the value never goes in a header");
}

#[test]
fn metrics_have_the_new_environment_counters_and_per_tier_families() {
    let mut secrets = FakeSecrets::default();
    let text = String::from_utf8(get("/metrics", AS_ADMIN, &mut secrets).body).unwrap();
    let env = r#"environment="dev",backend="vault""#;
    let mut expected: Vec<String> = [
        ("stale_served", 11),
        ("negative_hits", 12),
        ("fallbacks", 13),
        ("refreshes", 14),
        ("refresh_limited", 15),
        ("budget_exhausted", 16),
    ]
    .iter()
    .map(|(name, n)| format!("edge_secrets_{name}_total{{{env}}} {n}"))
    .collect();
    let tiers = [(r#"environment="dev",backend="vault",tier="0""#, 20, "open"), (r#"environment="dev",backend="gcp",tier="1""#, 30, "closed")];
    for (labels, base, state) in tiers {
        for (i, name) in ["backend_calls", "retries", "failures", "breaker_opened", "breaker_closed", "skipped"].iter().enumerate() {
            expected.push(format!("edge_secrets_tier_{name}_total{{{labels}}} {}", base + i + 1));
        }
        for other in ["closed", "open", "half-open"] {
            expected.push(format!(r#"edge_secrets_tier_breaker_state{{{labels},state="{other}"}} {}"#, u8::from(other == state)));
        }
    }
    expected.push("# TYPE edge_secrets_tier_backend_calls_total counter".into());
    expected.push("# TYPE edge_secrets_tier_breaker_state gauge".into());
    expected.push("# TYPE edge_secrets_budget_exhausted_total counter".into());
    // The names that existed before per-tier stats are unchanged.
    expected.push(format!(r#"edge_secrets_breaker_state{{{env},state="closed"}} 1"#));
    expected.push(format!("edge_secrets_backend_calls_total{{{env}}} 1"));
    for line in &expected {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
    // Each family is declared once (Prometheus rejects a repeated TYPE).
    let types: Vec<_> = text.lines().filter(|l| l.starts_with("# TYPE ")).collect();
    let mut unique = types.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(types.len(), unique.len(), "{text}");
}

#[test]
fn healthz_lists_each_tier_breaker() {
    let mut secrets = FakeSecrets::default();
    let body: serde_json::Value = serde_json::from_slice(&get("/healthz", AS_ADMIN, &mut secrets).body).unwrap();
    assert_eq!(body["environments"][0]["tiers"], serde_json::json!(["open", "closed"]));
    assert_eq!(body["environments"][0]["breaker"], "closed");
}

#[test]
fn metrics_render_latency_histograms_with_cumulative_buckets_in_seconds() {
    let mut secrets = FakeSecrets::default();
    let text = String::from_utf8(get("/metrics", AS_ADMIN, &mut secrets).body).unwrap();
    assert_eq!(text.matches("# TYPE edge_secrets_hit_latency_seconds histogram").count(), 1);
    for line in [
        r#"edge_secrets_hit_latency_seconds_bucket{environment="dev",backend="vault",le="0.000001"} 5"#,
        r#"edge_secrets_hit_latency_seconds_bucket{environment="dev",backend="vault",le="0.0025"} 7"#,
        r#"edge_secrets_hit_latency_seconds_bucket{environment="dev",backend="vault",le="+Inf"} 7"#,
        r#"edge_secrets_hit_latency_seconds_sum{environment="dev",backend="vault"} 0.000012"#,
        r#"edge_secrets_hit_latency_seconds_count{environment="dev",backend="vault"} 7"#,
        r#"edge_secrets_tier_call_latency_seconds_bucket{environment="dev",backend="vault",tier="0",le="0.0025"} 3"#,
        r#"edge_secrets_tier_call_latency_seconds_bucket{environment="dev",backend="vault",tier="0",le="+Inf"} 4"#,
        r#"edge_secrets_tier_call_latency_seconds_sum{environment="dev",backend="vault",tier="0"} 2.503"#,
        r#"edge_secrets_tier_call_latency_seconds_count{environment="dev",backend="gcp",tier="1"} 0"#,
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line}");
    }
}

#[test]
fn refused_authentications_are_logged_as_events_without_the_token() {
    let mut secrets = FakeSecrets::default();
    let event = |target: &str, auth: &[&str], secrets: &mut FakeSecrets| {
        let reply = get(target, auth, secrets);
        let request = Incoming { method: "GET", target, authorization: auth.iter().map(|a| a.as_bytes()).collect(), traceparent: vec![] };
        refusal_event(&request, &reply)
    };
    let guess = event("/v1/secrets/prod/app/db", &["Bearer guess-Zz9yX8wV7uT6sR5qP4oN3"], &mut secrets).expect("an event");
    assert_eq!(guess, r#"{"environment":"prod","event":"auth-refused","reason":"wrong-token","route":"secret"}"#);
    assert!(!guess.contains("guess-"));
    let missing = event("/metrics", &[], &mut secrets).unwrap();
    assert!(missing.contains(r#""reason":"missing-token""#) && missing.contains(r#""route":"metrics""#), "{missing}");
    assert!(event("/v1/secrets/dev/app/db", &["Bearer"], &mut secrets).unwrap().contains("malformed-token"));
    assert_eq!(event("/v1/secrets/dev/app/db", &["Bearer dev-Xq7vK2pL9mN4rT8wY3zB"], &mut secrets), None, "granted");
    assert_eq!(event("/healthz", &[], &mut secrets), None, "liveness is no refusal");
}
