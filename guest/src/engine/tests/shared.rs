//! Shared state between "instances": several providers over one
//! [`MemoryStore`] and one fake time, as Spin's per-request instances share a
//! key-value store.

use super::*;
use crate::shared::{CasToken, MemoryStore, SharedStatus, SharedStore, StoreError};

/// The test policy with shared state turned on (key in `state_key`).
pub(super) fn shared_policy(extra: &str) -> String {
    policy(extra).replacen(r#""environments""#, r#""shared": {"key_key": "state_key", "lease_ms": 200}, "environments""#, 1)
}

pub(super) fn instance(handler: Handler) -> Harness {
    Harness::new(&shared_policy(""), handler)
}

/// Another instance of the same component: same store, same time.
pub(super) fn twin(of: &Harness, handler: Handler) -> Harness {
    twin_with(of, &shared_policy(""), handler)
}

/// [`twin`] with its own policy (the same shared key: the store's entries open).
pub(super) fn twin_with(of: &Harness, policy: &str, handler: Handler) -> Harness {
    let mut h = Harness::new(policy, handler);
    h.store = of.store.clone();
    h.clock.time = of.clock.time.clone();
    h.transport.time = of.clock.time.clone();
    h
}

pub(super) fn ok() -> Handler {
    Box::new(|_| vault_ok(4, "s3cr3t-value"))
}

#[test]
fn a_second_instance_reads_what_the_first_fetched_without_a_backend_request() {
    let mut first = instance(ok());
    assert_eq!(first.get("a", "app/db").unwrap().source, Source::Backend);
    let mut second = twin(&first, ok());
    let secret = second.get("a", "app/db").unwrap();
    assert_eq!((secret.value.expose(), secret.version.as_str(), secret.source), (&b"s3cr3t-value"[..], "4", Source::Cache));
    assert_eq!(second.sent(), 0);
    let stats = second.stats("a");
    assert_eq!((stats.counters.misses, stats.counters.shared_hits, stats.counters.hits), (1, 1, 0));
    // Now in the second instance's memory too: the next read does not touch the store.
    let before = second.store.operations();
    second.get("a", "app/db").unwrap();
    assert_eq!((second.store.operations(), second.stats("a").counters.hits), (before, 1));
    // The pinned version the `latest` read resolved to was shared as well.
    assert_eq!(twin(&first, ok()).get_req(&req("a", "app/db", Some("4"), None)).unwrap().source, Source::Cache);
}

#[test]
fn the_bucket_holds_neither_values_names_nor_tokens() {
    let mut first = instance(ok());
    first.get("a", "app/db").unwrap();
    let dump = first.store.dump();
    assert!(dump.len() >= 2, "an entry for latest and one for version 4: {:?}", dump.keys());
    for (key, value) in &dump {
        let kind = ["es1-entry-", "es1-count-", "es1-epoch-", "es1-lease-", "es1-budget-"].into_iter().find(|k| key.starts_with(k));
        let id = &key[kind.expect("only the five kinds of record").len()..];
        assert!(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{key}");
        for needle in [&b"s3cr3t-value"[..], b"token-a", b"app/db"] {
            assert!(!value.windows(needle.len()).any(|w| w == needle), "{key} holds plaintext");
        }
    }
}

#[test]
fn shared_entries_expire_with_their_ttl() {
    let mut first = instance(ok());
    first.get("a", "app/db").unwrap();
    first.clock.time.advance(10_001); // the test policy's ttl_ms is 10 000
    let mut second = twin(&first, ok());
    assert_eq!(second.get("a", "app/db").unwrap().source, Source::Backend);
    assert_eq!(second.sent(), 1);
}

#[test]
fn an_edited_entry_is_rejected_counted_and_replaced_by_a_fresh_fetch() {
    let mut first = instance(ok());
    first.get("a", "app/db").unwrap();
    for (key, mut value) in first.store.dump() {
        let last = value.len() - 1;
        value[last] ^= 0x01;
        first.store.poke(&key, value);
    }
    let mut second = twin(&first, ok());
    let secret = second.get("a", "app/db").unwrap();
    assert_eq!((secret.value.expose(), secret.source), (&b"s3cr3t-value"[..], Source::Backend));
    assert_eq!(second.sent(), 1);
    assert!(second.stats("a").counters.shared_rejected >= 1);
    // The fresh fetch replaced it: a third instance gets a valid entry.
    assert_eq!(twin(&first, ok()).get("a", "app/db").unwrap().source, Source::Cache);
}

#[test]
fn an_entry_moved_under_another_secrets_key_is_rejected() {
    let mut first = instance(Box::new(|o: &Outbound| {
        if o.request.path_and_query.ends_with("/one") { vault_ok(1, "value-one") } else { vault_ok(1, "value-two") }
    }));
    first.get("a", "one").unwrap();
    let one: Vec<_> = first.store.dump().into_iter().collect();
    first.get("a", "two").unwrap();
    let two_keys: Vec<String> = first.store.dump().into_keys().filter(|k| !one.iter().any(|(o, _)| o == k)).collect();
    assert!(!two_keys.is_empty());
    // Copy one's sealed entries over two's ids: same key material, wrong identity.
    for (key, (_, sealed)) in two_keys.iter().zip(one.iter().cycle()) {
        first.store.poke(key, sealed.clone());
    }
    let mut second = twin(&first, Box::new(|_| vault_ok(1, "value-two")));
    let secret = second.get("a", "two").unwrap();
    assert_eq!(secret.value.expose(), b"value-two", "a swapped entry must never be served");
    assert!(second.stats("a").counters.shared_rejected >= 1);
}

#[test]
fn the_breaker_opens_across_instances() {
    // Threshold 3; each instance's read makes 3 failing attempts (retry.attempts 3).
    let mut first = instance(Box::new(|_| status(503)));
    assert!(matches!(first.get("a", "app/db"), Err(Error::Backend { status: Some(503), .. })));
    assert_eq!(first.sent(), 3);
    let mut second = twin(&first, Box::new(|_| status(503)));
    assert!(matches!(second.get("a", "app/db"), Err(Error::Unavailable { .. })));
    assert_eq!(second.sent(), 0, "a fresh instance must see the open breaker");
    assert_eq!(second.provider.health(second.now())[0].breaker, Phase::Open);
    // After open_ms one instance probes; the success closes it for everyone.
    first.clock.time.advance(5_000);
    let mut third = twin(&first, ok());
    third.get("a", "app/db").unwrap();
    assert_eq!(third.sent(), 1);
    assert_eq!(third.provider.health(third.now())[0].breaker, Phase::HalfOpen, "success_threshold is 2");
    let mut fourth = twin(&first, ok());
    fourth.get("a", "other").unwrap();
    assert_eq!(fourth.provider.health(fourth.now())[0].breaker, Phase::Closed, "the second probe success closes it");
}

#[test]
fn failures_from_instances_in_turn_add_up() {
    let policy = shared_policy(r#", "retry": {"attempts": 1, "base_delay_ms": 1, "max_delay_ms": 1}"#);
    let first = Harness::new(&policy, Box::new(|_| status(500)));
    for _ in 0..3 {
        let mut next = Harness::new(&policy, Box::new(|_| status(500)));
        next.store = first.store.clone();
        next.clock.time = first.clock.time.clone();
        next.transport.time = first.clock.time.clone();
        assert!(matches!(next.get("a", "x"), Err(Error::Backend { .. })));
    }
    let mut last = Harness::new(&policy, Box::new(|_| status(500)));
    last.store = first.store.clone();
    assert!(matches!(last.get("a", "x"), Err(Error::Unavailable { .. })), "3 single failures in 3 instances open it");
}

#[test]
fn a_failure_rate_window_adds_up_calls_from_instances_in_turn() {
    let policy = shared_policy(
        r#", "retry": {"attempts": 1}, "breaker": {"failure_threshold": 100, "window_size": 4, "failure_rate_percent": 50, "min_calls": 4}"#,
    );
    let first = Harness::new(&policy, ok());
    // Fail, succeed, fail, succeed: one call per fresh instance, none of them sees two failures.
    for (i, fails) in [true, false, true, false].into_iter().enumerate() {
        let handler: Handler = if fails { Box::new(|_| status(503)) } else { ok() };
        let mut next = Harness::new(&policy, handler);
        next.store = first.store.clone();
        next.clock.time = first.clock.time.clone();
        next.transport.time = first.clock.time.clone();
        let _ = next.get("a", &format!("s{i}"));
    }
    let mut last = twin(&first, ok());
    assert!(matches!(last.get("a", "x"), Err(Error::Unavailable { .. })), "2 of 4 calls, from 4 instances, open it");
}

#[test]
fn a_failing_store_leaves_memory_working_and_shows_in_health() {
    let mut h = instance(ok());
    h.store.set_failing(Some("redis: connection refused"));
    let secret = h.get("a", "app/db").unwrap();
    assert_eq!(secret.value.expose(), b"s3cr3t-value");
    assert_eq!(h.provider.shared_status(), (SharedStatus::Degraded, Some("redis: connection refused")));
    assert_eq!(h.get("a", "app/db").unwrap().source, Source::Cache, "memory still caches");
    h.store.set_failing(None);
    // The store is left alone for a while after a failure (a hung store must not cost a
    // timeout on every call), then tried again.
    let before = h.store.operations();
    h.get("a", "other").unwrap();
    assert_eq!(h.store.operations(), before, "backing off");
    h.clock.time.advance(super::super::shared::STORE_BACKOFF_MS);
    h.get("a", "third").unwrap();
    assert_eq!(h.provider.shared_status(), (SharedStatus::Ok, None));
}

#[test]
fn without_the_key_the_component_runs_from_memory_and_says_so() {
    let mut source = BTreeMap::new();
    source.insert(config::POLICY_KEY.to_string(), shared_policy(""));
    source.insert("tok_a".to_string(), "token-a".to_string());
    source.insert("tok_b".to_string(), "token-b".to_string());
    let (envs, shared) = config::load_all(&source).unwrap();
    let provider = Provider::with_shared(envs, shared);
    assert_eq!(provider.shared_status(), (SharedStatus::NoKey, None));
    let mut h = Harness::new(&policy(""), ok());
    assert_eq!(h.provider.shared_status().0, SharedStatus::Disabled);
    h.get("a", "app/db").unwrap();
    assert_eq!(h.store.operations(), 0, "nothing is written without shared state");
}

/// A store on which the answer of another instance's fetch appears after a
/// few reads of it: what a waiter sees while the lease holder works.
struct ArrivesLater {
    inner: MemoryStore,
    arriving: Vec<(String, Vec<u8>)>,
    reads_left: u32,
}

impl SharedStore for ArrivesLater {
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if self.arriving.iter().any(|(k, _)| k == key) {
            if self.reads_left == 0 {
                for (k, v) in self.arriving.drain(..) {
                    self.inner.poke(&k, v);
                }
            } else {
                self.reads_left -= 1;
            }
        }
        self.inner.get(key)
    }
    fn set(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.inner.set(key, value)
    }
    fn delete(&mut self, key: &str) -> Result<(), StoreError> {
        self.inner.delete(key)
    }
    fn increment(&mut self, key: &str, delta: i64) -> Result<i64, StoreError> {
        self.inner.increment(key, delta)
    }
    fn watch(&mut self, key: &str) -> Result<(Option<Vec<u8>>, CasToken), StoreError> {
        self.inner.watch(key)
    }
    fn swap(&mut self, token: CasToken, value: &[u8]) -> Result<bool, StoreError> {
        self.inner.swap(token, value)
    }
}

/// A store on which another instance records a breaker failure between this
/// instance's read of the breaker and its write: the race compare-and-swap is for.
struct RacingWriter {
    inner: MemoryStore,
    other: Option<Harness>,
    breaker_watch: Option<CasToken>,
}

impl SharedStore for RacingWriter {
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key)
    }
    fn set(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.inner.set(key, value)
    }
    fn delete(&mut self, key: &str) -> Result<(), StoreError> {
        self.inner.delete(key)
    }
    fn increment(&mut self, key: &str, delta: i64) -> Result<i64, StoreError> {
        self.inner.increment(key, delta)
    }
    fn watch(&mut self, key: &str) -> Result<(Option<Vec<u8>>, CasToken), StoreError> {
        let (value, token) = self.inner.watch(key)?;
        if key.starts_with("es1-breaker-") {
            self.breaker_watch = Some(token);
        }
        Ok((value, token))
    }
    fn swap(&mut self, token: CasToken, value: &[u8]) -> Result<bool, StoreError> {
        if self.breaker_watch == Some(token) {
            if let Some(mut other) = self.other.take() {
                // The other instance fails a read of its own, all the way to its breaker write.
                assert!(matches!(other.get("a", "other"), Err(Error::Backend { .. })));
            }
        }
        self.inner.swap(token, value)
    }
}

#[test]
fn a_breaker_update_racing_another_instances_is_not_lost() {
    let policy = shared_policy(r#", "retry": {"attempts": 1, "base_delay_ms": 1, "max_delay_ms": 1}"#)
        .replace(r#""failure_threshold": 3"#, r#""failure_threshold": 2"#);
    let mut first = Harness::new(&policy, Box::new(|_| status(500)));
    let mut racer = Harness::new(&policy, Box::new(|_| status(500)));
    racer.store = first.store.clone();
    racer.clock.time = first.clock.time.clone();
    racer.transport.time = first.clock.time.clone();
    let mut store = RacingWriter { inner: first.store.clone(), other: Some(racer), breaker_watch: None };
    let mut io = Io { clock: &mut first.clock, random: &mut first.random, transport: &mut first.transport, store: &mut store, config: &first.config };
    assert!(matches!(first.provider.get(&req("a", "x", None, None), &mut io), Err(Error::Backend { .. })));
    assert!(store.other.is_none(), "the race happened");
    // Two failures, one from each instance: with a lost update the count would be 1 and closed.
    let mut third = Harness::new(&policy, Box::new(|_| status(500)));
    third.store = first.store.clone();
    third.clock.time = first.clock.time.clone();
    assert!(matches!(third.get("a", "y"), Err(Error::Unavailable { .. })));
    assert_eq!(third.sent(), 0);
}

/// Takes the fetch lease of `a/app/db` (latest) as another instance would.
fn hold_lease(store: &MemoryStore, time: &Time) {
    let mut holder = instance(ok());
    holder.store = store.clone();
    holder.clock.time = time.clone();
    let job = Job { env: 0, name: "app/db".into(), version: VersionSel::Latest, field: "value".into(), reason: super::super::Reason::Miss, fresher_than_wall_ms: 0, trace: None };
    let mut io = Io { clock: &mut holder.clock, random: &mut holder.random, transport: &mut holder.transport, store: &mut holder.store, config: &holder.config };
    assert!(matches!(holder.provider.lease(&job, &mut io), super::super::shared::lease::Lease::Fetch(Some(_))));
}

#[test]
fn while_another_instance_holds_the_lease_a_reader_waits_for_its_answer() {
    // What the lease holder will publish: a real sealed entry from a finished fetch.
    let mut producer = instance(ok());
    producer.get("a", "app/db").unwrap();
    let published: Vec<(String, Vec<u8>)> = producer.store.dump().into_iter().collect();

    let mut waiter = instance(ok());
    hold_lease(&waiter.store, &waiter.clock.time);
    // Read 1 is the lookup before the lease; reads 2 and 3 are polls that find nothing yet,
    // the entry arrives before read 4.
    let mut store = ArrivesLater { inner: waiter.store.clone(), arriving: published, reads_left: 3 };
    let mut io = Io { clock: &mut waiter.clock, random: &mut waiter.random, transport: &mut waiter.transport, store: &mut store, config: &waiter.config };
    let secret = waiter.provider.get(&req("a", "app/db", None, None), &mut io).unwrap();
    assert_eq!((secret.value.expose(), secret.source), (&b"s3cr3t-value"[..], Source::Cache));
    assert_eq!(waiter.sent(), 0, "the waiter sent nothing: the holder's answer served it");
    assert_eq!(waiter.clock.slept, vec![LEASE_POLL_MS; 3]);
}

#[test]
fn a_lease_whose_holder_never_answers_delays_a_reader_only_until_it_expires() {
    let mut waiter = instance(ok());
    hold_lease(&waiter.store, &waiter.clock.time);
    let start = waiter.now();
    assert_eq!(waiter.get("a", "app/db").unwrap().source, Source::Backend);
    assert_eq!(waiter.sent(), 1);
    let waited = waiter.clock.slept.iter().sum::<u64>();
    assert!((200..=200 + LEASE_POLL_MS).contains(&waited), "waited {waited} ms for a 200 ms lease");
    assert!(waiter.now() - start >= 200);
}

use super::super::shared::LEASE_POLL_MS;

#[test]
fn invalidate_in_one_instance_hides_shared_entries_from_all() {
    let mut first = instance(ok());
    first.get("a", "app/db").unwrap();
    assert_eq!(twin(&first, ok()).get("a", "app/db").unwrap().source, Source::Cache);
    twin(&first, ok()).invalidate("a", Some("app/db")).unwrap();
    let mut after = twin(&first, ok());
    assert_eq!(after.get("a", "app/db").unwrap().source, Source::Backend);
    assert_eq!(after.sent(), 1);
    // And the refetched value is shared again under the new epoch.
    assert_eq!(twin(&first, ok()).get("a", "app/db").unwrap().source, Source::Cache);
    // Env b is untouched by a's invalidation.
    let mut b = instance(Box::new(|_| gcp_ok()));
    b.store = first.store.clone();
    b.get("b", "db").unwrap();
    twin(&first, ok()).invalidate("a", None).unwrap();
    assert_eq!(twin(&first, ok()).get("b", "db").unwrap().source, Source::Cache);
}

#[test]
fn invalidate_says_so_when_the_store_cannot_be_told() {
    let mut h = instance(ok());
    h.get("a", "app/db").unwrap();
    h.store.set_failing(Some("down"));
    assert!(matches!(h.invalidate("a", None), Err(Error::Unavailable { .. })));
    let mut memory_only = Harness::new(&policy(""), ok());
    assert_eq!(memory_only.invalidate("a", None), Ok(0));
}

#[test]
fn two_fields_of_one_cold_secret_make_one_request_and_no_wait() {
    let mut h = instance(ok());
    let results = h.get_many(&[req("a", "app/db", None, Some("value")), req("a", "app/db", None, Some("user"))]);
    assert_eq!(results[0].as_ref().unwrap().value.expose(), b"s3cr3t-value");
    assert_eq!(results[1].as_ref().unwrap().value.expose(), b"admin");
    assert_eq!(h.sent(), 1);
    assert!(h.clock.slept.is_empty(), "the second field did not wait on the call's own lease");
}

#[test]
fn a_half_open_probe_that_never_reports_back_is_replaced_after_the_deadline() {
    // Open the shared breaker (threshold 3, 3 attempts), then let one instance take the probe
    // and vanish: without a probe deadline every instance would be refused for good.
    let mut first = instance(Box::new(|_| status(503)));
    first.get("a", "x").unwrap_err();
    first.clock.time.advance(5_000); // open_ms
    let mut vanished = twin(&first, ok());
    let wall = vanished.clock.wall_ms();
    let mut io = Io { clock: &mut vanished.clock, random: &mut vanished.random, transport: &mut vanished.transport, store: &mut vanished.store, config: &vanished.config };
    assert!(vanished.provider.with_breaker(0, 0, &mut io, |b| b.permit(wall)).is_ok(), "it took the probe");
    let mut next = twin(&first, ok());
    assert!(matches!(next.get("a", "y"), Err(Error::Unavailable { .. })), "the probe is still out");
    first.clock.time.advance(2_000); // the test policy's deadline_ms: the probe is overdue
    let mut later = twin(&first, ok());
    assert_eq!(later.get("a", "y").unwrap().source, Source::Backend, "a new probe went through");
}
