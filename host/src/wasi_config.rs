//! Host side of `wasi:config/store@0.2.0-draft-2024-09-27` over an in-memory map.
//!
//! Shaped like wasmtime's `wasmtime-wasi-config` crate (variables + a borrowed view + an
//! `add_to_linker` taking a projection), but for the draft version Spin implements, which is the
//! one the component imports: wasmtime's crate implements `0.2.0-rc.1`, and the linker matches
//! prerelease versions exactly, so it cannot satisfy this import.
//!
//! The map holds credentials, so neither type here implements `Debug`.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{HasData, Linker};
use wasmtime::Result;

mod generated {
    wasmtime::component::bindgen!({
        path: "../wit/deps/config",
        world: "wasi:config/imports",
        imports: { default: trappable },
    });
}

pub use generated::wasi::config::store;

/// The configuration an instance sees: shared read-only by every store of a runtime.
#[derive(Clone, Default)]
pub struct WasiConfigVariables(Arc<BTreeMap<String, String>>);

impl WasiConfigVariables {
    pub fn new(map: BTreeMap<String, String>) -> Self {
        WasiConfigVariables(Arc::new(map))
    }

    /// The keys, without values (for messages).
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// One value (the host reads the policy to check its own limits against it).
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
}

impl From<BTreeMap<String, String>> for WasiConfigVariables {
    fn from(map: BTreeMap<String, String>) -> Self {
        WasiConfigVariables::new(map)
    }
}

/// A borrowed view of the variables, created per host call by the store's projection.
pub struct WasiConfig<'a> {
    vars: &'a WasiConfigVariables,
}

impl<'a> WasiConfig<'a> {
    pub fn new(vars: &'a WasiConfigVariables) -> Self {
        WasiConfig { vars }
    }
}

impl store::Host for WasiConfig<'_> {
    fn get(&mut self, key: String) -> Result<Result<Option<String>, store::Error>> {
        Ok(Ok(self.vars.0.get(&key).cloned()))
    }

    fn get_all(&mut self) -> Result<Result<Vec<(String, String)>, store::Error>> {
        Ok(Ok(self.vars.0.iter().map(|(k, v)| (k.clone(), v.clone())).collect()))
    }
}

struct HasWasiConfig;

impl HasData for HasWasiConfig {
    type Data<'a> = WasiConfig<'a>;
}

/// Adds `wasi:config/store` to `linker`; `f` projects the store data to a [`WasiConfig`].
pub fn add_to_linker<T: 'static>(linker: &mut Linker<T>, f: fn(&mut T) -> WasiConfig<'_>) -> Result<()> {
    store::add_to_linker::<T, HasWasiConfig>(linker, f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::Host;

    #[test]
    fn get_and_get_all_read_the_map() {
        let vars = WasiConfigVariables::new(BTreeMap::from([
            ("b".to_string(), "2".to_string()),
            ("a".to_string(), "1".to_string()),
        ]));
        let mut view = WasiConfig::new(&vars);
        assert_eq!(view.get("a".into()).unwrap().unwrap(), Some("1".to_string()));
        assert_eq!(view.get("missing".into()).unwrap().unwrap(), None);
        let all = view.get_all().unwrap().unwrap();
        assert_eq!(all, vec![("a".to_string(), "1".to_string()), ("b".to_string(), "2".to_string())]);
    }
}
