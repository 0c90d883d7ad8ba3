//! Azure Key Vault secrets (REST API 7.4).
//!
//! `GET {vault}/secrets/{name}[/{version}]?api-version=7.4` with a bearer
//! token (no version segment: the newest). The answer is
//! `{"value", "id", "contentType", "attributes", ..}`; the concrete version
//! is the last segment of `id` (`https://v.vault.azure.net/secrets/db/<32 hex>`).
//! Errors are `{"error": {"code", "message", "innererror"}}`; a 401 carries a
//! `WWW-Authenticate: Bearer authorization="..", resource=".."` challenge.
//!
//! `value` is always a string. Fields are read as for an AWS `SecretString`:
//! `value` is the whole text, any other field a key of a `value` that holds a
//! JSON object (whatever `contentType` says: it is free text set by whoever
//! stored the secret, so it cannot be relied on to say "JSON").

use crate::prelude::*;
use serde_json::Value;

use super::{by_status, not_found, Failure, Fetched};
use crate::error::{sanitize_reason, Error};
use crate::http::{BaseUrl, HttpRequest, HttpResponse};
use crate::secret::SecretBytes;
use crate::validate::VersionSel;

/// The REST API version every read names.
pub const API_VERSION: &str = "7.4";

/// Why `backend::validate_version` refuses a version for Azure.
pub const VERSION_REFUSED: &str = "Azure Key Vault versions are 32 lowercase hex ids or `latest`";

/// Whether `version` is a Key Vault version id: 32 lowercase hex digits.
/// Lowercase only, so that each version has one spelling (and one cache key).
pub fn is_version_id(version: &str) -> bool {
    version.len() == 32 && version.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Checks a secret name: `[0-9a-zA-Z-]{1,127}` (Key Vault's own grammar; it
/// goes into the URL path as it is).
pub fn validate_name(name: &str) -> Result<(), Error> {
    let ok = (1..=127).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidRequest(format!(
            "Azure Key Vault secret names must match [0-9a-zA-Z-]{{1,127}}, got {:?}",
            crate::validate::shorten(name)
        )))
    }
}

/// The read request. `name` is validated, `version` is `latest` or an id
/// checked by `backend::validate_version`.
pub fn request(url: &BaseUrl, token: &SecretBytes, name: &str, version: &VersionSel) -> HttpRequest {
    let version = match version {
        VersionSel::Id(id) => format!("/{id}"),
        // Numbers and stages are refused before this; `latest` has no segment.
        VersionSel::Latest | VersionSel::Pinned(_) | VersionSel::Stage(_) => String::new(),
    };
    let path_and_query = format!("{}/secrets/{name}{version}?api-version={API_VERSION}", url.prefix);
    HttpRequest::get(url, path_and_query, super::bearer(token))
}

/// Judges a response. `retry_after` is the response's `Retry-After`, read by
/// the caller (the date form needs its clock).
pub fn response(name: &str, response: &HttpResponse, retry_after: Option<u64>) -> Result<Fetched, Failure> {
    match response.status {
        200 => parse_secret(&response.body).map_err(Failure::permanent),
        status => Err(failure(name, status, response, retry_after)),
    }
}

/// What an error answer means for the caller.
fn failure(name: &str, status: u16, response: &HttpResponse, retry_after: Option<u64>) -> Failure {
    let (code, message) = error_body(&response.body);
    let reason = super::reason_of(status, &code, message);
    match (code.as_str(), status) {
        // Throttled whatever the body says, so no body turns a 429 into `not-found`.
        ("Throttled", _) | (_, 429) => Failure::transient(Error::RateLimited { retry_after_ms: retry_after }, retry_after),
        ("SecretNotFound", _) | ("", 404) => Failure::permanent(not_found(name)),
        (_, 401) => Failure::permanent(Error::PermissionDenied(challenge_message(response.header("www-authenticate"), &reason))),
        // Forbidden: no access policy or role assignment for this identity, a
        // firewall rule, or a disabled secret (`innererror.code` says which).
        ("Forbidden", _) | (_, 403) => Failure::permanent(Error::PermissionDenied(format!("Azure Key Vault denied access: {reason}"))),
        _ => by_status(status, reason, retry_after),
    }
}

fn parse_secret(body: &[u8]) -> Result<Fetched, Error> {
    let doc = super::json_object(body).map_err(|what| malformed(&what))?;
    // A `latest` read is also cached under its version, so the version must be
    // one a caller can ask for.
    let version = doc
        .get("id")
        .and_then(Value::as_str)
        .and_then(|id| id.rsplit('/').next())
        .filter(|v| is_version_id(v))
        .ok_or_else(|| malformed("`id` does not end in a version id (32 lowercase hex)"))?
        .to_string();
    match doc.get("contentType") {
        None | Some(Value::Null | Value::String(_)) => {}
        Some(_) => return Err(malformed("`contentType` is not a string")),
    }
    match doc.get("value") {
        Some(Value::String(text)) => Ok(Fetched::text(version, SecretBytes::new(text.as_bytes().to_vec()))),
        None | Some(Value::Null) => Err(malformed("no `value`")),
        Some(_) => Err(malformed("`value` is not a string")),
    }
}

fn malformed(what: &str) -> Error {
    Error::backend(Some(200), format!("malformed Azure Key Vault response: {what}"))
}

/// `(code, message)` of an error body, sanitized; empty when absent.
fn error_body(body: &[u8]) -> (String, String) {
    let Ok(doc) = serde_json::from_slice::<Value>(body) else { return Default::default() };
    let Some(error) = doc.get("error") else { return Default::default() };
    let code = error.get("code").and_then(Value::as_str).unwrap_or("");
    // A code is an identifier; anything else is not worth matching or echoing.
    let code = if code.len() <= 64 && code.bytes().all(|b| b.is_ascii_alphanumeric()) { code } else { "" };
    let message = error.get("message").and_then(Value::as_str).map(sanitize_reason).unwrap_or_default();
    (code.to_string(), message)
}

/// A 401's message: the resource (and authority) the challenge asks a token
/// for, which is what a wrong token audience or tenant gets wrong. Only
/// URL-shaped parameter values are named: the header is the server's, but a
/// proxy in between could put anything there.
fn challenge_message(header: Option<&str>, reason: &str) -> String {
    let param = |name: &str| header.and_then(|h| challenge_param(h, name)).filter(|v| is_plain_url(v));
    let resource = param("resource").or_else(|| param("scope"));
    match (resource, param("authorization").or_else(|| param("authorization_uri"))) {
        (Some(resource), Some(authority)) => format!(
            "Azure Key Vault did not accept the token: it wants one for resource {resource:?} from {authority:?} ({reason})"
        ),
        (Some(resource), None) => format!("Azure Key Vault did not accept the token: it wants one for resource {resource:?} ({reason})"),
        (None, _) => format!("Azure Key Vault did not accept the token ({reason})"),
    }
}

/// The value of `name="..."` in a `Bearer k="v", k2="v2"` challenge.
fn challenge_param<'h>(header: &'h str, name: &str) -> Option<&'h str> {
    let rest = header.trim_start();
    let rest = rest.get(..7).filter(|s| s.eq_ignore_ascii_case("bearer ")).map(|_| &rest[7..])?;
    rest.split(',').find_map(|part| {
        let (key, value) = part.split_once('=')?;
        (key.trim().eq_ignore_ascii_case(name)).then(|| value.trim().trim_matches('"'))
    })
}

fn is_plain_url(value: &str) -> bool {
    (value.starts_with("https://") || value.starts_with("http://"))
        && value.len() <= 256
        && value.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
}

#[cfg(test)]
mod tests;
