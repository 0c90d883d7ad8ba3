//! Vault Kubernetes and JWT logins through the real component against the loopback fake: the
//! role and the service-account JWT go to the method's mount in the namespace, fresh instances
//! share one login through shared state, and a JWT Vault does not accept is a permission
//! denial that never shows the JWT.

use std::time::Duration;

use edge_secrets_host::{Request, SecretError};
use edge_secrets_tests::harness::secret_error;
use edge_secrets_tests::Harness;
use serde_json::json;

const KEY: &str = "8d1b0c4f9e2a7d3b5c6e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c";
const JWT: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6YXBwOmFwcCJ9.SENTINEL-jwt-8823";

/// Vault env `prod` in namespace `team-a`, logging in with `method` as role `app`, presenting
/// `presented` (the fake accepts [`JWT`]).
fn start(method: &str, mount: &str, presented: &str) -> Harness {
    let h = Harness::start(|p, url| {
        let p = p.vault("prod", url, "unused").set("prod", "namespace", "team-a").shared(KEY);
        let auth = json!({"method": method, "role": "app", "jwt_key": "sa_token", "mount": mount});
        p.auth("prod", auth, &[("sa_token", presented)])
    });
    h.backend.enable_jwt_auth(mount, "app", JWT, Duration::from_secs(600), true);
    h.backend.put_vault("app/db", 1, &[("value", "pw-k8s")]);
    h
}

#[test]
fn kubernetes_auth_logs_in_once_for_many_fresh_instances() {
    let h = start("kubernetes", "kubernetes", JWT);
    for _ in 0..5 {
        let secret = h.runtime.client().unwrap().get(&Request::new("prod", "app/db")).unwrap();
        assert_eq!(secret.value.expose(), b"pw-k8s");
    }
    assert_eq!(h.backend.login_count(), 1, "one login shared through shared state");
    let requests = h.backend.requests();
    assert_eq!(requests[0].path_and_query, "/v1/auth/kubernetes/login");
    assert!(requests.iter().all(|r| r.header("x-vault-namespace") == Some("team-a")));
}

#[test]
fn jwt_auth_at_a_custom_mount_reads_with_the_issued_token() {
    let mut h = start("jwt", "jwt/ci", JWT);
    assert_eq!(h.get("prod", "app/db").unwrap().value.expose(), b"pw-k8s");
    let requests = h.backend.requests();
    assert_eq!(requests[0].path_and_query, "/v1/auth/jwt/ci/login");
    assert!(requests[1].header("x-vault-token").is_some_and(|t| t.starts_with("hvs.fake-")));
}

#[test]
fn a_jwt_vault_refuses_is_permission_denied_and_never_shown() {
    let other = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJvdGhlciJ9.SENTINEL-other-1177";
    let mut h = start("kubernetes", "kubernetes", other);
    let err = secret_error(h.get("prod", "app/db"));
    let SecretError::PermissionDenied(message) = &err else { panic!("{err:?}") };
    assert!(message.contains("Vault rejected the kubernetes login") && !message.contains("SENTINEL"), "{message}");
    assert!(matches!(secret_error(h.get("prod", "app/db")), SecretError::PermissionDenied(_)));
    assert_eq!(h.backend.login_count(), 1, "not sent again within the back-off");
}
