//! The thin WASI shell: bindings, and the adapters that give the pure core
//! its clock, randomness, configuration and HTTP transport. Compiled only for
//! wasm32; everything here is glue with no decisions of its own.

mod component;
mod platform;
mod transport;

wit_bindgen::generate!({
    path: "../wit",
    world: "edge:secrets/provider",
    generate_all,
});

use component::Component;
export!(Component);
