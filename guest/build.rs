//! Links the component (wasm32 only) with a larger initial memory: `wasm-ld`'s default is just
//! the data and the 1 MiB stack (17 pages), so the allocator's first byte grew the memory, which
//! costs a fresh instance two `mprotect`s in a pooling host (see `src/wasi/allocator.rs`). 64 pages
//! (4 MiB) leave ~2.9 MiB of heap in the initial memory: more than a request on a fresh instance
//! allocates, and within the pages a `serve` slot keeps resident between instances.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo:rustc-link-arg-cdylib=--initial-memory={}", INITIAL_MEMORY_BYTES);
    }
}

const INITIAL_MEMORY_BYTES: u32 = 64 * 64 * 1024;
