//! The data of one `Store`: WASI contexts, the shared config map, the pooled HTTP hooks and the
//! resource limits. It holds credentials (through the config map), so it has no `Debug`.

use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::clock::{ManualClock, WasiManualClock, WasiManualWallClock};
use crate::keyvalue::{self, KeyValue, WasiKeyValue};
use crate::outbound::{Outbound, PooledHooks};
use crate::runtime::RuntimeOptions;
use crate::wasi_config::{self, WasiConfig, WasiConfigVariables};

pub(crate) struct StoreState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: PooledHooks,
    config: WasiConfigVariables,
    keyvalue: KeyValue,
    pub(crate) limits: StoreLimits,
}

impl StoreState {
    pub(crate) fn new(config: WasiConfigVariables, keyvalue: KeyValue, outbound: Outbound, options: &RuntimeOptions) -> StoreState {
        StoreState {
            wasi: wasi_ctx(options.guest_stderr, options.guest_log.as_ref(), options.clock.as_ref()),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: PooledHooks(outbound),
            config,
            keyvalue,
            // `trap_on_grow_failure(false)`: a refused `memory.grow` returns -1 and the guest's
            // allocator reports out-of-memory (an abort, i.e. a trap) with its own message.
            limits: StoreLimitsBuilder::new().memory_size(options.memory_limit_bytes).instances(16).tables(16).memories(4).build(),
        }
    }
}

/// The WASI context of every store, the `serve` ones included: no args, env, preopens or
/// sockets (the components need only clocks, random, stderr and, through std, the cli
/// interfaces), and stdout closed (the CLI writes secret bytes there); stderr (the guest's JSON
/// log lines) only on request, to the host's stderr or captured; a test clock replaces both clocks.
pub(crate) fn wasi_ctx(guest_stderr: bool, guest_log: Option<&GuestLog>, clock: Option<&ManualClock>) -> WasiCtx {
    let mut wasi = WasiCtx::builder();
    if let Some(log) = guest_log {
        wasi.stderr(log.0.clone());
    } else if guest_stderr {
        wasi.inherit_stderr();
    }
    if let Some(clock) = clock {
        wasi.monotonic_clock(WasiManualClock(clock.clone()));
        wasi.wall_clock(WasiManualWallClock(clock.clone()));
    }
    wasi.build()
}

/// Guest stderr captured in memory (tests read the component's log lines). Clones share one
/// buffer, so every instance of a runtime writes to it. Once `capacity` bytes are written the
/// stream reports itself closed; the guest then drops its log lines (never failing a call).
#[derive(Debug, Clone)]
pub struct GuestLog(MemoryOutputPipe);

impl GuestLog {
    pub fn new(capacity_bytes: usize) -> GuestLog {
        GuestLog(MemoryOutputPipe::new(capacity_bytes))
    }

    /// Everything written so far.
    pub fn contents(&self) -> String {
        String::from_utf8_lossy(&self.0.contents()).into_owned()
    }
}

impl Default for GuestLog {
    /// 1 MiB.
    fn default() -> GuestLog {
        GuestLog::new(1 << 20)
    }
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for StoreState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.hooks }
    }
}

/// Everything the component can import: WASI p2 (std in a wasip2 guest imports `wasi:cli/*`,
/// `wasi:random/insecure-seed`...), `wasi:http`, `wasi:config/store` and `wasi:keyvalue`. All
/// synchronous.
pub(crate) fn linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<StoreState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut linker)?;
    wasi_config::add_to_linker(&mut linker, |state: &mut StoreState| WasiConfig::new(&state.config))?;
    keyvalue::add_to_linker(&mut linker, |state: &mut StoreState| WasiKeyValue::new(&state.keyvalue, &mut state.table))?;
    Ok(linker)
}
