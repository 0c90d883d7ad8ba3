//! Vault's Kubernetes and JWT/OIDC auth methods: logging in with a role name
//! and a JWT (a Kubernetes service-account token, or any JWT the method's
//! issuer signed), read from a config key. Pure, like [`super::approle`]:
//! the login is `POST /v1/auth/<mount>/login` with `{"role":..,"jwt":..}`, the
//! answer the same `auth` object as AppRole's, and the token is renewed with
//! `renew-self` (see [`super::approle::renew_request`]).

use crate::prelude::*;
use serde::Serialize;

use super::approle::{headers, parse_auth, text};
use super::IssuedToken;
use crate::backend::vault::error_reason;
use crate::backend::{by_status, Failure};
use crate::error::Error;
use crate::http::{BaseUrl, HttpRequest, HttpResponse};
use crate::secret::SecretBytes;

/// Vault's default mounts for the two methods.
pub const DEFAULT_KUBERNETES_MOUNT: &str = "kubernetes";
pub const DEFAULT_JWT_MOUNT: &str = "jwt";

#[derive(Serialize)]
struct LoginBody<'a> {
    role: &'a str,
    jwt: &'a str,
}

/// The login request. `mount` and `role` are validated config.
pub fn login_request(url: &BaseUrl, mount: &str, namespace: Option<&str>, role: &str, jwt: &SecretBytes) -> HttpRequest {
    let jwt = text(jwt);
    let body = serde_json::to_vec(&LoginBody { role, jwt: &jwt }).unwrap_or_default();
    let path = format!("{}/v1/auth/{mount}/login", url.prefix);
    HttpRequest::post(url, path, headers(namespace, None), body)
}

/// Judges a login's answer. Any 400 is the credential's fault (an unknown
/// role, a JWT that does not validate, claims the role does not bind), and
/// so is a 401 or 403: permission denied, not retried. `method` names the
/// method in messages (`kubernetes`, `jwt`); no message holds the JWT.
pub fn response(response: &HttpResponse, retry_after: Option<u64>, method: &str) -> Result<IssuedToken, Failure> {
    let status = response.status;
    if status == 200 {
        return parse_auth(&response.body).map_err(Failure::permanent);
    }
    let reason = error_reason(&response.body).unwrap_or_else(|| format!("HTTP {status}"));
    Err(match status {
        400 | 401 | 403 => Failure::permanent(Error::PermissionDenied(format!("Vault rejected the {method} login: {reason}"))),
        412 | 429 => Failure::transient(Error::RateLimited { retry_after_ms: retry_after }, retry_after),
        503 if reason.to_ascii_lowercase().contains("sealed") => Failure::transient(Error::backend(Some(503), "vault is sealed"), retry_after),
        _ => by_status(status, reason, retry_after),
    })
}

/// Whether `role` is a Vault role name as the methods accept it.
pub fn is_role_name(role: &str) -> bool {
    (1..=128).contains(&role.len()) && role.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'@'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Method;
    use serde_json::Value;

    const JWT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6YXBwOmRlZmF1bHQifQ.c2lnbmF0dXJl-SENTINEL";

    fn resp(status: u16, body: &str) -> HttpResponse {
        HttpResponse { status, headers: vec![], body: body.as_bytes().to_vec() }
    }

    #[test]
    fn the_login_posts_the_role_and_the_jwt_to_the_mount_in_the_namespace() {
        let url = BaseUrl::parse("https://vault.example:8200").unwrap();
        let r = login_request(&url, "kubernetes/prod-cluster", Some("team-a"), "app", &SecretBytes::new(JWT.as_bytes().to_vec()));
        assert_eq!((r.method, r.path_and_query.as_str()), (Method::Post, "/v1/auth/kubernetes/prod-cluster/login"));
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body, serde_json::json!({"role": "app", "jwt": JWT}));
        assert!(r.headers.iter().any(|(n, v)| n == "x-vault-namespace" && v == b"team-a"));
        assert!(!format!("{r:?}").contains("SENTINEL"), "Debug shows no JWT");
    }

    #[test]
    fn refusals_are_permission_denied_without_the_jwt_and_the_rest_as_for_reads() {
        for (status, body) in [
            (400, r#"{"errors":["invalid role name \"app\""]}"#),
            (400, r#"{"errors":["error validating token: token is expired"]}"#),
            (403, r#"{"errors":["permission denied"]}"#),
        ] {
            let failure = response(&resp(status, body), None, "kubernetes").unwrap_err();
            assert!(!failure.transient, "{status}");
            let Error::PermissionDenied(message) = &failure.error else { panic!("{:?}", failure.error) };
            assert!(message.starts_with("Vault rejected the kubernetes login: "), "{message}");
        }
        assert!(response(&resp(429, "{}"), Some(2_000), "jwt").unwrap_err().transient);
        assert!(response(&resp(503, r#"{"errors":["Vault is sealed"]}"#), None, "jwt").unwrap_err().transient);
        assert!(response(&resp(502, "<html>"), None, "jwt").unwrap_err().transient);
        let issued = response(&resp(200, r#"{"auth":{"client_token":"hvs.k8s","lease_duration":600,"renewable":true}}"#), None, "jwt").unwrap();
        assert_eq!((issued.ttl_ms, issued.renewable), (600_000, true));
    }

    #[test]
    fn role_names_are_checked() {
        for ok in ["app", "my-role_1", "team.a", "x@y"] {
            assert!(is_role_name(ok), "{ok}");
        }
        for bad in ["", "a b", "a/b", "a\"b", &"r".repeat(129)] {
            assert!(!is_role_name(bad), "{bad}");
        }
    }
}
