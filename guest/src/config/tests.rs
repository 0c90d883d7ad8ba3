use alloc::collections::BTreeMap;

use super::*;

fn source(policy: &str, creds: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert(POLICY_KEY.to_string(), policy.to_string());
    for (k, v) in creds {
        m.insert(k.to_string(), v.to_string());
    }
    m
}

const VAULT: &str = r#"{"environments":{"prod":{"backend":"vault","url":"http://127.0.0.1:8200","token_key":"prod_token"}}}"#;

#[test]
fn minimal_vault_environment_gets_defaults() {
    let envs = load(&source(VAULT, &[("prod_token", "s.abc")])).unwrap();
    assert_eq!(envs.len(), 1);
    let env = &envs[0];
    assert_eq!(env.spec.name, "prod");
    assert_eq!(env.spec.primary().backend, BackendSpec::Vault { mount: "secret".into(), namespace: None });
    assert_eq!(env.spec.policy, Policy::default());
    assert!(matches!(env.credential(0).unwrap(), crate::auth::Credential::Token(t) if t.expose() == b"s.abc"));
}

#[test]
fn defaults_then_environment_values_override() {
    let doc = r#"{
        "defaults": {"cache": {"ttl_ms": 10}, "retry": {"attempts": 5}},
        "environments": {
            "a": {"backend":"gcp","url":"https://sm.example","token_key":"t","project":"p-1",
                  "retry": {"attempts": 2}, "breaker": {"failure_threshold": 9}, "max_body_bytes": 2048}
        }}"#;
    let envs = parse_policy(doc).unwrap();
    let p = envs[0].policy;
    assert_eq!(p.cache_ttl_ms, 10);
    assert_eq!(p.retry.attempts(), 2);
    assert_eq!(p.breaker.failure_threshold, 9);
    assert_eq!(p.max_body_bytes, 2048);
    assert_eq!(envs[0].primary().backend, BackendSpec::Gcp { project: "p-1".into() });
}

#[test]
fn environments_are_sorted_by_name() {
    let doc = r#"{"environments":{
        "zeta":{"backend":"vault","url":"http://a","token_key":"t"},
        "alpha":{"backend":"vault","url":"http://b","token_key":"t"}}}"#;
    let names: Vec<String> = parse_policy(doc).unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["alpha", "zeta"]);
}

fn policy_error(doc: &str) -> String {
    parse_policy(doc).unwrap_err()
}

#[test]
fn every_bad_value_is_named_by_its_key() {
    let env = |extra: &str| {
        format!(r#"{{"environments":{{"prod":{{"backend":"vault","url":"http://h","token_key":"t"{extra}}}}}}}"#)
    };
    let cases = [
        (env(r#","retry":{"attempts":0}"#), "environments.prod.retry.attempts: must be between 1 and 10, got 0"),
        (env(r#","retry":{"budget":{"ratio_percent":1001}}"#), "environments.prod.retry.budget.ratio_percent: must be between 0 and 1000, got 1001"),
        (env(r#","retry":{"budget":{"min_per_sec":10001}}"#), "environments.prod.retry.budget.min_per_sec: must be between 0 and 10000, got 10001"),
        (env(r#","retry":{"budget":{"window_ms":999}}"#), "environments.prod.retry.budget.window_ms: must be between 1000 and 600000, got 999"),
        (env(r#","retry":{"budget":{"ratio":5}}"#), "environments.prod.retry.budget.ratio: unknown key"),
        (env(r#","retry":{"base_delay_ms":500,"max_delay_ms":100}"#), "environments.prod.retry: max_delay_ms (100) must be at least base_delay_ms (500)"),
        (env(r#","timeouts":{"attempt_ms":3000,"deadline_ms":1000}"#), "environments.prod.timeouts: deadline_ms (1000) must be at least attempt_ms (3000)"),
        (env(r#","cache":{"max_entries":0}"#), "environments.prod.cache.max_entries: must be between 1 and 1000000, got 0"),
        (env(r#","breaker":{"open_ms":"5s"}"#), "environments.prod.breaker.open_ms: must be a non-negative integer"),
        (env(r#","breaker":{"window_size":20,"failure_rate_percent":50,"min_calls":30}"#), "environments.prod.breaker.min_calls: min_calls (30) must not exceed window_size (20)"),
        (env(r#","breaker":{"window_size":20,"failure_rate_percent":50}"#), "environments.prod.breaker.min_calls: is required with the other window keys"),
        (env(r#","breaker":{"min_calls":5}"#), "environments.prod.breaker.window_size: is required with the other window keys"),
        (env(r#","breaker":{"window_size":200,"failure_rate_percent":50,"min_calls":5}"#), "environments.prod.breaker.window_size: must be between 1 and 128, got 200"),
        (env(r#","breaker":{"window_size":20,"failure_rate_percent":0,"min_calls":5}"#), "environments.prod.breaker.failure_rate_percent: must be between 1 and 100, got 0"),
        (env(r#","breaker":{"slow_call_ms":0}"#), "environments.prod.breaker.slow_call_ms: must be between 1 and 600000, got 0"),
        (env(r#","max_body_bytes":1"#), "environments.prod.max_body_bytes: must be between 1024 and 16777216, got 1"),
        (env(r#","ttl":5"#), "environments.prod.ttl: unknown key"),
        (env(r#","project":"p""#), "environments.prod.project: only applies to the gcp backend"),
        (env(r#","mount":"../sys""#), "environments.prod.mount: must be a Vault path"),
    ];
    for (doc, expected) in cases {
        let err = policy_error(&doc);
        assert!(err.starts_with(expected), "{doc}\n got: {err}\nwant: {expected}");
    }
}

#[test]
fn structural_errors_are_named() {
    assert_eq!(policy_error("{"), "secrets_policy: invalid JSON at line 1 column 1");
    assert_eq!(policy_error("[]"), "policy: must be an object");
    assert_eq!(policy_error("{}"), "environments: is required");
    assert_eq!(policy_error(r#"{"environments":{}}"#), "environments: at least one environment is required");
    assert!(policy_error(r#"{"environments":{"Prod":{}}}"#).starts_with("environments.Prod: environment names must match"));
    assert_eq!(
        policy_error(r#"{"environments":{"p":{"backend":"s3","url":"http://h","token_key":"t"}}}"#),
        r#"environments.p.backend: must be `vault`, `gcp`, `aws` or `azure`, got "s3""#
    );
    assert_eq!(
        policy_error(r#"{"environments":{"p":{"backend":"gcp","url":"http://h","token_key":"t"}}}"#),
        "environments.p.project: is required for the gcp backend"
    );
    assert!(policy_error(r#"{"environments":{"p":{"backend":"vault","url":"ftp://h","token_key":"t"}}}"#)
        .starts_with("environments.p.url: must start with http"));
    assert!(policy_error(r#"{"environments":{"p":{"backend":"vault","url":"http://h","token_key":"Bad-Key"}}}"#)
        .starts_with("environments.p.token_key: must be a config key"));
    assert!(policy_error(r#"{"defaults":{"backend":"vault"},"environments":{"p":{}}}"#).starts_with("defaults.backend: unknown key"));
}

#[test]
fn missing_policy_and_credentials_name_the_key_without_values() {
    let err = load(&BTreeMap::new()).unwrap_err().message;
    assert_eq!(err, "secrets_policy: is not set");
    let err = load(&source(VAULT, &[])).unwrap_err().message;
    assert_eq!(err, "environments.prod.token_key: config key `prod_token` is not set");
    let err = load(&source(VAULT, &[("prod_token", "zq\nxw")])).unwrap_err().message;
    assert!(err.contains("control characters") && !err.contains("zq"), "{err}");
}

struct FailingStore;
impl ConfigSource for FailingStore {
    fn get(&self, _: &str) -> Result<Option<String>, String> {
        Err("store offline".into())
    }
}

#[test]
fn store_errors_are_config_errors() {
    let err = load(&FailingStore).unwrap_err();
    assert_eq!(err.message, "secrets_policy: config store error for `secrets_policy`: store offline");
    assert!(err.store_failure, "a store outage must not be remembered as a bad config");
    assert!(!load(&BTreeMap::new()).unwrap_err().store_failure);
}

#[test]
fn debug_of_an_environment_hides_the_token() {
    let envs = load(&source(VAULT, &[("prod_token", "s.very-secret")])).unwrap();
    let shown = format!("{:?}", envs[0]);
    assert!(!shown.contains("very-secret"), "{shown}");
}

#[test]
fn key_grammars() {
    assert!(is_config_key("prod_vault_token") && !is_config_key("1abc") && !is_config_key("a-b") && !is_config_key(""));
    assert!(is_environment_name("prod-eu_1") && !is_environment_name("-x") && !is_environment_name(&"a".repeat(64)));
}

#[test]
fn breaker_windows_and_slow_calls_are_off_by_default_and_inherit_from_defaults() {
    let plain = parse_policy(VAULT).unwrap();
    assert_eq!((plain[0].policy.breaker.window, plain[0].policy.breaker.slow_call_ms), (None, None));
    let doc = r#"{
        "defaults": {"breaker": {"window_size": 20, "failure_rate_percent": 50, "min_calls": 10}},
        "environments": {
            "a": {"backend":"vault","url":"http://a","token_key":"t", "breaker": {"slow_call_ms": 800, "failure_threshold": 3}},
            "b": {"backend":"vault","url":"http://b","token_key":"t", "breaker": {"window_size": 5, "failure_rate_percent": 100, "min_calls": 5}}
        }}"#;
    let envs = parse_policy(doc).unwrap();
    let a = envs[0].policy.breaker;
    assert_eq!(a.window, Some(crate::breaker::WindowSettings::new(20, 50, 10).unwrap()), "inherited");
    assert_eq!((a.slow_call_ms, a.failure_threshold), (Some(800), 3));
    let b = envs[1].policy.breaker;
    assert_eq!(b.window, Some(crate::breaker::WindowSettings::new(5, 100, 5).unwrap()), "replaced as a whole");
    assert_eq!(b.slow_call_ms, None);
}

#[test]
fn the_retry_budget_defaults_to_towers_and_overrides_key_by_key() {
    use crate::retry::RetryBudget;
    assert_eq!(parse_policy(VAULT).unwrap()[0].policy.retry_budget, RetryBudget::new(20, 10, 10_000).unwrap());
    let doc = r#"{
        "defaults": {"retry": {"budget": {"ratio_percent": 50}}},
        "environments": {"a": {"backend":"vault","url":"http://a","token_key":"t", "retry": {"budget": {"min_per_sec": 0, "window_ms": 60000}}}}}"#;
    assert_eq!(parse_policy(doc).unwrap()[0].policy.retry_budget, RetryBudget::new(50, 0, 60_000).unwrap());
}

#[test]
fn log_level_is_read_defaulted_and_checked() {
    let with_log = |log: &str| format!(r#"{{"log":{log},"environments":{{"prod":{{"backend":"vault","url":"http://h","token_key":"t"}}}}}}"#);
    assert_eq!(parse_document(VAULT).unwrap().log_level, Level::Info);
    assert_eq!(parse_document(&with_log("{}")).unwrap().log_level, Level::Info);
    for (text, level) in [("debug", Level::Debug), ("info", Level::Info), ("warn", Level::Warn), ("error", Level::Error)] {
        assert_eq!(parse_document(&with_log(&format!(r#"{{"level":"{text}"}}"#))).unwrap().log_level, level);
    }
    assert_eq!(
        parse_document(&with_log(r#"{"level":"verbose"}"#)).unwrap_err(),
        "log.level: must be debug, info, warn or error"
    );
    assert_eq!(parse_document(&with_log(r#"{"level":3}"#)).unwrap_err(), "log.level: must be a string");
    assert_eq!(parse_document(&with_log(r#"{"lvl":"debug"}"#)).unwrap_err(), "log.lvl: unknown key (expected one of: level)");
    assert_eq!(parse_document(&with_log(r#""debug""#)).unwrap_err(), "log: must be an object");
    let doc = with_log(r#"{"level":"warn"}"#);
    let loaded = load_all_with_log(&source(&doc, &[("t", "s.abc")])).unwrap();
    assert_eq!((loaded.environments.len(), loaded.log_level), (1, Level::Warn));
    assert_eq!(load_all(&source(&doc, &[("t", "s.abc")])).unwrap().0.len(), 1);
}
