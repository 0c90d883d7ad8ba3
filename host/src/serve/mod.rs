//! `edge-secrets serve`: the Spin app composed with the provider ([`COMPOSED_APP_WASM`]), run
//! over HTTP with wasmtime-wasi-http's WASI P3 support, the way Spin 4 runs it.
//!
//! ```no_run
//! use edge_secrets_host::serve::{ServeOptions, Server};
//! # let config = std::collections::BTreeMap::<String, String>::new();
//! let server = Server::start(config, edge_secrets_host::RuntimeOptions::default(), ServeOptions::default())?;
//! println!("listening on http://{}", server.local_addr());
//! server.shutdown(); // stop accepting, finish in-flight requests
//! # Ok::<(), edge_secrets_host::serve::ServeError>(())
//! ```
//!
//! The server has its own engine, with concurrency support on (P3 needs it); the synchronous
//! [`Runtime`](crate::Runtime)'s engine keeps it off. It runs on its own thread and tokio
//! runtime, so sync code (tests, the CLI) can start and stop it.
//!
//! [`COMPOSED_APP_WASM`]: crate::COMPOSED_APP_WASM

mod admin;
mod host_header;
mod http;
mod instances;
mod limits;
mod options;
mod reply;
mod state;
mod throttle;
mod tls;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{oneshot, Semaphore};
use wasmtime::{Config, Engine};
use wasmtime_wasi_http::handler::ProxyHandler;
use wasmtime_wasi_http::p3::bindings::ServicePre;

pub use instances::ReusePolicy;
pub use options::{ServeOptions, TlsFiles};

use crate::compile_cache;
use crate::keyvalue::KeyValue;
use crate::outbound::Outbound;
use crate::runtime::{self, RuntimeOptions};
use crate::wasi_config::WasiConfigVariables;
use instances::Instances;
use state::StoreSetup;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    /// A listen address that is not loopback, without TLS and without `allow_plaintext`.
    #[error(
        "refusing to serve plain HTTP on {addr}: it is not a loopback address, so bearer tokens and secret values \
         would cross the network unencrypted; serve HTTPS (a TLS certificate and key) or allow plain HTTP explicitly \
         (e.g. behind a TLS-terminating proxy)"
    )]
    Plaintext { addr: SocketAddr },
    #[error("{0}")]
    Setup(String),
}

/// A running server. Dropping it shuts it down like [`Server::shutdown`].
pub struct Server {
    addr: SocketAddr,
    created: Arc<AtomicU64>,
    keyvalue: KeyValue,
    stopping: Arc<AtomicBool>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Compiles (or loads from the compile cache) the composed app, binds `options.listen` and
    /// starts serving. `config` is the `wasi:config` store both components read: the policy,
    /// the backend credentials and `caller_tokens`. `runtime` supplies the memory limit,
    /// compile cache, guest stderr, the per-request timeout (`call_timeout`), the
    /// `wasi:keyvalue` store (`keyvalue`: shared state, e.g. Redis) and a test clock.
    pub fn start(config: impl Into<WasiConfigVariables>, runtime: RuntimeOptions, options: ServeOptions) -> Result<Server, ServeError> {
        Server::start_app(crate::COMPOSED_APP_WASM, config, runtime, options)
    }

    /// [`Server::start`] with another app: any WASI P3 `wasi:http` service component whose
    /// imports the host provides, e.g. a user's app composed with the config provider
    /// ([`crate::compose::with_config_provider`]). `config` is its `wasi:config` store.
    pub fn start_app(app: &[u8], config: impl Into<WasiConfigVariables>, runtime: RuntimeOptions, options: ServeOptions) -> Result<Server, ServeError> {
        let config = config.into();
        let (max_connections, note) = options.check()?;
        if let Some(note) = note {
            eprintln!("edge-secrets serve: {note}");
        }
        let tls = options.tls.as_ref().map(tls::acceptor).transpose()?;
        runtime::check_call_timeout(&config, runtime.call_timeout).map_err(|e| ServeError::Setup(e.to_string()))?;
        let engine = engine(&runtime, &options).map_err(|e| ServeError::Setup(format!("cannot create the engine: {e:#}")))?;
        let loaded = compile_cache::load(&engine, app, runtime.cache_dir.as_deref())
            .map_err(|e| ServeError::Setup(format!("cannot compile the app: {e:#}")))?;
        if let Some(note) = &loaded.note {
            eprintln!("edge-secrets serve: {note}");
        }
        let linker = state::linker(&engine).map_err(|e| ServeError::Setup(format!("cannot link WASI: {e:#}")))?;
        let pre = linker
            .instantiate_pre(&loaded.component)
            .and_then(ServicePre::new)
            .map_err(|e| ServeError::Setup(format!("the app does not fit the wasi:http/service world: {e:#}")))?;

        let listener = std::net::TcpListener::bind(options.listen).map_err(|source| ServeError::Bind { addr: options.listen, source })?;
        let addr = listener.local_addr().map_err(|source| ServeError::Bind { addr: options.listen, source })?;
        listener.set_nonblocking(true).map_err(|source| ServeError::Bind { addr, source })?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("edge-secrets-serve")
            .enable_all()
            .build()
            .map_err(|e| ServeError::Setup(format!("cannot start the server runtime: {e}")))?;
        let listener = {
            let _enter = rt.enter();
            tokio::net::TcpListener::from_std(listener).map_err(|source| ServeError::Bind { addr, source })?
        };

        let policy = if options.fresh_instance_per_request {
            ReusePolicy::fresh_instance_per_request(runtime.call_timeout)
        } else {
            ReusePolicy::spin(runtime.call_timeout)
        };
        let created = Arc::new(AtomicU64::new(0));
        let stopping = Arc::new(AtomicBool::new(false));
        let keyvalue = runtime.keyvalue.clone().unwrap_or_else(KeyValue::memory);
        let setup = StoreSetup {
            config,
            keyvalue: keyvalue.clone(),
            outbound: Outbound::new(rt.handle().clone(), runtime.max_idle_connections_per_host),
            memory_limit_bytes: runtime.memory_limit_bytes,
            guest_stderr: runtime.guest_stderr,
            guest_log: runtime.guest_log.clone(),
            clock: runtime.clock.clone(),
        };
        let instances = Instances {
            _ticker: runtime::start_ticker(engine.clone()),
            engine,
            pre,
            setup,
            policy,
            created: created.clone(),
            stopping: stopping.clone(),
        };
        let (stop, stopped) = oneshot::channel();
        let front = Arc::new(http::Front {
            handler: ProxyHandler::new(instances),
            in_flight: Semaphore::new(options.max_in_flight),
            local: addr,
            tls,
            header_read_timeout: options.header_read_timeout,
            max_requests_per_connection: options.max_requests_per_connection,
            throttle: throttle::AuthThrottle::new(options.max_auth_failures_per_connection),
            admin: admin::AdminGate::new(),
        });
        let grace = options.shutdown_grace;
        let thread = std::thread::Builder::new()
            .name("edge-secrets-serve".into())
            .spawn(move || {
                rt.block_on(http::run(listener, front, max_connections, stopped, grace));
                // Drops idle instances and the pool's connections.
                rt.shutdown_timeout(Duration::from_secs(1));
            })
            .map_err(|e| ServeError::Setup(format!("cannot start the server thread: {e}")))?;
        Ok(Server { addr, created, keyvalue, stopping, stop: Some(stop), thread: Some(thread) })
    }

    /// The bound address (the real port when `listen` had port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Component instances created so far: 1 for many sequential requests under reuse, one per
    /// request with `fresh_instance_per_request`.
    pub fn instances_created(&self) -> u64 {
        self.created.load(Ordering::Relaxed)
    }

    /// The `wasi:keyvalue` store every instance shares (`RuntimeOptions::keyvalue`, or a private
    /// in-memory one).
    pub fn keyvalue(&self) -> &KeyValue {
        &self.keyvalue
    }

    /// Stops accepting connections, lets in-flight requests finish (up to the grace period),
    /// and returns once the server thread has exited.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// An engine for P3: component-model async on, concurrency support left at its default (on),
/// epoch interruption for the expiry backstop (see `instances`), and the pooling allocator with
/// a slot per request the server takes at once (plus the instances Spin-style reuse keeps idle).
fn engine(runtime: &RuntimeOptions, options: &ServeOptions) -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    config.wasm_component_model_async(true).epoch_interruption(true);
    let slots = u32::try_from(options.max_in_flight.max(1)).unwrap_or(u32::MAX).saturating_add(IDLE_SLOTS);
    runtime::pooled(&mut config, slots, 2, runtime.memory_limit_bytes);
    Engine::new(&config)
}

/// Pool slots beyond `max_in_flight`: reused instances that sit idle (for up to a second) while
/// every in-flight request has an instance of its own.
const IDLE_SLOTS: u32 = 64;
