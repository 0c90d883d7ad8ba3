//! Configuration: the policy document (JSON, under `secrets_policy`) plus
//! credential keys it names, all read through a [`ConfigSource`] — under
//! `wasi:config` in the component, a map in tests.
//!
//! Parsed and validated once. Every error names the key it is about.
//! See `docs/configuration.md` for the document and its defaults.

use crate::prelude::*;

pub mod auth;
mod azure_auth;
pub mod mapping;
mod lazy;
mod policy;
mod reader;

use core::fmt;

use serde_json::Value;

pub use lazy::{load_lazy, LazyLoaded, Unread};
pub use mapping::{ConfigMapping, ReservedKeys};
pub use policy::Policy;
use reader::Obj;

use crate::http::BaseUrl;
use crate::log::Level;
use crate::shared::{SealKey, SharedSetup, SharedSpec};

/// The config key holding the policy document.
pub const POLICY_KEY: &str = "secrets_policy";

/// Where configuration values come from (`wasi:config/store` in the
/// component). `Err` carries the store's own message.
pub trait ConfigSource {
    fn get(&self, key: &str) -> Result<Option<String>, String>;
}

impl ConfigSource for alloc::collections::BTreeMap<String, String> {
    fn get(&self, key: &str) -> Result<Option<String>, String> {
        Ok(alloc::collections::BTreeMap::get(self, key).cloned())
    }
}

/// Which backend an environment reads from, with its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendSpec {
    /// HashiCorp Vault, KV v2 engine.
    Vault { mount: String, namespace: Option<String> },
    /// Google Cloud Secret Manager.
    Gcp { project: String },
    /// AWS Secrets Manager, in one region (it is part of every signature).
    Aws { region: String },
    /// Azure Key Vault: the vault is the tier's `url`, nothing else is needed.
    Azure,
}

impl BackendSpec {
    /// `vault`, `gcp`, `aws` or `azure`.
    pub fn kind(&self) -> &'static str {
        match self {
            BackendSpec::Vault { .. } => "vault",
            BackendSpec::Gcp { .. } => "gcp",
            BackendSpec::Aws { .. } => "aws",
            BackendSpec::Azure => "azure",
        }
    }

    /// The selector that names the concrete version a read resolved to, so a
    /// `latest` answer also serves later reads of that exact version.
    pub fn pinned(&self, version: &str) -> Option<crate::validate::VersionSel> {
        use crate::validate::VersionSel;
        match self {
            BackendSpec::Vault { .. } | BackendSpec::Gcp { .. } => version.parse().ok().map(VersionSel::Pinned),
            BackendSpec::Aws { .. } => match VersionSel::parse(Some(version)) {
                Ok(id @ VersionSel::Id(_)) => Some(id),
                _ => None,
            },
            BackendSpec::Azure => crate::backend::azure::is_version_id(version).then(|| VersionSel::Id(version.to_string())),
        }
    }
}

/// One backend an environment reads from: its primary, or a fallback tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierSpec {
    pub backend: BackendSpec,
    pub url: BaseUrl,
    /// How it authenticates (config key names only).
    pub auth: crate::auth::AuthSpec,
}

/// At most this many fallback tiers after the primary: each one adds a
/// breaker and a credential, and a deeper chain only adds latency to a miss.
pub const MAX_FALLBACKS: usize = 3;

/// One environment as written in the policy (credentials not yet resolved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentSpec {
    pub name: String,
    /// The backends in the order they are tried: the primary first. Never empty.
    pub tiers: Vec<TierSpec>,
    pub policy: Policy,
}

impl EnvironmentSpec {
    /// The primary backend (tier 0).
    pub fn primary(&self) -> &TierSpec {
        &self.tiers[0]
    }
}

/// One environment, ready to use. Its tiers' credentials are read from the
/// config store when a read first goes to a backend
/// ([`Environment::read_credentials`]): a cached read on a fresh instance then
/// makes no config read for them (under Spin each read is a thread hand-off in
/// the host, and a fresh instance per request makes every read a first one).
pub struct Environment {
    pub spec: EnvironmentSpec,
    credentials: Credentials,
}

enum Credentials {
    Unread,
    /// One per tier, in tier order.
    Read(Vec<crate::auth::Credential>),
    /// The error, returned again without reading the store: a value that is
    /// wrong will not fix itself in this instance (a store failure is not kept).
    Invalid(String),
}

impl Environment {
    /// The environment with its credentials not read yet.
    pub fn unread(spec: EnvironmentSpec) -> Environment {
        Environment { spec, credentials: Credentials::Unread }
    }

    /// Tier `tier`'s credential, once read.
    pub fn credential(&self, tier: usize) -> Option<&crate::auth::Credential> {
        match &self.credentials {
            Credentials::Read(all) => all.get(tier),
            Credentials::Unread | Credentials::Invalid(_) => None,
        }
    }

    /// Reads every tier's credential unless they are read already: errors
    /// name the tier's key (`environments.dev.token_key: ...`), never a value.
    pub fn read_credentials(&mut self, source: &dyn ConfigSource) -> Result<(), LoadError> {
        match &self.credentials {
            Credentials::Read(_) => return Ok(()),
            Credentials::Invalid(message) => return Err(LoadError::invalid(message.clone())),
            Credentials::Unread => {}
        }
        let name = &self.spec.name;
        let read: Result<Vec<_>, LoadError> =
            self.spec.tiers.iter().enumerate().map(|(i, tier)| auth::load(source, &tier_path(name, i), &tier.auth)).collect();
        match read {
            Ok(all) => {
                self.credentials = Credentials::Read(all);
                Ok(())
            }
            Err(error) => {
                if !error.store_failure {
                    self.credentials = Credentials::Invalid(error.message.clone());
                }
                Err(error)
            }
        }
    }
}

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("Environment");
        out.field("spec", &self.spec);
        // `Credential`'s own Debug shows the method, never the material.
        match &self.credentials {
            Credentials::Read(all) => out.field("credentials", all),
            Credentials::Unread => out.field("credentials", &"unread"),
            Credentials::Invalid(_) => out.field("credentials", &"invalid"),
        };
        out.finish()
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// What is wrong, naming the key.
    pub message: String,
    /// The config store itself failed (not the values in it): loading again
    /// later may succeed, so the failure must not be remembered.
    pub store_failure: bool,
}

impl LoadError {
    pub(crate) fn invalid(message: String) -> LoadError {
        LoadError { message, store_failure: false }
    }

    pub(crate) fn store(key_path: &str, key: &str, error: &str) -> LoadError {
        let message = format!("{key_path}: config store error for `{key}`: {}", crate::error::sanitize_reason(error));
        LoadError { message, store_failure: true }
    }
}

/// Reads the environments (see [`load_all`]).
pub fn load(source: &dyn ConfigSource) -> Result<Vec<Environment>, LoadError> {
    load_all(source).map(|(environments, _)| environments)
}

/// Reads the whole configuration: the policy, each environment's credential,
/// and the shared-state key when shared state is configured.
pub fn load_all(source: &dyn ConfigSource) -> Result<(Vec<Environment>, SharedSetup), LoadError> {
    load_all_with_log(source).map(|loaded| (loaded.environments, loaded.shared))
}

/// Everything the component keeps from its configuration.
pub struct Loaded {
    pub environments: Vec<Environment>,
    pub shared: SharedSetup,
    /// `log.level`: the least severe event written.
    pub log_level: Level,
    /// The `config` section (used by the config-provider world).
    pub config: Vec<ConfigMapping>,
    /// The config key of the sealing key, when the policy names one.
    pub seal_key_key: Option<String>,
}

impl Loaded {
    /// The keys the config-provider world never shows an app. Derived on demand: only that
    /// world needs them, and the provider world loads its policy on every fresh instance.
    pub fn reserved_keys(&self) -> ReservedKeys {
        ReservedKeys::new(self.environments.iter().map(|e| &e.spec), self.seal_key_key.as_deref())
    }
}

/// [`load_all`], with the rest of the policy.
pub fn load_all_with_log(source: &dyn ConfigSource) -> Result<Loaded, LoadError> {
    let text = policy_text(source)?;
    let mut loaded = load_document(source, parse_document(&text).map_err(LoadError::invalid)?)?;
    for environment in &mut loaded.environments {
        environment.read_credentials(source)?;
    }
    Ok(loaded)
}

/// A parsed document with its sealing key read; the environments' credentials
/// are not read yet.
fn load_document(source: &dyn ConfigSource, document: PolicyDocument) -> Result<Loaded, LoadError> {
    let seal_key_key = document.shared.as_ref().map(|s| s.key_key.clone());
    let shared = shared_setup(source, document.shared)?;
    let environments = document.environments.into_iter().map(Environment::unread).collect();
    Ok(Loaded { environments, shared, log_level: document.log_level, config: document.config, seal_key_key })
}

/// The policy document's text.
fn policy_text(source: &dyn ConfigSource) -> Result<String, LoadError> {
    source
        .get(POLICY_KEY)
        .map_err(|e| LoadError::store(POLICY_KEY, POLICY_KEY, &e))?
        .ok_or_else(|| LoadError::invalid(format!("{POLICY_KEY}: is not set")))
}

/// Shared state as configured: the sealing key read from the key the policy names.
fn shared_setup(source: &dyn ConfigSource, spec: Option<SharedSpec>) -> Result<SharedSetup, LoadError> {
    let Some(spec) = spec else { return Ok(SharedSetup::Disabled) };
    let key_path = "shared.key_key";
    Ok(match source.get(&spec.key_key).map_err(|e| LoadError::store(key_path, &spec.key_key, &e))? {
        None => SharedSetup::NoKey { key_key: spec.key_key },
        Some(text) => {
            let key = SealKey::from_hex(&text).map_err(|why| LoadError::invalid(format!("{key_path}: config key `{}` {why}", spec.key_key)))?;
            SharedSetup::Ready { bucket: spec.bucket, key, lease_ms: spec.lease_ms, count_sample: spec.count_sample }
        }
    })
}

/// The policy path of an environment's tier `i` (0: the primary).
pub fn tier_path(environment: &str, i: usize) -> String {
    match i {
        0 => format!("environments.{environment}"),
        n => format!("environments.{environment}.fallbacks.{}", n - 1),
    }
}

/// The policy document: environments, and where shared state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDocument {
    pub environments: Vec<EnvironmentSpec>,
    pub shared: Option<SharedSpec>,
    /// `log.level`: the least severe event written (default `info`).
    pub log_level: Level,
    /// `config`: config keys answered with secrets (the config-provider world).
    pub config: Vec<ConfigMapping>,
}

/// Parses and validates the policy document alone (no credentials needed):
/// hosts call this to check a configuration before starting the component.
pub fn parse_policy(text: &str) -> Result<Vec<EnvironmentSpec>, String> {
    parse_document(text).map(|document| document.environments)
}

/// Parses and validates the whole policy document.
pub fn parse_document(text: &str) -> Result<PolicyDocument, String> {
    lazy::Root::parse(text)?.into_document()
}

/// Default lease: long enough for a typical backend read, short enough that a
/// crashed holder delays the others only briefly.
const DEFAULT_LEASE_MS: u64 = 1_000;

/// One in this many fresh instances whose call only read the store adds its
/// counts (times this many): see `engine::shared::counters`.
const DEFAULT_COUNT_SAMPLE: u64 = 16;

fn parse_shared(mut obj: Obj<'_>) -> Result<SharedSpec, String> {
    let bucket = obj.string("bucket")?.unwrap_or("default").to_string();
    if !is_environment_name(&bucket) {
        return Err(format!("{}: bucket names must match [a-z0-9][a-z0-9_-]{{0,62}}", obj.path_of("bucket")));
    }
    let key_key = obj.required_string("key_key")?.to_string();
    if !is_config_key(&key_key) {
        return Err(format!("{}: must be a config key matching [a-z][a-z0-9_]*", obj.path_of("key_key")));
    }
    let lease_ms = obj.integer("lease_ms", 10..=60_000)?.unwrap_or(DEFAULT_LEASE_MS);
    let count_sample = obj.integer("count_sample", 1..=1_024)?.unwrap_or(DEFAULT_COUNT_SAMPLE);
    obj.finish()?;
    Ok(SharedSpec { bucket, key_key, lease_ms, count_sample })
}

fn parse_log(mut obj: Obj<'_>) -> Result<Level, String> {
    let level = match obj.string("level")? {
        None => Level::Info,
        Some(text) => Level::parse(text).ok_or_else(|| format!("{}: must be debug, info, warn or error", obj.path_of("level")))?,
    };
    obj.finish()?;
    Ok(level)
}

/// Out of line: both the whole document and each lazily read environment use it, and
/// inlined twice it cost the guest ~19 KB.
#[inline(never)]
fn parse_environment(name: &str, value: &Value, defaults: &Policy) -> Result<EnvironmentSpec, String> {
    let path = format!("environments.{}", crate::validate::shorten(name));
    let mut obj = Obj::new(value, &path)?;
    let mut tiers = vec![parse_tier(&mut obj)?];
    let fallbacks = obj.array("fallbacks")?;
    if fallbacks.len() > MAX_FALLBACKS {
        return Err(format!("{}: at most {MAX_FALLBACKS} fallbacks, got {}", obj.path_of("fallbacks"), fallbacks.len()));
    }
    for (i, item) in fallbacks.into_iter().enumerate() {
        let mut tier_obj = Obj::new(item, &format!("{}.{i}", obj.path_of("fallbacks")))?;
        tiers.push(parse_tier(&mut tier_obj)?);
        tier_obj.finish()?;
    }
    let policy = Policy::read_inline(&mut obj, defaults)?;
    obj.finish()?;
    Ok(EnvironmentSpec { name: name.to_string(), tiers, policy })
}

/// Reads one backend's keys (`backend`, `url`, the credential and the
/// backend's own) from `obj`, leaving the rest for the caller.
fn parse_tier(obj: &mut Obj<'_>) -> Result<TierSpec, String> {
    let path = obj.path().to_string();
    let kind = obj.required_string("backend")?;
    let url_text = obj.required_string("url")?;
    let url = BaseUrl::parse(url_text).map_err(|why| format!("{}: {why}", obj.path_of("url")))?;
    let mount = obj.string("mount")?;
    let namespace = obj.string("namespace")?;
    let project = obj.string("project")?;
    let region = obj.string("region")?;
    if region.is_some() && kind != "aws" {
        return Err(format!("{}: only applies to the aws backend", obj.path_of("region")));
    }
    let backend = match kind {
        "vault" => {
            if project.is_some() {
                return Err(format!("{}: only applies to the gcp backend", obj.path_of("project")));
            }
            let mount = mount.unwrap_or("secret");
            crate::validate::vault_path(mount).map_err(|_| format!("{}: must be a Vault path like `secret`", obj.path_of("mount")))?;
            if let Some(ns) = namespace {
                crate::validate::vault_path(ns).map_err(|_| format!("{}: must be a Vault namespace path like `team-a`", obj.path_of("namespace")))?;
            }
            BackendSpec::Vault { mount: mount.to_string(), namespace: namespace.map(str::to_string) }
        }
        "gcp" => {
            if mount.is_some() || namespace.is_some() {
                return Err(format!("{path}: `mount` and `namespace` only apply to the vault backend"));
            }
            let project = project.ok_or_else(|| format!("{}: is required for the gcp backend", obj.path_of("project")))?;
            if !is_gcp_project(project) {
                return Err(format!("{}: must match [a-z0-9][a-z0-9-]{{0,62}}", obj.path_of("project")));
            }
            BackendSpec::Gcp { project: project.to_string() }
        }
        "aws" => {
            if mount.is_some() || namespace.is_some() || project.is_some() {
                return Err(format!("{path}: `mount`, `namespace` and `project` do not apply to the aws backend"));
            }
            let region = region.ok_or_else(|| format!("{}: is required for the aws backend", obj.path_of("region")))?;
            if !is_aws_region(region) {
                return Err(format!("{}: must be an AWS region like `us-east-1`", obj.path_of("region")));
            }
            BackendSpec::Aws { region: region.to_string() }
        }
        "azure" => {
            if mount.is_some() || namespace.is_some() || project.is_some() {
                return Err(format!("{path}: `mount`, `namespace` and `project` do not apply to the azure backend"));
            }
            BackendSpec::Azure
        }
        other => {
            return Err(format!(
                "{}: must be `vault`, `gcp`, `aws` or `azure`, got {:?}",
                obj.path_of("backend"),
                crate::validate::shorten(other)
            ))
        }
    };
    let auth = auth::parse(obj, &backend)?;
    Ok(TierSpec { backend, url, auth })
}

/// AWS regions: `us-east-1`, `eu-central-2`, `us-gov-west-1`, `cn-north-1`:
/// lowercase words and a number joined by `-` (it goes into every signature).
fn is_aws_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    region.len() <= 32
        && parts.len() >= 3
        && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
        && parts.last().is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

/// Environment names: `[a-z0-9][a-z0-9_-]{0,62}` (safe in URLs and metric labels).
pub fn is_environment_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-')
}

/// Config keys: valid Spin variable names, `[a-z][a-z0-9_]*`.
pub fn is_config_key(key: &str) -> bool {
    let bytes = key.as_bytes();
    !bytes.is_empty()
        && bytes[0].is_ascii_lowercase()
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
}

fn is_gcp_project(project: &str) -> bool {
    is_environment_name(project) && !project.contains('_')
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod auth_tests;
