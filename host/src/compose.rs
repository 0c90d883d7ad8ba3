//! Composing an app with the config provider ([`CONFIG_PROVIDER_WASM`]): the provider's
//! `wasi:config/store` export satisfies the app's import of it, so an app that reads its
//! settings through `wasi:config` gets the mapped ones from secret stores, unchanged. What
//! `wac plug --plug config-provider.wasm app.wasm` does, and `edge-secrets compose`.
//!
//! The result imports what both import, minus the plugged interface of the app: the provider's
//! own `wasi:config/store` (its policy, credentials and the app's ordinary settings),
//! `wasi:http/outgoing-handler`, `wasi:keyvalue`, clocks, random, and the app's own imports.

#[path = "../build/compose.rs"]
mod plug;

/// The config-provider component: the guest built with its `config-provider` feature.
pub static CONFIG_PROVIDER_WASM: &[u8] = include_bytes!(env!("EDGE_SECRETS_CONFIG_PROVIDER_WASM"));

/// Why an app could not be composed with the provider.
#[derive(Debug, thiserror::Error)]
#[error("cannot compose the app with the config provider: {0}")]
pub struct ComposeError(String);

/// `app` (a component that imports `wasi:config/store@0.2.0-draft-2024-09-27`) with the config
/// provider plugged into that import, validated.
pub fn with_config_provider(app: &[u8]) -> Result<Vec<u8>, ComposeError> {
    plug::plug(CONFIG_PROVIDER_WASM, app).map_err(|e| ComposeError(format!("{e:#}")))
}
