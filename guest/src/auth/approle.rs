//! Vault AppRole: logging in with a role id and secret id, and renewing the
//! token it issued. Pure: builds the two requests and judges their answers;
//! the engine decides when to log in, renew, or log in again.
//!
//! - login: `POST /v1/auth/<mount>/login` with `{"role_id":..,"secret_id":..}`
//! - renew: `POST /v1/auth/token/renew-self` with `X-Vault-Token`
//!
//! Both answer `{"auth": {"client_token", "lease_duration", "renewable", ..}}`.

use crate::prelude::*;
use alloc::borrow::Cow;
use serde::Serialize;
use serde_json::Value;

use super::IssuedToken;
use crate::backend::vault::error_reason;
use crate::backend::{by_status, Failure};
use crate::error::Error;
use crate::http::{BaseUrl, HttpRequest, HttpResponse};
use crate::secret::SecretBytes;

/// The longest lifetime a token is held for, in seconds: 32 days, Vault's
/// default maximum TTL (`max_lease_ttl`, 768 h). `lease_duration: 0` means a
/// token that never expires (a root or periodic-less token); holding it "for
/// ever" would keep a revoked token in use until a read fails, so it is held
/// as long as Vault would let an ordinary token live, and then the engine logs
/// in again (harmless for a token that was still valid). Longer leases are
/// capped the same way, which also keeps `ttl_ms` far from overflow.
pub const MAX_TTL_SECS: u64 = 32 * 24 * 3600;

/// The longest token accepted: Vault's are ~100 bytes; anything far larger
/// is not a token, and it goes into a header on every read.
pub const MAX_TOKEN_BYTES: usize = 4096;

/// The login body. Borrowed strings: the ids are not copied into a JSON tree.
#[derive(Serialize)]
struct LoginBody<'a> {
    role_id: &'a str,
    secret_id: &'a str,
}

/// The login request. `mount` is validated config (no escaping needed). Ids
/// that are not UTF-8 cannot be sent as JSON strings; they are sent with the
/// invalid bytes replaced, so Vault rejects them as any wrong id (a 400 the
/// caller reports as `permission-denied`), instead of this failing here.
pub fn login_request(
    url: &BaseUrl,
    mount: &str,
    namespace: Option<&str>,
    role_id: &SecretBytes,
    secret_id: &SecretBytes,
) -> HttpRequest {
    let (role_id, secret_id) = (text(role_id), text(secret_id));
    // Serializing a struct of two strings cannot fail; an empty body would be
    // rejected by Vault as a login without ids, which is still no panic.
    let body = serde_json::to_vec(&LoginBody { role_id: &role_id, secret_id: &secret_id }).unwrap_or_default();
    let path = format!("{}/v1/auth/{mount}/login", url.prefix);
    HttpRequest::post(url, path, headers(namespace, None), body)
}

/// The renewal of `token` (the token renews itself: no id is needed).
pub fn renew_request(url: &BaseUrl, namespace: Option<&str>, token: &SecretBytes) -> HttpRequest {
    let path = format!("{}/v1/auth/token/renew-self", url.prefix);
    // `{}`: renew by the role's own TTL (no `increment` asked for).
    HttpRequest::post(url, path, headers(namespace, Some(token)), b"{}".to_vec())
}

pub(super) fn text(bytes: &SecretBytes) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes.expose())
}

pub(super) fn headers(namespace: Option<&str>, token: Option<&SecretBytes>) -> Vec<(String, Vec<u8>)> {
    let mut headers = vec![("content-type".to_string(), b"application/json".to_vec())];
    if let Some(token) = token {
        headers.push(("x-vault-token".to_string(), token.expose().to_vec()));
    }
    if let Some(ns) = namespace {
        headers.push(("x-vault-namespace".to_string(), ns.as_bytes().to_vec()));
    }
    headers
}

/// Judges the answer to a login or a renewal. `retry_after` is the
/// response's `Retry-After`, read by the caller (the date form needs its
/// clock). No message ever holds the token or the ids: they are built from
/// fixed text and Vault's sanitized `errors`.
pub fn response(response: &HttpResponse, retry_after: Option<u64>) -> Result<IssuedToken, Failure> {
    let status = response.status;
    if status == 200 {
        return parse_auth(&response.body).map_err(Failure::permanent);
    }
    let reason = error_reason(&response.body).unwrap_or_else(|| format!("HTTP {status}"));
    let lower = reason.to_ascii_lowercase();
    Err(match status {
        // Vault answers wrong or missing ids with 400 ("invalid role or secret
        // ID", "invalid secret id", "missing role_id"): the credentials are
        // wrong, and retrying will not make them right.
        400 if names_an_id(&lower) => denied(&reason),
        // 403: a renewal of an expired or revoked token, or a login the
        // namespace or policy forbids.
        401 | 403 => denied(&reason),
        // As for reads (see `backend::vault`): a quota, or a standby behind.
        412 | 429 => Failure::transient(Error::RateLimited { retry_after_ms: retry_after }, retry_after),
        503 if lower.contains("sealed") => Failure::transient(Error::backend(Some(503), "vault is sealed"), retry_after),
        _ => by_status(status, reason, retry_after),
    })
}

fn names_an_id(reason: &str) -> bool {
    ["role id", "role_id", "secret id", "secret_id", "role or secret"].iter().any(|p| reason.contains(p))
}

fn denied(reason: &str) -> Failure {
    Failure::permanent(Error::PermissionDenied(format!("Vault rejected the AppRole credentials: {reason}")))
}

pub(super) fn parse_auth(body: &[u8]) -> Result<IssuedToken, Error> {
    let doc: Value = serde_json::from_slice(body)
        .map_err(|e| malformed(&format!("invalid JSON at line {} column {}", e.line(), e.column())))?;
    let auth = match doc.get("auth") {
        Some(auth @ Value::Object(_)) => auth,
        _ => return Err(malformed("no `auth` object")),
    };
    let token = match auth.get("client_token") {
        Some(Value::String(t)) if !t.is_empty() && t.len() <= MAX_TOKEN_BYTES && !t.chars().any(char::is_control) => t,
        // Never say what the token looked like: only that it is unusable.
        Some(Value::String(_)) => {
            return Err(malformed(&format!(
                "`auth.client_token` is empty, longer than {MAX_TOKEN_BYTES} bytes or has control characters"
            )))
        }
        _ => return Err(malformed("no `auth.client_token` string")),
    };
    let lease_secs = auth
        .get("lease_duration")
        .and_then(Value::as_u64)
        .ok_or_else(|| malformed("no non-negative integer `auth.lease_duration`"))?;
    // Missing: Vault always sends it, but "not renewable" is the safe reading
    // (the engine logs in again instead of renewing).
    let renewable = match auth.get("renewable") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(malformed("`auth.renewable` is not a boolean")),
    };
    let ttl_secs = if lease_secs == 0 { MAX_TTL_SECS } else { lease_secs.min(MAX_TTL_SECS) };
    Ok(IssuedToken { token: SecretBytes::new(token.as_bytes().to_vec()), ttl_ms: ttl_secs * 1000, renewable })
}

fn malformed(what: &str) -> Error {
    Error::backend(Some(200), format!("malformed Vault login response: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{Method, Scheme};

    fn secret(s: &str) -> SecretBytes {
        SecretBytes::new(s.as_bytes().to_vec())
    }

    fn resp(status: u16, body: &str) -> HttpResponse {
        HttpResponse { status, headers: vec![], body: body.as_bytes().to_vec() }
    }

    fn header<'r>(r: &'r HttpRequest, name: &str) -> Option<&'r [u8]> {
        r.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }

    const ROLE: &str = "ROLE-0d1e";
    // Quotes, a backslash and a control character: all must survive JSON.
    const SECRET: &str = "SID\"q\\u\n\u{1}é";

    #[test]
    fn login_request_shape_and_body_round_trip() {
        let url = BaseUrl::parse("https://vault.example:8200/proxy").unwrap();
        let r = login_request(&url, "approle/team-a", Some("ns1"), &secret(ROLE), &secret(SECRET));
        assert_eq!((r.method, r.scheme, r.authority.as_str()), (Method::Post, Scheme::Https, "vault.example:8200"));
        assert_eq!(r.path_and_query, "/proxy/v1/auth/approle/team-a/login");
        assert_eq!(header(&r, "content-type"), Some(&b"application/json"[..]));
        assert_eq!(header(&r, "x-vault-namespace"), Some(&b"ns1"[..]));
        assert_eq!(header(&r, "x-vault-token"), None, "a login presents no token");
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body, serde_json::json!({ "role_id": ROLE, "secret_id": SECRET }));

        let plain = login_request(&BaseUrl::parse("http://v").unwrap(), "approle", None, &secret(ROLE), &secret(SECRET));
        assert_eq!((plain.path_and_query.as_str(), plain.headers.len()), ("/v1/auth/approle/login", 1));
    }

    #[test]
    fn login_with_non_utf8_ids_still_builds_json() {
        let url = BaseUrl::parse("http://v").unwrap();
        let r = login_request(&url, "approle", None, &SecretBytes::new(vec![0xff, b'a']), &secret("s"));
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["role_id"], "\u{fffd}a");
    }

    #[test]
    fn request_debug_shows_no_ids_or_token() {
        let url = BaseUrl::parse("http://v").unwrap();
        let login = login_request(&url, "approle", Some("ns1"), &secret(ROLE), &secret("SIDSECRET"));
        let renew = renew_request(&url, None, &secret("hvs.TOKENSECRET"));
        let shown = format!("{login:?} {renew:?}");
        for needle in [ROLE, "SIDSECRET", "TOKENSECRET"] {
            assert!(!shown.contains(needle), "{needle} in {shown}");
        }
        assert!(shown.contains("ns1") && shown.contains("body_bytes"), "{shown}");
    }

    #[test]
    fn renew_request_shape() {
        let url = BaseUrl::parse("http://127.0.0.1:8200/pfx/").unwrap();
        let r = renew_request(&url, Some("ns1"), &secret("hvs.tok"));
        assert_eq!((r.method, r.path_and_query.as_str()), (Method::Post, "/pfx/v1/auth/token/renew-self"));
        assert_eq!(header(&r, "x-vault-token"), Some(&b"hvs.tok"[..]));
        assert_eq!(header(&r, "x-vault-namespace"), Some(&b"ns1"[..]));
        assert_eq!(header(&r, "content-type"), Some(&b"application/json"[..]));
        assert_eq!(r.body, b"{}");
    }

    fn auth_body(token: &str, lease: &str, renewable: &str) -> String {
        format!(
            r#"{{"request_id":"x","lease_id":"","renewable":false,"lease_duration":0,"data":null,
            "auth":{{"client_token":{token},"accessor":"a","policies":["default"],"lease_duration":{lease},"renewable":{renewable}}}}}"#
        )
    }

    #[test]
    fn a_200_issues_a_token() {
        let t = response(&resp(200, &auth_body(r#""hvs.abc""#, "2764800", "true")), None).unwrap();
        assert_eq!((t.token.expose(), t.ttl_ms, t.renewable), (&b"hvs.abc"[..], 2_764_800_000, true));
        let short = response(&resp(200, &auth_body(r#""hvs.abc""#, "2", "false")), None).unwrap();
        assert_eq!((short.ttl_ms, short.renewable), (2_000, false));
        // 0: never expires; held for the cap. Longer leases are capped too.
        for lease in ["0", "99999999999999"] {
            let t = response(&resp(200, &auth_body(r#""hvs.abc""#, lease, "false")), None).unwrap();
            assert_eq!(t.ttl_ms, MAX_TTL_SECS * 1000, "{lease}");
        }
        let missing = response(&resp(200, r#"{"auth":{"client_token":"hvs.SHOWN","lease_duration":5}}"#), None).unwrap();
        assert!(!missing.renewable);
        assert!(!format!("{missing:?}").contains("SHOWN"));
    }

    #[test]
    fn malformed_200s_are_permanent_and_never_show_the_token() {
        let long = format!("\"hvs.SECRET{}\"", "x".repeat(MAX_TOKEN_BYTES));
        for (i, body) in [
            auth_body(r#""""#, "5", "true"),
            auth_body(r#""hvs.SECRET\n""#, "5", "true"),
            auth_body(r#""hvs.SECRET\u007f""#, "5", "true"),
            auth_body(&long, "5", "true"),
            auth_body("5", "5", "true"),
            auth_body(r#""hvs.SECRET""#, "-1", "true"),
            auth_body(r#""hvs.SECRET""#, "1.5", "true"),
            auth_body(r#""hvs.SECRET""#, r#""5""#, "true"),
            auth_body(r#""hvs.SECRET""#, "5", r#""yes""#),
            r#"{"auth":null,"data":{"client_token":"hvs.SECRET"}}"#.into(),
            r#"{"auth":{"client_token":"hvs.SECRET""#.into(),
            "".into(),
        ]
        .into_iter()
        .enumerate()
        {
            let f = response(&resp(200, &body), None).unwrap_err();
            assert!(!f.transient, "case {i}");
            assert!(matches!(f.error, Error::Backend { status: Some(200), .. }), "case {i}: {:?}", f.error.kind());
            assert!(!f.error.to_string().contains("SECRET"), "case {i}: the error quotes the token");
        }
    }

    #[test]
    fn wrong_credentials_are_permission_denied() {
        for (status, message) in [
            (400, "invalid role or secret ID"),
            (400, "invalid secret id"),
            (400, "invalid role ID"),
            (400, "missing role_id"),
            (403, "permission denied"),
            (401, "unauthorized"),
        ] {
            let body = format!(r#"{{"errors":["{message}"]}}"#);
            let f = response(&resp(status, &body), Some(1_000)).unwrap_err();
            let expected = Error::PermissionDenied(format!("Vault rejected the AppRole credentials: {message}"));
            assert_eq!(f, Failure::permanent(expected), "{status} {message}");
        }
        // A 400 about something else is the backend's (or the config's) problem.
        let other = response(&resp(400, r#"{"errors":["unsupported path"]}"#), None).unwrap_err();
        assert_eq!(other, Failure::permanent(Error::backend(Some(400), "unsupported path")));
        let missing = response(&resp(404, r#"{"errors":["no handler for route"]}"#), None).unwrap_err();
        assert_eq!(missing, Failure::permanent(Error::backend(Some(404), "no handler for route")));
    }

    #[test]
    fn throttling_sealed_and_server_errors_are_transient() {
        for status in [412, 429] {
            let f = response(&resp(status, ""), Some(3_000)).unwrap_err();
            assert_eq!(f, Failure::transient(Error::RateLimited { retry_after_ms: Some(3_000) }, Some(3_000)));
        }
        let sealed = response(&resp(503, r#"{"errors":["Vault is sealed"]}"#), None).unwrap_err();
        assert_eq!(sealed, Failure::transient(Error::backend(Some(503), "vault is sealed"), None));
        let plain = response(&resp(500, r#"{"errors":["internal error\r\n"]}"#), Some(2_000)).unwrap_err();
        assert_eq!(plain, Failure::transient(Error::backend(Some(500), "internal error  "), Some(2_000)));
        let bare = response(&resp(502, "<html>bad gateway</html>"), None).unwrap_err();
        assert_eq!(bare, Failure::transient(Error::backend(Some(502), "HTTP 502"), None));
    }
}
