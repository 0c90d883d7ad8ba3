//! Azure Key Vault through the real component against the loopback fake (which follows
//! Microsoft's public REST documentation, see tests/src/fake_backend/azure.rs): reads of the
//! newest and a pinned version, every error kind, Entra client credentials (one login shared
//! by fresh instances, a refused secret not re-sent within the back-off), managed identity
//! from IMDS, and Azure in fallback tiers and stale answers.

use std::time::Duration;

use edge_secrets_host::{ManualClock, Request, Runtime, SecretError, Source};
use edge_secrets_tests::harness::{quick_defaults, secret_error, test_options};
use edge_secrets_tests::{FakeBackend, Fault, Harness};
use serde_json::{json, Value};

const V1: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
const V2: &str = "4387e9f3d6e14c459867679a90fd0f79";
const KEY: &str = "8d1b0c4f9e2a7d3b5c6e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c";
const TENANT: &str = "contoso.onmicrosoft.com";
const CLIENT_ID: &str = "11111111-2222-3333-4444-555555555555";
const CLIENT_SECRET: &str = "Qm~8Q~client&secret=1";
const ENTRA_TOKEN: &str = "eyJ0eXAiOiJKV1QifQ.entra-token.sig";

/// `kv`: an Azure environment reading with a static token, and two versions of `db`.
fn static_token() -> Harness {
    let h = Harness::start(|p, url| p.azure("kv", url, "kv-token").set_default("cache.ttl_ms", 0));
    h.backend.expect_azure_token("kv-token");
    h.backend.put_azure("db", V1, "first", None);
    h.backend.put_azure("db", V2, r#"{"user":"app","password":"second"}"#, Some("application/json"));
    h
}

#[test]
fn reads_the_newest_and_a_pinned_version_and_json_fields() {
    let mut h = static_token();
    let latest = h.get("kv", "db").unwrap();
    assert_eq!((latest.value.expose(), latest.version.as_str()), (&br#"{"user":"app","password":"second"}"#[..], V2));
    let pinned = h.client.get(&Request::new("kv", "db").version(V1)).unwrap();
    assert_eq!((pinned.value.expose(), pinned.version.as_str()), (&b"first"[..], V1));
    let field = h.client.get(&Request::new("kv", "db").field("password")).unwrap();
    assert_eq!(field.value.expose(), b"second");
    let requests = h.backend.requests();
    assert_eq!(requests[0].path_and_query, "/secrets/db?api-version=7.4");
    assert_eq!(requests[1].path_and_query, format!("/secrets/db/{V1}?api-version=7.4"));
    assert!(requests.iter().all(|r| r.method == "GET" && r.header("authorization") == Some("Bearer kv-token")));
    assert_eq!(h.client.stats().unwrap()[0].tiers[0].backend, "azure", "metrics label the tier by its backend kind");
}

#[test]
fn bad_names_and_versions_are_refused_before_any_request() {
    let mut h = static_token();
    for (name, version) in [("db_1", None), ("a/b", None), (&"a".repeat(128)[..], None), ("db", Some("7")), ("db", Some(&V1.to_uppercase()[..])), ("db", Some("AWSCURRENT"))] {
        let mut request = Request::new("kv", name);
        if let Some(v) = version {
            request = request.version(v);
        }
        let error = secret_error(h.client.get(&request));
        assert!(matches!(error, SecretError::InvalidRequest(_)), "{name} {version:?}: {error:?}");
    }
    assert_eq!(h.backend.request_count(), 0, "nothing was sent");
}

#[test]
fn not_found_forbidden_and_throttling_are_our_kinds() {
    let mut h = static_token();
    assert!(matches!(secret_error(h.get("kv", "missing")), SecretError::NotFound(_)));
    assert!(matches!(secret_error(h.client.get(&Request::new("kv", "db").version("0".repeat(32)))), SecretError::NotFound(_)));
    h.backend.forbid_azure("db");
    let SecretError::PermissionDenied(message) = secret_error(h.get("kv", "db")) else { panic!("not a denial") };
    assert!(message.contains("Forbidden"), "{message}");
    let throttled = json!({"error": {"code": "Throttled", "message": "Request was not processed because too many requests were received."}});
    h.backend.fail_next(1, Fault::status(429, throttled.to_string()).retry_after("30"));
    assert_eq!(secret_error(h.get("kv", "other")), SecretError::RateLimited { retry_after_ms: Some(30_000) });
}

#[test]
fn a_401_names_the_challenges_resource_and_never_the_token() {
    let mut h = static_token();
    h.backend.expect_azure_token("another-token");
    let SecretError::PermissionDenied(message) = secret_error(h.get("kv", "db")) else { panic!("not a denial") };
    assert!(message.contains("https://vault.azure.net") && message.contains("login.microsoftonline.com"), "{message}");
    assert!(!message.contains("kv-token") && !message.contains("another-token"), "{message}");
}

fn entra_auth(url: &str) -> Value {
    json!({"method": "azure_client_secret", "tenant": TENANT, "client_id": CLIENT_ID,
           "client_secret_key": "azure_client_secret", "authority": url})
}

/// `kv` logging in with client credentials against the fake's Entra endpoint.
fn entra(shared: bool, secret: &str) -> Harness {
    let h = Harness::start(|p, url| {
        let p = p.azure("kv", url, "unused").set_default("cache.ttl_ms", 0);
        let p = p.auth("kv", entra_auth(url), &[("azure_client_secret", secret)]);
        if shared { p.shared(KEY) } else { p }
    });
    h.backend.enable_entra(TENANT, CLIENT_ID, CLIENT_SECRET, ENTRA_TOKEN, 3_599);
    h.backend.expect_azure_token(ENTRA_TOKEN);
    h.backend.put_azure("db", V1, "pw-azure", None);
    h
}

#[test]
fn client_credentials_log_in_once_and_fresh_instances_share_the_token() {
    let h = entra(true, CLIENT_SECRET);
    for _ in 0..3 {
        let mut client = h.runtime.client().expect("a fresh instance");
        assert_eq!(client.get(&Request::new("kv", "db").refresh(true)).unwrap().value.expose(), b"pw-azure");
    }
    assert_eq!(h.backend.entra_logins(), 1, "one login serves every instance");
    let login = &h.backend.requests()[0];
    assert_eq!((login.method.as_str(), login.path_and_query.as_str()), ("POST", "/contoso.onmicrosoft.com/oauth2/v2.0/token"));
    assert_eq!(login.header("content-type"), Some("application/x-www-form-urlencoded"));
    assert!(login.header("content-length").is_some_and(|n| n.parse::<u64>().unwrap() > 0));
    assert!(!h.backend.any_header_contains("Qm~8Q"), "the secret travels in the body only");
}

#[test]
fn a_refused_client_secret_is_not_sent_again_within_the_back_off() {
    let mut h = entra(true, "Qm~8Q~wrong-secret");
    let SecretError::PermissionDenied(message) = secret_error(h.get("kv", "db")) else { panic!("not a denial") };
    assert!(message.contains("invalid_client") && message.contains("AADSTS7000215"), "{message}");
    assert!(!message.contains("wrong-secret") && !message.contains("Trace ID"), "{message}");
    assert!(matches!(secret_error(h.get("kv", "db")), SecretError::PermissionDenied(_)));
    let mut fresh = h.runtime.client().unwrap();
    assert!(matches!(secret_error(fresh.get(&Request::new("kv", "db"))), SecretError::PermissionDenied(_)));
    assert_eq!(h.backend.entra_logins(), 1, "the refusal answers later reads, here and in fresh instances");
    assert_eq!(h.backend.request_count(), 1, "and no read went out without a token");
    // After the back-off (5 s) the secret is tried again.
    h.clock.advance(Duration::from_millis(5_500));
    assert!(matches!(secret_error(h.get("kv", "db")), SecretError::PermissionDenied(_)));
    assert_eq!(h.backend.entra_logins(), 2);
    let stats = format!("{:?}", h.client.stats().unwrap());
    assert!(!stats.contains("wrong-secret"), "{stats}");
}

#[test]
fn managed_identity_tokens_come_from_imds_and_are_replaced_before_they_expire() {
    let mut h = Harness::start(|p, url| {
        let auth = json!({"method": "azure_managed_identity", "url": url, "client_id": "user-assigned-1"});
        p.azure("kv", url, "unused").set_default("cache.ttl_ms", 0).auth("kv", auth, &[])
    });
    h.backend.enable_imds(Some("user-assigned-1"), "eyJ.imds-token.sig", 60);
    h.backend.expect_azure_token("eyJ.imds-token.sig");
    h.backend.put_azure("db", V1, "pw-imds", None);
    assert_eq!(h.get("kv", "db").unwrap().value.expose(), b"pw-imds");
    h.clock.advance(Duration::from_secs(10));
    h.get("kv", "db").unwrap();
    assert_eq!(h.backend.imds_fetches(), 1, "held while it is good");
    let fetch = &h.backend.requests()[0];
    assert_eq!(fetch.header("metadata"), Some("true"));
    assert!(fetch.path_and_query.starts_with("/metadata/identity/oauth2/token?api-version=2018-02-01&resource="));
    assert!(fetch.path_and_query.ends_with("&client_id=user-assigned-1"));
    // A 60 s token is replaced from 40 s on (a third of its lifetime before expiry).
    h.clock.advance(Duration::from_secs(35));
    h.get("kv", "db").unwrap();
    assert_eq!(h.backend.imds_fetches(), 2);
}

#[test]
fn a_machine_without_that_identity_is_permission_denied() {
    let mut h = Harness::start(|p, url| {
        let auth = json!({"method": "azure_managed_identity", "url": url});
        p.azure("kv", url, "unused").auth("kv", auth, &[])
    });
    h.backend.enable_imds(Some("someone-else"), "eyJ.x.y", 60);
    let SecretError::PermissionDenied(message) = secret_error(h.get("kv", "db")) else { panic!("not a denial") };
    assert!(message.contains("Identity not found"), "{message}");
}

#[test]
fn azure_serves_as_a_fallback_tier_and_a_primary_with_a_vault_fallback() {
    let (vault, azure) = (FakeBackend::start(), FakeBackend::start());
    vault.expect_vault_token("t-vault");
    vault.put_vault("db", 1, &[("value", "from-vault")]);
    azure.expect_azure_token("t-azure");
    azure.put_azure("db", V1, "from-azure", None);
    let policy = quick_defaults()
        .set_default("cache.ttl_ms", 0)
        .vault("vault-first", &vault.url(), "t-vault")
        .set("vault-first", "fallbacks", json!([{ "backend": "azure", "url": azure.url(), "token_key": "azure_token" }]))
        .azure("azure-first", &azure.url(), "t-azure")
        .set("azure-first", "fallbacks", json!([{ "backend": "vault", "url": vault.url(), "token_key": "token_vault_first" }]))
        .credential("azure_token", "t-azure");
    let runtime = Runtime::new(policy.config(), test_options().clock(ManualClock::new())).unwrap();
    let mut client = runtime.client().unwrap();
    vault.set_fault_always(Some(Fault::vault_sealed()));
    let secret = client.get(&Request::new("vault-first", "db")).unwrap();
    assert_eq!((secret.value.expose(), secret.tier, secret.version.as_str()), (&b"from-azure"[..], 1, V1));
    vault.clear_faults();
    azure.set_fault_always(Some(Fault::status(503, r#"{"error":{"code":"ServiceUnavailable","message":"busy"}}"#)));
    let secret = client.get(&Request::new("azure-first", "db")).unwrap();
    assert_eq!((secret.value.expose(), secret.tier), (&b"from-vault"[..], 1));
    let stats = client.stats().unwrap();
    let azure_first = stats.iter().find(|s| s.environment == "azure-first").unwrap();
    assert_eq!((azure_first.tiers[0].backend.as_str(), azure_first.tiers[1].backend.as_str()), ("azure", "vault"));
    assert!(azure_first.tiers[0].failures >= 1);
}

#[test]
fn an_expired_value_answers_an_outage_as_stale_but_never_a_not_found() {
    let mut h = Harness::start(|p, url| {
        p.azure("kv", url, "kv-token").set_default("cache.ttl_ms", 1_000).set_default("cache.max_stale_ms", 5_000)
    });
    h.backend.put_azure("db", V1, "pw", None);
    assert!(!h.get("kv", "db").unwrap().stale);
    h.clock.advance(Duration::from_millis(2_000));
    h.backend.set_fault_always(Some(Fault::status(503, r#"{"error":{"code":"ServiceUnavailable","message":"busy"}}"#)));
    let stale = h.get("kv", "db").unwrap();
    assert_eq!((stale.value.expose(), stale.stale, stale.source, stale.version.as_str()), (&b"pw"[..], true, Source::Cache, V1));
    h.backend.set_fault_always(Some(Fault::status(404, r#"{"error":{"code":"SecretNotFound","message":"gone"}}"#)));
    assert!(matches!(secret_error(h.client.get(&Request::new("kv", "db").refresh(true))), SecretError::NotFound(_)));
}
