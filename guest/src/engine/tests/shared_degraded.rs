//! Degraded-backend behaviours across "instances" sharing one store: a
//! refresh made by one instance satisfies the others, not-founds and stale
//! values are shared, and `refresh` is rate-limited across instances.

use super::shared::{ok, shared_policy, twin};
use super::*;
use core::cell::Cell;

/// Answers with version 1, 2, 3, ... one per request, counting them in `count`.
fn versions(count: Rc<Cell<u64>>) -> Handler {
    Box::new(move |_| {
        count.set(count.get() + 1);
        vault_ok(count.get(), "v")
    })
}

fn with_policy(extra: &str, handler: Handler) -> Harness {
    Harness::new(&shared_policy(extra), handler)
}

#[test]
fn one_instances_refresh_ahead_satisfies_the_others() {
    let count = Rc::new(Cell::new(0));
    let extra = r#", "cache": {"ttl_ms": 10000, "refresh_ahead_percent": 50, "refresh_interval_ms": 1000}"#;
    let mut first = with_policy(extra, versions(count.clone()));
    let mut second = twin(&first, versions(count.clone()));
    second.provider = with_policy(extra, ok()).provider;
    first.get("a", "db").unwrap();
    assert_eq!(second.get("a", "db").unwrap().source, Source::Cache, "from the shared cache");
    first.clock.time.advance(6_000);
    assert_eq!(first.get("a", "db").unwrap().version, "2", "due: the first hit refreshes");
    let second_view = second.get("a", "db").unwrap();
    assert_eq!((second_view.version.as_str(), second_view.source), ("2", Source::Cache), "the other instance adopts it");
    assert_eq!(count.get(), 2, "one backend read per refresh, whichever instance sees it due");
}

#[test]
fn a_not_found_for_a_secret_the_store_held_is_shared_for_the_negative_ttl() {
    let deleted = Rc::new(Cell::new(false));
    let gone = deleted.clone();
    let mut first = with_policy("", Box::new(move |_| if gone.get() { status(404) } else { vault_ok(1, "v") }));
    first.get("a", "db").unwrap();
    // Deleted in the backend; once the entry expires (default TTL 300 s) the refetch says so.
    deleted.set(true);
    first.clock.time.advance(301_000);
    assert!(matches!(first.get("a", "db"), Err(Error::NotFound(_))));
    let mut second = twin(&first, Box::new(|_| vault_ok(1, "v")));
    assert!(matches!(second.get("a", "db"), Err(Error::NotFound(_))), "another instance's not-found answers");
    assert_eq!(second.sent(), 0);
    assert_eq!(second.stats("a").counters.negative_hits, 1);
    second.clock.time.advance(5_000);
    assert!(second.get("a", "db").is_ok(), "after the negative TTL (default 5 s) the backend is asked again");
}

#[test]
fn names_the_store_never_held_leave_no_record_behind() {
    let mut first = with_policy("", Box::new(|_| status(404)));
    let by_name = |h: &Harness| h.store.dump().keys().filter(|k| k.starts_with("es1-entry-") || k.starts_with("es1-lease-")).count();
    for i in 0..5 {
        assert!(matches!(first.get("a", &format!("random-{i}")), Err(Error::NotFound(_))));
    }
    let keys_after_five = first.store.dump().len();
    for i in 5..50 {
        assert!(matches!(first.get("a", &format!("random-{i}")), Err(Error::NotFound(_))));
    }
    assert_eq!(by_name(&first), 0, "no not-found entries, no leases left behind");
    assert_eq!(first.store.dump().len(), keys_after_five, "counts and budgets are per environment, not per name");
    let mut second = twin(&first, Box::new(|_| status(404)));
    assert!(matches!(second.get("a", "random-0"), Err(Error::NotFound(_))));
    assert_eq!(second.sent(), 1, "not shared: the other instance asks the backend itself");
}

#[test]
fn a_fresh_instance_answers_a_failed_read_with_the_shared_stale_value() {
    let extra = r#", "cache": {"ttl_ms": 1000, "max_stale_ms": 10000}"#;
    let mut first = with_policy(extra, ok());
    first.get("a", "app/db").unwrap();
    first.clock.time.advance(3_000);
    let mut fresh = twin(&first, Box::new(|_| status(503)));
    fresh.provider = with_policy(extra, ok()).provider;
    let stale = fresh.get("a", "app/db").unwrap();
    assert_eq!((stale.value.expose(), stale.stale), (&b"s3cr3t-value"[..], true));
    assert_eq!(fresh.stats("a").counters.stale_served, 1);
    fresh.clock.time.advance(10_000);
    assert!(matches!(fresh.get("a", "app/db"), Err(Error::Backend { .. })), "past max_stale");
}

#[test]
fn refresh_is_rate_limited_across_instances() {
    let count = Rc::new(Cell::new(0));
    let mut first = with_policy(r#", "cache": {"refresh_interval_ms": 1000}"#, versions(count.clone()));
    first.get("a", "db").unwrap();
    for _ in 0..5 {
        let mut other = twin(&first, versions(count.clone()));
        other.provider = with_policy(r#", "cache": {"refresh_interval_ms": 1000}"#, ok()).provider;
        let r = other.get_req(&SecretRequest { refresh: true, ..req("a", "db", None, None) }).unwrap();
        assert_eq!(r.version, "1", "fetched within the interval by another instance");
    }
    assert_eq!(count.get(), 1);
    first.clock.time.advance(2_000);
    let mut late = twin(&first, versions(count.clone()));
    late.provider = with_policy(r#", "cache": {"refresh_interval_ms": 1000}"#, ok()).provider;
    assert_eq!(late.get_req(&SecretRequest { refresh: true, ..req("a", "db", None, None) }).unwrap().version, "2");
}
