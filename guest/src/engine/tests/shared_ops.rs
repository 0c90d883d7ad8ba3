//! What each path costs in store operations (the protocol in
//! `engine::shared`): under Spin every one is a round trip or a write, so
//! these numbers are part of the behaviour. Each test names the operations,
//! not only their count, so a change shows what it added.

use super::shared::{instance, ok, shared_policy, twin};
use super::*;

/// A provider that has served nothing yet (a fresh instance) over `of`'s
/// store and time, with the given policy and random source.
pub(super) fn fresh(of: &Harness, policy: &str, random: u64) -> Harness {
    let mut h = twin(of, ok());
    h.provider = Harness::new(policy, ok()).provider;
    h.random = FixedRandom(random);
    h
}

pub(super) fn stats_totals(h: &mut Harness) -> Vec<crate::engine::shared::counters::Totals> {
    let mut io = Io { clock: &mut h.clock, random: &mut h.random, transport: &mut h.transport, store: &mut h.store, config: &h.config };
    h.provider.shared_totals(&mut io).expect("shared state is usable")
}

#[test]
fn a_shared_hit_in_a_fresh_instance_is_one_read_and_no_write() {
    let mut first = instance(ok());
    first.get("a", "app/db").unwrap();
    let mut second = twin(&first, ok());
    let (before, writes) = (second.store.operations(), second.store.writes());
    let secret = second.get("a", "app/db").unwrap();
    assert_eq!((secret.value.expose(), secret.source), (&b"s3cr3t-value"[..], Source::Cache));
    assert_eq!(second.store.ops_since(before), vec!["get-many"], "the epoch and the entry in one read");
    assert_eq!(second.store.writes(), writes, "no write: its counts were not sampled (random 15 of 16)");
    // Reused, the instance serves the next read from memory: no operation at all.
    second.get("a", "app/db").unwrap();
    assert_eq!(second.store.operations(), before + 1);
}

#[test]
fn a_shared_hit_in_a_reused_instance_writes_nothing_either() {
    let mut first = instance(ok());
    first.get("a", "one").unwrap();
    first.get("a", "two").unwrap();
    let mut reused = twin(&first, ok());
    reused.get("a", "one").unwrap();
    reused.clock.time.advance(5_000); // counts are due
    let before = reused.store.operations();
    assert_eq!(reused.get("a", "two").unwrap().source, Source::Cache);
    assert_eq!(reused.store.ops_since(before), vec!["get-many"], "due counts wait for a call that does not touch the store");
    reused.get("a", "two").unwrap(); // a memory hit: now they go
    assert_eq!(reused.store.ops_since(before + 1), vec!["watch", "swap"]);
}

#[test]
fn a_cold_miss_costs_nine_operations() {
    let mut warm = instance(ok());
    warm.get("a", "other").unwrap(); // the budget slot's first deposit (and its sweep) is behind us
    let mut h = twin(&warm, ok());
    let before = h.store.operations();
    assert_eq!(h.get("a", "app/db").unwrap().source, Source::Backend);
    assert_eq!(
        h.store.ops_since(before),
        vec![
            "get-many",  // epoch + entry: absent
            "watch",     // the fetch lease ...
            "swap",      // ... taken
            "watch",     // the breaker, for a permit (closed: nothing to write)
            "increment", // the retry budget's first-attempt deposit
            "watch",     // the breaker, for the outcome (a success on a closed breaker: unchanged)
            "set-many",  // the value under `latest` and under its version, at once
            "watch",     // one count shard ...
            "swap",      // ... merged
        ],
        "the lease is not released: its answer is published"
    );
    // Before: the epoch's increment, two entry gets, a lease release and one increment per changed counter.
    assert_eq!(h.store.operations() - before, 9);
}

#[test]
fn stats_is_one_read_whatever_the_number_of_counters_and_breakers() {
    let mut first = instance(Box::new(both_backends_ok));
    first.get("a", "app/db").unwrap();
    first.get("b", "db").unwrap();
    let mut reader = twin(&first, ok());
    let (before, writes) = (reader.store.operations(), reader.store.writes());
    let totals = stats_totals(&mut reader);
    assert_eq!(reader.store.ops_since(before), vec!["get-many"], "every count shard and breaker of both environments");
    assert_eq!(reader.store.writes(), writes);
    assert_eq!((totals[0].counters.misses, totals[1].counters.misses), (1, 1));
    // Health reads every breaker the same way.
    let mut io = Io { clock: &mut reader.clock, random: &mut reader.random, transport: &mut reader.transport, store: &mut reader.store, config: &reader.config };
    reader.provider.sync_breakers(&mut io);
    assert_eq!(reader.store.ops_since(before + 1), vec!["get-many"]);
}

#[test]
fn invalidate_is_one_write_and_old_entries_are_absent_not_rejected() {
    let mut first = instance(ok());
    first.get("a", "app/db").unwrap();
    let entries_before = first.store.dump().keys().filter(|k| k.starts_with("es1-entry-")).count();
    let mut admin = twin(&first, ok());
    let before = admin.store.operations();
    admin.invalidate("a", None).unwrap();
    assert_eq!(admin.store.ops_since(before), vec!["set"]);
    let mut after = twin(&first, ok());
    assert_eq!(after.get("a", "app/db").unwrap().source, Source::Backend, "the old epoch's entry is not served");
    assert_eq!(after.stats("a").counters.shared_rejected, 0, "an invalidated entry is no forgery");
    // The refetch overwrote the old entries in place: invalidation does not grow the bucket.
    let entries_after = first.store.dump().keys().filter(|k| k.starts_with("es1-entry-")).count();
    assert_eq!(entries_after, entries_before);
    assert_eq!(twin(&first, ok()).get("a", "app/db").unwrap().source, Source::Cache);
}

#[test]
fn a_made_up_epoch_is_rejected_and_read_as_an_epoch_of_its_own_and_nothing_traps() {
    let mut first = instance(ok());
    first.get("a", "app/db").unwrap();
    first.invalidate("a", None).unwrap();
    let epoch_key = first.store.dump().into_keys().find(|k| k.starts_with("es1-epoch-")).unwrap();
    // Epochs are sealed: neither garbage nor a well-formed plain 16 bytes is taken as one.
    for made_up in [&b"\xff not an epoch"[..], &[7u8; 16][..]] {
        first.store.poke(&epoch_key, made_up.to_vec());
        let mut h = twin(&first, ok());
        assert_eq!(h.get("a", "app/db").unwrap().source, Source::Backend, "published under another epoch");
        assert!(h.stats("a").counters.shared_rejected >= 1, "the made-up epoch is counted as rejected");
        assert_eq!(twin(&first, ok()).get("a", "app/db").unwrap().source, Source::Cache, "republished under the one read");
    }
}

#[test]
fn a_holder_whose_fetch_failed_releases_its_lease_and_the_next_instance_fetches_at_once() {
    let policy = shared_policy(r#", "retry": {"attempts": 1}"#);
    let mut failed = Harness::new(&policy, Box::new(|_| status(503)));
    failed.get("a", "app/db").unwrap_err();
    let mut next = twin(&failed, ok());
    next.provider = Harness::new(&policy, ok()).provider;
    assert_eq!(next.get("a", "app/db").unwrap().source, Source::Backend);
    assert!(next.clock.slept.is_empty(), "no wait on a lease whose holder gave up");
}
