//! The plaintext layouts of shared-state records (sealed before they are
//! stored; see [`super::seal`]). Fixed binary layouts, big-endian: every
//! decoder checks lengths and tags and returns `None` on anything else, so a
//! record from a newer or broken writer is treated as absent, never trusted.
//!
//! Times are wall-clock milliseconds: instances, and hosts on other machines,
//! share these records, and monotonic clocks are per instance.

use crate::prelude::*;
use crate::breaker::{State, Window};

// 1 was the cache layout whose epoch lived in the entry's key.
const BREAKER: u8 = 2;
const LEASE: u8 = 3;
const TOKEN: u8 = 4;
const REFUSAL: u8 = 5;
const CACHE: u8 = 6;
const COUNTS: u8 = 7;

/// An environment's invalidation epoch: what `invalidate` last wrote (random),
/// or [`Epoch::INITIAL`] while nothing was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epoch(pub [u8; 16]);

impl Epoch {
    pub const INITIAL: Epoch = Epoch([0; 16]);

    /// The epoch a stored value stands for. A value that is not 16 bytes
    /// (another writer's, or garbage) is an epoch of its own, a digest of it:
    /// it matches no entry published before, so corrupting the epoch cannot
    /// bring invalidated entries back (deleting it can, as far as their TTLs allow).
    pub fn from_stored(value: Option<&[u8]>) -> Epoch {
        match value {
            None => Epoch::INITIAL,
            Some(v) => match <[u8; 16]>::try_from(v) {
                Ok(bytes) => Epoch(bytes),
                Err(_) => {
                    let digest = crate::digest::sha256(&[b"edge-secrets/epoch", v]);
                    let mut bytes = [0u8; 16];
                    bytes.copy_from_slice(&digest[..16]);
                    Epoch::fresh(bytes)
                }
            },
        }
    }

    /// When `invalidate` made it (wall ms, its last 8 bytes): how instances
    /// order the epochs they have seen. Meaningful only for an epoch that came
    /// out of a sealed record (an authentic one).
    pub fn issued_at_ms(&self) -> u64 {
        let mut at = [0u8; 8];
        at.copy_from_slice(&self.0[8..]);
        u64::from_be_bytes(at)
    }

    /// A new epoch from 16 random bytes: never the initial one, so that an
    /// invalidation always hides the entries of a bucket never invalidated.
    pub fn fresh(mut bytes: [u8; 16]) -> Epoch {
        if bytes == [0; 16] {
            bytes[0] = 1;
        }
        Epoch(bytes)
    }
}

/// A cached answer as shared between instances: a value, or (`negative`) a
/// not-found whose `value` is the secret-free message. `epoch` is the
/// environment's epoch it was published under: a record of another epoch is
/// authentic but invalidated, read as absent.
#[derive(Clone, PartialEq, Eq)]
pub struct CacheRecord {
    pub epoch: Epoch,
    pub fetched_at_ms: u64,
    pub expires_at_ms: u64,
    pub tier: u8,
    pub negative: bool,
    pub version: String,
    pub value: Vec<u8>,
}

impl CacheRecord {
    pub fn encode(&self) -> Vec<u8> {
        let version = self.version.as_bytes();
        let mut out = Vec::with_capacity(1 + 16 + 8 + 8 + 2 + 2 + version.len() + self.value.len());
        out.push(CACHE);
        out.extend_from_slice(&self.epoch.0);
        out.extend_from_slice(&self.fetched_at_ms.to_be_bytes());
        out.extend_from_slice(&self.expires_at_ms.to_be_bytes());
        out.push(self.tier);
        out.push(u8::from(self.negative));
        out.extend_from_slice(&(version.len() as u16).to_be_bytes());
        out.extend_from_slice(version);
        out.extend_from_slice(&self.value);
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<CacheRecord> {
        let mut r = Reader(bytes);
        r.tag(CACHE)?;
        let epoch = Epoch(r.take(16)?.try_into().ok()?);
        let fetched_at_ms = r.u64()?;
        let expires_at_ms = r.u64()?;
        let tier = r.u8()?;
        let negative = match r.u8()? {
            0 => false,
            1 => true,
            _ => return None,
        };
        let len = usize::from(r.u16()?);
        let version = core::str::from_utf8(r.take(len)?).ok()?.to_string();
        if fetched_at_ms > expires_at_ms {
            return None;
        }
        Some(CacheRecord { epoch, fetched_at_ms, expires_at_ms, tier, negative, version, value: r.0.to_vec() })
    }
}

/// A backend token one instance obtained (AppRole login, metadata server,
/// signed JWT), shared so the others do not log in too.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub issued_at_ms: u64,
    pub expires_at_ms: u64,
    pub renewable: bool,
    pub token: Vec<u8>,
}

impl TokenRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 8 + 8 + 1 + self.token.len());
        out.push(TOKEN);
        out.extend_from_slice(&self.issued_at_ms.to_be_bytes());
        out.extend_from_slice(&self.expires_at_ms.to_be_bytes());
        out.push(u8::from(self.renewable));
        out.extend_from_slice(&self.token);
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<TokenRecord> {
        let mut r = Reader(bytes);
        r.tag(TOKEN)?;
        let issued_at_ms = r.u64()?;
        let expires_at_ms = r.u64()?;
        let renewable = match r.u8()? {
            0 => false,
            1 => true,
            _ => return None,
        };
        if issued_at_ms > expires_at_ms || r.0.is_empty() {
            return None;
        }
        Some(TokenRecord { issued_at_ms, expires_at_ms, renewable, token: r.0.to_vec() })
    }
}

/// A login the backend refused (wrong role or secret id), shared so that the
/// other instances do not send the same refused login for a while. `message`
/// is the secret-free permission-denied text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusalRecord {
    pub refused_at_ms: u64,
    pub message: String,
}

impl RefusalRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 8 + self.message.len());
        out.push(REFUSAL);
        out.extend_from_slice(&self.refused_at_ms.to_be_bytes());
        out.extend_from_slice(self.message.as_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<RefusalRecord> {
        let mut r = Reader(bytes);
        r.tag(REFUSAL)?;
        let refused_at_ms = r.u64()?;
        let message = core::str::from_utf8(r.0).ok()?.to_string();
        Some(RefusalRecord { refused_at_ms, message })
    }
}

/// A breaker's state and half-open generation, as shared between instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerRecord {
    pub state: State,
    pub generation: u64,
}

impl BreakerRecord {
    /// `[tag, which, a: u64, b: u32, c: u32, generation: u64]`; a closed breaker with a
    /// non-empty window is `which = 3` followed by `[outcomes: u128, calls: u8]`. Records
    /// without a window keep the layout older instances read.
    pub fn encode(&self) -> Vec<u8> {
        let (which, a, b, c, window) = match self.state {
            State::Closed { consecutive_failures, window } if window == Window::EMPTY => (0u8, 0, consecutive_failures, 0, None),
            State::Closed { consecutive_failures, window } => (3, 0, consecutive_failures, 0, Some(window)),
            State::Open { until_ms } => (1, until_ms, 0, 0, None),
            State::HalfOpen { in_flight, successes, probes_until_ms } => (2, probes_until_ms, in_flight, successes, None),
        };
        let mut out = Vec::with_capacity(1 + 1 + 8 + 4 + 4 + 8 + 16 + 1);
        out.push(BREAKER);
        out.push(which);
        out.extend_from_slice(&a.to_be_bytes());
        out.extend_from_slice(&b.to_be_bytes());
        out.extend_from_slice(&c.to_be_bytes());
        out.extend_from_slice(&self.generation.to_be_bytes());
        if let Some(window) = window {
            out.extend_from_slice(&window.failed_bits().to_be_bytes());
            out.push(window.calls() as u8);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<BreakerRecord> {
        let mut r = Reader(bytes);
        r.tag(BREAKER)?;
        let which = r.u8()?;
        let (a, b, c, generation) = (r.u64()?, r.u32()?, r.u32()?, r.u64()?);
        let state = match which {
            0 => State::Closed { consecutive_failures: b, window: Window::EMPTY },
            1 => State::Open { until_ms: a },
            2 => State::HalfOpen { in_flight: b, successes: c, probes_until_ms: a },
            3 => {
                let failed = u128::from_be_bytes(r.take(16)?.try_into().ok()?);
                // An empty window is written as `which = 0`: anything else here is not ours.
                let window = Window::from_parts(failed, r.u8()?).filter(|w| *w != Window::EMPTY)?;
                State::Closed { consecutive_failures: b, window }
            }
            _ => return None,
        };
        r.end()?;
        Some(BreakerRecord { state, generation })
    }
}

/// "One instance is fetching this secret until `expires_at_ms`."
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseRecord {
    pub expires_at_ms: u64,
    /// A random id of the holder.
    pub holder: u64,
}

impl LeaseRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(17);
        out.push(LEASE);
        out.extend_from_slice(&self.expires_at_ms.to_be_bytes());
        out.extend_from_slice(&self.holder.to_be_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<LeaseRecord> {
        let mut r = Reader(bytes);
        r.tag(LEASE)?;
        let record = LeaseRecord { expires_at_ms: r.u64()?, holder: r.u64()? };
        r.end()?;
        Some(record)
    }
}

/// One shard of an environment's counters: every counter in the engine's
/// flat order (see `engine::shared::counters`), each a total over the
/// instances that added to this shard. `[tag, n: u16, n × u64]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CountsRecord {
    pub values: Vec<u64>,
}

impl CountsRecord {
    pub fn encode(&self) -> Vec<u8> {
        let n = self.values.len().min(usize::from(u16::MAX));
        let mut out = Vec::with_capacity(3 + 8 * n);
        out.push(COUNTS);
        out.extend_from_slice(&(n as u16).to_be_bytes());
        for value in &self.values[..n] {
            out.extend_from_slice(&value.to_be_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<CountsRecord> {
        let mut r = Reader(bytes);
        r.tag(COUNTS)?;
        let n = r.u16()?;
        let values = (0..n).map(|_| r.u64()).collect::<Option<Vec<u64>>>()?;
        r.end()?;
        Some(CountsRecord { values })
    }

    /// Adds `deltas` (a longer list, from a configuration with more tiers, grows it).
    pub fn add(&mut self, deltas: &[u64]) {
        if self.values.len() < deltas.len() {
            self.values.resize(deltas.len(), 0);
        }
        for (total, delta) in self.values.iter_mut().zip(deltas) {
            *total = total.saturating_add(*delta);
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn tag(&mut self, tag: u8) -> Option<()> {
        (self.u8()? == tag).then_some(())
    }

    fn end(&self) -> Option<()> {
        self.0.is_empty().then_some(())
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;
