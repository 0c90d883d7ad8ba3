//! `wac plug` as a function: a provider's exports (the guest's `edge:secrets/secrets` and
//! `edge:secrets/admin`, or the config provider's `wasi:config/store`) satisfy an app's imports
//! of the same names, and the result exports what the app exports (`wasi:http/handler`).
//! Imports the two share (`wasi:config/store` for the guest, `wasi:io`...) become single imports
//! of the composition: under Spin that is what `inherit_configuration` gives a dependency, the
//! parent's variables and outbound hosts.
//!
//! Used by `build.rs` (the embedded composed app) and by the library (`edge-secrets compose`).

use wac_graph::types::Package;
use wac_graph::{plug as wac_plug, CompositionGraph, EncodeOptions};

/// The app with the provider (`guest`) plugged in, validated.
pub fn plug(guest: &[u8], app: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut graph = CompositionGraph::new();
    let guest = Package::from_bytes("edge:secrets-guest", None, guest, graph.types_mut())?;
    let guest = graph.register_package(guest)?;
    let app = Package::from_bytes("edge:secrets-app", None, app, graph.types_mut())?;
    let app = graph.register_package(app)?;
    wac_plug(&mut graph, vec![guest], app)?;
    Ok(graph.encode(EncodeOptions { define_components: true, validate: true, ..Default::default() })?)
}
