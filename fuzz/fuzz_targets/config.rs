//! The policy parser (`config::parse_document`) and the whole load (`config::load_all`) with
//! fixed credentials. Invariants beyond "no panic":
//! - a parsed document re-validates: every name, key, URL and range it holds passes the
//!   same checks again (every tier's, fallbacks included), and the document rebuilt as JSON
//!   from the parsed values, with every key written out (cache, retry budget, breaker window
//!   and slow calls, `fallback_on_not_found`, `log.level`, the fallbacks array, every tier's
//!   `token_key` or `auth` object with its mount, URL and keys, AWS regions), parses to the
//!   same document (nothing is lost or defaulted differently on the way); every tier's auth
//!   method is one its backend takes;
//! - `load_all` agrees with `parse_document` on what is valid, and loads one credential per
//!   tier, of the tier's method, holding what the method requires (single-line tokens and
//!   ids, an AWS access key id of A-Z0-9, a service-account key of at least 2048 bits);
//! - no credential ever shows in an error or a `Debug` (unless the policy text itself
//!   contains it, in which case echoing it is not a leak): tokens, AppRole ids, AWS secret
//!   keys and session tokens, the sealing key, and any line of a service-account key's PEM.
#![no_main]

use std::collections::BTreeMap;

use edge_secrets_guest::auth::{AuthSpec, Credential};
use edge_secrets_guest::config::{self, BackendSpec, EnvironmentSpec, PolicyDocument, TierSpec, MAX_FALLBACKS, POLICY_KEY};
use edge_secrets_guest::http::{BaseUrl, Scheme};
use edge_secrets_guest::validate;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};

/// Stands for a credential: it must never appear in what the loader says.
const MARKER: &str = "zq5ecretMARKERzq";
/// `config::policy::MAX_BODY_CAP` (the module is private).
const MAX_BODY_CAP: u64 = 16 << 20;
/// The `cache` durations' upper bound (`config::policy::DAY_MS`, private).
const DAY_MS: u64 = 86_400_000;
/// A valid sealing key (64 hex digits), also secret.
const SEAL_HEX: &str = "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e";
/// A TEST-ONLY 2048-bit key (see guest/tests/fixtures/gcp/README.md); its lines are secret here.
const KEY_PEM: &str = include_str!("../../guest/tests/fixtures/gcp/test_key_2048.pem");
const SA_EMAIL: &str = "edge-secrets@test-project.iam.gserviceaccount.com";

fn source(policy: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert(POLICY_KEY.to_string(), policy.to_string());
    // The keys the seeds use, with good and bad values of each kind.
    m.insert("prod_token".into(), format!("s.{MARKER}"));
    m.insert("t".into(), MARKER.into());
    m.insert("gcp_token".into(), format!("ya29.{MARKER}"));
    m.insert("ctl_token".into(), format!("{MARKER}\r\n"));
    m.insert("empty_token".into(), String::new());
    m.insert("seal_key".into(), SEAL_HEX.into());
    m.insert("bad_seal_key".into(), format!("{MARKER}{MARKER}{MARKER}{MARKER}"));
    m.insert("role_id".into(), format!("role-{MARKER}"));
    m.insert("secret_id".into(), format!("sid-{MARKER}"));
    m.insert("ctl_secret_id".into(), format!("sid-{MARKER}\n"));
    m.insert("aws_id".into(), "AKIAIOSFODNN7EXAMPLE".into());
    m.insert("aws_secret".into(), format!("wJalrXUtnFEMI/{MARKER}"));
    m.insert("aws_session".into(), format!("FwoGZXIv{MARKER}"));
    m.insert("bad_aws_id".into(), format!("akia{MARKER}"));
    m.insert("sa_key".into(), sa_key(KEY_PEM));
    m.insert("bad_sa_key".into(), sa_key(&KEY_PEM.replace("MII", "MIJ")));
    m.insert("not_json_sa_key".into(), format!("{{\"private_key\": \"{}", KEY_PEM.replace('\n', "\\n")));
    m
}

/// A service-account key file as Google issues it, holding `pem`, with the marker in a field
/// the parser ignores.
fn sa_key(pem: &str) -> String {
    json!({
        "type": "service_account", "project_id": "test-project", "private_key_id": "0123456789abcdef",
        "private_key": pem, "client_email": SA_EMAIL, "client_id": MARKER,
    })
    .to_string()
}

fn leaks(text: &str) -> bool {
    text.contains(MARKER) || text.contains(SEAL_HEX) || KEY_PEM.lines().any(|line| line.len() >= 16 && text.contains(line))
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let parsed = config::parse_document(&text);
    let policy_has_secret = leaks(&text);
    if let Err(message) = &parsed {
        assert!(policy_has_secret || !leaks(message), "a parse error shows a secret");
    }
    if let Ok(document) = &parsed {
        revalidate(document);
    }

    let loaded = config::load_all(&source(&text));
    match (&parsed, &loaded) {
        (Err(a), Err(b)) => assert_eq!(a, &b.message, "load_all reports the parse error as is"),
        (Err(_), Ok(_)) => panic!("load_all accepted a policy that parse_document rejects"),
        (Ok(_), Err(e)) => {
            assert!(!e.store_failure, "a map never fails as a store");
            assert!(policy_has_secret || !leaks(&e.message), "a load error shows a credential");
        }
        (Ok(document), Ok((environments, shared))) => {
            assert_eq!(environments.len(), document.environments.len());
            for (env, spec) in environments.iter().zip(&document.environments) {
                assert_eq!(&env.spec, spec);
                // One credential per tier, in tier order: a fallback must never be sent the
                // primary's token (or another tier's).
                assert!(env.credential(spec.tiers.len()).is_none(), "one credential per tier");
                for (i, tier) in spec.tiers.iter().enumerate() {
                    check_credential(env.credential(i).expect("load_all reads every tier's credential"), &tier.auth);
                }
                assert!(policy_has_secret || !leaks(&format!("{env:?}")), "Environment's Debug shows its credential");
            }
            assert!(policy_has_secret || !leaks(&format!("{shared:?}")), "SharedSetup's Debug shows the key");
        }
    }
});

fn single_line(bytes: &[u8]) -> bool {
    !bytes.is_empty() && !bytes.iter().any(u8::is_ascii_control)
}

fn check_credential(credential: &Credential, spec: &AuthSpec) {
    match (credential, spec) {
        (Credential::Token(token), AuthSpec::Token { .. }) => assert!(single_line(token.expose())),
        (Credential::AppRole { role_id, secret_id }, AuthSpec::AppRole { .. }) => {
            assert!(single_line(role_id.expose()) && single_line(secret_id.expose()));
        }
        (Credential::ServiceAccount(key), AuthSpec::ServiceAccount { .. }) => {
            assert!(key.bits() >= 2048, "a {}-bit key", key.bits());
            assert_eq!(key.client_email, SA_EMAIL, "only one usable key file is in the source");
        }
        (Credential::Metadata, AuthSpec::Metadata { .. }) | (Credential::AzureManagedIdentity, AuthSpec::AzureManagedIdentity { .. }) => {}
        (Credential::AzureClientSecret(secret), AuthSpec::AzureClientSecret { .. }) => assert!(single_line(secret.expose())),
        (Credential::VaultJwt { jwt: token }, AuthSpec::VaultJwt { .. }) | (Credential::AwsWebIdentity { token }, AuthSpec::AwsWebIdentity { .. }) => {
            assert!(single_line(token.expose()) && token.expose().iter().filter(|b| **b == b'.').count() == 2, "a JWT");
        }
        (Credential::AwsContainer { uri, token }, AuthSpec::AwsContainer { token_key, .. }) => {
            assert_eq!(BaseUrl::parse(&url_text(uri)).as_ref(), Ok(uri), "the container URI re-parses");
            assert_eq!(token.is_some(), token_key.is_some());
        }
        (Credential::AwsInstance, AuthSpec::AwsInstance { .. }) => {}
        (Credential::Aws(keys), AuthSpec::AwsKeys { session_token_key, .. }) => {
            let id = &keys.access_key_id;
            assert!((16..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()), "{id:?}");
            assert!(single_line(keys.secret_access_key.as_bytes()));
            assert_eq!(keys.session_token.is_some(), session_token_key.is_some());
            if let Some(token) = &keys.session_token {
                assert!(single_line(token.as_bytes()));
            }
        }
        (credential, spec) => panic!("a {} tier loaded {credential:?}", spec.method()),
    }
}

fn revalidate(document: &PolicyDocument) {
    assert!(!document.environments.is_empty());
    let names: Vec<&str> = document.environments.iter().map(|e| e.name.as_str()).collect();
    assert!(names.windows(2).all(|w| w[0] < w[1]), "environments are sorted and unique");
    for env in &document.environments {
        assert!(config::is_environment_name(&env.name));
        assert!((1..=1 + MAX_FALLBACKS).contains(&env.tiers.len()), "{} tiers", env.tiers.len());
        assert!(std::ptr::eq(env.primary(), &env.tiers[0]));
        for tier in &env.tiers {
            revalidate_tier(tier);
        }
        let p = &env.policy;
        assert!(p.deadline_ms >= p.attempt_timeout_ms && p.attempt_timeout_ms >= 1);
        assert!(p.cache_ttl_ms <= DAY_MS && p.cache_pinned_ttl_ms <= DAY_MS);
        assert!((1..=1_000_000).contains(&p.cache_max_entries));
        assert!(p.max_stale_ms <= DAY_MS);
        assert!(p.negative_ttl_ms <= 600_000);
        assert!(p.refresh_ahead_percent <= 99, "refresh ahead at {} %: every hit would refresh", p.refresh_ahead_percent);
        assert!((1..=DAY_MS).contains(&p.refresh_interval_ms));
        assert!((1024..=MAX_BODY_CAP).contains(&(p.max_body_bytes as u64)));
        let budget = &p.retry_budget;
        assert!(budget.ratio_percent() <= 1_000 && budget.min_per_sec() <= 10_000);
        assert!((1_000..=600_000).contains(&budget.window_ms()));
        // The budget's slots divide the window: a zero slot would divide by zero in `slot_of`.
        assert!(budget.slot_ms() >= 1);
        let b = &p.breaker;
        assert!(b.failure_threshold >= 1 && b.open_ms >= 1 && b.half_open_probes >= 1 && b.success_threshold >= 1);
        assert_eq!(b.probe_timeout_ms, p.deadline_ms, "a probe times out with the call");
        if let Some(w) = &b.window {
            assert!((1..=128).contains(&w.size()) && (1..=100).contains(&w.failure_rate_percent()));
            assert!(w.min_calls() >= 1 && w.min_calls() <= w.size(), "min_calls {} of {}", w.min_calls(), w.size());
        }
        if let Some(slow) = b.slow_call_ms {
            assert!((1..=600_000).contains(&slow), "slow_call_ms {slow}: 0 would make every call slow");
        }
        assert!(p.retry.ceiling_ms(0) >= 1 && p.retry.ceiling_ms(u32::MAX) >= p.retry.ceiling_ms(0));
    }
    let reserved = config::ReservedKeys::new(&document.environments, document.shared.as_ref().map(|s| s.key_key.as_str()));
    for m in &document.config {
        assert!(config::is_config_key(&m.key) && !reserved.contains(&m.key), "config.{}: a reserved or malformed key was accepted", m.key);
        assert!(document.environments.iter().any(|e| e.name == m.environment), "config.{}: unknown environment accepted", m.key);
    }
    if let Some(shared) = &document.shared {
        assert!(config::is_environment_name(&shared.bucket) && config::is_config_key(&shared.key_key));
        assert!((10..=60_000).contains(&shared.lease_ms));
    }
    let rebuilt = rebuild(document).to_string();
    assert_eq!(config::parse_document(&rebuilt).as_ref(), Ok(document), "the rebuilt document parses the same");
}

fn revalidate_tier(tier: &TierSpec) {
    for (_, key) in config::auth::credential_keys(&tier.auth) {
        assert!(config::is_config_key(key), "{key:?}");
    }
    let fits = matches!(
        (&tier.backend, &tier.auth),
        (BackendSpec::Vault { .. }, AuthSpec::Token { .. } | AuthSpec::AppRole { .. } | AuthSpec::VaultJwt { .. })
            | (BackendSpec::Gcp { .. }, AuthSpec::Token { .. } | AuthSpec::ServiceAccount { .. } | AuthSpec::Metadata { .. })
            | (BackendSpec::Aws { .. }, AuthSpec::AwsKeys { .. } | AuthSpec::AwsWebIdentity { .. } | AuthSpec::AwsContainer { .. } | AuthSpec::AwsInstance { .. })
            | (BackendSpec::Azure, AuthSpec::Token { .. } | AuthSpec::AzureClientSecret { .. } | AuthSpec::AzureManagedIdentity { .. })
    );
    assert!(fits, "a {} tier with auth {}", tier.backend.kind(), tier.auth.method());
    match &tier.auth {
        AuthSpec::AppRole { mount, .. } => validate::vault_path(mount).expect("a parsed AppRole mount is a valid Vault path"),
        AuthSpec::Metadata { url } => assert_eq!(BaseUrl::parse(&url_text(url)).as_ref(), Ok(url), "the metadata URL re-parses"),
        AuthSpec::AzureClientSecret { tenant, client_id, authority, .. } => {
            assert!(edge_secrets_guest::auth::azure::is_id(tenant) && edge_secrets_guest::auth::azure::is_id(client_id));
            assert_eq!(BaseUrl::parse(&url_text(authority)).as_ref(), Ok(authority), "the authority re-parses");
        }
        AuthSpec::AzureManagedIdentity { url, client_id } => {
            assert!(client_id.as_deref().is_none_or(edge_secrets_guest::auth::azure::is_id));
            assert_eq!(BaseUrl::parse(&url_text(url)).as_ref(), Ok(url), "the IMDS URL re-parses");
        }
        _ => {}
    }
    match &tier.backend {
        BackendSpec::Vault { mount, namespace } => {
            validate::vault_path(mount).expect("a parsed mount is a valid Vault path");
            if let Some(ns) = namespace {
                validate::vault_path(ns).expect("a parsed namespace is a valid Vault path");
            }
        }
        BackendSpec::Gcp { project } => assert!(config::is_environment_name(project) && !project.contains('_')),
        BackendSpec::Aws { region } => {
            let parts: Vec<&str> = region.split('-').collect();
            assert!(region.len() <= 32 && parts.len() >= 3, "region {region:?}");
            assert!(parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())));
            assert!(parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit()), "region {region:?}");
        }
        BackendSpec::Azure => {}
    }
    let url = url_text(&tier.url);
    assert_eq!(BaseUrl::parse(&url).as_ref(), Ok(&tier.url), "the URL re-parses to itself");
}

fn url_text(url: &BaseUrl) -> String {
    let scheme = match url.scheme {
        Scheme::Http => "http",
        Scheme::Https => "https",
    };
    format!("{scheme}://{}{}", url.authority, url.prefix)
}

/// The document written out again with every value explicit (no defaults relied on).
fn rebuild(document: &PolicyDocument) -> Value {
    let mut environments = Map::new();
    for env in &document.environments {
        environments.insert(env.name.clone(), environment(env));
    }
    let mut root = Map::new();
    root.insert("environments".into(), Value::Object(environments));
    if let Some(s) = &document.shared {
        root.insert("shared".into(), json!({"bucket": s.bucket, "key_key": s.key_key, "lease_ms": s.lease_ms}));
    }
    root.insert("log".into(), json!({"level": document.log_level.as_str()}));
    if !document.config.is_empty() {
        let mut config = Map::new();
        for m in &document.config {
            let mut mapping = json!({"environment": m.environment, "name": m.name, "encoding": if m.base64 { "base64" } else { "utf8" }});
            let fields = mapping.as_object_mut().unwrap();
            fields.insert("version".into(), m.version.clone().map_or(Value::Null, Value::from));
            fields.insert("field".into(), m.field.clone().map_or(Value::Null, Value::from));
            config.insert(m.key.clone(), mapping);
        }
        root.insert("config".into(), Value::Object(config));
    }
    Value::Object(root)
}

fn environment(env: &EnvironmentSpec) -> Value {
    let p = &env.policy;
    let b = &p.breaker;
    let budget = &p.retry_budget;
    let mut breaker = json!({"failure_threshold": b.failure_threshold, "open_ms": b.open_ms,
                             "half_open_probes": b.half_open_probes, "success_threshold": b.success_threshold});
    let breaker_map = breaker.as_object_mut().unwrap();
    if let Some(w) = &b.window {
        breaker_map.insert("window_size".into(), w.size().into());
        breaker_map.insert("failure_rate_percent".into(), w.failure_rate_percent().into());
        breaker_map.insert("min_calls".into(), w.min_calls().into());
    }
    // `null` is how a document says "not set" for any key; written so that the reader's
    // null handling is exercised by every rebuilt document without a slow-call rule.
    breaker_map.insert("slow_call_ms".into(), b.slow_call_ms.map_or(Value::Null, Value::from));
    let mut obj = json!({
        "cache": {"ttl_ms": p.cache_ttl_ms, "pinned_ttl_ms": p.cache_pinned_ttl_ms, "max_entries": p.cache_max_entries,
                  "max_stale_ms": p.max_stale_ms, "negative_ttl_ms": p.negative_ttl_ms,
                  "refresh_ahead_percent": p.refresh_ahead_percent, "refresh_interval_ms": p.refresh_interval_ms},
        "timeouts": {"attempt_ms": p.attempt_timeout_ms, "deadline_ms": p.deadline_ms},
        "retry": {"attempts": p.retry.attempts(), "base_delay_ms": p.retry.ceiling_ms(0), "max_delay_ms": p.retry.ceiling_ms(u32::MAX),
                  "budget": {"ratio_percent": budget.ratio_percent(), "min_per_sec": budget.min_per_sec(), "window_ms": budget.window_ms()}},
        "breaker": breaker,
        "fallback_on_not_found": p.fallback_on_not_found,
        "max_body_bytes": p.max_body_bytes,
        "fallbacks": env.tiers[1..].iter().map(|t| Value::Object(tier(t))).collect::<Vec<_>>(),
    });
    // The primary's keys sit in the environment object itself.
    obj.as_object_mut().unwrap().extend(tier(env.primary()));
    obj
}

fn tier(tier: &TierSpec) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("url".into(), url_text(&tier.url).into());
    match &tier.auth {
        AuthSpec::Token { key } => {
            map.insert("token_key".into(), key.as_str().into());
        }
        AuthSpec::AppRole { role_id_key, secret_id_key, mount } => {
            map.insert("auth".into(), json!({"method": "approle", "role_id_key": role_id_key, "secret_id_key": secret_id_key, "mount": mount}));
        }
        AuthSpec::ServiceAccount { key_key } => {
            map.insert("auth".into(), json!({"method": "service_account", "key_key": key_key}));
        }
        AuthSpec::Metadata { url } => {
            map.insert("auth".into(), json!({"method": "metadata", "url": url_text(url)}));
        }
        AuthSpec::AwsKeys { access_key_id_key, secret_access_key_key, session_token_key } => {
            let mut auth = json!({"method": "aws_keys", "access_key_id_key": access_key_id_key, "secret_access_key_key": secret_access_key_key});
            if let Some(key) = session_token_key {
                auth["session_token_key"] = key.as_str().into();
            }
            map.insert("auth".into(), auth);
        }
        AuthSpec::VaultJwt { kubernetes, role, jwt_key, mount } => {
            let method = if *kubernetes { "kubernetes" } else { "jwt" };
            map.insert("auth".into(), json!({"method": method, "role": role, "jwt_key": jwt_key, "mount": mount}));
        }
        AuthSpec::AwsWebIdentity { role_arn, session_name, token_key, sts_url } => {
            let mut auth = json!({"method": "aws_web_identity", "role_arn": role_arn, "session_name": session_name, "token_key": token_key});
            if let Some(url) = sts_url {
                auth["sts_url"] = url_text(url).into();
            }
            map.insert("auth".into(), auth);
        }
        AuthSpec::AwsContainer { uri_key, token_key } => {
            let mut auth = json!({"method": "aws_container", "uri_key": uri_key});
            if let Some(key) = token_key {
                auth["auth_token_key"] = key.as_str().into();
            }
            map.insert("auth".into(), auth);
        }
        AuthSpec::AwsInstance { url } => {
            map.insert("auth".into(), json!({"method": "aws_instance", "url": url_text(url)}));
        }
        AuthSpec::AzureClientSecret { tenant, client_id, client_secret_key, authority } => {
            map.insert(
                "auth".into(),
                json!({"method": "azure_client_secret", "tenant": tenant, "client_id": client_id,
                       "client_secret_key": client_secret_key, "authority": url_text(authority)}),
            );
        }
        AuthSpec::AzureManagedIdentity { url, client_id } => {
            let mut auth = json!({"method": "azure_managed_identity", "url": url_text(url)});
            if let Some(id) = client_id {
                auth["client_id"] = id.as_str().into();
            }
            map.insert("auth".into(), auth);
        }
    }
    match &tier.backend {
        BackendSpec::Vault { mount, namespace } => {
            map.insert("backend".into(), "vault".into());
            map.insert("mount".into(), mount.as_str().into());
            if let Some(ns) = namespace {
                map.insert("namespace".into(), ns.as_str().into());
            }
        }
        BackendSpec::Gcp { project } => {
            map.insert("backend".into(), "gcp".into());
            map.insert("project".into(), project.as_str().into());
        }
        BackendSpec::Aws { region } => {
            map.insert("backend".into(), "aws".into());
            map.insert("region".into(), region.as_str().into());
        }
        BackendSpec::Azure => {
            map.insert("backend".into(), "azure".into());
        }
    }
    map
}
