//! A store writer puts back records it captured earlier (issue 12: a replayed
//! `latest` served version 1 after rotation to 2; an old epoch undid an
//! invalidation). What holds: an instance that has seen the newer epoch or
//! entry refuses the older one, counts it in `shared_rejected` and replaces
//! it; a fresh instance cannot tell, so the bound there is the replayed
//! record's own TTL (docs/security.md).

use super::shared::{shared_policy, twin};
use super::*;
use core::cell::Cell;

/// Answers version 1, 2, 3, ... one per request.
fn versions(count: Rc<Cell<u64>>) -> Handler {
    Box::new(move |_| {
        count.set(count.get() + 1);
        vault_ok(count.get(), "v")
    })
}

fn entries(h: &Harness) -> Vec<(String, Vec<u8>)> {
    h.store.dump().into_iter().filter(|(k, _)| k.starts_with("es1-entry-") || k.starts_with("es1-epoch-")).collect()
}

#[test]
fn a_reused_instance_refuses_a_rolled_back_epoch_and_writes_the_newer_one_back() {
    let count = Rc::new(Cell::new(0));
    let mut first = Harness::new(&shared_policy(""), versions(count.clone()));
    first.invalidate("a", None).unwrap();
    assert_eq!(first.get("a", "db").unwrap().version, "1");
    let captured = entries(&first);
    first.clock.time.advance(1_000);
    first.invalidate("a", None).unwrap();
    assert_eq!(first.get("a", "db").unwrap().version, "2", "invalidated: fetched again");
    // The writer puts the old epoch and the old entry back (both sealed, both authentic).
    for (key, value) in &captured {
        first.store.poke(key, value.clone());
    }
    let mut fresh = twin(&first, versions(Rc::new(Cell::new(10))));
    assert_eq!(fresh.get("a", "db").unwrap().version, "1", "a fresh instance cannot tell: the bound is the entry's TTL");
    // The instance that saw the newer epoch notices on its next read of the store.
    let rejected = first.stats("a").counters.shared_rejected;
    assert!(first.get("a", "other").is_ok());
    assert_eq!(first.stats("a").counters.shared_rejected, rejected + 1);
    let mut after = twin(&first, versions(Rc::new(Cell::new(20))));
    assert_eq!(after.get("a", "db").unwrap().version, "21", "the newer epoch is back: the replayed entry is invalid again");
}

#[test]
fn a_reused_instance_refuses_an_entry_older_than_one_it_saw() {
    let count = Rc::new(Cell::new(0));
    let mut first = Harness::new(&shared_policy(""), versions(count.clone()));
    assert_eq!(first.get("a", "db").unwrap().version, "1");
    let captured = entries(&first);
    first.clock.time.advance(6_000);
    let refreshed = first.get_req(&SecretRequest { refresh: true, ..req("a", "db", None, None) }).unwrap();
    assert_eq!(refreshed.version, "2");
    // Remembers one entry in memory: reading `other` pushes `db` out, so `db` is read again.
    let small = shared_policy(r#", "cache": {"max_entries": 1}"#);
    let mut second = twin(&first, versions(Rc::new(Cell::new(10))));
    second.provider = Harness::new(&small, Box::new(|_| vault_ok(1, "v"))).provider;
    assert_eq!(second.get("a", "db").unwrap().version, "2", "from the shared cache");
    assert!(second.get("a", "other").is_ok());
    for (key, value) in &captured {
        first.store.poke(key, value.clone());
    }
    let rejected = second.stats("a").counters.shared_rejected;
    let again = second.get("a", "db").unwrap();
    assert_eq!(again.version, "12", "the replayed version 1 is refused; the backend is asked");
    assert!(second.stats("a").counters.shared_rejected > rejected, "and counted");
}
