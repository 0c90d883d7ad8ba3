//! Tiers and refreshes at the edges, natively: records from a configuration
//! with other tiers, a fallback's not-found during a primary outage, refresh
//! loops against a failing or empty backend, a refused credential, and shared
//! breaker records from a clock that runs ahead. (First written as failing
//! probes in a review of this code.)

use super::shared::twin;
use super::*;
use core::cell::Cell;

fn fb_policy(fallbacks: &str, extra: &str, shared: bool) -> String {
    let shared = if shared { r#""shared": {"key_key": "state_key", "lease_ms": 200},"# } else { "" };
    format!(
        r#"{{"defaults": {{"retry": {{"attempts": 1, "base_delay_ms": 100, "max_delay_ms": 400}},
              "timeouts": {{"attempt_ms": 500, "deadline_ms": 2000}},
              "cache": {{"ttl_ms": 1000, "max_stale_ms": 100000}} {extra} }},
            {shared}
            "environments": {{
              "a": {{"backend": "vault", "url": "http://vault-a:8200", "token_key": "tok_a" {fallbacks} }}
            }}}}"#
    )
}
const FB: &str = r#", "fallbacks": [ {"backend": "vault", "url": "http://vault-m:8200", "token_key": "tok_b"} ]"#;

#[test]
fn a_shared_value_from_a_tier_this_configuration_lacks_is_not_served() {
    // Instance with a fallback: primary 503, mirror answers -> published with tier 1.
    let mut old = Harness::new(&fb_policy(FB, "", true), Box::new(|o| if o.request.authority == "vault-m:8200" { vault_ok(1, "m") } else { status(503) }));
    let s = old.get("a", "db").unwrap();
    assert_eq!(s.tier, 1);
    // Same deployment, fallback removed from the config; past the TTL; primary 503.
    let mut new = twin(&old, Box::new(|_| status(503)));
    new.provider = Harness::new(&fb_policy("", "", true), Box::new(|_| status(503))).provider;
    new.clock.time.advance(2_000);
    // It used to panic (an out-of-range tier in a log event); now the record is not served.
    assert!(matches!(new.get("a", "db"), Err(Error::Backend { status: Some(503), .. })));
}

#[test]
fn refresh_of_a_missing_secret_asks_the_backend_once_per_interval() {
    let n = Rc::new(Cell::new(0));
    let c = n.clone();
    let mut h = Harness::new(&fb_policy("", "", false), Box::new(move |_| { c.set(c.get() + 1); status(404) }));
    for _ in 0..5 {
        let r = h.get_req(&SecretRequest { refresh: true, ..req("a", "gone", None, None) });
        assert!(matches!(r, Err(Error::NotFound(_))));
    }
    assert_eq!(n.get(), 1, "doc: a caller looping on refresh makes at most one backend read per interval");
}

#[test]
fn refresh_while_the_backend_fails_asks_it_once_per_interval() {
    let up = Rc::new(Cell::new(true));
    let n = Rc::new(Cell::new(0));
    let (u, c) = (up.clone(), n.clone());
    // The value stays fresh (TTL 10 s): the refresh loop must not turn every read into a
    // backend request while the backend fails. (Past its TTL a read goes to the backend
    // anyway, refresh or not; the breaker and the retry budget bound that.)
    let extra = r#", "breaker": {"failure_threshold": 100}, "cache": {"ttl_ms": 10000, "max_stale_ms": 100000}"#;
    let mut h = Harness::new(&fb_policy("", extra, false), Box::new(move |_| { c.set(c.get() + 1); if u.get() { vault_ok(1, "v") } else { status(503) } }));
    h.get("a", "db").unwrap();
    h.clock.time.advance(1_500);
    up.set(false);
    for _ in 0..5 {
        let r = h.get_req(&SecretRequest { refresh: true, ..req("a", "db", None, None) });
        assert!(r.is_ok());
    }
    assert_eq!(n.get(), 2, "at most one backend read per interval");
}

#[test]
fn a_permission_denied_on_refresh_ahead_drops_the_cached_value() {
    let deny = Rc::new(Cell::new(false));
    let d = deny.clone();
    let mut h = Harness::new(&fb_policy("", r#", "cache": {"ttl_ms": 10000, "refresh_ahead_percent": 50, "refresh_interval_ms": 1000}"#, false),
        Box::new(move |_| if d.get() { status(403) } else { vault_ok(1, "v") }));
    h.get("a", "db").unwrap();
    h.clock.time.advance(6_000);
    deny.set(true);
    let first = h.get("a", "db");
    let second = h.get("a", "db");
    // The credential was refused for this secret: the value is not served again.
    assert!(matches!(first, Err(Error::PermissionDenied(_))), "{first:?}");
    assert!(matches!(second, Err(Error::PermissionDenied(_))), "{second:?}");
}

#[test]
fn a_fallbacks_not_found_during_a_primary_outage_leaves_the_stale_value_and_is_not_remembered() {
    let primary_up = Rc::new(Cell::new(true));
    let p = primary_up.clone();
    let mut h = Harness::new(&fb_policy(FB, "", false), Box::new(move |o| {
        if o.request.authority == "vault-m:8200" { status(404) } else if p.get() { vault_ok(1, "v") } else { status(503) }
    }));
    h.get("a", "db").unwrap();
    h.clock.time.advance(1_500);
    primary_up.set(false);
    let during = h.get("a", "db");
    primary_up.set(true);
    let after = h.get("a", "db");
    assert!(during.as_ref().is_ok_and(|s| s.stale), "during={during:?}");
    assert!(after.as_ref().is_ok_and(|s| !s.stale && s.source == Source::Backend), "after={after:?}");
}

#[test]
fn a_breaker_record_from_a_clock_far_ahead_is_bounded_by_this_instances_open_period() {
    // Instance A's wall clock is an hour ahead; it sees 3 failures and opens the shared breaker.
    let mut a = super::shared::instance(Box::new(|_| status(503)));
    let mut b = twin(&a, Box::new(|_| vault_ok(1, "v")));
    let ahead = Time::default();
    ahead.advance(b.now() + 3_600_000);
    a.clock.time = ahead.clone();
    a.transport.time = ahead.clone();
    for _ in 0..3 {
        let _ = a.get("a", "db");
    }
    // B, with a correct clock, 10 s later: the record says open for another hour, but B
    // bounds it to its own open period (5 s) from now, and writes the bound back.
    b.clock.time.advance(10_000);
    match b.get("a", "db") {
        Err(Error::Unavailable { retry_after_ms }) => assert!(retry_after_ms <= 5_000, "{retry_after_ms}"),
        other => panic!("{other:?}"),
    }
    b.clock.time.advance(5_000);
    let r = b.get("a", "db");
    assert!(r.is_ok(), "{r:?}; health={:?}", b.provider.health(b.now()));
    let mut c = twin(&b, Box::new(|_| vault_ok(1, "v")));
    assert!(c.get_req(&req("a", "other", None, None)).is_ok(), "and the breaker is closed for every instance");
}
