//! The retry budget on the read path: retries stop when it is spent, come
//! back as calls deposit, and instances sharing a store share one budget.

use super::*;
use crate::shared::SharedStatus;

/// Retries up to 3 attempts, a budget of half a retry per call and no floor,
/// and a breaker that stays out of the way. No caching: every read is a call.
fn budget_policy() -> String {
    policy(
        r#", "retry": {"attempts": 3, "base_delay_ms": 100, "max_delay_ms": 400,
                      "budget": {"ratio_percent": 50, "min_per_sec": 0, "window_ms": 10000}},
            "breaker": {"failure_threshold": 1000},
            "cache": {"ttl_ms": 0, "pinned_ttl_ms": 0}"#,
    )
}

/// A backend that fails with 503 while `failing` is set.
fn switchable(failing: &Rc<Cell<bool>>) -> Handler {
    let failing = failing.clone();
    Box::new(move |_| if failing.get() { status(503) } else { vault_ok(1, "v") })
}

/// Requests one read sent.
fn sent_by(h: &mut Harness, name: &str) -> (Result<Secret, Error>, usize) {
    let before = h.sent();
    let result = h.get("a", name);
    (result, h.sent() - before)
}

#[test]
fn retries_stop_when_the_budget_is_spent_and_resume_as_calls_deposit() {
    let failing = Rc::new(Cell::new(true));
    let mut h = Harness::new(&budget_policy(), switchable(&failing));
    h.random = FixedRandom(0);
    // One call: half a retry. The fetch fails after its first attempt, with that attempt's error.
    let (result, sent) = sent_by(&mut h, "x");
    assert_eq!(result.unwrap_err(), Error::backend(Some(503), "boom"));
    assert_eq!(sent, 1);
    assert!(h.clock.slept.is_empty(), "a spent budget fails at once, without sleeping a backoff");
    assert_eq!((h.stats("a").counters.budget_exhausted, h.stats("a").retries()), (1, 0));
    // Four good reads deposit: 5 calls so far, 6 with the next one = 3 retries.
    failing.set(false);
    for i in 0..4 {
        h.get("a", &format!("ok{i}")).unwrap();
    }
    failing.set(true);
    let (_, sent) = sent_by(&mut h, "x");
    assert_eq!(sent, 3, "the budget allows both retries again");
    // 7 calls = 3.5 retries, 2 taken: one more, then it is spent again.
    let (_, sent) = sent_by(&mut h, "x");
    assert_eq!(sent, 2);
    let stats = h.stats("a");
    assert_eq!((stats.retries(), stats.counters.budget_exhausted), (3, 2));
}

#[test]
fn deposits_and_retries_slide_out_with_the_window() {
    let failing = Rc::new(Cell::new(false));
    let mut h = Harness::new(&budget_policy(), switchable(&failing));
    h.random = FixedRandom(0);
    for i in 0..6 {
        h.get("a", &format!("ok{i}")).unwrap();
    }
    h.clock.time.advance(10_000);
    failing.set(true);
    let (_, sent) = sent_by(&mut h, "x");
    assert_eq!(sent, 1, "the six deposits are more than a window old");
}

#[test]
fn the_floor_allows_retries_without_traffic() {
    let policy = budget_policy().replace(r#""min_per_sec": 0"#, r#""min_per_sec": 1"#);
    let mut h = Harness::new(&policy, Box::new(|_| status(503)));
    h.random = FixedRandom(0);
    // 10 retries from the floor (1/s over 10 s) plus half a retry per call.
    let sent: Vec<usize> = (0..6).map(|_| sent_by(&mut h, "x").1).collect();
    assert_eq!(sent, [3, 3, 3, 3, 3, 3], "12 retries: 10 from the floor, 3 from 6 calls");
    assert_eq!(sent_by(&mut h, "x").1, 2, "7 calls: 13.5 allowed, 12 taken");
}

fn shared_budget_policy() -> String {
    budget_policy().replacen(r#""environments""#, r#""shared": {"key_key": "state_key", "lease_ms": 200}, "environments""#, 1)
}

/// Another instance over `of`'s store and time.
fn instance_of(of: &Harness, handler: Handler) -> Harness {
    let mut h = super::shared::twin_with(of, &shared_budget_policy(), handler);
    h.random = FixedRandom(0);
    h
}

#[test]
fn instances_sharing_a_store_share_the_budget() {
    let mut first = Harness::new(&shared_budget_policy(), Box::new(|_| vault_ok(1, "v")));
    for i in 0..4 {
        first.get("a", &format!("ok{i}")).unwrap();
    }
    // A fresh instance has seen one call of its own, but the budget holds all five.
    let mut second = instance_of(&first, Box::new(|_| status(503)));
    assert_eq!(sent_by(&mut second, "x").1, 3, "2.5 retries allowed by the five calls of both");
    // Its retries are spent for everyone: 6 calls = 3 retries, 2 taken.
    let mut third = instance_of(&first, Box::new(|_| status(503)));
    assert_eq!(sent_by(&mut third, "y").1, 2);
    assert_eq!(third.stats("a").counters.budget_exhausted, 1);
    assert!(first.store.dump().keys().any(|k| k.starts_with("es1-budget-")));
}

#[test]
fn a_failing_store_falls_back_to_the_instances_own_ledger() {
    let failing = Rc::new(Cell::new(false));
    let mut h = Harness::new(&shared_budget_policy(), switchable(&failing));
    h.random = FixedRandom(0);
    for i in 0..4 {
        h.get("a", &format!("ok{i}")).unwrap();
    }
    h.store.set_failing(Some("redis: connection reset"));
    failing.set(true);
    let (result, sent) = sent_by(&mut h, "x");
    assert!(matches!(result, Err(Error::Backend { status: Some(503), .. })));
    assert_eq!(sent, 3, "the ledger mirrored the five calls while the store worked");
    assert_eq!(h.provider.shared_status().0, SharedStatus::Degraded);
}

#[test]
fn slots_that_slid_out_are_deleted_from_the_store() {
    // Every other request fails once, so retries (and the reads they make) create counters too.
    let calls = Rc::new(Cell::new(0));
    let counted = calls.clone();
    let policy = shared_budget_policy().replace(r#""min_per_sec": 0"#, r#""min_per_sec": 10"#);
    let mut h = Harness::new(&policy, Box::new(move |_| {
        counted.set(counted.get() + 1);
        if counted.get() % 2 == 1 { status(503) } else { vault_ok(1, "v") }
    }));
    h.transport.latency_ms = 100;
    let budget_keys = |h: &Harness| h.store.dump().keys().filter(|k| k.starts_with("es1-budget-")).count();
    // A read every 3 s (slots are 1 s) for a minute, each 50 ms before its slot ends: its
    // first attempt fails 100 ms later, so its retry is taken in the next slot, which sees
    // no first attempt. A window's slots (calls and
    // retries) and the sweep marker stay in the store, no more.
    for i in 0..20 {
        let now = h.now();
        h.clock.time.advance((i + 2) * 3_000 + 950 - now);
        h.get("a", &format!("s{i}")).unwrap();
    }
    assert!(budget_keys(&h) <= 2 * 10 + 1, "{} budget keys left", budget_keys(&h));
    assert_eq!(h.stats("a").retries(), 20);
    // After a quiet spell longer than the window, the next slot sweeps what is left.
    h.clock.time.advance(60_000);
    calls.set(1); // the next request succeeds
    h.get("a", "late").unwrap();
    assert_eq!(budget_keys(&h), 2, "the new slot's calls and the marker");
}
