//! Test support: a key-value store for `serve` tests that counts the calls in it (now and the
//! most at once) and can hold every call at a closed gate, as a stalled Redis would. Tests wait
//! on its condition variable, not by polling.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use edge_secrets_host::keyvalue::{Bounded, KvBackend, KvError, MemoryBackend, ValueLimits};

#[derive(Default)]
struct Calls {
    closed: bool,
    /// Calls in the store now, waiting at the gate or not.
    running: usize,
    most: usize,
}

/// The in-memory store, `delay` per call.
#[derive(Default)]
pub struct GatedStore {
    inner: MemoryBackend,
    delay: Duration,
    calls: Mutex<Calls>,
    changed: Condvar,
}

impl GatedStore {
    pub fn with_delay(delay: Duration) -> GatedStore {
        GatedStore { delay, ..GatedStore::default() }
    }

    /// Closed: every call waits until it opens.
    pub fn set_closed(&self, closed: bool) {
        self.calls.lock().unwrap().closed = closed;
        self.changed.notify_all();
    }

    pub fn running(&self) -> usize {
        self.calls.lock().unwrap().running
    }

    /// The most calls in the store at once since the last [`GatedStore::reset_most`].
    pub fn most(&self) -> usize {
        self.calls.lock().unwrap().most
    }

    pub fn reset_most(&self) {
        self.calls.lock().unwrap().most = 0;
    }

    /// Waits (up to `limit`) until `count` calls are in the store; returns how many are.
    pub fn wait_for_running(&self, count: usize, limit: Duration) -> usize {
        let calls = self.calls.lock().unwrap();
        let (calls, _) = self.changed.wait_timeout_while(calls, limit, |c| c.running < count).unwrap();
        calls.running
    }

    fn call<R>(&self, op: impl FnOnce(&MemoryBackend) -> R) -> R {
        let mut calls = self.calls.lock().unwrap();
        calls.running += 1;
        calls.most = calls.most.max(calls.running);
        self.changed.notify_all();
        drop(self.changed.wait_while(calls, |c| c.closed).unwrap());
        std::thread::sleep(self.delay);
        let result = op(&self.inner);
        self.calls.lock().unwrap().running -= 1;
        self.changed.notify_all();
        result
    }
}

impl KvBackend for GatedStore {
    fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.call(|s| s.get(bucket, key))
    }
    fn set(&self, bucket: &str, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.call(|s| s.set(bucket, key, value))
    }
    fn delete(&self, bucket: &str, key: &str) -> Result<(), KvError> {
        self.call(|s| s.delete(bucket, key))
    }
    fn keys(&self, bucket: &str) -> Result<Vec<String>, KvError> {
        self.call(|s| s.keys(bucket))
    }
    fn increment(&self, bucket: &str, key: &str, delta: i64) -> Result<i64, KvError> {
        self.call(|s| s.increment(bucket, key, delta))
    }
    fn compare_and_swap(&self, bucket: &str, key: &str, expected: Option<&[u8]>, value: &[u8], absent_above: usize) -> Result<bool, KvError> {
        self.call(|s| s.compare_and_swap(bucket, key, expected, value, absent_above))
    }
    fn read_bounded(&self, bucket: &str, keys: &[String], limits: ValueLimits) -> Result<Vec<Bounded>, KvError> {
        self.call(|s| s.read_bounded(bucket, keys, limits))
    }
}

/// Opens the gate when dropped, so a failed assertion never leaves the server's calls stuck
/// (and the server's shutdown waiting on them).
pub struct OpenOnDrop(pub Arc<GatedStore>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.set_closed(false);
    }
}
