//! The login answers: `auth::approle::response` (Vault AppRole login and `renew-self`) and
//! `auth::metadata::response` (the GCP metadata server's token) on any status, headers and body.
//!
//! Input layout (the body is the file's tail, as sent):
//!   byte 0: bit 0 method (0 AppRole, 1 metadata); bit 1 status from bytes 1-2 raw instead of
//!           from the table of interesting ones; bits 2-3 the `Metadata-Flavor` header (none,
//!           `Google`, ` google ` as servers may spell it, `Googlebot`: not Google's);
//!   bytes 1-2: status (big-endian; the table index is byte 2 when bit 1 is clear)
//!   byte 3: length n of a `Retry-After` value (0xff: no header), then n bytes of it
//!   rest: the body.
//!
//! Invariants beyond "no panic":
//! - a token is issued only for a 200 (for the metadata server, only one carrying
//!   `Metadata-Flavor: Google`), and it is the body's own token, usable in a header (AppRole:
//!   1-4096 bytes without control characters; metadata: 1-8192 visible ASCII bytes);
//! - its lifetime is within the documented caps: AppRole's lease in seconds, `0` and longer
//!   leases held for `approle::MAX_TTL_SECS` (32 days); the metadata server's `expires_in`, 1 s
//!   to a day, exactly; only AppRole tokens say they renew, and only when the body says so;
//!   `Debug` shows the lifetime and nothing else;
//! - the token never appears in an error: a failed 200 names neither the body's token nor the
//!   seeds' marker (unless the token is a word of the fixed messages), an AppRole error shows
//!   the marker only when Vault's `errors[0]` (the one part echoed) holds it;
//! - errors are short and have no control characters; failures carry the `Retry-After` only
//!   when transient, and exactly the one given; a bad 200 is never worth a retry; AppRole's
//!   412 and 429 are throttles; a 200 or 404 without the flavor header is never trusted.
#![no_main]

use edge_secrets_guest::auth::{approle, metadata, IssuedToken};
use edge_secrets_guest::backend::Failure;
use edge_secrets_guest::error::Error;
use edge_secrets_guest::http::HttpResponse;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// The seeds' tokens hold this.
const MARKER: &str = "zqTOKENMARKERzq";
const STATUSES: [u16; 16] = [200, 200, 200, 200, 400, 401, 403, 404, 408, 412, 429, 500, 502, 503, 504, 301];
/// A sanitized upstream reason (160 chars, up to 4 bytes each) plus fixed text.
const MAX_ERROR_BYTES: usize = 1024;
/// `metadata::MAX_EXPIRES_IN_S` (private).
const METADATA_MAX_EXPIRES_IN_S: u64 = 24 * 3600;
/// `metadata::MAX_TOKEN_BYTES` (private).
const METADATA_MAX_TOKEN_BYTES: usize = 8 * 1024;
/// The fixed text of the errors a 200 can give (both modules, and `Error`'s `Display`): a token
/// that is a piece of it (`lease_duration`, `Bearer`) is found in an error without being echoed.
const FIXED_TEXT: &str = "backend failure (status 200): malformed Vault login response: invalid JSON at line \
     column no `auth` object `auth.client_token` is empty, longer than 4096 bytes or has control characters \
     no `auth.client_token` string no non-negative integer `auth.lease_duration` `auth.renewable` is not a boolean \
     malformed metadata server response: not JSON at line missing `access_token` `access_token` is empty \
     `access_token` is not a string `access_token` is too long or has characters a header cannot carry \
     missing `token_type` `token_type` must be `Bearer`, got `token_type` is not a string missing `expires_in` \
     `expires_in` is not a whole number of seconds `expires_in` must be 1 to 86400 s, got \
     HTTP 200 without `Metadata-Flavor: Google`: the URL is not a GCP metadata server";

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let Some((status, rest)) = rest.split_first_chunk::<2>() else { return };
    let status = if flags & 2 != 0 { u16::from_be_bytes(*status) } else { STATUSES[usize::from(status[1]) % STATUSES.len()] };
    let Some((&len, rest)) = rest.split_first() else { return };
    let (retry_after, body) = if len == 0xff {
        (None, rest)
    } else {
        let n = usize::from(len).min(rest.len());
        (Some(&rest[..n]), &rest[n..])
    };
    let mut headers = vec![("content-type".to_string(), b"application/json".to_vec())];
    let flavor: Option<&[u8]> = [None, Some(&b"Google"[..]), Some(&b" google "[..]), Some(&b"Googlebot"[..])][usize::from(flags >> 2) & 3];
    if let Some(value) = flavor {
        headers.push(("Metadata-Flavor".to_string(), value.to_vec()));
    }
    if let Some(value) = retry_after {
        headers.push(("Retry-After".to_string(), value.to_vec()));
    }
    let response = HttpResponse { status, headers, body: body.to_vec() };
    let retry = response.retry_after_ms();
    let doc: Option<Value> = serde_json::from_slice(body).ok();

    let is_metadata = flags & 1 != 0;
    let (result, token_in_body) = if is_metadata {
        (metadata::response(&response), doc.as_ref().and_then(|d| d.get("access_token")).and_then(Value::as_str))
    } else {
        (approle::response(&response, retry), doc.as_ref().and_then(|d| d.get("auth")?.get("client_token")?.as_str()))
    };
    let from_google = matches!(flavor, Some(b"Google" | b" google "));

    match result {
        Ok(issued) => {
            assert_eq!(status, 200, "a token from a non-200");
            let token = issued.token.expose();
            assert_eq!(Some(token), token_in_body.map(str::as_bytes), "the token issued is not the body's");
            assert_eq!(
                format!("{issued:?}"),
                format!("IssuedToken {{ ttl_ms: {}, renewable: {} }}", issued.ttl_ms, issued.renewable),
                "Debug shows more than the lifetime"
            );
            if is_metadata {
                check_metadata_token(&issued, doc.as_ref().expect("a token from JSON"), from_google);
            } else {
                check_approle_token(&issued, doc.as_ref().expect("a token from JSON"));
            }
        }
        Err(failure) => {
            check_failure(&failure, retry);
            let shown = format!("{} {:?}", failure.error, failure);
            if status == 200 {
                assert!(!failure.transient, "a bad 200 is not worth a retry");
                assert!(!shown.contains(MARKER), "a failed 200 shows the token: {shown:?}");
                if let Some(token) = token_in_body {
                    let word = token.len() < 8 || token.bytes().all(|b| b.is_ascii_digit()) || FIXED_TEXT.contains(token);
                    assert!(word || !shown.contains(token), "a failed 200 shows its token {token:?}: {shown:?}");
                }
            }
            if is_metadata {
                if matches!(status, 200 | 404) {
                    assert!(!failure.transient);
                }
                if !from_google && status == 200 {
                    assert!(matches!(failure.error, Error::Backend { status: Some(200), .. }), "{:?}", failure.error);
                }
            } else {
                if status != 200 && shown.contains(MARKER) {
                    let first = doc.as_ref().and_then(|d| d.get("errors")?.as_array()?.first()?.as_str());
                    assert!(first.is_some_and(|e| e.contains(MARKER)), "an AppRole error shows the token: {shown:?}");
                }
                if matches!(status, 412 | 429) {
                    assert_eq!(failure, Failure::transient(Error::RateLimited { retry_after_ms: retry }, retry), "a throttle");
                }
            }
        }
    }
});

fn check_approle_token(issued: &IssuedToken, doc: &Value) {
    let token = issued.token.expose();
    assert!(!token.is_empty() && token.len() <= approle::MAX_TOKEN_BYTES, "a token of {} bytes", token.len());
    let text = std::str::from_utf8(token).expect("a JSON string");
    assert!(!text.chars().any(char::is_control), "a token with control characters");
    let auth = &doc["auth"];
    let lease = auth["lease_duration"].as_u64().expect("issued with a non-negative integer lease");
    let expected_secs = if lease == 0 { approle::MAX_TTL_SECS } else { lease.min(approle::MAX_TTL_SECS) };
    assert_eq!(issued.ttl_ms, expected_secs * 1000, "lease {lease} s held for {} ms", issued.ttl_ms);
    assert!((1_000..=approle::MAX_TTL_SECS * 1000).contains(&issued.ttl_ms));
    assert_eq!(issued.renewable, auth["renewable"].as_bool().unwrap_or(false), "renewable as the body says");
}

fn check_metadata_token(issued: &IssuedToken, doc: &Value, from_google: bool) {
    assert!(from_google, "a token from something that is not the metadata server");
    let token = issued.token.expose();
    assert!(!token.is_empty() && token.len() <= METADATA_MAX_TOKEN_BYTES, "a token of {} bytes", token.len());
    assert!(token.iter().all(u8::is_ascii_graphic), "a token a header cannot carry");
    assert!(doc["token_type"].as_str().is_some_and(|t| t.eq_ignore_ascii_case("bearer")), "issued without `Bearer`");
    let expires_in = doc["expires_in"].as_u64().expect("issued with whole seconds");
    assert!((1..=METADATA_MAX_EXPIRES_IN_S).contains(&expires_in), "expires_in {expires_in}");
    assert_eq!(issued.ttl_ms, expires_in * 1000);
    assert!(!issued.renewable, "metadata tokens are fetched again, never renewed");
}

fn check_failure(failure: &Failure, retry: Option<u64>) {
    let shown = failure.error.to_string();
    assert!(shown.len() <= MAX_ERROR_BYTES, "an error of {} bytes", shown.len());
    assert!(!shown.chars().any(char::is_control), "an error with control characters: {shown:?}");
    if failure.transient {
        assert_eq!(failure.retry_after_ms, retry, "a transient failure with another Retry-After");
    } else {
        assert_eq!(failure.retry_after_ms, None, "a permanent failure with a Retry-After");
    }
    if let Error::RateLimited { retry_after_ms } = failure.error {
        assert!(failure.transient && retry_after_ms == retry, "{failure:?}");
    }
}
