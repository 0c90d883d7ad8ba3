//! Credentials: how each backend tier proves who it is. Pure, like the
//! backends: each method is a small module that builds its login (or signs
//! its token) and judges the answer; the engine (`engine::credentials`) holds
//! the issued tokens, renews them, and shares them through shared state.
//!
//! | method            | backend | material (config keys)                     | network   |
//! |-------------------|---------|--------------------------------------------|-----------|
//! | `token`           | any but aws | a token                                | none      |
//! | `approle`         | vault   | role id, secret id                         | login, renew |
//! | `service_account` | gcp     | a service-account key (JSON)               | none (self-signed JWT) |
//! | `metadata`        | gcp     | none (a metadata server URL)               | token fetch |
//! | `aws_keys`        | aws     | access key id, secret key, session token   | none (SigV4) |
//! | `azure_client_secret` | azure | client secret (tenant, client id in the policy) | token request |
//! | `azure_managed_identity` | azure | none (an IMDS URL, optional client id) | token request |

use crate::prelude::*;
use core::fmt;

use crate::http::BaseUrl;
use crate::secret::SecretBytes;
use crate::sigv4;

pub mod approle;
pub mod azure;
pub mod metadata;
pub mod service_account;

/// How a tier authenticates, as configured: config key names only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthSpec {
    /// A token read from a config key: a Vault token, or a GCP OAuth access token.
    Token { key: String },
    /// Vault AppRole: `POST /v1/auth/<mount>/login` with a role id and secret id.
    AppRole { role_id_key: String, secret_id_key: String, mount: String },
    /// A GCP service-account key (the JSON Google issues), signing its own tokens.
    ServiceAccount { key_key: String },
    /// A GCP metadata server (`Metadata-Flavor: Google`) handing out tokens.
    Metadata { url: BaseUrl },
    /// An AWS access key, signing every request (SigV4).
    AwsKeys { access_key_id_key: String, secret_access_key_key: String, session_token_key: Option<String> },
    /// Microsoft Entra client credentials: an app registration's client secret
    /// exchanged for a Key Vault token at `{authority}/{tenant}/oauth2/v2.0/token`.
    AzureClientSecret { tenant: String, client_id: String, client_secret_key: String, authority: BaseUrl },
    /// An Azure managed identity: tokens from the instance metadata service at
    /// `url`; `client_id` picks a user-assigned identity.
    AzureManagedIdentity { url: BaseUrl, client_id: Option<String> },
}

impl AuthSpec {
    /// The method's name as written in the policy.
    pub fn method(&self) -> &'static str {
        match self {
            AuthSpec::Token { .. } => "token",
            AuthSpec::AppRole { .. } => "approle",
            AuthSpec::ServiceAccount { .. } => "service_account",
            AuthSpec::Metadata { .. } => "metadata",
            AuthSpec::AwsKeys { .. } => "aws_keys",
            AuthSpec::AzureClientSecret { .. } => "azure_client_secret",
            AuthSpec::AzureManagedIdentity { .. } => "azure_managed_identity",
        }
    }

    /// Whether the method issues tokens that expire (held, renewed, shared).
    pub fn issues_tokens(&self) -> bool {
        matches!(
            self,
            AuthSpec::AppRole { .. }
                | AuthSpec::ServiceAccount { .. }
                | AuthSpec::Metadata { .. }
                | AuthSpec::AzureClientSecret { .. }
                | AuthSpec::AzureManagedIdentity { .. }
        )
    }
}

/// A tier's credential material, read from the config keys its [`AuthSpec`]
/// names. No `Debug` shows any of it.
pub enum Credential {
    Token(SecretBytes),
    AppRole { role_id: SecretBytes, secret_id: SecretBytes },
    ServiceAccount(service_account::ServiceAccountKey),
    Metadata,
    Aws(sigv4::Credentials),
    /// An Entra app registration's client secret.
    AzureClientSecret(SecretBytes),
    AzureManagedIdentity,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Token(_) => f.write_str("Token(<redacted>)"),
            Credential::AppRole { .. } => f.write_str("AppRole(<redacted>)"),
            Credential::ServiceAccount(key) => write!(f, "ServiceAccount({key:?})"),
            Credential::Metadata => f.write_str("Metadata"),
            Credential::Aws(_) => f.write_str("Aws(<redacted>)"),
            Credential::AzureClientSecret(_) => f.write_str("AzureClientSecret(<redacted>)"),
            Credential::AzureManagedIdentity => f.write_str("AzureManagedIdentity"),
        }
    }
}

/// A token a login issued (AppRole, metadata server) or the component signed
/// (service-account JWT). `Debug` shows only its lifetime.
pub struct IssuedToken {
    pub token: SecretBytes,
    /// How long it is valid from when it was issued, in milliseconds.
    pub ttl_ms: u64,
    /// Whether it can be renewed (Vault `renew-self`) instead of logging in again.
    pub renewable: bool,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken").field("ttl_ms", &self.ttl_ms).field("renewable", &self.renewable).finish()
    }
}

/// What a read request presents: a token, or keys to sign it with.
#[derive(Clone, Copy)]
pub enum Presented<'a> {
    Token(&'a SecretBytes),
    Aws(&'a sigv4::Credentials),
}
