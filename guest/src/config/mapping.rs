//! The policy's `config` section: which `wasi:config` keys the config-provider
//! world answers with a secret, and which keys it never lets an app see.
//!
//! ```json
//! "config": {
//!   "db_password": {"environment": "prod", "name": "app/db", "field": "password"},
//!   "tls_key": {"environment": "prod", "name": "tls", "version": "3", "encoding": "base64"}
//! }
//! ```
//!
//! Keys follow the Spin variable grammar (`[a-z][a-z0-9_]*`). Each mapping is
//! checked against its environment's backend when the policy loads, so a bad
//! name is a `config` error naming the key, never a failed read later.

use crate::prelude::*;
use serde_json::Value;

use super::reader::Obj;
use super::{is_config_key, EnvironmentSpec, POLICY_KEY};
use crate::backend;
use crate::validate::VersionSel;

/// One config key answered with a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigMapping {
    pub key: String,
    pub environment: String,
    pub name: String,
    pub version: Option<String>,
    pub field: Option<String>,
    /// The value as base64 (binary secrets); otherwise it must be UTF-8.
    pub base64: bool,
}

/// Reads the `config` object's entries (`path`: their place in the policy).
pub fn parse(entries: Vec<(String, &Value)>, environments: &[EnvironmentSpec]) -> Result<Vec<ConfigMapping>, String> {
    entries
        .into_iter()
        .map(|(key, value)| {
            let path = format!("config.{key}");
            if !is_config_key(&key) {
                return Err(format!("config: keys must be config keys matching [a-z][a-z0-9_]* (`{}`)", crate::validate::shorten(&key)));
            }
            let mut obj = Obj::new(value, &path)?;
            let environment = obj.required_string("environment")?.to_string();
            let name = obj.required_string("name")?.to_string();
            let version = obj.string("version")?.map(str::to_string);
            let field = obj.string("field")?.map(str::to_string);
            let base64 = match obj.string("encoding")? {
                None | Some("utf8") => false,
                Some("base64") => true,
                Some(_) => return Err(format!("{}: must be `utf8` or `base64`", obj.path_of("encoding"))),
            };
            obj.finish()?;
            let Some(spec) = environments.iter().find(|e| e.name == environment) else {
                return Err(format!("{path}.environment: `{environment}` is not an environment of this policy"));
            };
            let backend_spec = &spec.primary().backend;
            let field_text = field.as_deref().unwrap_or(backend::DEFAULT_FIELD);
            backend::validate(backend_spec, &name, field_text).map_err(|e| format!("{path}.name: {e}"))?;
            let selector = VersionSel::parse(version.as_deref()).map_err(|e| format!("{path}.version: {e}"))?;
            backend::validate_version(backend_spec, &selector).map_err(|e| format!("{path}.version: {e}"))?;
            Ok(ConfigMapping { key, environment, name, version, field, base64 })
        })
        .collect()
}

/// The keys an app must never read through the config-provider world: the
/// policy, the sealing key, and every credential key a tier names. Compared
/// by [`fold`], so `SECRETS_POLICY` or `secrets-policy` are refused too.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReservedKeys(Vec<String>);

impl ReservedKeys {
    pub fn new<'a>(environments: impl IntoIterator<Item = &'a EnvironmentSpec>, seal_key: Option<&str>) -> ReservedKeys {
        let mut keys = vec![fold(POLICY_KEY)];
        keys.extend(seal_key.map(fold));
        for tier in environments.into_iter().flat_map(|e| &e.tiers) {
            keys.extend(super::auth::credential_keys(&tier.auth).into_iter().map(|(_, key)| fold(key)));
        }
        // A handful of keys: a list, no sorting (a sort would add kilobytes to the guest).
        ReservedKeys(keys)
    }

    /// Whether `key`, however it is spelled, names a reserved key.
    pub fn contains(&self, key: &str) -> bool {
        let folded = fold(key);
        self.0.contains(&folded)
    }
}

/// A key as hosts may match it: letters and digits only, lowercased. A host
/// that maps `DB-PASSWORD` or ` db_password` to `db_password` (environment
/// variable providers do such things) then cannot be used to reach a
/// reserved key under another spelling.
fn fold(key: &str) -> String {
    key.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect()
}

#[cfg(test)]
mod tests {
    use super::super::parse_document;
    use super::*;

    const ENVIRONMENTS: &str = r#""environments": {
        "prod": {"backend": "vault", "url": "http://127.0.0.1:8200",
                 "auth": {"method": "approle", "role_id_key": "role_id", "secret_id_key": "secret_id"},
                 "fallbacks": [{"backend": "aws", "url": "http://127.0.0.1:1", "region": "eu-west-1",
                                "auth": {"method": "aws_keys", "access_key_id_key": "aws_id", "secret_access_key_key": "aws_secret", "session_token_key": "aws_session"}}]},
        "gcp": {"backend": "gcp", "url": "https://sm.example", "token_key": "gcp_token", "project": "p-1"}
    }"#;

    fn document(config: &str) -> Result<crate::config::PolicyDocument, String> {
        parse_document(&format!(r#"{{"shared": {{"key_key": "state_key"}}, {ENVIRONMENTS}, "config": {config}}}"#))
    }

    #[test]
    fn mappings_name_an_environment_a_secret_and_optionally_a_version_field_and_encoding() {
        let doc = document(
            r#"{"db_password": {"environment": "prod", "name": "app/db", "field": "password"},
                "tls_key": {"environment": "prod", "name": "tls", "version": "3", "encoding": "base64"},
                "api": {"environment": "gcp", "name": "api-key", "encoding": "utf8"}}"#,
        )
        .unwrap();
        let keys: Vec<_> = doc.config.iter().map(|m| (m.key.as_str(), m.environment.as_str(), m.base64)).collect();
        assert_eq!(keys, [("api", "gcp", false), ("db_password", "prod", false), ("tls_key", "prod", true)]);
        assert_eq!(doc.config[1].field.as_deref(), Some("password"));
        assert_eq!(doc.config[2].version.as_deref(), Some("3"));
        assert!(parse_document(&format!("{{{ENVIRONMENTS}}}")).unwrap().config.is_empty(), "the section is optional");
    }

    #[test]
    fn bad_mappings_are_config_errors_naming_the_key() {
        let cases = [
            (r#"{"Db": {"environment": "prod", "name": "a"}}"#, "config: keys must be config keys"),
            (r#"{"db": {"environment": "qa", "name": "a"}}"#, "config.db.environment: `qa` is not an environment"),
            (r#"{"db": {"environment": "prod"}}"#, "config.db.name: is required"),
            (r#"{"db": {"environment": "prod", "name": "../x"}}"#, "config.db.name: invalid request"),
            (r#"{"db": {"environment": "gcp", "name": "a", "field": "user"}}"#, "config.db.name: invalid request: GCP secrets have no fields"),
            (r#"{"db": {"environment": "gcp", "name": "a", "version": "AWSCURRENT"}}"#, "config.db.version: invalid request"),
            (r#"{"db": {"environment": "prod", "name": "a", "encoding": "hex"}}"#, "config.db.encoding: must be `utf8` or `base64`"),
            (r#"{"db": {"environment": "prod", "name": "a", "ttl": 1}}"#, "config.db.ttl: unknown key"),
            (r#"{"role_id": {"environment": "prod", "name": "a"}}"#, "config.role_id: is a key the policy reads credentials from"),
            (r#"{"secrets_policy": {"environment": "prod", "name": "a"}}"#, "config.secrets_policy: is a key the policy reads"),
            (r#"["db"]"#, "config: must be an object"),
        ];
        for (config, expected) in cases {
            let err = document(config).err().unwrap_or_else(|| panic!("accepted {config}"));
            assert!(err.starts_with(expected), "{config}: {err}");
        }
    }

    #[test]
    fn reserved_keys_are_the_policy_the_seal_key_and_every_credential_key_however_spelled() {
        let doc = document("{}").unwrap();
        let reserved = ReservedKeys::new(&doc.environments, doc.shared.as_ref().map(|s| s.key_key.as_str()));
        for key in ["secrets_policy", "state_key", "role_id", "secret_id", "aws_id", "aws_secret", "aws_session", "gcp_token"] {
            assert!(reserved.contains(key), "{key}");
        }
        for spelling in ["SECRETS_POLICY", "Secrets-Policy", " secrets_policy ", "secrets.policy", "STATE_KEY", "role-id", "secretspolicy"] {
            assert!(reserved.contains(spelling), "{spelling}");
        }
        for free in ["db_password", "secrets_policy_2", "log_level", ""] {
            assert!(!reserved.contains(free), "{free}");
        }
    }
}
