//! Values, versions and error mapping from both backends, through the real component.

use edge_secrets_host::{Request, Runtime, SecretError, Source};
use edge_secrets_tests::harness::{secret_error, test_options};
use edge_secrets_tests::{FakeBackend, Harness, PolicyBuilder};

#[test]
fn vault_values_fields_and_versions() {
    let mut h = Harness::vault();
    h.backend.put_vault("app/db", 2, &[("value", "pw-two"), ("user", "root")]);

    let latest = h.get("prod", "app/db").unwrap();
    assert_eq!(latest.value.expose(), b"pw-two");
    assert_eq!((latest.version.as_str(), latest.source), ("2", Source::Backend));

    let user = h.client.get(&Request::new("prod", "app/db").field("user")).unwrap();
    assert_eq!(user.value.expose(), b"root");

    let v1 = h.client.get(&Request::new("prod", "app/db").version("1")).unwrap();
    assert_eq!((v1.value.expose(), v1.version.as_str()), (&b"pw-one"[..], "1"));

    let sent = h.backend.requests();
    assert_eq!(sent[0].path_and_query, "/v1/secret/data/app/db");
    assert_eq!(sent.last().unwrap().path_and_query, "/v1/secret/data/app/db?version=1");
    assert!(sent.iter().all(|r| r.header("x-vault-token") == Some("t-prod")));
}

#[test]
fn vault_namespace_and_mount_are_sent() {
    let mut h = Harness::start(|p, url| p.vault("prod", url, "t").set("prod", "namespace", "team-a").set("prod", "mount", "kv"));
    h.backend.expect_vault_namespace("team-a");
    h.backend.put_vault_in("kv", "svc", 4, &[("value", "x")]);
    assert_eq!(h.get("prod", "svc").unwrap().version, "4");
    let sent = h.backend.requests();
    assert_eq!(sent[0].path_and_query, "/v1/kv/data/svc");
    assert_eq!(sent[0].header("x-vault-namespace"), Some("team-a"));
}

#[test]
fn gcp_values_and_versions() {
    let mut h = Harness::start(|p, url| p.gcp("g", url, "my-proj", "ya29.tok"));
    h.backend.expect_gcp_token("ya29.tok");
    let binary: Vec<u8> = (0..=255u8).collect();
    h.backend.put_gcp("my-proj", "api-key", 1, b"first");
    h.backend.put_gcp("my-proj", "api-key", 2, &binary);

    let latest = h.get("g", "api-key").unwrap();
    assert_eq!(latest.value.expose(), &binary[..], "binary payload survives base64 and the WIT boundary");
    assert_eq!(latest.version, "2");
    let first = h.client.get(&Request::new("g", "api-key").version("1")).unwrap();
    assert_eq!(first.value.expose(), b"first");

    let sent = h.backend.requests();
    assert_eq!(sent[0].path_and_query, "/v1/projects/my-proj/secrets/api-key/versions/latest:access");
    assert_eq!(sent[1].path_and_query, "/v1/projects/my-proj/secrets/api-key/versions/1:access");
    assert!(sent.iter().all(|r| r.header("authorization") == Some("Bearer ya29.tok")));
}

#[test]
fn not_found_and_permission_denied_from_both_backends() {
    let mut h = Harness::start(|p, url| p.vault("v", url, "good").gcp("g", url, "proj", "good"));
    h.backend.expect_vault_token("good");
    h.backend.expect_gcp_token("good");
    assert!(matches!(secret_error(h.get("v", "missing")), SecretError::NotFound(_)));
    assert!(matches!(secret_error(h.get("g", "missing")), SecretError::NotFound(_)));

    let mut denied = Harness::start(|p, url| p.vault("v", url, "wrong").gcp("g", url, "proj", "wrong"));
    denied.backend.expect_vault_token("right");
    denied.backend.expect_gcp_token("right");
    denied.backend.put_vault("app", 1, &[("value", "x")]);
    denied.backend.put_gcp("proj", "app", 1, b"x");
    assert!(matches!(secret_error(denied.get("v", "app")), SecretError::PermissionDenied(_)));
    assert!(matches!(secret_error(denied.get("g", "app")), SecretError::PermissionDenied(_)));
    assert_eq!(denied.backend.request_count(), 2, "permission errors are not retried");
}

#[test]
fn missing_field_is_not_found() {
    let mut h = Harness::vault();
    let err = secret_error(h.client.get(&Request::new("prod", "app/db").field("nope")));
    assert!(matches!(err, SecretError::NotFound(ref m) if m.contains("nope")), "{err}");
}

#[test]
fn invalid_names_are_rejected_with_zero_requests_sent() {
    let mut h = Harness::start(|p, url| p.vault("v", url, "t").gcp("g", url, "proj", "t"));
    let bad = [
        Request::new("v", "../sys/seal"),
        Request::new("v", "app/../../sys"),
        Request::new("v", "app//db"),
        Request::new("v", "app%2fdb"),
        Request::new("v", "app?list=true"),
        Request::new("v", "app#x"),
        Request::new("v", "app\r\nX-Evil: 1"),
        Request::new("v", ""),
        Request::new("v", "a".repeat(600)),
        Request::new("g", "has/slash"),
        Request::new("g", "a".repeat(256)),
        Request::new("g", "ok").field("user"),
        Request::new("v", "app").version("0"),
        Request::new("v", "app").version("-1"),
        Request::new("v", "app").version("v2"),
    ];
    for request in &bad {
        let err = secret_error(h.client.get(request));
        assert!(matches!(err, SecretError::InvalidRequest(_)), "{request:?}: {err}");
    }
    assert!(matches!(secret_error(h.get("nope", "app")), SecretError::UnknownEnvironment(_)));
    assert_eq!(h.backend.request_count(), 0);
    assert_eq!(h.backend.connection_count(), 0);
}

#[test]
fn each_environments_token_only_reaches_its_own_server() {
    let server_a = FakeBackend::start();
    let server_b = FakeBackend::start();
    server_a.put_vault("s", 1, &[("value", "va")]);
    server_b.put_vault("s", 1, &[("value", "vb")]);
    let policy = PolicyBuilder::new().vault("a", &server_a.url(), "token-of-a").vault("b", &server_b.url(), "token-of-b");
    let runtime = Runtime::new(policy.config(), test_options()).unwrap();
    let mut client = runtime.client().unwrap();
    assert_eq!(client.get(&Request::new("a", "s")).unwrap().value.expose(), b"va");
    assert_eq!(client.get(&Request::new("b", "s")).unwrap().value.expose(), b"vb");
    assert!(server_a.any_header_contains("token-of-a"));
    assert!(server_b.any_header_contains("token-of-b"));
    assert!(!server_a.any_header_contains("token-of-b"), "env b's token reached env a's server");
    assert!(!server_b.any_header_contains("token-of-a"), "env a's token reached env b's server");
}

#[test]
fn get_many_fetches_misses_in_parallel_and_keeps_order() {
    let mut h = Harness::start(|p, url| p.vault("v", url, "t").gcp("g", url, "proj", "t"));
    h.backend.put_vault("one", 1, &[("value", "1")]);
    h.backend.put_vault("two", 1, &[("value", "2")]);
    h.backend.put_gcp("proj", "three", 1, b"3");
    // Each answer is held back, so the three requests overlap only if they are sent together.
    h.backend.set_fault_always(Some(edge_secrets_tests::Fault::Delay(std::time::Duration::from_millis(300))));
    let results = h
        .client
        .get_many(&[Request::new("v", "one"), Request::new("g", "three"), Request::new("v", "bad//"), Request::new("v", "two")])
        .unwrap();
    let values: Vec<Option<Vec<u8>>> = results.iter().map(|r| r.as_ref().ok().map(|s| s.value.expose().to_vec())).collect();
    assert_eq!(values, vec![Some(b"1".to_vec()), Some(b"3".to_vec()), None, Some(b"2".to_vec())]);
    assert!(matches!(results[2], Err(SecretError::InvalidRequest(_))));
    assert_eq!(h.backend.request_count(), 3);
    // All three were in flight at once: the fake saw three connections open together.
    assert!(h.backend.connection_count() >= 3, "parallel requests need parallel connections");
}
