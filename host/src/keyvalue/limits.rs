//! What one read may hand a guest. A guest's memory is bounded (the runtime's
//! `memory_limit_bytes`) and the canonical ABI copies every value into it, so a value larger than
//! the guest can hold would trap the instance — and with it every other request it serves — on
//! each read, before the guest could overwrite the record. Anyone who can write the store could
//! plant one. So the binding never hands out a value above a bound: it reads it as absent (the
//! guest then refetches and overwrites it) and logs that it did.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// One key's answer to a bounded read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bounded {
    /// No value, or one that is not a byte string (a Redis list, say): read as absent.
    Absent,
    Value(Vec<u8>),
    /// A value of this many bytes, above the bound: handed to the guest as absent.
    TooLarge(u64),
}

/// The bounds of one read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueLimits {
    /// The largest value handed out. Also what a write may store (a larger write is refused).
    pub per_value: usize,
    /// The most bytes one `get-many` hands out in all; values past it are read as too large.
    pub per_read: usize,
}

impl Default for ValueLimits {
    /// 1 MiB per value holds a sealed record of a secret up to the policy's default
    /// `max_body_bytes` (1 MiB); 16 MiB per read bounds `stats`' read of every counter shard and
    /// breaker, far below the default 128 MiB guest memory.
    fn default() -> Self {
        ValueLimits { per_value: 1 << 20, per_read: 16 << 20 }
    }
}

impl ValueLimits {
    /// Rejects bounds that would refuse every record or exceed what a guest can address.
    pub fn new(per_value: usize, per_read: usize) -> Result<ValueLimits, String> {
        if per_value < 4096 || per_read < per_value || per_read > (1 << 30) {
            return Err(format!("key-value limits: need 4096 <= per-value ({per_value}) <= per-read ({per_read}) <= 1 GiB"));
        }
        Ok(ValueLimits { per_value, per_read })
    }

    /// Applies the bounds to values a backend read whole (backends that cannot check lengths
    /// first; Redis and the memory store do, and never copy an oversized value).
    pub fn apply(&self, values: Vec<Option<Vec<u8>>>) -> Vec<Bounded> {
        let mut budget = self.per_read;
        values.into_iter().map(|value| self.admit(value.as_deref().map(<[u8]>::len), &mut budget, || value.unwrap_or_default())).collect()
    }

    /// The answer for one value of length `len` (`None`: absent) within what is left of a
    /// read's `budget`; `take` yields the value, and is called only for one that fits (so a
    /// backend that knows lengths first never copies an oversized value).
    pub fn admit(&self, len: Option<usize>, budget: &mut usize, take: impl FnOnce() -> Vec<u8>) -> Bounded {
        match len {
            None => Bounded::Absent,
            Some(len) if len > self.per_value || len > *budget => Bounded::TooLarge(len as u64),
            Some(len) => {
                *budget -= len;
                Bounded::Value(take())
            }
        }
    }
}

/// Logs values read as absent because of their size, at most once a minute per store (a planted
/// value is read on every request; its key is an HMAC id for our guest, never a value).
#[derive(Default)]
pub(super) struct OversizeLog {
    last_minute: AtomicU64,
}

impl OversizeLog {
    pub(super) fn note(&self, key: &str, len: u64, limits: ValueLimits) {
        let minute = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() / 60) + 1;
        if self.last_minute.swap(minute, Ordering::Relaxed) != minute {
            eprintln!(
                "edge-secrets keyvalue: `{key}` holds {len} bytes, above the {}-byte limit per value ({} per read): read as absent (so it is overwritten)",
                limits.per_value, limits.per_read
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_above_either_bound_are_too_large_and_the_rest_pass() {
        let limits = ValueLimits::new(4096, 8192).unwrap();
        let big = vec![0u8; 4097];
        let half = vec![1u8; 4096];
        let read = limits.apply(vec![None, Some(big), Some(half.clone()), Some(half.clone()), Some(b"x".to_vec())]);
        assert_eq!(read[0], Bounded::Absent);
        assert_eq!(read[1], Bounded::TooLarge(4097), "above the per-value bound");
        assert_eq!(read[2], Bounded::Value(half.clone()));
        assert_eq!(read[3], Bounded::Value(half), "exactly at the per-read bound");
        assert_eq!(read[4], Bounded::TooLarge(1), "past the per-read bound");
    }

    #[test]
    fn bounds_are_checked_when_made() {
        assert!(ValueLimits::new(100, 8192).is_err());
        assert!(ValueLimits::new(8192, 4096).is_err());
        assert!(ValueLimits::new(4096, 2 << 30).is_err());
        assert!(ValueLimits::new(4096, 4096).is_ok());
    }
}
