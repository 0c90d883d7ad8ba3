//! The read path: cache, validation, isolation, get-many, invalidation.

use super::*;

#[test]
fn cache_hit_sends_nothing_and_ttl_expiry_refetches() {
    let mut h = Harness::new(&policy(""), Box::new(|_| vault_ok(3, "v1")));
    let first = h.get("a", "app/db").unwrap();
    assert_eq!((first.value.expose(), first.version.as_str(), first.source), (&b"v1"[..], "3", Source::Backend));
    let second = h.get("a", "app/db").unwrap();
    assert_eq!((second.value.expose(), second.source), (&b"v1"[..], Source::Cache));
    assert_eq!(h.sent(), 1);
    h.clock.time.advance(10_000);
    assert_eq!(h.get("a", "app/db").unwrap().source, Source::Backend);
    assert_eq!(h.sent(), 2);
    let s = h.stats("a");
    assert_eq!((s.counters.hits, s.counters.misses, s.backend_calls()), (1, 2, 2));
}

#[test]
fn latest_read_also_serves_its_pinned_version_and_pinned_lives_longer() {
    let mut h = Harness::new(&policy(""), Box::new(|_| vault_ok(3, "v")));
    h.get("a", "app/db").unwrap();
    h.clock.time.advance(20_000); // past ttl_ms, within pinned_ttl_ms
    let pinned = h.get_req(&req("a", "app/db", Some("3"), None)).unwrap();
    assert_eq!(pinned.source, Source::Cache);
    assert_eq!(h.sent(), 1);
}

#[test]
fn invalid_requests_send_nothing() {
    let mut h = Harness::new(&policy(""), Box::new(|_| vault_ok(1, "v")));
    for r in [
        req("a", "../sys/raw", None, None),
        req("a", "app/db?x=1", None, None),
        req("a", "app/db", Some("0"), None),
        req("a", "app/db", None, Some("")),
        req("b", "bad/name", None, None),
        req("b", "db", None, Some("user")),
    ] {
        assert!(matches!(h.get_req(&r), Err(Error::InvalidRequest(_))), "{r:?}");
    }
    assert!(matches!(h.get("nope", "app/db"), Err(Error::UnknownEnvironment(_))));
    assert_eq!(h.sent(), 0);
    assert_eq!(h.stats("a").counters.errors.invalid_request, 4);
    assert_eq!(h.provider.unknown_environment_errors(), 1);
}

#[test]
fn each_environment_sends_only_its_own_token_to_its_own_backend() {
    let mut h = Harness::new(&policy(""), Box::new(both_backends_ok));
    h.get("a", "db").unwrap();
    h.get("b", "db").unwrap();
    let a = &h.transport.sent[0].request;
    let b = &h.transport.sent[1].request;
    assert_eq!(a.authority, "vault-a:8200");
    // Besides its credential, each request carries only its trace context.
    let credentials = |headers: &[(String, Vec<u8>)]| headers.iter().filter(|(n, _)| n != "traceparent").cloned().collect::<Vec<_>>();
    assert_eq!(credentials(&a.headers), vec![("x-vault-token".to_string(), b"token-a".to_vec())]);
    assert_eq!(b.authority, "gcp-b");
    assert_eq!(credentials(&b.headers), vec![("authorization".to_string(), b"Bearer token-b".to_vec())]);
}

#[test]
fn get_many_fetches_misses_in_one_parallel_batch_and_shares_identical_reads() {
    let mut h = Harness::new(&policy(""), Box::new(both_backends_ok));
    h.get("a", "cached").unwrap();
    let results = h.get_many(&[
        req("a", "one", None, None),
        req("a", "one", None, Some("user")),
        req("b", "db", None, None),
        req("a", "cached", None, None),
        req("a", "bad//name", None, None),
        req("zzz", "x", None, None),
    ]);
    assert_eq!(h.transport.batch_sizes, vec![1, 2], "one batch for both backends, shared read for `one`");
    assert_eq!(results[0].as_ref().unwrap().value.expose(), b"v");
    assert_eq!(results[1].as_ref().unwrap().value.expose(), b"admin");
    assert_eq!(results[2].as_ref().unwrap().value.expose(), b"hello");
    assert_eq!(results[3].as_ref().unwrap().source, Source::Cache);
    assert!(matches!(results[4], Err(Error::InvalidRequest(_))));
    assert!(matches!(results[5], Err(Error::UnknownEnvironment(_))));
}

#[test]
fn missing_field_is_not_found() {
    let mut h = Harness::new(&policy(""), Box::new(|_| vault_ok(1, "v")));
    assert!(matches!(h.get_req(&req("a", "x", None, Some("nope"))), Err(Error::NotFound(_))));
}

#[test]
fn invalidate_drops_entries_of_one_environment() {
    let mut h = Harness::new(&policy(""), Box::new(|_| vault_ok(1, "v")));
    h.get("a", "x").unwrap();
    h.get("a", "y").unwrap();
    assert_eq!(h.invalidate("a", Some("x")).unwrap(), 2, "latest + pinned entry");
    assert_eq!(h.invalidate("b", None).unwrap(), 0);
    assert_eq!(h.get("a", "x").unwrap().source, Source::Backend);
    assert_eq!(h.get("a", "y").unwrap().source, Source::Cache);
    assert!(matches!(h.invalidate("nope", None), Err(Error::UnknownEnvironment(_))));
}


#[test]
fn a_version_of_another_backends_kind_is_refused_and_sends_nothing() {
    let mut h = Harness::new(&policy(""), Box::new(|_| vault_ok(1, "v")));
    for version in ["AWSCURRENT", "stage:blue", "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111"] {
        let err = h.get_req(&req("a", "app/db", Some(version), None)).unwrap_err();
        assert!(matches!(err, Error::InvalidRequest(_)), "{version}: {err:?}");
    }
    assert_eq!((h.sent(), h.stats("a").counters.misses), (0, 0));
}
