//! The fake's GCP Secret Manager access API:
//! `GET /v1/projects/{p}/secrets/{s}/versions/{v|latest}:access`.
//!
//! Answers as Secret Manager does: the payload base64-encoded with its CRC32C as a decimal
//! string, and google.rpc errors. The path is matched strictly (a literal `:access`), so a
//! component that builds the URL wrongly fails loudly instead of passing by luck.

use serde_json::json;

use super::fault::gcp_error_body;
use super::{Answer, Store};
use crate::codec::{base64_encode, crc32c};

/// `rest` is the path after `/v1/projects/`. `bad_crc` corrupts `dataCrc32c` (a fault).
pub(crate) fn answer(
    store: &Store,
    method: &str,
    rest: &str,
    bad_crc: bool,
    header: impl Fn(&str) -> Option<String>,
) -> Answer {
    if let Some(expected) = &store.gcp_token {
        // No credentials at all is UNAUTHENTICATED; a token that is not the expected one is
        // treated as valid-but-unauthorized, so both error paths of the component get exercised.
        match header("authorization") {
            None => {
                return error(
                    401,
                    "Request is missing required authentication credential.",
                )
            }
            Some(v) if v.strip_prefix("Bearer ") != Some(expected.as_str()) => {
                return error(403, "Permission 'secretmanager.versions.access' denied.");
            }
            Some(_) => {}
        }
    }
    let Some((project, secret, version)) = parse(rest) else {
        return error(404, "Method not found.");
    };
    if method != "GET" {
        return error(404, "Method not found.");
    }
    let secret_name = format!("projects/{project}/secrets/{secret}");
    let Some(versions) = store.gcp.get(&(project.to_owned(), secret.to_owned())) else {
        return error(
            404,
            &format!("Secret [{secret_name}] not found or has no versions."),
        );
    };
    let number = match version {
        "latest" => versions.keys().next_back().copied(),
        v => match v.parse::<u64>() {
            Ok(n) if n > 0 => Some(n),
            _ => return error(400, &format!("Invalid version id [{v}].")),
        },
    };
    let Some((number, bytes)) = number.and_then(|n| versions.get(&n).map(|b| (n, b))) else {
        return error(
            404,
            &format!("Secret Version [{secret_name}/versions/{version}] not found."),
        );
    };
    let crc = if bad_crc {
        crc32c(bytes) ^ 1
    } else {
        crc32c(bytes)
    };
    Answer::json(
        200,
        json!({
            "name": format!("{secret_name}/versions/{number}"),
            "payload": { "data": base64_encode(bytes), "dataCrc32c": crc.to_string() },
        }),
    )
}

fn error(code: u16, message: &str) -> Answer {
    Answer {
        status: code,
        body: gcp_error_body(code, message).into(),
        retry_after: None,
    }
}

/// `{p}/secrets/{s}/versions/{v}:access` → (p, s, v).
fn parse(rest: &str) -> Option<(&str, &str, &str)> {
    let (project, rest) = rest.split_once("/secrets/")?;
    let (secret, rest) = rest.split_once("/versions/")?;
    let version = rest.strip_suffix(":access")?;
    let simple = |s: &str| !s.is_empty() && !s.contains('/');
    (simple(project) && simple(secret) && simple(version)).then_some((project, secret, version))
}
