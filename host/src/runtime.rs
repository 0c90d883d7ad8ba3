//! [`Runtime`]: the compiled component, its engine and everything its instances share.
//!
//! One `Runtime` is built per configuration (compiling or loading the component, linking WASI,
//! `wasi:http` and `wasi:config`, pre-instantiating); [`Client`](crate::Client)s are then cheap
//! (~12 µs) and each keeps one live instance.
//!
//! Resource limits: the pooling allocator caps every linear memory (and `StoreLimits` repeats the
//! cap per store), and an epoch ticker thread bounds each call: a spinning guest hits the per-call
//! deadline, traps, and is replaced on the next call instead of hanging its caller.

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, LazyLock};
use std::thread;
use std::time::Duration;

use wasmtime::component::Linker;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};

use crate::bindings::{Provider, ProviderPre};
use crate::compile_cache::{self, CompileSource};
use crate::outbound::Outbound;
use crate::store::{self, StoreState};
use crate::types::Error;
use crate::wasi_config::WasiConfigVariables;
use crate::{Client, ManualClock};

/// The guest component this crate was built with (`edge_secrets_guest.wasm`, built by
/// `build.rs`). Also useful to tests that compose it with other components.
pub static GUEST_WASM: &[u8] = include_bytes!(env!("EDGE_SECRETS_GUEST_WASM"));

/// How often the epoch ticker advances; the call deadline's resolution.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Host-side knobs. Secret-free, so it derives `Debug`.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Cap on each instance's linear memory. The guest buffers response bodies of up to its
    /// policy's `max_body_bytes` (at most 64 MiB) on top of its cache, so the default leaves room.
    pub memory_limit_bytes: usize,
    /// Per-call deadline enforced by epoch interruption. It includes time the guest spends
    /// waiting on HTTP, so keep it above the policy's largest `timeouts.deadline_ms`.
    pub call_timeout: Duration,
    /// Where compiled artifacts are cached; `None` compiles in memory every time.
    pub cache_dir: Option<PathBuf>,
    /// Instance slots in the pooling allocator: the most clients alive at once.
    pub max_instances: u32,
    /// Idle keep-alive connections kept per backend host.
    pub max_idle_connections_per_host: usize,
    /// Let the guest write to the host's stderr (panic messages); off by default.
    pub guest_stderr: bool,
    /// Replaces the component's monotonic clock (tests: skip TTLs and breaker timeouts).
    pub clock: Option<ManualClock>,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            memory_limit_bytes: 128 << 20,
            call_timeout: Duration::from_secs(60),
            cache_dir: compile_cache::default_cache_dir(),
            max_instances: 64,
            max_idle_connections_per_host: 32,
            guest_stderr: false,
            clock: None,
        }
    }
}

impl RuntimeOptions {
    pub fn memory_limit_mib(mut self, mib: usize) -> Self {
        self.memory_limit_bytes = mib << 20;
        self
    }

    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    pub fn cache_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.cache_dir = dir;
        self
    }

    pub fn max_instances(mut self, n: u32) -> Self {
        self.max_instances = n;
        self
    }

    pub fn guest_stderr(mut self, on: bool) -> Self {
        self.guest_stderr = on;
        self
    }

    pub fn clock(mut self, clock: ManualClock) -> Self {
        self.clock = Some(clock);
        self
    }

    fn validate(&self) -> Result<(), Error> {
        if self.memory_limit_bytes < (1 << 20) || self.memory_limit_bytes > (4 << 30) {
            return Err(Error::Runtime("memory limit must be between 1 MiB and 4 GiB".into()));
        }
        if self.call_timeout.is_zero() {
            return Err(Error::Runtime("call timeout must be positive".into()));
        }
        if self.max_instances == 0 {
            return Err(Error::Runtime("max_instances must be at least 1".into()));
        }
        Ok(())
    }
}

/// One tokio runtime per process for outbound HTTP and WASI's async internals. Never dropped, so
/// a `Runtime` can be created and dropped anywhere, including inside async code.
static IO_RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("edge-secrets-io")
        .enable_all()
        .build()
        .expect("cannot start the edge-secrets I/O runtime")
});

/// A compiled, linked component plus its configuration. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    engine: Engine,
    pre: ProviderPre<StoreState>,
    config: WasiConfigVariables,
    outbound: Outbound,
    pub(crate) options: RuntimeOptions,
    pub(crate) deadline_ticks: u64,
    compile_source: CompileSource,
    // Dropping the sender stops the ticker thread.
    _ticker: mpsc::Sender<()>,
}

impl Runtime {
    /// The embedded guest with `config` as its `wasi:config` store (see
    /// [`ConfigFile`](crate::ConfigFile) for building one from a file).
    pub fn new(config: impl Into<WasiConfigVariables>, options: RuntimeOptions) -> Result<Runtime, Error> {
        Runtime::with_component(GUEST_WASM, config, options)
    }

    /// Any component targeting the `edge:secrets/provider` world (tests, other builds).
    pub fn with_component(wasm: &[u8], config: impl Into<WasiConfigVariables>, options: RuntimeOptions) -> Result<Runtime, Error> {
        options.validate()?;
        let engine = engine(&options).map_err(Error::runtime)?;
        let (component, compile_source) =
            compile_cache::load(&engine, wasm, options.cache_dir.as_deref()).map_err(|e| Error::Runtime(format!("cannot compile the component: {e:#}")))?;
        let linker: Linker<StoreState> = store::linker(&engine).map_err(Error::runtime)?;
        let pre = linker
            .instantiate_pre(&component)
            .and_then(ProviderPre::new)
            .map_err(|e| Error::Runtime(format!("the component does not fit the edge:secrets/provider world: {e:#}")))?;
        let ticks = options.call_timeout.as_millis().div_ceil(EPOCH_TICK.as_millis()) as u64 + 1;
        Ok(Runtime {
            inner: Arc::new(Inner {
                _ticker: start_ticker(engine.clone()),
                engine,
                pre,
                config: config.into(),
                outbound: Outbound::new(IO_RUNTIME.handle().clone(), options.max_idle_connections_per_host),
                deadline_ticks: ticks,
                compile_source,
                options,
            }),
        })
    }

    /// A client with its own live instance.
    pub fn client(&self) -> Result<Client, Error> {
        Client::new(self)
    }

    pub fn options(&self) -> &RuntimeOptions {
        &self.inner.options
    }

    /// Whether the component came from the compile cache (for diagnostics and tests).
    pub fn compile_source(&self) -> CompileSource {
        self.inner.compile_source
    }
}

impl Inner {
    pub(crate) fn instantiate(&self) -> Result<(Store<StoreState>, Provider), Error> {
        let state = StoreState::new(self.config.clone(), self.outbound.clone(), &self.options);
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(self.deadline_ticks);
        let _io = enter_io();
        let provider = self.pre.instantiate(&mut store).map_err(|e| Error::Runtime(format!("cannot instantiate the component: {e:#}")))?;
        Ok((store, provider))
    }
}

/// Makes WASI's and the HTTP client's async parts run on the I/O runtime for the guard's life
/// (wasmtime-wasi blocks on the *current* runtime when there is one).
pub(crate) fn enter_io() -> tokio::runtime::EnterGuard<'static> {
    IO_RUNTIME.enter()
}

fn engine(options: &RuntimeOptions) -> wasmtime::Result<Engine> {
    let n = options.max_instances;
    let mut pool = PoolingAllocationConfig::default();
    // A wasip2 component is a main module plus small shim modules (core instances and tables
    // without memories): leave headroom per component instance.
    pool.total_component_instances(n)
        .total_core_instances(n.saturating_mul(8))
        .total_memories(n.saturating_mul(2))
        .total_tables(n.saturating_mul(4))
        .max_memory_size(options.memory_limit_bytes);
    let mut config = Config::new();
    config
        .concurrency_support(false) // no P3/async here: ~150 ns per call instead of ~510 ns
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config)
}

/// Advances the engine's epoch every tick until the returned sender is dropped.
fn start_ticker(engine: Engine) -> mpsc::Sender<()> {
    let (stop, stopped) = mpsc::channel::<()>();
    thread::Builder::new()
        .name("edge-secrets-epoch".into())
        .spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(EPOCH_TICK) {
                engine.increment_epoch();
            }
        })
        .expect("cannot start the epoch ticker thread");
    stop
}
