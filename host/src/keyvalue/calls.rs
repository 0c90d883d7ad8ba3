//! What each `wasi:keyvalue` call does to the store: count it, hold it to the limits, ask the
//! backend. Two bindings call these — the synchronous one (the sync `Runtime`, which has no
//! tokio) and the offloaded one (`serve`, see `offload`), which runs them on tokio's blocking
//! pool — so the logic exists once and each binding only moves handles in and out of its table.
//!
//! They take owned arguments and `&self` on a cheap clone, so a binding can move them into
//! another thread.

use super::{CasHandle, KeyValue, KvError};

/// `get-many`'s answer: each key with its value, or `None` where absent.
pub(super) type KeyedValues = Vec<(String, Option<Vec<u8>>)>;

impl KeyValue {
    pub(super) fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.counts.read();
        self.read_one(bucket, key)
    }

    pub(super) fn set(&self, bucket: &str, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.counts.write();
        self.check_write(value)?;
        self.backend.set(bucket, key, value)
    }

    pub(super) fn delete(&self, bucket: &str, key: &str) -> Result<(), KvError> {
        self.counts.write();
        self.backend.delete(bucket, key)
    }

    pub(super) fn exists(&self, bucket: &str, key: &str) -> Result<bool, KvError> {
        Ok(self.get(bucket, key)?.is_some())
    }

    /// One page, sorted: the cursor is the last key returned, so a caller that passes it back
    /// gets the keys after it.
    pub(super) fn list_keys(&self, bucket: &str, cursor: Option<String>) -> Result<Vec<String>, KvError> {
        self.counts.read();
        let mut keys = self.backend.keys(bucket)?;
        keys.sort();
        if let Some(after) = cursor {
            keys.retain(|k| *k > after);
        }
        Ok(keys)
    }

    pub(super) fn increment(&self, bucket: &str, key: &str, delta: i64) -> Result<i64, KvError> {
        self.counts.write();
        self.backend.increment(bucket, key, delta)
    }

    /// Starts a compare-and-swap: reads what the key holds now.
    pub(super) fn begin_swap(&self, bucket: String, key: String) -> Result<CasHandle, KvError> {
        let seen = self.get(&bucket, &key)?;
        Ok(CasHandle { bucket, key, seen })
    }

    /// Finishes a compare-and-swap. `Ok(Err(retry))`: the key changed since `cas` began;
    /// `retry` holds its current value, for the guest to try again with.
    pub(super) fn swap(&self, cas: CasHandle, value: &[u8]) -> Result<Result<(), CasHandle>, KvError> {
        self.counts.write();
        self.check_write(value)?;
        if self.backend.compare_and_swap(&cas.bucket, &cas.key, cas.seen.as_deref(), value, self.limits.per_value)? {
            return Ok(Ok(()));
        }
        let current = self.read_one(&cas.bucket, &cas.key)?;
        Ok(Err(CasHandle { seen: current, ..cas }))
    }

    /// One read for all keys (Redis: one `MGET`), answered in the keys' order.
    pub(super) fn get_many(&self, bucket: &str, keys: Vec<String>) -> Result<KeyedValues, KvError> {
        self.counts.read();
        let values = self.read_for_guest(bucket, &keys)?;
        Ok(keys.into_iter().zip(values).collect())
    }

    /// Writes nothing if any value is above the limit; stops at the first failed write.
    pub(super) fn set_many(&self, bucket: &str, key_values: &[(String, Vec<u8>)]) -> Result<(), KvError> {
        self.counts.write();
        key_values.iter().try_for_each(|(_, value)| self.check_write(value))?;
        key_values.iter().try_for_each(|(key, value)| self.backend.set(bucket, key, value))
    }

    /// Stops at the first failed delete.
    pub(super) fn delete_many(&self, bucket: &str, keys: &[String]) -> Result<(), KvError> {
        self.counts.write();
        keys.iter().try_for_each(|key| self.backend.delete(bucket, key))
    }
}
