//! Temporary AWS credentials the component obtains instead of holding keys:
//!
//! - **web identity**: `sts:AssumeRoleWithWebIdentity`, an unsigned query-API
//!   `POST /` with the role ARN, a session name and a JWT (what EKS IRSA and
//!   GitHub-style OIDC give), answered in XML;
//! - **container**: the ECS / EKS Pod Identity endpoint, a `GET` of its full
//!   URI with an optional `Authorization` token, answered in JSON;
//! - **instance**: EC2's instance metadata service, IMDSv2 only: a `PUT` for a
//!   session token (with its TTL header), then, presenting it, the role's name
//!   and the role's credentials (JSON as the container endpoint's). IMDSv1
//!   (no session token) is never used: it is what SSRF attacks read.
//!
//! Pure: builds the requests and judges the answers. The credentials travel
//! through the engine as an [`IssuedToken`] (held, renewed before they expire,
//! shared sealed through shared state like any login's token): [`encode`]
//! puts the three parts in its bytes, [`decode`] takes them out for signing.

use crate::prelude::*;
use serde_json::Value;

use super::IssuedToken;
use crate::backend::{by_status, Failure};
use crate::error::Error;
use crate::http::{iso8601_utc_secs, BaseUrl, HttpRequest, HttpResponse};
use crate::secret::SecretBytes;
use crate::sigv4::Credentials;

/// The session length asked of STS: an hour, its default.
pub const SESSION_SECONDS: u64 = 3_600;
/// Longest lifetime credentials are held for (STS allows up to 12 h).
const MAX_TTL_SECS: u64 = 12 * 3_600;
/// What starts an encoded token (no other method's token starts so).
const MARKER: &[u8] = b"aws-credentials\n";

/// `AssumeRoleWithWebIdentity` at `sts` (e.g. `https://sts.eu-west-1.amazonaws.com`).
pub fn web_identity_request(sts: &BaseUrl, role_arn: &str, session_name: &str, token: &SecretBytes) -> HttpRequest {
    let token = String::from_utf8_lossy(token.expose());
    let mut body = String::from("Action=AssumeRoleWithWebIdentity&Version=2011-06-15");
    for (name, value) in [("RoleArn", role_arn), ("RoleSessionName", session_name), ("WebIdentityToken", &token)] {
        body.push('&');
        body.push_str(name);
        body.push('=');
        form_encode(&mut body, value);
    }
    body.push_str(&format!("&DurationSeconds={SESSION_SECONDS}"));
    let headers = vec![("content-type".to_string(), b"application/x-www-form-urlencoded".to_vec())];
    HttpRequest::post(sts, format!("{}/", sts.prefix), headers, body.into_bytes())
}

/// A `GET` of the container endpoint's full URI, presenting `token` if there is one.
pub fn container_request(uri: &BaseUrl, token: Option<&SecretBytes>) -> HttpRequest {
    let headers = token.map(|t| vec![("authorization".to_string(), t.expose().to_vec())]).unwrap_or_default();
    let path = if uri.prefix.is_empty() { "/".to_string() } else { uri.prefix.clone() };
    HttpRequest::get(uri, path, headers)
}

/// IMDSv2 step 1: a session token, valid for [`IMDS_TOKEN_SECONDS`].
pub fn imds_token_request(imds: &BaseUrl) -> HttpRequest {
    let headers = vec![("x-aws-ec2-metadata-token-ttl-seconds".to_string(), IMDS_TOKEN_SECONDS.to_string().into_bytes())];
    HttpRequest { method: crate::http::Method::Put, ..HttpRequest::get(imds, format!("{}/latest/api/token", imds.prefix), headers) }
}

/// How long an IMDSv2 session token is asked for: the three requests of one fetch.
pub const IMDS_TOKEN_SECONDS: u64 = 60;

/// IMDSv2 steps 2 and 3: the instance role's name (`role` `None`), then its credentials.
pub fn imds_request(imds: &BaseUrl, session: &SecretBytes, role: Option<&str>) -> HttpRequest {
    let headers = vec![("x-aws-ec2-metadata-token".to_string(), session.expose().to_vec())];
    HttpRequest::get(imds, format!("{}/latest/meta-data/iam/security-credentials/{}", imds.prefix, role.unwrap_or_default()), headers)
}

/// The text of an IMDS answer to steps 1 and 2 (a session token, a role name:
/// one printable line). 401/403: the instance refuses (no role, IMDS off).
pub fn imds_text(response: &HttpResponse, retry_after: Option<u64>, what: &str) -> Result<String, Failure> {
    match response.status {
        200 => {}
        401 | 403 | 404 => return Err(Failure::permanent(Error::PermissionDenied(format!("the instance metadata service gave no {what}: HTTP {}", response.status)))),
        status => return Err(by_status(status, format!("instance metadata service: HTTP {status}"), retry_after)),
    }
    let text = core::str::from_utf8(&response.body).ok().and_then(|t| t.lines().next()).unwrap_or_default().trim();
    if text.is_empty() || text.len() > 1024 || !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Failure::permanent(malformed(&format!("the instance metadata service's {what} is not one printable line"))));
    }
    Ok(text.to_string())
}

/// Judges STS's answer at wall time `now_ms`. A refused token or role
/// (`InvalidIdentityToken`, `AccessDenied`, `ExpiredTokenException`, any 4xx
/// but throttling) is permission denied; throttling and 5xx are transient.
pub fn web_identity_response(response: &HttpResponse, retry_after: Option<u64>, now_ms: u64) -> Result<IssuedToken, Failure> {
    let body = String::from_utf8_lossy(&response.body);
    if response.status == 200 {
        let part = |tag: &str| xml_text(&body, tag).ok_or_else(|| malformed(&format!("no <{tag}> in the STS answer")));
        let issued = (|| {
            let credentials = Credentials { access_key_id: part("AccessKeyId")?, secret_access_key: part("SecretAccessKey")?, session_token: Some(part("SessionToken")?) };
            issued(credentials, &part("Expiration")?, now_ms)
        })();
        return issued.map_err(Failure::permanent);
    }
    let code = xml_text(&body, "Code").unwrap_or_else(|| format!("HTTP {}", response.status));
    let message = xml_text(&body, "Message").map(|m| crate::error::sanitize_reason(&m)).unwrap_or_default();
    let reason = format!("{code}: {message}");
    Err(match (response.status, code.as_str()) {
        (_, "Throttling" | "ThrottlingException" | "IDPCommunicationError") => Failure::transient(Error::RateLimited { retry_after_ms: retry_after }, retry_after),
        (400..=499, _) => Failure::permanent(Error::PermissionDenied(format!("STS refused the web identity: {reason}"))),
        (status, _) => by_status(status, reason, retry_after),
    })
}

/// Judges the container endpoint's answer at wall time `now_ms`.
pub fn container_response(response: &HttpResponse, retry_after: Option<u64>, now_ms: u64) -> Result<IssuedToken, Failure> {
    match response.status {
        200 => {}
        401 | 403 => return Err(Failure::permanent(Error::PermissionDenied(format!("the container credentials endpoint refused: HTTP {}", response.status)))),
        status => return Err(by_status(status, format!("container credentials endpoint: HTTP {status}"), retry_after)),
    }
    let doc: Value = serde_json::from_slice(&response.body).map_err(|_| Failure::permanent(malformed("not JSON")))?;
    let field = |name: &str| match doc.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(malformed(&format!("no `{name}` string"))),
    };
    let issued = (|| {
        let credentials = Credentials { access_key_id: field("AccessKeyId")?, secret_access_key: field("SecretAccessKey")?, session_token: Some(field("Token")?) };
        issued(credentials, &field("Expiration")?, now_ms)
    })();
    issued.map_err(Failure::permanent)
}

fn issued(credentials: Credentials, expiration: &str, now_ms: u64) -> Result<IssuedToken, Error> {
    let usable = |s: &str| !s.is_empty() && s.len() <= 4096 && s.bytes().all(|b| b.is_ascii_graphic());
    let session = credentials.session_token.as_deref().unwrap_or_default();
    if !usable(&credentials.access_key_id) || !usable(&credentials.secret_access_key) || !usable(session) {
        return Err(malformed("a credential is empty, too long or not printable ASCII"));
    }
    let expires_ms = iso8601_utc_secs(expiration).ok_or_else(|| malformed("`Expiration` is not an ISO 8601 UTC time"))?.saturating_mul(1_000);
    let ttl_ms = expires_ms.saturating_sub(now_ms).min(MAX_TTL_SECS * 1_000);
    if ttl_ms == 0 {
        return Err(malformed("the credentials have already expired"));
    }
    Ok(IssuedToken { token: encode(&credentials), ttl_ms, renewable: false })
}

/// The credentials as an issued token's bytes.
pub fn encode(credentials: &Credentials) -> SecretBytes {
    let mut bytes = MARKER.to_vec();
    for part in [&credentials.access_key_id, &credentials.secret_access_key, credentials.session_token.as_deref().unwrap_or_default()] {
        bytes.extend_from_slice(part.as_bytes());
        bytes.push(b'\n');
    }
    SecretBytes::new(bytes)
}

/// The credentials in a token [`encode`] made (`None` for any other token).
pub fn decode(token: &SecretBytes) -> Option<Credentials> {
    let rest = core::str::from_utf8(token.expose().strip_prefix(MARKER)?).ok()?;
    let mut parts = rest.split('\n');
    let (id, secret, session) = (parts.next()?, parts.next()?, parts.next()?);
    (parts.next() == Some("") && parts.next().is_none()).then(|| Credentials {
        access_key_id: id.to_string(),
        secret_access_key: secret.to_string(),
        session_token: (!session.is_empty()).then(|| session.to_string()),
    })
}

/// The text of the first `<tag>` element, entities decoded (`None` without one).
fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find("</")?;
    let raw = &xml[start..end];
    Some(raw.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'").replace("&amp;", "&"))
}

/// `application/x-www-form-urlencoded`: unreserved characters as they are, the rest `%XX`.
fn form_encode(out: &mut String, value: &str) {
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

fn malformed(what: &str) -> Error {
    Error::backend(Some(200), format!("malformed AWS credentials answer: {what}"))
}

#[cfg(test)]
mod tests;
