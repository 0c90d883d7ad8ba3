//! Google Cloud Secret Manager (REST v1).
//!
//! `GET /v1/projects/<p>/secrets/<s>/versions/<v|latest>:access` with a
//! bearer token. `payload.data` is base64; `payload.dataCrc32c` (an int64 as
//! a decimal string) is checked so a corrupted payload is never served.
//! Errors are google.rpc: `{"error": {"code", "status", "message"}}`.

use crate::prelude::*;
use serde_json::Value;

use super::{by_status, not_found, Failure, Fetched};
use crate::encoding::{base64_decode, crc32c};
use crate::error::{sanitize_reason, Error};
use crate::http::{BaseUrl, HttpRequest, HttpResponse};
use crate::secret::SecretBytes;
use crate::validate::VersionSel;

/// The access request. `project` and `secret` are validated.
pub fn request(url: &BaseUrl, project: &str, token: &SecretBytes, secret: &str, version: &VersionSel) -> HttpRequest {
    let version = match version {
        VersionSel::Pinned(n) => n.to_string(),
        // Ids and stages are refused by `backend::validate`; `latest` is all that is left.
        VersionSel::Latest | VersionSel::Id(_) | VersionSel::Stage(_) => "latest".to_string(),
    };
    let path_and_query = format!("{}/v1/projects/{project}/secrets/{secret}/versions/{version}:access", url.prefix);
    HttpRequest::get(url, path_and_query, super::bearer(token))
}

/// Judges a response. `retry_after` is the response's `Retry-After`, read by
/// the caller (the date form needs its clock).
pub fn response(secret: &str, response: &HttpResponse, retry_after: Option<u64>) -> Result<Fetched, Failure> {
    let status = response.status;
    if status == 200 {
        return parse_payload(&response.body).map_err(Failure::permanent);
    }
    let (rpc_status, message) = rpc_error(&response.body).unwrap_or_default();
    let reason = if message.is_empty() { format!("HTTP {status}") } else { message };
    Err(match (rpc_status.as_str(), status) {
        // Throttled, with or without a google.rpc body (a front end's plain 429):
        // checked first so that no body can turn it into `not-found`.
        ("RESOURCE_EXHAUSTED", _) | (_, 429) => Failure::transient(Error::RateLimited { retry_after_ms: retry_after }, retry_after),
        ("NOT_FOUND", _) | ("", 404) => Failure::permanent(not_found(secret)),
        // A disabled or destroyed version cannot be read: for the caller it
        // is not there.
        ("FAILED_PRECONDITION", _) => Failure::permanent(Error::NotFound(format!("version is not readable: {reason}"))),
        ("PERMISSION_DENIED" | "UNAUTHENTICATED", _) | ("", 401 | 403) => {
            Failure::permanent(Error::PermissionDenied(format!("GCP denied access: {reason}")))
        }
        ("UNAVAILABLE" | "INTERNAL" | "DEADLINE_EXCEEDED" | "UNKNOWN" | "ABORTED", _) => {
            Failure::transient(Error::backend(Some(status), reason), retry_after)
        }
        _ => by_status(status, reason, retry_after),
    })
}

fn parse_payload(body: &[u8]) -> Result<Fetched, Error> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| malformed(&format!("invalid JSON at line {} column {}", e.line(), e.column())))?;
    let name = doc.get("name").and_then(Value::as_str).ok_or_else(|| malformed("no `name`"))?;
    // The version must be one a caller can ask for (`VersionSel::parse`: positive, no
    // leading zeros, fits a u64): a `latest` read is also cached under its version, so `0`
    // or `007` would be an entry no pinned read ever finds, or one filed under `7` that
    // claims to be `007`.
    let version = name
        .rsplit_once("/versions/")
        .map(|(_, v)| v)
        .filter(|v| matches!(VersionSel::parse(Some(v)), Ok(VersionSel::Pinned(_))))
        .ok_or_else(|| malformed("`name` has no positive version number"))?
        .to_string();
    let payload = doc.get("payload").ok_or_else(|| malformed("no `payload`"))?;
    let encoded = payload.get("data").and_then(Value::as_str).ok_or_else(|| malformed("no `payload.data`"))?;
    let data = base64_decode(encoded).ok_or_else(|| malformed("`payload.data` is not valid base64"))?;
    let data = SecretBytes::new(data);
    // int64 fields are strings in Google's JSON mapping; accept a number too.
    let expected = match payload.get("dataCrc32c") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.parse::<u64>().map_err(|_| malformed("`payload.dataCrc32c` is not a number"))?),
        Some(Value::Number(n)) => Some(n.as_u64().ok_or_else(|| malformed("`payload.dataCrc32c` is not a number"))?),
        Some(_) => return Err(malformed("`payload.dataCrc32c` is not a number")),
    };
    if let Some(expected) = expected {
        if u64::from(crc32c(data.expose())) != expected {
            return Err(Error::backend(Some(200), "payload failed its CRC32C check (bad CRC32C)"));
        }
    }
    Ok(Fetched::bytes(version, data))
}

fn malformed(what: &str) -> Error {
    Error::backend(Some(200), format!("malformed GCP response: {what}"))
}

/// `(status, message)` of a google.rpc error body.
fn rpc_error(body: &[u8]) -> Option<(String, String)> {
    let doc: Value = serde_json::from_slice(body).ok()?;
    let error = doc.get("error")?;
    let status = error.get("status").and_then(Value::as_str).unwrap_or("").to_string();
    let message = error.get("message").and_then(Value::as_str).map(sanitize_reason).unwrap_or_default();
    Some((status, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, body: &str) -> HttpResponse {
        HttpResponse { status, headers: vec![], body: body.as_bytes().to_vec() }
    }

    /// `response` with the seconds form of `Retry-After`, as most tests need.
    fn response(secret: &str, r: &HttpResponse) -> Result<Fetched, Failure> {
        super::response(secret, r, r.retry_after_ms())
    }

    fn ok_body(data_b64: &str, crc: &str) -> String {
        format!(r#"{{"name":"projects/123/secrets/db/versions/4","payload":{{"data":"{data_b64}","dataCrc32c":{crc}}}}}"#)
    }

    #[test]
    fn request_shape() {
        let url = BaseUrl::parse("https://secretmanager.googleapis.com").unwrap();
        let r = request(&url, "my-proj", &SecretBytes::new(b"ya29.x".to_vec()), "db", &VersionSel::Latest);
        assert_eq!(r.path_and_query, "/v1/projects/my-proj/secrets/db/versions/latest:access");
        assert_eq!(r.headers, vec![("authorization".to_string(), b"Bearer ya29.x".to_vec())]);
        let pinned = request(&url, "p", &SecretBytes::new(vec![]), "db", &VersionSel::Pinned(3));
        assert!(pinned.path_and_query.ends_with("/versions/3:access"));
    }

    #[test]
    fn decodes_payload_and_checks_crc() {
        // "hello" → aGVsbG8=, crc32c("hello") = 0x9A71BB4C = 2591144780
        let f = response("db", &resp(200, &ok_body("aGVsbG8=", "\"2591144780\""))).unwrap();
        assert_eq!(f.version, "4");
        assert_eq!(f.select("value").unwrap().expose(), b"hello");
        let numeric = response("db", &resp(200, &ok_body("aGVsbG8=", "2591144780"))).unwrap();
        assert_eq!(numeric.version, "4");
        let bad = response("db", &resp(200, &ok_body("aGVsbG8=", "\"1\""))).unwrap_err();
        assert_eq!(bad, Failure::permanent(Error::backend(Some(200), "payload failed its CRC32C check (bad CRC32C)")));
    }

    #[test]
    fn versions_must_be_canonical_positive_integers() {
        // Found by fuzz/fuzz_targets/backend_response.rs: `versions/0` was served as version "0".
        let body = |v: &str| format!(r#"{{"name":"projects/1/secrets/db/versions/{v}","payload":{{"data":""}}}}"#);
        for bad in ["0", "007", "18446744073709551616", "latest", "", "+1"] {
            let f = response("db", &resp(200, &body(bad))).unwrap_err();
            assert_eq!(f, Failure::permanent(malformed("`name` has no positive version number")), "{bad:?}");
        }
        assert_eq!(response("db", &resp(200, &body("18446744073709551615"))).unwrap().version, "18446744073709551615");
    }

    #[test]
    fn maps_rpc_errors() {
        let body = |code: u16, status: &str| format!(r#"{{"error":{{"code":{code},"message":"m","status":"{status}"}}}}"#);
        let nf = response("db", &resp(404, &body(404, "NOT_FOUND"))).unwrap_err();
        assert!(matches!(nf.error, Error::NotFound(_)) && !nf.transient);
        let pd = response("db", &resp(403, &body(403, "PERMISSION_DENIED"))).unwrap_err();
        assert_eq!(pd.error, Error::PermissionDenied("GCP denied access: m".into()));
        let un = response("db", &resp(401, &body(401, "UNAUTHENTICATED"))).unwrap_err();
        assert!(matches!(un.error, Error::PermissionDenied(_)));
        let mut exhausted = resp(429, &body(429, "RESOURCE_EXHAUSTED"));
        exhausted.headers.push(("retry-after".into(), b"4".to_vec()));
        let rl = response("db", &exhausted).unwrap_err();
        assert_eq!(rl, Failure::transient(Error::RateLimited { retry_after_ms: Some(4_000) }, Some(4_000)));
        // A quota answer with another status, a plain 429, and a 429 whose body
        // claims NOT_FOUND: all throttling, never not-found.
        for r in [resp(400, &body(400, "RESOURCE_EXHAUSTED")), resp(429, ""), resp(429, "Too Many Requests"), resp(429, &body(404, "NOT_FOUND"))] {
            let f = response("db", &r).unwrap_err();
            assert_eq!(f, Failure::transient(Error::RateLimited { retry_after_ms: None }, None), "{r:?}");
        }
        let ua = response("db", &resp(503, &body(503, "UNAVAILABLE"))).unwrap_err();
        assert_eq!(ua, Failure::transient(Error::backend(Some(503), "m"), None));
        let fp = response("db", &resp(400, &body(400, "FAILED_PRECONDITION"))).unwrap_err();
        assert!(matches!(fp.error, Error::NotFound(_)));
        let plain = response("db", &resp(502, "<html>bad gateway</html>")).unwrap_err();
        assert_eq!(plain, Failure::transient(Error::backend(Some(502), "HTTP 502"), None));
    }

    #[test]
    fn malformed_payloads_are_backend_errors_without_content() {
        for (i, body) in [
            r#"{"name":"projects/1/secrets/db/versions/1","payload":{"data":"aHVudGVyMg=="#,
            r#"{"name":"projects/1/secrets/db/versions/1","payload":{"data":"hunter2!"}}"#,
            r#"{"name":"projects/1/secrets/db","payload":{"data":"aHVudGVyMg=="}}"#,
            r#"{"payload":{"data":"aHVudGVyMg=="}}"#,
            r#"{"name":"projects/1/secrets/db/versions/1","payload":{"data":"aHVudGVyMg==","dataCrc32c":"abc"}}"#,
        ]
        .into_iter()
        .enumerate()
        {
            let f = response("db", &resp(200, body)).unwrap_err();
            assert!(!f.transient && matches!(f.error, Error::Backend { .. }), "case {i}");
            assert!(!f.error.to_string().contains("hunter2"));
        }
    }
}
