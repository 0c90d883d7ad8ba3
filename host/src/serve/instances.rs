//! Instance lifetimes for `serve`, in the shape Spin 4 gives P3 apps: an instance is reused for
//! up to 128 sequential requests, takes up to 16 at once, and is dropped after 1 s idle; or,
//! with `--fresh-instance-per-request`, every request gets its own instance. Reuse matters
//! because the provider's cache and breakers live in the instance's memory.
//!
//! wasmtime-wasi-http's `ProxyHandler` does the scheduling (queueing requests to available
//! workers, one store and instance per worker); this module supplies its policy hooks. The
//! decisions themselves ([`ReusePolicy::should_accept`], [`ReusePolicy::deadline`]) are pure.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use wasmtime::component::GuestTaskId;
use wasmtime::{Engine, Store, StoreContextMut};
use wasmtime_wasi_http::handler::{HandlerState, Instance, Proxy, ShouldAccept, WorkerExpiration, WorkerState, WorkerStatus};
use wasmtime_wasi_http::p3::bindings::ServicePre;

use super::state::{self, ServeState, StoreSetup};

/// How long an instance lives and how much it takes on. Secret-free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReusePolicy {
    /// Requests an instance handles in its life (1 = a fresh instance per request).
    pub max_requests: usize,
    /// Requests an instance handles at once.
    pub max_concurrent: usize,
    /// An idle instance is dropped after this long.
    pub idle_timeout: Duration,
    /// A request without a response after this long expires, and so does its instance (the
    /// backstop behind the component's own deadlines).
    pub request_timeout: Duration,
}

impl ReusePolicy {
    /// Spin 4's figures.
    pub fn spin(request_timeout: Duration) -> ReusePolicy {
        ReusePolicy { max_requests: 128, max_concurrent: 16, idle_timeout: Duration::from_secs(1), request_timeout }
    }

    pub fn fresh_instance_per_request(request_timeout: Duration) -> ReusePolicy {
        ReusePolicy { max_requests: 1, max_concurrent: 1, idle_timeout: Duration::ZERO, request_timeout }
    }

    /// Whether an instance with `concurrent` requests in hand, `total` accepted so far, takes
    /// another.
    pub fn should_accept(&self, concurrent: usize, total: usize) -> ShouldAccept {
        if total >= self.max_requests {
            ShouldAccept::Never
        } else if concurrent >= self.max_concurrent {
            ShouldAccept::No
        } else {
            ShouldAccept::Yes
        }
    }

    /// When an instance in `status` since `since` is done for.
    pub fn deadline(&self, status: WorkerStatus, since: Instant) -> Instant {
        match status {
            WorkerStatus::Idle => since + self.idle_timeout,
            // Requests: `since` is the newest outstanding request's start, so this only fires
            // once every request in hand has expired. PostReturn: the guest's work after its
            // last response is held to the same bound.
            WorkerStatus::Requests | WorkerStatus::PostReturn => since + self.request_timeout,
        }
    }
}

/// Creates instances for `ProxyHandler`. One per server.
pub(crate) struct Instances {
    pub(crate) engine: Engine,
    pub(crate) pre: ServicePre<ServeState>,
    pub(crate) setup: StoreSetup,
    pub(crate) policy: ReusePolicy,
    /// Instances created so far (tests check reuse with it).
    pub(crate) created: Arc<AtomicU64>,
    /// Set when the server shuts down: the workers it cancels then are not failures.
    pub(crate) stopping: Arc<AtomicBool>,
    /// Advances the engine's epoch while the server lives (dropping it stops the thread).
    pub(crate) _ticker: std::sync::mpsc::Sender<()>,
}

impl HandlerState for Instances {
    type StoreData = ServeState;
    type WorkerExpiration = Expiry;
    type WorkerState = Worker;

    async fn instantiate(&self) -> wasmtime::Result<Instance<ServeState, Expiry, Worker>> {
        let state = ServeState::new(&self.setup);
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        // Epoch ticks make a long-running guest yield back to the worker's event loop, where
        // the expiry below is checked: a spinning guest is dropped at its deadline.
        store.epoch_deadline_async_yield_and_update(1);
        let service = self.pre.instantiate_async(&mut store).await?;
        self.created.fetch_add(1, Ordering::Relaxed);
        Ok(Instance {
            store,
            proxy: Proxy::P3(service),
            view: state::http_view,
            expiration: Expiry { policy: self.policy, armed: None },
            state: Worker { policy: self.policy, stopping: self.stopping.clone() },
        })
    }
}

/// Per-instance policy hooks.
pub(crate) struct Worker {
    policy: ReusePolicy,
    stopping: Arc<AtomicBool>,
}

impl WorkerState for Worker {
    type StoreData = ServeState;
    type RequestData = ();

    fn should_accept_request(&self, concurrent: usize, total: usize) -> ShouldAccept {
        self.policy.should_accept(concurrent, total)
    }

    fn on_request_start(&self, _store: StoreContextMut<'_, ServeState>, _data: (), _task: GuestTaskId) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        Box::pin(tokio::time::sleep(self.policy.request_timeout))
    }

    fn drop(&self, store: Store<ServeState>, result: wasmtime::Result<()>) {
        drop(store);
        // A shutdown cancels the idle workers, which wasmtime reports as "worker panicked".
        if self.stopping.load(Ordering::SeqCst) {
            return;
        }
        if let Err(error) = result {
            // A trap or an expired request: the instance is gone, the next request gets a new
            // one. The message is wasmtime's (trap code, backtrace): no request data in it.
            eprintln!("edge-secrets serve: instance dropped: {error:#}");
        }
    }
}

/// Expires an instance at [`ReusePolicy::deadline`] for its current status.
pub(crate) struct Expiry {
    policy: ReusePolicy,
    /// The status the timer is armed for, and the timer.
    armed: Option<Armed>,
}

/// The `(status, since)` a timer was set for, and the timer.
type Armed = ((WorkerStatus, Instant), Pin<Box<tokio::time::Sleep>>);

impl WorkerExpiration for Expiry {
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>, status: WorkerStatus, start: Instant) -> Poll<()> {
        let this = self.get_mut();
        let deadline = this.policy.deadline(status, start);
        if Instant::now() >= deadline {
            return Poll::Ready(());
        }
        let key = (status, start);
        match &mut this.armed {
            Some((armed, sleep)) if *armed == key => sleep.as_mut().poll(cx),
            slot => {
                let mut sleep = Box::pin(tokio::time::sleep_until(deadline.into()));
                let poll = sleep.as_mut().poll(cx);
                *slot = Some((key, sleep));
                poll
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepts(policy: &ReusePolicy, concurrent: usize, total: usize) -> &'static str {
        match policy.should_accept(concurrent, total) {
            ShouldAccept::Yes => "yes",
            ShouldAccept::No => "no",
            ShouldAccept::Never => "never",
        }
    }

    #[test]
    fn spin_reuses_for_128_requests_16_at_a_time() {
        let p = ReusePolicy::spin(Duration::from_secs(60));
        assert_eq!(accepts(&p, 0, 0), "yes");
        assert_eq!(accepts(&p, 15, 100), "yes");
        assert_eq!(accepts(&p, 16, 100), "no");
        assert_eq!(accepts(&p, 0, 127), "yes");
        assert_eq!(accepts(&p, 0, 128), "never");
    }

    #[test]
    fn fresh_mode_takes_exactly_one_request() {
        let p = ReusePolicy::fresh_instance_per_request(Duration::from_secs(60));
        assert_eq!(accepts(&p, 0, 0), "yes");
        assert_eq!(accepts(&p, 0, 1), "never");
        assert_eq!(accepts(&p, 1, 1), "never");
    }

    #[test]
    fn deadlines_follow_the_status() {
        let p = ReusePolicy::spin(Duration::from_secs(60));
        let t = Instant::now();
        assert_eq!(p.deadline(WorkerStatus::Idle, t), t + Duration::from_secs(1));
        assert_eq!(p.deadline(WorkerStatus::Requests, t), t + Duration::from_secs(60));
        assert_eq!(p.deadline(WorkerStatus::PostReturn, t), t + Duration::from_secs(60));
    }
}
