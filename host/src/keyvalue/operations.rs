//! Counting the store operations guests make through the binding (the benchmark's "store
//! operations per shared hit" figure, and tests that hold a hit to one read).

use std::sync::atomic::{AtomicU64, Ordering};

/// Store operations the guests made through the binding, by kind: what each one costs with a
/// networked store (Redis: a round trip; Spin's SQLite: a query, a write for the writes). One
/// `get-many` is one read, whatever its key count (Redis: one `MGET`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KvOperations {
    /// `get`, `exists`, `list-keys`, `get-many`, and the read that starts a compare-and-swap.
    pub reads: u64,
    /// `set`, `delete`, `increment` (even by zero: Redis `INCRBY` is a write), `swap`,
    /// `set-many`, `delete-many`.
    pub writes: u64,
}

impl KvOperations {
    pub fn total(&self) -> u64 {
        self.reads + self.writes
    }
}

impl std::ops::Sub for KvOperations {
    type Output = KvOperations;
    fn sub(self, earlier: KvOperations) -> KvOperations {
        KvOperations { reads: self.reads.saturating_sub(earlier.reads), writes: self.writes.saturating_sub(earlier.writes) }
    }
}

#[derive(Default)]
pub(super) struct Counts {
    pub(super) reads: AtomicU64,
    pub(super) writes: AtomicU64,
}

impl Counts {
    pub(super) fn read(&self) {
        self.reads.fetch_add(1, Ordering::Relaxed);
    }
    pub(super) fn write(&self) {
        self.writes.fetch_add(1, Ordering::Relaxed);
    }
}
