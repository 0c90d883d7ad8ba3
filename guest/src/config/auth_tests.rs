//! The `auth` part of a tier: methods per backend, their keys, and loading
//! their material with errors that name the key and never the value.

use alloc::collections::BTreeMap;

use super::*;
use crate::auth::{AuthSpec, Credential};

fn source(policy: &str, creds: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert(POLICY_KEY.to_string(), policy.to_string());
    for (k, v) in creds {
        m.insert(k.to_string(), v.to_string());
    }
    m
}

fn tier(fields: &str) -> String {
    format!(r#"{{"environments":{{"prod":{{"url":"http://127.0.0.1:8200",{fields}}}}}}}"#)
}

fn error(fields: &str) -> String {
    parse_policy(&tier(fields)).unwrap_err()
}

const APPROLE: &str = r#""backend":"vault","namespace":"team-a","auth":{"method":"approle","role_id_key":"role","secret_id_key":"sid"}"#;
const AWS: &str = r#""backend":"aws","region":"us-east-1","auth":{"method":"aws_keys","access_key_id_key":"ak","secret_access_key_key":"sk","session_token_key":"st"}"#;

#[test]
fn approle_reads_its_keys_and_defaults_the_mount() {
    let envs = load(&source(&tier(APPROLE), &[("role", "r-1"), ("sid", "s-1")])).unwrap();
    let spec = &envs[0].spec.primary().auth;
    assert_eq!(spec, &AuthSpec::AppRole { role_id_key: "role".into(), secret_id_key: "sid".into(), mount: "approle".into() });
    assert!(matches!(envs[0].credential(0).unwrap(), Credential::AppRole { role_id, secret_id } if role_id.expose() == b"r-1" && secret_id.expose() == b"s-1"));
    let custom = tier(r#""backend":"vault","auth":{"method":"approle","role_id_key":"role","secret_id_key":"sid","mount":"edge/approle"}"#);
    let envs = load(&source(&custom, &[("role", "r"), ("sid", "s")])).unwrap();
    assert!(matches!(&envs[0].spec.primary().auth, AuthSpec::AppRole { mount, .. } if mount == "edge/approle"));
    let err = load(&source(&tier(APPROLE), &[("role", "r-1")])).unwrap_err().message;
    assert_eq!(err, "environments.prod.auth.secret_id_key: config key `sid` is not set");
}

#[test]
fn aws_needs_a_region_and_keys_and_checks_the_access_key_shape() {
    let creds = [("ak", "AKIAIOSFODNN7EXAMPLE"), ("sk", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"), ("st", "FwoGZXIvYXdzEXAMPLE")];
    let envs = load(&source(&tier(AWS), &creds)).unwrap();
    assert_eq!(envs[0].spec.primary().backend, BackendSpec::Aws { region: "us-east-1".into() });
    match envs[0].credential(0).unwrap() {
        Credential::Aws(keys) => {
            assert_eq!(keys.access_key_id, "AKIAIOSFODNN7EXAMPLE");
            assert_eq!(keys.session_token.as_deref(), Some("FwoGZXIvYXdzEXAMPLE"));
        }
        other => panic!("not aws keys: {other:?}"),
    }
    let shown = format!("{:?}", envs[0]);
    assert!(!shown.contains("wJalr") && !shown.contains("FwoG"), "{shown}");
    let bad = [("ak", "akia-lower"), ("sk", "wJalrXUtnFEMI"), ("st", "x")];
    let err = load(&source(&tier(AWS), &bad)).unwrap_err().message;
    assert!(err.starts_with("environments.prod.auth.access_key_id_key: config key `ak` is not an AWS access key id"), "{err}");
    let no_token = tier(r#""backend":"aws","region":"eu-west-2","auth":{"method":"aws_keys","access_key_id_key":"ak","secret_access_key_key":"sk"}"#);
    let envs = load(&source(&no_token, &creds[..2])).unwrap();
    assert!(matches!(envs[0].credential(0).unwrap(), Credential::Aws(keys) if keys.session_token.is_none()));
    assert_eq!(error(r#""backend":"aws","auth":{"method":"aws_keys","access_key_id_key":"ak","secret_access_key_key":"sk"}"#), "environments.prod.region: is required for the aws backend");
    for region in ["US-EAST-1", "us-east", "us--1", "us-east-x"] {
        let fields = AWS.replace("us-east-1", region);
        assert_eq!(error(&fields), "environments.prod.region: must be an AWS region like `us-east-1`", "{region}");
    }
    assert_eq!(error(r#""backend":"vault","token_key":"t","region":"us-east-1""#), "environments.prod.region: only applies to the aws backend");
}

#[test]
fn gcp_takes_a_token_a_service_account_or_the_metadata_server() {
    let metadata = tier(r#""backend":"gcp","project":"p","auth":{"method":"metadata"}"#);
    let envs = load(&source(&metadata, &[])).unwrap();
    assert!(matches!(&envs[0].spec.primary().auth, AuthSpec::Metadata { url } if url.authority == "metadata.google.internal"));
    let custom = tier(r#""backend":"gcp","project":"p","auth":{"method":"metadata","url":"http://127.0.0.1:9"}"#);
    assert!(matches!(&parse_policy(&custom).unwrap()[0].primary().auth, AuthSpec::Metadata { url } if url.authority == "127.0.0.1:9"));
    assert_eq!(error(r#""backend":"gcp","project":"p","auth":{"method":"metadata","url":"gopher://x"}"#), "environments.prod.auth.url: must start with http:// or https://");
    let sa = tier(r#""backend":"gcp","project":"p","auth":{"method":"service_account","key_key":"sa_key"}"#);
    let err = load(&source(&sa, &[("sa_key", "{\"private_key\": \"-----BEGIN PRIVATE KEY-----\\nMIIEv\"}")])).unwrap_err().message;
    assert!(err.starts_with("environments.prod.auth.key_key: config key `sa_key` is not a usable service-account key: "), "{err}");
    assert!(!err.contains("MIIEv"), "{err}");
}

#[test]
fn methods_must_fit_their_backend_and_exactly_one_credential_is_named() {
    assert_eq!(
        error(r#""backend":"aws","region":"us-east-1","token_key":"t""#),
        "environments.prod: the aws backend takes auth method `aws_keys`, `aws_web_identity`, `aws_container` or `aws_instance`, not `token`"
    );
    assert_eq!(
        error(r#""backend":"gcp","project":"p","auth":{"method":"approle","role_id_key":"r","secret_id_key":"s"}"#),
        "environments.prod: the gcp backend takes `token_key` or auth method `service_account` or `metadata`, not `approle`"
    );
    assert_eq!(
        error(r#""backend":"vault","auth":{"method":"metadata"}"#),
        "environments.prod: the vault backend takes `token_key` or auth method `approle`, `kubernetes` or `jwt`, not `metadata`"
    );
    assert_eq!(error(r#""backend":"vault""#), "environments.prod: needs `token_key` or `auth`");
    assert_eq!(error(&format!(r#""token_key":"t",{APPROLE}"#)), "environments.prod: set `token_key` or `auth`, not both");
    assert_eq!(
        error(r#""backend":"vault","auth":{"method":"kerberos"}"#),
        "environments.prod.auth.method: must be `approle`, `kubernetes`, `jwt`, `service_account`, `metadata`, `aws_keys`, `aws_web_identity`, `aws_container`, `aws_instance`, `azure_client_secret` or `azure_managed_identity`, got \"kerberos\""
    );
    assert_eq!(
        error(r#""backend":"vault","auth":{"method":"approle","role_id_key":"r","secret_id_key":"s","secret_id":"inline"}"#),
        "environments.prod.auth.secret_id: unknown key (expected one of: method, mount, role_id_key, secret_id_key)"
    );
    assert_eq!(
        error(r#""backend":"vault","auth":{"method":"approle","role_id_key":"Bad","secret_id_key":"s"}"#),
        "environments.prod.auth.role_id_key: must be a config key matching [a-z][a-z0-9_]*"
    );
}

#[test]
fn fallback_tiers_name_their_own_credential_keys() {
    let doc = r#"{"environments":{"prod":{"backend":"vault","url":"http://a","token_key":"t",
        "fallbacks":[{"backend":"aws","url":"http://b","region":"us-east-1","auth":{"method":"aws_keys","access_key_id_key":"ak","secret_access_key_key":"sk"}}]}}}"#;
    let err = load(&source(doc, &[("t", "x"), ("ak", "AKIAIOSFODNN7EXAMPLE")])).unwrap_err().message;
    assert_eq!(err, "environments.prod.fallbacks.0.auth.secret_access_key_key: config key `sk` is not set");
    let specs = parse_policy(doc).unwrap();
    let keys = auth::credential_keys(&specs[0].tiers[1].auth);
    assert_eq!(keys, [("auth.access_key_id_key", "ak"), ("auth.secret_access_key_key", "sk")]);
}

#[test]
fn kubernetes_and_jwt_logins_read_a_role_and_a_jwt_key_and_default_their_mounts() {
    const JWT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhcHAifQ.c2ln";
    let k8s = tier(r#""backend":"vault","auth":{"method":"kubernetes","role":"app","jwt_key":"sa_token"}"#);
    let envs = load(&source(&k8s, &[("sa_token", JWT)])).unwrap();
    assert_eq!(
        envs[0].spec.primary().auth,
        AuthSpec::VaultJwt { kubernetes: true, role: "app".into(), jwt_key: "sa_token".into(), mount: "kubernetes".into() }
    );
    assert!(matches!(envs[0].credential(0).unwrap(), Credential::VaultJwt { jwt } if jwt.expose() == JWT.as_bytes()));
    assert_eq!(format!("{:?}", *envs[0].credential(0).unwrap()), "VaultJwt(<redacted>)");
    let jwt = tier(r#""backend":"vault","auth":{"method":"jwt","role":"ci","jwt_key":"oidc","mount":"jwt/github"}"#);
    let envs = load(&source(&jwt, &[("oidc", JWT)])).unwrap();
    assert!(matches!(&envs[0].spec.primary().auth, AuthSpec::VaultJwt { kubernetes: false, mount, .. } if mount == "jwt/github"));
    assert_eq!(envs[0].spec.primary().auth.method(), "jwt");

    let not_a_jwt = load(&source(&k8s, &[("sa_token", "s3cr3t-not-a-jwt")])).unwrap_err().message;
    assert_eq!(not_a_jwt, "environments.prod.auth.jwt_key: config key `sa_token` is not a JWT (three dot-separated parts)");
    assert!(error(r#""backend":"vault","auth":{"method":"kubernetes","role":"a b","jwt_key":"t"}"#).ends_with("auth.role: must be a Vault role name (1-128 of A-Z, a-z, 0-9, `_-.@`)"));
    assert!(error(r#""backend":"vault","auth":{"method":"jwt","jwt_key":"t"}"#).ends_with("auth.role: is required"));
    assert!(error(r#""backend":"gcp","project":"p","auth":{"method":"kubernetes","role":"a","jwt_key":"t"}"#).contains("not `kubernetes`"));
}

#[test]
fn aws_web_identity_and_container_credentials_read_their_keys() {
    const JWT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhcHAifQ.c2ln";
    let web = tier(r#""backend":"aws","region":"eu-west-1","auth":{"method":"aws_web_identity","role_arn":"arn:aws:iam::123456789012:role/app","token_key":"oidc_token"}"#);
    let envs = load(&source(&web, &[("oidc_token", JWT)])).unwrap();
    assert_eq!(
        envs[0].spec.primary().auth,
        AuthSpec::AwsWebIdentity { role_arn: "arn:aws:iam::123456789012:role/app".into(), session_name: "edge-secrets".into(), token_key: "oidc_token".into(), sts_url: None }
    );
    assert!(matches!(envs[0].credential(0).unwrap(), Credential::AwsWebIdentity { token } if token.expose() == JWT.as_bytes()));
    let container = tier(r#""backend":"aws","region":"eu-west-1","auth":{"method":"aws_container","uri_key":"creds_uri","auth_token_key":"creds_token"}"#);
    let envs = load(&source(&container, &[("creds_uri", "http://169.254.170.23/v1/credentials"), ("creds_token", "pod-token")])).unwrap();
    assert!(matches!(envs[0].credential(0).unwrap(), Credential::AwsContainer { uri, token: Some(t) } if uri.prefix == "/v1/credentials" && t.expose() == b"pod-token"));
    assert_eq!(format!("{:?}", *envs[0].credential(0).unwrap()), "AwsContainer(169.254.170.23, <redacted>)");

    let bad_uri = load(&source(&container, &[("creds_uri", "ftp://x"), ("creds_token", "t")])).unwrap_err().message;
    assert!(bad_uri.starts_with("environments.prod.auth.uri_key: config key `creds_uri`: "), "{bad_uri}");
    for (arn, why) in [("arn:aws:iam::123:role/app", "short account"), ("arn:aws:iam::123456789012:user/app", "a user"), ("role/app", "no ARN")] {
        let err = error(&format!(r#""backend":"aws","region":"eu-west-1","auth":{{"method":"aws_web_identity","role_arn":"{arn}","token_key":"t"}}"#));
        assert!(err.ends_with("auth.role_arn: must be an IAM role ARN like `arn:aws:iam::123456789012:role/name`"), "{why}: {err}");
    }
}
