//! Shared state: the second cache level (L2) and the breakers' shared state,
//! kept in a key-value bucket (`wasi:keyvalue` in the component) so that they
//! outlive an instance and are seen by every instance and host sharing it.
//!
//! Spin runs a fresh instance of a P2 component per request, so without this
//! the in-memory cache and breakers would be empty on every request. Records
//! are sealed ([`seal`]) and laid out in [`record`]; the store is reached only
//! through [`SharedStore`], so the whole layer is tested natively against
//! [`MemoryStore`].

use crate::prelude::*;
use alloc::collections::BTreeMap;
use alloc::rc::Rc;
use core::cell::RefCell;
use core::fmt;

pub mod record;
pub mod seal;

pub use seal::SealKey;

/// A failed store operation; the message is the store's own (it never sees
/// plaintext: keys are HMACs and values are sealed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

/// Identifies a compare-and-swap started with [`SharedStore::watch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CasToken(pub u64);

/// A key-value bucket with compare-and-swap (`wasi:keyvalue/store` and
/// `atomics` in the component).
pub trait SharedStore {
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    fn set(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError>;
    fn delete(&mut self, key: &str) -> Result<(), StoreError>;
    /// Adds `delta` to the integer under `key` (absent: 0) and returns the result.
    fn increment(&mut self, key: &str, delta: i64) -> Result<i64, StoreError>;
    /// Reads `key` and starts a compare-and-swap on it.
    fn watch(&mut self, key: &str) -> Result<(Option<Vec<u8>>, CasToken), StoreError>;
    /// Writes `value` if `key` still holds what [`watch`](Self::watch) read.
    /// `Ok(false)`: another writer got there first.
    fn swap(&mut self, token: CasToken, value: &[u8]) -> Result<bool, StoreError>;

    /// Reads several keys in one operation (`wasi:keyvalue/batch` `get-many`):
    /// one value per key, in `keys` order. Not atomic across keys. The default
    /// reads them one by one (stores without a batch read).
    fn get_many(&mut self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        keys.iter().map(|key| self.get(key)).collect()
    }

    /// Writes several keys in one operation (`batch` `set-many`); not atomic:
    /// after a failure some may have been written.
    fn set_many(&mut self, entries: &[(&str, &[u8])]) -> Result<(), StoreError> {
        entries.iter().try_for_each(|(key, value)| self.set(key, value))
    }
}

/// Where shared state lives, as written in the policy's `shared` object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedSpec {
    /// The bucket to open (`default` is the one Spin gives every app).
    pub bucket: String,
    /// The config key holding the 64-hex-digit sealing key.
    pub key_key: String,
    /// How long a fetch lease holds off other instances' fetches of the same secret.
    pub lease_ms: u64,
    /// A fresh instance whose call only read the store adds its counts to the
    /// shared totals with probability 1/`count_sample`, multiplied by it
    /// (1: every such call writes them, exactly).
    pub count_sample: u64,
}

/// Shared state as configured and resolved at load time.
// Built once per instance and moved into the provider: the prepared key's
// size (its HMAC states) is no reason to box it.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum SharedSetup {
    /// No `shared` object in the policy: in-memory state only.
    Disabled,
    /// Configured, but the key's config key is not set: in-memory state only,
    /// reported in health (nothing unsealed is ever written).
    NoKey { key_key: String },
    /// Ready to use.
    Ready { bucket: String, key: SealKey, lease_ms: u64, count_sample: u64 },
}

/// What health reports about shared state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedStatus {
    /// Not configured.
    Disabled,
    /// Configured without a key: running from memory only.
    NoKey,
    /// The last store operation succeeded (or none was needed yet).
    Ok,
    /// The last store operation failed: running from memory until it works again.
    Degraded,
}

/// A bucket in memory, shareable between providers (the tests' "instances").
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Rc<RefCell<MemoryInner>>,
}

#[derive(Default)]
struct MemoryInner {
    entries: BTreeMap<String, Vec<u8>>,
    watches: BTreeMap<u64, (String, Option<Vec<u8>>)>,
    next_token: u64,
    /// While set, every operation fails with this message.
    failing: Option<String>,
    /// Every operation attempted, by name (`get`, `get-many`, `swap`, ...).
    log: Vec<&'static str>,
}

/// The operations that change the store (a failed swap included: it was sent as a write).
const WRITES: [&str; 5] = ["set", "set-many", "delete", "increment", "swap"];

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore").field("entries", &self.inner.borrow().entries.len()).finish()
    }
}

impl MemoryStore {
    /// Makes every operation fail (or work again with `None`).
    pub fn set_failing(&self, message: Option<&str>) {
        self.inner.borrow_mut().failing = message.map(str::to_string);
    }

    /// A copy of every entry (tests inspect and tamper with it).
    pub fn dump(&self) -> BTreeMap<String, Vec<u8>> {
        self.inner.borrow().entries.clone()
    }

    /// Overwrites one entry, bypassing everything (tests: tampering).
    pub fn poke(&self, key: &str, value: Vec<u8>) {
        self.inner.borrow_mut().entries.insert(key.to_string(), value);
    }

    /// Operations attempted so far (a batch counts once: it is one round trip).
    pub fn operations(&self) -> u64 {
        self.inner.borrow().log.len() as u64
    }

    /// Operations attempted so far that write (see [`WRITES`]; an increment
    /// writes even when it adds zero: the store cannot tell).
    pub fn writes(&self) -> u64 {
        self.inner.borrow().log.iter().filter(|op| WRITES.contains(op)).count() as u64
    }

    /// The names of the operations attempted since operation `from`
    /// (`operations()` taken before the code under test ran).
    pub fn ops_since(&self, from: u64) -> Vec<&'static str> {
        self.inner.borrow().log.iter().skip(from as usize).copied().collect()
    }

    fn begin(&self, op: &'static str) -> Result<core::cell::RefMut<'_, MemoryInner>, StoreError> {
        let mut inner = self.inner.borrow_mut();
        inner.log.push(op);
        match &inner.failing {
            Some(message) => Err(StoreError(message.clone())),
            None => Ok(inner),
        }
    }
}

impl SharedStore for MemoryStore {
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.begin("get")?.entries.get(key).cloned())
    }

    fn set(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.begin("set")?.entries.insert(key.to_string(), value.to_vec());
        Ok(())
    }

    fn delete(&mut self, key: &str) -> Result<(), StoreError> {
        self.begin("delete")?.entries.remove(key);
        Ok(())
    }

    fn increment(&mut self, key: &str, delta: i64) -> Result<i64, StoreError> {
        let mut inner = self.begin("increment")?;
        let current = match inner.entries.get(key) {
            Some(bytes) => core::str::from_utf8(bytes).ok().and_then(|s| s.parse::<i64>().ok()).ok_or_else(|| StoreError("not an integer".into()))?,
            None => 0,
        };
        let next = current.saturating_add(delta);
        inner.entries.insert(key.to_string(), next.to_string().into_bytes());
        Ok(next)
    }

    fn watch(&mut self, key: &str) -> Result<(Option<Vec<u8>>, CasToken), StoreError> {
        let mut inner = self.begin("watch")?;
        let current = inner.entries.get(key).cloned();
        inner.next_token += 1;
        let token = inner.next_token;
        inner.watches.insert(token, (key.to_string(), current.clone()));
        Ok((current, CasToken(token)))
    }

    fn swap(&mut self, token: CasToken, value: &[u8]) -> Result<bool, StoreError> {
        let mut inner = self.begin("swap")?;
        let Some((key, seen)) = inner.watches.remove(&token.0) else {
            return Err(StoreError("unknown compare-and-swap token".into()));
        };
        if inner.entries.get(&key) != seen.as_ref() {
            return Ok(false);
        }
        inner.entries.insert(key, value.to_vec());
        Ok(true)
    }

    fn get_many(&mut self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let inner = self.begin("get-many")?;
        Ok(keys.iter().map(|key| inner.entries.get(*key).cloned()).collect())
    }

    fn set_many(&mut self, entries: &[(&str, &[u8])]) -> Result<(), StoreError> {
        let mut inner = self.begin("set-many")?;
        for (key, value) in entries {
            inner.entries.insert(key.to_string(), value.to_vec());
        }
        Ok(())
    }
}

/// A store for providers without shared state: never called, fails if it is.
pub struct NoStore;

impl SharedStore for NoStore {
    fn get(&mut self, _: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Err(StoreError("no shared store".into()))
    }
    fn set(&mut self, _: &str, _: &[u8]) -> Result<(), StoreError> {
        Err(StoreError("no shared store".into()))
    }
    fn delete(&mut self, _: &str) -> Result<(), StoreError> {
        Err(StoreError("no shared store".into()))
    }
    fn increment(&mut self, _: &str, _: i64) -> Result<i64, StoreError> {
        Err(StoreError("no shared store".into()))
    }
    fn watch(&mut self, _: &str) -> Result<(Option<Vec<u8>>, CasToken), StoreError> {
        Err(StoreError("no shared store".into()))
    }
    fn swap(&mut self, _: CasToken, _: &[u8]) -> Result<bool, StoreError> {
        Err(StoreError("no shared store".into()))
    }
    fn get_many(&mut self, _: &[&str]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        Err(StoreError("no shared store".into()))
    }
    fn set_many(&mut self, _: &[(&str, &[u8])]) -> Result<(), StoreError> {
        Err(StoreError("no shared store".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_store_compare_and_swap_detects_a_concurrent_writer() {
        let mut a = MemoryStore::default();
        let mut b = a.clone();
        let (seen, token) = a.watch("k").unwrap();
        assert_eq!(seen, None);
        b.set("k", b"other").unwrap();
        assert!(!a.swap(token, b"mine").unwrap(), "the write in between must fail the swap");
        let (seen, token) = a.watch("k").unwrap();
        assert_eq!(seen.as_deref(), Some(&b"other"[..]));
        assert!(a.swap(token, b"mine").unwrap());
        assert_eq!(b.get("k").unwrap().as_deref(), Some(&b"mine"[..]));
        assert!(a.swap(token, b"again").is_err(), "a token is used once");
        a.set_failing(Some("down"));
        assert_eq!(b.get("k"), Err(StoreError("down".into())));
    }

    #[test]
    fn memory_store_batches_count_once_and_writes_are_told_apart() {
        let mut a = MemoryStore::default();
        a.set_many(&[("x", b"1"), ("y", b"2")]).unwrap();
        assert_eq!(a.get_many(&["y", "none", "x"]).unwrap(), vec![Some(b"2".to_vec()), None, Some(b"1".to_vec())]);
        let (_, token) = a.watch("x").unwrap();
        a.swap(token, b"3").unwrap();
        assert_eq!((a.operations(), a.writes()), (4, 2));
        assert_eq!(a.ops_since(1), vec!["get-many", "watch", "swap"]);
    }
}
