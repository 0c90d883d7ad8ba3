//! `edge-secrets serve` as a child process: start it on a free port (it prints the address it
//! bound), and send it one raw HTTP/1.1 GET.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::Duration;

/// A started `serve`: the child, the address it listens on, its stderr and what it has printed.
/// Keep `stderr` for as long as the child runs: a closed pipe would fail its next message.
#[allow(dead_code)] // not every test reads stderr and `seen` after the start
pub struct Started {
    pub child: Child,
    pub addr: SocketAddr,
    pub stderr: BufReader<ChildStderr>,
    pub seen: String,
}

/// Runs `edge-secrets serve --listen 127.0.0.1:0 <args>` with `envs` and waits for its
/// "listening on" line.
pub fn start(args: &[&str], envs: &[(&str, &str)]) -> Started {
    let mut command = Command::new(env!("CARGO_BIN_EXE_edge-secrets"));
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .env("XDG_CACHE_HOME", Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-cache"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (name, value) in envs {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("start edge-secrets serve");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let addr = loop {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "serve exited early: {seen}");
        seen.push_str(&line);
        if let Some(rest) = line.split("listening on http://").nth(1).or_else(|| line.split("listening on https://").nth(1)) {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    Started { child, addr, stderr, seen }
}

/// `GET path` with a bearer token on a fresh connection; the raw response.
pub fn get(addr: SocketAddr, path: &str, token: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}
