//! The Spin app (`serve`, a fresh instance per request as Spin runs a P2 component) reading Azure
//! Key Vault with Entra client credentials from the loopback fake: one login for every
//! instance through shared state, versions in the answer's header, errors as their kinds, and
//! the backend kind in the metrics.

#[path = "serve/support.rs"]
mod support;

use edge_secrets_tests::FakeBackend;
use serde_json::json;
use support::{App, ADMIN_TOKEN, PROD_TOKEN};

const KEY: &str = "c0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ff";
const VERSION: &str = "4387e9f3d6e14c459867679a90fd0f79";
const CLIENT_SECRET: &str = "Qm~8Q~serve-secret";
const TOKEN: &str = "eyJ0eXAiOiJKV1QifQ.serve-token.sig";

#[test]
fn an_azure_environment_logs_in_once_and_serves_through_the_app() {
    let azure = FakeBackend::start();
    azure.enable_entra("contoso.onmicrosoft.com", "app-1", CLIENT_SECRET, TOKEN, 3_599);
    azure.expect_azure_token(TOKEN);
    azure.put_azure("db", VERSION, r#"{"password":"from-azure"}"#, Some("application/json"));
    let app = App::start_with(true, |p| {
        let auth = json!({"method": "azure_client_secret", "tenant": "contoso.onmicrosoft.com", "client_id": "app-1",
                          "client_secret_key": "azure_client_secret", "authority": azure.url()});
        p.shared(KEY).set("prod", "backend", "azure").set("prod", "url", azure.url()).auth("prod", auth, &[("azure_client_secret", CLIENT_SECRET)])
    });
    for _ in 0..3 {
        let r = app.get("/v1/secrets/prod/db?field=password&refresh=true", Some(PROD_TOKEN));
        assert_eq!((r.status, &r.body[..], r.header("x-secret-version")), (200, &b"from-azure"[..], Some(VERSION)));
    }
    assert!(app.server.instances_created() >= 3);
    assert_eq!(azure.entra_logins(), 1, "one login for every fresh instance");
    assert_eq!(app.backend.request_count(), 0, "the environment's Vault was replaced by Azure");
    assert_eq!(app.get("/v1/secrets/prod/missing", Some(PROD_TOKEN)).error(), (404, "not-found".to_string()));
    assert_eq!(app.get("/v1/secrets/prod/bad_name", Some(PROD_TOKEN)).error().0, 400, "outside the grammar: nothing sent");
    let metrics = app.get("/metrics", Some(ADMIN_TOKEN)).text();
    assert!(metrics.contains(r#"backend="azure""#), "{metrics}");
    assert!(!metrics.contains(TOKEN) && !metrics.contains(CLIENT_SECRET) && !metrics.contains("from-azure"));
}
