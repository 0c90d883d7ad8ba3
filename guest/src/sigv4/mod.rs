//! AWS Signature Version 4 (header signing, `AWS4-HMAC-SHA256`), pure: the
//! caller gives the request, the credentials, the scope and the time, and gets
//! back the canonical request, the string to sign, the signature and the
//! headers to add. Nothing here reads a clock or sends anything.
//!
//! Why a signer of our own rather than the `aws-sigv4` crate (1.6.4, checked
//! when this was written): it does compile for `wasm32-wasip2`, but only with
//! `std` (it takes a `SystemTime`; the guest is `no_std` on wasm32 so that it
//! imports exactly its world), and it brings ~70 crates with it — `http`,
//! `bytes`, `time`, `tracing`, `tokio` (through `aws-smithy-async`) and a second
//! `sha2`/`hmac`/`digest` generation. A size probe (one `sign` call in a
//! `wasm32-wasip2` cdylib, opt-level `s`, LTO) came to ~190 KiB more than the
//! same cdylib without it, against a guest of ~359 KiB and a budget of 384 KiB.
//! This module is a few hundred lines over the `sha2` the guest already links.
//!
//! For the same reason `aws-sigv4` is not a dev-dependency either: it would add
//! 26 crates to `Cargo.lock` and compile ~70 for every guest test run. The
//! checks are AWS's published test suite and documented IAM example, reproduced
//! under `guest/tests/fixtures/sigv4/`, plus requests signed once by `aws-sigv4`
//! outside the workspace and recorded there (see its README).
//!
//! Scope: what AWS's JSON APIs (Secrets Manager) need. The path is the wire
//! path and is encoded once more ("double-encoded", right for every service but
//! S3); no presigned URLs, no unsigned session tokens, no SigV4a.

mod canonical;
#[cfg(test)]
mod tests;

use crate::digest::{hex, hmac_sha256, sha256};
use crate::prelude::*;
use core::fmt;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Headers the signer writes itself; the same names in
/// [`SignableRequest::headers`] are ignored rather than signed twice.
const OWN_HEADERS: &[&str] = &["host", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256", "authorization"];

/// The request to sign, as it will be sent.
pub struct SignableRequest<'a> {
    /// `GET`, `POST`, … as sent.
    pub method: &'a str,
    /// The `Host` header: `host`, or `host:port` when the port is not the
    /// scheme's default.
    pub host: &'a str,
    /// The path as it goes on the wire (percent-encoded); empty means `/`.
    pub path: &'a str,
    /// The query as it goes on the wire, without `?`; may be empty.
    pub query: &'a str,
    /// Other headers to sign (`content-type`, `x-amz-target`, …), any case.
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

/// An access key. No `Debug` that shows any of it.
#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Temporary credentials' token, signed as `x-amz-security-token`.
    pub session_token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials(<redacted>)")
    }
}

/// Where the signature is valid: the region and the service's signing name.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub region: &'a str,
    pub service: &'a str,
}

/// How to sign. [`Options::default`] is what Secrets Manager expects.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Remove `.`/`..`/empty path segments before encoding (every service but S3).
    pub normalize_path: bool,
    /// Also send and sign `x-amz-content-sha256` (S3 requires it; others accept it).
    pub content_sha256_header: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options { normalize_path: true, content_sha256_header: false }
    }
}

/// The signature and everything that led to it.
///
/// No `Debug`: the canonical request holds the session token, and
/// `authorization` is a credential for the next few minutes.
pub struct Signed {
    pub canonical_request: String,
    pub string_to_sign: String,
    /// 64 lowercase hex digits.
    pub signature: String,
    /// `host;x-amz-date;…`, the names that were signed.
    pub signed_headers: String,
    /// The `Authorization` header's value.
    pub authorization: String,
    /// Headers to add to the request as sent, lowercase: `x-amz-date`, then
    /// `x-amz-content-sha256` and `x-amz-security-token` when used, then
    /// `authorization`. `host` is not among them: the transport sets it.
    pub headers: Vec<(String, String)>,
}

/// Why a request could not be signed. Names a header, never shows a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignError {
    /// The time is not `YYYYMMDDTHHMMSSZ`.
    BadDate,
    /// The method is empty or not an HTTP token.
    BadMethod,
    /// A header name is not an HTTP token, or its value holds a control
    /// character (a line break would inject a header).
    BadHeader { name: String },
}

impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignError::BadDate => f.write_str("the signing time is not YYYYMMDDTHHMMSSZ"),
            SignError::BadMethod => f.write_str("the HTTP method is not a token"),
            SignError::BadHeader { name } => write!(f, "header {name:?} cannot be signed (bad name or value)"),
        }
    }
}

/// Signs `request` with `credentials` for `scope` at `amz_date`
/// (`YYYYMMDDTHHMMSSZ`, see [`amz_date`]).
pub fn sign(
    request: &SignableRequest<'_>,
    credentials: &Credentials,
    scope: &Scope<'_>,
    amz_date: &str,
    options: Options,
) -> Result<Signed, SignError> {
    if !is_amz_date(amz_date) {
        return Err(SignError::BadDate);
    }
    if !is_token(request.method) {
        return Err(SignError::BadMethod);
    }
    let payload_hash = hex(&sha256(&[request.body]));

    let mut added: Vec<(&str, &str)> = vec![("x-amz-date", amz_date)];
    if options.content_sha256_header {
        added.push(("x-amz-content-sha256", &payload_hash));
    }
    if let Some(token) = &credentials.session_token {
        added.push(("x-amz-security-token", token));
    }
    let mut to_sign: Vec<(&str, &str)> = Vec::with_capacity(request.headers.len() + added.len() + 1);
    to_sign.push(("host", request.host));
    for &(name, value) in request.headers {
        if !OWN_HEADERS.iter().any(|own| own.eq_ignore_ascii_case(name)) {
            to_sign.push((name, value));
        }
    }
    to_sign.extend_from_slice(&added);
    for &(name, value) in &to_sign {
        if !is_token(name) || value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(SignError::BadHeader { name: name.to_string() });
        }
    }
    let (header_block, signed_headers) = canonical::canonical_headers(&to_sign);

    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        request.method,
        canonical::canonical_uri(request.path, options.normalize_path),
        canonical::canonical_query(request.query),
        header_block,
        signed_headers,
        payload_hash,
    );
    let date = &amz_date[..8];
    let credential_scope = format!("{date}/{}/{}/aws4_request", scope.region, scope.service);
    let string_to_sign =
        format!("{ALGORITHM}\n{amz_date}\n{credential_scope}\n{}", hex(&sha256(&[canonical_request.as_bytes()])));
    let key = signing_key(&credentials.secret_access_key, date, scope);
    let signature = hex(&hmac_sha256(&key, &[string_to_sign.as_bytes()]));
    let authorization = format!(
        "{ALGORITHM} Credential={}/{credential_scope}, SignedHeaders={signed_headers}, Signature={signature}",
        credentials.access_key_id
    );

    let mut headers: Vec<(String, String)> =
        added.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect();
    headers.push(("authorization".to_string(), authorization.clone()));
    Ok(Signed { canonical_request, string_to_sign, signature, signed_headers, authorization, headers })
}

/// The signing key for a day, region and service: the HMAC chain from
/// `"AWS4" + secret` through date, region, service and `aws4_request`.
pub(crate) fn signing_key(secret_access_key: &str, date: &str, scope: &Scope<'_>) -> [u8; 32] {
    let mut first = Vec::with_capacity(4 + secret_access_key.len());
    first.extend_from_slice(b"AWS4");
    first.extend_from_slice(secret_access_key.as_bytes());
    let k_date = hmac_sha256(&first, &[date.as_bytes()]);
    let k_region = hmac_sha256(&k_date, &[scope.region.as_bytes()]);
    let k_service = hmac_sha256(&k_region, &[scope.service.as_bytes()]);
    hmac_sha256(&k_service, &[b"aws4_request"])
}

/// `YYYYMMDDTHHMMSSZ` (UTC) of a Unix time in milliseconds, the form of
/// `x-amz-date`. Years past 9999 get more digits (and are not signable).
pub fn amz_date(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

/// (year, month, day) of a day count from 1970-01-01: Howard Hinnant's
/// `civil_from_days` (the inverse of the `days_from_civil` that reads HTTP
/// dates in [`crate::http`]), for days ≥ 0.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift to 0000-03-01 so that the leap day ends a year, then count 400-year eras.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = era * 400 + yoe + u64::from(month <= 2);
    (year, month, day)
}

fn is_amz_date(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 16 && b[8] == b'T' && b[15] == b'Z' && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit)
}

/// An RFC 9110 token (method and header-name syntax).
fn is_token(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}
