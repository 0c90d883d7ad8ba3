//! The edge-secrets Spin app: an HTTP component (spin-sdk 7, WASI P3: it exports
//! `wasi:http/handler@0.3.0`) serving secrets read through the `edge:secrets` provider it
//! imports. Composed with the provider, it imports only standard WASI interfaces; it reads its
//! own setting (`caller_tokens`) from `wasi:config/store`, never from `spin:*` interfaces.
//!
//! Functional core, thin shell: everything that decides something ([`route`], [`auth`],
//! [`trace`], [`reply`], [`observe`], [`handler`]) is plain Rust over the ports in [`model`],
//! unit-tested natively; only `shell` (wasm32 only) touches bindings.
//!
//! Routes: `GET /v1/secrets/{env}/{name...}?version=&field=&refresh=` (needs `Authorization:
//! Bearer` with a token configured for `env`; a valid `traceparent` is passed on), `GET
//! /healthz`, `GET /metrics`.

pub mod auth;
pub mod handler;
pub mod model;
pub mod observe;
pub mod reply;
pub mod route;
pub mod trace;

#[cfg(target_arch = "wasm32")]
mod shell;
