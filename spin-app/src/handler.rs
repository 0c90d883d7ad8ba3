//! The whole request → reply decision, over the [`Secrets`] and [`Settings`] ports.
//!
//! Order matters for what a caller can learn: route (404/405) → authenticate (401/403, before
//! anything touches the secrets interface, and with fixed bodies) → decode the name and query
//! (400) → keep the `traceparent` if it parses → read the secret → map the answer.
//!
//! `/metrics` and the detailed `/healthz` need an admin token (`admin_tokens`); without any
//! `Authorization` header `/healthz` answers a bare liveness `{"ok": true}` that reads nothing.

use crate::auth::{self, AdminTokens, CallerTokens, Refusal, ADMIN_TOKENS_KEY, CALLER_TOKENS_KEY};
use crate::model::{SecretError, Secrets, Settings};
use crate::observe;
use crate::reply::{self, Reply};
use crate::route::{self, Route, RouteError};
use crate::trace;

/// What the handler needs from an incoming request.
pub struct Incoming<'a> {
    pub method: &'a str,
    /// The path and query, e.g. `/v1/secrets/dev/app/db?field=user`.
    pub target: &'a str,
    /// Every `Authorization` header value, in order.
    pub authorization: Vec<&'a [u8]>,
    /// Every `traceparent` header value, in order.
    pub traceparent: Vec<&'a [u8]>,
}

pub fn handle(request: &Incoming<'_>, settings: &dyn Settings, secrets: &mut dyn Secrets) -> Reply {
    let route = match route::route(request.method, request.target) {
        Ok(route) => route,
        Err(RouteError::NotFound) => return Reply::error(404, "not-found", "no such route"),
        Err(RouteError::MethodNotAllowed) => {
            let mut reply = Reply::error(405, "method-not-allowed", "only GET is supported");
            reply.headers.push(("allow", "GET".to_string()));
            return reply;
        }
    };
    match route {
        Route::Health => match admin(request, settings) {
            Admin::Granted => observe::health(&secrets.health()),
            Admin::Anonymous => observe::liveness(),
            Admin::Refused(reply) => reply,
        },
        Route::Metrics => match admin(request, settings) {
            Admin::Granted => {
                let stats = secrets.stats();
                observe::metrics(&stats, &secrets.health())
            }
            Admin::Anonymous => reply::refusal(Refusal::Unauthenticated { malformed: false }),
            Admin::Refused(reply) => reply,
        },
        Route::Secret { environment, name, query } => {
            // An environment segment outside the grammar (escapes included) has no tokens:
            // such requests are refused like any other environment the token does not grant.
            let environment = if auth::is_environment_name(environment) { environment } else { "" };
            match auth::check(&request.authorization, environment, || settings.caller_tokens()) {
                Err(config) => return reply::secret_error(&config),
                Ok(Err(refusal)) => return reply::refusal(refusal),
                Ok(Ok(())) => {}
            }
            let mut read = match route::decode_read(environment, name, query) {
                Ok(read) => read,
                Err(message) => return reply::secret_error(&SecretError::InvalidRequest(message)),
            };
            // A traceparent we cannot parse is dropped, not refused: W3C has the receiver
            // start a new trace, and the provider would fail the read with invalid-request.
            read.traceparent = trace::forwardable(&request.traceparent);
            match secrets.get(&read) {
                Ok(secret) => Reply::secret(secret),
                Err(error) => reply::secret_error(&error),
            }
        }
    }
}

/// Whether a request may see operational details.
enum Admin {
    Granted,
    /// No `Authorization` header at all.
    Anonymous,
    Refused(Reply),
}

/// Checks the request's bearer token against `admin_tokens`. Unset, every token is refused:
/// details are opt-in.
fn admin(request: &Incoming<'_>, settings: &dyn Settings) -> Admin {
    let token = match auth::bearer_token(&request.authorization) {
        Ok(token) => token,
        Err(Refusal::Unauthenticated { malformed: false }) => return Admin::Anonymous,
        Err(refusal) => return Admin::Refused(reply::refusal(refusal)),
    };
    let tokens = match settings.get(ADMIN_TOKENS_KEY) {
        Ok(Some(setting)) if !setting.trim().is_empty() => AdminTokens::parse(&setting),
        Ok(_) => return Admin::Refused(reply::refusal(Refusal::Forbidden)),
        Err(why) => Err(format!("{ADMIN_TOKENS_KEY}: cannot be read: {why}")),
    };
    match tokens {
        Ok(tokens) if tokens.grants(token) => Admin::Granted,
        Ok(_) => Admin::Refused(reply::refusal(Refusal::Forbidden)),
        Err(config) => Admin::Refused(reply::secret_error(&SecretError::Config(config))),
    }
}

/// The log line for a refused authentication (401/403), if `reply` is one: the route and the
/// environment asked for (a name from the component's grammar), never a token or a header.
/// Failed guesses are then visible to operators; throttling them is the host's part (`serve`
/// closes a connection after repeated failures).
pub fn refusal_event(request: &Incoming<'_>, reply: &Reply) -> Option<String> {
    if reply.status != 401 && reply.status != 403 {
        return None;
    }
    let (route, environment) = match route::route(request.method, request.target) {
        Ok(Route::Secret { environment, .. }) => ("secret", Some(environment).filter(|e| auth::is_environment_name(e))),
        Ok(Route::Health) => ("healthz", None),
        Ok(Route::Metrics) => ("metrics", None),
        Err(_) => return None,
    };
    let malformed = reply.header("www-authenticate").is_some_and(|h| h.contains("invalid_request"));
    let reason = match (reply.status, malformed) {
        (401, false) => "missing-token",
        (401, true) => "malformed-token",
        _ => "wrong-token",
    };
    Some(serde_json::json!({ "event": "auth-refused", "route": route, "environment": environment, "reason": reason }).to_string())
}

/// Reads and parses `caller_tokens`. A broken setting is reported on every read instead of being
/// latched: settings are the host's to change.
pub fn read_caller_tokens<S: Settings + ?Sized>(settings: &S) -> Result<CallerTokens, SecretError> {
    match settings.get(CALLER_TOKENS_KEY) {
        Ok(Some(json)) => CallerTokens::parse(&json).map_err(SecretError::Config),
        Ok(None) => Err(SecretError::Config(format!("{CALLER_TOKENS_KEY}: is required (JSON object from environment to tokens)"))),
        Err(why) => Err(SecretError::Config(format!("{CALLER_TOKENS_KEY}: cannot be read: {why}"))),
    }
}

#[cfg(test)]
mod tests;
