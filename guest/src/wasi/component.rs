//! The provider world's exports (`edge:secrets/secrets`, `edge:secrets/admin`).
//! This is the one place where core errors become WIT errors.

use crate::prelude::*;

use super::exports::edge::secrets::admin::{self, BreakerState};
use super::exports::edge::secrets::secrets::{self, BackendFailure};
use super::platform::WasiClock;
use super::state::{with_available, with_provider, Needs};
use crate::breaker::Phase;
use crate::engine::{stats, Clock, SecretRequest, Source};
use crate::shared::SharedStatus;
use crate::Error;

/// The component.
pub struct Component;

fn to_core(request: secrets::Request) -> SecretRequest {
    SecretRequest {
        environment: request.environment,
        name: request.name,
        version: request.version,
        field: request.field,
        refresh: request.refresh,
        traceparent: request.traceparent,
    }
}

fn to_wit_secret(secret: crate::engine::Secret) -> secrets::Secret {
    secrets::Secret {
        value: secret.value.into_vec(),
        version: secret.version,
        source: match secret.source {
            Source::Backend => secrets::Source::Backend,
            Source::Cache => secrets::Source::Cache,
        },
        stale: secret.stale,
        tier: secret.tier,
    }
}

/// The one conversion from the core's error to the WIT error.
fn to_wit_error(error: Error) -> secrets::Error {
    match error {
        Error::InvalidRequest(m) => secrets::Error::InvalidRequest(m),
        Error::UnknownEnvironment(e) => secrets::Error::UnknownEnvironment(e),
        Error::NotFound(m) => secrets::Error::NotFound(m),
        Error::PermissionDenied(m) => secrets::Error::PermissionDenied(m),
        Error::Unavailable { retry_after_ms } => secrets::Error::Unavailable(retry_after_ms),
        Error::Timeout { deadline_ms } => secrets::Error::Timeout(deadline_ms),
        Error::RateLimited { retry_after_ms } => secrets::Error::RateLimited(retry_after_ms),
        Error::Backend { status, reason } => secrets::Error::Backend(BackendFailure { status, reason }),
        Error::Config(m) => secrets::Error::Config(m),
    }
}

fn config_error(message: &str) -> secrets::Error {
    to_wit_error(Error::Config(message.to_string()))
}

impl secrets::Guest for Component {
    fn get(request: secrets::Request) -> Result<secrets::Secret, secrets::Error> {
        let request = to_core(request);
        with_provider(
            Needs::Names(&[&request.environment]),
            |provider, io| provider.get(&request, io).map(to_wit_secret).map_err(to_wit_error),
            |message| Err(config_error(message)),
        )
    }

    fn get_many(requests: Vec<secrets::Request>) -> Vec<Result<secrets::Secret, secrets::Error>> {
        let count = requests.len();
        let requests: Vec<SecretRequest> = requests.into_iter().map(to_core).collect();
        let environments: Vec<&str> = requests.iter().map(|r| r.environment.as_str()).collect();
        with_provider(
            Needs::Names(&environments),
            |provider, io| {
                provider
                    .get_many(&requests, io)
                    .into_iter()
                    .map(|r| r.map(to_wit_secret).map_err(to_wit_error))
                    .collect()
            },
            |message| (0..count).map(|_| Err(config_error(message))).collect(),
        )
    }

    fn invalidate(environment: String, name: Option<String>) -> Result<u32, secrets::Error> {
        with_provider(
            Needs::Names(&[&environment]),
            |provider, io| provider.invalidate(&environment, name.as_deref(), io).map_err(to_wit_error),
            |message| Err(config_error(message)),
        )
    }
}

fn breaker_state(phase: Phase) -> BreakerState {
    match phase {
        Phase::Closed => BreakerState::Closed,
        Phase::Open => BreakerState::Open,
        Phase::HalfOpen => BreakerState::HalfOpen,
    }
}

fn shared_health((status, last_error): (SharedStatus, Option<&str>)) -> admin::SharedHealth {
    let status = match status {
        SharedStatus::Disabled => admin::SharedStatus::Disabled,
        SharedStatus::NoKey => admin::SharedStatus::NoKey,
        SharedStatus::Ok => admin::SharedStatus::Ok,
        SharedStatus::Degraded => admin::SharedStatus::Degraded,
    };
    admin::SharedHealth { status, last_error: last_error.map(str::to_string) }
}

fn error_counts(e: stats::ErrorCounts) -> admin::ErrorCounts {
    admin::ErrorCounts {
        invalid_request: e.invalid_request,
        not_found: e.not_found,
        permission_denied: e.permission_denied,
        unavailable: e.unavailable,
        timeout: e.timeout,
        rate_limited: e.rate_limited,
        backend: e.backend,
    }
}

fn tier_stats(t: stats::TierStats) -> admin::TierStats {
    let c = t.counters;
    admin::TierStats {
        backend: t.backend.to_string(),
        breaker: breaker_state(t.breaker),
        backend_calls: c.backend_calls,
        retries: c.retries,
        failures: c.failures,
        breaker_opened: c.breaker_opened,
        breaker_closed: c.breaker_closed,
        skipped: c.skipped,
        call_latency: histogram(&t.call_latency),
    }
}

fn histogram(h: &crate::histogram::Histogram) -> admin::LatencyHistogram {
    admin::LatencyHistogram { bounds_us: crate::histogram::BUCKET_BOUNDS_US.to_vec(), counts: h.counts.to_vec(), sum_us: h.sum_us }
}

impl admin::Guest for Component {
    fn stats() -> Vec<admin::EnvironmentStats> {
        let now = WasiClock.wall_ms();
        // The environments that load; one that does not is in `health`'s `config-error`.
        with_available(
            |provider, io, _| {
                // Reads the breakers too: one store operation for the whole report.
                let totals = provider.shared_totals(io);
                let counters_shared = totals.is_some();
                provider
                    .stats(now)
                    .into_iter()
                    .enumerate()
                    .map(|(i, mut s)| {
                        if let Some(total) = totals.as_ref().and_then(|t| t.get(i)) {
                            s.counters = total.counters;
                            s.hit_latency = total.hit_latency;
                            for (tier, shared) in s.tiers.iter_mut().zip(&total.tiers) {
                                tier.counters = shared.0;
                                tier.call_latency = shared.1;
                            }
                        }
                        s
                    })
                    .map(|s| admin::EnvironmentStats {
                        backend_calls: s.backend_calls(),
                        retries: s.retries(),
                        environment: s.environment,
                        backend: s.backend.to_string(),
                        hits: s.counters.hits,
                        misses: s.counters.misses,
                        shared_hits: s.counters.shared_hits,
                        shared_rejected: s.counters.shared_rejected,
                        errors: error_counts(s.counters.errors),
                        stale_served: s.counters.stale_served,
                        negative_hits: s.counters.negative_hits,
                        fallbacks: s.counters.fallbacks,
                        refreshes: s.counters.refreshes,
                        refresh_limited: s.counters.refresh_limited,
                        budget_exhausted: s.counters.budget_exhausted,
                        breaker: breaker_state(s.breaker),
                        cache_entries: s.cache_entries,
                        counters_shared,
                        hit_latency: histogram(&s.hit_latency),
                        tiers: s.tiers.into_iter().map(tier_stats).collect(),
                    })
                    .collect()
            },
            |_| Vec::new(),
        )
    }

    fn health() -> admin::HealthReport {
        let now = WasiClock.wall_ms();
        with_available(
            |provider, io, failed| {
                provider.sync_breakers(io);
                // Reads and cached reads do not need the backends' credentials; the health
                // check reads them, so a broken one shows before a read needs it.
                let credentials_failed = provider.read_all_credentials(io);
                let config_error = failed.map(str::to_string).or(credentials_failed);
                admin::HealthReport {
                    ok: config_error.is_none() && provider.all_closed(now),
                    config_error,
                    environments: provider
                        .health(now)
                        .into_iter()
                        .map(|h| admin::EnvironmentHealth {
                            environment: h.environment,
                            breaker: breaker_state(h.breaker),
                            retry_after_ms: h.retry_after_ms,
                            tiers: h.tiers.into_iter().map(breaker_state).collect(),
                        })
                        .collect(),
                    unknown_environment_errors: provider.unknown_environment_errors(),
                    shared: shared_health(provider.shared_status()),
                }
            },
            |message| admin::HealthReport {
                ok: false,
                config_error: Some(message.to_string()),
                environments: Vec::new(),
                unknown_environment_errors: 0,
                shared: admin::SharedHealth { status: admin::SharedStatus::Disabled, last_error: None },
            },
        )
    }

    fn ping() {}
}
