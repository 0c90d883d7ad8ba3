//! HTTP answers as plain data, and the mapping from component errors and auth refusals to
//! statuses, headers and small JSON bodies (`{"error":"<kind>","message":"..."}`).
//!
//! Error bodies carry only the component's messages, which the WIT contract keeps free of
//! secret bytes and credentials, or fixed texts of our own.

use serde_json::json;

use crate::auth::Refusal;
use crate::model::{Secret, SecretError};

/// Every answer is `no-store`: secret values must not be cached by proxies, and errors and
/// metrics go stale.
const CACHE_CONTROL: (&str, &str) = ("cache-control", "no-store");

/// RFC 7234 warn-code 110 with no agent (`-`).
pub const STALE_WARNING: &str = r#"110 - "response is stale""#;

/// A response. Its body may be a secret value, so no `Debug`.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    fn new(status: u16, content_type: &str, body: Vec<u8>) -> Reply {
        Reply { status, headers: vec![("content-type", content_type.to_string()), (CACHE_CONTROL.0, CACHE_CONTROL.1.to_string())], body }
    }

    pub fn json(status: u16, value: &serde_json::Value) -> Reply {
        Reply::new(status, "application/json", value.to_string().into_bytes())
    }

    pub fn text(status: u16, content_type: &str, text: String) -> Reply {
        Reply::new(status, content_type, text.into_bytes())
    }

    /// `{"error": kind, "message": message}`.
    pub fn error(status: u16, kind: &str, message: &str) -> Reply {
        Reply::json(status, &json!({ "error": kind, "message": message }))
    }

    /// 200 with the raw value. The version, source, staleness and tier go in headers, never
    /// the value. A stale answer also carries `Warning: 110` (RFC 7234 5.5.1), the standard
    /// marker generic HTTP tooling recognises, besides our own `x-secret-stale`.
    pub fn secret(secret: Secret) -> Reply {
        let mut reply = Reply::new(200, "application/octet-stream", secret.value);
        reply.headers.push(("x-secret-version", secret.version));
        reply.headers.push(("x-secret-source", if secret.from_cache { "cache" } else { "backend" }.to_string()));
        reply.headers.push(("x-secret-stale", secret.stale.to_string()));
        reply.headers.push(("x-secret-tier", secret.tier.to_string()));
        if secret.stale {
            reply.headers.push(("warning", STALE_WARNING.to_string()));
        }
        reply
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn with_header(mut self, name: &'static str, value: String) -> Reply {
        self.headers.push((name, value));
        self
    }
}

/// 401 or 403. The bodies are fixed: they never depend on the environment or the secret.
pub fn refusal(refusal: Refusal) -> Reply {
    match refusal {
        Refusal::Unauthenticated { malformed: false } => Reply::error(401, "unauthorized", "an Authorization: Bearer token is required")
            .with_header("www-authenticate", r#"Bearer realm="edge-secrets""#.to_string()),
        Refusal::Unauthenticated { malformed: true } => Reply::error(401, "unauthorized", "the Authorization header must be `Bearer <token>`")
            .with_header("www-authenticate", r#"Bearer realm="edge-secrets", error="invalid_request""#.to_string()),
        Refusal::Forbidden => Reply::error(403, "forbidden", "the token does not grant access to this environment"),
    }
}

/// The status for each component error kind.
pub fn status_of(error: &SecretError) -> u16 {
    match error {
        SecretError::InvalidRequest(_) => 400,
        SecretError::UnknownEnvironment(_) | SecretError::NotFound(_) => 404,
        SecretError::PermissionDenied(_) => 403,
        SecretError::RateLimited(_) => 429,
        SecretError::Unavailable(_) => 503,
        SecretError::Timeout(_) => 504,
        SecretError::Backend { .. } => 502,
        SecretError::Config(_) => 500,
    }
}

/// A component error as an HTTP answer, with `Retry-After` (whole seconds, rounded up) when
/// the component knows how long to wait.
pub fn secret_error(error: &SecretError) -> Reply {
    let message = match error {
        SecretError::InvalidRequest(m) | SecretError::NotFound(m) | SecretError::PermissionDenied(m) | SecretError::Config(m) => m.clone(),
        SecretError::UnknownEnvironment(env) => format!("environment `{env}` is not configured"),
        SecretError::Unavailable(ms) => format!("the environment's circuit breaker is open; retry in {ms} ms"),
        SecretError::Timeout(ms) => format!("the backend did not answer within the {ms} ms deadline"),
        SecretError::RateLimited(Some(ms)) => format!("the backend is rate limiting; retry in {ms} ms"),
        SecretError::RateLimited(None) => "the backend is rate limiting".to_string(),
        SecretError::Backend { status: Some(status), reason } => format!("the backend failed with HTTP {status}: {reason}"),
        SecretError::Backend { status: None, reason } => format!("the backend failed: {reason}"),
    };
    let reply = Reply::error(status_of(error), error.kind(), &message);
    match retry_after_ms(error) {
        Some(ms) => reply.with_header("retry-after", ms.div_ceil(1000).to_string()),
        None => reply,
    }
}

fn retry_after_ms(error: &SecretError) -> Option<u64> {
    match error {
        SecretError::Unavailable(ms) | SecretError::RateLimited(Some(ms)) => Some(*ms),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(reply: &Reply) -> serde_json::Value {
        serde_json::from_slice(&reply.body).unwrap()
    }

    #[test]
    fn every_error_kind_has_its_status_and_a_json_body() {
        let cases = [
            (SecretError::InvalidRequest("bad name".into()), 400, "invalid-request"),
            (SecretError::UnknownEnvironment("qa".into()), 404, "unknown-environment"),
            (SecretError::NotFound("no such secret".into()), 404, "not-found"),
            (SecretError::PermissionDenied("denied".into()), 403, "permission-denied"),
            (SecretError::RateLimited(None), 429, "rate-limited"),
            (SecretError::Unavailable(10), 503, "unavailable"),
            (SecretError::Timeout(5000), 504, "timeout"),
            (SecretError::Backend { status: Some(500), reason: "boom".into() }, 502, "backend"),
            (SecretError::Config("secrets_policy: missing".into()), 500, "config"),
        ];
        for (error, status, kind) in cases {
            let reply = secret_error(&error);
            assert_eq!((reply.status, reply.header("content-type"), reply.header("cache-control")), (status, Some("application/json"), Some("no-store")));
            let body = body(&reply);
            assert_eq!(body["error"], kind);
            assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
            assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
        }
        assert_eq!(body(&secret_error(&SecretError::Backend { status: Some(500), reason: "boom".into() }))["message"], "the backend failed with HTTP 500: boom");
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up() {
        let ra = |e: SecretError| secret_error(&e).header("retry-after").map(str::to_string);
        assert_eq!(ra(SecretError::Unavailable(1)), Some("1".into()));
        assert_eq!(ra(SecretError::Unavailable(1000)), Some("1".into()));
        assert_eq!(ra(SecretError::Unavailable(1001)), Some("2".into()));
        assert_eq!(ra(SecretError::Unavailable(0)), Some("0".into()));
        assert_eq!(ra(SecretError::RateLimited(Some(2500))), Some("3".into()));
        assert_eq!(ra(SecretError::RateLimited(None)), None);
        assert_eq!(ra(SecretError::Timeout(5000)), None);
    }

    #[test]
    fn refusals_are_fixed_answers() {
        let missing = refusal(Refusal::Unauthenticated { malformed: false });
        assert_eq!((missing.status, missing.header("www-authenticate")), (401, Some(r#"Bearer realm="edge-secrets""#)));
        let malformed = refusal(Refusal::Unauthenticated { malformed: true });
        assert_eq!(malformed.status, 401);
        assert!(malformed.header("www-authenticate").unwrap().starts_with("Bearer "));
        let forbidden = refusal(Refusal::Forbidden);
        assert_eq!((forbidden.status, forbidden.header("www-authenticate")), (403, None));
        assert_eq!(body(&forbidden)["error"], "forbidden");
    }

    #[test]
    fn a_secret_is_the_raw_bytes_with_metadata_in_headers() {
        let reply = Reply::secret(Secret { value: vec![0, 159, 146, 150], version: "7".into(), from_cache: true, stale: false, tier: 0 });
        assert_eq!(reply.body, [0, 159, 146, 150]);
        assert_eq!(reply.header("content-type"), Some("application/octet-stream"));
        assert_eq!(reply.header("cache-control"), Some("no-store"));
        assert_eq!((reply.header("x-secret-version"), reply.header("x-secret-source")), (Some("7"), Some("cache")));
        assert_eq!((reply.header("x-secret-stale"), reply.header("x-secret-tier"), reply.header("warning")), (Some("false"), Some("0"), None));
    }

    #[test]
    fn a_stale_fallback_answer_says_so() {
        let reply = Reply::secret(Secret { value: b"v".to_vec(), version: "3".into(), from_cache: true, stale: true, tier: 2 });
        assert_eq!((reply.header("x-secret-stale"), reply.header("x-secret-tier")), (Some("true"), Some("2")));
        assert_eq!(reply.header("warning"), Some(r#"110 - "response is stale""#));
    }
}
