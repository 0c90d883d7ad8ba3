//! edge-secrets guest: the `edge:secrets/provider` component.
//!
//! Everything outside [`wasi`] is a pure, natively testable core: it never
//! touches WASI and takes its clock, randomness and HTTP transport as
//! parameters ([`engine::Io`]). The [`wasi`] module (compiled only for wasm32)
//! is the thin shell: bindings, the HTTP transport over `wasi:http`, the
//! monotonic clock, `wasi:random` and `wasi:config`.

pub mod backend;
pub mod breaker;
pub mod cache;
pub mod config;
pub mod encoding;
pub mod engine;
pub mod error;
pub mod http;
pub mod retry;
pub mod secret;
pub mod validate;

#[cfg(target_arch = "wasm32")]
mod wasi;

pub use engine::{Io, Provider};
pub use error::Error;
