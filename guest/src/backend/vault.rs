//! HashiCorp Vault, KV secrets engine v2.
//!
//! `GET /v1/<mount>/data/<path>[?version=N]` with `X-Vault-Token` and
//! optionally `X-Vault-Namespace`; the value is `data.data.<field>` and the
//! version `data.metadata.version`. Errors are `{"errors": [...]}`.

use crate::prelude::*;
use serde_json::Value;

use super::{by_status, not_found, Failure, Fetched};
use crate::error::{sanitize_reason, Error};
use crate::http::{BaseUrl, HttpRequest, HttpResponse};
use crate::secret::SecretBytes;
use crate::validate::VersionSel;

/// The read request. `path` and `mount` are validated (no escaping needed).
pub fn request(
    url: &BaseUrl,
    mount: &str,
    namespace: Option<&str>,
    token: &SecretBytes,
    path: &str,
    version: &VersionSel,
) -> HttpRequest {
    let mut path_and_query = format!("{}/v1/{mount}/data/{path}", url.prefix);
    if let VersionSel::Pinned(n) = *version {
        path_and_query.push_str(&format!("?version={n}"));
    }
    let mut headers = vec![("x-vault-token".to_string(), token.expose().to_vec())];
    if let Some(ns) = namespace {
        headers.push(("x-vault-namespace".to_string(), ns.as_bytes().to_vec()));
    }
    HttpRequest::get(url, path_and_query, headers)
}

/// Judges a response. `retry_after` is the response's `Retry-After`, read
/// by the caller (the date form needs its clock).
pub fn response(path: &str, response: &HttpResponse, retry_after: Option<u64>) -> Result<Fetched, Failure> {
    let status = response.status;
    if status == 200 {
        return parse_secret(path, &response.body).map_err(Failure::permanent);
    }
    let reason = error_reason(&response.body).unwrap_or_else(|| format!("HTTP {status}"));
    Err(match status {
        // A deleted or destroyed version also answers 404 (with metadata).
        404 => Failure::permanent(not_found(path)),
        401 | 403 => Failure::permanent(Error::PermissionDenied(format!("Vault denied access: {reason}"))),
        // 429: a rate-limit quota. 412: a performance standby has not caught up
        // with the write yet; Vault's advice is the same as for a quota, wait and
        // retry, so the caller sees it as throttling, not as a failing backend.
        412 | 429 => Failure::transient(Error::RateLimited { retry_after_ms: retry_after }, retry_after),
        503 if reason.to_ascii_lowercase().contains("sealed") => {
            Failure::transient(Error::backend(Some(503), "vault is sealed"), retry_after)
        }
        _ => by_status(status, reason, retry_after),
    })
}

fn parse_secret(path: &str, body: &[u8]) -> Result<Fetched, Error> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| malformed(&format!("invalid JSON at line {} column {}", e.line(), e.column())))?;
    let data = doc.get("data").ok_or_else(|| malformed("no `data` object"))?;
    let version = match data.get("metadata").and_then(|m| m.get("version")) {
        Some(Value::Number(n)) if n.as_u64().is_some_and(|v| v > 0) => n.to_string(),
        _ => return Err(malformed("no positive `data.metadata.version`")),
    };
    let fields = match data.get("data") {
        Some(Value::Object(map)) => map,
        // Vault answers a deleted version with `data: null` on some versions.
        Some(Value::Null) => return Err(not_found(path)),
        _ => return Err(malformed("no `data.data` object")),
    };
    let fields = fields
        .iter()
        .map(|(name, value)| {
            let bytes = match value {
                Value::String(s) => s.as_bytes().to_vec(),
                other => other.to_string().into_bytes(),
            };
            (name.clone(), SecretBytes::new(bytes))
        })
        .collect();
    Ok(Fetched::fields(version, fields))
}

fn malformed(what: &str) -> Error {
    Error::backend(Some(200), format!("malformed Vault response: {what}"))
}

/// The first message of a Vault `{"errors": [...]}` body (AppRole logins
/// answer with the same shape).
pub(crate) fn error_reason(body: &[u8]) -> Option<String> {
    let doc: Value = serde_json::from_slice(body).ok()?;
    let first = doc.get("errors")?.as_array()?.first()?.as_str()?;
    Some(sanitize_reason(first))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Scheme;

    fn url() -> BaseUrl {
        BaseUrl::parse("http://127.0.0.1:8200").unwrap()
    }

    fn resp(status: u16, body: &str) -> HttpResponse {
        HttpResponse { status, headers: vec![], body: body.as_bytes().to_vec() }
    }

    /// `response` with the seconds form of `Retry-After`, as most tests need.
    fn response(path: &str, r: &HttpResponse) -> Result<Fetched, Failure> {
        super::response(path, r, r.retry_after_ms())
    }

    #[test]
    fn request_shape() {
        let token = SecretBytes::new(b"s.tok".to_vec());
        let r = request(&url(), "kv", Some("team-a"), &token, "app/db", &VersionSel::Pinned(4));
        assert_eq!(r.scheme, Scheme::Http);
        assert_eq!(r.authority, "127.0.0.1:8200");
        assert_eq!(r.path_and_query, "/v1/kv/data/app/db?version=4");
        assert_eq!(r.headers[0], ("x-vault-token".to_string(), b"s.tok".to_vec()));
        assert_eq!(r.headers[1], ("x-vault-namespace".to_string(), b"team-a".to_vec()));
        let latest = request(&BaseUrl::parse("https://v/pfx").unwrap(), "secret", None, &token, "x", &VersionSel::Latest);
        assert_eq!(latest.path_and_query, "/pfx/v1/secret/data/x");
        assert_eq!(latest.headers.len(), 1);
    }

    #[test]
    fn reads_fields_and_version() {
        let body = r#"{"data":{"data":{"value":"s3cr3t","port":5432},"metadata":{"version":7}}}"#;
        let f = response("app/db", &resp(200, body)).unwrap();
        assert_eq!(f.version, "7");
        assert_eq!(f.select("value").unwrap().expose(), b"s3cr3t");
        assert_eq!(f.select("port").unwrap().expose(), b"5432");
    }

    #[test]
    fn maps_error_statuses() {
        let denied = response("x", &resp(403, r#"{"errors":["permission denied"]}"#)).unwrap_err();
        assert_eq!(denied, Failure::permanent(Error::PermissionDenied("Vault denied access: permission denied".into())));
        let missing = response("x", &resp(404, r#"{"errors":[]}"#)).unwrap_err();
        assert!(matches!(missing.error, Error::NotFound(_)) && !missing.transient);
        let sealed = response("x", &resp(503, r#"{"errors":["Vault is sealed"]}"#)).unwrap_err();
        assert_eq!(sealed, Failure::transient(Error::backend(Some(503), "vault is sealed"), None));
        let mut throttled = resp(429, r#"{"errors":["rate limit quota exceeded"]}"#);
        throttled.headers.push(("retry-after".into(), b"3".to_vec()));
        let t = response("x", &throttled).unwrap_err();
        assert_eq!(t, Failure::transient(Error::RateLimited { retry_after_ms: Some(3_000) }, Some(3_000)));
        let mut standby = resp(412, "");
        standby.headers.push(("retry-after".into(), b"1".to_vec()));
        let s = response("x", &standby).unwrap_err();
        assert_eq!(s, Failure::transient(Error::RateLimited { retry_after_ms: Some(1_000) }, Some(1_000)));
        let bare = response("x", &resp(429, "")).unwrap_err();
        assert_eq!(bare, Failure::transient(Error::RateLimited { retry_after_ms: None }, None));
        // Throttling is never "not found", whatever the body says.
        let odd = response("x", &resp(429, r#"{"errors":["secret not found"]}"#)).unwrap_err();
        assert!(matches!(odd.error, Error::RateLimited { .. }), "{odd:?}");
        let sealed_plain = response("x", &resp(503, "")).unwrap_err();
        assert_eq!(sealed_plain, Failure::transient(Error::backend(Some(503), "HTTP 503"), None));
        let bad = response("x", &resp(400, r#"{"errors":["bad"]}"#)).unwrap_err();
        assert_eq!(bad, Failure::permanent(Error::backend(Some(400), "bad")));
    }

    #[test]
    fn deleted_version_is_not_found() {
        let body = r#"{"data":{"data":null,"metadata":{"version":2,"deletion_time":"2024-01-01T00:00:00Z"}}}"#;
        assert!(matches!(response("x", &resp(200, body)).unwrap_err().error, Error::NotFound(_)));
    }

    #[test]
    fn malformed_and_truncated_bodies_are_backend_errors_without_content() {
        for (i, body) in [
            r#"{"data":{"data":{"value":"hunter2"#,
            "not json hunter2",
            r#"{"data":{"data":{"value":"hunter2"}}}"#,
            r#"{"data":{"data":"hunter2","metadata":{"version":1}}}"#,
            r#"{"data":{"data":{},"metadata":{"version":"1"}}}"#,
            "",
        ]
        .into_iter()
        .enumerate()
        {
            let f = response("x", &resp(200, body)).unwrap_err();
            assert!(!f.transient, "case {i}");
            assert!(matches!(f.error, Error::Backend { status: Some(200), .. }), "case {i}");
            assert!(!f.error.to_string().contains("hunter2"), "case {i}: the error quotes the secret");
        }
    }
}
