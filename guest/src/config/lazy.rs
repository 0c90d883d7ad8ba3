//! The policy read one environment at a time.
//!
//! Spin gives the component a fresh instance for (almost) every request, and
//! each instance reads its configuration on its first call. Reading and
//! checking an environment (its tiers, URLs, credentials) cost ~6 µs of that
//! call per environment in the profile, so a policy with eight environments
//! made a cached read cost ~1.7× one with two. The component therefore reads
//! the document's own settings (`defaults`, `shared`, `log`, the environment
//! names) at once and each environment only when a call names it
//! ([`Unread::load`]); the same checks run, so an environment that is wrong
//! is a `config` error naming its key on every call that needs it. Its
//! credentials wait longer still, for the first read that goes to a backend
//! ([`super::Environment::read_credentials`]).
//! [`super::parse_document`] (hosts' check before start) reads everything.

use crate::prelude::*;

use serde_json::Value;

use super::reader::Obj;
use super::{
    is_environment_name, load_document, mapping, parse_environment, parse_log, parse_shared, policy_text, shared_setup,
    ConfigSource, Environment, LoadError, Loaded, Policy, PolicyDocument, ReservedKeys, SharedSpec, POLICY_KEY,
};
use crate::log::Level;

/// The document's own settings, with its environments and `config` section
/// still unread (each environment's name is checked).
pub(super) struct Root {
    defaults: Policy,
    shared: Option<SharedSpec>,
    log_level: Level,
    /// By name, sorted (serde_json's map is a `BTreeMap`).
    environments: Vec<(String, Value)>,
    config: Vec<(String, Value)>,
}

impl Root {
    pub(super) fn parse(text: &str) -> Result<Root, String> {
        let mut doc: Value = serde_json::from_str(text).map_err(|e| {
            // serde_json's message for syntax errors names only the position.
            format!("{POLICY_KEY}: invalid JSON at line {} column {}", e.line(), e.column())
        })?;
        let (defaults, shared, log_level) = {
            let mut root = Obj::new(&doc, "")?;
            let defaults = match root.object("defaults")? {
                Some(obj) => Policy::read(obj, &Policy::default())?,
                None => Policy::default(),
            };
            let shared = match root.object("shared")? {
                Some(obj) => Some(parse_shared(obj)?),
                None => None,
            };
            let log_level = match root.object("log")? {
                Some(obj) => parse_log(obj)?,
                None => Level::Info,
            };
            let entries = root.entries("environments")?;
            root.optional_entries("config")?;
            root.finish()?;
            if entries.is_empty() {
                return Err("environments: at least one environment is required".into());
            }
            if let Some((name, _)) = entries.iter().find(|(name, _)| !is_environment_name(name)) {
                let path = format!("environments.{}", crate::validate::shorten(name));
                return Err(format!("{path}: environment names must match [a-z0-9][a-z0-9_-]{{0,62}}"));
            }
            (defaults, shared, log_level)
        };
        // Checked above: both are objects when present.
        let mut take = |key: &str| match doc.get_mut(key).map(Value::take) {
            Some(Value::Object(map)) => map.into_iter().collect(),
            _ => Vec::new(),
        };
        let (environments, config) = (take("environments"), take("config"));
        Ok(Root { defaults, shared, log_level, environments, config })
    }

    /// Reads every environment and the `config` section: the whole document.
    pub(super) fn into_document(self) -> Result<PolicyDocument, String> {
        let environments: Vec<_> =
            self.environments.iter().map(|(name, value)| parse_environment(name, value, &self.defaults)).collect::<Result<_, _>>()?;
        let config = mapping::parse(self.config.iter().map(|(key, value)| (key.clone(), value)).collect(), &environments)?;
        if !config.is_empty() {
            let reserved = ReservedKeys::new(&environments, self.shared.as_ref().map(|s| s.key_key.as_str()));
            if let Some(mapped) = config.iter().find(|m| reserved.contains(&m.key)) {
                return Err(format!("config.{}: is a key the policy reads credentials from; it cannot be mapped", mapped.key));
            }
        }
        Ok(PolicyDocument { environments, shared: self.shared, log_level: self.log_level, config })
    }
}

/// The configuration with the environments no call has named yet.
pub struct LazyLoaded {
    /// What is read at once; `environments` is empty unless the policy has a
    /// `config` section (its mappings are checked against every environment).
    pub loaded: Loaded,
    pub unread: Unread,
}

/// Loads the policy's own settings and the shared-state key; environments wait
/// for [`Unread::load`]. Errors as [`super::load_all_with_log`]'s for the
/// parts it reads.
pub fn load_lazy(source: &dyn ConfigSource) -> Result<LazyLoaded, LoadError> {
    let text = policy_text(source)?;
    let root = Root::parse(&text).map_err(LoadError::invalid)?;
    if !root.config.is_empty() {
        let loaded = load_document(source, root.into_document().map_err(LoadError::invalid)?)?;
        return Ok(LazyLoaded { loaded, unread: Unread::default() });
    }
    let seal_key_key = root.shared.as_ref().map(|s| s.key_key.clone());
    let shared = shared_setup(source, root.shared)?;
    let unread = Unread { defaults: root.defaults, environments: root.environments.into_iter().map(|(name, v)| (name, Pending::Unread(v))).collect() };
    Ok(LazyLoaded { loaded: Loaded { environments: Vec::new(), shared, log_level: root.log_level, config: Vec::new(), seal_key_key }, unread })
}

/// Environments of the policy not loaded yet, or that failed to load.
#[derive(Default)]
pub struct Unread {
    defaults: Policy,
    environments: Vec<(String, Pending)>,
}

enum Pending {
    Unread(Value),
    /// Its error, returned again on every call that names it: it will not fix
    /// itself.
    Invalid(String),
}

impl Unread {
    /// Reads and checks the environment `name`: `None` when it is not one
    /// this holds (loaded already, or not in the policy). Loaded, it is gone
    /// from here. Its credentials are not read yet: the provider reads them
    /// when a read first goes to a backend ([`Environment::read_credentials`]).
    pub fn load(&mut self, name: &str) -> Option<Result<Environment, String>> {
        let i = self.environments.iter().position(|(n, _)| n == name)?;
        let value = match &self.environments[i].1 {
            Pending::Invalid(message) => return Some(Err(message.clone())),
            Pending::Unread(value) => value,
        };
        match parse_environment(name, value, &self.defaults) {
            Ok(spec) => {
                self.environments.remove(i);
                Some(Ok(Environment::unread(spec)))
            }
            Err(message) => {
                self.environments[i].1 = Pending::Invalid(message.clone());
                Some(Err(message))
            }
        }
    }

    /// Whether every environment is loaded.
    pub fn is_empty(&self) -> bool {
        self.environments.is_empty()
    }

    /// Whether `name` failed to load for a reason that is kept.
    pub fn is_invalid(&self, name: &str) -> bool {
        self.environments.iter().any(|(n, p)| n == name && matches!(p, Pending::Invalid(_)))
    }

    /// The names still unread (or invalid), sorted.
    pub fn names(&self) -> Vec<String> {
        self.environments.iter().map(|(name, _)| name.clone()).collect()
    }
}

#[cfg(test)]
#[path = "lazy_tests.rs"]
mod tests;
