//! The wasm shell: bindings for the imports, the two ports over them, and the spin-sdk entry
//! point. No decisions here; see [`crate::handler`].
//!
//! The imports are generated from the repository's own WIT (`../wit`) with the wit-bindgen
//! that spin-sdk re-exports (one wit-bindgen runtime in the component), so the app builds with
//! plain `cargo build` and does not need `spin build`'s generated dependency WIT.

use bytes::Bytes;
use spin_sdk::http::{FullBody, Request};

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Instant;

use crate::auth::{CallerTokens, TokenCache};
use crate::handler::{self, Incoming};
use crate::model;
use crate::reply::Reply;

mod bindings {
    spin_sdk::wit_bindgen::generate!({
        runtime_path: "::spin_sdk::wit_bindgen::rt",
        path: "../wit",
        inline: r#"
            package edge:secrets-app;

            world app {
                import edge:secrets/secrets@0.2.0;
                import edge:secrets/admin@0.2.0;
                import wasi:config/store@0.2.0-draft-2024-09-27;
            }
        "#,
        world: "edge:secrets-app/app",
        generate_all,
    });
}

use bindings::edge::secrets::{admin, secrets};
use bindings::wasi::config::store;

#[spin_sdk::http_service]
async fn serve(request: Request) -> http::Response<FullBody<Bytes>> {
    let authorization = request.headers().get_all(http::header::AUTHORIZATION).iter().map(|v| v.as_bytes()).collect();
    let traceparent = request.headers().get_all("traceparent").iter().map(|v| v.as_bytes()).collect();
    let target = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let incoming = Incoming { method: request.method().as_str(), target, authorization, traceparent };
    let reply = handler::handle(&incoming, &WasiConfig, &mut Provider);
    if let Some(event) = handler::refusal_event(&incoming, &reply) {
        eprintln!("{event}");
    }
    into_response(reply)
}

fn into_response(reply: Reply) -> http::Response<FullBody<Bytes>> {
    let mut response = http::Response::new(FullBody::new(Bytes::from(reply.body)));
    *response.status_mut() = http::StatusCode::from_u16(reply.status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in reply.headers {
        // Our header values are ASCII we produced (versions come from the component's WIT
        // answer, which only holds digits; stale and tier are `true`/`false` and numbers);
        // skip rather than panic on anything else.
        if let Ok(value) = http::HeaderValue::try_from(value) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

/// `wasi:config/store`: the same store the provider reads (Spin: the app's variables).
struct WasiConfig;

thread_local! {
    /// This instance's caller tokens (see `auth::TokenCache`), and the zero of its clock.
    static CALLER_TOKENS: RefCell<TokenCache> = RefCell::new(TokenCache::default());
    static STARTED: Instant = Instant::now();
}

impl model::Settings for WasiConfig {
    fn get(&self, key: &str) -> Result<Option<String>, String> {
        store::get(key).map_err(|e| match e {
            store::Error::Upstream(m) | store::Error::Io(m) => m,
        })
    }

    fn caller_tokens(&self) -> Result<Arc<CallerTokens>, model::SecretError> {
        let now_ms = STARTED.with(|started| u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
        if let Some(tokens) = CALLER_TOKENS.with(|cache| cache.borrow().fresh(now_ms)) {
            return Ok(tokens);
        }
        // No borrow across the host call: another request of this instance may run meanwhile.
        let read = handler::read_caller_tokens(self);
        CALLER_TOKENS.with(|cache| cache.borrow_mut().store(now_ms, read))
    }
}

/// The imported `edge:secrets` provider.
struct Provider;

impl model::Secrets for Provider {
    fn get(&mut self, read: &model::SecretRead) -> Result<model::Secret, model::SecretError> {
        let request = secrets::Request {
            environment: read.environment.clone(),
            name: read.name.clone(),
            version: read.version.clone(),
            field: read.field.clone(),
            refresh: read.refresh,
            traceparent: read.traceparent.clone(),
        };
        match secrets::get(&request) {
            Ok(s) => Ok(model::Secret {
                value: s.value,
                version: s.version,
                from_cache: matches!(s.source, secrets::Source::Cache),
                stale: s.stale,
                tier: s.tier,
            }),
            Err(e) => Err(secret_error(e)),
        }
    }

    fn stats(&mut self) -> Vec<model::EnvironmentStats> {
        admin::stats()
            .into_iter()
            .map(|s| model::EnvironmentStats {
                environment: s.environment,
                backend: s.backend,
                hits: s.hits,
                misses: s.misses,
                shared_hits: s.shared_hits,
                shared_rejected: s.shared_rejected,
                backend_calls: s.backend_calls,
                retries: s.retries,
                errors: model::ErrorCounts {
                    invalid_request: s.errors.invalid_request,
                    not_found: s.errors.not_found,
                    permission_denied: s.errors.permission_denied,
                    unavailable: s.errors.unavailable,
                    timeout: s.errors.timeout,
                    rate_limited: s.errors.rate_limited,
                    backend: s.errors.backend,
                },
                stale_served: s.stale_served,
                negative_hits: s.negative_hits,
                fallbacks: s.fallbacks,
                refreshes: s.refreshes,
                refresh_limited: s.refresh_limited,
                budget_exhausted: s.budget_exhausted,
                breaker: breaker(s.breaker),
                cache_entries: s.cache_entries,
                counters_shared: s.counters_shared,
                hit_latency: histogram(s.hit_latency),
                tiers: s
                    .tiers
                    .into_iter()
                    .map(|t| model::TierStats {
                        backend: t.backend,
                        breaker: breaker(t.breaker),
                        backend_calls: t.backend_calls,
                        retries: t.retries,
                        failures: t.failures,
                        breaker_opened: t.breaker_opened,
                        breaker_closed: t.breaker_closed,
                        skipped: t.skipped,
                        call_latency: histogram(t.call_latency),
                    })
                    .collect(),
            })
            .collect()
    }

    fn health(&mut self) -> model::HealthReport {
        let h = admin::health();
        model::HealthReport {
            ok: h.ok,
            config_error: h.config_error,
            environments: h
                .environments
                .into_iter()
                .map(|e| model::EnvironmentHealth {
                    environment: e.environment,
                    breaker: breaker(e.breaker),
                    retry_after_ms: e.retry_after_ms,
                    tiers: e.tiers.into_iter().map(breaker).collect(),
                })
                .collect(),
            unknown_environment_errors: h.unknown_environment_errors,
            shared_status: match h.shared.status {
                admin::SharedStatus::Disabled => "disabled",
                admin::SharedStatus::NoKey => "no-key",
                admin::SharedStatus::Ok => "ok",
                admin::SharedStatus::Degraded => "degraded",
            },
            shared_error: h.shared.last_error,
        }
    }
}

fn breaker(state: admin::BreakerState) -> model::BreakerState {
    match state {
        admin::BreakerState::Closed => model::BreakerState::Closed,
        admin::BreakerState::Open => model::BreakerState::Open,
        admin::BreakerState::HalfOpen => model::BreakerState::HalfOpen,
    }
}

fn secret_error(e: secrets::Error) -> model::SecretError {
    use model::SecretError as E;
    match e {
        secrets::Error::InvalidRequest(m) => E::InvalidRequest(m),
        secrets::Error::UnknownEnvironment(m) => E::UnknownEnvironment(m),
        secrets::Error::NotFound(m) => E::NotFound(m),
        secrets::Error::PermissionDenied(m) => E::PermissionDenied(m),
        secrets::Error::Unavailable(ms) => E::Unavailable(ms),
        secrets::Error::Timeout(ms) => E::Timeout(ms),
        secrets::Error::RateLimited(ms) => E::RateLimited(ms),
        secrets::Error::Backend(f) => E::Backend { status: f.status, reason: f.reason },
        secrets::Error::Config(m) => E::Config(m),
    }
}

fn histogram(h: admin::LatencyHistogram) -> model::Histogram {
    model::Histogram { bounds_us: h.bounds_us, counts: h.counts, sum_us: h.sum_us }
}
