//! Test support for edge-secrets integration tests: everything a test needs besides the
//! component and the host.
//!
//! - [`FakeBackend`]: a loopback fake of Vault KV v2 and GCP Secret Manager with fault
//!   injection and request recording;
//! - [`PolicyBuilder`]: the component's `secrets_policy` document and credential entries;
//! - [`Harness`]: the fake backend plus the real component in the wasmtime host;
//! - [`codec`]: CRC32C and base64, written independently of the component's own;
//! - [`RedisServer`]: a throwaway `redis-server` on a free loopback port;
//! - [`Moto`]: a throwaway moto (AWS emulator) server with IAM authentication on.

pub mod codec;
pub mod fake_backend;
pub mod harness;
pub mod moto;
pub mod policy;
pub mod redis_server;

pub use fake_backend::{FakeBackend, Fault, RecordedRequest};
pub use harness::Harness;
pub use moto::Moto;
pub use policy::{PolicyBuilder, POLICY_KEY, STATE_KEY_KEY};
pub use redis_server::RedisServer;
