//! Per-environment counters. Secret-free by construction: only numbers.

use crate::prelude::*;
use crate::breaker::Phase;
use crate::error::ErrorKind;

/// Errors returned to callers, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErrorCounts {
    pub invalid_request: u64,
    pub not_found: u64,
    pub permission_denied: u64,
    pub unavailable: u64,
    pub timeout: u64,
    pub rate_limited: u64,
    pub backend: u64,
}

/// Counters of one environment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Reads answered from this instance's memory.
    pub hits: u64,
    /// Reads that missed memory (some of them answered by shared state).
    pub misses: u64,
    /// Misses answered from shared state, without a backend request.
    pub shared_hits: u64,
    /// Shared-state records that failed to open (edited, swapped or sealed
    /// under another key): ignored and replaced, never served.
    pub shared_rejected: u64,
    pub backend_calls: u64,
    pub retries: u64,
    pub errors: ErrorCounts,
}

impl Counters {
    /// Counts an error returned to a caller.
    pub fn error(&mut self, kind: ErrorKind) {
        let e = &mut self.errors;
        let slot = match kind {
            ErrorKind::InvalidRequest => &mut e.invalid_request,
            ErrorKind::NotFound => &mut e.not_found,
            ErrorKind::PermissionDenied => &mut e.permission_denied,
            ErrorKind::Unavailable => &mut e.unavailable,
            ErrorKind::Timeout => &mut e.timeout,
            ErrorKind::RateLimited => &mut e.rate_limited,
            ErrorKind::Backend => &mut e.backend,
            // Unknown environments and a broken configuration belong to no
            // environment; `health` reports them.
            ErrorKind::UnknownEnvironment | ErrorKind::Config => return,
        };
        *slot += 1;
    }
}

/// A snapshot of one environment for `admin.stats`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentStats {
    pub environment: String,
    pub backend: &'static str,
    pub counters: Counters,
    pub breaker: Phase,
    pub cache_entries: u32,
}

/// One environment's health for `admin.health`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentHealth {
    pub environment: String,
    pub breaker: Phase,
    pub retry_after_ms: Option<u64>,
}
