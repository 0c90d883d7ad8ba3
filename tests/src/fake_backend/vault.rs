//! The fake's Vault KV v2 read API: `GET /v1/{mount}/data/{path}[?version=N]`.
//!
//! Mirrors what real Vault sends for the cases the component must tell apart: 200 with the
//! envelope, 403 for a bad token or namespace, 404 `{"errors":[]}` for a missing secret or
//! version, and 404 *with* a data envelope for a soft-deleted version (a Vault quirk).

use serde_json::{json, Map, Value};

use super::{Answer, Store};

/// One stored version of a Vault secret.
pub(crate) struct VaultVersion {
    pub data: Map<String, Value>,
    pub deleted: bool,
}

/// Fixed timestamps keep answers deterministic; nothing in the component reads them.
const CREATED: &str = "2024-01-01T00:00:00.000000000Z";
const DELETED: &str = "2024-06-01T00:00:00.000000000Z";

/// `rest` is the path after `/v1/` and contains `/data/` (the caller routed on that).
pub(crate) fn answer(
    store: &Store,
    method: &str,
    rest: &str,
    query: Option<&str>,
    header: impl Fn(&str) -> Option<String>,
) -> Answer {
    let (token, namespace) = (header("x-vault-token"), header("x-vault-namespace"));
    let static_ok = store
        .vault_token
        .as_ref()
        .map(|t| token.as_ref() == Some(t));
    // With AppRole on, only a live issued token (or the static one) reads; without it, no
    // expected token means any token.
    let token_ok = if store.approle.enabled() {
        static_ok == Some(true)
            || store
                .approle
                .accepts(token.as_deref(), namespace.as_deref())
    } else {
        static_ok.unwrap_or(true)
    };
    let namespace_ok = store
        .vault_namespace
        .as_ref()
        .is_none_or(|n| namespace.as_ref() == Some(n));
    // Vault answers a wrong namespace like a wrong token: the token has no policy there.
    if !token_ok || !namespace_ok {
        return error(403, &["permission denied"]);
    }
    if method != "GET" {
        return error(405, &["unsupported operation"]);
    }
    let (mount, path) = rest.split_once("/data/").expect("routed on /data/");
    let Some(versions) = store.vault.get(&format!("{mount}/{path}")) else {
        return error(404, &[]);
    };
    let wanted = match query_param(query, "version").map(str::parse::<u64>) {
        None | Some(Ok(0)) => versions.keys().next_back().copied(), // 0 means latest in Vault
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => return error(400, &["version must be a non-negative integer"]),
    };
    let Some((number, version)) = wanted.and_then(|n| versions.get(&n).map(|v| (n, v))) else {
        return error(404, &[]);
    };
    let metadata = |deletion_time: &str| {
        json!({
            "created_time": CREATED,
            "custom_metadata": null,
            "deletion_time": deletion_time,
            "destroyed": false,
            "version": number,
        })
    };
    if version.deleted {
        return Answer::json(
            404,
            envelope(json!({ "data": null, "metadata": metadata(DELETED) })),
        );
    }
    Answer::json(
        200,
        envelope(json!({ "data": version.data, "metadata": metadata("") })),
    )
}

/// Vault's error shape.
pub(crate) fn error(status: u16, messages: &[&str]) -> Answer {
    Answer::json(status, json!({ "errors": messages }))
}

fn envelope(data: Value) -> Value {
    json!({
        "request_id": "00000000-0000-4000-8000-000000000000",
        "lease_id": "",
        "renewable": false,
        "lease_duration": 0,
        "data": data,
        "wrap_info": null,
        "warnings": null,
        "auth": null,
        "mount_type": "kv",
    })
}

fn query_param<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}
