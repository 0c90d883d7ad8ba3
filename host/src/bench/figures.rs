//! The measurements. A loopback dev store serves one secret; the component reads it from a
//! `bench` environment (default policy: cached) and a `bench-miss` environment
//! (`cache.ttl_ms = 0`: every read fetches). The native baselines read the same store with the
//! same configuration. Every read checks where its answer came from, so a figure can never
//! silently measure the wrong path (a hit loop that misses, a miss loop served from a cache).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use wasmtime::component::{Component, ResourceTable};
use wasmtime::Engine;
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi_http::WasiHttpCtx;

use edge_secrets_guest::engine::{SecretRequest, Source as CoreSource};
use edge_secrets_host::dev_store::{DevStore, DevStoreOptions, Seed};
use edge_secrets_host::{CompileSource, Request, Runtime, RuntimeOptions, Source};

use super::native::{self, NativeCore, NativeHttp};
use super::stats::{interleave, ratio, timed, Samples, Side};
use super::{Plan, Report};

const HIT_ENV: &str = "bench";
const MISS_ENV: &str = "bench-miss";
const TOKEN_KEY: &str = "bench_token";
/// A realistic secret: a Vault path with a 32-byte value.
const NAME: &str = "bench/db";
pub(super) const VALUE: &str = "bench-value-0123456789abcdefghij";
/// The native requests' limits (the component's policy defaults are 2 s per attempt, 1 MiB).
const TIMEOUT: Duration = Duration::from_secs(2);
const MAX_BODY: usize = 1 << 20;

pub struct Bench {
    plan: Plan,
    wasm: &'static [u8],
    // Field order is drop order: the runtime and the native client (and their pooled
    // connections) go before the store they talk to.
    runtime: Runtime,
    http: NativeHttp,
    config: BTreeMap<String, String>,
    scratch: TempDir,
    _store: DevStore,
}

impl Bench {
    /// Starts the dev store and the runtime (compiling the component once into a private
    /// compile cache, which the warm-cache figures then load from).
    pub fn setup(plan: Plan, wasm: &'static [u8]) -> Result<Bench> {
        let mut seed = Seed::new();
        seed.insert(NAME, [("value", VALUE)])?;
        let store = DevStore::start(DevStoreOptions { seed, ..Default::default() })?;
        let env = |extra: serde_json::Value| {
            let mut env = serde_json::json!({ "backend": "vault", "url": store.url(), "token_key": TOKEN_KEY });
            env.as_object_mut().expect("an object").extend(extra.as_object().cloned().unwrap_or_default());
            env
        };
        let policy = serde_json::json!({ "environments": {
            HIT_ENV: env(serde_json::json!({})),
            MISS_ENV: env(serde_json::json!({ "cache": { "ttl_ms": 0 } })),
        }});
        let config = BTreeMap::from([("secrets_policy".to_string(), policy.to_string()), (TOKEN_KEY.to_string(), store.token().to_string())]);
        let scratch = TempDir::new()?;
        let runtime = Runtime::with_component(wasm, config.clone(), options(Some(scratch.warm_cache())))?;
        ensure!(runtime.compile_source() == CompileSource::CompiledAndCached, "the bench's compile cache was not written ({:?})", runtime.compile_source());
        Ok(Bench { plan, wasm, runtime, http: NativeHttp::new()?, config, scratch, _store: store })
    }

    /// Figures 1 and 2: a cache hit through the component, the empty export call on the same
    /// instance, and the same hit through the core called natively.
    pub fn hits(&self, report: &mut Report) -> Result<()> {
        let client = RefCell::new(self.runtime.client()?);
        let request = Request::new(HIT_ENV, NAME);
        client.borrow_mut().get(&request)?; // fills the component's cache
        let mut native = NativeCore::new(&self.config, &self.http)?;
        let core_request = SecretRequest { environment: HIT_ENV.into(), name: NAME.into(), ..SecretRequest::default() };
        ensure!(native.get(&core_request)?.source == CoreSource::Backend, "the first native read should fetch over HTTP");

        let ops = self.plan.iterations;
        let mut get = |n| {
            timed(n, || {
                let secret = client.borrow_mut().get(black_box(&request))?;
                ensure!(secret.source == Source::Cache, "a component read missed the cache");
                black_box(secret);
                Ok(())
            })
        };
        let mut ping = |n| timed(n, || Ok(client.borrow_mut().ping()?));
        let mut native_get = |n| {
            timed(n, || {
                let secret = native.get(black_box(&core_request))?;
                ensure!(secret.source == CoreSource::Cache, "a native read missed the cache");
                black_box(secret);
                Ok(())
            })
        };
        let [get, ping, native_get]: [Samples; 3] = interleave(self.plan.batches, true, &mut [Side::new(ops, &mut get), Side::new(ops, &mut ping), Side::new(ops, &mut native_get)])?
            .try_into()
            .expect("three sides");
        report.time("cache-hit get, component (Client::get)", &get, None);
        report.time("empty export call, same instance (Client::ping)", &ping, None);
        report.time("cache-hit get, native core (Provider::get)", &native_get, None);
        report.ratio("hit get / empty call (headline)", ratio(&get, &ping), Some(2.5));
        report.ratio("hit get: component / native core", ratio(&get, &native_get), None);
        Ok(())
    }

    /// Figure 3: `Runtime::client()` (a new `Store` with its WASI contexts, then instantiating
    /// the pre-instantiated component from the pool), and around it what a per-request instance
    /// also pays: the first call (which loads the policy) and the teardown.
    pub fn instances(&self, report: &mut Report) -> Result<()> {
        let ops = self.plan.instance_ops();
        let (mut create, mut first_call, mut teardown, mut contexts) = (Samples::default(), Samples::default(), Samples::default(), Samples::default());
        // Round 0 warms up (pool slots, page tables, allocator) and is not recorded.
        for round in 0..=self.plan.batches {
            let mut spent = [Duration::ZERO; 3];
            for _ in 0..ops {
                let t0 = Instant::now();
                let mut client = self.runtime.client()?;
                let t1 = Instant::now();
                ensure!(client.health()?.ok, "a fresh instance is unhealthy");
                let t2 = Instant::now();
                drop(client);
                let t3 = Instant::now();
                for (acc, d) in spent.iter_mut().zip([t1 - t0, t2 - t1, t3 - t2]) {
                    *acc += d;
                }
            }
            // The WASI/HTTP contexts the library builds for each store, built alone: how much of
            // `client()` is store set-up rather than instantiation.
            let ctx = timed(ops, || {
                black_box((WasiCtx::builder().build(), WasiHttpCtx::new(), ResourceTable::new()));
                Ok(())
            })?;
            if round > 0 {
                create.push_total(spent[0], ops);
                first_call.push_total(spent[1], ops);
                teardown.push_total(spent[2], ops);
                contexts.push_total(ctx, ops);
            }
        }
        report.time("fresh instance (Runtime::client)", &create, Some(25_000.0));
        report.time("  of which WASI contexts (built alone)", &contexts, None);
        report.time("  first call on it (health: loads policy)", &first_call, None);
        report.time("  teardown (drop: slot back to the pool)", &teardown, None);
        Ok(())
    }

    /// Figure 4: starting a runtime from a warm compile cache vs an empty one, and the part of
    /// it that is the artifact itself: reading + deserializing it vs compiling the component.
    pub fn artifacts(&self, report: &mut Report) -> Result<()> {
        let batches = self.plan.compile_batches();
        let warm_dir = self.scratch.warm_cache();
        let mut warm = |n| self.start_runtimes(n, || Ok(warm_dir.clone()), CompileSource::Cache);
        let mut cold = |n| self.start_runtimes(n, || self.scratch.fresh_dir(), CompileSource::CompiledAndCached);
        let [warm, cold]: [Samples; 2] =
            interleave(batches, false, &mut [Side::new(self.plan.runtime_ops(), &mut warm), Side::new(1, &mut cold)])?.try_into().expect("two sides");

        // Same engine settings as the runtime's where they change the generated code.
        let mut config = wasmtime::Config::new();
        config.concurrency_support(false).epoch_interruption(true);
        let engine = Engine::new(&config).map_err(wasm_error)?;
        let artifact = self.scratch.path.join("component.cwasm");
        std::fs::write(&artifact, Component::new(&engine, self.wasm).and_then(|c| c.serialize()).map_err(wasm_error)?)?;
        let mut load = |n| {
            timed(n, || {
                let bytes = std::fs::read(&artifact)?;
                // SAFETY: the artifact was serialized above by an engine with this configuration,
                // in a directory private to this process; wasmtime checks its header too.
                black_box(unsafe { Component::deserialize(&engine, &bytes) }.map_err(wasm_error)?);
                Ok(())
            })
        };
        let mut compile = |n| {
            timed(n, || {
                black_box(Component::new(&engine, self.wasm).map_err(wasm_error)?);
                Ok(())
            })
        };
        let [load, compile]: [Samples; 2] =
            interleave(batches, false, &mut [Side::new(self.plan.load_ops(), &mut load), Side::new(1, &mut compile)])?.try_into().expect("two sides");

        report.time("Runtime::new, warm compile cache", &warm, None);
        report.time("Runtime::new, empty compile cache", &cold, None);
        report.time("  artifact load (read + deserialize)", &load, None);
        report.time("  compile (Component::new)", &compile, None);
        report.ratio("Runtime::new: empty / warm cache", ratio(&cold, &warm), None);
        report.ratio("compile / artifact load", ratio(&compile, &load), None);
        Ok(())
    }

    /// Times `n` `Runtime::new` calls (only the call: dropping the runtime and its pool is
    /// outside the figure), each with the cache dir `dir()` returns.
    fn start_runtimes(&self, n: u64, mut dir: impl FnMut() -> Result<PathBuf>, expect: CompileSource) -> Result<Duration> {
        let mut spent = Duration::ZERO;
        for _ in 0..n {
            let (dir, config) = (dir()?, self.config.clone());
            let start = Instant::now();
            let runtime = Runtime::with_component(self.wasm, config, options(Some(dir.clone())))?;
            spent += start.elapsed();
            ensure!(runtime.compile_source() == expect, "expected {expect:?}, got {:?}", runtime.compile_source());
            drop(runtime);
            if expect != CompileSource::Cache {
                std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
            }
        }
        Ok(spent)
    }

    /// Figure 5: a read that always fetches, through the component and its pooled `wasi:http`
    /// client, vs the same request (URL and headers) sent natively on a keep-alive connection.
    pub fn misses(&self, report: &mut Report) -> Result<()> {
        let client = RefCell::new(self.runtime.client()?);
        let request = Request::new(MISS_ENV, NAME);
        let http_request = native::backend_request(&self.config, MISS_ENV, NAME)?;
        let mut component = |n| {
            timed(n, || {
                let secret = client.borrow_mut().get(&request)?;
                ensure!(secret.source == Source::Backend, "a ttl-0 read was served from the cache");
                black_box(secret);
                Ok(())
            })
        };
        let send = |spawned: bool| {
            let response = if spawned { self.http.send_spawned(&http_request, TIMEOUT, MAX_BODY) } else { self.http.send(&http_request, TIMEOUT, MAX_BODY) };
            let response = response.map_err(|e| anyhow::anyhow!("native request: {e:?}"))?;
            ensure!(response.status == 200, "native request: HTTP {}", response.status);
            black_box(response);
            Ok(())
        };
        let mut plain = |n| timed(n, || send(false));
        let mut spawned = |n| timed(n, || send(true));
        let ops = self.plan.miss_ops();
        let [component, plain, spawned]: [Samples; 3] =
            interleave(self.plan.batches, true, &mut [Side::new(ops, &mut component), Side::new(ops, &mut plain), Side::new(ops, &mut spawned)])?
                .try_into()
                .expect("three sides");
        report.time("cache-miss get, component (ttl_ms 0)", &component, None);
        report.time("native keep-alive GET, same request", &plain, None);
        report.time("  same, as a spawned task (wasi-http's shape)", &spawned, None);
        report.ratio("miss get: component / native request", ratio(&component, &plain), Some(1.2));
        report.ratio("native: spawned task / direct", ratio(&spawned, &plain), None);
        Ok(())
    }
}

impl Bench {
    /// Figure 7: cache hits over HTTP through `serve` vs the same route served natively.
    pub fn serve(&self, report: &mut Report) -> Result<()> {
        super::serve::figures(&self.plan, &self.config, HIT_ENV, NAME, self.scratch.warm_cache(), report)
    }

    /// Figure 8: fresh and reused instances under `serve`, and store operations per read.
    pub fn edge(&self, report: &mut Report) -> Result<()> {
        super::edge::serve_figures(&self.plan, &self.config, HIT_ENV, NAME, self.scratch.warm_cache(), report)?;
        super::edge::store_figures(&self.plan, &self.config, HIT_ENV, MISS_ENV, NAME, self.scratch.warm_cache(), report)
    }
}

/// `wasmtime::Error` no longer converts into `anyhow::Error` (without wasmtime's `anyhow`
/// feature): keep its message and causes.
fn wasm_error(e: wasmtime::Error) -> anyhow::Error {
    anyhow::anyhow!("{e:#}")
}

/// The host's defaults, with the compile cache the bench controls (never the user's own).
fn options(cache_dir: Option<PathBuf>) -> RuntimeOptions {
    RuntimeOptions::default().cache_dir(cache_dir)
}

/// A private directory under the system temp dir, removed on drop: the warm compile cache,
/// one empty cache per cold start, and the serialized artifact.
struct TempDir {
    path: PathBuf,
    next: AtomicU64,
}

impl TempDir {
    fn new() -> Result<TempDir> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let path = std::env::temp_dir().join(format!("edge-secrets-bench-{}-{nanos}", std::process::id()));
        create_private(&path)?;
        Ok(TempDir { path, next: AtomicU64::new(0) })
    }

    fn warm_cache(&self) -> PathBuf {
        self.path.join("warm-cache")
    }

    /// A path for a new, not yet existing cache dir (the runtime creates it).
    fn fresh_dir(&self) -> Result<PathBuf> {
        Ok(self.path.join(format!("cold-{}", self.next.fetch_add(1, Ordering::Relaxed))))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Compiled artifacts are native code the runtime loads as is: keep them owner-only.
fn create_private(path: &Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path).with_context(|| format!("cannot create {}", path.display()))
}
