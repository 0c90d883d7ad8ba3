//! The log events of the read path, one constructor each: breaker
//! transitions, retries, fallbacks, an empty retry budget, stale answers and
//! reads that failed. Events carry names, kinds, tiers and durations — never
//! values, tokens or upstream text.

use crate::prelude::*;
use super::Provider;
use crate::error::Error;
use crate::log::{Event, Level};
use crate::trace::TraceParent;

/// What an event is about: a read of `name` on a tier of an environment.
pub(super) struct About<'a> {
    pub env: usize,
    pub tier: usize,
    pub name: &'a str,
    pub trace: Option<&'a TraceParent>,
}

impl Provider {
    fn event(&self, level: Level, kind: &'static str, about: &About<'_>) -> Event {
        let spec = &self.envs[about.env].env.spec;
        let tier = u32::try_from(about.tier).unwrap_or(u32::MAX);
        let mut event = Event::new(level, kind).env(&spec.name).secret(about.name).tier(tier);
        if let Some(spec) = spec.tiers.get(about.tier) {
            event = event.backend(spec.backend.kind());
        }
        if let Some(trace) = about.trace {
            event = event.trace(&trace.trace_id());
        }
        event
    }

    fn emit(&mut self, level: Level, kind: &'static str, about: &About<'_>, build: impl FnOnce(Event) -> Event) {
        if self.log.enabled(level) {
            let event = build(self.event(level, kind, about));
            self.log.push(event);
        }
    }

    /// An attempt failed and will be retried.
    pub(super) fn log_retry(&mut self, about: &About<'_>, error: &Error, elapsed_ms: u64) {
        self.emit(Level::Info, "retry", about, |e| e.error_kind(error.kind().name()).duration_ms(elapsed_ms));
    }

    /// A retry was due but the environment's retry budget is spent.
    pub(super) fn log_budget_exhausted(&mut self, about: &About<'_>, error: &Error) {
        self.emit(Level::Warn, "retry_budget_exhausted", about, |e| e.error_kind(error.kind().name()));
    }

    /// A read moves on from tier `about.tier` to `next`.
    pub(super) fn log_fallback(&mut self, about: &About<'_>, next: usize, error: &Error) {
        let message = format!("tier {} -> tier {next}", about.tier);
        self.emit(Level::Warn, "fallback", about, |e| e.error_kind(error.kind().name()).message(message));
    }

    /// A value past its TTL answered a failed read.
    pub(super) fn log_stale(&mut self, about: &About<'_>, error: &Error) {
        self.emit(Level::Warn, "stale_served", about, |e| e.error_kind(error.kind().name()));
    }

    /// A read failed because its backends did (no stale value to fall back on).
    pub(super) fn log_read_failed(&mut self, about: &About<'_>, error: &Error) {
        self.emit(Level::Warn, "read_failed", about, |e| e.error_kind(error.kind().name()));
    }

    /// A tier logged in, renewed its token or signed one (`error`: it failed).
    pub(super) fn log_login(&mut self, env: usize, tier: usize, method: &'static str, error: Option<&Error>) {
        let level = if error.is_some() { Level::Warn } else { Level::Info };
        let about = About { env, tier, name: "", trace: None };
        if self.log.enabled(level) {
            let mut event = self.event(level, if error.is_some() { "login_failed" } else { "login" }, &about).message(method.to_string());
            if let Some(error) = error {
                event = event.error_kind(error.kind().name());
            }
            event.secret = None;
            self.log.push(event);
        }
    }

    /// A tier's breaker changed state.
    pub(super) fn log_breaker(&mut self, env: usize, tier: usize, kind: &'static str) {
        let level = if kind == "breaker_opened" { Level::Warn } else { Level::Info };
        let about = About { env, tier, name: "", trace: None };
        if self.log.enabled(level) {
            let mut event = self.event(level, kind, &about);
            event.secret = None;
            self.log.push(event);
        }
    }
}
