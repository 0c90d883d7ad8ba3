//! The component's cache, seen from outside: hits send nothing, TTLs expire, invalidation works.
//! Time moves through the host's manual clock, never by sleeping.

use std::time::Duration;

use edge_secrets_host::{Request, Source};
use edge_secrets_tests::Harness;

#[test]
fn a_cache_hit_sends_no_request() {
    let mut h = Harness::vault();
    assert_eq!(h.get("prod", "app/db").unwrap().source, Source::Backend);
    h.backend.reset_counts();
    for _ in 0..50 {
        let hit = h.get("prod", "app/db").unwrap();
        assert_eq!((hit.value.expose(), hit.source), (&b"pw-one"[..], Source::Cache));
    }
    assert_eq!(h.backend.request_count(), 0);
    let stats = h.client.stats().unwrap();
    assert_eq!((stats[0].hits, stats[0].misses, stats[0].backend_calls), (50, 1, 1));
}

#[test]
fn ttl_expiry_refetches_and_sees_the_new_version() {
    let mut h = Harness::start(|p, url| p.vault("prod", url, "t").set("prod", "cache.ttl_ms", 60_000));
    h.backend.put_vault("app/db", 1, &[("value", "old")]);
    assert_eq!(h.get("prod", "app/db").unwrap().value.expose(), b"old");
    h.backend.put_vault("app/db", 2, &[("value", "new")]);

    h.clock.advance(Duration::from_millis(59_000));
    let cached = h.get("prod", "app/db").unwrap();
    assert_eq!((cached.value.expose(), cached.source), (&b"old"[..], Source::Cache));

    h.clock.advance(Duration::from_millis(1_000));
    let fresh = h.get("prod", "app/db").unwrap();
    assert_eq!((fresh.value.expose(), fresh.version.as_str(), fresh.source), (&b"new"[..], "2", Source::Backend));
    assert_eq!(h.backend.request_count(), 2);
}

#[test]
fn invalidate_forces_a_refetch_of_that_secret_only() {
    let mut h = Harness::vault();
    h.backend.put_vault("other", 1, &[("value", "o")]);
    h.get("prod", "app/db").unwrap();
    h.get("prod", "other").unwrap();
    assert!(h.client.invalidate("prod", Some("app/db")).unwrap() >= 1);
    assert_eq!(h.get("prod", "app/db").unwrap().source, Source::Backend);
    assert_eq!(h.get("prod", "other").unwrap().source, Source::Cache);
    assert!(h.client.invalidate("prod", None).unwrap() >= 2);
    assert_eq!(h.get("prod", "other").unwrap().source, Source::Backend);
    assert!(h.client.invalidate("nope", None).is_err());
}

#[test]
fn environments_never_share_cache_entries() {
    let mut h = Harness::start(|p, url| p.vault("a", url, "t").vault("b", url, "t").set("b", "mount", "other"));
    h.backend.put_vault("s", 1, &[("value", "from-a")]);
    h.backend.put_vault_in("other", "s", 1, &[("value", "from-b")]);
    assert_eq!(h.get("a", "s").unwrap().value.expose(), b"from-a");
    let b = h.get("b", "s").unwrap();
    assert_eq!((b.value.expose(), b.source), (&b"from-b"[..], Source::Backend));
}

#[test]
fn pinned_versions_outlive_the_latest_ttl() {
    let mut h = Harness::start(|p, url| {
        p.vault("prod", url, "t").set("prod", "cache.ttl_ms", 1_000).set("prod", "cache.pinned_ttl_ms", 100_000)
    });
    h.backend.put_vault("app", 3, &[("value", "v3")]);
    h.client.get(&Request::new("prod", "app").version("3")).unwrap();
    h.get("prod", "app").unwrap();
    h.clock.advance(Duration::from_secs(50));
    h.backend.reset_counts();
    assert_eq!(h.client.get(&Request::new("prod", "app").version("3")).unwrap().source, Source::Cache);
    assert_eq!(h.get("prod", "app").unwrap().source, Source::Backend);
    assert_eq!(h.backend.request_count(), 1);
}
