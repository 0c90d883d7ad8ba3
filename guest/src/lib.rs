//! edge-secrets guest: the `edge:secrets/provider` component.
//!
//! Everything outside [`wasi`] is a pure, natively testable core: it never
//! touches WASI and takes its clock, randomness and HTTP transport as
//! parameters ([`engine::Io`]). The [`wasi`] module (compiled only for wasm32)
//! is the thin shell: bindings, the HTTP transport over `wasi:http`, the
//! monotonic clock, `wasi:random` and `wasi:config`.

// No std in the component: it then imports exactly its world (std would add wasi:cli/*) and
// is smaller. Natively (unit tests, the host's benchmark, the native cdylib) std is there;
// the code itself only uses `core` and `alloc`, so it is the same code either way.
#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

/// What every module would otherwise get from std's prelude.
mod prelude {
    pub use alloc::format;
    pub use alloc::string::{String, ToString};
    pub use alloc::vec;
    pub use alloc::vec::Vec;
}

pub mod auth;
pub mod backend;
pub mod breaker;
pub mod cache;
pub mod config;
pub mod config_provider;
pub mod digest;
pub mod encoding;
pub mod engine;
pub mod error;
pub mod histogram;
pub mod http;
pub mod log;
pub mod retry;
pub mod secret;
pub mod shared;
pub mod sigv4;
pub mod trace;
pub mod validate;

#[cfg(target_arch = "wasm32")]
mod wasi;

pub use engine::{Io, Provider};
pub use error::Error;
