//! AWS Secrets Manager through the real component, against moto (a real AWS emulator) with
//! IAM authentication on: every read the component makes is SigV4-checked by moto (with
//! botocore), so a value coming back proves the signature, and a wrong key is refused.
//!
//! One moto serves the whole file (`Moto::shared`); each test uses its own secret names.

use std::time::Duration;

use edge_secrets_host::{Client, ManualClock, Request, Runtime, SecretError, Source};
use edge_secrets_tests::harness::{quick_defaults, secret_error, test_options};
use edge_secrets_tests::moto::{AwsKeys, SecretValue, REGION};
use edge_secrets_tests::{Moto, PolicyBuilder};

/// The component, reading environment `prod` from the shared moto with `keys`.
fn component(keys: &AwsKeys, configure: impl FnOnce(PolicyBuilder) -> PolicyBuilder) -> (Client, ManualClock) {
    let moto = Moto::shared();
    let policy = quick_defaults().aws(
        "prod",
        &moto.url(),
        REGION,
        &keys.access_key_id,
        &keys.secret_access_key,
        keys.session_token.as_deref(),
    );
    let clock = ManualClock::new();
    let runtime = Runtime::new(configure(policy).config(), test_options().clock(clock.clone())).expect("start the component");
    (runtime.client().expect("instantiate the component"), clock)
}

fn reader() -> (Client, ManualClock) {
    component(Moto::shared().keys(), |p| p)
}

#[test]
fn secret_strings_their_json_fields_binaries_and_version_ids() {
    let moto = Moto::shared();
    let json = r#"{"user":"admin","password":"pw-1","port":5432}"#;
    let v1 = moto.create_secret("read/db", SecretValue::Text(json));
    let binary: Vec<u8> = (0..=255u8).collect();
    let b1 = moto.create_secret("read/blob", SecretValue::Binary(&binary));
    let (mut client, _) = reader();

    let whole = client.get(&Request::new("prod", "read/db")).unwrap();
    assert_eq!(whole.value.expose(), json.as_bytes(), "the default field is the whole SecretString");
    assert_eq!((whole.version.as_str(), whole.source), (v1.as_str(), Source::Backend));
    let user = client.get(&Request::new("prod", "read/db").field("user")).unwrap();
    assert_eq!(user.value.expose(), b"admin");
    let port = client.get(&Request::new("prod", "read/db").field("port")).unwrap();
    assert_eq!(port.value.expose(), b"5432", "non-string JSON values as their JSON text");
    let missing = secret_error(client.get(&Request::new("prod", "read/db").field("nope")));
    assert!(matches!(&missing, SecretError::NotFound(m) if m.contains("nope") && !m.contains("pw-1")), "{missing:?}");

    let blob = client.get(&Request::new("prod", "read/blob")).unwrap();
    assert_eq!(blob.value.expose(), &binary[..], "SecretBinary survives base64 and the WIT boundary");
    assert_eq!(blob.version, b1);
    assert!(matches!(secret_error(client.get(&Request::new("prod", "read/blob").field("user"))), SecretError::NotFound(_)));

    // By version id: the `latest` read above also cached it under its id (no new request).
    let calls = backend_calls(&mut client);
    let by_id = client.get(&Request::new("prod", "read/db").version(&v1)).unwrap();
    assert_eq!((by_id.value.expose(), by_id.version.as_str()), (json.as_bytes(), v1.as_str()));
    assert_eq!(backend_calls(&mut client), calls, "an id read of the version `latest` resolved to is a hit");
    let v2 = moto.put_secret_value("read/db", SecretValue::Text("two"), &[]);
    let old = client.get(&Request::new("prod", "read/db").version(&v1).field("password")).unwrap();
    assert_eq!(old.value.expose(), b"pw-1");
    let new = client.get(&Request::new("prod", "read/db").version(&v2)).unwrap();
    assert_eq!((new.value.expose(), new.version.as_str()), (&b"two"[..], v2.as_str()));
}

#[test]
fn stages_previous_current_and_custom_labels() {
    let moto = Moto::shared();
    let v1 = moto.create_secret("stage/api", SecretValue::Text("one"));
    let v2 = moto.put_secret_value("stage/api", SecretValue::Text("two"), &[]);
    moto.move_stage("stage/api", "blue", &v1, None);
    let (mut client, _) = reader();

    let read = |client: &mut Client, version: &str| {
        let s = client.get(&Request::new("prod", "stage/api").version(version)).unwrap();
        (String::from_utf8(s.value.expose().to_vec()).unwrap(), s.version)
    };
    assert_eq!(read(&mut client, "AWSCURRENT"), ("two".to_string(), v2.clone()));
    assert_eq!(read(&mut client, "AWSPREVIOUS"), ("one".to_string(), v1.clone()));
    assert_eq!(read(&mut client, "stage:blue"), ("one".to_string(), v1.clone()));
    let err = secret_error(client.get(&Request::new("prod", "stage/api").version("stage:green")));
    assert!(matches!(err, SecretError::NotFound(_)), "{err:?}");
    let err = secret_error(client.get(&Request::new("prod", "stage/api").version("3")));
    assert!(matches!(&err, SecretError::InvalidRequest(m) if m.contains("AWS versions are version ids or stages")), "{err:?}");
}

#[test]
fn a_rotation_shows_after_the_ttl_and_at_once_with_refresh() {
    let moto = Moto::shared();
    let v1 = moto.create_secret("rotate/db", SecretValue::Text("old"));
    let (mut client, clock) = component(moto.keys(), |p| p.set_default("cache.ttl_ms", 30_000));
    let get = |client: &mut Client, refresh: bool| client.get(&Request::new("prod", "rotate/db").refresh(refresh)).unwrap();
    assert_eq!(get(&mut client, false).version, v1);

    let v2 = moto.put_secret_value("rotate/db", SecretValue::Text("new"), &[]);
    let cached = get(&mut client, false);
    assert_eq!((cached.value.expose(), cached.source), (&b"old"[..], Source::Cache));
    clock.advance(Duration::from_millis(30_001));
    let fresh = get(&mut client, false);
    assert_eq!((fresh.value.expose(), fresh.version.as_str()), (&b"new"[..], v2.as_str()));

    let v3 = moto.put_secret_value("rotate/db", SecretValue::Text("newer"), &[]);
    assert_eq!(get(&mut client, false).version, v2, "still cached");
    // `refresh` is honoured once per `cache.refresh_interval_ms` (1 s) after the last fetch.
    clock.advance(Duration::from_millis(1_001));
    let refreshed = get(&mut client, true);
    assert_eq!((refreshed.value.expose(), refreshed.version.as_str()), (&b"newer"[..], v3.as_str()));
    assert_eq!(refreshed.source, Source::Backend);
}

#[test]
fn missing_and_deleted_secrets_and_bad_names() {
    let moto = Moto::shared();
    moto.create_secret("gone/soon", SecretValue::Text("x"));
    moto.delete_secret("gone/soon");
    let (mut client, _) = reader();
    assert!(matches!(secret_error(client.get(&Request::new("prod", "never/created"))), SecretError::NotFound(_)));
    let unknown_id = secret_error(client.get(&Request::new("prod", "never/created").version("a1b2c3d4-5678-90ab-cdef-EXAMPLE11111")));
    assert!(matches!(unknown_id, SecretError::NotFound(_)));

    let calls = backend_calls(&mut client);
    let deleted = secret_error(client.get(&Request::new("prod", "gone/soon")));
    assert!(matches!(&deleted, SecretError::Backend { reason, .. } if reason.starts_with("InvalidRequestException") && reason.contains("marked")), "{deleted:?}");
    assert_eq!(backend_calls(&mut client), calls + 1, "a secret marked for deletion is not retried");

    for bad in ["a b", "x\"y", ""] {
        let err = secret_error(client.get(&Request::new("prod", bad)));
        assert!(matches!(err, SecretError::InvalidRequest(_)), "{bad:?}: {err:?}");
    }
}

#[test]
fn moto_checks_every_signature_wrong_keys_are_refused() {
    let moto = Moto::shared();
    moto.create_secret("auth/db", SecretValue::Text("pw"));
    let right = moto.keys();

    // The strongest check of the signer: moto recomputes the signature with botocore.
    let (mut ok, _) = reader();
    assert_eq!(ok.get(&Request::new("prod", "auth/db")).unwrap().value.expose(), b"pw");

    let wrong_secret = AwsKeys { secret_access_key: format!("{}x", right.secret_access_key), ..right.clone() };
    let unknown_id = AwsKeys { access_key_id: "AKIAUNKNOWNKEY000000".into(), ..right.clone() };
    for (keys, code) in [(&wrong_secret, "SignatureDoesNotMatch"), (&unknown_id, "InvalidClientTokenId"), (moto.denied_keys(), "AccessDenied")] {
        let (mut client, _) = component(keys, |p| p);
        let err = secret_error(client.get(&Request::new("prod", "auth/db")));
        match &err {
            SecretError::PermissionDenied(m) => {
                assert!(m.contains(code), "{code}: {m}");
                assert!(!m.contains(&right.secret_access_key), "the message shows no key");
            }
            other => panic!("{code}: expected permission-denied, got {other:?}"),
        }
        assert_eq!(backend_calls(&mut client), 1, "{code}: permission errors are not retried");
    }
}

#[test]
fn temporary_credentials_sign_their_session_token() {
    let moto = Moto::shared();
    moto.create_secret("sts/db", SecretValue::Text("from-a-role"));
    let temporary = moto.assume_role("edge-role");
    let (mut client, _) = component(&temporary, |p| p);
    assert_eq!(client.get(&Request::new("prod", "sts/db")).unwrap().value.expose(), b"from-a-role");

    // moto compares the token with the one it issued: a wrong one is refused.
    let wrong = AwsKeys { session_token: Some("not-the-token".into()), ..temporary };
    let (mut refused, _) = component(&wrong, |p| p);
    assert!(matches!(secret_error(refused.get(&Request::new("prod", "sts/db"))), SecretError::PermissionDenied(_)));
}

fn backend_calls(client: &mut Client) -> u64 {
    client.stats().unwrap().iter().map(|s| s.backend_calls).sum()
}
