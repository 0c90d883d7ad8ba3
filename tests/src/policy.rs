//! Builds the component's configuration for tests: the `secrets_policy` JSON document and
//! the credential entries it names, as docs/configuration.md describes them.
//!
//! ```ignore
//! use edge_secrets_tests::PolicyBuilder;
//! let config = PolicyBuilder::new()
//!     .set_default("retry.base_delay_ms", 1)
//!     .vault("prod", "http://127.0.0.1:8200", "t-prod")
//!     .set("prod", "namespace", "team-a")
//!     .gcp("gcp-prod", "http://127.0.0.1:8200", "my-project", "t-gcp")
//!     .config();
//! assert_eq!(config["token_prod"], "t-prod");
//! assert!(config["secrets_policy"].contains("\"gcp-prod\""));
//! ```

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// The config key holding the policy document.
pub const POLICY_KEY: &str = "secrets_policy";

/// Accumulates environments, policy values and credentials. Environments keep the order
/// they were added in (the component itself reports them sorted by name).
#[derive(Clone, Default)]
pub struct PolicyBuilder {
    defaults: Map<String, Value>,
    environments: Vec<(String, Map<String, Value>)>,
    credentials: BTreeMap<String, String>,
    shared: Option<Map<String, Value>>,
    log_level: Option<String>,
}

/// The config key [`PolicyBuilder::shared`] stores the sealing key under.
pub const STATE_KEY_KEY: &str = "state_key";

impl PolicyBuilder {
    pub fn new() -> PolicyBuilder {
        PolicyBuilder::default()
    }

    /// The credential key the builder uses for `env`: `token_{env}` with `-` as `_`, which
    /// is always a valid config key (`[a-z][a-z0-9_]*`) for a valid environment name.
    pub fn token_key(env: &str) -> String {
        format!("token_{}", env.replace('-', "_"))
    }

    /// Adds a Vault KV v2 environment whose token is stored under [`PolicyBuilder::token_key`].
    pub fn vault(self, env: &str, url: &str, token: &str) -> PolicyBuilder {
        self.environment(env, [("backend", "vault"), ("url", url)], token)
    }

    /// Adds a GCP Secret Manager environment whose token is stored under [`PolicyBuilder::token_key`].
    pub fn gcp(self, env: &str, url: &str, project: &str, token: &str) -> PolicyBuilder {
        self.environment(
            env,
            [("backend", "gcp"), ("url", url), ("project", project)],
            token,
        )
    }

    /// Adds an Azure Key Vault environment (`url` is the vault) whose bearer token is stored
    /// under [`PolicyBuilder::token_key`]; [`PolicyBuilder::auth`] swaps in an Entra login.
    pub fn azure(self, env: &str, url: &str, token: &str) -> PolicyBuilder {
        self.environment(env, [("backend", "azure"), ("url", url)], token)
    }

    /// Adds an AWS Secrets Manager environment signing with an access key, stored under
    /// `aws_access_key_id_{env}` and `aws_secret_access_key_{env}` (`-` as `_`), and a session
    /// token under `aws_session_token_{env}` when given.
    pub fn aws(
        mut self,
        env: &str,
        url: &str,
        region: &str,
        access_key_id: &str,
        secret_access_key: &str,
        session_token: Option<&str>,
    ) -> PolicyBuilder {
        assert!(
            self.environments.iter().all(|(name, _)| name != env),
            "PolicyBuilder: environment {env:?} added twice"
        );
        let suffix = env.replace('-', "_");
        let (id_key, secret_key, token_key) = (
            format!("aws_access_key_id_{suffix}"),
            format!("aws_secret_access_key_{suffix}"),
            format!("aws_session_token_{suffix}"),
        );
        let mut auth = Map::new();
        auth.insert("method".into(), "aws_keys".into());
        auth.insert("access_key_id_key".into(), id_key.as_str().into());
        auth.insert("secret_access_key_key".into(), secret_key.as_str().into());
        self.credentials.insert(id_key, access_key_id.to_owned());
        self.credentials.insert(secret_key, secret_access_key.to_owned());
        if let Some(token) = session_token {
            auth.insert("session_token_key".into(), token_key.as_str().into());
            self.credentials.insert(token_key, token.to_owned());
        }
        let mut map = Map::new();
        map.insert("backend".into(), "aws".into());
        map.insert("url".into(), url.into());
        map.insert("region".into(), region.into());
        map.insert("auth".into(), Value::Object(auth));
        self.environments.push((env.to_owned(), map));
        self
    }

    /// Sets `key` in environment `env`; a dotted key (`retry.attempts`) sets a nested value.
    /// Also overrides what `vault`/`gcp` wrote (`url`, `token_key`, ...). Panics on an unknown env.
    pub fn set(mut self, env: &str, key: &str, value: impl Into<Value>) -> PolicyBuilder {
        let Some((_, map)) = self.environments.iter_mut().find(|(name, _)| name == env) else {
            panic!("PolicyBuilder::set: no environment {env:?}; add it first");
        };
        set_dotted(map, key, value.into());
        self
    }

    /// Sets `key` (dotted) in `defaults`, e.g. `("cache.ttl_ms", 0)`.
    pub fn set_default(mut self, key: &str, value: impl Into<Value>) -> PolicyBuilder {
        set_dotted(&mut self.defaults, key, value.into());
        self
    }

    /// Turns on shared state (`wasi:keyvalue`, bucket `default`) sealed with `key_hex`
    /// (64 hex digits), stored under [`STATE_KEY_KEY`].
    pub fn shared(mut self, key_hex: &str) -> PolicyBuilder {
        let mut shared = Map::new();
        shared.insert("key_key".into(), STATE_KEY_KEY.into());
        self.shared = Some(shared);
        self.credentials.insert(STATE_KEY_KEY.into(), key_hex.into());
        self
    }

    /// Sets `key` in the `shared` object (after [`PolicyBuilder::shared`]).
    pub fn set_shared(mut self, key: &str, value: impl Into<Value>) -> PolicyBuilder {
        let shared = self.shared.as_mut().expect("PolicyBuilder::set_shared: call shared() first");
        set_dotted(shared, key, value.into());
        self
    }

    /// Sets the policy's `log.level` (any text: bad values are tested too).
    pub fn log_level(mut self, level: &str) -> PolicyBuilder {
        self.log_level = Some(level.to_owned());
        self
    }

    /// Sets a credential entry directly (e.g. a second token, or a wrong one).
    pub fn credential(mut self, key: &str, value: &str) -> PolicyBuilder {
        self.credentials.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Replaces `env`'s `token_key` (and its credential entry) with an `auth` object, and adds
    /// the credential entries its keys name. Panics on an unknown env.
    pub fn auth(mut self, env: &str, auth: Value, credentials: &[(&str, &str)]) -> PolicyBuilder {
        let Some((_, map)) = self.environments.iter_mut().find(|(name, _)| name == env) else {
            panic!("PolicyBuilder::auth: no environment {env:?}; add it first");
        };
        if let Some(Value::String(key)) = map.remove("token_key") {
            self.credentials.remove(&key);
        }
        map.insert("auth".to_owned(), auth);
        for (key, value) in credentials {
            self.credentials.insert((*key).to_owned(), (*value).to_owned());
        }
        self
    }

    /// Removes a credential entry (to test a missing credential).
    pub fn without_credential(mut self, key: &str) -> PolicyBuilder {
        self.credentials.remove(key);
        self
    }

    /// The policy document as JSON, environments in the order they were added.
    pub fn policy_json(&self) -> String {
        // serde_json's Map sorts keys (no `preserve_order` here), so the environments object
        // is written by hand to keep the order environments were added in.
        let envs: Vec<String> = self
            .environments
            .iter()
            .map(|(name, map)| {
                format!(
                    "{}:{}",
                    Value::from(name.as_str()),
                    Value::Object(map.clone())
                )
            })
            .collect();
        let mut doc = String::from("{");
        if !self.defaults.is_empty() {
            doc += &format!("\"defaults\":{},", Value::Object(self.defaults.clone()));
        }
        if let Some(shared) = &self.shared {
            doc += &format!("\"shared\":{},", Value::Object(shared.clone()));
        }
        if let Some(level) = &self.log_level {
            doc += &format!("\"log\":{{\"level\":{}}},", Value::from(level.as_str()));
        }
        doc += &format!("\"environments\":{{{}}}}}", envs.join(","));
        doc
    }

    /// The credential entries alone.
    pub fn credentials(&self) -> &BTreeMap<String, String> {
        &self.credentials
    }

    /// The full config map: `secrets_policy` plus every credential entry.
    pub fn config(&self) -> BTreeMap<String, String> {
        let mut config = self.credentials.clone();
        config.insert(POLICY_KEY.to_owned(), self.policy_json());
        config
    }

    fn environment<const N: usize>(
        mut self,
        env: &str,
        fields: [(&str, &str); N],
        token: &str,
    ) -> PolicyBuilder {
        assert!(
            self.environments.iter().all(|(name, _)| name != env),
            "PolicyBuilder: environment {env:?} added twice"
        );
        let key = PolicyBuilder::token_key(env);
        let mut map: Map<String, Value> = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
            .collect();
        map.insert("token_key".to_owned(), Value::from(key.as_str()));
        self.environments.push((env.to_owned(), map));
        self.credentials.insert(key, token.to_owned());
        self
    }
}

fn set_dotted(map: &mut Map<String, Value>, key: &str, value: Value) {
    match key.split_once('.') {
        None => {
            map.insert(key.to_owned(), value);
        }
        Some((head, rest)) => {
            let child = map.entry(head).or_insert_with(|| Value::Object(Map::new()));
            if !child.is_object() {
                *child = Value::Object(Map::new());
            }
            set_dotted(
                child.as_object_mut().expect("just made an object"),
                rest,
                value,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn aws_environments_name_their_key_entries() {
        let b = PolicyBuilder::new().aws("prod-1", "http://127.0.0.1:1", "us-east-1", "AKIDEXAMPLE", "s3cr3t", Some("tok"));
        let doc: Value = serde_json::from_str(&b.policy_json()).unwrap();
        let expected = json!({ "backend": "aws", "url": "http://127.0.0.1:1", "region": "us-east-1",
            "auth": { "method": "aws_keys", "access_key_id_key": "aws_access_key_id_prod_1",
                      "secret_access_key_key": "aws_secret_access_key_prod_1",
                      "session_token_key": "aws_session_token_prod_1" } });
        assert_eq!(doc["environments"]["prod-1"], expected);
        assert_eq!(b.credentials()["aws_secret_access_key_prod_1"], "s3cr3t");
        let without = PolicyBuilder::new().aws("p", "http://h", "eu-west-1", "A", "s", None);
        let doc: Value = serde_json::from_str(&without.policy_json()).unwrap();
        assert!(doc["environments"]["p"]["auth"].get("session_token_key").is_none());
        assert_eq!(without.credentials().len(), 2);
    }

    #[test]
    fn builds_the_documented_shape_in_order() {
        let b = PolicyBuilder::new()
            .set_default("cache.ttl_ms", 0)
            .vault("zeta", "http://v", "t1")
            .set("zeta", "retry.attempts", 1)
            .set("zeta", "retry.base_delay_ms", 2)
            .gcp("a-gcp", "http://g", "proj", "t2");
        let json = b.policy_json();
        assert!(
            json.find("\"zeta\"").unwrap() < json.find("\"a-gcp\"").unwrap(),
            "insertion order kept"
        );
        let doc: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(doc["defaults"], json!({ "cache": { "ttl_ms": 0 } }));
        let zeta = json!({ "backend": "vault", "url": "http://v", "token_key": "token_zeta",
                           "retry": { "attempts": 1, "base_delay_ms": 2 } });
        assert_eq!(doc["environments"]["zeta"], zeta);
        assert_eq!(doc["environments"]["a-gcp"]["token_key"], "token_a_gcp");
        let config = b.without_credential("token_zeta").config();
        assert_eq!(
            config.keys().collect::<Vec<_>>(),
            ["secrets_policy", "token_a_gcp"]
        );
    }
}
