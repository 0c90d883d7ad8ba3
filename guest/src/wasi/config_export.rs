//! The config-provider world's export: `wasi:config/store` answered by
//! [`ConfigView`] over the provider, with the imported store for pass-through.
//! The one place where its errors become WIT errors.

use crate::prelude::*;

use super::exports::wasi::config::store as exported;
use super::state::{with_ready, Needs};
use super::wasi::config::store as imported;
use crate::config_provider::{ConfigError, ConfigView, PassThrough};

/// The component.
pub struct Component;

/// The store this component imports: the host's (under Spin, the app's variables).
struct Imported;

impl PassThrough for Imported {
    fn get(&self, key: &str) -> Result<Option<String>, ConfigError> {
        imported::get(key).map_err(from_import)
    }

    fn get_all(&self) -> Result<Vec<(String, String)>, ConfigError> {
        imported::get_all().map_err(from_import)
    }
}

fn from_import(error: imported::Error) -> ConfigError {
    match error {
        imported::Error::Upstream(message) => ConfigError::Upstream(message),
        imported::Error::Io(message) => ConfigError::Io(message),
    }
}

fn to_wit(error: ConfigError) -> exported::Error {
    match error {
        ConfigError::Upstream(message) => exported::Error::Upstream(message),
        ConfigError::Io(message) => exported::Error::Io(message),
    }
}

/// A policy that does not load: nothing is answered, not even pass-through
/// keys, since which keys are the component's own is then unknown.
fn unloaded(message: &str) -> exported::Error {
    exported::Error::Upstream(format!("edge-secrets: the configuration does not load: {message}"))
}

impl exported::Guest for Component {
    fn get(key: String) -> Result<Option<String>, exported::Error> {
        with_ready(
            // This world loads every environment with the policy (see `state::load_config`).
            Needs::Names(&[]),
            |provider, io, (mappings, reserved)| ConfigView { mappings, reserved }.get(&key, provider, io, &Imported).map_err(to_wit),
            |message| Err(unloaded(message)),
        )
    }

    fn get_all() -> Result<Vec<(String, String)>, exported::Error> {
        with_ready(
            // This world loads every environment with the policy (see `state::load_config`).
            Needs::Names(&[]),
            |provider, io, (mappings, reserved)| ConfigView { mappings, reserved }.get_all(provider, io, &Imported).map_err(to_wit),
            |message| Err(unloaded(message)),
        )
    }
}
