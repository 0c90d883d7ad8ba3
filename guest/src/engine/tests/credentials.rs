//! Tier credentials through the provider: AppRole logins, renewal before
//! expiry, one re-login after a 403, tokens shared between instances, and
//! metadata-server tokens — on the fake clock and a scripted Vault/metadata.

use std::string::ToString;
use std::sync::{Arc, Mutex};

use super::*;

/// Vault env `a` logging in with AppRole in namespace `team-a`, GCP env `b`
/// taking tokens from a metadata server.
fn auth_policy(shared: bool) -> String {
    let shared = if shared { r#""shared": {"key_key": "state_key", "lease_ms": 200},"# } else { "" };
    format!(
        r#"{{{shared} "defaults": {{"retry": {{"attempts": 2, "base_delay_ms": 10, "max_delay_ms": 10}},
              "timeouts": {{"attempt_ms": 500, "deadline_ms": 2000}}, "cache": {{"ttl_ms": 1000}} }},
            "environments": {{
              "a": {{"backend": "vault", "url": "http://vault-a:8200", "namespace": "team-a",
                     "auth": {{"method": "approle", "role_id_key": "role_id", "secret_id_key": "secret_id"}} }},
              "b": {{"backend": "gcp", "url": "http://gcp-b", "project": "proj",
                     "auth": {{"method": "metadata", "url": "http://metadata"}} }}
            }}}}"#
    )
}

const CREDS: &[(&str, &str)] = &[("role_id", "role-1234"), ("secret_id", "sid-5678-secret")];

/// A scripted Vault with AppRole: tokens `hvs.t1`, `hvs.t2`, … each valid for
/// `lease_s` of fake time; reads need a valid token.
#[derive(Default)]
struct Vault {
    issued: u32,
    valid: Vec<(String, u64)>,
    logins: u32,
    renewals: u32,
    refuse_login: bool,
    refuse_renewal: bool,
}

fn auth_body(token: &str, lease_s: u64) -> Result<HttpResponse, TransportError> {
    let body = format!(r#"{{"auth":{{"client_token":"{token}","lease_duration":{lease_s},"renewable":true}}}}"#);
    Ok(HttpResponse { status: 200, headers: vec![], body: body.into_bytes() })
}

fn header<'a>(o: &'a Outbound, name: &str) -> Option<&'a str> {
    o.request.headers.iter().find(|(n, _)| n == name).and_then(|(_, v)| core::str::from_utf8(v).ok())
}

fn vault(state: Arc<Mutex<Vault>>, time: Time, lease_s: u64) -> Handler {
    Box::new(move |o| {
        let mut v = state.lock().unwrap();
        let now = time.0.get();
        assert_eq!(header(o, "x-vault-namespace"), Some("team-a"), "{} without its namespace", o.request.path_and_query);
        match o.request.path_and_query.as_str() {
            "/v1/auth/approle/login" => {
                v.logins += 1;
                let body: serde_json::Value = serde_json::from_slice(&o.request.body).unwrap();
                if v.refuse_login || body["role_id"] != "role-1234" || body["secret_id"] != "sid-5678-secret" {
                    return Ok(HttpResponse { status: 400, headers: vec![], body: br#"{"errors":["invalid role or secret ID"]}"#.to_vec() });
                }
                v.issued += 1;
                let token = std::format!("hvs.t{}", v.issued);
                v.valid.push((token.clone(), now + lease_s * 1_000));
                auth_body(&token, lease_s)
            }
            "/v1/auth/token/renew-self" => {
                v.renewals += 1;
                let token = header(o, "x-vault-token").unwrap_or_default().to_string();
                let refuse = v.refuse_renewal;
                match v.valid.iter_mut().find(|(t, until)| *t == token && now < *until) {
                    Some(entry) if !refuse => {
                        entry.1 = now + lease_s * 1_000;
                        auth_body(&token, lease_s)
                    }
                    _ => status(403),
                }
            }
            _ => {
                let token = header(o, "x-vault-token").unwrap_or_default();
                if v.valid.iter().any(|(t, until)| t == token && now < *until) {
                    vault_ok(1, "v")
                } else {
                    Ok(HttpResponse { status: 403, headers: vec![], body: br#"{"errors":["permission denied"]}"#.to_vec() })
                }
            }
        }
    })
}

/// [`vault`], except for the requests `answer` takes (`Some`): a Vault with one broken part.
fn vault_but(state: Arc<Mutex<Vault>>, time: Time, lease_s: u64, answer: impl Fn(&Outbound) -> Option<Result<HttpResponse, TransportError>> + 'static) -> Handler {
    let mut inner = vault(state, time, lease_s);
    Box::new(move |o| answer(o).unwrap_or_else(|| inner(o)))
}

fn approle(lease_s: u64) -> (Harness, Arc<Mutex<Vault>>) {
    let state = Arc::new(Mutex::new(Vault::default()));
    let mut h = Harness::with_source(&auth_policy(false), CREDS, Box::new(|_| status(500)));
    h.transport.handler = vault(state.clone(), h.clock.time.clone(), lease_s);
    (h, state)
}

fn paths(h: &Harness) -> Vec<String> {
    h.transport.sent.iter().map(|o| std::format!("{} {}", o.request.method.as_str(), o.request.path_and_query)).collect()
}

#[test]
fn approle_logs_in_once_and_reads_with_the_issued_token() {
    let (mut h, state) = approle(600);
    h.get("a", "app/db").unwrap();
    h.get("a", "app/other").unwrap();
    assert_eq!(paths(&h), ["POST /v1/auth/approle/login", "GET /v1/secret/data/app/db", "GET /v1/secret/data/app/other"]);
    assert_eq!(header(&h.transport.sent[1], "x-vault-token"), Some("hvs.t1"));
    assert_eq!(state.lock().unwrap().logins, 1);
    // The login carries the role and secret ids; its Debug does not.
    let shown = std::format!("{:?}", h.transport.sent[0]);
    assert!(!shown.contains("sid-5678") && !shown.contains("role-1234"), "{shown}");
}

#[test]
fn a_token_is_renewed_before_it_expires_and_replaced_when_renewal_fails() {
    // A 60 s lease is renewed from 40 s on (a third of its lifetime before expiry).
    let (mut h, state) = approle(60);
    h.get("a", "app/db").unwrap();
    h.clock.time.advance(39_000);
    h.get("a", "app/one").unwrap();
    assert_eq!(state.lock().unwrap().renewals, 0, "not due yet");
    h.clock.time.advance(2_000);
    h.get("a", "app/two").unwrap();
    assert_eq!(paths(&h)[3..], ["POST /v1/auth/token/renew-self", "GET /v1/secret/data/app/two"]);
    assert_eq!(header(&h.transport.sent[3], "x-vault-token"), Some("hvs.t1"));
    // The renewed token lasts another 60 s; when renewal is refused, it logs in again.
    state.lock().unwrap().refuse_renewal = true;
    h.clock.time.advance(41_000);
    h.get("a", "app/three").unwrap();
    assert_eq!(paths(&h)[5..], ["POST /v1/auth/token/renew-self", "POST /v1/auth/approle/login", "GET /v1/secret/data/app/three"]);
    assert_eq!(header(&h.transport.sent[7], "x-vault-token"), Some("hvs.t2"));
}

#[test]
fn a_403_with_a_held_token_logs_in_again_once_and_retries() {
    let (mut h, state) = approle(600);
    h.get("a", "app/db").unwrap();
    // Revoked behind our back, a while after it was issued (a 403 to a token issued
    // moments ago is about the secret, not the token).
    h.clock.time.advance(crate::engine::credentials::RELOGIN_INTERVAL_MS);
    state.lock().unwrap().valid.clear();
    let secret = h.get("a", "app/other").unwrap();
    assert_eq!(secret.value.expose(), b"v");
    assert_eq!(paths(&h)[2..], ["GET /v1/secret/data/app/other", "POST /v1/auth/approle/login", "GET /v1/secret/data/app/other"]);
    // Revoked again at once: a second 403 within the re-login interval is the answer
    // (a secret the role may not read must not cost a login per read).
    state.lock().unwrap().valid.clear();
    assert!(matches!(h.get("a", "app/third"), Err(Error::PermissionDenied(_))));
    assert_eq!(state.lock().unwrap().logins, 2);
    // After the interval, a 403 may log in again.
    h.clock.time.advance(crate::engine::credentials::RELOGIN_INTERVAL_MS);
    assert!(h.get("a", "app/third").is_ok());
    assert_eq!(state.lock().unwrap().logins, 3);
}

#[test]
fn a_refused_login_is_a_permission_denial_and_sends_no_read() {
    let (mut h, state) = approle(600);
    state.lock().unwrap().refuse_login = true;
    let err = h.get("a", "app/db").unwrap_err();
    assert!(matches!(&err, Error::PermissionDenied(m) if !m.contains("sid-5678")), "{err:?}");
    assert_eq!(paths(&h), ["POST /v1/auth/approle/login"], "a refused login is not retried");
}

#[test]
fn a_login_error_that_echoes_the_secret_id_is_redacted() {
    let (mut h, _) = approle(600);
    h.transport.handler = Box::new(|o| {
        let echoed = std::format!(r#"{{"errors":["bad body {}"]}}"#, String::from_utf8_lossy(&o.request.body).replace('"', "'"));
        Ok(HttpResponse { status: 400, headers: vec![], body: echoed.into_bytes() })
    });
    let err = std::format!("{:?}", h.get("a", "app/db").unwrap_err());
    assert!(!err.contains("sid-5678-secret") && !err.contains("role-1234"), "{err}");
}

#[test]
fn a_login_error_cut_short_in_the_middle_of_the_secret_id_shows_none_of_it() {
    // An echo of the login body, padded so the 160-byte cap of reasons falls inside the id.
    let (mut h, _) = approle(600);
    h.transport.handler = Box::new(|o| {
        let body = String::from_utf8_lossy(&o.request.body).replace('"', "'");
        let at = body.find("sid-5678-secret").unwrap();
        let echoed = std::format!(r#"{{"errors":["{}{body}"]}}"#, "x".repeat(150 - at));
        Ok(HttpResponse { status: 400, headers: vec![], body: echoed.into_bytes() })
    });
    let err = std::format!("{:?}", h.get("a", "app/db").unwrap_err());
    assert!(!err.contains("sid-5678"), "{err}");
}

#[test]
fn instances_share_the_token_through_shared_state() {
    let state = Arc::new(Mutex::new(Vault::default()));
    let mut first = Harness::with_source(&auth_policy(true), CREDS, Box::new(|_| status(500)));
    first.transport.handler = vault(state.clone(), first.clock.time.clone(), 600);
    first.get("a", "app/db").unwrap();
    let mut second = Harness::with_source(&auth_policy(true), CREDS, Box::new(|_| status(500)));
    second.store = first.store.clone();
    second.clock.time = first.clock.time.clone();
    second.transport.time = first.clock.time.clone();
    second.transport.handler = vault(state.clone(), first.clock.time.clone(), 600);
    second.get("a", "app/other").unwrap();
    assert_eq!(paths(&second), ["GET /v1/secret/data/app/other"], "no second login");
    assert_eq!(header(&second.transport.sent[0], "x-vault-token"), Some("hvs.t1"));
    assert_eq!(state.lock().unwrap().logins, 1);
    for (key, value) in first.store.dump() {
        assert!(!value.windows(6).any(|w| w == b"hvs.t1"), "{key} holds the token in the clear");
    }
    // A token the store hands out that a 403 then rejects is not taken up again.
    first.clock.time.advance(crate::engine::credentials::RELOGIN_INTERVAL_MS);
    state.lock().unwrap().valid.clear();
    second.get("a", "app/third").unwrap();
    let mut third = Harness::with_source(&auth_policy(true), CREDS, Box::new(|_| status(500)));
    third.store = first.store.clone();
    third.clock.time = first.clock.time.clone();
    third.transport.time = first.clock.time.clone();
    third.transport.handler = vault(state.clone(), first.clock.time.clone(), 600);
    third.get("a", "app/fourth").unwrap();
    assert_eq!(header(&third.transport.sent[0], "x-vault-token"), Some("hvs.t2"), "the re-login's token was shared");
}

#[test]
fn metadata_tokens_are_fetched_once_per_lifetime_with_the_flavor_header() {
    let fetched = Arc::new(Mutex::new(0));
    let count = fetched.clone();
    let handler: Handler = Box::new(move |o| {
        if o.request.authority == "metadata" {
            *count.lock().unwrap() += 1;
            assert_eq!(header(o, "metadata-flavor"), Some("Google"));
            let body = br#"{"access_token":"ya29.meta","expires_in":3599,"token_type":"Bearer"}"#.to_vec();
            return Ok(HttpResponse { status: 200, headers: vec![("metadata-flavor".into(), b"Google".to_vec())], body });
        }
        assert_eq!(header(o, "authorization"), Some("Bearer ya29.meta"));
        gcp_ok()
    });
    let mut h = Harness::with_source(&auth_policy(false), CREDS, handler);
    h.get("b", "db").unwrap();
    h.clock.time.advance(1_500);
    h.get("b", "db").unwrap();
    assert_eq!(*fetched.lock().unwrap(), 1);
    assert_eq!(h.sent(), 3);
}

const KEY_2048: &str = include_str!("../../../tests/fixtures/gcp/test_key_2048.pem");

fn service_account_json() -> String {
    serde_json::json!({
        "type": "service_account", "project_id": "proj", "private_key_id": "kid-1",
        "private_key": KEY_2048, "client_email": "edge@proj.iam.gserviceaccount.com",
    })
    .to_string()
}

fn claims_of(jwt: &str) -> serde_json::Value {
    let payload = jwt.split('.').nth(1).unwrap();
    let padded = std::format!("{payload}{}", "=".repeat((4 - payload.len() % 4) % 4)).replace('-', "+").replace('_', "/");
    serde_json::from_slice(&crate::encoding::base64_decode(&padded).unwrap()).unwrap()
}

#[test]
fn a_service_account_signs_one_jwt_per_lifetime_and_shares_it() {
    let policy = auth_policy(true).replace(
        r#""auth": {"method": "metadata", "url": "http://metadata"}"#,
        r#""auth": {"method": "service_account", "key_key": "sa_key"}"#,
    );
    let sa = service_account_json();
    let creds = [("sa_key", sa.as_str()), CREDS[0], CREDS[1]];
    let bearers = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = bearers.clone();
    let handler = move || -> Handler {
        let seen = seen.clone();
        Box::new(move |o| {
            seen.lock().unwrap().push(header(o, "authorization").unwrap().strip_prefix("Bearer ").unwrap().to_string());
            gcp_ok()
        })
    };
    let mut h = Harness::with_source(&policy, &creds, handler());
    let start_s = h.now() / 1_000;
    h.get("b", "db").unwrap();
    h.clock.time.advance(1_500); // past the cache TTL: a second read, same token
    h.get("b", "db").unwrap();
    // Another instance takes the shared token instead of signing its own.
    let mut twin = Harness::with_source(&policy, &creds, handler());
    (twin.store, twin.clock.time, twin.transport.time) = (h.store.clone(), h.clock.time.clone(), h.clock.time.clone());
    twin.get("b", "other").unwrap();
    {
        let bearers = bearers.lock().unwrap();
        assert_eq!(bearers.len(), 3);
        assert!(bearers.iter().all(|b| *b == bearers[0]), "one JWT for all three reads");
        let claims = claims_of(&bearers[0]);
        assert_eq!(claims["aud"], "https://secretmanager.googleapis.com/");
        assert_eq!((claims["iss"].as_str(), claims["sub"].as_str()), (Some("edge@proj.iam.gserviceaccount.com"), Some("edge@proj.iam.gserviceaccount.com")));
        assert_eq!(claims["iat"].as_u64(), Some(start_s));
        assert_eq!(claims["exp"].as_u64(), Some(start_s + crate::engine::credentials::JWT_LIFETIME_S));
    }
    // Five minutes before it expires, the next read signs a new one.
    h.clock.time.advance(55 * 60_000);
    h.get("b", "db").unwrap();
    let bearers = bearers.lock().unwrap();
    assert_ne!(bearers[3], bearers[0]);
    assert_eq!(claims_of(&bearers[3])["iat"].as_u64(), Some(start_s + 1 + 55 * 60));
}

#[test]
fn a_renewal_that_fails_transiently_keeps_the_valid_token() {
    let (mut h, state) = approle(60);
    h.get("a", "app/db").unwrap();
    h.clock.time.advance(41_000);
    h.transport.handler = vault_but(state.clone(), h.clock.time.clone(), 60, |o| {
        (o.request.path_and_query == "/v1/auth/token/renew-self").then(|| status(503))
    });
    h.get("a", "app/two").unwrap();
    let sent = paths(&h);
    assert_eq!(sent[2..], ["POST /v1/auth/token/renew-self", "GET /v1/secret/data/app/two"], "no login while the token is valid");
    assert_eq!(header(&h.transport.sent[3], "x-vault-token"), Some("hvs.t1"));
    assert_eq!(state.lock().unwrap().logins, 1);
}

#[path = "credentials_races.rs"]
mod races;

#[test]
fn a_missing_approle_secret_id_is_a_config_error_and_no_login_is_sent() {
    let (mut h, _) = approle(600);
    h.config.values.remove("secret_id");
    assert_eq!(h.get("a", "app/db").unwrap_err(), Error::Config("environments.a.auth.secret_id_key: config key `secret_id` is not set".into()));
    assert!(paths(&h).is_empty(), "{:?}", paths(&h));
}
