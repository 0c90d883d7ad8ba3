//! A TTL + LRU cache of resolved secrets for one environment.
//!
//! Each environment owns its own `Cache`, so one environment can never read
//! another's entries: isolation comes from ownership, not from key prefixes.
//! Time is passed in (`now_ms`), never read here.
//!
//! An entry past its TTL is not served as fresh, but is kept for its stale
//! window (`max_stale`) so a read whose backend fails transiently can still
//! be answered with the last known value. Not-found answers are kept apart,
//! briefly, so a hot miss does not hammer the backend.

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
    /// The tier that served it (0: the primary).
    pub tier: u32,
}

/// A fresh entry, with its age.
pub struct Entry<'a> {
    pub cached: &'a Cached,
    pub fetched_at_ms: u64,
    pub expires_at_ms: u64,
}

/// One (version, field) of a secret.
struct Slot {
    version: VersionSel,
    field: String,
    cached: Cached,
    fetched_at_ms: u64,
    expires_at_ms: u64,
    /// Until when it may still answer a read whose backend failed.
    stale_until_ms: u64,
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
    /// Not-found answers: key → (expiry, the secret-free message).
    negative: BTreeMap<CacheKey, (u64, String)>,
    /// When a refresh of a key was last started, whatever came of it (refreshes
    /// are one per interval, even when they fail or find nothing).
    refresh_claims: Vec<(CacheKey, u64)>,
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
            negative: BTreeMap::new(),
            refresh_claims: Vec::new(),
        }
    }

    /// A fresh entry, marked as recently used. An entry past its stale
    /// window is dropped; one within it stays (see [`Cache::stale`]) but is a
    /// miss here.
    pub fn lookup(&mut self, name: &str, version: &VersionSel, field: &str, now_ms: u64) -> Option<Entry<'_>> {
        let (i, expired, dead) = {
            let slots = self.entries.get(name)?;
            let i = slots.iter().position(|s| s.version == *version && s.field == field)?;
            (i, slots[i].expires_at_ms <= now_ms, slots[i].stale_until_ms <= now_ms)
        };
        if dead {
            let key = CacheKey { name: name.to_string(), version: version.clone(), field: field.to_string() };
            self.remove(&key);
            return None;
        }
        if expired {
            return None;
        }
        self.next_stamp += 1;
        let stamp = self.next_stamp;
        let slot = self.entries.get_mut(name)?.get_mut(i)?;
        if let Some(key) = self.recency.remove(&slot.stamp) {
            self.recency.insert(stamp, key);
        }
        slot.stamp = stamp;
        Some(Entry { cached: &slot.cached, fetched_at_ms: slot.fetched_at_ms, expires_at_ms: slot.expires_at_ms })
    }

    /// An entry within its stale window (fresh or expired; `true` when
    /// expired): the answer of last resort when the backend fails transiently.
    pub fn stale(&self, name: &str, version: &VersionSel, field: &str, now_ms: u64) -> Option<(&Cached, bool)> {
        let slot = self.entries.get(name)?.iter().find(|s| s.version == *version && s.field == field)?;
        (now_ms < slot.stale_until_ms).then_some((&slot.cached, slot.expires_at_ms <= now_ms))
    }

    /// When the entry (fresh or stale) was fetched, if there is one.
    pub fn fetched_at(&self, name: &str, version: &VersionSel, field: &str) -> Option<u64> {
        let slot = self.entries.get(name)?.iter().find(|s| s.version == *version && s.field == field)?;
        Some(slot.fetched_at_ms)
    }

    /// Claims the one refresh of an entry per `interval_ms`: `true` if none
    /// was started within the interval (the caller then refreshes it).
    pub fn claim_refresh(&mut self, name: &str, version: &VersionSel, field: &str, now_ms: u64, interval_ms: u64) -> bool {
        let key = CacheKey { name: name.to_string(), version: version.clone(), field: field.to_string() };
        // Claims older than the interval are over: dropping them keeps the list to the keys
        // refreshed within one interval (a short list; this is not the hit path).
        self.refresh_claims.retain(|(_, at)| now_ms.saturating_sub(*at) < interval_ms);
        if self.refresh_claims.iter().any(|(k, _)| *k == key) {
            return false;
        }
        if self.refresh_claims.len() >= self.max_entries {
            self.refresh_claims.remove(0);
        }
        self.refresh_claims.push((key, now_ms));
        true
    }

    /// A cached not-found answer (its message), while it lasts.
    pub fn negative(&self, name: &str, version: &VersionSel, field: &str, now_ms: u64) -> Option<&str> {
        // Every memory miss asks: without not-founds (a fresh instance's first call) the key
        // is not built.
        if self.negative.is_empty() {
            return None;
        }
        let key = CacheKey { name: name.to_string(), version: version.clone(), field: field.to_string() };
        self.negative.get(&key).filter(|(until, _)| now_ms < *until).map(|(_, message)| message.as_str())
    }

    /// Remembers a not-found answer for `ttl_ms` (0: nothing is kept). A
    /// value cached under the key is dropped: the backend says it is gone.
    pub fn insert_negative(&mut self, key: CacheKey, message: String, ttl_ms: u64, now_ms: u64) {
        self.remove(&key);
        if ttl_ms == 0 {
            return;
        }
        if self.negative.len() >= self.max_entries {
            self.negative.retain(|_, (until, _)| now_ms < *until);
            if self.negative.len() >= self.max_entries {
                self.negative.pop_first();
            }
        }
        self.negative.insert(key, (now_ms.saturating_add(ttl_ms), message));
    }

    /// [`Cache::lookup`] by key (tests; the read path borrows the request's
    /// strings instead of building a key).
    #[cfg(test)]
    pub fn get(&mut self, key: &CacheKey, now_ms: u64) -> Option<&Cached> {
        self.lookup(&key.name, &key.version, &key.field, now_ms).map(|e| e.cached)
    }

    /// Stores an answer, fresh for `ttl_ms` and kept `stale_ms` longer for
    /// failures. A zero TTL stores nothing. Evicts the least recently used
    /// entry when full.
    pub fn insert(&mut self, key: CacheKey, cached: Cached, ttl_ms: u64, stale_ms: u64, now_ms: u64) {
        if ttl_ms == 0 {
            return;
        }
        self.negative.remove(&key);
        self.remove(&key);
        while self.len >= self.max_entries {
            let Some((_, oldest)) = self.recency.pop_first() else {
                break;
            };
            self.remove(&oldest);
        }
        self.next_stamp += 1;
        let slot = Slot {
            version: key.version.clone(),
            field: key.field.clone(),
            cached,
            fetched_at_ms: now_ms,
            expires_at_ms: now_ms.saturating_add(ttl_ms),
            stale_until_ms: now_ms.saturating_add(ttl_ms).saturating_add(stale_ms),
            stamp: self.next_stamp,
        };
        self.entries.entry(key.name.clone()).or_default().push(slot);
        self.recency.insert(self.next_stamp, key);
        self.len += 1;
    }

    /// Stores an answer fetched at `fetched_at_ms` (perhaps by another
    /// instance) that is fresh until `expires_at_ms`.
    pub fn insert_aged(&mut self, key: CacheKey, cached: Cached, fetched_at_ms: u64, expires_at_ms: u64, stale_ms: u64) {
        let ttl = expires_at_ms.saturating_sub(fetched_at_ms);
        self.insert(key.clone(), cached, ttl, stale_ms, fetched_at_ms);
    }

    /// Drops one entry's value (a not-found stays), e.g. after the backend
    /// refused the credential for it.
    pub fn forget(&mut self, key: &CacheKey) {
        self.remove(key);
    }

    /// Drops every entry; returns how many there were.
    pub fn clear(&mut self) -> u32 {
        let n = self.len;
        self.negative.clear();
        self.refresh_claims.clear();
        self.entries.clear();
        self.recency.clear();
        self.len = 0;
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Drops every entry of secret `name` (all versions and fields).
    pub fn remove_name(&mut self, name: &str) -> u32 {
        self.negative.retain(|key, _| key.name != name);
        self.refresh_claims.retain(|(key, _)| key.name != name);
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
        Cached { value: SecretBytes::new(v.as_bytes().to_vec()), version: "1".into(), tier: 0 }
    }

    #[test]
    fn hit_until_ttl_then_miss() {
        let mut c = Cache::new(10);
        c.insert(key("a"), val("x"), 100, 0, 1_000);
        assert_eq!(c.get(&key("a"), 1_099).unwrap().value.expose(), b"x");
        assert!(c.get(&key("a"), 1_100).is_none());
        assert_eq!(c.len(), 0, "expired entry is dropped");
    }

    #[test]
    fn expired_entries_answer_as_stale_within_their_window_only() {
        let mut c = Cache::new(10);
        c.insert(key("a"), val("x"), 100, 50, 1_000);
        assert!(!c.stale("a", &VersionSel::Latest, "value", 1_099).unwrap().1, "a fresh entry is no stale answer");
        assert!(c.get(&key("a"), 1_100).is_none(), "expired: a miss");
        let (stale, expired) = c.stale("a", &VersionSel::Latest, "value", 1_149).unwrap();
        assert_eq!((stale.value.expose(), expired), (&b"x"[..], true));
        assert!(c.stale("a", &VersionSel::Latest, "value", 1_150).is_none(), "past max_stale");
        assert!(c.get(&key("a"), 1_150).is_none());
        assert_eq!(c.len(), 0, "dropped once past its stale window");
    }

    #[test]
    fn negative_entries_expire_and_give_way_to_values() {
        let mut c = Cache::new(10);
        c.insert_negative(key("a"), "gone".into(), 100, 0);
        assert_eq!(c.negative("a", &VersionSel::Latest, "value", 99), Some("gone"));
        assert_eq!(c.negative("a", &VersionSel::Latest, "value", 100), None);
        c.insert_negative(key("b"), "gone".into(), 100, 0);
        c.insert(key("b"), val("x"), 100, 0, 1);
        assert_eq!(c.negative("b", &VersionSel::Latest, "value", 2), None, "a value replaces a not-found");
        c.insert_negative(key("b"), "gone".into(), 100, 3);
        assert!(c.get(&key("b"), 4).is_none(), "a not-found drops the value");
        c.insert_negative(key("c"), "gone".into(), 0, 0);
        assert_eq!(c.negative("c", &VersionSel::Latest, "value", 0), None, "a zero TTL keeps nothing");
        assert_eq!(c.remove_name("b"), 0);
        assert_eq!(c.negative("b", &VersionSel::Latest, "value", 5), None, "invalidate drops not-founds");
    }

    #[test]
    fn zero_ttl_caches_nothing() {
        let mut c = Cache::new(10);
        c.insert(key("a"), val("x"), 0, 0, 0);
        assert!(c.is_empty());
    }

    #[test]
    fn evicts_least_recently_used() {
        let mut c = Cache::new(2);
        c.insert(key("a"), val("1"), 1_000, 0, 0);
        c.insert(key("b"), val("2"), 1_000, 0, 0);
        assert!(c.get(&key("a"), 1).is_some()); // a is now more recent than b
        c.insert(key("c"), val("3"), 1_000, 0, 2);
        assert!(c.get(&key("b"), 3).is_none(), "b was least recently used");
        assert!(c.get(&key("a"), 3).is_some());
        assert!(c.get(&key("c"), 3).is_some());
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn reinsert_replaces_without_growing() {
        let mut c = Cache::new(2);
        c.insert(key("a"), val("1"), 1_000, 0, 0);
        c.insert(key("a"), val("2"), 1_000, 0, 0);
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
        c.insert(key("db"), val("p"), 1_000, 0, 0);
        c.insert(user.clone(), val("u"), 1_000, 0, 0);
        assert_eq!(c.get(&user, 1).unwrap().value.expose(), b"u");
        assert!(c.get(&pinned, 1).is_none());
    }

    #[test]
    fn remove_name_drops_all_versions_and_fields_of_that_name_only() {
        let mut c = Cache::new(10);
        let mut pinned = key("db");
        pinned.version = VersionSel::Pinned(3);
        c.insert(key("db"), val("1"), 1_000, 0, 0);
        c.insert(pinned, val("2"), 1_000, 0, 0);
        c.insert(key("other"), val("3"), 1_000, 0, 0);
        assert_eq!(c.remove_name("db"), 2);
        assert_eq!(c.len(), 1);
        assert_eq!(c.clear(), 1);
        assert!(c.is_empty());
    }
}
