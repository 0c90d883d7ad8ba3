//! The config-provider world's core: `wasi:config/store` answered from the
//! policy's `config` mappings (secrets, through the same cache, breakers,
//! retries, tiers and shared state as `secrets.get`) and, for every other key,
//! from the store the component itself imports (pass-through).
//!
//! The isolation boundary: the component's own keys (the policy, the sealing
//! key, every credential key a tier names; see [`ReservedKeys`]) are never
//! answered, in any spelling, by `get` or `get-all`. An app composed with this
//! component cannot read what the component reads its credentials from.
//!
//! Semantics of `wasi:config`: a mapped secret that does not exist is
//! `Ok(None)`; any other failure is [`ConfigError::Upstream`], naming the key,
//! the secret and the kind, never a value. A value that is not UTF-8 is an
//! error unless the mapping asks for base64.

use crate::prelude::*;
use base64ct::{Base64, Encoding};

use crate::config::{ConfigMapping, ReservedKeys};
use crate::engine::{Io, Provider, SecretRequest};
use crate::error::Error;
use crate::secret::SecretBytes;

/// `wasi:config/store`'s error, mirrored: one converter in the WASI shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    Upstream(String),
    Io(String),
}

/// The store the component imports, for keys it does not answer itself.
pub trait PassThrough {
    fn get(&self, key: &str) -> Result<Option<String>, ConfigError>;
    fn get_all(&self) -> Result<Vec<(String, String)>, ConfigError>;
}

/// The mappings and the reserved keys of a loaded policy.
pub struct ConfigView<'a> {
    pub mappings: &'a [ConfigMapping],
    pub reserved: &'a ReservedKeys,
}

impl ConfigView<'_> {
    /// `get`: a mapped key's secret, nothing for a reserved key, else the
    /// imported store's value.
    pub fn get(&self, key: &str, provider: &mut Provider, io: &mut Io<'_>, pass: &dyn PassThrough) -> Result<Option<String>, ConfigError> {
        if self.reserved.contains(key) {
            return Ok(None);
        }
        match self.mappings.iter().find(|m| m.key == key) {
            Some(mapping) => answer(mapping, provider.get(&request(mapping), io)),
            None => pass.get(key),
        }
    }

    /// `get-all`: the imported store's pairs without reserved or mapped keys,
    /// then every mapped key that exists, read in one batch (`get_many`).
    pub fn get_all(&self, provider: &mut Provider, io: &mut Io<'_>, pass: &dyn PassThrough) -> Result<Vec<(String, String)>, ConfigError> {
        let mut pairs: Vec<(String, String)> = pass
            .get_all()?
            .into_iter()
            .filter(|(key, _)| !self.reserved.contains(key) && !self.mappings.iter().any(|m| m.key == *key))
            .collect();
        let requests: Vec<SecretRequest> = self.mappings.iter().map(request).collect();
        for (mapping, result) in self.mappings.iter().zip(provider.get_many(&requests, io)) {
            if let Some(value) = answer(mapping, result)? {
                pairs.push((mapping.key.clone(), value));
            }
        }
        Ok(pairs)
    }
}

fn request(mapping: &ConfigMapping) -> SecretRequest {
    SecretRequest {
        environment: mapping.environment.clone(),
        name: mapping.name.clone(),
        version: mapping.version.clone(),
        field: mapping.field.clone(),
        refresh: false,
        traceparent: None,
    }
}

/// A read's answer as `wasi:config` gives it.
fn answer(mapping: &ConfigMapping, result: Result<crate::engine::Secret, Error>) -> Result<Option<String>, ConfigError> {
    let secret = match result {
        Ok(secret) => secret,
        Err(Error::NotFound(_)) => return Ok(None),
        Err(error) => {
            let kind = error.kind().name();
            return Err(ConfigError::Upstream(format!("config key `{}` ({}/{}): {kind}: {error}", mapping.key, mapping.environment, mapping.name)));
        }
    };
    if mapping.base64 {
        return Ok(Some(Base64::encode_string(secret.value.expose())));
    }
    text(secret.value).map(Some).ok_or_else(|| {
        ConfigError::Upstream(format!(
            "config key `{}` ({}/{}): the value is not UTF-8; map it with \"encoding\": \"base64\"",
            mapping.key, mapping.environment, mapping.name
        ))
    })
}

/// The value as a string, if it is UTF-8; the bytes are wiped either way.
fn text(value: SecretBytes) -> Option<String> {
    String::from_utf8(value.into_vec()).map_err(|e| e.into_bytes().iter_mut().for_each(|b| *b = 0)).ok()
}

