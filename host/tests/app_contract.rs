//! The Spin app's public shape, read from the binaries with `wit-component`: the app alone
//! imports the `edge:secrets` interfaces and no `spin:*` interface; composed with the guest it
//! imports only standard WASI (exactly the set below) and exports the P3 HTTP handler.

use std::collections::BTreeSet;

use edge_secrets_host::{APP_WASM, COMPOSED_APP_WASM};
use wit_component::DecodedWasm;

/// `(imports, exports)` of a component, as fully qualified interface names.
fn shape(wasm: &[u8]) -> (BTreeSet<String>, BTreeSet<String>) {
    let DecodedWasm::Component(resolve, world) = wit_component::decode(wasm).expect("decode the component") else {
        panic!("not a component");
    };
    let world = &resolve.worlds[world];
    let imports = world.imports.keys().map(|k| resolve.name_world_key(k)).collect();
    let exports = world.exports.keys().map(|k| resolve.name_world_key(k)).collect();
    (imports, exports)
}

#[test]
fn the_app_alone_imports_edge_secrets_and_no_spin_interface() {
    let (imports, exports) = shape(APP_WASM);
    for needed in ["edge:secrets/secrets@0.2.0", "edge:secrets/admin@0.2.0", "wasi:config/store@0.2.0-draft-2024-09-27"] {
        assert!(imports.contains(needed), "the app must import {needed}: {imports:#?}");
    }
    assert!(imports.iter().all(|i| i.starts_with("wasi:") || i.starts_with("edge:secrets/")), "{imports:#?}");
    assert!(!imports.iter().any(|i| i.starts_with("spin:") || i.starts_with("fermyon:")), "{imports:#?}");
    assert_eq!(exports, BTreeSet::from(["wasi:http/handler@0.3.0".to_string()]));
}

#[test]
fn the_composed_app_imports_only_standard_wasi() {
    let (imports, exports) = shape(COMPOSED_APP_WASM);
    assert!(imports.iter().all(|i| i.starts_with("wasi:")), "non-WASI import in {imports:#?}");
    // Exactly: the guest's imports (outgoing HTTP P2, config, clocks, random, keyvalue) plus the app's
    // (P3 HTTP types; Rust std on wasm32-wasip2: cli, io, insecure-seed). wac merges the two
    // components' `wasi:io` 0.2.x into one version. A new import (e.g. `wasi:keyvalue`) must be
    // added here on purpose, and linked by `serve`.
    let expected: BTreeSet<String> = [
        "wasi:cli/environment@0.2.6",
        "wasi:cli/exit@0.2.6",
        // The guest's log sink (0.2.12) and the app's std (0.2.6), merged by wac into the newer.
        "wasi:cli/stderr@0.2.12",
        "wasi:cli/stdin@0.2.6",
        "wasi:cli/stdout@0.2.6",
        "wasi:cli/terminal-input@0.2.6",
        "wasi:cli/terminal-output@0.2.6",
        "wasi:cli/terminal-stderr@0.2.6",
        "wasi:cli/terminal-stdin@0.2.6",
        "wasi:cli/terminal-stdout@0.2.6",
        "wasi:clocks/monotonic-clock@0.2.12",
        "wasi:clocks/wall-clock@0.2.12",
        "wasi:config/store@0.2.0-draft-2024-09-27",
        "wasi:http/outgoing-handler@0.2.12",
        "wasi:http/types@0.2.12",
        "wasi:http/types@0.3.0",
        "wasi:io/error@0.2.6",
        "wasi:io/poll@0.2.6",
        "wasi:io/streams@0.2.6",
        "wasi:keyvalue/atomics@0.2.0-draft2",
        "wasi:keyvalue/batch@0.2.0-draft2",
        "wasi:keyvalue/store@0.2.0-draft2",
        "wasi:random/insecure-seed@0.2.6",
        "wasi:random/random@0.2.12",
    ]
    .map(String::from)
    .into();
    assert_eq!(imports, expected);
    assert!(!imports.iter().any(|i| i.starts_with("edge:")), "the guest must satisfy every edge:secrets import");
    assert_eq!(exports, BTreeSet::from(["wasi:http/handler@0.3.0".to_string()]));
}
