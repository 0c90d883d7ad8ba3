//! Counters totalled across "instances": exact when a call wrote to the
//! store anyway or the policy says `count_sample: 1`, sampled (unbiased) for
//! fresh instances whose call only read it, at most once a second for memory
//! hits; the count records themselves sealed like every other.

use super::shared::{instance, ok, shared_policy, twin};
use super::shared_ops::{fresh, stats_totals};
use super::*;
use crate::engine::shared::counters;

fn totals(h: &mut Harness) -> Vec<stats::Counters> {
    shared_totals(h).into_iter().map(|t| t.counters).collect()
}

fn shared_totals(h: &mut Harness) -> Vec<super::super::shared::counters::Totals> {
    let mut io = Io { clock: &mut h.clock, random: &mut h.random, transport: &mut h.transport, store: &mut h.store, config: &h.config };
    h.provider.shared_totals(&mut io).expect("shared state is usable")
}

/// The test policy with shared state whose fresh-instance counts are all
/// written (`count_sample: 1`): exact totals, whatever the random source says.
pub(super) fn exact_counts_policy() -> String {
    shared_policy("").replace(r#""lease_ms": 200"#, r#""lease_ms": 200, "count_sample": 1"#)
}

#[test]
fn counters_add_up_across_instances() {
    let policy = exact_counts_policy();
    let mut first = Harness::new(&policy, ok());
    first.get("a", "app/db").unwrap();
    let fresh = |of: &Harness| {
        let mut h = twin(of, ok());
        h.provider = Harness::new(&policy, ok()).provider;
        h
    };
    for _ in 0..3 {
        fresh(&first).get("a", "app/db").unwrap();
    }
    let mut reader = twin(&first, ok());
    let a = totals(&mut reader)[0];
    let backend_calls: u64 = shared_totals(&mut reader)[0].tiers.iter().map(|(t, _)| t.backend_calls).sum();
    assert_eq!((a.misses, a.shared_hits, backend_calls, a.hits), (4, 3, 1, 0));
    assert_eq!(totals(&mut reader)[1], stats::Counters::default(), "env b saw nothing");
    // Errors are totalled too (seen once the reader's last read of the totals is a second old).
    fresh(&first).get_req(&req("a", "app/db", Some("0"), None)).unwrap_err();
    assert_eq!(totals(&mut reader)[0].errors.invalid_request, 0, "the totals read just now are reused");
    reader.clock.time.advance(counters::TOTALS_REUSE_MS);
    assert_eq!(totals(&mut reader)[0].errors.invalid_request, 1);
}

#[test]
fn a_reused_instance_reads_the_totals_at_most_once_a_second_and_adds_its_own_counts() {
    let policy = exact_counts_policy();
    let mut first = Harness::new(&policy, ok());
    first.get("a", "app/db").unwrap();
    let mut reader = twin(&first, ok());
    reader.provider = Harness::new(&policy, ok()).provider;
    let before = reader.store.operations();
    for _ in 0..5 {
        totals(&mut reader);
    }
    assert_eq!(reader.store.ops_since(before), ["get-many"], "five reports, one read");
    // Its own reads since count at once (they are not in the store yet).
    reader.get("a", "app/db").unwrap();
    assert_eq!(totals(&mut reader)[0].misses, 2);
    reader.clock.time.advance(counters::TOTALS_REUSE_MS);
    let before = reader.store.operations();
    totals(&mut reader);
    assert_eq!(reader.store.ops_since(before), ["get-many"], "a second later: read again");
}

#[test]
fn memory_hits_reach_the_totals_within_a_second() {
    let mut h = instance(ok());
    h.get("a", "app/db").unwrap(); // a miss: flushed at once
    for _ in 0..5 {
        h.get("a", "app/db").unwrap();
    }
    let mut other = twin(&h, ok());
    assert_eq!(totals(&mut other)[0].hits, 0, "hits wait up to a second before they are added");
    h.clock.time.advance(super::super::shared::counters::FLUSH_INTERVAL_MS);
    h.get("a", "app/db").unwrap();
    assert_eq!(totals(&mut other)[0].hits, 6);
    assert_eq!(totals(&mut h)[0].hits, 6, "its own stats flush what is pending and do not count it twice");
}

#[test]
fn sampled_counts_add_up_to_the_sample_size_times_the_sampled_calls() {
    let mut first = instance(ok());
    first.get("a", "app/db").unwrap(); // a miss: its counts are written exactly
    // Ten fresh instances hit shared state; the random source decides which add their counts:
    // 0 is a multiple of the sample size (16), 5 is not.
    let draws = [0u64, 5, 5, 0, 5, 5, 5, 0, 5, 5];
    let mut sampled = 0;
    for draw in draws {
        let mut h = fresh(&first, &shared_policy(""), draw);
        let writes = h.store.writes();
        assert_eq!(h.get("a", "app/db").unwrap().source, Source::Cache);
        if draw == 0 {
            sampled += 1;
            assert_eq!(h.store.writes(), writes + 1, "a sampled call merges its counts into one shard");
        } else {
            assert_eq!(h.store.writes(), writes, "an unsampled shared hit writes nothing");
        }
    }
    let mut reader = twin(&first, ok());
    let a = stats_totals(&mut reader)[0].counters;
    assert_eq!(sampled, 3);
    assert_eq!(a.shared_hits, 16 * sampled, "each sampled call stands for 16");
    assert_eq!(a.misses, 1 + 16 * sampled, "the exact miss, plus the sampled shared hits'");
    assert_eq!(a.hits, 0);
}

#[test]
fn with_count_sample_one_every_fresh_call_adds_its_counts() {
    let policy = exact_counts_policy();
    let mut first = Harness::new(&policy, ok());
    first.get("a", "app/db").unwrap();
    for _ in 0..5 {
        let mut h = fresh(&first, &policy, 5);
        h.get("a", "app/db").unwrap();
        h.get("a", "app/db").unwrap(); // a memory hit in the same instance: counted later, not lost here
    }
    let a = stats_totals(&mut twin(&first, ok()))[0].counters;
    assert_eq!((a.misses, a.shared_hits), (6, 5));
}

#[test]
fn concurrent_flushes_that_collide_move_to_another_shard_and_lose_nothing() {
    let policy = exact_counts_policy();
    let mut first = Harness::new(&policy, ok());
    first.get("a", "app/db").unwrap();
    // Every instance picks the same shard first (a fixed random source): they still add up.
    for draw in [0u64, 0, 1, 2, 3] {
        fresh(&first, &policy, draw).get("a", "app/db").unwrap();
    }
    let a = stats_totals(&mut twin(&first, ok()))[0].counters;
    assert_eq!((a.misses, a.shared_hits), (6, 5));
    let shards = first.store.dump().keys().filter(|k| k.starts_with("es1-count-")).count();
    assert!((1..=4).contains(&shards), "{shards} count records for one environment");
}

#[test]
fn a_forged_count_shard_is_rejected_and_replaced() {
    let policy = exact_counts_policy();
    let mut first = Harness::new(&policy, ok());
    first.get("a", "app/db").unwrap();
    for (key, mut value) in first.store.dump() {
        if key.starts_with("es1-count-") {
            let last = value.len() - 1;
            value[last] ^= 1;
            first.store.poke(&key, value);
        }
    }
    let mut reader = twin(&first, ok());
    let a = stats_totals(&mut reader)[0].counters;
    assert_eq!((a.misses, a.shared_rejected), (0, 1), "a forged shard counts for nothing");
    fresh(&first, &policy, 3).get("a", "app/db").unwrap(); // writes to shard 3, the forged one
    let a = stats_totals(&mut twin(&first, ok()))[0].counters;
    assert_eq!(a.shared_hits, 1, "replaced by a valid record");
}

#[test]
fn environments_added_out_of_name_order_keep_their_own_counts_and_report_by_name() {
    let policy = exact_counts_policy();
    let mut first = Harness::new(&policy, Box::new(both_backends_ok));
    for _ in 0..2 {
        first.get("b", "db").unwrap();
    }
    first.get("a", "app/db").unwrap();
    // The component adds environments as calls name them: here `b`, then `a`.
    let mut lazy = twin(&first, Box::new(both_backends_ok));
    let (environments, shared) = config::load_all(&source_of(&policy)).unwrap();
    lazy.provider = Provider::with_shared(Vec::new(), shared);
    for env in environments.into_iter().rev() {
        lazy.provider.add_environment(env);
    }
    assert_eq!(lazy.get("b", "db").unwrap().source, Source::Cache, "b's shared entry, under b's identity");
    // A memory hit: counted here, still owed to the shared totals when they are read.
    assert_eq!(lazy.get("b", "db").unwrap().source, Source::Cache);
    let now = lazy.now();
    let names: Vec<String> = lazy.provider.stats(now).into_iter().map(|s| s.environment).collect();
    assert_eq!(names, ["a", "b"]);
    let [a, b] = totals(&mut lazy).try_into().expect("two environments");
    assert_eq!((a.misses, a.hits), (1, 0), "a's totals in a's place");
    assert_eq!((b.misses, b.hits, b.shared_hits), (2, 2, 1), "b's totals: the first instance's, this one's shared hit and owed memory hit");
}
