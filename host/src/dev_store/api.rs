//! The dev store's HTTP API, without the transport: Vault's routes, status codes and JSON
//! shapes for the subset `edge-secrets dev` needs. Kept free of hyper so it is easy to test.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use hyper::{HeaderMap, Method, StatusCode};
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use super::kv::{valid_path, Kv, WriteError};
use super::MOUNT;

/// A response: status and JSON body. Secret reads are marked `no-store`, as Vault does.
pub(crate) struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub no_store: bool,
}

impl Reply {
    fn ok(body: Value, no_store: bool) -> Reply {
        Reply {
            status: StatusCode::OK,
            body,
            no_store,
        }
    }

    /// Vault's error shape: `{"errors":[...]}` (empty on a plain 404, as Vault sends).
    pub(crate) fn error(status: StatusCode, messages: &[&str]) -> Reply {
        Reply {
            status,
            body: json!({ "errors": messages }),
            no_store: false,
        }
    }
}

/// Everything the handlers share. Holds the root token and secret values: no `Debug`.
pub(crate) struct Api {
    token: String,
    kv: Mutex<Kv>,
    request_ids: AtomicU64,
}

impl Api {
    pub(crate) fn new(token: String, kv: Kv) -> Api {
        Api {
            token,
            kv: Mutex::new(kv),
            request_ids: AtomicU64::new(1),
        }
    }

    /// Routes one request. `body` is empty for methods without one.
    pub(crate) fn handle(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Reply {
        let Some(rest) = path.strip_prefix("/v1/") else {
            return Reply::error(StatusCode::NOT_FOUND, &[]);
        };
        // Health is unauthenticated in Vault too: load balancers probe it.
        if rest == "sys/health" {
            return match *method {
                Method::GET | Method::HEAD => self.health(),
                _ => Reply::error(StatusCode::METHOD_NOT_ALLOWED, &["unsupported operation"]),
            };
        }
        if !self.authorized(headers) {
            return Reply::error(StatusCode::FORBIDDEN, &["permission denied"]);
        }
        let Some(secret) = rest
            .strip_prefix(MOUNT)
            .and_then(|r| r.strip_prefix("/data/"))
        else {
            let msg = format!("no handler for route {rest:?}. route entry not found.");
            return Reply::error(StatusCode::NOT_FOUND, &[&msg]);
        };
        match *method {
            Method::GET => self.read(secret, query),
            Method::POST | Method::PUT => self.write(secret, body),
            _ => Reply::error(StatusCode::METHOD_NOT_ALLOWED, &["unsupported operation"]),
        }
    }

    /// `X-Vault-Token`, or `Authorization: Bearer` (Vault accepts both), compared in
    /// constant time so response timing does not reveal how much of a guess was right.
    fn authorized(&self, headers: &HeaderMap) -> bool {
        let presented = headers
            .get("x-vault-token")
            .map(|v| v.as_bytes())
            .or_else(|| {
                headers
                    .get("authorization")
                    .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
            });
        presented.is_some_and(|p| bool::from(p.ct_eq(self.token.as_bytes())))
    }

    fn read(&self, path: &str, query: Option<&str>) -> Reply {
        let version = match query_param(query, "version").map(str::parse::<u64>) {
            None | Some(Ok(0)) => None, // Vault reads `latest` for version 0 or none
            Some(Ok(n)) => Some(n),
            Some(Err(_)) => {
                return Reply::error(
                    StatusCode::BAD_REQUEST,
                    &["version must be a non-negative integer"],
                );
            }
        };
        let kv = self.kv.lock().unwrap_or_else(|p| p.into_inner());
        match kv.read(path, version) {
            Some((fields, metadata)) => Reply::ok(
                self.envelope(json!({ "data": fields, "metadata": metadata })),
                true,
            ),
            None => Reply::error(StatusCode::NOT_FOUND, &[]),
        }
    }

    fn write(&self, path: &str, body: &[u8]) -> Reply {
        if !valid_path(path) {
            return Reply::error(
                StatusCode::BAD_REQUEST,
                &["invalid path: segments of [A-Za-z0-9._-], no empty, '.' or '..' segments"],
            );
        }
        // Parse errors are not echoed: serde_json's messages are positions, but a body
        // that fails typed parsing could be quoted, and the body holds secret values.
        let Ok(Value::Object(mut request)) = serde_json::from_slice::<Value>(body) else {
            return Reply::error(StatusCode::BAD_REQUEST, &["error parsing JSON"]);
        };
        let Some(Value::Object(fields)) = request.remove("data") else {
            return Reply::error(StatusCode::BAD_REQUEST, &["no data provided"]);
        };
        let cas = match request.get("options").and_then(|o| o.get("cas")) {
            None => None,
            Some(v) => match v.as_u64() {
                Some(n) => Some(n),
                None => {
                    return Reply::error(
                        StatusCode::BAD_REQUEST,
                        &["cas must be a non-negative integer"],
                    )
                }
            },
        };
        let mut kv = self.kv.lock().unwrap_or_else(|p| p.into_inner());
        match kv.write(path, fields, cas) {
            Ok(metadata) => Reply::ok(self.envelope(metadata), false),
            Err(WriteError::CasMismatch) => Reply::error(
                StatusCode::BAD_REQUEST,
                &["check-and-set parameter did not match the current version"],
            ),
        }
    }

    fn health(&self) -> Reply {
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let body = json!({
            "initialized": true,
            "sealed": false,
            "standby": false,
            "performance_standby": false,
            "replication_performance_mode": "disabled",
            "replication_dr_mode": "disabled",
            "server_time_utc": unix,
            "version": concat!("edge-secrets-dev-store/", env!("CARGO_PKG_VERSION")),
            "cluster_name": "edge-secrets-dev",
            "cluster_id": "00000000-0000-0000-0000-000000000000",
        });
        Reply::ok(body, false)
    }

    /// Vault's response envelope around `data`.
    fn envelope(&self, data: Value) -> Value {
        let id = self.request_ids.fetch_add(1, Ordering::Relaxed);
        json!({
            "request_id": format!("00000000-0000-4000-8000-{id:012x}"),
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
}

/// The first value of `name` in a query string (no percent-decoding: the values we read are digits).
fn query_param<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}
