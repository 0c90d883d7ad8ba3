//! The config-provider world composed in front of an app that knows only `wasi:config`: the
//! example app (`examples/config-app`, built by build.rs, depending on no crate of this
//! project), served by `serve` against the loopback fake backend. The app's `/settings/{key}`
//! and `/settings` routes answer exactly what `wasi:config` gives it.

#[allow(dead_code)] // shared with the serve tests; this file uses part of it
#[path = "serve/support.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use edge_secrets_host::compose::with_config_provider;
use edge_secrets_host::serve::Server;
use edge_secrets_host::ManualClock;
use edge_secrets_tests::harness::{quick_defaults, test_options};
use edge_secrets_tests::{FakeBackend, Fault};
use serde_json::json;
use support::{options, HttpClient};

static EXAMPLE_APP_WASM: &[u8] = include_bytes!(env!("EDGE_SECRETS_EXAMPLE_APP_WASM"));

const VAULT_TOKEN: &str = "vault-token-SENTINEL-77";

struct Setup {
    backend: FakeBackend,
    clock: ManualClock,
    _server: Server,
    client: HttpClient,
}

/// `prod` (Vault) holds `app/db` v1 and v2; the policy maps four keys; the store also holds the
/// app's own `greeting`.
fn start() -> Setup {
    let backend = FakeBackend::start();
    backend.expect_vault_token(VAULT_TOKEN);
    backend.put_vault("app/db", 1, &[("password", "pw-v1"), ("user", "admin")]);
    backend.put_vault("app/db", 2, &[("password", "pw-v2"), ("user", "admin")]);
    let policy = quick_defaults()
        .vault("prod", &backend.url(), VAULT_TOKEN)
        .set("prod", "cache", json!({"ttl_ms": 60_000, "max_stale_ms": 600_000}))
        .set("prod", "retry.attempts", 1);
    let mut config: BTreeMap<String, String> = policy.config();
    let mut document: serde_json::Value = serde_json::from_str(&config["secrets_policy"]).unwrap();
    document["config"] = json!({
        "db_password": {"environment": "prod", "name": "app/db", "field": "password"},
        "db_user": {"environment": "prod", "name": "app/db", "field": "user"},
        "old_password": {"environment": "prod", "name": "app/db", "field": "password", "version": "1"},
        "api_key": {"environment": "prod", "name": "app/api"},
    });
    config.insert("secrets_policy".into(), document.to_string());
    config.insert("greeting".into(), "good morning".into());
    let composed = with_config_provider(EXAMPLE_APP_WASM).expect("the example app composes with the provider");
    let clock = ManualClock::new();
    let server = Server::start_app(&composed, config, test_options().clock(clock.clone()), options()).expect("serve the composed app");
    let client = HttpClient::new(server.local_addr());
    Setup { backend, clock, _server: server, client }
}

impl Setup {
    /// (status, body) of `GET path`.
    fn get(&self, path: &str) -> (u16, String) {
        let reply = self.client.get(path, None);
        (reply.status, reply.text())
    }
}

#[test]
fn mapped_keys_are_secrets_with_versions_and_fields_and_other_keys_pass_through() {
    let s = start();
    assert_eq!(s.get("/settings/db_password"), (200, "pw-v2".into()));
    assert_eq!(s.get("/settings/db_user"), (200, "admin".into()));
    assert_eq!(s.get("/settings/old_password"), (200, "pw-v1".into()), "a pinned version");
    assert_eq!(s.get("/settings/greeting"), (200, "good morning".into()), "the app's own setting");
    assert_eq!(s.get("/settings/not_set").0, 404);
    assert_eq!(s.get("/settings/api_key").0, 404, "a mapped secret that does not exist is none");
    assert_eq!(s.get("/"), (200, "good morning: db_password is set (5 bytes)\n".into()));
}

#[test]
fn the_providers_own_keys_are_never_visible_to_the_app() {
    let s = start();
    for key in ["secrets_policy", "SECRETS_POLICY", "Secrets-Policy", "secrets.policy", "vault_token", "Vault_Token", "VAULT-TOKEN"] {
        let (status, body) = s.get(&format!("/settings/{key}"));
        assert_eq!(status, 404, "{key}");
        assert!(!body.contains(VAULT_TOKEN) && !body.contains("environments"), "{key}");
    }
    let (status, all) = s.get("/settings");
    assert_eq!(status, 200);
    let keys: Vec<&str> = all.lines().map(|l| l.split('=').next().unwrap()).collect();
    assert_eq!(keys, ["greeting", "db_password", "db_user", "old_password"], "pass-through first, then the mapped secrets that exist");
    assert!(!all.contains(VAULT_TOKEN) && !all.contains("secrets_policy") && !all.contains("environments"));
}

#[test]
fn a_second_read_within_the_ttl_sends_nothing_and_an_outage_is_upstream_or_stale() {
    let s = start();
    assert_eq!(s.get("/settings/db_password").0, 200);
    let sent = s.backend.request_count();
    for _ in 0..5 {
        assert_eq!(s.get("/settings/db_password"), (200, "pw-v2".into()));
    }
    assert_eq!(s.backend.request_count(), sent, "answered from the cache");

    s.backend.set_fault_always(Some(Fault::vault_error(503, "sealed")));
    // Never read before: nothing to fall back on, so the app gets an upstream error naming the key.
    let (status, message) = s.get("/settings/old_password");
    assert_eq!(status, 503);
    assert!(message.starts_with("config key `old_password` (prod/app/db): backend:"), "{message}");
    assert!(!message.contains("pw-"), "{message}");
    // Past its TTL, a value read before is served stale while the backend fails.
    s.clock.advance(Duration::from_secs(61));
    assert_eq!(s.get("/settings/db_password"), (200, "pw-v2".into()));
}
