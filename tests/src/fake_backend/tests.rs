//! Short checks of the fake itself, with a minimal keep-alive HTTP/1.1 client on std sockets.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::*;
use crate::codec::{base64_encode, crc32c};

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One connection; requests on it reuse it (keep-alive).
struct Client(BufReader<TcpStream>);

impl Client {
    fn new(backend: &FakeBackend) -> Client {
        Client(BufReader::new(TcpStream::connect(backend.addr()).unwrap()))
    }

    fn get(&mut self, target: &str, headers: &[(&str, &str)]) -> std::io::Result<Reply> {
        let mut req = format!("GET {target} HTTP/1.1\r\nHost: fake\r\n");
        for (n, v) in headers {
            req += &format!("{n}: {v}\r\n");
        }
        self.0.get_mut().write_all((req + "\r\n").as_bytes())?;
        let mut line = String::new();
        if self.0.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let status = line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.0.read_line(&mut line)?;
            match line.trim_end().split_once(": ") {
                Some((n, v)) => headers.push((n.to_ascii_lowercase(), v.to_owned())),
                None => break,
            }
        }
        let mut reply = Reply {
            status,
            headers,
            body: Vec::new(),
        };
        if let Some(len) = reply.header("content-length") {
            reply.body.resize(len.parse().unwrap(), 0);
            self.0.read_exact(&mut reply.body)?;
        } else {
            // chunked: hex size line, data, CRLF; a zero size ends it
            loop {
                line.clear();
                self.0.read_line(&mut line)?;
                let size = usize::from_str_radix(line.trim_end(), 16).unwrap();
                let start = reply.body.len();
                reply.body.resize(start + size + 2, 0);
                self.0.read_exact(&mut reply.body[start..])?;
                reply.body.truncate(start + size);
                if size == 0 {
                    break;
                }
            }
        }
        Ok(reply)
    }
}

fn get(backend: &FakeBackend, target: &str, headers: &[(&str, &str)]) -> Reply {
    Client::new(backend).get(target, headers).unwrap()
}

#[test]
fn vault_versions_credentials_and_errors() {
    let b = FakeBackend::start();
    b.put_vault("app/db", 1, &[("value", "one")]);
    b.put_vault("app/db", 2, &[("value", "two"), ("user", "u")]);
    b.expect_vault_token("tok");
    b.expect_vault_namespace("ns");
    let ok = [("X-Vault-Token", "tok"), ("X-Vault-Namespace", "ns")];

    let latest = get(&b, "/v1/secret/data/app/db", &ok).json();
    assert_eq!(
        latest["data"]["data"],
        json!({ "value": "two", "user": "u" })
    );
    assert_eq!(latest["data"]["metadata"]["version"], 2);
    assert_eq!(
        get(&b, "/v1/secret/data/app/db?version=1", &ok).json()["data"]["data"]["value"],
        "one"
    );
    for target in [
        "/v1/secret/data/app/nope",
        "/v1/secret/data/app/db?version=9",
        "/v1/kv/data/app/db",
    ] {
        let r = get(&b, target, &ok);
        assert_eq!(
            (r.status, r.json()),
            (404, json!({ "errors": [] })),
            "{target}"
        );
    }
    b.delete_vault("app/db", 1);
    let deleted = get(&b, "/v1/secret/data/app/db?version=1", &ok);
    assert_eq!(
        (deleted.status, &deleted.json()["data"]["data"]),
        (404, &Value::Null)
    );

    let denied = json!({ "errors": ["permission denied"] });
    for headers in [
        &[("X-Vault-Token", "bad"), ok[1]][..],
        &[ok[0], ("X-Vault-Namespace", "other")],
        &[ok[1]],
    ] {
        let r = get(&b, "/v1/secret/data/app/db", headers);
        assert_eq!((r.status, r.json()), (403, denied.clone()));
    }
}

#[test]
fn gcp_payload_crc_and_errors() {
    let b = FakeBackend::start();
    b.put_gcp("p", "api-key", 1, b"first");
    b.put_gcp("p", "api-key", 4, &[0, 255, 7]);
    b.expect_gcp_token("g");
    let auth = [("Authorization", "Bearer g")];

    let r = get(
        &b,
        "/v1/projects/p/secrets/api-key/versions/latest:access",
        &auth,
    )
    .json();
    assert_eq!(r["name"], "projects/p/secrets/api-key/versions/4");
    assert_eq!(r["payload"]["data"], base64_encode(&[0, 255, 7]));
    assert_eq!(r["payload"]["dataCrc32c"], crc32c(&[0, 255, 7]).to_string());
    let v1 = get(
        &b,
        "/v1/projects/p/secrets/api-key/versions/1:access",
        &auth,
    )
    .json();
    assert_eq!(v1["payload"]["data"], base64_encode(b"first"));

    b.fail_next(1, Fault::BadCrc);
    let bad = get(
        &b,
        "/v1/projects/p/secrets/api-key/versions/1:access",
        &auth,
    )
    .json();
    assert_ne!(bad["payload"]["dataCrc32c"], crc32c(b"first").to_string());

    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], u16, &'a str);
    let cases: [Case; 4] = [
        (
            "/v1/projects/p/secrets/nope/versions/1:access",
            &auth,
            404,
            "NOT_FOUND",
        ),
        (
            "/v1/projects/p/secrets/api-key/versions/2:access",
            &auth,
            404,
            "NOT_FOUND",
        ),
        (
            "/v1/projects/p/secrets/api-key/versions/1:access",
            &[],
            401,
            "UNAUTHENTICATED",
        ),
        (
            "/v1/projects/p/secrets/api-key/versions/1:access",
            &[("Authorization", "Bearer x")],
            403,
            "PERMISSION_DENIED",
        ),
    ];
    for (target, headers, code, status) in cases {
        let r = get(&b, target, headers);
        assert_eq!(
            (
                r.status,
                &r.json()["error"]["code"],
                &r.json()["error"]["status"]
            ),
            (code, &json!(code), &json!(status))
        );
    }
}

#[test]
fn faults_queue_in_order_then_persist() {
    let b = FakeBackend::start();
    b.put_vault("a", 1, &[("value", "v")]);
    b.fail_next(1, Fault::vault_sealed());
    b.fail_next(1, Fault::gcp_error(429, "quota").retry_after("2"));
    b.fail_next(1, Fault::Truncated);
    b.fail_next(1, Fault::Malformed);
    let mut c = Client::new(&b);
    let sealed = c.get("/v1/secret/data/a", &[]).unwrap();
    assert_eq!(
        (sealed.status, sealed.json()),
        (503, json!({ "errors": ["Vault is sealed"] }))
    );
    let limited = c.get("/v1/secret/data/a", &[]).unwrap();
    assert_eq!(
        (limited.status, limited.header("retry-after")),
        (429, Some("2"))
    );
    assert_eq!(limited.json()["error"]["status"], "RESOURCE_EXHAUSTED");
    let truncated = c.get("/v1/secret/data/a", &[]).unwrap();
    assert_eq!(truncated.status, 200);
    assert!(serde_json::from_slice::<Value>(&truncated.body).is_err());
    assert!(
        serde_json::from_slice::<Value>(&c.get("/v1/secret/data/a", &[]).unwrap().body).is_err()
    );
    assert_eq!(
        c.get("/v1/secret/data/a", &[]).unwrap().status,
        200,
        "queue drained"
    );

    b.set_fault_always(Some(Fault::status(500, "{}")));
    assert_eq!(c.get("/v1/secret/data/a", &[]).unwrap().status, 500);
    assert_eq!(c.get("/v1/secret/data/a", &[]).unwrap().status, 500);
    b.set_fault_always(None);
    let start = Instant::now();
    b.fail_next(1, Fault::Delay(Duration::from_millis(50)));
    assert_eq!(c.get("/v1/secret/data/a", &[]).unwrap().status, 200);
    assert!(start.elapsed() >= Duration::from_millis(50));
}

#[test]
fn random_faults_replay_from_the_seed_and_are_counted() {
    // Status faults only, so every request gets an answer on one kept-alive connection.
    let statuses = |seed| {
        let b = FakeBackend::start();
        b.put_vault("a", 1, &[("value", "v")]);
        b.fail_next(1, Fault::status(500, "{}")); // queued faults still come first
        b.set_random_faults(seed, 30, vec![Fault::vault_sealed(), Fault::status(429, "{}")]);
        let mut c = Client::new(&b);
        let seen: Vec<u16> = (0..200).map(|_| c.get("/v1/secret/data/a", &[]).unwrap().status).collect();
        let faulted = seen.iter().filter(|&&s| s != 200).count() as u64;
        assert_eq!((b.request_count(), b.faults_injected()), (200, faulted));
        assert!((30..=100).contains(&faulted), "about 30 % of 199, plus the queued one: {faulted}");
        b.clear_faults();
        assert_eq!(c.get("/v1/secret/data/a", &[]).unwrap().status, 200, "clear_faults ends the mode");
        seen
    };
    assert_eq!(statuses(42), statuses(42));
    assert_ne!(statuses(42), statuses(43));
}

#[test]
fn huge_bodies_stream_with_and_without_length() {
    let b = FakeBackend::start();
    const LEN: u64 = 3 * 64 * 1024 + 5; // several chunks and a partial one
    b.fail_next(1, Fault::HugeBody(LEN));
    b.fail_next(1, Fault::HugeBodyDeclared(LEN));
    let mut c = Client::new(&b);
    let chunked = c
        .get("/v1/projects/p/secrets/s/versions/1:access", &[])
        .unwrap();
    assert_eq!(
        (
            chunked.header("transfer-encoding"),
            chunked.body.len() as u64
        ),
        (Some("chunked"), LEN)
    );
    assert!(chunked.body.starts_with(b"{\"name\""));
    let declared = c.get("/v1/secret/data/a", &[]).unwrap();
    assert_eq!(
        (
            declared.header("content-length"),
            declared.body.len() as u64
        ),
        (Some("196613"), LEN)
    );
}

#[test]
fn close_and_hang_end_without_answers_and_drop_still_returns() {
    let b = FakeBackend::start();
    b.fail_next(1, Fault::CloseConnection);
    let err = Client::new(&b)
        .get("/v1/secret/data/a", &[])
        .err()
        .expect("no response");
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
        ),
        "{err}"
    );

    b.set_fault_always(Some(Fault::Hang));
    let mut hung = Client::new(&b);
    hung.0
        .get_mut()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let waiter =
        std::thread::spawn(move || hung.get("/v1/secret/data/a", &[]).err().map(|e| e.kind()));
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.request_count() < 2 {
        assert!(Instant::now() < deadline, "the hung request never arrived");
        std::thread::yield_now();
    }
    drop(b); // must not wait for the hung request
    let kind = waiter.join().unwrap();
    assert!(
        matches!(
            kind,
            Some(std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset)
        ),
        "{kind:?}"
    );
}

#[test]
fn counts_connections_and_records_requests() {
    let b = FakeBackend::start();
    let mut c = Client::new(&b);
    c.get(
        "/v1/secret/data/a?version=2",
        &[("X-Vault-Token", "env-a-token")],
    )
    .unwrap();
    c.get("/v1/secret/data/b", &[]).unwrap();
    get(
        &b,
        "/v1/projects/p/secrets/s/versions/latest:access",
        &[("Authorization", "Bearer g")],
    );
    assert_eq!((b.request_count(), b.connection_count()), (3, 2));
    let log = b.requests();
    assert_eq!(
        (log[0].method.as_str(), log[0].path_and_query.as_str()),
        ("GET", "/v1/secret/data/a?version=2")
    );
    assert_eq!(log[0].header("x-vault-token"), Some("env-a-token"));
    assert!(b.any_header_contains("env-a-token") && !b.any_header_contains("env-b-token"));
    assert!(
        !format!("{log:?}").contains("env-a-token"),
        "Debug redacts credentials"
    );
    b.reset_counts();
    assert_eq!(
        (b.request_count(), b.connection_count(), b.requests().len()),
        (0, 0, 0)
    );
}

/// Sends one raw POST and returns the status code.
fn post_status(backend: &FakeBackend, framing: &str, body: &str) -> u16 {
    let mut stream = TcpStream::connect(backend.addr()).unwrap();
    let head = format!("POST /v1/auth/approle/login HTTP/1.1\r\nHost: fake\r\nConnection: close\r\n{framing}\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    reply.split(' ').nth(1).unwrap().parse().unwrap()
}

#[test]
fn post_bodies_must_be_framed_by_content_length() {
    let backend = FakeBackend::start();
    let json = r#"{"role_id":"r","secret_id":"s"}"#;
    let chunked = format!("{:x}\r\n{json}\r\n0\r\n\r\n", json.len());
    assert_eq!(post_status(&backend, "Transfer-Encoding: chunked\r\n", &chunked), 411);
    assert_eq!(post_status(&backend, "", ""), 411, "no length at all");
    let framed = post_status(&backend, &format!("Content-Length: {}\r\n", json.len()), json);
    assert_ne!(framed, 411, "a Content-Length body is read");
}
