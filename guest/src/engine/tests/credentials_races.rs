//! Logins racing reads: reads in flight when a token is revoked or a login is
//! refused, a 403 to a fresh token, answers waiting while a login is made,
//! renewals capped by a max TTL.

use super::*;

fn forbidden(o: &Outbound) -> Option<Result<HttpResponse, TransportError>> {
    o.request.path_and_query.ends_with("/forbidden").then(|| {
        Ok(HttpResponse { status: 403, headers: vec![], body: br#"{"errors":["permission denied"]}"#.to_vec() })
    })
}

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

#[test]
fn a_revoked_token_rejects_every_read_in_flight_but_one_login_serves_them_all() {
    let (mut h, state) = approle(600);
    h.get("a", "app/warm").unwrap();
    h.clock.time.advance(crate::engine::credentials::RELOGIN_INTERVAL_MS);
    state.lock().unwrap().valid.clear(); // revoked behind our back
    let results = h.get_many(&[req("a", "app/one", None, None), req("a", "app/two", None, None)]);
    assert!(results.iter().all(Result::is_ok), "{results:?} / {:?}", paths(&h));
    assert_eq!(state.lock().unwrap().logins, 2, "one new login for both");
}

#[test]
fn a_fresh_token_denied_a_secret_does_not_log_in_again() {
    // The role may not read `app/forbidden`: a fresh instance logs in, reads, gets 403.
    let state = Arc::new(Mutex::new(Vault::default()));
    let mut h = Harness::with_source(&auth_policy(false), CREDS, Box::new(|_| status(500)));
    h.transport.handler = vault_but(state.clone(), h.clock.time.clone(), 600, forbidden);
    assert!(matches!(h.get("a", "app/forbidden"), Err(Error::PermissionDenied(_))));
    assert_eq!(state.lock().unwrap().logins, 1, "a token issued a moment ago was not revoked: {:?}", paths(&h));
}

#[test]
fn fresh_instances_denied_a_secret_do_not_each_log_in_again() {
    let state = Arc::new(Mutex::new(Vault::default()));
    let store = crate::shared::MemoryStore::default();
    let time = Time::default();
    time.advance(1_000);
    for _ in 0..5 {
        let mut h = Harness::with_source(&auth_policy(true), CREDS, Box::new(|_| status(500)));
        (h.store, h.clock.time, h.transport.time) = (store.clone(), time.clone(), time.clone());
        h.transport.handler = vault_but(state.clone(), time.clone(), 600, forbidden);
        assert!(matches!(h.get("a", "app/forbidden"), Err(Error::PermissionDenied(_))));
        time.advance(100);
    }
    assert!(state.lock().unwrap().logins <= 2, "logins: {}", state.lock().unwrap().logins);
}

#[test]
fn a_refused_login_is_tried_once_per_call_not_once_per_secret() {
    let (mut h, state) = approle(600);
    state.lock().unwrap().refuse_login = true;
    let reads: Vec<_> = (0..4).map(|i| req("a", &std::format!("app/s{i}"), None, None)).collect();
    let results = h.get_many(&reads);
    assert!(results.iter().all(|r| matches!(r, Err(Error::PermissionDenied(_)))), "{results:?}");
    assert_eq!(state.lock().unwrap().logins, 1, "{:?}", paths(&h));
}

#[test]
fn a_renewal_capped_by_the_max_ttl_leads_to_a_login_not_a_cascade_of_renewals() {
    // Tokens live 60 s and may be renewed up to 90 s after their login (Vault's max TTL):
    // a renewal then gets only what is left, in whole seconds.
    #[derive(Default)]
    struct Capped { tokens: Vec<(String, u64, u64)>, logins: u32, renewals: u32, denied: u32 }
    let state = Arc::new(Mutex::new(Capped::default()));
    let seen = state.clone();
    let mut h = Harness::with_source(&auth_policy(false), CREDS, Box::new(|_| status(500)));
    let time = h.clock.time.clone();
    h.transport.handler = Box::new(move |o| {
        let mut v = seen.lock().unwrap();
        let now = time.0.get();
        let token = header(o, "x-vault-token").unwrap_or_default().to_string();
        match o.request.path_and_query.as_str() {
            "/v1/auth/approle/login" => {
                v.logins += 1;
                let t = std::format!("hvs.t{}", v.logins);
                v.tokens.push((t.clone(), now + 60_000, now + 90_000));
                auth_body(&t, 60)
            }
            "/v1/auth/token/renew-self" => {
                v.renewals += 1;
                match v.tokens.iter_mut().find(|(t, until, _)| *t == token && now < *until) {
                    Some(entry) => {
                        let left_s = (entry.2 - now) / 1_000;
                        let lease = left_s.min(60);
                        entry.1 = now + lease * 1_000;
                        auth_body(&token, lease)
                    }
                    None => status(403),
                }
            }
            _ => {
                if v.tokens.iter().any(|(t, until, _)| *t == token && now < *until) {
                    vault_ok(1, "v")
                } else {
                    v.denied += 1;
                    Ok(HttpResponse { status: 403, headers: vec![], body: br#"{"errors":["permission denied"]}"#.to_vec() })
                }
            }
        }
    });
    for i in 0..300 {
        h.get("a", &std::format!("app/s{i}")).unwrap();
        h.clock.time.advance(1_000);
    }
    let v = state.lock().unwrap();
    assert_eq!(v.denied, 0, "a read went out with a token past its max TTL");
    assert!(v.renewals <= v.logins, "renewals {} for {} logins: one renewal, then a login", v.renewals, v.logins);
}

#[test]
fn a_login_that_fails_transiently_is_sent_once_per_round_and_counted_once() {
    let (mut h, state) = approle(600);
    h.transport.handler = vault_but(state.clone(), h.clock.time.clone(), 600, |o| {
        (o.request.path_and_query == "/v1/auth/approle/login").then(|| status(503))
    });
    let reads: Vec<_> = (0..4).map(|i| req("a", &std::format!("app/s{i}"), None, None)).collect();
    let results = h.get_many(&reads);
    assert!(results.iter().all(|r| matches!(r, Err(Error::Backend { .. }))), "{results:?}");
    // Two attempts per read (the policy's `attempts`): one login per round, not one per read.
    let logins = paths(&h).iter().filter(|p| p.ends_with("/login")).count();
    assert_eq!(logins, 2, "{:?}", paths(&h));
    let stats = h.stats("a");
    assert_eq!(stats.tiers[0].counters.failures, 2, "the breaker heard of each login failure once");
    assert_eq!(h.provider.envs[0].tiers[0].breaker.phase(h.now()).0, Phase::Closed);
}


#[test]
fn a_refused_login_is_shared_so_fresh_instances_do_not_send_it_again() {
    let state = Arc::new(Mutex::new(Vault { refuse_login: true, ..Vault::default() }));
    let store = crate::shared::MemoryStore::default();
    let time = Time::default();
    time.advance(1_000);
    let instance = || {
        let mut h = Harness::with_source(&auth_policy(true), CREDS, Box::new(|_| status(500)));
        (h.store, h.clock.time, h.transport.time) = (store.clone(), time.clone(), time.clone());
        h.transport.handler = vault(state.clone(), time.clone(), 600);
        h
    };
    for _ in 0..4 {
        let err = instance().get("a", "app/db").unwrap_err();
        assert!(matches!(&err, Error::PermissionDenied(m) if !m.contains("sid-5678")), "{err:?}");
        time.advance(100);
    }
    assert_eq!(state.lock().unwrap().logins, 1, "one refused login for four fresh instances");
    for (key, value) in store.dump() {
        assert!(!value.windows(8).any(|w| w == b"sid-5678"), "{key} holds the secret id");
    }
    // After the interval a login is sent again, and with the right ids it works.
    time.advance(crate::engine::credentials::RELOGIN_INTERVAL_MS);
    state.lock().unwrap().refuse_login = false;
    instance().get("a", "app/db").unwrap();
    assert_eq!(state.lock().unwrap().logins, 2);
}
