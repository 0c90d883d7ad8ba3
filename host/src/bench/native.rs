//! The native baselines: the guest's core (`edge_secrets_guest::Provider`) compiled into this
//! binary with native clock, randomness and HTTP, and a plain keep-alive HTTP client.
//!
//! The HTTP client is the stack the host's outbound pool is built from (hyper-util's legacy
//! pooled client over `HttpConnector` with `TCP_NODELAY`, on a 2-worker tokio runtime like the
//! host's I/O runtime), called synchronously the way the guest's calls reach it. The difference
//! between the two miss figures is then what the component and `wasi:http` add, not a
//! difference between HTTP clients.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use edge_secrets_guest::config::{self, Environment};
use edge_secrets_guest::engine::{Clock, Io, Outbound, Random, Secret, SecretRequest, Ticket, Transport};
use edge_secrets_guest::http::{HttpRequest, HttpResponse, Scheme, TransportError};
use edge_secrets_guest::validate::VersionSel;
use edge_secrets_guest::{backend, Provider};

/// A blocking facade over a pooled keep-alive HTTP/1.1 client.
pub struct NativeHttp {
    runtime: tokio::runtime::Runtime,
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl NativeHttp {
    pub fn new() -> Result<NativeHttp> {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).thread_name("bench-native-http").enable_all().build()?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(NativeHttp { runtime, client })
    }

    /// Sends a bodiless GET (all the core ever sends) and reads the body up to `max_body`,
    /// driving the exchange on the calling thread (`block_on`), like any synchronous caller.
    pub fn send(&self, request: &HttpRequest, timeout: Duration, max_body: usize) -> Result<HttpResponse, TransportError> {
        let exchange = self.exchange(request, timeout, max_body)?;
        self.runtime.block_on(exchange)
    }

    /// The same exchange run as a spawned task that the calling thread waits for: the shape
    /// of wasmtime-wasi-http's outgoing handler (it spawns the send; the guest then blocks in
    /// `poll`). Next to [`NativeHttp::send`] it prices that extra task hand-off on its own.
    pub fn send_spawned(&self, request: &HttpRequest, timeout: Duration, max_body: usize) -> Result<HttpResponse, TransportError> {
        let exchange = self.exchange(request, timeout, max_body)?;
        let task = self.runtime.spawn(exchange);
        self.runtime.block_on(task).unwrap_or_else(|e| Err(TransportError::Protocol(e.to_string())))
    }

    fn exchange(&self, request: &HttpRequest, timeout: Duration, max_body: usize) -> Result<impl Future<Output = Result<HttpResponse, TransportError>> + Send + 'static, TransportError> {
        if request.scheme != Scheme::Http {
            // Loopback only: the bench never needs TLS.
            return Err(TransportError::Protocol("the bench's native client speaks plain http only".into()));
        }
        let mut builder = http::Request::get(format!("http://{}{}", request.authority, request.path_and_query));
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_slice());
        }
        let req = builder.body(Empty::new()).map_err(|e| TransportError::Protocol(e.to_string()))?;
        let client = self.client.clone(); // shares the pool
        let exchange = async move {
            let response = client.request(req).await.map_err(|e| TransportError::Connect(e.to_string()))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, max_body).collect().await.map_err(|_| TransportError::BodyTooLarge { limit: max_body })?;
            let headers = parts.headers.iter().map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec())).collect();
            Ok(HttpResponse { status: parts.status.as_u16(), headers, body: body.to_bytes().to_vec() })
        };
        Ok(async move { tokio::time::timeout(timeout, exchange).await.unwrap_or(Err(TransportError::Timeout)) })
    }
}

struct NativeClock(Instant);

impl Clock for NativeClock {
    fn now_ms(&self) -> u64 {
        self.0.elapsed().as_millis() as u64
    }
    fn wall_ms(&self) -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
    }
    fn sleep_ms(&mut self, ms: u64) {
        std::thread::sleep(Duration::from_millis(ms));
    }
}

/// xorshift64: backoff jitter needs no cryptographic quality.
struct NativeRandom(u64);

impl Random for NativeRandom {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Runs each request to completion in `start` (the bench reads one secret at a time, so there
/// is no concurrency to lose) and hands the results out in `wait`.
struct NativeTransport<'a> {
    http: &'a NativeHttp,
    next: u64,
    finished: Vec<(Ticket, Result<HttpResponse, TransportError>)>,
}

impl Transport for NativeTransport<'_> {
    fn start(&mut self, outbound: Outbound) -> Ticket {
        let ticket = Ticket(self.next);
        self.next += 1;
        let result = self.http.send(&outbound.request, Duration::from_millis(outbound.timeout_ms), outbound.max_body_bytes);
        self.finished.push((ticket, result));
        ticket
    }

    fn wait(&mut self, _until_ms: Option<u64>) -> Vec<(Ticket, Result<HttpResponse, TransportError>)> {
        std::mem::take(&mut self.finished)
    }
}

/// The guest's core running natively against the same configuration as the component.
pub struct NativeCore<'h> {
    provider: Provider,
    clock: NativeClock,
    random: NativeRandom,
    transport: NativeTransport<'h>,
    /// Its config store (the credentials are read from it at once, by `config::load`).
    config: BTreeMap<String, String>,
}

impl<'h> NativeCore<'h> {
    pub fn new(config: &BTreeMap<String, String>, http: &'h NativeHttp) -> Result<NativeCore<'h>> {
        let environments = config::load(config).map_err(|e| anyhow!("native core: {}", e.message))?;
        Ok(NativeCore {
            provider: Provider::new(environments),
            clock: NativeClock(Instant::now()),
            random: NativeRandom(0x9e37_79b9_7f4a_7c15),
            transport: NativeTransport { http, next: 0, finished: Vec::new() },
            config: config.clone(),
        })
    }

    pub fn get(&mut self, request: &SecretRequest) -> Result<Secret> {
        // In-memory state only, like the component's bench policy: the hit path is what is measured.
        let mut io = Io {
            clock: &mut self.clock,
            random: &mut self.random,
            transport: &mut self.transport,
            store: &mut edge_secrets_guest::shared::NoStore,
            config: &self.config,
        };
        // The core's errors carry names and reasons, never values.
        self.provider.get(request, &mut io).map_err(|e| anyhow!("native core: {e}"))
    }
}

/// The exact request (URL and headers, credential included) the core sends for `name`'s latest
/// version in `environment`, so the native miss baseline sends what the component sends.
pub fn backend_request(config: &BTreeMap<String, String>, environment: &str, name: &str) -> Result<HttpRequest> {
    let environments: Vec<Environment> = config::load(config).map_err(|e| anyhow!("bench config: {}", e.message))?;
    let env = environments.iter().find(|e| e.spec.name == environment).context("bench config: environment missing")?;
    let edge_secrets_guest::auth::Credential::Token(token) = env.credential(0).context("bench config: no credential read")? else {
        anyhow::bail!("bench config: the bench environment uses a static token");
    };
    backend::request(env.spec.primary(), edge_secrets_guest::auth::Presented::Token(token), name, &VersionSel::Latest, 0)
        .map_err(|e| anyhow!("bench config: {e}"))
}
