//! A TTL + LRU cache of resolved secrets for one environment.
//!
//! Each environment owns its own `Cache`, so one environment can never read
//! another's entries: isolation comes from ownership, not from key prefixes.
//! Time is passed in (`now_ms`), never read here.

use crate::prelude::*;
use alloc::collections::BTreeMap;

use crate::secret::SecretBytes;
use crate::validate::VersionSel;

/// What a cache entry answers: one field of one version of one secret.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey {
    pub name: String,
    pub version: VersionSel,
    pub field: String,
}

/// A cached answer.
#[derive(Debug, Clone)]
pub struct Cached {
    pub value: SecretBytes,
    /// The concrete version it resolved to.
    pub version: String,
}

/// One (version, field) of a secret.
struct Slot {
    version: VersionSel,
    field: String,
    cached: Cached,
    expires_at_ms: u64,
    /// Position in the recency order; larger is more recent.
    stamp: u64,
}

/// The cache. Lookups borrow the caller's strings (a hit allocates nothing
/// but the copy of the value it returns); all operations are O(log n) plus a
/// scan of one secret's few versions and fields.
pub struct Cache {
    max_entries: usize,
    /// Secret name → its cached versions and fields.
    entries: BTreeMap<String, Vec<Slot>>,
    /// stamp → key, oldest first: the eviction order. A hit moves its key to a
    /// new stamp without copying it.
    recency: BTreeMap<u64, CacheKey>,
    len: usize,
    next_stamp: u64,
}

impl Cache {
    /// A cache holding at most `max_entries` (at least 1).
    pub fn new(max_entries: usize) -> Cache {
        Cache {
            max_entries: max_entries.max(1),
            entries: BTreeMap::new(),
            recency: BTreeMap::new(),
            len: 0,
            next_stamp: 0,
        }
    }

    /// A fresh entry, marked as recently used. An expired entry is dropped
    /// and reported as a miss.
    pub fn lookup(&mut self, name: &str, version: VersionSel, field: &str, now_ms: u64) -> Option<&Cached> {
        let (i, expired) = {
            let slots = self.entries.get(name)?;
            let i = slots.iter().position(|s| s.version == version && s.field == field)?;
            (i, slots[i].expires_at_ms <= now_ms)
        };
        if expired {
            let key = CacheKey { name: name.to_string(), version, field: field.to_string() };
            self.remove(&key);
            return None;
        }
        self.next_stamp += 1;
        let stamp = self.next_stamp;
        let slot = self.entries.get_mut(name)?.get_mut(i)?;
        if let Some(key) = self.recency.remove(&slot.stamp) {
            self.recency.insert(stamp, key);
        }
        slot.stamp = stamp;
        Some(&slot.cached)
    }

    /// [`Cache::lookup`] by key (tests; the read path borrows the request's
    /// strings instead of building a key).
    #[cfg(test)]
    pub fn get(&mut self, key: &CacheKey, now_ms: u64) -> Option<&Cached> {
        self.lookup(&key.name, key.version, &key.field, now_ms)
    }

    /// Stores an answer for `ttl_ms`. A zero TTL stores nothing. Evicts the
    /// least recently used entry when full.
    pub fn insert(&mut self, key: CacheKey, cached: Cached, ttl_ms: u64, now_ms: u64) {
        if ttl_ms == 0 {
            return;
        }
        self.remove(&key);
        while self.len >= self.max_entries {
            let Some((_, oldest)) = self.recency.pop_first() else {
                break;
            };
            self.remove(&oldest);
        }
        self.next_stamp += 1;
        let slot = Slot {
            version: key.version,
            field: key.field.clone(),
            cached,
            expires_at_ms: now_ms.saturating_add(ttl_ms),
            stamp: self.next_stamp,
        };
        self.entries.entry(key.name.clone()).or_default().push(slot);
        self.recency.insert(self.next_stamp, key);
        self.len += 1;
    }

    /// Drops every entry; returns how many there were.
    pub fn clear(&mut self) -> u32 {
        let n = self.len;
        self.entries.clear();
        self.recency.clear();
        self.len = 0;
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Drops every entry of secret `name` (all versions and fields).
    pub fn remove_name(&mut self, name: &str) -> u32 {
        let Some(slots) = self.entries.remove(name) else {
            return 0;
        };
        for slot in &slots {
            self.recency.remove(&slot.stamp);
        }
        self.len -= slots.len();
        u32::try_from(slots.len()).unwrap_or(u32::MAX)
    }

    /// Entries held (fresh or not yet swept).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Removes one entry, wherever it is (the recency entry included).
    fn remove(&mut self, key: &CacheKey) {
        let Some(slots) = self.entries.get_mut(&key.name) else {
            return;
        };
        let Some(i) = slots.iter().position(|s| s.version == key.version && s.field == key.field) else {
            return;
        };
        let slot = slots.swap_remove(i);
        self.recency.remove(&slot.stamp);
        if slots.is_empty() {
            self.entries.remove(&key.name);
        }
        self.len -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> CacheKey {
        CacheKey { name: name.into(), version: VersionSel::Latest, field: "value".into() }
    }

    fn val(v: &str) -> Cached {
        Cached { value: SecretBytes::new(v.as_bytes().to_vec()), version: "1".into() }
    }

    #[test]
    fn hit_until_ttl_then_miss() {
        let mut c = Cache::new(10);
        c.insert(key("a"), val("x"), 100, 1_000);
        assert_eq!(c.get(&key("a"), 1_099).unwrap().value.expose(), b"x");
        assert!(c.get(&key("a"), 1_100).is_none());
        assert_eq!(c.len(), 0, "expired entry is dropped");
    }

    #[test]
    fn zero_ttl_caches_nothing() {
        let mut c = Cache::new(10);
        c.insert(key("a"), val("x"), 0, 0);
        assert!(c.is_empty());
    }

    #[test]
    fn evicts_least_recently_used() {
        let mut c = Cache::new(2);
        c.insert(key("a"), val("1"), 1_000, 0);
        c.insert(key("b"), val("2"), 1_000, 0);
        assert!(c.get(&key("a"), 1).is_some()); // a is now more recent than b
        c.insert(key("c"), val("3"), 1_000, 2);
        assert!(c.get(&key("b"), 3).is_none(), "b was least recently used");
        assert!(c.get(&key("a"), 3).is_some());
        assert!(c.get(&key("c"), 3).is_some());
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn reinsert_replaces_without_growing() {
        let mut c = Cache::new(2);
        c.insert(key("a"), val("1"), 1_000, 0);
        c.insert(key("a"), val("2"), 1_000, 0);
        assert_eq!(c.len(), 1);
        assert_eq!(c.get(&key("a"), 1).unwrap().value.expose(), b"2");
    }

    #[test]
    fn fields_and_versions_are_distinct_entries() {
        let mut c = Cache::new(10);
        let mut user = key("db");
        user.field = "user".into();
        let mut pinned = key("db");
        pinned.version = VersionSel::Pinned(3);
        c.insert(key("db"), val("p"), 1_000, 0);
        c.insert(user.clone(), val("u"), 1_000, 0);
        assert_eq!(c.get(&user, 1).unwrap().value.expose(), b"u");
        assert!(c.get(&pinned, 1).is_none());
    }

    #[test]
    fn remove_name_drops_all_versions_and_fields_of_that_name_only() {
        let mut c = Cache::new(10);
        let mut pinned = key("db");
        pinned.version = VersionSel::Pinned(3);
        c.insert(key("db"), val("1"), 1_000, 0);
        c.insert(pinned, val("2"), 1_000, 0);
        c.insert(key("other"), val("3"), 1_000, 0);
        assert_eq!(c.remove_name("db"), 2);
        assert_eq!(c.len(), 1);
        assert_eq!(c.clear(), 1);
        assert!(c.is_empty());
    }
}
