//! AWS Secrets Manager (JSON 1.1 protocol), `GetSecretValue`.
//!
//! Every call is `POST /` with `x-amz-target: secretsmanager.GetSecretValue`
//! and a JSON body `{"SecretId", "VersionId" | "VersionStage"}`, signed with
//! SigV4 ([`crate::sigv4`]) for the tier's region. The answer carries either
//! `SecretString` (text, often a JSON object whose keys are read as fields)
//! or `SecretBinary` (base64), and the concrete `VersionId`. Errors are
//! `{"__type": "...", "Message": "..."}` and/or an `x-amzn-errortype` header,
//! mostly with status 400: the type, not the status, says what went wrong.

use crate::prelude::*;
use serde_json::{Map, Value};

use super::{by_status, not_found, Failure, Fetched};
use crate::encoding::base64_decode;
use crate::error::{sanitize_reason, Error};
use crate::http::{BaseUrl, HttpRequest, HttpResponse};
use crate::secret::SecretBytes;
use crate::sigv4::{self, Credentials, Scope, SignError};
use crate::validate::VersionSel;

/// The signing name of the service (the credential scope's third part).
const SERVICE: &str = "secretsmanager";
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
const TARGET: &str = "secretsmanager.GetSecretValue";

/// The signed `GetSecretValue` request for `secret_id` (validated) at
/// `version`, signed at `wall_ms` (Unix ms). Fails, naming no credential,
/// when the keys cannot be put in a header or the time cannot be signed.
pub fn request(
    url: &BaseUrl,
    region: &str,
    keys: &Credentials,
    secret_id: &str,
    version: &VersionSel,
    wall_ms: u64,
) -> Result<HttpRequest, Error> {
    // The key id goes into `Authorization` unchecked by the signer: anything
    // but letters and digits (AWS ids are `[A-Z0-9]{16,128}`) could break or
    // inject a header.
    let id = &keys.access_key_id;
    if id.is_empty() || id.len() > 128 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Error::Config("the AWS access key id must be 1-128 ASCII letters and digits".into()));
    }
    let mut body = Map::new();
    body.insert("SecretId".into(), Value::from(secret_id));
    match version {
        VersionSel::Latest => {} // AWS's default: the AWSCURRENT stage.
        VersionSel::Id(id) => {
            body.insert("VersionId".into(), Value::from(id.as_str()));
        }
        VersionSel::Stage(stage) => {
            body.insert("VersionStage".into(), Value::from(stage.as_str()));
        }
        VersionSel::Pinned(_) => return Err(Error::InvalidRequest(PINNED_REFUSED.into())),
    }
    let body = Value::Object(body).to_string().into_bytes();
    let path = format!("{}/", url.prefix);
    let headers = [("content-type", CONTENT_TYPE), ("x-amz-target", TARGET)];
    let signable = sigv4::SignableRequest {
        method: "POST",
        host: &url.authority,
        path: &path,
        query: "",
        headers: &headers,
        body: &body,
    };
    let scope = Scope { region, service: SERVICE };
    let signed = sigv4::sign(&signable, keys, &scope, &sigv4::amz_date(wall_ms), sigv4::Options::default())
        .map_err(sign_error)?;
    let mut all: Vec<(String, Vec<u8>)> =
        headers.iter().map(|(name, value)| (name.to_string(), value.as_bytes().to_vec())).collect();
    all.extend(signed.headers.into_iter().map(|(name, value)| (name, value.into_bytes())));
    Ok(HttpRequest::post(url, path, all, body))
}

/// Why `backend::validate` refuses a numbered version for AWS.
pub const PINNED_REFUSED: &str =
    "AWS versions are version ids or stages (AWSCURRENT, AWSPREVIOUS, AWSPENDING, stage:<label>), not numbers";

fn sign_error(error: SignError) -> Error {
    match error {
        // The only header value that comes from the credentials.
        SignError::BadHeader { name } if name == "x-amz-security-token" => {
            Error::Config("the AWS session token holds a control character".into())
        }
        other => Error::backend(None, format!("cannot sign the AWS request: {other}")),
    }
}

/// Judges a response. `retry_after` is the response's `Retry-After`, read by
/// the caller (the date form needs its clock).
pub fn response(secret_id: &str, response: &HttpResponse, retry_after: Option<u64>) -> Result<Fetched, Failure> {
    let status = response.status;
    if status == 200 {
        return parse_secret(&response.body).map_err(Failure::permanent);
    }
    let (code, message) = error_type(response);
    let reason = super::reason_of(status, &code, message);
    // Both spellings occur (`AccessDenied` in AWS's common errors,
    // `AccessDeniedException` in Secrets Manager's): match on the stem.
    let stem = code.strip_suffix("Exception").unwrap_or(&code);
    Err(match (stem, status) {
        // Throttled, whatever else the body says: checked first so that no
        // body can turn a 429 into `not-found`.
        ("Throttling" | "TooManyRequests" | "RequestLimitExceeded", _) | (_, 429) => {
            Failure::transient(Error::RateLimited { retry_after_ms: retry_after }, retry_after)
        }
        ("ResourceNotFound", _) => Failure::permanent(not_found(secret_id)),
        (
            "AccessDenied" | "UnrecognizedClient" | "InvalidSignature" | "IncompleteSignature" | "SignatureDoesNotMatch"
            | "ExpiredToken" | "InvalidClientTokenId" | "MissingAuthenticationToken",
            _,
        )
        | ("", 401 | 403) => Failure::permanent(Error::PermissionDenied(format!("AWS denied access: {reason}"))),
        ("InternalServiceError" | "InternalFailure" | "ServiceUnavailable", _) => {
            Failure::transient(Error::backend(Some(status), reason), retry_after)
        }
        // KMS cannot decrypt the stored value with the secret's key: retrying
        // cannot help until someone fixes the key or its policy.
        ("DecryptionFailure", _) => Failure::permanent(Error::backend(
            Some(status),
            format!("AWS could not decrypt the secret with its KMS key ({reason})"),
        )),
        // E.g. a secret scheduled for deletion; the message says which.
        ("InvalidRequest" | "InvalidParameter", _) => Failure::permanent(Error::backend(Some(status), reason)),
        _ => by_status(status, reason, retry_after),
    })
}

/// `(error type, message)`, sanitized; empty when absent. The type is the
/// `x-amzn-errortype` header's, else the body's `__type`, reduced to its
/// short name: a namespace before `#` and a URL after `:` are dropped
/// (`com.amazonaws.secretsmanager#ResourceNotFoundException`,
/// `ResourceNotFoundException:http://internal.amazon.com/...`).
///
/// A body that is not JSON may be the query protocol's XML `ErrorResponse`
/// (`<Code>`, `<Message>`): what an authentication front end answers before
/// the JSON service is reached (moto does too, for signature and IAM failures).
fn error_type(response: &HttpResponse) -> (String, String) {
    let doc: Option<Value> = serde_json::from_slice(&response.body).ok();
    let text = |key: &str| match &doc {
        Some(doc) => doc.get(key).and_then(Value::as_str).map(String::from),
        None => xml_element(&response.body, key),
    };
    let raw = response
        .header("x-amzn-errortype")
        .map(String::from)
        .or_else(|| text("__type"))
        .or_else(|| text("Code"))
        .unwrap_or_default();
    let short = raw.rsplit('#').next().unwrap_or("");
    let short = short.split(':').next().unwrap_or("").trim();
    // A type is an identifier; anything else is not one worth matching or echoing.
    let code = if short.len() <= 64 && short.bytes().all(|b| b.is_ascii_alphanumeric()) { short.to_string() } else { String::new() };
    // Whitespace runs collapsed first: some messages are indented source text (moto's), and
    // the sanitized reason is capped, so the padding would crowd out the words.
    let message = text("Message")
        .or_else(|| text("message"))
        .map(|m| sanitize_reason(&m.split_whitespace().collect::<Vec<_>>().join(" ")))
        .unwrap_or_default();
    (code, message)
}

/// The text of the first `<name>…</name>` in an XML body, if it has no markup
/// inside (no entity decoding: enough for an error code and message).
fn xml_element(body: &[u8], name: &str) -> Option<String> {
    let body = core::str::from_utf8(body).ok()?;
    let open = format!("<{name}>");
    let start = body.find(&open)? + open.len();
    let rest = &body[start..];
    let len = rest.find('<')?;
    rest[len..].starts_with(&format!("</{name}>")).then(|| rest[..len].to_string())
}

fn parse_secret(body: &[u8]) -> Result<Fetched, Error> {
    let doc = super::json_object(body).map_err(|what| malformed(&what))?;
    // A `latest` or stage read is also cached under its version id, so the id
    // must be one a caller can ask for (`VersionSel::parse` gives an `Id`).
    let version = doc
        .get("VersionId")
        .and_then(Value::as_str)
        .filter(|v| matches!(VersionSel::parse(Some(v)), Ok(VersionSel::Id(_))))
        .ok_or_else(|| malformed("no `VersionId` that is an AWS version id"))?
        .to_string();
    let present = |key: &str| doc.get(key).filter(|v| !v.is_null());
    match (present("SecretString"), present("SecretBinary")) {
        (Some(Value::String(text)), _) => Ok(Fetched::text(version, SecretBytes::new(text.as_bytes().to_vec()))),
        (None, Some(Value::String(encoded))) => {
            let bytes = base64_decode(encoded).ok_or_else(|| malformed("`SecretBinary` is not valid base64"))?;
            Ok(Fetched::bytes(version, SecretBytes::new(bytes)))
        }
        (None, None) => Err(malformed("neither `SecretString` nor `SecretBinary`")),
        _ => Err(malformed("`SecretString` or `SecretBinary` is not a string")),
    }
}

fn malformed(what: &str) -> Error {
    Error::backend(Some(200), format!("malformed AWS response: {what}"))
}

#[cfg(test)]
mod tests;
