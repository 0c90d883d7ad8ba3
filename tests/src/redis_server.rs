//! A throwaway `redis-server` on a free loopback port, stopped when dropped: the Redis that
//! several hosts share in the shared-state tests. `./scripts/test` installs the Debian package
//! when it is missing, so a missing binary is a test failure, not a skip.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    child: Child,
    addr: SocketAddr,
}

impl RedisServer {
    /// Starts `redis-server` (no persistence, loopback only) and waits until it answers PING.
    pub fn start() -> RedisServer {
        // redis-server cannot bind port 0 and report it, so take a free port from the kernel
        // and hand it over; a clash with another process in between makes the start fail loudly.
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is not installed (./scripts/test installs the Debian package redis-server)");
        let server = RedisServer { child, addr: SocketAddr::from(([127, 0, 0, 1], port)) };
        let started = Instant::now();
        while !server.answers_ping() {
            assert!(started.elapsed() < Duration::from_secs(10), "redis-server did not answer on {}", server.addr);
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    fn answers_ping(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)) else { return false };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok() && stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
