//! Seed data for the dev store: the secrets that exist when it starts.
//!
//! A seed file maps KV paths to fields, in JSON or TOML:
//!
//! ```toml
//! ["app/db"]            # one version (version 1)
//! value = "s3cret"
//! user = "app"
//!
//! [["app/api-key"]]     # a list of versions: 1, 2, ... (the last is `latest`)
//! value = "old"
//! [["app/api-key"]]
//! value = "new"
//! ```
//!
//! ```json
//! { "app/db": { "value": "s3cret", "user": "app" },
//!   "app/api-key": [ { "value": "old" }, { "value": "new" } ] }
//! ```
//!
//! Field values are strings, numbers or booleans. Vault itself stores any JSON, but in a seed
//! file a nested table is almost always a path written as dotted TOML keys (`[app.db]` instead
//! of `["app/db"]`), so it is rejected with a hint rather than silently stored.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{Map, Value};

use super::kv::valid_path;

/// One version's fields: Vault KV v2 stores a JSON object per version.
pub(crate) type Fields = Map<String, Value>;

/// Secrets to load at start-up: KV path → its versions (index 0 is version 1).
///
/// Holds secret values, so `Debug` prints only paths and version counts.
#[derive(Clone, Default)]
pub struct Seed {
    entries: BTreeMap<String, Vec<Fields>>,
}

impl Seed {
    /// An empty seed: the store starts with no secrets.
    pub fn new() -> Seed {
        Seed::default()
    }

    /// Reads a seed file; the format follows the extension (`.json` or `.toml`).
    /// Errors name the file and, where there is one, the offending key.
    pub fn from_file(path: &Path) -> Result<Seed> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("seed file {origin}: cannot read it"))?;
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("json") => Seed::from_json_str(&text, &origin),
            Some("toml") => Seed::from_toml_str(&text, &origin),
            _ => bail!("seed file {origin}: unknown format (name it *.json or *.toml)"),
        }
    }

    /// Parses JSON seed text; `origin` names the source in error messages.
    pub fn from_json_str(text: &str, origin: &str) -> Result<Seed> {
        // serde_json's message has line and column, never the document's values.
        let doc: Value = serde_json::from_str(text)
            .map_err(|e| anyhow!("seed file {origin}: invalid JSON: {e}"))?;
        let Value::Object(top) = doc else {
            bail!("seed file {origin}: the top level must be an object of KV paths");
        };
        Seed::from_entries(top.into_iter(), origin)
    }

    /// Parses TOML seed text; `origin` names the source in error messages.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Seed> {
        let table: toml::Table = toml::from_str(text).map_err(|e| {
            // toml's Display quotes the offending source line, which may hold a
            // secret value: report only the position and the bare message.
            let at = e
                .span()
                .map(|s| line_col(text, s.start))
                .unwrap_or_default();
            anyhow!("seed file {origin}: invalid TOML{at}: {}", e.message())
        })?;
        let entries = table.into_iter().map(|(k, v)| (k, toml_to_json(v)));
        Seed::from_entries(entries, origin)
    }

    /// Adds a version of `path` (the next version number); for seeds built in code.
    pub fn insert<K, V>(
        &mut self,
        path: &str,
        fields: impl IntoIterator<Item = (K, V)>,
    ) -> Result<()>
    where
        K: Into<String>,
        V: Into<Value>,
    {
        if !valid_path(path) {
            bail!("seed key {path:?}: {PATH_RULE}");
        }
        let fields = fields
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        self.entries
            .entry(path.to_owned())
            .or_default()
            .push(fields);
        Ok(())
    }

    /// How many paths the seed holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the seed holds no paths.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The seeded paths, sorted (no values).
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    pub(crate) fn into_entries(self) -> BTreeMap<String, Vec<Fields>> {
        self.entries
    }

    fn from_entries(entries: impl Iterator<Item = (String, Value)>, origin: &str) -> Result<Seed> {
        let mut seed = Seed::new();
        for (path, value) in entries {
            if !valid_path(&path) {
                bail!("seed file {origin}: key {path:?}: {PATH_RULE}");
            }
            let versions = match value {
                Value::Object(fields) => vec![fields],
                Value::Array(list) if !list.is_empty() => list
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| match v {
                        Value::Object(fields) => Ok(fields),
                        other => Err(anyhow!(
                            "seed file {origin}: key {path:?}: version {} must be a table of fields, got {}",
                            i + 1,
                            kind(&other)
                        )),
                    })
                    .collect::<Result<Vec<_>>>()?,
                Value::Array(_) => bail!("seed file {origin}: key {path:?}: the list of versions is empty"),
                other => bail!(
                    "seed file {origin}: key {path:?}: expected a table of fields or a list of tables, got {}",
                    kind(&other)
                ),
            };
            for (i, fields) in versions.iter().enumerate() {
                let at = || {
                    if versions.len() > 1 {
                        format!(" version {}:", i + 1)
                    } else {
                        String::new()
                    }
                };
                for (name, value) in fields {
                    if name.is_empty() {
                        bail!("seed file {origin}: key {path:?}:{} empty field name", at());
                    }
                    match value {
                        Value::String(_) | Value::Number(_) | Value::Bool(_) => {}
                        Value::Object(_) => bail!(
                            "seed file {origin}: key {path:?}:{} field {name:?} is a table; \
                             if it is a path, quote it whole (TOML: [\"{path}/{name}\"])",
                            at()
                        ),
                        other => bail!(
                            "seed file {origin}: key {path:?}:{} field {name:?} must be a string, \
                             number or boolean, got {}",
                            at(),
                            kind(other)
                        ),
                    }
                }
            }
            seed.entries.insert(path, versions);
        }
        Ok(seed)
    }
}

const PATH_RULE: &str =
    "not a valid KV path (segments of [A-Za-z0-9._-] separated by '/', no empty, '.' or '..' segments)";

impl fmt::Debug for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Paths and version counts only: the fields are secret.
        f.debug_map()
            .entries(self.entries.iter().map(|(p, v)| (p, v.len())))
            .finish()
    }
}

/// The JSON type name of a value, for errors (never the value itself).
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a table",
    }
}

fn toml_to_json(v: toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(i) => Value::from(i),
        // Non-finite floats have no JSON form; Vault could not have stored them either.
        toml::Value::Float(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.into_iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => {
            Value::Object(t.into_iter().map(|(k, v)| (k, toml_to_json(v))).collect())
        }
    }
}

/// " at line L column C" for a byte offset, 1-based.
fn line_col(text: &str, offset: usize) -> String {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!(" at line {line} column {col}")
}
