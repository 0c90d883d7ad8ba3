//! The fake's Azure side, as Microsoft's public REST documentation describes it:
//!
//! - Key Vault secrets (API 7.4): `GET /secrets/{name}[/{version}]?api-version=7.4` with a
//!   bearer token. `{"value", "contentType", "id", "attributes", "tags"}`; errors
//!   `{"error": {"code", "message"}}`: 404 `SecretNotFound`, 403 `Forbidden`, 429 `Throttled`,
//!   and 401 `Unauthorized` with a `WWW-Authenticate: Bearer authorization=.., resource=..`
//!   challenge (added by the server module, see [`challenge`]).
//! - Microsoft Entra ID's token endpoint: `POST /{tenant}/oauth2/v2.0/token`, a form body
//!   with `grant_type=client_credentials`, `client_id`, `client_secret`, `scope`; OAuth errors
//!   `{"error", "error_description", "error_codes"}` (400 for an unknown tenant or client, 401
//!   `invalid_client` for a wrong secret).
//! - The instance metadata service: `GET /metadata/identity/oauth2/token?api-version=2018-02-01
//!   &resource=..[&client_id=..]`, refused without `Metadata: true`; numbers as strings.

use std::collections::BTreeMap;

use serde_json::json;

use super::{form, Answer, FakeBackend, Store};

/// Where the fake says its vault lives (the `id` URLs' base).
pub const VAULT_BASE: &str = "https://fake.vault.azure.net";
/// The tenant the 401 challenge names.
pub const CHALLENGE_TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

/// One stored version: id (32 lowercase hex), value, content type.
type Version = (String, String, Option<String>);

/// The Azure state: secrets, the token Key Vault expects, and the two token issuers.
#[derive(Default)]
pub(crate) struct Azure {
    /// Lowercased name (Key Vault names are case-insensitive) → versions, oldest first.
    secrets: BTreeMap<String, Vec<Version>>,
    /// Names every token is forbidden to read (403 `Forbidden`).
    forbidden: Vec<String>,
    /// Key Vault requests must carry `Authorization: Bearer <this>`.
    token: Option<String>,
    /// Entra: (tenant, client id, client secret, token issued, expires_in).
    client: Option<(String, String, String, String, u64)>,
    /// IMDS: (client id of a user-assigned identity, token, expires_in).
    identity: Option<(Option<String>, String, u64)>,
    logins: u64,
    imds_fetches: u64,
}

impl Azure {
    pub(super) fn reset_counts(&mut self) {
        (self.logins, self.imds_fetches) = (0, 0);
    }
}

/// Answers the routes above; `None` when the path is none of them.
pub(super) fn answer(store: &mut Store, method: &str, path: &str, query: Option<&str>, body: &[u8], header: impl Fn(&str) -> Option<String>) -> Option<Answer> {
    let azure = &mut store.azure;
    if let Some(rest) = path.strip_prefix("/secrets/") {
        return Some(secret(azure, method, rest, query, header));
    }
    if path == "/metadata/identity/oauth2/token" {
        return Some(imds(azure, method, query, header));
    }
    let tenant = path.strip_prefix('/')?.strip_suffix("/oauth2/v2.0/token")?;
    Some(entra(azure, method, tenant, body, header))
}

/// The `WWW-Authenticate` header Key Vault sends with a 401 on `path`, if it is one of its.
pub(super) fn challenge(path_and_query: &str, status: u16) -> Option<String> {
    (status == 401 && path_and_query.starts_with("/secrets/"))
        .then(|| format!(r#"Bearer authorization="https://login.microsoftonline.com/{CHALLENGE_TENANT}", resource="https://vault.azure.net""#))
}

fn kv_error(status: u16, code: &str, message: &str) -> Answer {
    Answer::json(status, json!({"error": {"code": code, "message": message}}))
}

fn secret(azure: &Azure, method: &str, rest: &str, query: Option<&str>, header: impl Fn(&str) -> Option<String>) -> Answer {
    if let Some(expected) = &azure.token {
        match header("authorization") {
            None => return kv_error(401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token."),
            Some(v) if v.strip_prefix("Bearer ") != Some(expected.as_str()) => {
                return kv_error(401, "Unauthorized", "AKV10032: Invalid issuer. Expected one of https://sts.windows.net/...");
            }
            Some(_) => {}
        }
    }
    if method != "GET" {
        return kv_error(405, "MethodNotAllowed", "The requested method is not allowed.");
    }
    if form::parse(query.unwrap_or("")).get("api-version").map(String::as_str) != Some("7.4") {
        return kv_error(400, "BadParameter", "The specified version of the API is not supported.");
    }
    let (name, version) = match rest.split_once('/') {
        Some((name, version)) => (name, Some(version)),
        None => (rest, None),
    };
    let key = name.to_ascii_lowercase();
    if azure.forbidden.contains(&key) {
        return kv_error(403, "Forbidden", "The user, group or application does not have secrets get permission on key vault 'fake'.");
    }
    let missing = |what: &str| {
        kv_error(404, "SecretNotFound", &format!("A secret with (name/id) {what} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command."))
    };
    let Some(versions) = azure.secrets.get(&key) else { return missing(name) };
    let found = match version {
        None => versions.last(),
        Some(v) => versions.iter().find(|(id, _, _)| id == v),
    };
    let Some((id, value, content_type)) = found else { return missing(rest) };
    Answer::json(
        200,
        json!({
            "value": value,
            "contentType": content_type,
            "id": format!("{VAULT_BASE}/secrets/{name}/{id}"),
            "attributes": {"enabled": true, "created": 1_700_000_000, "updated": 1_700_000_000, "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90},
            "tags": {},
        }),
    )
}

fn oauth_error(status: u16, error: &str, description: &str, code: u64) -> Answer {
    let description = format!("{description}\r\nTrace ID: 0000\r\nCorrelation ID: 1111\r\nTimestamp: 2026-12-05 10:00:00Z");
    Answer::json(status, json!({"error": error, "error_description": description, "error_codes": [code]}))
}

fn entra(azure: &mut Azure, method: &str, tenant: &str, body: &[u8], header: impl Fn(&str) -> Option<String>) -> Answer {
    azure.logins += 1;
    if method != "POST" {
        return oauth_error(405, "invalid_request", "AADSTS900561: The endpoint only accepts POST requests.", 900_561);
    }
    if header("content-type").as_deref() != Some("application/x-www-form-urlencoded") {
        return oauth_error(400, "invalid_request", "AADSTS900144: The request body must contain the following parameter: 'grant_type'.", 900_144);
    }
    let params = form::parse(&String::from_utf8_lossy(body));
    let param = |name: &str| params.get(name).map(String::as_str);
    let Some((expected_tenant, client_id, secret, token, expires_in)) = &azure.client else {
        return oauth_error(400, "invalid_request", &format!("AADSTS90002: Tenant '{tenant}' not found."), 90_002);
    };
    if param("grant_type") != Some("client_credentials") {
        return oauth_error(400, "unsupported_grant_type", "AADSTS70003: The app requested an unsupported grant type.", 70_003);
    }
    if param("scope") != Some("https://vault.azure.net/.default") {
        return oauth_error(400, "invalid_scope", "AADSTS70011: The provided value for the input parameter 'scope' is not valid.", 70_011);
    }
    if tenant != expected_tenant {
        return oauth_error(400, "invalid_request", &format!("AADSTS90002: Tenant '{tenant}' not found."), 90_002);
    }
    if param("client_id") != Some(client_id.as_str()) {
        return oauth_error(400, "unauthorized_client", "AADSTS700016: Application was not found in the directory.", 700_016);
    }
    if param("client_secret") != Some(secret.as_str()) {
        return oauth_error(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.", 7_000_215);
    }
    Answer::json(200, json!({"token_type": "Bearer", "expires_in": expires_in, "ext_expires_in": expires_in, "access_token": token}))
}

fn imds(azure: &mut Azure, method: &str, query: Option<&str>, header: impl Fn(&str) -> Option<String>) -> Answer {
    azure.imds_fetches += 1;
    let bad = |description: &str| Answer::json(400, json!({"error": "invalid_request", "error_description": description}));
    if method != "GET" {
        return Answer::json(405, json!({"error": "method_not_allowed"}));
    }
    if header("metadata").as_deref() != Some("true") {
        return bad("Required metadata header not specified");
    }
    let params = form::parse(query.unwrap_or(""));
    if params.get("api-version").map(String::as_str) != Some("2018-02-01") {
        return bad("Invalid API version");
    }
    if params.get("resource").map(String::as_str) != Some("https://vault.azure.net") {
        return Answer::json(400, json!({"error": "invalid_resource", "error_description": "AADSTS500011: The resource principal was not found."}));
    }
    let Some((identity_client, token, expires_in)) = &azure.identity else { return bad("Identity not found") };
    if params.get("client_id") != identity_client.as_ref() {
        return bad("Identity not found");
    }
    Answer::json(
        200,
        json!({
            "access_token": token, "client_id": identity_client.clone().unwrap_or_else(|| "system".into()),
            "expires_in": expires_in.to_string(), "expires_on": "1506484173", "ext_expires_in": expires_in.to_string(),
            "not_before": "1506397473", "resource": "https://vault.azure.net", "token_type": "Bearer",
        }),
    )
}

impl FakeBackend {
    /// Stores a new version of Key Vault secret `name` (the newest is `latest`); `version` is
    /// its id (32 lowercase hex).
    pub fn put_azure(&self, name: &str, version: &str, value: &str, content_type: Option<&str>) {
        assert!(version.len() == 32 && version.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "put_azure: versions are 32 lowercase hex");
        let mut state = self.shared.state();
        let versions = state.store.azure.secrets.entry(name.to_ascii_lowercase()).or_default();
        versions.push((version.to_string(), value.to_string(), content_type.map(str::to_string)));
    }

    /// Every read of `name` gets 403 `Forbidden` (no access policy for it).
    pub fn forbid_azure(&self, name: &str) {
        self.shared.state().store.azure.forbidden.push(name.to_ascii_lowercase());
    }

    /// Key Vault requests must carry `Authorization: Bearer token`, or get 401 with a challenge.
    pub fn expect_azure_token(&self, token: &str) {
        self.shared.state().store.azure.token = Some(token.to_string());
    }

    /// Entra ID issues `token` (valid `expires_in` s) to `client_id` of `tenant` presenting
    /// `secret` (client credentials).
    pub fn enable_entra(&self, tenant: &str, client_id: &str, secret: &str, token: &str, expires_in: u64) {
        self.shared.state().store.azure.client = Some((tenant.into(), client_id.into(), secret.into(), token.into(), expires_in));
    }

    /// IMDS issues `token` (valid `expires_in` s) to the system-assigned identity (`client_id`
    /// `None`) or the user-assigned one with that client id.
    pub fn enable_imds(&self, client_id: Option<&str>, token: &str, expires_in: u64) {
        self.shared.state().store.azure.identity = Some((client_id.map(str::to_string), token.into(), expires_in));
    }

    /// Token requests the Entra endpoint received.
    pub fn entra_logins(&self) -> u64 {
        self.shared.state().store.azure.logins
    }

    /// Token requests the IMDS endpoint received.
    pub fn imds_fetches(&self) -> u64 {
        self.shared.state().store.azure.imds_fetches
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_challenge_is_only_on_key_vault_401s() {
        assert!(challenge("/secrets/db?api-version=7.4", 401).unwrap().contains("resource=\"https://vault.azure.net\""));
        assert!(challenge("/secrets/db?api-version=7.4", 403).is_none());
        assert!(challenge("/metadata/identity/oauth2/token", 401).is_none());
    }
}
