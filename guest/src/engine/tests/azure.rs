//! Azure Key Vault with Entra client credentials through the provider, on the
//! fake clock and a scripted Entra and Key Vault: the token held and replaced
//! before expiry, one login for the misses of a `get-many`, a refused secret
//! not re-sent within the back-off, and a revoked token (401) replaced once.

use std::string::ToString;
use std::sync::{Arc, Mutex};

use super::*;
use crate::engine::credentials::RELOGIN_INTERVAL_MS;

const SECRET: &str = "Qm~8Q~s3cret&x=1";
const VERSION: &str = "4387e9f3d6e14c459867679a90fd0f79";

fn azure_policy() -> String {
    r#"{"defaults": {"retry": {"attempts": 2, "base_delay_ms": 10, "max_delay_ms": 10},
                     "timeouts": {"attempt_ms": 500, "deadline_ms": 2000}, "cache": {"ttl_ms": 1000}},
        "environments": {"kv": {"backend": "azure", "url": "https://v.vault.azure.net",
            "auth": {"method": "azure_client_secret", "tenant": "contoso.onmicrosoft.com", "client_id": "app-1",
                     "client_secret_key": "azure_secret", "authority": "https://login.example"}}}}"#
        .to_string()
}

/// Issued tokens `eyJ.t1`, `eyJ.t2`, … valid `expires_in` s; reads need a valid one.
#[derive(Default)]
struct Azure {
    issued: u32,
    valid: Vec<(String, u64)>,
    logins: u32,
    refuse: bool,
}

fn azure(state: Arc<Mutex<Azure>>, time: Time, expires_in: u64) -> Handler {
    Box::new(move |o| {
        let mut a = state.lock().unwrap();
        let now = time.0.get();
        let ok = |body: String| Ok(HttpResponse { status: 200, headers: vec![], body: body.into_bytes() });
        if o.request.authority == "login.example" {
            assert_eq!(o.request.path_and_query, "/contoso.onmicrosoft.com/oauth2/v2.0/token");
            a.logins += 1;
            let body = String::from_utf8(o.request.body.clone()).unwrap();
            if a.refuse || !body.contains("&client_secret=Qm~8Q~s3cret%26x%3D1&") {
                let refusal = r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}"#;
                return Ok(HttpResponse { status: 401, headers: vec![], body: refusal.as_bytes().to_vec() });
            }
            a.issued += 1;
            let token = std::format!("eyJ.t{}", a.issued);
            a.valid.push((token.clone(), now + expires_in * 1_000));
            return ok(std::format!(r#"{{"token_type":"Bearer","expires_in":{expires_in},"access_token":"{token}"}}"#));
        }
        let bearer = o.request.headers.iter().find(|(n, _)| n == "authorization").map(|(_, v)| v.clone()).unwrap_or_default();
        let token = core::str::from_utf8(&bearer).unwrap_or("").strip_prefix("Bearer ").unwrap_or("");
        if !a.valid.iter().any(|(t, until)| t == token && now < *until) {
            let challenge = br#"Bearer authorization="https://login.microsoftonline.com/t", resource="https://vault.azure.net""#.to_vec();
            return Ok(HttpResponse { status: 401, headers: vec![("www-authenticate".into(), challenge)], body: vec![] });
        }
        ok(std::format!(r#"{{"value":"pw","id":"https://v.vault.azure.net/secrets/db/{VERSION}"}}"#))
    })
}

fn harness(state: &Arc<Mutex<Azure>>, expires_in: u64) -> Harness {
    let mut h = Harness::with_source(&azure_policy(), &[("azure_secret", SECRET)], Box::new(|_| status(500)));
    h.transport.handler = azure(state.clone(), h.transport.time.clone(), expires_in);
    h
}

#[test]
fn the_token_is_held_and_replaced_a_third_of_its_lifetime_before_expiry() {
    let state = Arc::new(Mutex::new(Azure::default()));
    let mut h = harness(&state, 60);
    let secret = h.get("kv", "db").unwrap();
    assert_eq!((secret.value.expose(), secret.version.as_str()), (&b"pw"[..], VERSION));
    h.clock.time.advance(30_000);
    h.get("kv", "db").unwrap();
    assert_eq!(state.lock().unwrap().logins, 1, "held while it is good");
    h.clock.time.advance(11_000); // 41 s: past 40 s, a third of 60 s before expiry
    h.get("kv", "db").unwrap();
    assert_eq!(state.lock().unwrap().logins, 2);
    let login = &h.transport.sent[0].request;
    assert_eq!(login.headers, vec![("content-type".to_string(), b"application/x-www-form-urlencoded".to_vec())]);
}

#[test]
fn a_refused_secret_costs_one_login_for_a_get_many_and_none_within_the_back_off() {
    let state = Arc::new(Mutex::new(Azure { refuse: true, ..Azure::default() }));
    let mut h = harness(&state, 60);
    let answers = h.get_many(&[req("kv", "a", None, None), req("kv", "b", None, None), req("kv", "c", None, None)]);
    for answer in &answers {
        let Err(Error::PermissionDenied(message)) = answer else { panic!("{answer:?}") };
        assert!(message.contains("invalid_client") && !message.contains("s3cret"), "{message}");
    }
    assert_eq!((state.lock().unwrap().logins, h.sent()), (1, 1), "one login, no reads");
    h.clock.time.advance(RELOGIN_INTERVAL_MS - 1_000);
    assert!(matches!(h.get("kv", "a"), Err(Error::PermissionDenied(_))));
    assert_eq!(state.lock().unwrap().logins, 1, "not sent again within the back-off");
    state.lock().unwrap().refuse = false;
    h.clock.time.advance(2_000);
    assert_eq!(h.get("kv", "a").unwrap().value.expose(), b"pw");
    assert_eq!(state.lock().unwrap().logins, 2);
}

#[test]
fn a_revoked_token_answered_with_a_401_is_replaced_once_and_the_read_retried() {
    let state = Arc::new(Mutex::new(Azure::default()));
    let mut h = harness(&state, 3_600);
    h.get("kv", "db").unwrap();
    h.clock.time.advance(10_000);
    state.lock().unwrap().valid.clear(); // revoked
    assert_eq!(h.get("kv", "db").unwrap().value.expose(), b"pw");
    assert_eq!(state.lock().unwrap().logins, 2);
    // A 401 on a token issued moments ago is not about the token: no login loop.
    state.lock().unwrap().valid.clear();
    h.clock.time.advance(1_500);
    let Err(Error::PermissionDenied(message)) = h.get("kv", "db") else { panic!("not a denial") };
    assert!(message.contains("\"https://vault.azure.net\"") && !message.contains("eyJ.t"), "{message}");
    assert_eq!(state.lock().unwrap().logins, 2);
}
