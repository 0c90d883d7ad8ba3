//! The config-provider world's core ([`crate::config_provider`]): mapped keys
//! read secrets through the provider, the component's own keys are never
//! visible in any spelling, other keys pass through.

use super::*;
use crate::config::Loaded;
use crate::config_provider::{ConfigError, ConfigView, PassThrough};

/// The imported store: the component's own keys and the app's ordinary settings.
struct Imported(BTreeMap<String, String>);

impl PassThrough for Imported {
    fn get(&self, key: &str) -> Result<Option<String>, ConfigError> {
        Ok(self.0.get(key).cloned())
    }
    fn get_all(&self) -> Result<Vec<(String, String)>, ConfigError> {
        Ok(self.0.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }
}

const MAPPINGS: &str = r#"{
    "db_password": {"environment": "a", "name": "app/db"},
    "db_user": {"environment": "a", "name": "app/db", "field": "user"},
    "gone": {"environment": "a", "name": "app/gone"},
    "blob_b64": {"environment": "b", "name": "bin", "encoding": "base64"}
}"#;

/// [`MAPPINGS`] and a binary secret mapped as text (a mistake `get` and `get-all` report).
const WITH_TEXT_BLOB: &str = r#"{
    "db_password": {"environment": "a", "name": "app/db"},
    "blob": {"environment": "b", "name": "bin"},
    "blob_b64": {"environment": "b", "name": "bin", "encoding": "base64"}
}"#;

struct Setup {
    h: Harness,
    loaded: Loaded,
    reserved: crate::config::ReservedKeys,
    imported: Imported,
}

fn setup() -> Setup {
    setup_with(MAPPINGS)
}

/// Vault `a` answers `app/db` (and 404 for anything else); GCP `b` answers `bin` with 0xff.
fn setup_with(mappings: &str) -> Setup {
    let text = shared::shared_policy("").replacen('{', &format!(r#"{{"config": {mappings},"#), 1);
    let handler: Handler = Box::new(|o| match o.request.path_and_query.as_str() {
        p if p.contains("app/db") => vault_ok(3, "s3cr3t-config"),
        p if p.contains("/secrets/bin/") => {
            Ok(HttpResponse { status: 200, headers: vec![], body: br#"{"name":"projects/proj/secrets/bin/versions/1","payload":{"data":"/w=="}}"#.to_vec() })
        }
        _ => status(404),
    });
    let h = Harness::new(&text, handler);
    let mut source = BTreeMap::new();
    for (key, value) in [("secrets_policy", text.as_str()), ("tok_a", "token-a"), ("tok_b", "token-b"), ("state_key", &"5e".repeat(32))] {
        source.insert(key.to_string(), value.to_string());
    }
    let loaded = config::load_all_with_log(&source).unwrap();
    source.insert("greeting".into(), "hello".into());
    source.insert("db_password".into(), "the app's own, shadowed by the mapping".into());
    Setup { h, reserved: loaded.reserved_keys(), loaded, imported: Imported(source) }
}

impl Setup {
    fn get(&mut self, key: &str) -> Result<Option<String>, ConfigError> {
        let view = ConfigView { mappings: &self.loaded.config, reserved: &self.reserved };
        let h = &mut self.h;
        let mut io = Io { clock: &mut h.clock, random: &mut h.random, transport: &mut h.transport, store: &mut h.store, config: &h.config };
        view.get(key, &mut h.provider, &mut io, &self.imported)
    }

    fn get_all(&mut self) -> Result<Vec<(String, String)>, ConfigError> {
        let view = ConfigView { mappings: &self.loaded.config, reserved: &self.reserved };
        let h = &mut self.h;
        let mut io = Io { clock: &mut h.clock, random: &mut h.random, transport: &mut h.transport, store: &mut h.store, config: &h.config };
        view.get_all(&mut h.provider, &mut io, &self.imported)
    }
}

#[test]
fn mapped_keys_read_secrets_through_the_cache_and_fields() {
    let mut s = setup();
    assert_eq!(s.get("db_password").unwrap().as_deref(), Some("s3cr3t-config"));
    assert_eq!(s.get("db_user").unwrap().as_deref(), Some("admin"), "a field of the same secret");
    assert_eq!(s.get("db_password").unwrap().as_deref(), Some("s3cr3t-config"));
    assert_eq!(s.h.sent(), 2, "one backend request per field, then the cache");
}

#[test]
fn the_components_own_keys_are_never_visible_in_any_spelling() {
    let mut s = setup();
    for key in ["secrets_policy", "SECRETS_POLICY", "Secrets-Policy", "secrets.policy", "tok_a", "TOK_B", "state_key", "State_Key"] {
        assert_eq!(s.get(key).unwrap(), None, "{key}");
    }
    let all = s.get_all().unwrap();
    let keys: Vec<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["greeting", "blob_b64", "db_password", "db_user"], "reserved keys are left out; `gone` does not exist");
    assert!(all.iter().all(|(_, v)| !v.contains("token-") && !v.contains("5e5e") && !v.contains("environments")));
    assert_eq!(all[2].1, "s3cr3t-config", "a mapped key's secret shadows the imported value");
}

#[test]
fn other_keys_pass_through_and_a_missing_secret_is_none() {
    let mut s = setup();
    assert_eq!(s.get("greeting").unwrap().as_deref(), Some("hello"));
    assert_eq!(s.get("not_set").unwrap(), None);
    assert_eq!(s.get("gone").unwrap(), None, "a mapped secret that does not exist");
}

#[test]
fn binary_values_need_base64_and_failures_are_upstream_errors_without_values() {
    let mut s = setup_with(WITH_TEXT_BLOB);
    let err = s.get("blob").unwrap_err();
    assert!(matches!(&err, ConfigError::Upstream(m) if m.contains("`blob` (b/bin)") && m.contains("not UTF-8")), "{err:?}");
    assert_eq!(s.get("blob_b64").unwrap().as_deref(), Some("/w=="));
    assert_eq!(s.get_all().unwrap_err(), err, "get-all reports it too");
    let mut down = setup();
    down.h.transport.handler = Box::new(|_| status(503));
    let err = down.get("db_password").unwrap_err();
    let ConfigError::Upstream(message) = err else { panic!("{err:?}") };
    assert!(message.starts_with("config key `db_password` (a/app/db): backend:"), "{message}");
    assert!(!message.contains("s3cr3t"));
}

#[test]
fn get_all_reads_every_mapped_secret_in_one_batch() {
    let mut s = setup();
    s.get_all().unwrap();
    // `app/db` (once for both of its fields), `app/gone` and `bin`, started together.
    assert_eq!(s.h.sent(), 3);
    assert_eq!(s.h.transport.batch_sizes.iter().max(), Some(&3));
}
