//! A loopback fake of both backends the component talks to — Vault KV v2 and GCP Secret
//! Manager — on one port, with fault injection and a record of every request.
//!
//! ```ignore
//! use edge_secrets_tests::{FakeBackend, Fault};
//! let backend = FakeBackend::start();
//! backend.put_vault("app/db", 1, &[("value", "pw")]);
//! backend.expect_vault_token("t-prod");
//! backend.fail_next(2, Fault::vault_sealed()); // the next two requests get 503
//! // ... point the component at backend.url() ...
//! assert_eq!(backend.request_count(), 3);
//! ```
//!
//! Routing: `/v1/projects/...` is GCP, `/v1/auth/...` is Vault AppRole (see
//! [`FakeBackend::enable_approle`]), `/v1/{mount}/data/...` is Vault; `/secrets/...`,
//! `/{tenant}/oauth2/v2.0/token` and `/metadata/identity/...` are Azure (see `azure`);
//! anything else 404.
//! It runs on its own thread and tokio runtime, so sync tests and the (sync) wasmtime host can
//! use it; dropping it stops the server and closes every connection, even hung ones.

mod approle;
mod aws_creds;
mod azure;
mod metadata;
mod fault;
mod form;
mod gcp;
mod random;
mod server;
#[cfg(test)]
mod tests;
mod vault;

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use bytes::Bytes;
use serde_json::{Map, Value};
use tokio::sync::oneshot;

pub use fault::Fault;
pub use random::SplitMix64;
use random::RandomFaults;
use vault::VaultVersion;

/// One request as the fake received it. Header names are lowercase.
///
/// `Debug` redacts `authorization` and `x-vault-token` values, so assertion messages stay
/// printable; use [`RecordedRequest::header`] to compare credentials.
#[derive(Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path_and_query: String,
    pub headers: Vec<(String, String)>,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl fmt::Debug for RecordedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| match n.as_str() {
                "authorization" | "x-vault-token" => (n.as_str(), "<redacted>"),
                _ => (n.as_str(), v.as_str()),
            })
            .collect();
        f.debug_struct("RecordedRequest")
            .field("method", &self.method)
            .field("path_and_query", &self.path_and_query)
            .field("headers", &headers)
            .finish()
    }
}

/// The secrets and expected credentials (what the two API modules read).
#[derive(Default)]
pub(crate) struct Store {
    /// `"{mount}/{path}"` → version → fields.
    pub vault: BTreeMap<String, BTreeMap<u64, VaultVersion>>,
    /// `(project, secret)` → version → payload.
    pub gcp: BTreeMap<(String, String), BTreeMap<u64, Vec<u8>>>,
    pub vault_token: Option<String>,
    pub vault_namespace: Option<String>,
    pub gcp_token: Option<String>,
    pub approle: approle::AppRole,
    pub metadata: metadata::Metadata,
    pub aws_creds: aws_creds::AwsCreds,
    pub azure: azure::Azure,
}

/// A normal (or status-fault) answer before it becomes an HTTP response.
pub(crate) struct Answer {
    pub status: u16,
    pub body: Bytes,
    pub retry_after: Option<String>,
}

impl Answer {
    pub(crate) fn json(status: u16, body: Value) -> Answer {
        Answer {
            status,
            body: body.to_string().into(),
            retry_after: None,
        }
    }
}

#[derive(Default)]
struct State {
    store: Store,
    queued: VecDeque<Fault>,
    always: Option<Fault>,
    random: Option<RandomFaults>,
    log: Vec<RecordedRequest>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    requests: AtomicU64,
    faults: AtomicU64,
    connections: AtomicU64,
}

/// The running fake. See the module docs.
pub struct FakeBackend {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FakeBackend {
    /// Starts on `127.0.0.1:0`. Panics if it cannot (tests cannot go on without it).
    pub fn start() -> FakeBackend {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let listener = {
            let _context = runtime.enter(); // from_std registers with this runtime's reactor
            tokio::net::TcpListener::from_std(listener).expect("tokio listener")
        };
        let shared = Arc::new(Shared::default());
        let (stop, stopped) = oneshot::channel();
        let server = server::serve(listener, shared.clone(), stopped);
        let thread = std::thread::Builder::new()
            .name("fake-backend".into())
            .spawn(move || {
                runtime.block_on(server);
                drop(runtime); // cancels connection tasks, hung ones included, closing their sockets
            })
            .expect("spawn the fake backend thread");
        FakeBackend {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The base URL, e.g. `http://127.0.0.1:40123`, for both `vault` and `gcp` environments.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stores version `version` of Vault secret `path` in mount `secret` (string fields).
    /// `latest` is the highest stored version.
    pub fn put_vault(&self, path: &str, version: u64, fields: &[(&str, &str)]) {
        self.put_vault_in("secret", path, version, fields);
    }

    /// Like [`FakeBackend::put_vault`], in another KV v2 mount.
    pub fn put_vault_in(&self, mount: &str, path: &str, version: u64, fields: &[(&str, &str)]) {
        let data = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
            .collect();
        self.insert_vault(mount, path, version, data);
    }

    /// Stores a version whose data is any JSON object (to test non-string fields).
    pub fn put_vault_json(&self, path: &str, version: u64, data: Value) {
        let Value::Object(data) = data else {
            panic!("put_vault_json: data must be a JSON object")
        };
        self.insert_vault("secret", path, version, data);
    }

    /// Soft-deletes a version: Vault then answers 404 with a data envelope whose
    /// `data` is null and `metadata.deletion_time` is set.
    pub fn delete_vault(&self, path: &str, version: u64) {
        let mut state = self.state();
        let v = state
            .store
            .vault
            .get_mut(&format!("secret/{path}"))
            .and_then(|v| v.get_mut(&version));
        v.expect("delete_vault: no such version").deleted = true;
    }

    /// Stores version `version` of GCP secret `secret` in `project`.
    pub fn put_gcp(&self, project: &str, secret: &str, version: u64, bytes: &[u8]) {
        assert!(version > 0, "GCP versions start at 1");
        let key = (project.to_owned(), secret.to_owned());
        self.state()
            .store
            .gcp
            .entry(key)
            .or_default()
            .insert(version, bytes.to_vec());
    }

    /// Vault requests must carry `X-Vault-Token: token` (or, with AppRole enabled, a live
    /// issued token), or get 403 `permission denied`.
    pub fn expect_vault_token(&self, token: &str) {
        self.state().store.vault_token = Some(token.to_owned());
    }

    /// Vault requests must carry `X-Vault-Namespace: namespace`, or get 403.
    pub fn expect_vault_namespace(&self, namespace: &str) {
        self.state().store.vault_namespace = Some(namespace.to_owned());
    }

    /// GCP requests must carry `Authorization: Bearer token`: none → 401 UNAUTHENTICATED,
    /// another → 403 PERMISSION_DENIED.
    pub fn expect_gcp_token(&self, token: &str) {
        self.state().store.gcp_token = Some(token.to_owned());
    }

    /// Drops all credential expectations: any (or no) credentials are accepted again.
    pub fn accept_any_credentials(&self) {
        let store = &mut self.state().store;
        (store.vault_token, store.vault_namespace, store.gcp_token) = (None, None, None);
        store.approle.disable();
    }

    /// The next `n` requests get `fault` (after any faults already queued).
    pub fn fail_next(&self, n: usize, fault: Fault) {
        self.state().queued.extend(std::iter::repeat_n(fault, n));
    }

    /// Every request with no queued fault gets `fault`; `None` answers normally again.
    pub fn set_fault_always(&self, fault: Option<Fault>) {
        self.state().always = fault;
    }

    /// Requests with no queued or persistent fault get, with probability `percent` %, a fault
    /// picked uniformly from `faults` (repeat an entry to weight it), decided by a splitmix64
    /// generator seeded with `seed`: the n-th such request's fate depends only on `seed` and
    /// `n`, so a run can be replayed (which caller's request is the n-th is up to timing).
    /// `percent` 0 turns the mode off. Panics if `percent > 100`, or `faults` is empty.
    pub fn set_random_faults(&self, seed: u64, percent: u32, faults: Vec<Fault>) {
        self.state().random = (percent > 0).then(|| RandomFaults::new(seed, percent, faults));
    }

    /// Drops queued faults, the persistent one and the random mode.
    pub fn clear_faults(&self) {
        let mut state = self.state();
        state.queued.clear();
        state.always = None;
        state.random = None;
    }

    /// Requests received (faulted ones included) since start or [`FakeBackend::reset_counts`].
    pub fn request_count(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Requests that got a fault (queued, persistent or random) since start or
    /// [`FakeBackend::reset_counts`].
    pub fn faults_injected(&self) -> u64 {
        self.shared.faults.load(Ordering::SeqCst)
    }

    /// The recorded requests, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state().log.clone()
    }

    /// Whether any recorded request had a header value containing `needle` — e.g. to show
    /// that one environment's token never reached another environment's server.
    pub fn any_header_contains(&self, needle: &str) -> bool {
        self.state()
            .log
            .iter()
            .any(|r| r.headers.iter().any(|(_, v)| v.contains(needle)))
    }

    /// TCP connections accepted (to check the host reuses connections).
    pub fn connection_count(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Zeroes the request, fault, connection, login and renewal counts and clears the request
    /// log.
    pub fn reset_counts(&self) {
        let mut state = self.state();
        state.log.clear();
        state.store.approle.reset_counts();
        state.store.azure.reset_counts();
        self.shared.requests.store(0, Ordering::SeqCst);
        self.shared.faults.store(0, Ordering::SeqCst);
        self.shared.connections.store(0, Ordering::SeqCst);
    }

    fn insert_vault(&self, mount: &str, path: &str, version: u64, data: Map<String, Value>) {
        assert!(version > 0, "Vault versions start at 1");
        let mut state = self.state();
        let versions = state
            .store
            .vault
            .entry(format!("{mount}/{path}"))
            .or_default();
        versions.insert(
            version,
            VaultVersion {
                data,
                deleted: false,
            },
        );
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state()
    }
}

impl Drop for FakeBackend {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl fmt::Debug for FakeBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeBackend")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not take the other tests' assertions down with it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}
