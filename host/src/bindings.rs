//! Generated bindings for the `edge:secrets/provider` world (exports only, synchronous).
//!
//! Imports are linked from existing host implementations rather than generated here: `with`
//! points every imported WASI package at the types wasmtime-wasi / wasmtime-wasi-http already
//! define, so the generated export signatures share their resource types and no duplicate host
//! traits are generated. The generated records (`Secret` in particular) have derived `Debug`
//! impls that would print secret bytes: they stay crate-private and are converted to the
//! redacting public types in `types.rs`.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "edge:secrets/provider",
    with: {
        "wasi:http": wasmtime_wasi_http::p2::bindings::http,
        "wasi:io": wasmtime_wasi::p2::bindings::sync::io,
        "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        "wasi:random": wasmtime_wasi::p2::bindings::random,
        "wasi:config/store": crate::wasi_config::store,
        "wasi:keyvalue": crate::keyvalue::wasi_keyvalue,
    },
});

pub(crate) use exports::edge::secrets::admin as wit_admin;
pub(crate) use exports::edge::secrets::secrets as wit_secrets;
