//! The host's config file (TOML): the component's policy, where each credential comes from, and
//! host limits. It becomes the `wasi:config` map the component reads:
//!
//! ```toml
//! # the component's policy, written as TOML; the host passes it as JSON in `secrets_policy`
//! [policy.environments.prod]
//! backend = "vault"
//! url = "http://127.0.0.1:8200"
//! token_key = "prod_vault_token"
//!
//! [credentials]
//! prod_vault_token = { env = "VAULT_TOKEN" }   # or { file = "path" }, relative to this file
//!
//! [host]            # optional
//! memory_mib = 128
//! call_timeout_ms = 60000
//! cache_dir = "cache"
//! ```
//!
//! Unknown keys are rejected. Every error names the file, the line and the key, and never
//! contains a credential: a credential written inline (instead of `{ env = ... }`) is refused
//! without echoing it, and TOML's own error rendering (which quotes the offending source line)
//! is not used.

mod json;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::runtime::{Runtime, RuntimeOptions};
use crate::types::Error;

/// The `wasi:config` key holding the policy JSON.
pub const POLICY_KEY: &str = "secrets_policy";

/// Host call deadline when the file sets none: at least this, and always above the policy's
/// largest `timeouts.deadline_ms` plus [`DEADLINE_MARGIN`].
const MIN_DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(60);
const DEADLINE_MARGIN: Duration = Duration::from_secs(5);

/// A loaded config file. Holds credentials, so it has no `Debug`.
pub struct ConfigFile {
    /// The file it came from.
    pub path: PathBuf,
    /// The component's `wasi:config` store: `secrets_policy` plus one entry per credential.
    pub wasi_config: BTreeMap<String, String>,
    /// Runtime options, with the `[host]` table applied over the defaults.
    pub options: RuntimeOptions,
    /// The configured environment names, in file order.
    pub environments: Vec<String>,
}

/// Why a config file was rejected. `Display`: `file:line:column: key: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line and column, when the problem has a place in the file.
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The dotted key path, e.g. `credentials.prod_vault_token`.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let (Some(line), Some(column)) = (self.line, self.column) {
            write!(f, ":{line}:{column}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

impl ConfigFile {
    /// Reads and checks `path`, resolving credentials from the process environment and files.
    pub fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError { file: path.to_path_buf(), line: None, column: None, key: None, message: format!("cannot read the config file: {e}") })?;
        ConfigFile::parse(&text, path, &|name| std::env::var(name).ok())
    }

    /// Parses `text` as if read from `path` (used for messages and to resolve relative paths);
    /// `env` looks up environment variables for `{ env = "NAME" }` credentials.
    pub fn parse(text: &str, path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<ConfigFile, ConfigError> {
        Parser { text, file: path, dir: path.parent().unwrap_or(Path::new(".")), env }.parse()
    }

    /// A runtime for this configuration.
    pub fn runtime(&self) -> Result<Runtime, Error> {
        Runtime::new(self.wasi_config.clone(), self.options.clone())
    }

    /// Uses `keyvalue` as the component's `wasi:keyvalue` store (e.g. Redis shared by hosts).
    pub fn with_keyvalue(mut self, keyvalue: crate::KeyValue) -> ConfigFile {
        self.options.keyvalue = Some(keyvalue);
        self
    }
}

/// `[a-z][a-z0-9_]*`: valid Spin variable names, so the same keys work under Spin.
pub fn is_config_key(key: &str) -> bool {
    edge_secrets_guest::config::is_config_key(key)
}

struct Parser<'a> {
    text: &'a str,
    file: &'a Path,
    dir: &'a Path,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Parser<'_> {
    fn err(&self, span: Option<Range<usize>>, key: Option<&str>, message: impl Into<String>) -> ConfigError {
        let (line, column) = match span {
            Some(span) => {
                let (l, c) = line_col(self.text, span.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        ConfigError { file: self.file.to_path_buf(), line, column, key: key.map(str::to_string), message: message.into() }
    }

    fn parse(&self) -> Result<ConfigFile, ConfigError> {
        let doc = DeTable::parse(self.text).map_err(|e| self.err(e.span(), None, format!("invalid TOML: {}", e.message().trim())))?;
        let doc = doc.get_ref();
        for (key, _) in doc.iter() {
            if !matches!(key.get_ref().as_ref(), "policy" | "credentials" | "host") {
                return Err(self.err(Some(key.span()), Some(key.get_ref()), "unknown key (expected `policy`, `credentials` or `host`)"));
            }
        }

        let policy_value = doc.get("policy").ok_or_else(|| self.err(None, Some("policy"), "missing: the component's policy is required"))?;
        let policy = self.table(policy_value, "policy")?;
        let policy_json = json::table_to_json(policy, "policy").map_err(|e| self.err(Some(e.span), Some(&e.path), e.message))?;
        let specs = edge_secrets_guest::config::parse_policy(&policy_json).map_err(|msg| self.policy_error(policy, &msg))?;

        let mut wasi_config = BTreeMap::new();
        if let Some(creds) = doc.get("credentials") {
            for (key, value) in self.table(creds, "credentials")?.iter() {
                let (name, secret) = self.credential(key, value)?;
                wasi_config.insert(name, secret);
            }
        }
        // A missing credential would otherwise surface as a `config` error on every call.
        for spec in &specs {
            for (i, tier) in spec.tiers.iter().enumerate() {
                for (field, key) in edge_secrets_guest::config::auth::credential_keys(&tier.auth) {
                    if wasi_config.contains_key(key) {
                        continue;
                    }
                    let path = format!("{}.{field}", edge_secrets_guest::config::tier_path(&spec.name, i));
                    let span = lookup(policy, &path).map(|v| v.span());
                    return Err(self.err(span, Some(&format!("policy.{path}")), format!("names credential `{key}`, but [credentials] does not define it")));
                }
            }
        }
        wasi_config.insert(POLICY_KEY.to_string(), policy_json);

        let max_deadline = specs.iter().map(|s| Duration::from_millis(s.policy.deadline_ms)).max().unwrap_or_default();
        let options = match doc.get("host") {
            Some(host) => self.host(self.table(host, "host")?, max_deadline)?,
            None => RuntimeOptions::default().call_timeout(default_call_timeout(max_deadline)),
        };
        // File order (the component's validator returns them sorted by name).
        let environments = match policy.get("environments").map(|v| v.get_ref()) {
            Some(DeValue::Table(t)) => t.iter().map(|(k, _)| k.get_ref().to_string()).collect(),
            _ => specs.into_iter().map(|s| s.name).collect(),
        };
        Ok(ConfigFile { path: self.file.to_path_buf(), wasi_config, options, environments })
    }

    fn table<'v, 'i>(&self, value: &'v Spanned<DeValue<'i>>, key: &str) -> Result<&'v DeTable<'i>, ConfigError> {
        match value.get_ref() {
            DeValue::Table(t) => Ok(t),
            other => Err(self.err(Some(value.span()), Some(key), format!("must be a table, found {}", other.type_str()))),
        }
    }

    /// The component's validator reports `path: why`; point at that key in the file if it exists.
    fn policy_error(&self, policy: &DeTable<'_>, msg: &str) -> ConfigError {
        let (path, why) = msg.split_once(": ").unwrap_or(("", msg));
        let path = path.strip_prefix(POLICY_KEY).map(|p| p.trim_start_matches('.')).unwrap_or(path);
        // Point at the deepest key of the path that exists in the file.
        let mut span = None;
        let mut prefix = String::new();
        for segment in path.split('.').filter(|s| !s.is_empty()) {
            if !prefix.is_empty() {
                prefix.push('.');
            }
            prefix.push_str(segment);
            match lookup_key(policy, &prefix) {
                Some(s) => span = Some(s),
                None => break,
            }
        }
        let key = if path.is_empty() { "policy".to_string() } else { format!("policy.{path}") };
        self.err(span, Some(&key), why)
    }

    fn credential(&self, key: &Spanned<std::borrow::Cow<'_, str>>, value: &Spanned<DeValue<'_>>) -> Result<(String, String), ConfigError> {
        let name: &str = key.get_ref();
        let path = format!("credentials.{name}");
        let here = |span: Range<usize>, message: String| self.err(Some(span), Some(&path), message);
        if !is_config_key(name) || name == POLICY_KEY {
            return Err(here(key.span(), format!("credential keys must match [a-z][a-z0-9_]* and not be `{POLICY_KEY}`")));
        }
        let usage = "must be { env = \"VARIABLE\" } or { file = \"path\" }";
        let DeValue::Table(source) = value.get_ref() else {
            // Never echo the value: an inline string here is most likely the credential itself.
            return Err(here(value.span(), format!("{usage}, found {} (credentials are never written in the config file)", value.get_ref().type_str())));
        };
        if source.len() != 1 {
            return Err(here(value.span(), format!("{usage}: exactly one of `env` or `file`")));
        }
        let (kind, arg) = source.iter().next().expect("len is 1");
        let DeValue::String(arg_text) = arg.get_ref() else {
            return Err(here(arg.span(), format!("`{}` must be a string", kind.get_ref())));
        };
        let secret = match kind.get_ref().as_ref() {
            "env" => match (self.env)(arg_text) {
                Some(v) => v,
                None => return Err(here(arg.span(), format!("environment variable `{arg_text}` is not set"))),
            },
            "file" => {
                let file = self.dir.join(arg_text.as_ref());
                let text = std::fs::read(&file).map_err(|e| here(arg.span(), format!("cannot read file `{}`: {}", file.display(), e.kind())))?;
                let text = String::from_utf8(text).map_err(|_| here(arg.span(), format!("file `{}` is not UTF-8 text", file.display())))?;
                text.trim_end_matches(['\n', '\r']).to_string()
            }
            other => return Err(here(kind.span(), format!("unknown source `{other}`: {usage}"))),
        };
        if secret.is_empty() {
            let origin = if kind.get_ref() == "env" { "environment variable" } else { "file" };
            return Err(here(arg.span(), format!("{origin} `{arg_text}` is empty")));
        }
        Ok((name.to_string(), secret))
    }

    fn host(&self, host: &DeTable<'_>, max_deadline: Duration) -> Result<RuntimeOptions, ConfigError> {
        let mut options = RuntimeOptions::default();
        let mut call_timeout = None;
        for (key, value) in host.iter() {
            let path = format!("host.{}", key.get_ref());
            let int = |range: std::ops::RangeInclusive<u64>| -> Result<u64, ConfigError> {
                match value.get_ref() {
                    DeValue::Integer(i) => u64::from_str_radix(i.as_str(), i.radix()).ok().filter(|n| range.contains(n)),
                    _ => None,
                }
                .ok_or_else(|| self.err(Some(value.span()), Some(&path), format!("must be an integer between {} and {}", range.start(), range.end())))
            };
            match key.get_ref().as_ref() {
                "memory_mib" => options.memory_limit_bytes = (int(1..=4096)? as usize) << 20,
                "call_timeout_ms" => {
                    let ms = int(1..=3_600_000)?;
                    if Duration::from_millis(ms) <= max_deadline {
                        return Err(self.err(
                            Some(value.span()),
                            Some(&path),
                            format!("must exceed the policy's largest timeouts.deadline_ms ({} ms), or the host would cut calls off", max_deadline.as_millis()),
                        ));
                    }
                    call_timeout = Some(Duration::from_millis(ms));
                }
                "cache_dir" => match value.get_ref() {
                    DeValue::String(s) => options.cache_dir = Some(self.dir.join(s.as_ref())),
                    _ => return Err(self.err(Some(value.span()), Some(&path), "must be a string (a directory path)")),
                },
                _ => return Err(self.err(Some(key.span()), Some(&path), "unknown key (expected `memory_mib`, `call_timeout_ms` or `cache_dir`)")),
            }
        }
        options.call_timeout = call_timeout.unwrap_or_else(|| default_call_timeout(max_deadline));
        Ok(options)
    }
}

fn default_call_timeout(max_deadline: Duration) -> Duration {
    MIN_DEFAULT_CALL_TIMEOUT.max(max_deadline + DEADLINE_MARGIN)
}

/// The value at a dotted path under `table`.
fn lookup<'t, 'i>(table: &'t DeTable<'i>, path: &str) -> Option<&'t Spanned<DeValue<'i>>> {
    let mut segments = path.split('.');
    let mut value = table.get(segments.next()?)?;
    for segment in segments {
        match value.get_ref() {
            DeValue::Table(t) => value = t.get(segment)?,
            _ => return None,
        }
    }
    Some(value)
}

/// The span of the last key of a dotted path under `table` (the key itself, not its value).
fn lookup_key(table: &DeTable<'_>, path: &str) -> Option<Range<usize>> {
    let (parent, last) = match path.rsplit_once('.') {
        Some((parent, last)) => match lookup(table, parent)?.get_ref() {
            DeValue::Table(t) => (t, last),
            _ => return None,
        },
        None => (table, path),
    };
    parent.iter().find(|(k, _)| k.get_ref() == last).map(|(k, _)| k.span())
}

/// 1-based line and column (in characters) of byte offset `at`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let before = &text[..text.floor_char_boundary(at)];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}
