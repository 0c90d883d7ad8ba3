use std::collections::BTreeMap;

use super::*;
use crate::model::{BreakerState, EnvironmentHealth, EnvironmentStats, ErrorCounts, HealthReport, Secret, SecretRead};

const TOKENS: &str = r#"{"dev": ["dev-token"], "prod": "prod-token"}"#;

struct FakeSettings(BTreeMap<String, String>);

impl Settings for FakeSettings {
    fn get(&self, key: &str) -> Result<Option<String>, String> {
        Ok(self.0.get(key).cloned())
    }
}

fn settings(tokens: Option<&str>) -> FakeSettings {
    FakeSettings(tokens.map(|t| (CALLER_TOKENS_KEY.to_string(), t.to_string())).into_iter().collect())
}

/// Answers `dev/app/db` with `pw`; records every call.
#[derive(Default)]
struct FakeSecrets {
    reads: Vec<SecretRead>,
    admin_calls: usize,
    answer: Option<SecretError>,
}

impl Secrets for FakeSecrets {
    fn get(&mut self, read: &SecretRead) -> Result<Secret, SecretError> {
        self.reads.push(read.clone());
        if let Some(error) = &self.answer {
            return Err(error.clone());
        }
        match (read.environment.as_str(), read.name.as_str()) {
            ("dev", "app/db") => Ok(Secret { value: b"pw".to_vec(), version: "2".into(), from_cache: false }),
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
            breaker: BreakerState::Closed,
            cache_entries: 1,
            counters_shared: false,
        }]
    }

    fn health(&mut self) -> HealthReport {
        self.admin_calls += 1;
        HealthReport {
            ok: true,
            config_error: None,
            environments: vec![EnvironmentHealth { environment: "dev".into(), breaker: BreakerState::Closed, retry_after_ms: None }],
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
    let request = Incoming { method: "GET", target, authorization: authorization.iter().map(|a| a.as_bytes()).collect() };
    handle(&request, settings, secrets)
}

#[test]
fn an_authorized_read_returns_the_value() {
    let mut secrets = FakeSecrets::default();
    let reply = get("/v1/secrets/dev/app%2Fdb?field=password&version=2", &["Bearer dev-token"], &mut secrets);
    assert_eq!((reply.status, reply.body.as_slice()), (200, &b"pw"[..]));
    assert_eq!(secrets.reads, [SecretRead { environment: "dev".into(), name: "app/db".into(), version: Some("2".into()), field: Some("password".into()) }]);
}

#[test]
fn refusals_happen_before_the_secrets_interface_is_touched() {
    let mut secrets = FakeSecrets::default();
    let cases: [(&str, &[&str], u16); 8] = [
        ("/v1/secrets/dev/app/db", &[], 401),
        ("/v1/secrets/dev/app/db", &["Basic ZGV2"], 401),
        ("/v1/secrets/dev/app/db", &["Bearer"], 401),
        ("/v1/secrets/dev/app/db", &["Bearer wrong"], 403),
        ("/v1/secrets/prod/app/db", &["Bearer dev-token"], 403),
        ("/v1/secrets/qa/app/db", &["Bearer dev-token"], 403),
        ("/v1/secrets/d%65v/app/db", &["Bearer dev-token"], 403),
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
    for auth in [&[][..], &["Bearer wrong"][..], &["Bearer dev-token"][..]] {
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
    let reply = get("/v1/secrets/dev/a%zz", &["Bearer dev-token"], &mut secrets);
    assert_eq!(reply.status, 400);
    let reply = get("/v1/secrets/dev/a?color=red", &["Bearer dev-token"], &mut secrets);
    assert_eq!(reply.status, 400);
    assert!(secrets.reads.is_empty());
}

#[test]
fn component_errors_are_mapped() {
    let mut secrets = FakeSecrets::default();
    assert_eq!(get("/v1/secrets/dev/missing", &["Bearer dev-token"], &mut secrets).status, 404);
    secrets.answer = Some(SecretError::Unavailable(2500));
    let reply = get("/v1/secrets/dev/app/db", &["Bearer dev-token"], &mut secrets);
    assert_eq!((reply.status, reply.header("retry-after")), (503, Some("3")));
}

#[test]
fn a_missing_or_broken_token_setting_is_a_500_config_error() {
    let mut secrets = FakeSecrets::default();
    for broken in [None, Some("{not json"), Some(r#"{"dev": 1}"#)] {
        let reply = get_with("/v1/secrets/dev/app/db", &["Bearer dev-token"], &mut secrets, &settings(broken));
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
fn health_and_metrics_need_no_token_and_unknown_routes_are_404_or_405() {
    let mut secrets = FakeSecrets::default();
    assert_eq!(get("/healthz", &[], &mut secrets).status, 200);
    let metrics = get("/metrics", &[], &mut secrets);
    assert_eq!(metrics.status, 200);
    assert!(String::from_utf8(metrics.body).unwrap().contains(r#"edge_secrets_cache_hits_total{environment="dev",backend="vault"} 1"#));
    assert_eq!(secrets.admin_calls, 3);
    assert_eq!(get("/v1/other", &[], &mut secrets).status, 404);
    let request = Incoming { method: "DELETE", target: "/v1/secrets/dev/app/db", authorization: vec![b"Bearer dev-token"] };
    let reply = handle(&request, &settings(Some(TOKENS)), &mut secrets);
    assert_eq!((reply.status, reply.header("allow")), (405, Some("GET")));
    assert!(secrets.reads.is_empty());
}
