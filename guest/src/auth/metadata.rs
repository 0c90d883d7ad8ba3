//! The GCP metadata server's access tokens (Compute Engine, GKE workload
//! identity, Cloud Run and other Google-run hosts).
//!
//! `GET /computeMetadata/v1/instance/service-accounts/default/token` with
//! `Metadata-Flavor: Google` answers `{"access_token", "expires_in",
//! "token_type": "Bearer"}`. The request carries no credential: the server
//! knows the workload by where the request comes from. Google's servers send
//! `Metadata-Flavor: Google` back, so an answer without it came from
//! something else (a captive proxy, a misrouted URL) and is not used.

use crate::prelude::*;
use serde_json::Value;

use super::IssuedToken;
use crate::backend::{by_status, Failure};
use crate::error::{sanitize_reason, Error};
use crate::http::{BaseUrl, HttpRequest, HttpResponse};
use crate::secret::SecretBytes;

/// The token endpoint of the instance's default service account.
pub const TOKEN_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/token";

/// Tokens live about an hour; one claiming more than a day is not a real
/// answer, and holding it that long would outlive any revocation.
const MAX_EXPIRES_IN_S: u64 = 24 * 3600;

/// Google's access tokens are a few hundred bytes to ~2 KB.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The token request.
pub fn request(url: &BaseUrl) -> HttpRequest {
    HttpRequest::get(url, format!("{}{TOKEN_PATH}", url.prefix), vec![("metadata-flavor".to_string(), b"Google".to_vec())])
}

/// Judges the token response.
pub fn response(response: &HttpResponse) -> Result<IssuedToken, Failure> {
    let status = response.status;
    let from_google = response.header("metadata-flavor").is_some_and(|v| v.trim().eq_ignore_ascii_case("Google"));
    // Only a 200 or 404 is acted on as the metadata server's word; a 5xx from
    // whatever answered is worth a retry either way.
    if !from_google && matches!(status, 200 | 404) {
        return Err(Failure::permanent(Error::backend(
            Some(status),
            format!("HTTP {status} without `Metadata-Flavor: Google`: the URL is not a GCP metadata server"),
        )));
    }
    match status {
        200 => parse_token(&response.body).map_err(Failure::permanent),
        // The metadata server's answer when the instance has no service account attached.
        404 => Err(Failure::permanent(Error::PermissionDenied("no service account on this metadata server".into()))),
        _ => {
            let reason = upstream_reason(status, &response.body);
            Err(match status {
                403 => Failure::permanent(Error::PermissionDenied(format!("the metadata server refused: {reason}"))),
                _ => by_status(status, reason, response.retry_after_ms()),
            })
        }
    }
}

fn parse_token(body: &[u8]) -> Result<IssuedToken, Error> {
    // Positions only: the body holds the token, and serde's type errors quote values.
    let doc: Value =
        serde_json::from_slice(body).map_err(|e| malformed(&format!("not JSON at line {} column {}", e.line(), e.column())))?;
    let token = match doc.get("access_token") {
        None | Some(Value::Null) => return Err(malformed("missing `access_token`")),
        Some(Value::String(s)) if s.is_empty() => return Err(malformed("`access_token` is empty")),
        Some(Value::String(s)) => s,
        Some(_) => return Err(malformed("`access_token` is not a string")),
    };
    // It goes into an `Authorization` header: visible ASCII only (no
    // control characters that could split or smuggle a header).
    if token.len() > MAX_TOKEN_BYTES || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(malformed("`access_token` is too long or has characters a header cannot carry"));
    }
    match doc.get("token_type") {
        Some(Value::String(t)) if t.eq_ignore_ascii_case("Bearer") => {}
        None | Some(Value::Null) => return Err(malformed("missing `token_type`")),
        // Named only when it looks like a scheme name: the field sits next to
        // the token, and a broken server could put the token in it (a short
        // alphanumeric token looks like a scheme name too: never named then).
        Some(Value::String(t))
            if t.len() <= 16
                && t.bytes().all(|b| b.is_ascii_alphanumeric())
                && !token.contains(t.as_str())
                && !t.contains(token.as_str()) =>
        {
            return Err(malformed(&format!("`token_type` must be `Bearer`, got {t:?}")));
        }
        Some(Value::String(_)) => return Err(malformed("`token_type` must be `Bearer`")),
        Some(_) => return Err(malformed("`token_type` is not a string")),
    }
    let expires_in = match doc.get("expires_in") {
        None | Some(Value::Null) => return Err(malformed("missing `expires_in`")),
        Some(v) => v.as_u64().ok_or_else(|| malformed("`expires_in` is not a whole number of seconds"))?,
    };
    if expires_in == 0 || expires_in > MAX_EXPIRES_IN_S {
        return Err(malformed(&format!("`expires_in` must be 1 to {MAX_EXPIRES_IN_S} s, got {expires_in}")));
    }
    Ok(IssuedToken { token: SecretBytes::new(token.as_bytes().to_vec()), ttl_ms: expires_in * 1000, renewable: false })
}

fn malformed(what: &str) -> Error {
    Error::backend(Some(200), format!("malformed metadata server response: {what}"))
}

/// An error answer's body as a reason: the metadata server sends plain text.
/// (No request to it carries a credential, so an echo cannot leak one.)
fn upstream_reason(status: u16, body: &[u8]) -> String {
    match core::str::from_utf8(body).map(str::trim) {
        Ok(text) if !text.is_empty() => format!("metadata server: HTTP {status}: {}", sanitize_reason(text)),
        _ => format!("metadata server: HTTP {status}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "ya29.c.TEST-ONLY-token_0123456789";

    fn resp(status: u16, google: bool, body: &str) -> HttpResponse {
        let headers = if google { vec![("metadata-flavor".to_string(), b"Google".to_vec())] } else { vec![] };
        HttpResponse { status, headers, body: body.as_bytes().to_vec() }
    }

    fn ok(body: &str) -> Result<IssuedToken, Failure> {
        response(&resp(200, true, body))
    }

    /// Every failure's text, checked never to carry the token.
    fn err(result: Result<IssuedToken, Failure>) -> Failure {
        let failure = result.expect_err("should fail");
        let shown = format!("{failure:?} {}", failure.error);
        assert!(!shown.contains(TOKEN) && !shown.contains("ya29"), "token leaked: {shown}");
        failure
    }

    fn malformed_reason(f: &Failure) -> String {
        assert!(!f.transient, "{f:?}");
        match &f.error {
            Error::Backend { status: Some(200), reason } => reason.clone(),
            other => panic!("not a malformed-response error: {other:?}"),
        }
    }

    #[test]
    fn request_shape() {
        let url = BaseUrl::parse("http://169.254.169.254").unwrap();
        let r = request(&url);
        assert_eq!(r.method, crate::http::Method::Get);
        assert_eq!(r.authority, "169.254.169.254");
        assert_eq!(r.path_and_query, "/computeMetadata/v1/instance/service-accounts/default/token");
        assert_eq!(r.headers, vec![("metadata-flavor".to_string(), b"Google".to_vec())]);
        assert!(r.body.is_empty());
        let prefixed = request(&BaseUrl::parse("http://127.0.0.1:8080/fake/").unwrap());
        assert_eq!(prefixed.path_and_query, "/fake/computeMetadata/v1/instance/service-accounts/default/token");
    }

    #[test]
    fn a_token_is_read_with_its_lifetime() {
        let t = ok(&format!(r#"{{"access_token":"{TOKEN}","expires_in":3599,"token_type":"Bearer"}}"#)).unwrap();
        assert_eq!(t.token.expose(), TOKEN.as_bytes());
        assert_eq!((t.ttl_ms, t.renewable), (3_599_000, false));
        let shown = format!("{t:?}");
        assert!(!shown.contains(TOKEN) && shown.contains("3599000"), "{shown}");
        // `token_type` is case-insensitive; the header value may be any case too; extra fields are fine.
        let mut r = resp(200, false, &format!(r#"{{"access_token":"{TOKEN}","expires_in":60,"token_type":"bearer","x":1}}"#));
        r.headers.push(("Metadata-Flavor".to_string(), b"google".to_vec()));
        assert_eq!(response(&r).unwrap().ttl_ms, 60_000);
    }

    #[test]
    fn malformed_tokens_are_refused_permanently_and_named() {
        let cases: &[(&str, &str)] = &[
            ("not json", "not JSON at line 1 column 2"),
            (r#"{"expires_in":3599,"token_type":"Bearer"}"#, "missing `access_token`"),
            (r#"{"access_token":"","expires_in":3599,"token_type":"Bearer"}"#, "`access_token` is empty"),
            (r#"{"access_token":7,"expires_in":3599,"token_type":"Bearer"}"#, "`access_token` is not a string"),
            (r#"{"access_token":"ya29.a\r\nx: y","expires_in":3599,"token_type":"Bearer"}"#, "characters a header cannot carry"),
            (r#"{"access_token":"ya29.a b","expires_in":3599,"token_type":"Bearer"}"#, "characters a header cannot carry"),
            (r#"{"access_token":"ya29.a","expires_in":3599}"#, "missing `token_type`"),
            (r#"{"access_token":"ya29.a","expires_in":3599,"token_type":"MAC"}"#, "`token_type` must be `Bearer`, got \"MAC\""),
            (r#"{"access_token":"ya29.a","token_type":"Bearer"}"#, "missing `expires_in`"),
            (r#"{"access_token":"ya29.a","expires_in":0,"token_type":"Bearer"}"#, "`expires_in` must be 1 to 86400 s, got 0"),
            (r#"{"access_token":"ya29.a","expires_in":86401,"token_type":"Bearer"}"#, "got 86401"),
            (r#"{"access_token":"ya29.a","expires_in":-5,"token_type":"Bearer"}"#, "not a whole number"),
            (r#"{"access_token":"ya29.a","expires_in":"3599","token_type":"Bearer"}"#, "not a whole number"),
            (r#"{"access_token":"ya29.a","expires_in":1e300,"token_type":"Bearer"}"#, "not a whole number"),
        ];
        for (i, &(body, expected)) in cases.iter().enumerate() {
            let reason = malformed_reason(&err(ok(body)));
            assert!(reason.starts_with("malformed metadata server response: "), "{reason}");
            assert!(reason.contains(expected), "case {i}: {reason}");
        }
        let long = "a".repeat(MAX_TOKEN_BYTES + 1);
        let reason = malformed_reason(&err(ok(&format!(r#"{{"access_token":"{long}","expires_in":1,"token_type":"Bearer"}}"#))));
        assert!(reason.contains("too long") && !reason.contains(&long[..100]), "{reason}");
    }

    #[test]
    fn errors_never_echo_the_token() {
        // A bad field next to a real token: the message names the field only.
        for body in [
            format!(r#"{{"access_token":"{TOKEN}","expires_in":0,"token_type":"Bearer"}}"#),
            format!(r#"{{"access_token":"{TOKEN}","expires_in":60,"token_type":"{TOKEN}"}}"#),
            format!(r#"{{"access_token":"{TOKEN}\u0000","expires_in":60,"token_type":"Bearer"}}"#),
            format!(r#"{{"access_token":"{TOKEN}","expires_in":60,"token_type":"Bearer""#),
        ] {
            err(ok(&body));
        }
        // A short alphanumeric token in `token_type` looks like a scheme name, but is
        // not named (found by fuzz/fuzz_targets/auth_responses.rs), nor is a piece of one.
        for (token, token_type) in [("ya29456789", "ya29456789"), ("ya29.c.abc123def", "abc123def"), ("abc123", "xabc123y")] {
            let body = format!(r#"{{"access_token":"{token}","expires_in":60,"token_type":"{token_type}"}}"#);
            let reason = malformed_reason(&err(ok(&body)));
            assert_eq!(reason, "malformed metadata server response: `token_type` must be `Bearer`");
            assert!(!reason.contains(token) && !reason.contains(token_type), "the reason quotes the token");
        }
        // Nor does an answer from something that is not the metadata server.
        err(response(&resp(200, false, &format!(r#"{{"access_token":"{TOKEN}","expires_in":60,"token_type":"Bearer"}}"#))));
    }

    #[test]
    fn answers_without_the_flavor_header_are_not_trusted() {
        let f = err(response(&resp(200, false, r#"{"access_token":"ya29.a","expires_in":60,"token_type":"Bearer"}"#)));
        assert!(!f.transient);
        assert!(f.error.to_string().contains("not a GCP metadata server"), "{}", f.error);
        let f = err(response(&resp(404, false, "not found")));
        assert!(!f.transient && matches!(f.error, Error::Backend { status: Some(404), .. }), "{f:?}");
    }

    #[test]
    fn statuses_are_classified() {
        let f = err(response(&resp(404, true, "Not Found")));
        assert_eq!(f, Failure::permanent(Error::PermissionDenied("no service account on this metadata server".into())));
        let f = err(response(&resp(403, true, "Missing Metadata-Flavor:Google header.")));
        assert!(!f.transient && matches!(f.error, Error::PermissionDenied(_)), "{f:?}");
        let f = err(response(&resp(503, true, "oops\r\nInjected: header")));
        assert!(f.transient, "{f:?}");
        assert_eq!(f.error, Error::backend(Some(503), "metadata server: HTTP 503: oops  Injected: header"));
        // A 5xx from whatever answered is still worth a retry.
        assert!(err(response(&resp(502, false, ""))).transient);
        let mut throttled = resp(429, true, "");
        throttled.headers.push(("retry-after".to_string(), b"2".to_vec()));
        let f = err(response(&throttled));
        assert_eq!(f, Failure::transient(Error::RateLimited { retry_after_ms: Some(2000) }, Some(2000)));
        let f = err(response(&resp(400, true, &"x".repeat(1000))));
        assert!(!f.transient && f.error.to_string().len() < 300, "{f:?}");
    }
}
