//! `serve` against hostile callers on the transport: partial requests (slowloris) and idle
//! connections are closed after the header deadline, open connections are capped, a connection
//! carries a bounded number of requests, failed authentications close the connection (and slow
//! down the address), and a loopback listener answers only loopback `Host` names (DNS
//! rebinding). Raw TCP where the bytes matter; no fixed ports.

#[path = "serve/support.rs"]
#[allow(dead_code)] // each test file compiles its own copy and uses part of it
mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use edge_secrets_host::serve::ServeOptions;
use edge_secrets_tests::Fault;
use support::{options, App, DB_PASSWORD, DEV_TOKEN};

/// Generous: every deadline under test is well below it.
const CLOSED_WITHIN: Duration = Duration::from_secs(10);

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(CLOSED_WITHIN)).unwrap();
    stream
}

/// Everything the server sends until it closes the connection; `Err` when it keeps the
/// connection open past `CLOSED_WITHIN`. A reset counts as closed.
fn read_until_closed(stream: &mut TcpStream) -> Result<String, String> {
    let mut bytes = Vec::new();
    match stream.read_to_end(&mut bytes) {
        Ok(_) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) => Err(format!("still open after {CLOSED_WITHIN:?} ({e}); got {} bytes", bytes.len())),
    }
}

fn request(path: &str, host: &str, token: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\r\n")
}

/// The statuses of the responses in `raw`, in order. A status line can follow a body on the
/// same line (bodies end without a newline); no body here contains "HTTP/1.1 ".
fn statuses(raw: &str) -> Vec<u16> {
    raw.match_indices("HTTP/1.1 ").map(|(at, _)| raw[at + 9..at + 12].parse().unwrap()).collect()
}

#[test]
fn partial_requests_are_closed_after_the_header_timeout_while_token_holders_are_served() {
    let app = App::start_serving(ServeOptions { header_read_timeout: Duration::from_millis(400), max_connections: 1000, ..options() }, |p| p);
    let addr = app.server.local_addr();
    let mut partial: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut stream = connect(addr);
            stream.write_all(b"GET /v1/secrets/dev/app/db HT").unwrap();
            stream
        })
        .collect();

    let read = app.get("/v1/secrets/dev/app/db", Some(DEV_TOKEN));
    assert_eq!((read.status, &read.body[..]), (200, DB_PASSWORD.as_bytes()), "a token holder is served among 300 partial requests");

    for (i, stream) in partial.iter_mut().enumerate() {
        read_until_closed(stream).unwrap_or_else(|e| panic!("partial connection {i}: {e}"));
    }
    assert_eq!(app.backend.request_count(), 1, "no partial request reached the app");
}

#[test]
fn a_connection_idle_after_a_request_is_closed() {
    let app = App::start_serving(ServeOptions { header_read_timeout: Duration::from_millis(400), ..options() }, |p| p);
    let addr = app.server.local_addr();
    let mut stream = connect(addr);
    stream.write_all(request("/v1/secrets/dev/app/db", &addr.to_string(), DEV_TOKEN).as_bytes()).unwrap();
    let raw = read_until_closed(&mut stream).expect("the idle keep-alive connection is closed");
    assert_eq!(statuses(&raw), [200], "answered, then closed for idling");
}

#[test]
fn connections_beyond_the_cap_wait_until_one_closes() {
    let app = App::start_serving(ServeOptions { max_connections: 2, header_read_timeout: Duration::from_secs(60), ..options() }, |p| p);
    let addr = app.server.local_addr();
    // Two connections that send nothing hold both slots (the header deadline is a minute).
    let held: Vec<TcpStream> = (0..2).map(|_| connect(addr)).collect();
    // The kernel completes a third connection (listen backlog) but the server does not take it.
    let mut third = connect(addr);
    third.write_all(request("/healthz", "localhost", DEV_TOKEN).as_bytes()).unwrap();
    third.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let mut byte = [0u8; 1];
    let waited = third.read(&mut byte);
    assert!(
        waited.as_ref().is_err_and(|e| matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "the third connection was served while two held the cap: {waited:?}"
    );
    drop(held);
    third.set_read_timeout(Some(CLOSED_WITHIN)).unwrap();
    let n = third.read(&mut byte).expect("served once a slot is free");
    assert_eq!((n, byte[0]), (1, b'H'), "a response starts");
}

#[test]
fn a_connection_carries_at_most_max_requests_per_connection() {
    let app = App::start_serving(ServeOptions { max_requests_per_connection: 3, header_read_timeout: Duration::from_secs(60), ..options() }, |p| p);
    let addr = app.server.local_addr();
    let mut stream = connect(addr);
    // Four pipelined requests: three answered, the third with `Connection: close`, then EOF.
    let one = request("/v1/secrets/dev/app/db", "localhost", DEV_TOKEN);
    stream.write_all(one.repeat(4).as_bytes()).unwrap();
    let raw = read_until_closed(&mut stream).expect("closed after the third answer");
    assert_eq!(statuses(&raw), [200, 200, 200]);
    assert!(raw.to_ascii_lowercase().contains("connection: close"), "the last answer says so");
}

#[test]
fn failed_authentications_close_the_connection_with_429_and_others_still_read() {
    let app = App::start_serving(ServeOptions { max_auth_failures_per_connection: 5, header_read_timeout: Duration::from_secs(60), ..options() }, |p| p);
    let addr = app.server.local_addr();
    let mut guesser = connect(addr);
    // Five wrong guesses are answered; the sixth request (even with the right token) is
    // refused without running the app, and the connection is closed.
    let mut guesses = request("/v1/secrets/dev/app/db", "localhost", "wrong-guess").repeat(6);
    guesses.push_str(&request("/v1/secrets/dev/app/db", "localhost", DEV_TOKEN));
    guesser.write_all(guesses.as_bytes()).unwrap();
    let raw = read_until_closed(&mut guesser).expect("the guessing connection is closed");
    assert_eq!(statuses(&raw), [403, 403, 403, 403, 403, 429]);
    let refusal = &raw[raw.rfind("HTTP/1.1 429").unwrap()..].to_ascii_lowercase();
    assert!(refusal.contains("retry-after: 10") && refusal.contains("\"rate-limited\""), "{refusal}");
    assert!(!raw.contains(DB_PASSWORD));

    let read = app.get("/v1/secrets/dev/app/db", Some(DEV_TOKEN));
    assert_eq!((read.status, &read.body[..]), (200, DB_PASSWORD.as_bytes()), "a fresh connection with the token reads");
}

#[test]
fn a_backend_refusing_a_valid_caller_is_not_counted_as_a_failed_authentication() {
    let app = App::start_serving(ServeOptions { header_read_timeout: Duration::from_secs(60), ..options() }, |p| p.set("dev", "retry.attempts", 1));
    app.backend.set_fault_always(Some(Fault::vault_error(403, "permission denied")));
    let mut stream = connect(addr_of(&app));
    let mut reads = request("/v1/secrets/dev/app/db", "localhost", DEV_TOKEN).repeat(7);
    reads.push_str("GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(reads.as_bytes()).unwrap();
    let raw = read_until_closed(&mut stream).unwrap();
    assert_eq!(statuses(&raw), [403, 403, 403, 403, 403, 403, 403, 200], "seven permission-denied answers, no 429");
    assert_eq!(raw.matches("permission-denied").count(), 7, "the app's bodies pass through unchanged");
}

fn addr_of(app: &App) -> SocketAddr {
    app.server.local_addr()
}

#[test]
fn an_address_with_many_failures_gets_its_failing_answers_late() {
    let app = App::start_serving(options(), |p| p);
    let addr = app.server.local_addr();
    let guess = request("/v1/secrets/dev/app/db", "localhost", "wrong-guess");
    // 20 failures from 127.0.0.1 are free (four connections, five each).
    for _ in 0..4 {
        let mut stream = connect(addr);
        stream.write_all(guess.repeat(5).as_bytes()).unwrap();
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
        assert_eq!(statuses(&read_until_closed(&mut stream).unwrap()), [403, 403, 403, 403, 403, 429]);
    }
    // The next failures are answered only after a growing delay (50 ms, then 100 ms). A lower
    // bound: the server sleeps at least that long, however slow the machine.
    let mut stream = connect(addr);
    let started = Instant::now();
    stream.write_all(guess.repeat(2).as_bytes()).unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    assert_eq!(statuses(&read_until_closed(&mut stream).unwrap()), [403, 403, 200]);
    assert!(started.elapsed() >= Duration::from_millis(150), "two failing answers delayed by 50 + 100 ms: {:?}", started.elapsed());

    let read = app.get("/v1/secrets/dev/app/db", Some(DEV_TOKEN));
    assert_eq!(read.status, 200, "a successful answer is not delayed or refused");
}

#[test]
fn a_loopback_listener_refuses_other_host_names() {
    let app = App::start(false);
    let addr = app.server.local_addr();
    for host in ["evil.example", "evil.example:80", "10.0.0.1", "localhost.evil.example"] {
        let mut stream = connect(addr);
        stream.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
        let raw = read_until_closed(&mut stream).unwrap();
        assert_eq!(statuses(&raw), [421], "{host}");
        assert!(raw.contains(r#""error":"misdirected-request""#), "{host}: the JSON error shape");
        let mut stream = connect(addr);
        stream.write_all(format!("{}\r\nConnection: close\r\n\r\n", request("/v1/secrets/dev/app/db", host, DEV_TOKEN).trim_end()).as_bytes()).unwrap();
        assert_eq!(statuses(&read_until_closed(&mut stream).unwrap()), [421], "{host}: secret reads too");
    }
    assert_eq!(app.backend.request_count(), 0, "refused before the app ran");
    for host in ["localhost".to_string(), format!("localhost:{}", addr.port()), addr.to_string(), "127.0.0.2".into(), "[::1]:1".into()] {
        let mut stream = connect(addr);
        stream.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
        assert_eq!(statuses(&read_until_closed(&mut stream).unwrap()), [200], "{host}");
    }
}
