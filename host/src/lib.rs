//! Host harness for the `edge:secrets/provider` component: runs it in wasmtime with WASI p2,
//! pooled outbound `wasi:http`, and `wasi:config` backed by a map.
//!
//! # Using it
//!
//! ```no_run
//! use std::collections::BTreeMap;
//! use edge_secrets_host::{Request, Runtime, RuntimeOptions, SecretError, Error};
//!
//! // The component's wasi:config store: the policy JSON plus the credentials it names.
//! let config = BTreeMap::from([
//!     ("secrets_policy".to_string(), r#"{"environments":{"dev":{
//!         "backend":"vault","url":"http://127.0.0.1:8200","token_key":"dev_token"}}}"#.to_string()),
//!     ("dev_token".to_string(), "root".to_string()),
//! ]);
//! // Compile (or load from the on-disk cache) once; share the Runtime (Clone + Send + Sync).
//! let runtime = Runtime::new(config, RuntimeOptions::default().cache_dir(None))?;
//! // One Client per thread: it keeps one live instance, so the component's cache persists.
//! let mut client = runtime.client()?;
//!
//! let secret = client.get(&Request::new("dev", "app/db").field("password"))?;
//! println!("version {} from {}", secret.version, secret.source); // never prints the value
//! let bytes: &[u8] = secret.value.expose();
//! # let _ = bytes;
//!
//! match client.get(&Request::new("dev", "missing")) {
//!     Err(Error::Secret(SecretError::NotFound(_))) => {}
//!     other => println!("{other:?}"),
//! }
//! let results = client.get_many(&[Request::new("dev", "a"), Request::new("dev", "b")])?;
//! let dropped = client.invalidate("dev", Some("app/db"))?;
//! let stats = client.stats()?;
//! # let _ = (results, dropped, stats);
//! # Ok::<(), edge_secrets_host::Error>(())
//! ```
//!
//! Or from a config file (see [`ConfigFile`] for the format):
//! `ConfigFile::load(path)?.runtime()?.client()?`.
//!
//! # Behaviour worth knowing
//!
//! - [`Client`] calls are synchronous. In async code, run them in `spawn_blocking`.
//! - Errors: [`Error::Secret`] carries the component's answer ([`SecretError`], one case per WIT
//!   error case); [`Error::Trap`] / [`Error::Deadline`] mean the instance was discarded and the
//!   next call gets a fresh one (empty cache, closed breakers); [`Error::Runtime`] is setup.
//!   [`Error::kind`] flattens them into an [`ErrorKind`].
//! - Limits: [`RuntimeOptions`] caps memory per instance (default 128 MiB) and time per call
//!   (default 60 s, enforced with epoch interruption: a spinning guest traps instead of hanging).
//!   The call timeout must exceed the policy's largest `timeouts.deadline_ms`, or
//!   [`Runtime::new`] refuses it.
//! - Secrets: [`SecretValue`]'s `Debug` is redacted and no error carries secret bytes. The
//!   types holding credentials ([`ConfigFile`], the runtime) do not implement `Debug`.
//! - Outbound HTTP goes through one keep-alive pool per [`Runtime`] (plain HTTP and HTTPS with
//!   the Web PKI roots), honouring the guest's per-request timeouts.
//! - The compiled component is cached under [`RuntimeOptions::cache_dir`] (default
//!   `$XDG_CACHE_HOME/edge-secrets`); `None` compiles in memory. The cache is native code, so it
//!   is only used if the directory is private to the user (owned, not group/world-writable, not
//!   a symlink); otherwise [`Runtime::compile_cache_note`] says why it was skipped.
//! - Tests can drive the component's monotonic clock with a [`ManualClock`]
//!   ([`RuntimeOptions::clock`]): real time plus `advance` jumps.
//! - [`GUEST_WASM`] is the embedded component, built by `build.rs` from `guest/`;
//!   [`APP_WASM`] the Spin HTTP app (`spin-app/`) and [`COMPOSED_APP_WASM`] the two composed,
//!   which [`serve::Server`] runs over HTTP with WASI P3 (`edge-secrets serve`).
//! - [`compose::CONFIG_PROVIDER_WASM`] is the same core exporting `wasi:config/store`;
//!   [`compose::with_config_provider`] plugs it into an app that reads its settings through
//!   `wasi:config`, and [`serve::Server::start_app`] serves the result.

mod admin;
mod bindings;
mod client;
mod clock;
mod compile_cache;
pub mod compose;
pub mod keyvalue;
pub mod config_file;
pub mod dev_store;
mod outbound;
mod runtime;
pub mod serve;
mod store;
mod types;
mod wasi_config;

pub use admin::{BreakerState, EnvironmentHealth, EnvironmentStats, ErrorCounts, HealthReport, SharedHealth, SharedStatus, TierStats, LatencyHistogram};
pub use client::Client;
pub use clock::ManualClock;
pub use compile_cache::{default_cache_dir, CompileSource};
pub use keyvalue::{KeyValue, KvOperations};
pub use config_file::{ConfigError, ConfigFile};
pub use runtime::{Runtime, RuntimeOptions, APP_WASM, COMPOSED_APP_WASM, GUEST_WASM};
pub use store::GuestLog;
pub use types::{Error, ErrorKind, Request, Secret, SecretError, SecretValue, Source};
pub use wasi_config::WasiConfigVariables;
