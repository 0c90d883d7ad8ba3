//! Credentials: how each backend tier proves who it is. Pure, like the
//! backends: each method is a small module that builds its login (or signs
//! its token) and judges the answer; the engine (`engine::credentials`) holds
//! the issued tokens, renews them, and shares them through shared state.
//!
//! | method            | backend | material (config keys)                     | network   |
//! |-------------------|---------|--------------------------------------------|-----------|
//! | `token`           | any but aws | a token                                | none      |
//! | `approle`         | vault   | role id, secret id                         | login, renew |
//! | `kubernetes`, `jwt` | vault | a role name (policy), a JWT                | login, renew |
//! | `service_account` | gcp     | a service-account key (JSON)               | none (self-signed JWT) |
//! | `metadata`        | gcp     | none (a metadata server URL)               | token fetch |
//! | `aws_keys`        | aws     | access key id, secret key, session token   | none (SigV4) |
//! | `aws_web_identity` | aws    | a role ARN (policy), a web identity JWT    | STS `AssumeRoleWithWebIdentity` |
//! | `aws_container`   | aws     | the endpoint's full URI, an optional token | credentials fetch |
//! | `aws_instance`    | aws     | none (an IMDS URL)                         | IMDSv2: token, role, credentials |
//! | `azure_client_secret` | azure | client secret (tenant, client id in the policy) | token request |
//! | `azure_managed_identity` | azure | none (an IMDS URL, optional client id) | token request |

use crate::prelude::*;
use core::fmt;

use crate::http::BaseUrl;
use crate::secret::SecretBytes;
use crate::sigv4;

pub mod approle;
pub mod aws_issued;
pub mod azure;
pub mod metadata;
pub mod service_account;
pub mod vault_jwt;

/// How a tier authenticates, as configured: config key names only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthSpec {
    /// A token read from a config key: a Vault token, or a GCP OAuth access token.
    Token { key: String },
    /// Vault AppRole: `POST /v1/auth/<mount>/login` with a role id and secret id.
    AppRole { role_id_key: String, secret_id_key: String, mount: String },
    /// Vault Kubernetes (`kubernetes: true`) or JWT/OIDC auth: `POST /v1/auth/<mount>/login`
    /// with a role name and a JWT (a service-account token, or any JWT the method trusts).
    VaultJwt { kubernetes: bool, role: String, jwt_key: String, mount: String },
    /// A GCP service-account key (the JSON Google issues), signing its own tokens.
    ServiceAccount { key_key: String },
    /// A GCP metadata server (`Metadata-Flavor: Google`) handing out tokens.
    Metadata { url: BaseUrl },
    /// An AWS access key, signing every request (SigV4).
    AwsKeys { access_key_id_key: String, secret_access_key_key: String, session_token_key: Option<String> },
    /// Temporary AWS credentials from `sts:AssumeRoleWithWebIdentity` for a JWT (EKS IRSA,
    /// GitHub-style OIDC); `sts_url` defaults to the region's STS endpoint.
    AwsWebIdentity { role_arn: String, session_name: String, token_key: String, sts_url: Option<BaseUrl> },
    /// Temporary AWS credentials from the ECS / EKS Pod Identity endpoint, whose full URI and
    /// optional authorization token are config values.
    AwsContainer { uri_key: String, token_key: Option<String> },
    /// Temporary AWS credentials of the EC2 instance's role, from IMDSv2 at `url`.
    AwsInstance { url: BaseUrl },
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
            AuthSpec::VaultJwt { kubernetes: true, .. } => "kubernetes",
            AuthSpec::VaultJwt { kubernetes: false, .. } => "jwt",
            AuthSpec::ServiceAccount { .. } => "service_account",
            AuthSpec::Metadata { .. } => "metadata",
            AuthSpec::AwsKeys { .. } => "aws_keys",
            AuthSpec::AwsWebIdentity { .. } => "aws_web_identity",
            AuthSpec::AwsContainer { .. } => "aws_container",
            AuthSpec::AwsInstance { .. } => "aws_instance",
            AuthSpec::AzureClientSecret { .. } => "azure_client_secret",
            AuthSpec::AzureManagedIdentity { .. } => "azure_managed_identity",
        }
    }

    /// Whether the method issues tokens that expire (held, renewed, shared).
    pub fn issues_tokens(&self) -> bool {
        matches!(
            self,
            AuthSpec::AppRole { .. }
                | AuthSpec::VaultJwt { .. }
                | AuthSpec::ServiceAccount { .. }
                | AuthSpec::Metadata { .. }
                | AuthSpec::AwsWebIdentity { .. }
                | AuthSpec::AwsContainer { .. }
                | AuthSpec::AwsInstance { .. }
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
    VaultJwt { jwt: SecretBytes },
    ServiceAccount(service_account::ServiceAccountKey),
    Metadata,
    Aws(sigv4::Credentials),
    AwsWebIdentity { token: SecretBytes },
    AwsContainer { uri: BaseUrl, token: Option<SecretBytes> },
    AwsInstance,
    /// An Entra app registration's client secret.
    AzureClientSecret(SecretBytes),
    AzureManagedIdentity,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Token(_) => f.write_str("Token(<redacted>)"),
            Credential::AppRole { .. } => f.write_str("AppRole(<redacted>)"),
            Credential::VaultJwt { .. } => f.write_str("VaultJwt(<redacted>)"),
            Credential::ServiceAccount(key) => write!(f, "ServiceAccount({key:?})"),
            Credential::Metadata => f.write_str("Metadata"),
            Credential::Aws(_) => f.write_str("Aws(<redacted>)"),
            Credential::AwsWebIdentity { .. } => f.write_str("AwsWebIdentity(<redacted>)"),
            Credential::AwsContainer { uri, .. } => write!(f, "AwsContainer({}, <redacted>)", uri.authority),
            Credential::AwsInstance => f.write_str("AwsInstance"),
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
