//! A strict reader over a parsed JSON object that names the full key path
//! (`environments.prod.retry.attempts`) in every error and rejects keys it
//! was never asked for, so a typo never silently falls back to a default.

use crate::prelude::*;
use core::ops::RangeInclusive;

use serde_json::{Map, Value};

/// One JSON object being read.
pub struct Obj<'a> {
    path: String,
    map: &'a Map<String, Value>,
    known: Vec<&'static str>,
}

impl<'a> Obj<'a> {
    /// Reads `value` as an object found at `path` (empty for the root).
    pub fn new(value: &'a Value, path: &str) -> Result<Obj<'a>, String> {
        match value {
            Value::Object(map) => Ok(Obj { path: path.to_string(), map, known: Vec::new() }),
            _ => Err(format!("{}: must be an object", display_path(path))),
        }
    }

    /// The full path of `key` in this object.
    pub fn path_of(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// This object's own path.
    pub fn path(&self) -> &str {
        &self.path
    }

    fn take(&mut self, key: &'static str) -> Option<&'a Value> {
        self.known.push(key);
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// An optional string.
    pub fn string(&mut self, key: &'static str) -> Result<Option<&'a str>, String> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(format!("{}: must be a string", self.path_of(key))),
        }
    }

    /// A required string.
    pub fn required_string(&mut self, key: &'static str) -> Result<&'a str, String> {
        self.string(key)?.ok_or_else(|| format!("{}: is required", self.path_of(key)))
    }

    /// An optional integer within `range`.
    pub fn integer(&mut self, key: &'static str, range: RangeInclusive<u64>) -> Result<Option<u64>, String> {
        let Some(value) = self.take(key) else {
            return Ok(None);
        };
        let n = value
            .as_u64()
            .ok_or_else(|| format!("{}: must be a non-negative integer", self.path_of(key)))?;
        if !range.contains(&n) {
            return Err(format!(
                "{}: must be between {} and {}, got {n}",
                self.path_of(key),
                range.start(),
                range.end()
            ));
        }
        Ok(Some(n))
    }

    /// An optional boolean.
    pub fn boolean(&mut self, key: &'static str) -> Result<Option<bool>, String> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(format!("{}: must be true or false", self.path_of(key))),
        }
    }

    /// An optional array, as its items.
    pub fn array(&mut self, key: &'static str) -> Result<Vec<&'a Value>, String> {
        match self.take(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => Ok(items.iter().collect()),
            Some(_) => Err(format!("{}: must be an array", self.path_of(key))),
        }
    }

    /// An optional nested object.
    pub fn object(&mut self, key: &'static str) -> Result<Option<Obj<'a>>, String> {
        // The path is formatted only for an object that is there: most optional ones are not,
        // and every instance reads the policy once.
        match self.take(key) {
            None => Ok(None),
            Some(value) => Obj::new(value, &self.path_of(key)).map(Some),
        }
    }

    /// The entries of an object whose keys are names chosen by the user
    /// (e.g. environment names), sorted by key.
    pub fn entries(&mut self, key: &'static str) -> Result<Vec<(String, &'a Value)>, String> {
        let path = self.path_of(key);
        match self.take(key) {
            None => Err(format!("{path}: is required")),
            Some(Value::Object(map)) => Ok(map.iter().map(|(k, v)| (k.clone(), v)).collect()),
            Some(_) => Err(format!("{path}: must be an object")),
        }
    }

    /// [`Self::entries`] of an optional object: none when it is absent.
    pub fn optional_entries(&mut self, key: &'static str) -> Result<Vec<(String, &'a Value)>, String> {
        if self.map.contains_key(key) {
            self.entries(key)
        } else {
            self.known.push(key);
            Ok(Vec::new())
        }
    }

    /// Fails on any key that was not read.
    pub fn finish(self) -> Result<(), String> {
        match self.map.keys().find(|k| !self.known.contains(&k.as_str())) {
            None => Ok(()),
            Some(unknown) => {
                let mut expected = self.known.clone();
                expected.sort_unstable();
                expected.dedup();
                Err(format!(
                    "{}: unknown key (expected one of: {})",
                    self.path_of(&crate::validate::shorten(unknown)),
                    expected.join(", ")
                ))
            }
        }
    }
}

fn display_path(path: &str) -> &str {
    if path.is_empty() {
        "policy"
    } else {
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(s: &str) -> Value {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn errors_name_the_full_path() {
        let v = json(r#"{"retry":{"attempts":0}}"#);
        let mut root = Obj::new(&v, "environments.prod").unwrap();
        let mut retry = root.object("retry").unwrap().unwrap();
        let err = retry.integer("attempts", 1..=10).unwrap_err();
        assert_eq!(err, "environments.prod.retry.attempts: must be between 1 and 10, got 0");
    }

    #[test]
    fn unknown_keys_are_rejected_with_the_expected_ones() {
        let v = json(r#"{"ttl_ms":1,"tll_ms":2}"#);
        let mut o = Obj::new(&v, "cache").unwrap();
        o.integer("ttl_ms", 0..=10).unwrap();
        let err = o.finish().unwrap_err();
        assert_eq!(err, "cache.tll_ms: unknown key (expected one of: ttl_ms)");
    }

    #[test]
    fn type_errors_are_named() {
        let v = json(r#"{"a":"x","b":-1,"c":1.5,"d":3}"#);
        let mut o = Obj::new(&v, "").unwrap();
        assert_eq!(o.integer("a", 0..=9).unwrap_err(), "a: must be a non-negative integer");
        assert!(o.integer("b", 0..=9).is_err());
        assert!(o.integer("c", 0..=9).is_err());
        assert_eq!(o.string("d").unwrap_err(), "d: must be a string");
        assert_eq!(o.required_string("e").unwrap_err(), "e: is required");
    }
}
