//! Dev store tests over loopback (port 0) with a minimal HTTP/1.1 client on std sockets.

use std::io::{Read, Write};
use std::net::TcpStream;

use serde_json::{json, Value};

use super::*;

const TOKEN: &str = "dev-root-token";

fn store() -> DevStore {
    let mut seed = Seed::new();
    seed.insert("app/db", [("value", "pw-1"), ("user", "app")])
        .unwrap();
    seed.insert("app/db", [("value", "pw-2"), ("user", "app")])
        .unwrap();
    DevStore::start(DevStoreOptions {
        token: Some(TOKEN.into()),
        seed,
        ..Default::default()
    })
    .unwrap()
}

/// One request on a fresh connection (`Connection: close`, so the body ends at EOF).
fn call(
    store: &DevStore,
    method: &str,
    target: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, Value) {
    let mut s = TcpStream::connect(store.addr()).unwrap();
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: dev\r\nConnection: close\r\n");
    if let Some(t) = token {
        req += &format!("X-Vault-Token: {t}\r\n");
    }
    if let Some(b) = body {
        req += &format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        );
    }
    req += "\r\n";
    req += body.unwrap_or("");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete response");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let json = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).unwrap()
    };
    (status, json)
}

fn get(store: &DevStore, target: &str) -> (u16, Value) {
    call(store, "GET", target, Some(TOKEN), None)
}

#[test]
fn reads_latest_and_pinned_versions() {
    let s = store();
    let (status, body) = get(&s, "/v1/secret/data/app/db");
    assert_eq!(status, 200);
    assert_eq!(
        body["data"]["data"],
        json!({ "value": "pw-2", "user": "app" })
    );
    let meta = &body["data"]["metadata"];
    assert_eq!(
        (&meta["version"], &meta["deletion_time"], &meta["destroyed"]),
        (&json!(2), &json!(""), &json!(false))
    );
    assert!(meta["created_time"].as_str().unwrap().ends_with('Z'));

    let (status, body) = get(&s, "/v1/secret/data/app/db?version=1");
    assert_eq!(
        (status, &body["data"]["data"]["value"]),
        (200, &json!("pw-1"))
    );
    let (_, body) = get(&s, "/v1/secret/data/app/db?version=0");
    assert_eq!(
        body["data"]["metadata"]["version"], 2,
        "version 0 means latest, as in Vault"
    );
}

#[test]
fn missing_secrets_and_versions_are_404_with_empty_errors() {
    let s = store();
    for target in [
        "/v1/secret/data/app/nope",
        "/v1/secret/data/app/db?version=3",
        "/v1/secret/data/a//b",
    ] {
        assert_eq!(get(&s, target), (404, json!({ "errors": [] })), "{target}");
    }
    let (status, body) = get(&s, "/v1/other/data/app/db");
    assert_eq!(status, 404);
    assert!(body["errors"][0]
        .as_str()
        .unwrap()
        .contains("no handler for route"));
    assert_eq!(get(&s, "/v1/secret/data/app/db?version=x").0, 400);
}

#[test]
fn wrong_or_missing_token_is_403() {
    let s = store();
    let denied = (403, json!({ "errors": ["permission denied"] }));
    assert_eq!(
        call(
            &s,
            "GET",
            "/v1/secret/data/app/db",
            Some("dev-root-tokeX"),
            None
        ),
        denied
    );
    assert_eq!(
        call(
            &s,
            "GET",
            "/v1/secret/data/app/db",
            Some("dev-root-token-longer"),
            None
        ),
        denied
    );
    assert_eq!(
        call(&s, "GET", "/v1/secret/data/app/db", None, None),
        denied
    );
    // Denied before routing, so a caller without the token cannot probe which paths exist.
    assert_eq!(
        call(&s, "GET", "/v1/secret/data/app/nope", None, None),
        denied
    );
    assert_eq!(
        call(
            &s,
            "POST",
            "/v1/secret/data/x",
            None,
            Some(r#"{"data":{}}"#)
        ),
        denied
    );
}

#[test]
fn writes_create_versions_and_honour_check_and_set() {
    let s = store();
    let (status, body) = call(
        &s,
        "POST",
        "/v1/secret/data/app/db",
        Some(TOKEN),
        Some(r#"{"data":{"value":"pw-3"}}"#),
    );
    assert_eq!((status, &body["data"]["version"]), (200, &json!(3)));
    assert_eq!(
        get(&s, "/v1/secret/data/app/db").1["data"]["data"],
        json!({ "value": "pw-3" })
    );
    assert_eq!(
        get(&s, "/v1/secret/data/app/db?version=2").1["data"]["data"]["value"],
        "pw-2"
    );

    let (status, body) = call(
        &s,
        "PUT",
        "/v1/secret/data/new/one",
        Some(TOKEN),
        Some(r#"{"data":{"k":"v"},"options":{"cas":0}}"#),
    );
    assert_eq!((status, &body["data"]["version"]), (200, &json!(1)));
    let (status, body) = call(
        &s,
        "PUT",
        "/v1/secret/data/new/one",
        Some(TOKEN),
        Some(r#"{"data":{"k":"w"},"options":{"cas":0}}"#),
    );
    assert_eq!(status, 400);
    assert!(body["errors"][0]
        .as_str()
        .unwrap()
        .contains("check-and-set"));

    // Malformed writes: no `data`, not JSON, a traversal path.
    for (path, body) in [
        ("/v1/secret/data/x", r#"{"nodata":1}"#),
        ("/v1/secret/data/x", "not json"),
        ("/v1/secret/data/a/../b", r#"{"data":{}}"#),
    ] {
        assert_eq!(call(&s, "POST", path, Some(TOKEN), Some(body)).0, 400, "{path} {body}");
    }
    assert_eq!(
        call(&s, "DELETE", "/v1/secret/data/app/db", Some(TOKEN), None).0,
        405
    );
}

#[test]
fn health_needs_no_token() {
    let s = store();
    let (status, body) = call(&s, "GET", "/v1/sys/health", None, None);
    assert_eq!(
        (status, &body["sealed"], &body["initialized"]),
        (200, &json!(false), &json!(true))
    );
}

#[test]
fn generated_token_works_and_is_random() {
    let a = DevStore::start(DevStoreOptions::default()).unwrap();
    let b = DevStore::start(DevStoreOptions::default()).unwrap();
    assert!(a.token().starts_with("hvs.") && a.token().len() == 36);
    assert_ne!(a.token(), b.token());
    let (status, _) = call(&a, "GET", "/v1/secret/data/none", Some(a.token()), None);
    assert_eq!(status, 404, "authorized, but nothing seeded");
    assert!(a.url().starts_with("http://127.0.0.1:"));
}

#[test]
fn refuses_non_loopback_and_bad_tokens() {
    let public = DevStoreOptions {
        listen: "0.0.0.0:0".parse().unwrap(),
        ..Default::default()
    };
    assert!(DevStore::start(public)
        .unwrap_err()
        .to_string()
        .contains("loopback"));
    let spaced = DevStoreOptions {
        token: Some("has space".into()),
        ..Default::default()
    };
    let err = DevStore::start(spaced).unwrap_err().to_string();
    assert!(
        !err.contains("has space"),
        "the error must not echo the token"
    );
}

#[test]
fn shutdown_stops_listening_and_debug_hides_secrets() {
    let s = store();
    let addr = s.addr();
    assert!(!format!("{s:?}").contains(TOKEN));
    let opts = DevStoreOptions {
        token: Some(TOKEN.into()),
        ..Default::default()
    };
    assert!(!format!("{opts:?}").contains(TOKEN));
    s.shutdown();
    assert!(TcpStream::connect(addr).is_err());
}

#[test]
fn seed_files_in_json_and_toml() {
    let json = r#"{ "app/db": { "value": "a", "port": 5432 }, "app/key": [ { "value": "v1" }, { "value": "v2" } ] }"#;
    let toml = "[\"app/db\"]\nvalue = \"a\"\nport = 5432\n[[\"app/key\"]]\nvalue = \"v1\"\n[[\"app/key\"]]\nvalue = \"v2\"\n";
    for seed in [
        Seed::from_json_str(json, "s.json").unwrap(),
        Seed::from_toml_str(toml, "s.toml").unwrap(),
    ] {
        assert_eq!(seed.paths().collect::<Vec<_>>(), ["app/db", "app/key"]);
        assert!(
            !format!("{seed:?}").contains("v2"),
            "Debug must not show values"
        );
        let s = DevStore::start(DevStoreOptions {
            token: Some(TOKEN.into()),
            seed,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            get(&s, "/v1/secret/data/app/db").1["data"]["data"],
            json!({ "value": "a", "port": 5432 })
        );
        let (_, key) = get(&s, "/v1/secret/data/app/key");
        assert_eq!(
            (
                &key["data"]["data"]["value"],
                &key["data"]["metadata"]["version"]
            ),
            (&json!("v2"), &json!(2))
        );
    }
}

#[test]
fn seed_errors_name_the_file_and_key_but_not_values() {
    let cases = [
        (
            Seed::from_json_str(r#"{"a//b": {"value": "x"}}"#, "s.json"),
            "\"a//b\"",
        ),
        (
            Seed::from_json_str(r#"{"app/db": "sekrit"}"#, "s.json"),
            "\"app/db\"",
        ),
        (Seed::from_json_str(r#"{"app/db": []}"#, "s.json"), "empty"),
        (
            Seed::from_json_str(r#"{"app/db": [{"value": "sekrit"}, 3]}"#, "s.json"),
            "version 2",
        ),
        (
            Seed::from_json_str(r#"{"app/db": {"value": null}}"#, "s.json"),
            "\"value\"",
        ),
        (
            Seed::from_json_str(r#"{"app/db": {"value": "sekrit""#, "s.json"),
            "line 1",
        ),
        (
            Seed::from_toml_str("[app.db]\nvalue = \"sekrit\"\n", "s.toml"),
            "[\"app/db\"]",
        ),
        (
            Seed::from_toml_str("[\"app/db\"]\nvalue = \"sekrit\n", "s.toml"),
            "line 2",
        ),
    ];
    for (result, expected) in cases {
        let err = format!("{:#}", result.expect_err("an error"));
        assert!(err.starts_with("seed file s."), "{err}");
        assert!(err.contains(expected), "{err} should mention {expected}");
        assert!(!err.contains("sekrit"), "{err} leaks a value");
    }
    let missing = Seed::from_file(std::path::Path::new("/nonexistent/seed.toml"))
        .err()
        .unwrap();
    assert!(format!("{missing:#}").contains("/nonexistent/seed.toml"));
    let unknown = Seed::from_file(std::path::Path::new("seed.yaml"))
        .err()
        .unwrap();
    assert!(format!("{unknown:#}").contains("seed.yaml"));
}
