//! Credentials through the real component against the loopback fakes: Vault AppRole (login,
//! namespaces, renewal before expiry, re-login after a 403, one login shared by fresh
//! instances), a GCP service account's self-signed JWT (verified here with the key's public
//! half), and tokens from a GCP metadata server.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use base64ct::{Base64UrlUnpadded, Encoding};
use edge_secrets_host::{Request, SecretError};
use edge_secrets_tests::harness::secret_error;
use edge_secrets_tests::{Fault, Harness};
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use serde_json::{json, Value};

const KEY: &str = "8d1b0c4f9e2a7d3b5c6e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c";
const ROLE_ID: &str = "role-4f1c";
const SECRET_ID: &str = "sid-9d2e-secret";
const TEST_KEY: &str = include_str!("../../guest/tests/fixtures/gcp/test_key_2048.pem");
const TEST_PUB: &str = include_str!("../../guest/tests/fixtures/gcp/test_key_2048.pub.pem");

fn approle_auth() -> Value {
    json!({"method": "approle", "role_id_key": "vault_role_id", "secret_id_key": "vault_secret_id"})
}

/// Vault env `prod` in namespace `team-a`, logging in with AppRole (tokens live `ttl`).
fn approle(ttl: Duration, shared: bool) -> Harness {
    let h = Harness::start(|p, url| {
        let p = p.vault("prod", url, "unused").set("prod", "namespace", "team-a").set_default("cache.ttl_ms", 1_000);
        let p = p.auth("prod", approle_auth(), &[("vault_role_id", ROLE_ID), ("vault_secret_id", SECRET_ID)]);
        if shared { p.shared(KEY) } else { p }
    });
    h.backend.enable_approle("approle", ROLE_ID, SECRET_ID, ttl, true);
    h.backend.put_vault("app/db", 1, &[("value", "pw-approle")]);
    h.backend.put_vault("app/other", 1, &[("value", "pw-other")]);
    h
}

fn value(h: &mut Harness, name: &str) -> Vec<u8> {
    h.get("prod", name).unwrap_or_else(|e| panic!("read of {name} failed: {e}")).value.expose().to_vec()
}

#[test]
fn approle_logs_in_once_in_its_namespace_and_reads_with_the_issued_token() {
    let mut h = approle(Duration::from_secs(600), false);
    assert_eq!(value(&mut h, "app/db"), b"pw-approle");
    assert_eq!(value(&mut h, "app/other"), b"pw-other");
    assert_eq!(h.backend.login_count(), 1);
    let requests = h.backend.requests();
    assert_eq!(requests[0].path_and_query, "/v1/auth/approle/login");
    assert!(requests.iter().all(|r| r.header("x-vault-namespace") == Some("team-a")), "login and reads carry the namespace");
    assert!(requests[1..].iter().all(|r| r.header("x-vault-token").is_some_and(|t| t.starts_with("hvs.fake-"))));
    // No id or issued token in anything the host can print.
    let stats = format!("{:?}", h.client.stats().unwrap());
    assert!(!stats.contains(SECRET_ID) && !stats.contains("hvs.fake"), "{stats}");
}

#[test]
fn wrong_approle_credentials_are_permission_denied_naming_no_id() {
    let mut h = approle(Duration::from_secs(600), false);
    h.backend.enable_approle("approle", ROLE_ID, "another-secret-id", Duration::from_secs(600), true);
    let error = secret_error(h.get("prod", "app/db"));
    let SecretError::PermissionDenied(message) = &error else { panic!("{error:?}") };
    assert!(!message.contains(SECRET_ID) && !message.contains(ROLE_ID), "{message}");
    assert_eq!(h.backend.login_count(), 1, "a refused login is not retried");
    assert_eq!(h.backend.request_count(), 1, "no read without a token");
}

#[test]
fn the_token_is_renewed_before_it_expires() {
    // A 3 s token is renewed from 2 s on (a third of its lifetime before expiry).
    let mut h = approle(Duration::from_secs(3), false);
    value(&mut h, "app/db");
    h.clock.advance(Duration::from_millis(2_200));
    value(&mut h, "app/other");
    assert_eq!((h.backend.login_count(), h.backend.renew_count()), (1, 1));
    let renewed = h.backend.requests().into_iter().find(|r| r.path_and_query == "/v1/auth/token/renew-self").unwrap();
    assert_eq!(renewed.method, "POST");
    assert!(renewed.header("x-vault-token").is_some_and(|t| t.starts_with("hvs.fake-")));
}

#[test]
fn a_revoked_token_is_replaced_by_one_new_login_and_the_read_succeeds() {
    let mut h = approle(Duration::from_secs(600), false);
    value(&mut h, "app/db");
    // A while later (a 403 to a token issued moments ago is about the secret, not the token).
    h.clock.advance(Duration::from_secs(5));
    h.backend.revoke_tokens();
    assert_eq!(value(&mut h, "app/other"), b"pw-other");
    assert_eq!(h.backend.login_count(), 2);
    let reads: Vec<_> = h.backend.requests().into_iter().filter(|r| r.path_and_query.contains("/data/app/other")).collect();
    assert_eq!(reads.len(), 2, "the 403, then the retry with the new token");
    assert_ne!(reads[0].header("x-vault-token"), reads[1].header("x-vault-token"));
}

#[test]
fn fresh_instances_share_one_login_through_shared_state() {
    let h = approle(Duration::from_secs(600), true);
    for name in ["app/db", "app/other", "app/db"] {
        let mut client = h.runtime.client().expect("a fresh instance");
        client.get(&Request::new("prod", name).refresh(true)).unwrap();
    }
    assert_eq!(h.backend.login_count(), 1, "one login serves every instance");
}

#[test]
fn a_burst_of_fresh_instances_reading_different_secrets_logs_in_once() {
    let h = approle(Duration::from_secs(600), true);
    for i in 0..8 {
        h.backend.put_vault(&format!("burst/s{i}"), 1, &[("value", "v")]);
    }
    // The first request (a login) is slow: every instance misses its token meanwhile, and
    // each reads another secret, so no fetch lease holds them back — only the login lease.
    h.backend.fail_next(1, Fault::Delay(Duration::from_millis(300)));
    let barrier = Arc::new(Barrier::new(8));
    let readers: Vec<_> = (0..8)
        .map(|i| {
            let (runtime, barrier) = (h.runtime.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut client = runtime.client().unwrap();
                barrier.wait();
                client.get(&Request::new("prod", format!("burst/s{i}"))).map(|s| s.value.expose().to_vec())
            })
        })
        .collect();
    for reader in readers {
        assert_eq!(reader.join().unwrap().unwrap(), b"v");
    }
    assert_eq!(h.backend.login_count(), 1, "one instance logged in; the others waited for its token");
}

fn service_account_json() -> String {
    json!({"type": "service_account", "project_id": "proj", "private_key_id": "kid-77",
           "private_key": TEST_KEY, "client_email": "edge@proj.iam.gserviceaccount.com"})
    .to_string()
}

fn gcp_with(auth: Value, credentials: &[(&str, &str)]) -> Harness {
    let h = Harness::start(|p, url| p.gcp("gcp", url, "proj", "unused").auth("gcp", auth, credentials));
    h.backend.put_gcp("proj", "db", 3, b"gcp-value");
    h
}

#[test]
fn a_service_account_signs_a_jwt_that_verifies_with_its_public_key() {
    let key = service_account_json();
    let mut h = gcp_with(json!({"method": "service_account", "key_key": "gcp_sa_key"}), &[("gcp_sa_key", &key)]);
    assert_eq!(h.get("gcp", "db").unwrap().value.expose(), b"gcp-value");
    let requests = h.backend.requests();
    assert_eq!(requests.len(), 1, "no token exchange: one request, the read");
    let jwt = requests[0].header("authorization").unwrap().strip_prefix("Bearer ").unwrap().to_string();
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: Value = serde_json::from_slice(&Base64UrlUnpadded::decode_vec(parts[0]).unwrap()).unwrap();
    assert_eq!(header, json!({"alg": "RS256", "typ": "JWT", "kid": "kid-77"}));
    let claims: Value = serde_json::from_slice(&Base64UrlUnpadded::decode_vec(parts[1]).unwrap()).unwrap();
    assert_eq!(claims["aud"], "https://secretmanager.googleapis.com/");
    assert_eq!(claims["iss"], "edge@proj.iam.gserviceaccount.com");
    assert_eq!(claims["sub"], "edge@proj.iam.gserviceaccount.com");
    assert_eq!(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(), 3_600);
    let verifier = VerifyingKey::<sha2::Sha256>::new(rsa::RsaPublicKey::from_public_key_pem(TEST_PUB).unwrap());
    let signature = Signature::try_from(Base64UrlUnpadded::decode_vec(parts[2]).unwrap().as_slice()).unwrap();
    let signed = format!("{}.{}", parts[0], parts[1]);
    verifier.verify(signed.as_bytes(), &signature).expect("the signature verifies with the public key");
    let mut tampered = signed.clone().into_bytes();
    tampered[signed.len() - 1] ^= 1;
    assert!(verifier.verify(&tampered, &signature).is_err(), "and only over what was signed");
}

#[test]
fn a_broken_service_account_key_is_a_config_error_naming_the_key_not_its_content() {
    let key = service_account_json().replace("service_account", "authorized_user");
    let mut h = gcp_with(json!({"method": "service_account", "key_key": "gcp_sa_key"}), &[("gcp_sa_key", &key)]);
    let error = secret_error(h.get("gcp", "db"));
    let SecretError::Config(message) = &error else { panic!("{error:?}") };
    assert!(message.contains("auth.key_key") && message.contains("`gcp_sa_key`") && message.contains("type"), "{message}");
    assert!(!message.contains("BEGIN") && !message.contains("MII"), "{message}");
    assert_eq!(h.backend.request_count(), 0);
}

#[test]
fn metadata_server_tokens_are_fetched_with_the_flavor_header_and_held() {
    let mut h = Harness::start(|p, url| {
        let auth = json!({"method": "metadata", "url": url});
        p.gcp("gcp", url, "proj", "unused").set_default("cache.ttl_ms", 1_000).auth("gcp", auth, &[])
    });
    h.backend.put_gcp("proj", "db", 3, b"gcp-value");
    h.backend.enable_metadata("ya29.meta-token", 3_599);
    h.backend.expect_gcp_token("ya29.meta-token");
    assert_eq!(h.get("gcp", "db").unwrap().value.expose(), b"gcp-value");
    h.clock.advance(Duration::from_millis(1_500));
    assert_eq!(h.get("gcp", "db").unwrap().value.expose(), b"gcp-value");
    assert_eq!(h.backend.metadata_fetches(), 1, "held for its lifetime");
    let fetch = &h.backend.requests()[0];
    assert_eq!(fetch.path_and_query, "/computeMetadata/v1/instance/service-accounts/default/token");
    assert_eq!(fetch.header("metadata-flavor"), Some("Google"));
}
