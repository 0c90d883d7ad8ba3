//! The data of one `serve` store and the linker over it.
//!
//! The composed app is two components in one: the Spin app (WASI P3: `wasi:http/types@0.3.0`,
//! plus what Rust's std imports at 0.2.x) and the guest (WASI P2: outgoing `wasi:http@0.2.12`,
//! clocks, random, `wasi:config`). One store serves both, so the linker carries P2 *and* P3
//! WASI, P2 and P3 `wasi:http`, `wasi:config` and `wasi:keyvalue`. The P2 parts are the async variants: the
//! store runs under `run_concurrent` on a tokio runtime, where the sync variants would try to
//! block on a runtime from inside one.
//!
//! It holds credentials (through the config map), so it has no `Debug`.

use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::clock::ManualClock;
use crate::keyvalue::{self, KeyValue, WasiKeyValue};
use crate::outbound::{Outbound, PooledHooks};
use crate::wasi_config::{self, WasiConfig, WasiConfigVariables};

pub(crate) struct ServeState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    /// Outbound requests of both components go through the runtime-wide keep-alive pool. (The
    /// app sends none today; the guest's P2 `outgoing-handler` does.)
    hooks: PooledHooks,
    config: WasiConfigVariables,
    /// The guest's shared state: one store per server, so every instance shares it.
    keyvalue: KeyValue,
    pub(crate) limits: StoreLimits,
}

/// What every store of a server is made from.
#[derive(Clone)]
pub(crate) struct StoreSetup {
    pub(crate) config: WasiConfigVariables,
    pub(crate) keyvalue: KeyValue,
    pub(crate) outbound: Outbound,
    pub(crate) memory_limit_bytes: usize,
    pub(crate) guest_stderr: bool,
    pub(crate) guest_log: Option<crate::GuestLog>,
    /// Tests: the components' monotonic and wall clocks.
    pub(crate) clock: Option<ManualClock>,
}

impl ServeState {
    pub(crate) fn new(setup: &StoreSetup) -> ServeState {
        ServeState {
            wasi: crate::store::wasi_ctx(setup.guest_stderr, setup.guest_log.as_ref(), setup.clock.as_ref()),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: PooledHooks(setup.outbound.clone()),
            config: setup.config.clone(),
            keyvalue: setup.keyvalue.clone(),
            limits: StoreLimitsBuilder::new().memory_size(setup.memory_limit_bytes).build(),
        }
    }
}

impl WasiView for ServeState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for ServeState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.hooks }
    }
}

/// The projection `ProxyHandler` uses to reach the HTTP context.
pub(crate) fn http_view(state: &mut ServeState) -> WasiHttpCtxView<'_> {
    state.http()
}

/// Everything the composed app imports.
pub(crate) fn linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<ServeState>> {
    let mut linker = Linker::new(engine);
    // The guest, and the app's std: WASI P2 and outgoing `wasi:http` P2.
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    // The app: WASI P3 and `wasi:http` P3 (the `handler` export's request and response types).
    wasmtime_wasi::p3::add_to_linker(&mut linker)?;
    wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
    // Both: the same `wasi:config` store (under Spin, the app's variables, which the dependency
    // inherits).
    wasi_config::add_to_linker(&mut linker, |state: &mut ServeState| WasiConfig::new(&state.config))?;
    // The guest's shared state. Async, with each backend call on tokio's blocking pool: a
    // (blocking) Redis round trip, or a stalled store, holds no worker, so requests that do not
    // touch the store are still answered.
    keyvalue::add_to_linker_async(&mut linker, |state: &mut ServeState| WasiKeyValue::new(&state.keyvalue, &mut state.table))?;
    Ok(linker)
}
