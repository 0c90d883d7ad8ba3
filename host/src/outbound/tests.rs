//! The pooled sender against raw TCP servers whose behaviour each test controls.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};

use super::*;

/// How a test server answers each request it reads.
#[derive(Clone, Copy)]
enum Behaviour {
    /// `200` with body `ok`, keep-alive.
    Answer,
    /// Reads the request, never answers.
    Silent,
    /// Headers promising 10 bytes, then 2 bytes, then nothing.
    StallBody,
    /// Writes plain text as soon as it accepts (not TLS).
    NotTls,
}

struct Server {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
}

fn server(behaviour: Behaviour) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            count.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || serve(stream, behaviour));
        }
    });
    Server { addr, accepted }
}

fn serve(mut stream: TcpStream, behaviour: Behaviour) {
    if let Behaviour::NotTls = behaviour {
        let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
        std::thread::sleep(Duration::from_secs(2));
        return;
    }
    let mut held = Vec::new();
    loop {
        // Requests here are bodiless GETs: read up to the blank line.
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => return,
            }
        }
        let reply: &[u8] = match behaviour {
            Behaviour::Answer => b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
            Behaviour::Silent => b"",
            Behaviour::StallBody => b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nab",
            Behaviour::NotTls => unreachable!("answered on accept"),
        };
        if stream.write_all(reply).is_err() {
            return;
        }
        if !matches!(behaviour, Behaviour::Answer) {
            held.push(stream.try_clone().unwrap()); // keep the connection open, silently
        }
    }
}

fn request(addr: SocketAddr) -> http::Request<WasiBody> {
    request_to("http", addr)
}

fn request_to(scheme: &str, addr: SocketAddr) -> http::Request<WasiBody> {
    http::Request::get(format!("{scheme}://{addr}/v1/x"))
        .header(http::header::HOST, addr.to_string())
        .body(Empty::new().map_err(|never| match never {}).boxed_unsync())
        .unwrap()
}

fn options(connect: u64, first_byte: u64, between: u64) -> Option<RequestOptions> {
    Some(RequestOptions {
        connect_timeout: Some(Duration::from_millis(connect)),
        first_byte_timeout: Some(Duration::from_millis(first_byte)),
        between_bytes_timeout: Some(Duration::from_millis(between)),
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap()
}

#[test]
fn sequential_requests_share_one_connection() {
    let rt = runtime();
    let server = server(Behaviour::Answer);
    let outbound = Outbound::new(rt.handle().clone(), 8);
    for _ in 0..20 {
        let body = rt.block_on(async {
            let (response, _io) = outbound.clone().send(request(server.addr), options(1000, 1000, 1000)).await.unwrap();
            assert_eq!(response.status(), 200);
            response.into_body().collect().await.unwrap().to_bytes()
        });
        assert_eq!(&body[..], b"ok");
    }
    // hyper-util returns a connection to the pool from a background task, so a request can
    // occasionally race it and open a second one; per-request connections would make it 20.
    let accepted = server.accepted.load(Ordering::SeqCst);
    assert!((1..=3).contains(&accepted), "20 sequential requests opened {accepted} connections");
}

#[test]
fn first_byte_timeout_is_honoured() {
    let rt = runtime();
    let server = server(Behaviour::Silent);
    let outbound = Outbound::new(rt.handle().clone(), 8);
    let started = Instant::now();
    let result = rt.block_on(outbound.send(request(server.addr), options(1000, 200, 1000)));
    let elapsed = started.elapsed();
    assert!(matches!(result, Err(HttpError::ConnectionReadTimeout)), "{:?}", result.err());
    assert!(elapsed >= Duration::from_millis(200) && elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[test]
fn between_bytes_timeout_is_honoured() {
    let rt = runtime();
    let server = server(Behaviour::StallBody);
    let outbound = Outbound::new(rt.handle().clone(), 8);
    let started = Instant::now();
    let result = rt.block_on(async {
        let (response, _io) = outbound.send(request(server.addr), options(1000, 1000, 200)).await.unwrap();
        response.into_body().collect().await.map(|c| c.to_bytes())
    });
    let elapsed = started.elapsed();
    assert!(matches!(result, Err(HttpError::ConnectionReadTimeout)), "{:?}", result.err());
    assert!(elapsed >= Duration::from_millis(200) && elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[test]
fn refused_connections_are_connect_errors() {
    let rt = runtime();
    let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap(); // closed again
    let outbound = Outbound::new(rt.handle().clone(), 8);
    let result = rt.block_on(outbound.send(request(addr), options(1000, 1000, 1000)));
    match result {
        Err(HttpError::Connect(e)) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused),
        other => panic!("expected a connect error, got {:?}", other.err()),
    }
}

#[test]
fn connect_timeout_is_honoured() {
    // A listener with a full accept queue: further SYNs are dropped, so connect hangs.
    let rt = runtime();
    let (addr, _listener, _queued) = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(1).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut queued = Vec::new();
        for _ in 0..4 {
            if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_millis(200), tokio::net::TcpStream::connect(addr)).await {
                queued.push(s);
            }
        }
        (addr, listener, queued)
    });
    let outbound = Outbound::new(rt.handle().clone(), 8);
    let started = Instant::now();
    let result = rt.block_on(outbound.send(request(addr), options(300, 5000, 5000)));
    let elapsed = started.elapsed();
    assert!(matches!(result, Err(HttpError::ConnectionTimeout)), "{:?}", result.err());
    assert!(elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[test]
fn https_goes_through_tls() {
    // A server that is not TLS: the handshake must fail as a TLS error (not hang, not be sent
    // as plain HTTP).
    let rt = runtime();
    let server = server(Behaviour::NotTls);
    let outbound = Outbound::new(rt.handle().clone(), 8);
    let result = rt.block_on(outbound.send(request_to("https", server.addr), options(1000, 1000, 1000)));
    assert!(matches!(result, Err(HttpError::Tls(_))), "{:?}", result.err());
}
