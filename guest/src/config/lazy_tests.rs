use alloc::collections::BTreeMap;
use core::cell::RefCell;

use super::*;
use crate::config::parse_document;

/// A config store that records the keys read and can fail one key on demand.
struct Recording {
    values: BTreeMap<String, String>,
    read: RefCell<Vec<String>>,
    failing: RefCell<Option<String>>,
}

impl Recording {
    fn new(policy: &str, creds: &[(&str, &str)]) -> Recording {
        let mut values = BTreeMap::from([(POLICY_KEY.to_string(), policy.to_string())]);
        values.extend(creds.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Recording { values, read: RefCell::new(Vec::new()), failing: RefCell::new(None) }
    }

    fn took(&self) -> Vec<String> {
        core::mem::take(&mut *self.read.borrow_mut())
    }
}

impl ConfigSource for Recording {
    fn get(&self, key: &str) -> Result<Option<String>, String> {
        self.read.borrow_mut().push(key.to_string());
        if self.failing.borrow().as_deref() == Some(key) {
            return Err("store offline".into());
        }
        Ok(self.values.get(key).cloned())
    }
}

const TWO: &str = r#"{"environments":{
    "dev":{"backend":"vault","url":"http://127.0.0.1:8200","token_key":"dev_token"},
    "prod":{"backend":"vault","url":"ftp://nope","token_key":"prod_token"}}}"#;

#[test]
fn environments_are_read_only_when_named_and_then_once() {
    let source = Recording::new(TWO, &[("dev_token", "s.dev"), ("prod_token", "s.prod")]);
    let mut lazy = load_lazy(&source).unwrap();
    assert!(lazy.loaded.environments.is_empty());
    assert_eq!(source.took(), [POLICY_KEY]);
    let dev = lazy.unread.load("dev").unwrap().unwrap();
    assert_eq!(dev.spec.name, "dev");
    assert!(dev.credential(0).is_none() && source.took().is_empty(), "its credential waits for a backend read");
    assert!(lazy.unread.load("dev").is_none(), "loaded once, then the provider holds it");
    assert!(lazy.unread.load("staging").is_none(), "not in the policy: the provider says unknown");
    assert_eq!(lazy.unread.names(), ["prod"]);
}

#[test]
fn a_bad_environment_is_the_same_config_error_on_every_load() {
    let source = Recording::new(TWO, &[("dev_token", "s.dev"), ("prod_token", "s.prod")]);
    let whole = parse_document(TWO).unwrap_err();
    assert!(whole.starts_with("environments.prod.url: "), "{whole}");
    let mut lazy = load_lazy(&source).unwrap();
    for _ in 0..2 {
        let error = lazy.unread.load("prod").unwrap().unwrap_err();
        assert_eq!(error, whole);
    }
    assert!(lazy.unread.load("dev").unwrap().is_ok(), "the other environment still loads");
}

#[test]
fn a_missing_credential_is_remembered_and_not_read_again() {
    let source = Recording::new(TWO.replace("ftp://nope", "http://127.0.0.1:8201").as_str(), &[("dev_token", "s.dev")]);
    let mut lazy = load_lazy(&source).unwrap();
    let mut prod = lazy.unread.load("prod").unwrap().unwrap();
    source.took();
    let error = prod.read_credentials(&source).unwrap_err();
    assert_eq!(error.message, "environments.prod.token_key: config key `prod_token` is not set");
    assert_eq!(source.took(), ["prod_token"]);
    assert_eq!(prod.read_credentials(&source).unwrap_err(), error);
    assert!(source.took().is_empty(), "a kept error is answered without reading the store again");
    assert!(prod.credential(0).is_none());
}

#[test]
fn credentials_are_read_once() {
    let source = Recording::new(TWO, &[("dev_token", "s.dev")]);
    let mut dev = load_lazy(&source).unwrap().unread.load("dev").unwrap().unwrap();
    source.took();
    for _ in 0..2 {
        dev.read_credentials(&source).unwrap();
    }
    assert_eq!(source.took(), ["dev_token"]);
    assert!(matches!(dev.credential(0), Some(crate::auth::Credential::Token(t)) if t.expose() == b"s.dev"));
    assert!(dev.credential(1).is_none(), "one tier");
}

#[test]
fn a_config_store_failure_is_not_remembered() {
    let source = Recording::new(TWO, &[("dev_token", "s.dev")]);
    let mut dev = load_lazy(&source).unwrap().unread.load("dev").unwrap().unwrap();
    *source.failing.borrow_mut() = Some("dev_token".into());
    let error = dev.read_credentials(&source).unwrap_err();
    assert!(error.store_failure && error.message.contains("store offline"), "{error:?}");
    assert!(!format!("{dev:?}").contains("invalid"), "{dev:?}");
    *source.failing.borrow_mut() = None;
    assert!(dev.read_credentials(&source).is_ok());
}

#[test]
fn the_documents_own_settings_and_names_are_checked_at_once() {
    for (doc, path) in [
        (r#"{"environments":{"Bad Name":{"backend":"vault","url":"http://h","token_key":"t"}}}"#, "environments.Bad Name: "),
        (r#"{"environments":{"a":{}},"log":{"level":"loud"}}"#, "log.level: "),
        (r#"{"environments":{"a":{}},"extra":1}"#, "extra: "),
        (r#"{"environments":{}}"#, "environments: "),
        (r#"{"environments":"#, "secrets_policy: invalid JSON"),
    ] {
        let error = load_lazy(&Recording::new(doc, &[])).err().expect(doc);
        assert!(error.message.starts_with(path), "{doc}: {}", error.message);
        assert_eq!(parse_document(doc).unwrap_err(), error.message, "the same error as the whole document's");
    }
}

#[test]
fn a_config_section_loads_every_environment_at_once() {
    let doc = r#"{"environments":{
        "a":{"backend":"vault","url":"http://h","token_key":"a_token"},
        "b":{"backend":"vault","url":"http://h","token_key":"b_token"}},
        "config":{"db_password":{"environment":"a","name":"app/db"}}}"#;
    let source = Recording::new(doc, &[("a_token", "s.a"), ("b_token", "s.b")]);
    let lazy = load_lazy(&source).unwrap();
    let names: Vec<&str> = lazy.loaded.environments.iter().map(|e| e.spec.name.as_str()).collect();
    assert_eq!((names, lazy.loaded.config.len(), lazy.unread.names().len()), (vec!["a", "b"], 1, 0));
}
