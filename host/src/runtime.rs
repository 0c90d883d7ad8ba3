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
use crate::keyvalue::KeyValue;
use crate::outbound::Outbound;
use crate::store::{self, GuestLog, StoreState};
use crate::types::Error;
use crate::wasi_config::WasiConfigVariables;
use crate::{Client, ManualClock};

/// The guest component this crate was built with (`edge_secrets_guest.wasm`, built by
/// `build.rs`). Also useful to tests that compose it with other components.
pub static GUEST_WASM: &[u8] = include_bytes!(env!("EDGE_SECRETS_GUEST_WASM"));

/// The Spin HTTP app component alone (`edge_secrets_spin_app.wasm`, WASI P3, built by
/// `build.rs` from `spin-app/`): it imports `edge:secrets/secrets` and `edge:secrets/admin`.
pub static APP_WASM: &[u8] = include_bytes!(env!("EDGE_SECRETS_APP_WASM"));

/// [`APP_WASM`] with [`GUEST_WASM`] plugged into its `edge:secrets` imports (composed by
/// `build.rs` with `wac-graph`): exports `wasi:http/handler@0.3.0`, imports only `wasi:*`.
/// What `edge-secrets serve` runs.
pub static COMPOSED_APP_WASM: &[u8] = include_bytes!(env!("EDGE_SECRETS_COMPOSED_WASM"));

/// How often the epoch ticker advances; the call deadline's resolution.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);
/// The epoch deadline while instantiating: one second.
const INSTANTIATION_TICKS: u64 = 100;

/// Host-side knobs. Secret-free, so it derives `Debug`.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Cap on each instance's linear memory. The guest buffers response bodies of up to its
    /// policy's `max_body_bytes` (at most 16 MiB) on top of its cache, so the default leaves room.
    /// Each pooled instance slot reserves about this much address space (rounded up to a power
    /// of two, plus a 2 MiB guard), not wasmtime's default 4 GiB.
    pub memory_limit_bytes: usize,
    /// Per-call deadline enforced by epoch interruption: the backstop for a guest that does not
    /// return (a spinning loop), after which the instance is discarded. It includes time the
    /// guest spends waiting on HTTP, so it must exceed the policy's largest
    /// `timeouts.deadline_ms` (the guest's own limit on a call): [`Runtime::new`] rejects a
    /// timeout that does not, rather than cutting well-behaved calls off mid-request.
    pub call_timeout: Duration,
    /// Where compiled artifacts are cached; `None` compiles in memory every time.
    pub cache_dir: Option<PathBuf>,
    /// Instance slots in the pooling allocator: the most clients alive at once.
    pub max_instances: u32,
    /// Idle keep-alive connections kept per backend host.
    pub max_idle_connections_per_host: usize,
    /// Let the guest write to the host's stderr (its JSON log lines); off by default.
    pub guest_stderr: bool,
    /// Capture the guest's stderr in memory instead (tests); overrides `guest_stderr`.
    pub guest_log: Option<GuestLog>,
    /// Replaces the component's monotonic and wall clocks (tests: skip TTLs and breaker timeouts).
    pub clock: Option<ManualClock>,
    /// The `wasi:keyvalue` store holding the component's shared state (when its policy has a
    /// `shared` object). `None`: a private in-memory store per [`Runtime`], shared by its
    /// clients. Give several runtimes (or hosts, with Redis) the same one to share state.
    pub keyvalue: Option<KeyValue>,
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
            guest_log: None,
            clock: None,
            keyvalue: None,
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

    pub fn guest_log(mut self, log: GuestLog) -> Self {
        self.guest_log = Some(log);
        self
    }

    pub fn clock(mut self, clock: ManualClock) -> Self {
        self.clock = Some(clock);
        self
    }

    pub fn keyvalue(mut self, keyvalue: KeyValue) -> Self {
        self.keyvalue = Some(keyvalue);
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
    keyvalue: KeyValue,
    outbound: Outbound,
    pub(crate) options: RuntimeOptions,
    pub(crate) deadline_ticks: u64,
    compile_source: CompileSource,
    compile_cache_note: Option<String>,
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
    ///
    /// Fails with [`Error::Runtime`] when the options are out of range, or when
    /// `options.call_timeout` does not exceed the largest `timeouts.deadline_ms` of the policy in
    /// `config` (checked when `secrets_policy` is present and valid; an invalid policy is left to
    /// the component, which reports it on every call). [`ConfigFile`](crate::ConfigFile) picks a
    /// default timeout above that deadline for the same reason.
    pub fn with_component(wasm: &[u8], config: impl Into<WasiConfigVariables>, options: RuntimeOptions) -> Result<Runtime, Error> {
        options.validate()?;
        let config = config.into();
        check_call_timeout(&config, options.call_timeout)?;
        let engine = engine(&options).map_err(Error::runtime)?;
        let loaded =
            compile_cache::load(&engine, wasm, options.cache_dir.as_deref()).map_err(|e| Error::Runtime(format!("cannot compile the component: {e:#}")))?;
        let (component, compile_source) = (loaded.component, loaded.source);
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
                config,
                keyvalue: options.keyvalue.clone().unwrap_or_else(KeyValue::memory),
                outbound: Outbound::new(IO_RUNTIME.handle().clone(), options.max_idle_connections_per_host),
                deadline_ticks: ticks,
                compile_source,
                compile_cache_note: loaded.note,
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

    /// The `wasi:keyvalue` store the instances share.
    pub fn keyvalue(&self) -> &KeyValue {
        &self.inner.keyvalue
    }

    /// Whether the component came from the compile cache (for diagnostics and tests).
    pub fn compile_source(&self) -> CompileSource {
        self.inner.compile_source
    }

    /// Why the compile cache was not used, when [`RuntimeOptions::cache_dir`] names a directory
    /// that is not private to this user (not owned by it, writable by group or others, or a
    /// symlink): the component was then compiled in memory. Secret-free; worth showing once.
    pub fn compile_cache_note(&self) -> Option<&str> {
        self.inner.compile_cache_note.as_deref()
    }
}

impl Inner {
    pub(crate) fn instantiate(&self) -> Result<(Store<StoreState>, Provider), Error> {
        let state = StoreState::new(self.config.clone(), self.keyvalue.clone(), self.outbound.clone(), &self.options);
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        // Instantiation runs no guest code worth bounding, but on a loaded machine it can be
        // descheduled past a short call deadline: give it at least a second. Every call sets
        // the call deadline again before it starts (`Client::call`).
        store.set_epoch_deadline(self.deadline_ticks.max(INSTANTIATION_TICKS));
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
    let mut config = Config::new();
    config
        .concurrency_support(false) // no P3/async here: ~150 ns per call instead of ~510 ns
        .epoch_interruption(true);
    pooled(&mut config, options.max_instances, 1, options.memory_limit_bytes);
    Engine::new(&config)
}

/// Puts `config` on the pooling allocator with `instances` slots for components made of
/// `components` wasip2 components each (the composed Spin app is two), memories capped at
/// `memory_limit_bytes`. A fresh instance then takes a slot whose memory is already mapped
/// (and, for the same module, already holds its data image) instead of mapping, faulting in
/// and unmapping its memories: the kernel's `mmap`/`munmap` and page-table work dominated
/// `serve --fresh-instance-per-request` on the on-demand allocator.
pub(crate) fn pooled(config: &mut Config, instances: u32, components: u32, memory_limit_bytes: usize) {
    let per = |k: u32| instances.saturating_mul(components).saturating_mul(k);
    let mut pool = PoolingAllocationConfig::default();
    // A wasip2 component is a main module plus small shim modules (core instances and tables
    // without memories): leave headroom per component instance.
    pool.total_component_instances(instances)
        .total_core_instances(per(8))
        .total_memories(per(2))
        .total_tables(per(4))
        // P3 (`serve`) runs guest tasks on fiber stacks from the pool: two per component
        // instance, so a full pool of instances never waits on stacks (the default, 1000, was
        // below `serve`'s 1088 slots). Address space only until used.
        .total_stacks(per(2))
        .max_memory_size(memory_limit_bytes);
    // Resetting a slot for its next instance: with `PAGEMAP_SCAN` (Linux 6.7+; `Auto` falls
    // back elsewhere) only the pages an instance dirtied are restored with `memset`, up to these
    // sizes, instead of `madvise` dropping them. Dropping pages cost a TLB shootdown across every
    // core (an IPI) per instance, and the next instance faulted them back in: in `serve
    // --fresh-instance-per-request` those IPIs and faults were the top of the profile, and this
    // took its no-op route from ~5.5 k to ~8-10 k requests/s on 2 cores.
    pool.pagemap_scan(wasmtime::Enabled::Auto)
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT / 4)
        .async_stack_keep_resident(KEEP_RESIDENT / 4);
    config
        // Each pool slot reserves `memory_reservation + memory_guard_size` of address space per
        // memory: wasmtime's defaults (4 GiB + 32 MiB, to elide bounds checks) would reserve
        // ~0.5 TiB for 128 memory slots. Memories never outgrow the limit, so reserve that.
        .memory_reservation(memory_reservation(memory_limit_bytes))
        .memory_guard_size(MEMORY_GUARD)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
}

/// Bytes of each slot's memory kept mapped between instances (see [`pooled`]): more than a
/// fresh instance of the composed app touches serving a request.
const KEEP_RESIDENT: usize = 4 << 20;

/// Guard region after each linear memory. With a reservation below 4 GiB the compiled code
/// bounds-checks every access anyway; the guard lets one check cover accesses whose static offset
/// is below it (in practice all of them: offsets into Rust structs and stack frames are small).
const MEMORY_GUARD: u64 = 2 << 20;

/// The memory limit rounded up to a power of two: wasmtime needs the reservation to cover the
/// pool's maximum memory size, and it is part of the compiled artifact's compatibility hash, so
/// rounding lets nearby limits (e.g. 100 and 128 MiB) share one cached artifact.
fn memory_reservation(memory_limit_bytes: usize) -> u64 {
    (memory_limit_bytes as u64).next_power_of_two()
}

/// The largest `timeouts.deadline_ms` in the config's policy, when it has a valid one.
fn policy_max_deadline(config: &WasiConfigVariables) -> Option<Duration> {
    let policy = config.get(edge_secrets_guest::config::POLICY_KEY)?;
    let specs = edge_secrets_guest::config::parse_policy(policy).ok()?;
    specs.iter().map(|s| Duration::from_millis(s.policy.deadline_ms)).max()
}

/// The host's call deadline must leave the guest its own deadline (see
/// [`RuntimeOptions::call_timeout`]); same rule as the config file's `host.call_timeout_ms`.
pub(crate) fn check_call_timeout(config: &WasiConfigVariables, call_timeout: Duration) -> Result<(), Error> {
    match policy_max_deadline(config) {
        Some(deadline) if call_timeout <= deadline => Err(Error::Runtime(format!(
            "call timeout ({} ms) must exceed the policy's largest timeouts.deadline_ms ({} ms), or the host would cut calls off \
             before the component's own deadline: raise RuntimeOptions::call_timeout",
            call_timeout.as_millis(),
            deadline.as_millis()
        ))),
        _ => Ok(()),
    }
}

/// Advances the engine's epoch every tick until the returned sender is dropped.
pub(crate) fn start_ticker(engine: Engine) -> mpsc::Sender<()> {
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn config_with_deadline(deadline_ms: u64) -> WasiConfigVariables {
        let policy = serde_json::json!({ "environments": {
            "fast": { "backend": "vault", "url": "http://127.0.0.1:8200", "token_key": "t" },
            "slow": { "backend": "vault", "url": "http://127.0.0.1:8200", "token_key": "t",
                      "timeouts": { "attempt_ms": 1000, "deadline_ms": deadline_ms } },
        }});
        BTreeMap::from([("secrets_policy".to_string(), policy.to_string()), ("t".to_string(), "x".to_string())]).into()
    }

    #[test]
    fn the_call_timeout_must_exceed_the_policys_largest_deadline() {
        let config = config_with_deadline(90_000);
        assert_eq!(policy_max_deadline(&config), Some(Duration::from_secs(90)));
        for timeout in [Duration::from_secs(60), Duration::from_secs(90)] {
            let err = check_call_timeout(&config, timeout).unwrap_err().to_string();
            assert!(err.contains(&format!("({} ms)", timeout.as_millis())) && err.contains("(90000 ms)"), "{err}");
        }
        check_call_timeout(&config, Duration::from_millis(90_001)).unwrap();

        // Runtime::new refuses it before compiling anything.
        let options = RuntimeOptions::default().cache_dir(None);
        match Runtime::new(config.clone(), options.clone()) {
            Err(Error::Runtime(msg)) => assert!(msg.contains("(60000 ms)") && msg.contains("timeouts.deadline_ms (90000 ms)"), "{msg}"),
            Err(other) => panic!("expected a runtime error, got {other:?}"),
            Ok(_) => panic!("a 60 s call timeout under a 90 s policy deadline was accepted"),
        }
    }

    #[test]
    fn no_or_an_invalid_policy_is_left_to_the_component() {
        assert_eq!(policy_max_deadline(&WasiConfigVariables::default()), None);
        let invalid: WasiConfigVariables = BTreeMap::from([("secrets_policy".to_string(), "{not json".to_string())]).into();
        assert_eq!(policy_max_deadline(&invalid), None);
        check_call_timeout(&invalid, Duration::from_millis(1)).unwrap();
        // Defaults (5 s) fit under the default call timeout (60 s).
        let defaults: WasiConfigVariables = BTreeMap::from([(
            "secrets_policy".to_string(),
            r#"{"environments":{"dev":{"backend":"vault","url":"http://127.0.0.1:8200","token_key":"t"}}}"#.to_string(),
        )])
        .into();
        assert_eq!(policy_max_deadline(&defaults), Some(Duration::from_secs(5)));
        check_call_timeout(&defaults, RuntimeOptions::default().call_timeout).unwrap();
    }

    #[test]
    fn memory_reservation_covers_the_limit() {
        assert_eq!(memory_reservation(1 << 20), 1 << 20);
        assert_eq!(memory_reservation(100 << 20), 128 << 20);
        assert_eq!(memory_reservation(128 << 20), 128 << 20);
        assert_eq!(memory_reservation(4 << 30), 4 << 30);
    }

    /// The pool reserves its memory slots when the engine is created: with wasmtime's default
    /// 4 GiB + 32 MiB per slot, the default 64 instances (128 memory slots) took ~516 GiB of
    /// address space; sized to the 128 MiB limit it is ~16 GiB.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_pool_reserves_address_space_for_the_memory_limit_not_4_gib() {
        fn vm_size_kib() -> u64 {
            let status = std::fs::read_to_string("/proc/self/status").unwrap();
            let line = status.lines().find(|l| l.starts_with("VmSize:")).unwrap();
            line.split_whitespace().nth(1).unwrap().parse().unwrap()
        }
        let options = RuntimeOptions::default();
        let before = vm_size_kib();
        let engine = engine(&options).unwrap();
        let grown_gib = vm_size_kib().saturating_sub(before) >> 20;
        drop(engine);
        // Generous: other tests of this binary may map memory meanwhile.
        assert!(grown_gib < 64, "creating the engine reserved {grown_gib} GiB of address space");
        // A 4 GiB limit still works (the reservation then is 4 GiB per slot).
        drop(super::engine(&RuntimeOptions { max_instances: 2, ..RuntimeOptions::default().memory_limit_mib(4096) }).unwrap());
    }
}
