//! A Vault-KV-v2-compatible secret store for local development (`edge-secrets dev`).
//!
//! Like `vault server -dev`: in memory, seeded at start, one root token, plain HTTP. It serves
//! the routes the component uses, with Vault's status codes and JSON shapes:
//!
//! - `GET  /v1/secret/data/{path}[?version=N]` — read (latest, or version N; 0 = latest)
//! - `POST|PUT /v1/secret/data/{path}` with `{"data":{...},"options":{"cas":N}?}` — new version
//! - `GET  /v1/sys/health` — unauthenticated health
//!
//! Everything but health needs the root token in `X-Vault-Token` (or `Authorization: Bearer`);
//! a missing or wrong token gets `403 {"errors":["permission denied"]}`. Unknown secrets and
//! versions get `404 {"errors":[]}`.
//!
//! It runs on its own thread with its own tokio runtime, so synchronous callers (the CLI, tests)
//! can start it, use it and drop it. Not for production: no TLS, no persistence, no policies.
//! It therefore only listens on loopback addresses.

mod api;
mod kv;
mod seed;
#[cfg(test)]
mod tests;

use std::convert::Infallible;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{header, Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::oneshot;

use api::{Api, Reply};
pub use seed::Seed;

/// The KV v2 mount the dev store serves (Vault's dev server mounts KV v2 at `secret/` too).
pub const MOUNT: &str = "secret";

/// Largest write body accepted; Vault's default is 32 MiB, but dev secrets are small.
const MAX_WRITE_BYTES: usize = 1 << 20;

/// How to start a [`DevStore`].
///
/// Holds the token and secret values, so `Debug` redacts the token and prints only seed paths.
#[derive(Clone)]
pub struct DevStoreOptions {
    /// Where to listen; must be a loopback address. Port 0 picks a free port.
    pub listen: SocketAddr,
    /// The root token; `None` generates a random one (see [`DevStore::token`]).
    pub token: Option<String>,
    /// The secrets present at start-up.
    pub seed: Seed,
}

impl Default for DevStoreOptions {
    fn default() -> Self {
        DevStoreOptions {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            token: None,
            seed: Seed::new(),
        }
    }
}

impl fmt::Debug for DevStoreOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevStoreOptions")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("seed", &self.seed)
            .finish()
    }
}

/// A running dev store. Stops when [`DevStore::shutdown`] is called or it is dropped.
pub struct DevStore {
    addr: SocketAddr,
    token: String,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl DevStore {
    /// Binds the listener and starts serving on a background thread. Errors (bad address,
    /// port in use, bad token) are returned here, before the caller relies on the store.
    pub fn start(options: DevStoreOptions) -> Result<DevStore> {
        let DevStoreOptions {
            listen,
            token,
            seed,
        } = options;
        if !listen.ip().is_loopback() {
            bail!("dev store: refusing to listen on {listen}: it serves secrets and its root token over plain HTTP, so only loopback addresses are allowed");
        }
        let token = match token {
            Some(t) => {
                // The token travels in an HTTP header; reject what cannot be sent there
                // (the message never includes the token itself).
                if t.is_empty() || !t.bytes().all(|b| b.is_ascii_graphic()) {
                    bail!("dev store: the root token must be non-empty printable ASCII without spaces");
                }
                t
            }
            None => random_token()?,
        };
        let listener = std::net::TcpListener::bind(listen)
            .with_context(|| format!("dev store: cannot listen on {listen}"))?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        // One thread is plenty for a dev store, and keeps it off the caller's runtime (if any).
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let listener = {
            let _context = runtime.enter(); // registering with the reactor needs a runtime context
            tokio::net::TcpListener::from_std(listener)?
        };
        let api = Arc::new(Api::new(token.clone(), kv::Kv::from_seed(seed)));
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("edge-secrets-dev-store".into())
            .spawn(move || {
                runtime.block_on(serve(listener, api, stopped));
                // Dropping the runtime cancels the connection tasks and closes their sockets.
                drop(runtime);
            })
            .context("dev store: cannot start its thread")?;
        Ok(DevStore {
            addr,
            token,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The base URL, e.g. `http://127.0.0.1:40123` (the component's Vault `url`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The dev store's root token: it can read and write every secret. It is a credential —
    /// hand it to the component's config, but do not log it beyond what a dev server prints.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Stops serving and waits for the server thread to finish. Open connections are closed.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(()); // Err only if the thread already ended
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for DevStore {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

impl fmt::Debug for DevStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevStore")
            .field("addr", &self.addr)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// 128 random bits, in Vault's service-token style (`hvs.` + hex).
fn random_token() -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| anyhow::anyhow!("dev store: no randomness for the root token: {e}"))?;
    Ok(bytes.iter().fold(String::from("hvs."), |mut s, b| {
        s.push_str(&format!("{b:02x}"));
        s
    }))
}

async fn serve(
    listener: tokio::net::TcpListener,
    api: Arc<Api>,
    mut stopped: oneshot::Receiver<()>,
) {
    loop {
        let stream = tokio::select! {
            _ = &mut stopped => return, // stop requested, or the DevStore vanished
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Usually out of file descriptors: back off instead of spinning.
                Err(_) => { tokio::time::sleep(Duration::from_millis(50)).await; continue; }
            },
        };
        let api = api.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(api.clone(), req));
            // The timer enables hyper's header-read timeout, so idle half-open clients are dropped.
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(
    api: Arc<Api>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let reply = match read_body(&parts.method, body).await {
        Ok(body) => api.handle(
            &parts.method,
            parts.uri.path(),
            parts.uri.query(),
            &parts.headers,
            &body,
        ),
        Err(reply) => reply,
    };
    let mut response = Response::builder()
        .status(reply.status)
        .header(header::CONTENT_TYPE, "application/json");
    if reply.no_store {
        response = response.header(header::CACHE_CONTROL, "no-store");
    }
    let body = if parts.method == Method::HEAD {
        Bytes::new()
    } else {
        Bytes::from(reply.body.to_string())
    };
    Ok(response
        .body(Full::new(body))
        .expect("static headers are valid"))
}

/// Collects a write's body (bounded); other methods' bodies are ignored.
async fn read_body(method: &Method, body: Incoming) -> Result<Bytes, Reply> {
    if !matches!(*method, Method::POST | Method::PUT) {
        return Ok(Bytes::new());
    }
    match Limited::new(body, MAX_WRITE_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(Reply::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &["http: request body too large"],
        )),
        Err(_) => Err(Reply::error(
            StatusCode::BAD_REQUEST,
            &["error reading request body"],
        )),
    }
}
