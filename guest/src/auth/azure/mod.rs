//! Access tokens for Azure Key Vault, from Microsoft Entra ID. Pure: builds
//! the token request and judges its answer; the engine holds, shares and
//! replaces the tokens (they cannot be renewed: a new one is asked for).
//!
//! - client credentials: `POST {authority}/{tenant}/oauth2/v2.0/token`, a
//!   form body `grant_type=client_credentials&client_id=..&client_secret=..
//!   &scope=https://vault.azure.net/.default`;
//! - managed identity: `GET {imds}/metadata/identity/oauth2/token
//!   ?api-version=2018-02-01&resource=https://vault.azure.net[&client_id=..]`
//!   with `Metadata: true` (the instance metadata service refuses requests
//!   without it, so a redirected or forwarded request cannot fetch a token).
//!
//! Both answer `{"access_token", "expires_in", "token_type": "Bearer", ..}`;
//! Entra sends `expires_in` as a number, IMDS as a decimal string. Errors are
//! OAuth's `{"error": "invalid_client", "error_description": "AADSTS..."}`.

use crate::prelude::*;
use serde_json::Value;

use super::IssuedToken;
use crate::backend::{by_status, Failure};
use crate::error::{sanitize_reason, Error};
use crate::http::{BaseUrl, HttpRequest, HttpResponse};
use crate::secret::SecretBytes;

/// Microsoft Entra ID's public-cloud authority (sovereign clouds have their own).
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
/// The instance metadata service, as every Azure VM, App Service and AKS pod sees it.
pub const DEFAULT_IMDS_URL: &str = "http://169.254.169.254";
/// The scope of a Key Vault token (client credentials).
pub const SCOPE: &str = "https://vault.azure.net/.default";
/// The resource of a Key Vault token (managed identity).
pub const RESOURCE: &str = "https://vault.azure.net";
/// The IMDS token API version.
pub const IMDS_API_VERSION: &str = "2018-02-01";

/// Entra tokens live 60-90 minutes, IMDS ones up to a day; one claiming more
/// is not a real answer, and holding it longer would outlive any revocation.
pub const MAX_EXPIRES_IN_S: u64 = 24 * 3600;
/// Entra access tokens are JWTs of 1-3 KB (more with many group claims).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Who answered a token request: named in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Issuer {
    /// Microsoft Entra ID's token endpoint (client credentials).
    Entra,
    /// The instance metadata service (managed identity).
    Imds,
}

impl Issuer {
    fn name(self) -> &'static str {
        match self {
            Issuer::Entra => "Microsoft Entra ID",
            Issuer::Imds => "the Azure instance metadata service",
        }
    }
}

/// Whether `text` is usable as a tenant or client id: a GUID or a domain
/// name (`contoso.onmicrosoft.com`), 1-128 of `[A-Za-z0-9.-]`. It goes into a
/// URL path or query as it is.
pub fn is_id(text: &str) -> bool {
    (1..=128).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

/// The client-credentials token request. `tenant` and `client_id` are
/// checked config ([`is_id`]); the secret is form-encoded.
pub fn client_credentials_request(authority: &BaseUrl, tenant: &str, client_id: &str, client_secret: &SecretBytes) -> HttpRequest {
    let mut body = Vec::with_capacity(160 + client_secret.expose().len() * 3);
    body.extend_from_slice(b"grant_type=client_credentials&client_id=");
    form_encode(client_id.as_bytes(), &mut body);
    body.extend_from_slice(b"&client_secret=");
    form_encode(client_secret.expose(), &mut body);
    body.extend_from_slice(b"&scope=");
    form_encode(SCOPE.as_bytes(), &mut body);
    let path = format!("{}/{tenant}/oauth2/v2.0/token", authority.prefix);
    let headers = vec![("content-type".to_string(), b"application/x-www-form-urlencoded".to_vec())];
    HttpRequest::post(authority, path, headers, body)
}

/// The managed-identity token request; `client_id` picks a user-assigned
/// identity (checked config, [`is_id`]).
pub fn managed_identity_request(imds: &BaseUrl, client_id: Option<&str>) -> HttpRequest {
    let mut query = Vec::new();
    form_encode(RESOURCE.as_bytes(), &mut query);
    let resource = String::from_utf8(query).unwrap_or_default();
    let mut path = format!("{}/metadata/identity/oauth2/token?api-version={IMDS_API_VERSION}&resource={resource}", imds.prefix);
    if let Some(id) = client_id {
        path.push_str("&client_id=");
        path.push_str(id);
    }
    HttpRequest::get(imds, path, vec![("metadata".to_string(), b"true".to_vec())])
}

/// `application/x-www-form-urlencoded`: unreserved bytes as they are, every
/// other byte as `%XX` (a space too: unambiguous either way).
fn form_encode(bytes: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

/// Judges a token answer. `retry_after` is the response's `Retry-After`,
/// read by the caller. A refusal (bad secret, unknown client or tenant, no
/// identity on this machine) is a permanent permission denial: the engine
/// remembers it and sends no new request within its back-off.
pub fn token_response(issuer: Issuer, response: &HttpResponse, retry_after: Option<u64>) -> Result<IssuedToken, Failure> {
    let status = response.status;
    if status == 200 {
        return parse_token(issuer, &response.body).map_err(Failure::permanent);
    }
    let reason = oauth_reason(status, &response.body);
    let denied = || Failure::permanent(Error::PermissionDenied(format!("{} refused the token request: {reason}", issuer.name())));
    Err(match (issuer, status) {
        (_, 429) => Failure::transient(Error::RateLimited { retry_after_ms: retry_after }, retry_after),
        // OAuth's refusals (invalid_client, unauthorized_client, invalid_scope, an
        // unknown tenant) and IMDS's (identity not found, missing `Metadata`).
        (_, 400 | 401 | 403) => denied(),
        // IMDS answers 404 and 410 while it is being updated: Azure's advice is to retry.
        (Issuer::Imds, 404 | 410) => Failure::transient(Error::backend(Some(status), reason), retry_after),
        _ => by_status(status, reason, retry_after),
    })
}

fn parse_token(issuer: Issuer, body: &[u8]) -> Result<IssuedToken, Error> {
    let malformed = |what: &str| Error::backend(Some(200), format!("malformed token response from {}: {what}", issuer.name()));
    // Positions only: the body holds the token, and serde's type errors quote values.
    let doc: Value = serde_json::from_slice(body)
        .map_err(|e| malformed(&format!("not JSON at line {} column {}", e.line(), e.column())))?;
    let token = match doc.get("access_token") {
        Some(Value::String(s)) if !s.is_empty() => s,
        Some(Value::String(_)) => return Err(malformed("`access_token` is empty")),
        None | Some(Value::Null) => return Err(malformed("missing `access_token`")),
        Some(_) => return Err(malformed("`access_token` is not a string")),
    };
    // It goes into an `Authorization` header: visible ASCII only.
    if token.len() > MAX_TOKEN_BYTES || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(malformed("`access_token` is too long or has characters a header cannot carry"));
    }
    match doc.get("token_type") {
        // Optional in IMDS's older answers; when present it must be Bearer. Never
        // quoted: a broken server could put the token there.
        None | Some(Value::Null) => {}
        Some(Value::String(t)) if t.eq_ignore_ascii_case("Bearer") => {}
        Some(_) => return Err(malformed("`token_type` is not `Bearer`")),
    }
    let expires_in = match doc.get("expires_in") {
        Some(Value::Number(n)) => n.as_u64(),
        // IMDS's form: digits only (no sign, no fraction, no spaces).
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 10 && s.bytes().all(|b| b.is_ascii_digit()) => s.parse().ok(),
        None | Some(Value::Null) => return Err(malformed("missing `expires_in`")),
        Some(_) => None,
    }
    .ok_or_else(|| malformed("`expires_in` is not a whole number of seconds"))?;
    if expires_in == 0 || expires_in > MAX_EXPIRES_IN_S {
        return Err(malformed(&format!("`expires_in` must be 1 to {MAX_EXPIRES_IN_S} s, got {expires_in}")));
    }
    Ok(IssuedToken { token: SecretBytes::new(token.as_bytes().to_vec()), ttl_ms: expires_in * 1000, renewable: false })
}

/// `error: error_description` of an OAuth error body, sanitized, else the
/// status. (The request's secret is never in them; the engine redacts it
/// from every message anyway, in case a proxy echoes the request.)
fn oauth_reason(status: u16, body: &[u8]) -> String {
    let doc: Option<Value> = serde_json::from_slice(body).ok();
    let text = |key: &str| doc.as_ref().and_then(|d| d.get(key)).and_then(Value::as_str);
    let code = text("error").filter(|c| c.len() <= 64 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    // Entra's descriptions run on with a trace id, a correlation id and a timestamp:
    // the first line (the AADSTS code and what it means) is the useful part.
    let description = text("error_description").map(|d| sanitize_reason(d.lines().next().unwrap_or("")));
    match (code, description) {
        (Some(code), Some(d)) if !d.is_empty() => format!("{code}: {d}"),
        (Some(code), _) => code.to_string(),
        (None, Some(d)) if !d.is_empty() => d,
        _ => format!("HTTP {status}"),
    }
}

#[cfg(test)]
mod tests;
