//! The whole request → reply decision, over the [`Secrets`] and [`Settings`] ports.
//!
//! Order matters for what a caller can learn: route (404/405) → authenticate (401/403, before
//! anything touches the secrets interface, and with fixed bodies) → decode the name and query
//! (400) → keep the `traceparent` if it parses → read the secret → map the answer.

use crate::auth::{self, CallerTokens, CALLER_TOKENS_KEY};
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
        Route::Health => observe::health(&secrets.health()),
        Route::Metrics => {
            let stats = secrets.stats();
            observe::metrics(&stats, &secrets.health())
        }
        Route::Secret { environment, name, query } => {
            // An environment segment outside the grammar (escapes included) has no tokens:
            // such requests are refused like any other environment the token does not grant.
            let environment = if auth::is_environment_name(environment) { environment } else { "" };
            match auth::check(&request.authorization, environment, || caller_tokens(settings)) {
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

/// Reads and parses `caller_tokens` (on every request: settings are the host's to change, and a
/// broken setting is reported on every call instead of being latched).
fn caller_tokens(settings: &dyn Settings) -> Result<CallerTokens, SecretError> {
    match settings.get(CALLER_TOKENS_KEY) {
        Ok(Some(json)) => CallerTokens::parse(&json).map_err(SecretError::Config),
        Ok(None) => Err(SecretError::Config(format!("{CALLER_TOKENS_KEY}: is required (JSON object from environment to tokens)"))),
        Err(why) => Err(SecretError::Config(format!("{CALLER_TOKENS_KEY}: cannot be read: {why}"))),
    }
}

#[cfg(test)]
mod tests;
