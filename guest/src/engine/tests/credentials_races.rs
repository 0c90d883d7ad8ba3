//! Logins racing reads: reads in flight when a token is revoked or a login is
//! refused, a 403 to a fresh token, answers waiting while a login is made.

use super::*;

#[test]
fn a_login_for_one_read_does_not_make_another_reads_answer_slow() {
    // `s` reads with a static token in 1 ms; `b` must first fetch a metadata token (400 ms).
    let policy = r#"{"defaults": {"retry": {"attempts": 1}, "timeouts": {"attempt_ms": 1000, "deadline_ms": 2000},
            "breaker": {"failure_threshold": 1, "slow_call_ms": 100}},
        "environments": {
          "s": {"backend": "vault", "url": "http://vault-s:8200", "token_key": "tok_a"},
          "b": {"backend": "gcp", "url": "http://gcp-b", "project": "proj", "auth": {"method": "metadata", "url": "http://metadata"}}
        }}"#;
    let handler: Handler = Box::new(|o| {
        if o.request.authority == "metadata" {
            let body = br#"{"access_token":"ya29.meta","expires_in":3599,"token_type":"Bearer"}"#.to_vec();
            return Ok(HttpResponse { status: 200, headers: vec![("metadata-flavor".into(), b"Google".to_vec())], body });
        }
        both_backends_ok(o)
    });
    let mut h = Harness::with_source(policy, &[], handler);
    h.transport.latency_of = Some(Box::new(|o| if o.request.authority == "metadata" { 400 } else { 1 }));
    let results = h.get_many(&[req("s", "x", None, None), req("b", "db", None, None)]);
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let s = h.stats("s");
    assert_eq!(s.breaker, Phase::Closed, "a 1 ms answer counted as slow: {:?}", s.tiers[0].counters);
}
