//! The Azure auth methods of a tier's `auth` object (kept apart from
//! `config::auth`, which they extend, so each method family reads on its own):
//!
//! - `azure_client_secret`: `tenant`, `client_id`, `client_secret_key` (the
//!   config key holding the secret), optional `authority` (a sovereign cloud,
//!   or a test server);
//! - `azure_managed_identity`: optional `url` (the IMDS) and `client_id` (a
//!   user-assigned identity).

use crate::prelude::*;

use super::auth::required_key;
use super::reader::Obj;
use crate::auth::azure::{is_id, DEFAULT_AUTHORITY, DEFAULT_IMDS_URL};
use crate::auth::AuthSpec;
use crate::http::BaseUrl;

/// Reads the rest of an `auth` object whose `method` is one of the two above.
pub(super) fn parse_method(auth: &mut Obj<'_>, method: &str) -> Result<AuthSpec, String> {
    let client_id = match auth.string("client_id")? {
        Some(id) if !is_id(id) => return Err(format!("{}: must be a GUID or name of 1-128 [A-Za-z0-9.-]", auth.path_of("client_id"))),
        other => other.map(str::to_string),
    };
    if method == "azure_managed_identity" {
        let url = url(auth, "url", DEFAULT_IMDS_URL)?;
        return Ok(AuthSpec::AzureManagedIdentity { url, client_id });
    }
    let client_id = client_id.ok_or_else(|| format!("{}: is required for azure_client_secret", auth.path_of("client_id")))?;
    let tenant = auth.required_string("tenant")?;
    if !is_id(tenant) {
        return Err(format!("{}: must be a tenant GUID or domain of 1-128 [A-Za-z0-9.-]", auth.path_of("tenant")));
    }
    let tenant = tenant.to_string();
    let client_secret_key = required_key(auth, "client_secret_key")?;
    let authority = url(auth, "authority", DEFAULT_AUTHORITY)?;
    Ok(AuthSpec::AzureClientSecret { tenant, client_id, client_secret_key, authority })
}

fn url(auth: &mut Obj<'_>, name: &'static str, default: &str) -> Result<BaseUrl, String> {
    let text = auth.string(name)?.unwrap_or(default);
    BaseUrl::parse(text).map_err(|why| format!("{}: {why}", auth.path_of(name)))
}

#[cfg(test)]
mod tests {
    use alloc::collections::BTreeMap;

    use crate::auth::{AuthSpec, Credential};
    use crate::config::{load, parse_document, parse_policy, BackendSpec, ReservedKeys, POLICY_KEY};
    use crate::http::BaseUrl;

    fn tier(fields: &str) -> String {
        format!(r#"{{"environments":{{"prod":{{"backend":"azure","url":"https://v.vault.azure.net",{fields}}}}}}}"#)
    }

    const CLIENT: &str = r#""auth":{"method":"azure_client_secret","tenant":"contoso.onmicrosoft.com","client_id":"0000-aaaa","client_secret_key":"azure_secret"}"#;

    fn source(policy: &str, creds: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut m: BTreeMap<String, String> = creds.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        m.insert(POLICY_KEY.to_string(), policy.to_string());
        m
    }

    #[test]
    fn client_secret_reads_its_keys_and_defaults_the_authority() {
        let envs = load(&source(&tier(CLIENT), &[("azure_secret", "Qm~8Q~SECRET")])).unwrap();
        assert_eq!(envs[0].spec.primary().backend, BackendSpec::Azure);
        assert_eq!(
            envs[0].spec.primary().auth,
            AuthSpec::AzureClientSecret {
                tenant: "contoso.onmicrosoft.com".into(),
                client_id: "0000-aaaa".into(),
                client_secret_key: "azure_secret".into(),
                authority: BaseUrl::parse("https://login.microsoftonline.com").unwrap(),
            }
        );
        assert!(matches!(envs[0].credential(0).unwrap(), Credential::AzureClientSecret(s) if s.expose() == b"Qm~8Q~SECRET"));
        assert!(!format!("{:?}", envs[0]).contains("SECRET"));
        let err = load(&source(&tier(CLIENT), &[])).unwrap_err().message;
        assert_eq!(err, "environments.prod.auth.client_secret_key: config key `azure_secret` is not set");
        let sovereign = tier(&CLIENT.replace("}", r#","authority":"https://login.microsoftonline.us"}"#));
        let spec = parse_policy(&sovereign).unwrap();
        assert!(matches!(&spec[0].primary().auth, AuthSpec::AzureClientSecret { authority, .. } if authority.authority == "login.microsoftonline.us"));
    }

    #[test]
    fn the_client_secret_key_is_reserved_from_apps() {
        let doc = parse_document(&tier(CLIENT)).unwrap();
        assert!(ReservedKeys::new(&doc.environments, None).contains("azure_secret"));
        let mapped = tier(CLIENT).replacen('{', r#"{"config":{"azure_secret":{"environment":"prod","name":"db"}},"#, 1);
        assert!(parse_document(&mapped).unwrap_err().contains("config.azure_secret"), "a credential key cannot be mapped");
    }

    #[test]
    fn managed_identity_defaults_the_imds_url_and_takes_a_client_id() {
        let spec = parse_policy(&tier(r#""auth":{"method":"azure_managed_identity"}"#)).unwrap();
        assert_eq!(spec[0].primary().auth, AuthSpec::AzureManagedIdentity { url: BaseUrl::parse("http://169.254.169.254").unwrap(), client_id: None });
        let user = parse_policy(&tier(r#""auth":{"method":"azure_managed_identity","url":"http://127.0.0.1:9","client_id":"abc-1"}"#)).unwrap();
        assert!(matches!(&user[0].primary().auth, AuthSpec::AzureManagedIdentity { client_id: Some(id), .. } if id == "abc-1"));
        let envs = load(&source(&tier(r#""auth":{"method":"azure_managed_identity"}"#), &[])).unwrap();
        assert!(matches!(*envs[0].credential(0).unwrap(), Credential::AzureManagedIdentity));
    }

    #[test]
    fn bad_azure_settings_are_named() {
        let error = |fields: &str| parse_policy(&tier(fields)).unwrap_err();
        for (fields, expected) in [
            (CLIENT.replace("contoso.onmicrosoft.com", "a/b"), "environments.prod.auth.tenant: must be a tenant GUID"),
            (CLIENT.replace("0000-aaaa", "a?b"), "environments.prod.auth.client_id: must be a GUID"),
            (CLIENT.replace(r#","client_id":"0000-aaaa""#, ""), "environments.prod.auth.client_id: is required for azure_client_secret"),
            (CLIENT.replace("azure_secret", "Azure-Secret"), "environments.prod.auth.client_secret_key: must be a config key"),
            (CLIENT.replace("}", r#","authority":"ftp://x"}"#), "environments.prod.auth.authority: "),
            (CLIENT.replace("}", r#","mount":"x"}"#), "environments.prod.auth.mount: unknown key"),
            (r#""auth":{"method":"azure_managed_identity","url":"gopher://x"}"#.into(), "environments.prod.auth.url: "),
            (r#""auth":{"method":"aws_keys","access_key_id_key":"a","secret_access_key_key":"b"}"#.into(), "the azure backend takes `token_key` or auth method `azure_client_secret`"),
            (r#""token_key":"t","project":"p""#.into(), "do not apply to the azure backend"),
            (r#""token_key":"t","region":"us-east-1""#.into(), "environments.prod.region: only applies to the aws backend"),
        ] {
            let got = error(&fields);
            assert!(got.contains(expected), "{fields}: {got}");
        }
        // The Azure methods are Azure's only.
        let vault = r#"{"environments":{"prod":{"backend":"vault","url":"http://v","auth":{"method":"azure_managed_identity"}}}}"#;
        assert!(parse_policy(vault).unwrap_err().contains("the vault backend takes"));
        // A static token is fine too (one obtained elsewhere).
        assert_eq!(parse_policy(&tier(r#""token_key":"t""#)).unwrap()[0].primary().auth, AuthSpec::Token { key: "t".into() });
    }
}
