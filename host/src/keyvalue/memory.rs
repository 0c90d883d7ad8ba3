//! [`MemoryBackend`]: buckets in this process's memory, shared by every instance given the same
//! [`KeyValue`](super::KeyValue).

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{Bounded, KvBackend, KvError, ValueLimits};

/// (bucket, key) → value, behind one lock: every operation, compare-and-swap included, is atomic.
#[derive(Default)]
pub struct MemoryBackend {
    data: Mutex<BTreeMap<(String, String), Vec<u8>>>,
}

impl MemoryBackend {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), Vec<u8>>> {
        // A panic while holding the lock cannot leave a half-written entry (each operation is
        // a single map call), so a poisoned lock is still consistent.
        self.data.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn id(bucket: &str, key: &str) -> (String, String) {
    (bucket.to_string(), key.to_string())
}

impl KvBackend for MemoryBackend {
    /// One lock held for one map operation: never worth a thread hop.
    fn blocks(&self) -> bool {
        false
    }

    fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.lock().get(&id(bucket, key)).cloned())
    }

    fn set(&self, bucket: &str, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.lock().insert(id(bucket, key), value.to_vec());
        Ok(())
    }

    fn delete(&self, bucket: &str, key: &str) -> Result<(), KvError> {
        self.lock().remove(&id(bucket, key));
        Ok(())
    }

    fn keys(&self, bucket: &str) -> Result<Vec<String>, KvError> {
        Ok(self.lock().keys().filter(|(b, _)| b == bucket).map(|(_, k)| k.clone()).collect())
    }

    fn increment(&self, bucket: &str, key: &str, delta: i64) -> Result<i64, KvError> {
        let mut data = self.lock();
        let slot = data.entry(id(bucket, key)).or_insert_with(|| b"0".to_vec());
        let current: i64 = std::str::from_utf8(slot)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| KvError(format!("increment: the value of `{key}` is not an integer")))?;
        let next = current.checked_add(delta).ok_or_else(|| KvError(format!("increment: `{key}` would overflow")))?;
        *slot = next.to_string().into_bytes();
        Ok(next)
    }

    fn compare_and_swap(&self, bucket: &str, key: &str, expected: Option<&[u8]>, value: &[u8], absent_above: usize) -> Result<bool, KvError> {
        let mut data = self.lock();
        let key = id(bucket, key);
        let current = data.get(&key).map(Vec::as_slice).filter(|v| v.len() <= absent_above);
        if current != expected {
            return Ok(false);
        }
        data.insert(key, value.to_vec());
        Ok(true)
    }

    fn read_bounded(&self, bucket: &str, keys: &[String], limits: ValueLimits) -> Result<Vec<Bounded>, KvError> {
        let data = self.lock();
        let mut budget = limits.per_read;
        // Lengths first: an oversized value is never copied.
        Ok(keys
            .iter()
            .map(|key| {
                let value = data.get(&id(bucket, key));
                limits.admit(value.map(Vec::len), &mut budget, || value.cloned().unwrap_or_default())
            })
            .collect())
    }
}
