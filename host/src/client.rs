//! [`Client`]: one live component instance and the typed calls into it.
//!
//! The instance is kept across calls because the component's cache and circuit breakers live in
//! its memory. If a call traps (including hitting the host's call deadline), the instance can no
//! longer be trusted: it is dropped, the error is returned, and the next call instantiates a fresh
//! one (with an empty cache), so the host keeps serving.

use wasmtime::{Store, Trap};

use crate::admin::{EnvironmentStats, HealthReport};
use crate::bindings::Provider;
use crate::runtime::Runtime;
use crate::store::StoreState;
use crate::types::{convert_result, Error, Request, Secret, SecretError};

/// A handle to one component instance. `Send` (move it to a worker thread), not `Sync`: calls
/// take `&mut self`. Create one per thread from a shared [`Runtime`].
///
/// Calls are synchronous. From async code, call them from `tokio::task::spawn_blocking` (or a
/// plain thread): blocking inside an async task would stall, and tokio panics if WASI blocks on
/// its runtime from there.
pub struct Client {
    runtime: Runtime,
    live: Option<Live>,
    instantiations: u64,
}

struct Live {
    store: Store<StoreState>,
    provider: Provider,
}

impl Client {
    /// Instantiates the component now, so setup errors surface here.
    pub fn new(runtime: &Runtime) -> Result<Client, Error> {
        let mut client = Client { runtime: runtime.clone(), live: None, instantiations: 0 };
        client.live()?;
        Ok(client)
    }

    /// Reads one secret: from the component's cache when fresh, else from the backend.
    pub fn get(&mut self, request: &Request) -> Result<Secret, Error> {
        let result = self.call(|p, s| p.edge_secrets_secrets().call_get(s, request))?;
        Ok(convert_result(result)?)
    }

    /// Reads several secrets; results are in request order. `Err` only for host failures (a
    /// trap): per-secret failures are inside the vector.
    pub fn get_many(&mut self, requests: &[Request]) -> Result<Vec<Result<Secret, SecretError>>, Error> {
        let results = self.call(|p, s| p.edge_secrets_secrets().call_get_many(s, requests))?;
        Ok(results.into_iter().map(convert_result).collect())
    }

    /// Drops cached entries of `environment` (all, or only secret `name`'s). Returns how many.
    pub fn invalidate(&mut self, environment: &str, name: Option<&str>) -> Result<u32, Error> {
        let result = self.call(|p, s| p.edge_secrets_secrets().call_invalidate(s, environment, name))?;
        result.map_err(|e| Error::Secret(SecretError::from(e)))
    }

    /// Counters per configured environment, sorted by environment name.
    pub fn stats(&mut self) -> Result<Vec<EnvironmentStats>, Error> {
        let stats = self.call(|p, s| p.edge_secrets_admin().call_stats(s))?;
        Ok(stats.into_iter().map(Into::into).collect())
    }

    /// Current health.
    pub fn health(&mut self) -> Result<HealthReport, Error> {
        Ok(self.call(|p, s| p.edge_secrets_admin().call_health(s))?.into())
    }

    /// Calls the component's no-op export: a liveness check, and the cost of the boundary alone.
    pub fn ping(&mut self) -> Result<(), Error> {
        self.call(|p, s| p.edge_secrets_admin().call_ping(s))
    }

    /// Drops the current instance (and with it the component's cache and breaker state); the
    /// next call starts a fresh one.
    pub fn reset(&mut self) {
        self.live = None;
    }

    /// How many instances this client has created (1 + one per trap or reset that was followed
    /// by a call).
    pub fn instantiations(&self) -> u64 {
        self.instantiations
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    fn live(&mut self) -> Result<&mut Live, Error> {
        if self.live.is_none() {
            let (store, provider) = self.runtime.inner.instantiate()?;
            self.instantiations += 1;
            self.live = Some(Live { store, provider });
        }
        Ok(self.live.as_mut().expect("set above"))
    }

    /// Runs one export under the call deadline; any failure discards the instance.
    fn call<R>(&mut self, f: impl FnOnce(&Provider, &mut Store<StoreState>) -> wasmtime::Result<R>) -> Result<R, Error> {
        let ticks = self.runtime.inner.deadline_ticks;
        let timeout = self.runtime.inner.options.call_timeout;
        let _io = crate::runtime::enter_io();
        let live = self.live()?;
        live.store.set_epoch_deadline(ticks);
        match f(&live.provider, &mut live.store) {
            Ok(r) => Ok(r),
            Err(err) => {
                self.live = None;
                match err.downcast_ref::<Trap>() {
                    Some(Trap::Interrupt) => Err(Error::Deadline(timeout)),
                    // The trap code alone: the wasm backtrace (function indices) is noise here.
                    Some(trap) => Err(Error::Trap(format!("wasm trap: {trap}"))),
                    None => Err(Error::Trap(err.root_cause().to_string())),
                }
            }
        }
    }
}

// The API promises: a Client moves between threads, a Runtime is shared between them.
const _: () = {
    const fn send<T: Send>() {}
    const fn send_sync<T: Send + Sync>() {}
    send::<Client>();
    send_sync::<Runtime>();
};
