//! Checks of the fake's AppRole auth, with a one-shot HTTP/1.1 client on std sockets (POST
//! bodies included, which the keep-alive client in `fake_backend::tests` does not send).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread::sleep;
use std::time::Duration;

use serde_json::{json, Value};

use crate::FakeBackend;

const ROLE: &str = "role-ROLEID";
const SECRET: &str = "sid-\"SECRETID\"";

/// Sends one request on a fresh connection (`Connection: close`); the status and JSON body.
fn send(
    b: &FakeBackend,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Value) {
    let mut stream = TcpStream::connect(b.addr()).unwrap();
    let mut req = format!(
        "{method} {target} HTTP/1.1\r\nHost: fake\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (n, v) in headers {
        req += &format!("{n}: {v}\r\n");
    }
    stream
        .write_all(format!("{req}\r\n{body}").as_bytes())
        .unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    let reply = String::from_utf8(reply).unwrap();
    let (head, body) = reply.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap())
}

fn login(
    b: &FakeBackend,
    mount: &str,
    role_id: &str,
    secret_id: &str,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let body = json!({ "role_id": role_id, "secret_id": secret_id }).to_string();
    send(
        b,
        "POST",
        &format!("/v1/auth/{mount}/login"),
        headers,
        &body,
    )
}

/// Logs in with the right ids; the issued token.
fn token(b: &FakeBackend, headers: &[(&str, &str)]) -> String {
    let (status, body) = login(b, "approle", ROLE, SECRET, headers);
    assert_eq!(status, 200, "{body}");
    body["auth"]["client_token"].as_str().unwrap().to_owned()
}

fn read(b: &FakeBackend, token: &str, namespace: Option<&str>) -> u16 {
    let mut headers = vec![("X-Vault-Token", token)];
    headers.extend(namespace.map(|n| ("X-Vault-Namespace", n)));
    send(b, "GET", "/v1/secret/data/app/db", &headers, "").0
}

fn renew(b: &FakeBackend, token: &str) -> (u16, Value) {
    send(
        b,
        "POST",
        "/v1/auth/token/renew-self",
        &[("X-Vault-Token", token)],
        "{}",
    )
}

fn backend(ttl_secs: u64, renewable: bool) -> FakeBackend {
    let b = FakeBackend::start();
    b.put_vault("app/db", 1, &[("value", "pw")]);
    b.enable_approle(
        "approle",
        ROLE,
        SECRET,
        Duration::from_secs(ttl_secs),
        renewable,
    );
    b
}

fn denied() -> Value {
    json!({ "errors": ["permission denied"] })
}

#[test]
fn logins_issue_fresh_tokens_that_reads_accept_until_they_expire() {
    let b = backend(1, true);
    let wrong = json!({ "errors": ["invalid role or secret ID"] });
    assert_eq!(
        login(&b, "approle", ROLE, "nope", &[]),
        (400, wrong.clone())
    );
    assert_eq!(login(&b, "approle", "nope", SECRET, &[]), (400, wrong));
    assert_eq!(
        login(&b, "other", ROLE, SECRET, &[]).0,
        404,
        "no such mount"
    );
    assert_eq!(
        send(&b, "POST", "/v1/auth/approle/login", &[], "not json").0,
        400
    );

    let (status, body) = login(&b, "approle", ROLE, SECRET, &[]);
    assert_eq!(status, 200);
    let auth = &body["auth"];
    assert_eq!(
        (&auth["lease_duration"], &auth["renewable"]),
        (&json!(1), &json!(true))
    );
    let first = auth["client_token"].as_str().unwrap().to_owned();
    assert!(first.starts_with("hvs.fake-"), "{first}");
    let second = token(&b, &[]);
    assert_ne!(first, second, "every login issues a fresh token");

    assert_eq!(
        (read(&b, &first, None), read(&b, &second, None)),
        (200, 200)
    );
    assert_eq!(
        read(&b, "hvs.made-up", None),
        403,
        "with AppRole on, only issued tokens read"
    );
    sleep(Duration::from_millis(1_100));
    assert_eq!(
        (read(&b, &first, None), renew(&b, &first)),
        (403, (403, denied()))
    );
    assert_eq!((b.login_count(), b.renew_count()), (6, 1));
}

#[test]
fn renewals_extend_live_renewable_tokens_only() {
    let b = backend(1, true);
    let t = token(&b, &[]);
    sleep(Duration::from_millis(600));
    let (status, body) = renew(&b, &t);
    assert_eq!(
        (
            status,
            &body["auth"]["client_token"],
            &body["auth"]["lease_duration"]
        ),
        (200, &json!(t), &json!(1))
    );
    sleep(Duration::from_millis(600)); // past the first expiry, within the renewed one
    assert_eq!(read(&b, &t, None), 200);
    assert_eq!(renew(&b, "hvs.unknown"), (403, denied()));
    assert_eq!(
        send(
            &b,
            "GET",
            "/v1/auth/token/renew-self",
            &[("X-Vault-Token", &t)],
            ""
        )
        .0,
        405
    );
    assert_eq!(b.renew_count(), 3);

    let fixed = backend(1, false);
    let t = token(&fixed, &[]);
    assert_eq!(
        renew(&fixed, &t),
        (400, json!({ "errors": ["lease is not renewable"] }))
    );
}

#[test]
fn a_zero_ttl_token_never_expires_and_revoking_forces_a_new_login() {
    let b = backend(0, false);
    let t = token(&b, &[]);
    assert_eq!(read(&b, &t, None), 200);
    b.revoke_tokens();
    assert_eq!((read(&b, &t, None), renew(&b, &t).0), (403, 403));
    let again = token(&b, &[]);
    assert_eq!(read(&b, &again, None), 200);
    let (_, body) = login(&b, "approle", ROLE, SECRET, &[]);
    assert_eq!(body["auth"]["lease_duration"], 0);
}

#[test]
fn namespaced_logins_issue_tokens_for_that_namespace_only() {
    let b = backend(30, true);
    let scoped = token(&b, &[("X-Vault-Namespace", "team-a")]);
    assert_eq!(read(&b, &scoped, Some("team-a")), 200);
    assert_eq!(
        (read(&b, &scoped, None), read(&b, &scoped, Some("team-b"))),
        (403, 403)
    );
    let renewed = send(
        &b,
        "POST",
        "/v1/auth/token/renew-self",
        &[("X-Vault-Token", &scoped)],
        "{}",
    );
    assert_eq!(renewed.0, 403, "renewing outside its namespace");
    let root = token(&b, &[]);
    assert_eq!(
        (read(&b, &root, None), read(&b, &root, Some("team-b"))),
        (200, 200)
    );

    // A namespace the fake expects must be on logins too.
    b.expect_vault_namespace("team-a");
    assert_eq!(login(&b, "approle", ROLE, SECRET, &[]), (403, denied()));
    assert_eq!(
        login(
            &b,
            "approle",
            ROLE,
            SECRET,
            &[("X-Vault-Namespace", "team-a")]
        )
        .0,
        200
    );
}

#[test]
fn the_static_token_still_reads_and_accept_any_credentials_turns_approle_off() {
    let b = backend(30, true);
    b.expect_vault_token("static");
    let t = token(&b, &[]);
    assert_eq!(
        (
            read(&b, "static", None),
            read(&b, &t, None),
            read(&b, "other", None)
        ),
        (200, 200, 403)
    );
    b.accept_any_credentials();
    assert_eq!(read(&b, "other", None), 200);
    assert_eq!(
        login(&b, "approle", ROLE, SECRET, &[]).0,
        404,
        "the mount is gone"
    );
}

#[test]
fn records_logins_without_bodies_or_readable_tokens_and_resets_counts() {
    let b = backend(30, true);
    let t = token(&b, &[]);
    renew(&b, &t);
    let log = b.requests();
    assert_eq!(
        (log[0].method.as_str(), log[0].path_and_query.as_str()),
        ("POST", "/v1/auth/approle/login")
    );
    assert_eq!(log[1].header("x-vault-token"), Some(t.as_str()));
    let shown = format!("{log:?}");
    for needle in ["ROLEID", "SECRETID", t.as_str()] {
        assert!(!shown.contains(needle), "{needle} in {shown}");
        assert!(
            !b.any_header_contains(needle) || needle == t,
            "{needle} recorded"
        );
    }
    assert_eq!((b.login_count(), b.renew_count()), (1, 1));
    b.reset_counts();
    assert_eq!(
        (b.login_count(), b.renew_count(), b.request_count()),
        (0, 0, 0)
    );
}
