//! The Spin app (`serve`, a fresh instance per request as Spin runs a P2 component) with backends
//! that need a login or a signature: Vault AppRole, a GCP service account, and AWS Secrets
//! Manager (moto, checking every SigV4 signature). Each request is a new provider
//! instance, so only shared state keeps the app from logging in (or signing) per request.

#[path = "serve/support.rs"]
mod support;

use std::time::Duration;

use edge_secrets_tests::harness::quick_defaults;
use edge_secrets_tests::moto::{SecretValue, REGION};
use edge_secrets_tests::Moto;
use serde_json::json;
use support::{start_server, App, HttpClient, ADMIN_TOKEN, DB_PASSWORD, DEV_TOKEN, PROD_TOKEN};

const KEY: &str = "c0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ff";
const ROLE_ID: &str = "role-serve";
const SECRET_ID: &str = "sid-serve-0123";
const TEST_KEY: &str = include_str!("../../guest/tests/fixtures/gcp/test_key_2048.pem");

#[test]
fn fresh_instances_log_in_once_with_approle_and_serve_every_request() {
    let app = App::start_with(true, |p| {
        let auth = json!({"method": "approle", "role_id_key": "vault_role_id", "secret_id_key": "vault_secret_id"});
        p.shared(KEY).auth("dev", auth, &[("vault_role_id", ROLE_ID), ("vault_secret_id", SECRET_ID)])
    });
    app.backend.enable_approle("approle", ROLE_ID, SECRET_ID, Duration::from_secs(600), true);
    for _ in 0..5 {
        let r = app.get("/v1/secrets/dev/app/db?refresh=true", Some(DEV_TOKEN));
        assert_eq!((r.status, &r.body[..]), (200, DB_PASSWORD.as_bytes()));
    }
    assert!(app.server.instances_created() >= 5);
    assert_eq!(app.backend.login_count(), 1, "one login for five fresh instances");
    // The issued token and the ids appear in no answer the app gives.
    let metrics = app.get("/metrics", Some(ADMIN_TOKEN)).text();
    let health = app.get("/health", Some(DEV_TOKEN)).text();
    for text in [&metrics, &health] {
        assert!(!text.contains("hvs.fake") && !text.contains(SECRET_ID) && !text.contains(ROLE_ID));
    }
}

#[test]
fn a_gcp_service_account_environment_serves_through_the_app() {
    let key = json!({"type": "service_account", "private_key_id": "kid-1", "private_key": TEST_KEY,
                     "client_email": "edge@p.iam.gserviceaccount.com"})
    .to_string();
    let app = App::start_with(true, |p| {
        p.shared(KEY)
            .set("prod", "backend", "gcp")
            .set("prod", "project", "proj")
            .auth("prod", json!({"method": "service_account", "key_key": "gcp_sa_key"}), &[("gcp_sa_key", &key)])
    });
    app.backend.put_gcp("proj", "db", 2, b"from-gcp");
    for _ in 0..3 {
        let r = app.get("/v1/secrets/prod/db?refresh=true", Some(PROD_TOKEN));
        assert_eq!((r.status, &r.body[..], r.header("x-secret-version")), (200, &b"from-gcp"[..], Some("2")));
    }
    let bearers: Vec<String> =
        app.backend.requests().iter().filter_map(|r| r.header("authorization").map(str::to_string)).collect();
    assert!(!bearers.is_empty() && bearers.iter().all(|b| b.starts_with("Bearer ey") && *b == bearers[0]), "one JWT, shared");
}

#[test]
fn an_aws_environment_serves_signed_reads_through_the_app() {
    let moto = Moto::shared();
    let version = moto.create_secret("serve/api", SecretValue::Text(r#"{"key":"k-aws-1"}"#));
    let keys = moto.keys();
    let policy = quick_defaults().aws("prod", &moto.url(), REGION, &keys.access_key_id, &keys.secret_access_key, None).shared(KEY);
    let server = start_server(policy.config(), true);
    let client = HttpClient::new(server.local_addr());
    let auth = format!("Bearer {PROD_TOKEN}");
    let r = client.get("/v1/secrets/prod/serve/api?field=key", Some(&auth));
    assert_eq!((r.status, &r.body[..]), (200, &b"k-aws-1"[..]));
    assert_eq!(r.header("x-secret-version"), Some(version.as_str()));
    let r = client.get("/v1/secrets/prod/serve/api?version=AWSPREVIOUS", Some(&auth));
    assert_eq!(r.error(), (404, "not-found".to_string()), "one version: no AWSPREVIOUS yet");
    let metrics = client.get("/metrics", Some(&format!("Bearer {ADMIN_TOKEN}"))).text();
    assert!(!metrics.contains(&keys.secret_access_key) && !metrics.contains("k-aws-1"));
}
