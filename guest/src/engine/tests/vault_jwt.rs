//! Vault Kubernetes and JWT logins through the provider: the role and the
//! JWT are posted to the method's mount, reads present the issued token, the
//! token is renewed like AppRole's, and a refused login is a permission denial
//! that is not sent again within the back-off.

use std::sync::{Arc, Mutex};

use super::*;

const JWT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6YXBwIn0.sig-SENTINEL-4471";

fn policy(method: &str, mount: Option<&str>) -> String {
    let mount = mount.map(|m| format!(r#", "mount": "{m}""#)).unwrap_or_default();
    format!(
        r#"{{"defaults": {{"retry": {{"attempts": 2, "base_delay_ms": 10, "max_delay_ms": 10}}, "timeouts": {{"attempt_ms": 500, "deadline_ms": 2000}} }},
            "environments": {{"a": {{"backend": "vault", "url": "http://vault-a:8200", "namespace": "team-a",
              "auth": {{"method": "{method}", "role": "app", "jwt_key": "sa_token"{mount}}} }} }} }}"#
    )
}

#[derive(Default)]
struct Vault {
    logins: u32,
    renewals: u32,
    refuse: bool,
}

/// Logins at `login_path` issue `hvs.k<n>` for 60 s; reads need it.
fn start(method: &str, mount: Option<&str>, login_path: &'static str) -> (Harness, Arc<Mutex<Vault>>) {
    let state = Arc::new(Mutex::new(Vault::default()));
    let mut h = Harness::with_source(&policy(method, mount), &[("sa_token", JWT)], Box::new(|_| status(500)));
    let vault = state.clone();
    h.transport.handler = Box::new(move |o| {
        let mut v = vault.lock().unwrap();
        let header = |name: &str| o.request.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        assert_eq!(header("x-vault-namespace").as_deref(), Some(&b"team-a"[..]));
        let token = |n: u32| std::format!(r#"{{"auth":{{"client_token":"hvs.k{n}","lease_duration":60,"renewable":true}}}}"#);
        match o.request.path_and_query.as_str() {
            p if p == login_path => {
                v.logins += 1;
                let body: serde_json::Value = serde_json::from_slice(&o.request.body).unwrap();
                if v.refuse || body != serde_json::json!({"role": "app", "jwt": JWT}) {
                    return Ok(HttpResponse { status: 403, headers: vec![], body: br#"{"errors":["permission denied"]}"#.to_vec() });
                }
                Ok(HttpResponse { status: 200, headers: vec![], body: token(v.logins).into_bytes() })
            }
            "/v1/auth/token/renew-self" => {
                v.renewals += 1;
                Ok(HttpResponse { status: 200, headers: vec![], body: token(v.logins).into_bytes() })
            }
            _ if header("x-vault-token").as_deref() == Some(std::format!("hvs.k{}", v.logins).as_bytes()) => vault_ok(1, "v"),
            _ => status(403),
        }
    });
    (h, state)
}

fn paths(h: &Harness) -> Vec<String> {
    h.transport.sent.iter().map(|o| o.request.path_and_query.clone()).collect()
}

#[test]
fn kubernetes_logs_in_with_the_role_and_jwt_then_reads_and_renews_with_the_token() {
    let (mut h, state) = start("kubernetes", None, "/v1/auth/kubernetes/login");
    h.get("a", "app/db").unwrap();
    h.get("a", "app/other").unwrap();
    assert_eq!(paths(&h), ["/v1/auth/kubernetes/login", "/v1/secret/data/app/db", "/v1/secret/data/app/other"]);
    assert!(!std::format!("{:?}", h.transport.sent[0]).contains("SENTINEL"), "the login's Debug shows no JWT");
    // Due for renewal a third of its 60 s lifetime before expiry.
    h.clock.time.advance(41_000);
    h.get("a", "app/third").unwrap();
    assert_eq!(paths(&h)[3], "/v1/auth/token/renew-self");
    let v = state.lock().unwrap();
    assert_eq!((v.logins, v.renewals), (1, 1));
}

#[test]
fn jwt_logs_in_at_its_configured_mount() {
    let (mut h, _) = start("jwt", Some("jwt/github"), "/v1/auth/jwt/github/login");
    assert!(h.get("a", "app/db").is_ok());
    assert_eq!(paths(&h)[0], "/v1/auth/jwt/github/login");
}

#[test]
fn a_refused_login_is_permission_denied_and_not_sent_again_within_the_back_off() {
    let (mut h, state) = start("kubernetes", None, "/v1/auth/kubernetes/login");
    state.lock().unwrap().refuse = true;
    let err = h.get("a", "app/db").unwrap_err();
    assert!(matches!(&err, Error::PermissionDenied(m) if m.starts_with("Vault rejected the kubernetes login") && !m.contains("SENTINEL")), "{err:?}");
    assert!(h.get("a", "app/other").is_err());
    assert_eq!(state.lock().unwrap().logins, 1, "the refusal is the answer within the back-off");
    h.clock.time.advance(crate::engine::credentials::RELOGIN_INTERVAL_MS);
    state.lock().unwrap().refuse = false;
    assert!(h.get("a", "app/db").is_ok(), "after it, the next read logs in again");
}
