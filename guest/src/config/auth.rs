//! A tier's credential: `token_key` (a static token) or an `auth` object
//! naming a method and the config keys holding its material; and loading
//! that material from the config store. Every error names the key.

use crate::prelude::*;

use super::reader::Obj;
use super::{is_config_key, BackendSpec, ConfigSource, LoadError};
use crate::auth::{service_account, vault_jwt, AuthSpec, Credential};
use crate::http::BaseUrl;
use crate::secret::SecretBytes;
use crate::sigv4;

/// Google's metadata server, as every GCE/GKE/Cloud Run workload sees it.
pub const DEFAULT_METADATA_URL: &str = "http://metadata.google.internal";

/// Vault's default AppRole mount.
pub const DEFAULT_APPROLE_MOUNT: &str = "approle";

/// Reads `token_key` or `auth` from a tier object, checking that the method
/// fits `backend`.
pub(super) fn parse(obj: &mut Obj<'_>, backend: &BackendSpec) -> Result<AuthSpec, String> {
    let path = obj.path().to_string();
    let token_key = obj.string("token_key")?;
    let auth = obj.object("auth")?;
    let spec = match (token_key, auth) {
        (Some(_), Some(_)) => return Err(format!("{path}: set `token_key` or `auth`, not both")),
        (None, None) => return Err(format!("{path}: needs `token_key` or `auth`")),
        (Some(key), None) => AuthSpec::Token { key: config_key(obj, "token_key", key)? },
        (None, Some(mut auth)) => {
            let spec = parse_method(&mut auth)?;
            auth.finish()?;
            spec
        }
    };
    let fits = matches!(
        (backend, &spec),
        (BackendSpec::Vault { .. }, AuthSpec::Token { .. } | AuthSpec::AppRole { .. } | AuthSpec::VaultJwt { .. })
            | (BackendSpec::Gcp { .. }, AuthSpec::Token { .. } | AuthSpec::ServiceAccount { .. } | AuthSpec::Metadata { .. })
            | (BackendSpec::Aws { .. }, AuthSpec::AwsKeys { .. } | AuthSpec::AwsWebIdentity { .. } | AuthSpec::AwsContainer { .. } | AuthSpec::AwsInstance { .. })
            | (BackendSpec::Azure, AuthSpec::Token { .. } | AuthSpec::AzureClientSecret { .. } | AuthSpec::AzureManagedIdentity { .. })
    );
    if !fits {
        let allowed = match backend {
            BackendSpec::Vault { .. } => "`token_key` or auth method `approle`, `kubernetes` or `jwt`",
            BackendSpec::Gcp { .. } => "`token_key` or auth method `service_account` or `metadata`",
            BackendSpec::Aws { .. } => "auth method `aws_keys`, `aws_web_identity`, `aws_container` or `aws_instance`",
            BackendSpec::Azure => "`token_key` or auth method `azure_client_secret` or `azure_managed_identity`",
        };
        return Err(format!("{path}: the {} backend takes {allowed}, not `{}`", backend.kind(), spec.method()));
    }
    Ok(spec)
}

fn parse_method(auth: &mut Obj<'_>) -> Result<AuthSpec, String> {
    let method = auth.required_string("method")?;
    let spec = match method {
        "approle" => {
            let mount = auth.string("mount")?.unwrap_or(DEFAULT_APPROLE_MOUNT);
            crate::validate::vault_path(mount).map_err(|_| format!("{}: must be a Vault path like `approle`", auth.path_of("mount")))?;
            AuthSpec::AppRole {
                role_id_key: required_key(auth, "role_id_key")?,
                secret_id_key: required_key(auth, "secret_id_key")?,
                mount: mount.to_string(),
            }
        }
        "kubernetes" | "jwt" => {
            let kubernetes = method == "kubernetes";
            let default_mount = if kubernetes { vault_jwt::DEFAULT_KUBERNETES_MOUNT } else { vault_jwt::DEFAULT_JWT_MOUNT };
            let mount = auth.string("mount")?.unwrap_or(default_mount);
            crate::validate::vault_path(mount).map_err(|_| format!("{}: must be a Vault path like `{default_mount}`", auth.path_of("mount")))?;
            let role = auth.required_string("role")?;
            if !vault_jwt::is_role_name(role) {
                return Err(format!("{}: must be a Vault role name (1-128 of A-Z, a-z, 0-9, `_-.@`)", auth.path_of("role")));
            }
            AuthSpec::VaultJwt { kubernetes, role: role.to_string(), jwt_key: required_key(auth, "jwt_key")?, mount: mount.to_string() }
        }
        "service_account" => AuthSpec::ServiceAccount { key_key: required_key(auth, "key_key")? },
        "metadata" => AuthSpec::Metadata { url: url_or(auth, DEFAULT_METADATA_URL)? },
        "aws_keys" => {
            let session_token_key = optional_key(auth, "session_token_key")?;
            AuthSpec::AwsKeys {
                access_key_id_key: required_key(auth, "access_key_id_key")?,
                secret_access_key_key: required_key(auth, "secret_access_key_key")?,
                session_token_key,
            }
        }
        "aws_web_identity" => {
            let role_arn = auth.required_string("role_arn")?;
            if !is_role_arn(role_arn) {
                return Err(format!("{}: must be an IAM role ARN like `arn:aws:iam::123456789012:role/name`", auth.path_of("role_arn")));
            }
            let session_name = auth.string("session_name")?.unwrap_or(DEFAULT_SESSION_NAME);
            if !(2..=64).contains(&session_name.len()) || !session_name.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@-_".contains(&b)) {
                return Err(format!("{}: must be 2-64 of A-Z, a-z, 0-9 and `+=,.@-_`", auth.path_of("session_name")));
            }
            let sts_url = match auth.string("sts_url")? {
                Some(text) => Some(BaseUrl::parse(text).map_err(|why| format!("{}: {why}", auth.path_of("sts_url")))?),
                None => None,
            };
            AuthSpec::AwsWebIdentity { role_arn: role_arn.to_string(), session_name: session_name.to_string(), token_key: required_key(auth, "token_key")?, sts_url }
        }
        "aws_instance" => AuthSpec::AwsInstance { url: url_or(auth, DEFAULT_IMDS_URL)? },
        "aws_container" => {
            let token_key = optional_key(auth, "auth_token_key")?;
            AuthSpec::AwsContainer { uri_key: required_key(auth, "uri_key")?, token_key }
        }
        "azure_client_secret" | "azure_managed_identity" => super::azure_auth::parse_method(auth, method)?,
        other => {
            return Err(format!(
                "{}: must be `approle`, `kubernetes`, `jwt`, `service_account`, `metadata`, `aws_keys`, `aws_web_identity`, `aws_container`, `aws_instance`, `azure_client_secret` or `azure_managed_identity`, got {:?}",
                auth.path_of("method"),
                crate::validate::shorten(other)
            ))
        }
    };
    Ok(spec)
}

/// EC2's instance metadata service, as every instance sees it.
pub const DEFAULT_IMDS_URL: &str = "http://169.254.169.254";

/// The session name STS records for a web-identity login when the policy names none.
pub const DEFAULT_SESSION_NAME: &str = "edge-secrets";

/// `arn:<partition>:iam::<12 digits>:role/<path and name>`.
fn is_role_arn(arn: &str) -> bool {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("iam"), Some(""), Some(account), Some(resource)) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    partition.starts_with("aws")
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && resource.strip_prefix("role/").is_some_and(|name| (1..=512).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@-_/".contains(&b)))
}

/// An optional config key, checked like a required one.
pub(super) fn optional_key(obj: &mut Obj<'_>, name: &'static str) -> Result<Option<String>, String> {
    match obj.string(name)? {
        Some(key) => config_key(obj, name, key).map(Some),
        None => Ok(None),
    }
}

/// The `url` of a metadata-style endpoint, `default` when the policy names none.
fn url_or(auth: &mut Obj<'_>, default: &str) -> Result<BaseUrl, String> {
    let text = auth.string("url")?.unwrap_or(default);
    BaseUrl::parse(text).map_err(|why| format!("{}: {why}", auth.path_of("url")))
}

pub(super) fn required_key(obj: &mut Obj<'_>, name: &'static str) -> Result<String, String> {
    let key = obj.required_string(name)?;
    config_key(obj, name, key)
}

fn config_key(obj: &Obj<'_>, name: &'static str, key: &str) -> Result<String, String> {
    if !is_config_key(key) {
        return Err(format!("{}: must be a config key matching [a-z][a-z0-9_]*", obj.path_of(name)));
    }
    Ok(key.to_string())
}

/// Every config key a tier's credential is read from, with the policy path
/// that names it (`auth.role_id_key`, …), relative to the tier.
pub fn credential_keys(spec: &AuthSpec) -> Vec<(&'static str, &str)> {
    match spec {
        AuthSpec::Token { key } => vec![("token_key", key)],
        AuthSpec::AppRole { role_id_key, secret_id_key, .. } => {
            vec![("auth.role_id_key", role_id_key), ("auth.secret_id_key", secret_id_key)]
        }
        AuthSpec::VaultJwt { jwt_key, .. } => vec![("auth.jwt_key", jwt_key)],
        AuthSpec::ServiceAccount { key_key } => vec![("auth.key_key", key_key)],
        AuthSpec::AwsWebIdentity { token_key, .. } => vec![("auth.token_key", token_key)],
        AuthSpec::AwsInstance { .. } => Vec::new(),
        AuthSpec::AwsContainer { uri_key, token_key } => {
            let mut keys = vec![("auth.uri_key", uri_key.as_str())];
            keys.extend(token_key.as_deref().map(|key| ("auth.auth_token_key", key)));
            keys
        }
        AuthSpec::Metadata { .. } | AuthSpec::AzureManagedIdentity { .. } => Vec::new(),
        AuthSpec::AzureClientSecret { client_secret_key, .. } => vec![("auth.client_secret_key", client_secret_key)],
        AuthSpec::AwsKeys { access_key_id_key, secret_access_key_key, session_token_key } => {
            let mut keys = vec![("auth.access_key_id_key", access_key_id_key.as_str()), ("auth.secret_access_key_key", secret_access_key_key)];
            if let Some(key) = session_token_key {
                keys.push(("auth.session_token_key", key));
            }
            keys
        }
    }
}

/// Reads a tier's credential material. `tier_path` is the tier's policy path
/// (`environments.prod` or `environments.prod.fallbacks.0`).
pub(super) fn load(source: &dyn ConfigSource, tier_path: &str, spec: &AuthSpec) -> Result<Credential, LoadError> {
    let at = |name: &str| format!("{tier_path}.{name}");
    Ok(match spec {
        AuthSpec::Token { key } => Credential::Token(load_text(source, &at("token_key"), key)?),
        AuthSpec::AppRole { role_id_key, secret_id_key, .. } => Credential::AppRole {
            role_id: load_text(source, &at("auth.role_id_key"), role_id_key)?,
            secret_id: load_text(source, &at("auth.secret_id_key"), secret_id_key)?,
        },
        AuthSpec::VaultJwt { jwt_key, .. } => Credential::VaultJwt { jwt: load_jwt(source, &at("auth.jwt_key"), jwt_key)? },
        AuthSpec::AwsWebIdentity { token_key, .. } => Credential::AwsWebIdentity { token: load_jwt(source, &at("auth.token_key"), token_key)? },
        AuthSpec::AwsInstance { .. } => Credential::AwsInstance,
        AuthSpec::AwsContainer { uri_key, token_key } => {
            let path = at("auth.uri_key");
            let text = read(source, &path, uri_key)?;
            let uri = BaseUrl::parse(text.trim()).map_err(|why| LoadError::invalid(format!("{path}: config key `{uri_key}`: {why}")))?;
            let token = match token_key {
                Some(key) => Some(load_text(source, &at("auth.auth_token_key"), key)?),
                None => None,
            };
            Credential::AwsContainer { uri, token }
        }
        AuthSpec::ServiceAccount { key_key } => {
            let path = at("auth.key_key");
            let json = read(source, &path, key_key)?;
            let key = service_account::parse(&json).map_err(|why| {
                LoadError::invalid(format!("{path}: config key `{key_key}` is not a usable service-account key: {why}"))
            })?;
            Credential::ServiceAccount(key)
        }
        AuthSpec::Metadata { .. } => Credential::Metadata,
        AuthSpec::AzureClientSecret { client_secret_key, .. } => {
            Credential::AzureClientSecret(load_text(source, &at("auth.client_secret_key"), client_secret_key)?)
        }
        AuthSpec::AzureManagedIdentity { .. } => Credential::AzureManagedIdentity,
        AuthSpec::AwsKeys { access_key_id_key, secret_access_key_key, session_token_key } => {
            let path = at("auth.access_key_id_key");
            let access_key_id = read(source, &path, access_key_id_key)?;
            // AKIA…/ASIA…: uppercase letters and digits. It is sent in the clear (in
            // `Authorization`), so its shape can be checked without hiding anything.
            if !(16..=128).contains(&access_key_id.len()) || !access_key_id.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) {
                return Err(LoadError::invalid(format!(
                    "{path}: config key `{access_key_id_key}` is not an AWS access key id (16-128 of A-Z, 0-9)"
                )));
            }
            let secret = load_text(source, &at("auth.secret_access_key_key"), secret_access_key_key)?;
            let session_token = match session_token_key {
                Some(key) => Some(load_text(source, &at("auth.session_token_key"), key)?),
                None => None,
            };
            Credential::Aws(sigv4::Credentials {
                access_key_id,
                secret_access_key: text_of(secret),
                session_token: session_token.map(text_of),
            })
        }
    })
}

fn read(source: &dyn ConfigSource, path: &str, key: &str) -> Result<String, LoadError> {
    source
        .get(key)
        .map_err(|e| LoadError::store(path, key, &e))?
        .ok_or_else(|| LoadError::invalid(format!("{path}: config key `{key}` is not set")))
}

/// A single-line credential: non-empty, no control characters (it goes into
/// a header or a JSON body).
fn load_text(source: &dyn ConfigSource, path: &str, key: &str) -> Result<SecretBytes, LoadError> {
    let text = read(source, path, key)?;
    if text.is_empty() || text.bytes().any(|b| b.is_ascii_control()) {
        return Err(LoadError::invalid(format!("{path}: config key `{key}` is empty or has control characters")));
    }
    Ok(SecretBytes::from(text))
}

/// A JWT credential: [`load_text`], and header.claims.signature, so that a wrong value is named
/// now rather than refused at the first login.
fn load_jwt(source: &dyn ConfigSource, path: &str, key: &str) -> Result<SecretBytes, LoadError> {
    let jwt = load_text(source, path, key)?;
    if jwt.expose().iter().filter(|b| **b == b'.').count() != 2 {
        return Err(LoadError::invalid(format!("{path}: config key `{key}` is not a JWT (three dot-separated parts)")));
    }
    Ok(jwt)
}

/// The text of a credential checked by [`load_text`] (valid UTF-8: it came from a `String`).
fn text_of(bytes: SecretBytes) -> String {
    String::from_utf8(bytes.into_vec()).unwrap_or_default()
}
