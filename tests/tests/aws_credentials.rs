//! AWS credentials the component obtains itself, through the real component: a web identity
//! token exchanged at STS (`AssumeRoleWithWebIdentity`, on the loopback fake, which follows
//! AWS's documented request and answer) and the container credentials endpoint (ECS / EKS Pod
//! Identity, also on the fake). Both hand out real temporary credentials moto issued, so each
//! read that follows is SigV4-checked by moto, session token included.

use edge_secrets_host::{Request, Runtime, SecretError};
use edge_secrets_tests::harness::{quick_defaults, secret_error, test_options};
use edge_secrets_tests::moto::{SecretValue, ACCOUNT, REGION};
use edge_secrets_tests::{FakeBackend, Moto};
use serde_json::json;

const KEY: &str = "3c1d0e9f8a7b6c5d4e3f2a1b0c8d1b0c4f9e2a7d3b5c6e1f0a9b8c7d6e5f4a2b";
const JWT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6YXBwIn0.SENTINEL-irsa-3301";

/// A runtime whose environment `prod` reads moto with `auth` (credentials: `creds`).
fn runtime(auth: serde_json::Value, creds: &[(&str, &str)]) -> Runtime {
    let moto = Moto::shared();
    let keys = moto.keys();
    let policy = quick_defaults()
        .aws("prod", &moto.url(), REGION, &keys.access_key_id, &keys.secret_access_key, None)
        .auth("prod", auth, creds)
        .shared(KEY);
    Runtime::new(policy.config(), test_options()).expect("start the component")
}

/// Creates `secret` (holding `value`) in the shared moto and returns temporary credentials for a
/// new role allowed to read it: what the fake endpoints hand out.
fn temporary_credentials_reading(secret: &str, value: &str, role: &str) -> (String, String, String) {
    let moto = Moto::shared();
    moto.create_secret(secret, SecretValue::Text(value));
    let keys = moto.assume_role(role);
    (keys.access_key_id, keys.secret_access_key, keys.session_token.expect("assumed roles have a session token"))
}

#[test]
fn a_web_identity_is_exchanged_once_at_sts_and_its_credentials_sign_the_reads() {
    let moto = Moto::shared();
    for name in ["irsa/a", "irsa/b", "irsa/c"] {
        moto.create_secret(name, SecretValue::Text("pw-irsa"));
    }
    let temporary = moto.assume_role("edge-irsa");
    let sts = FakeBackend::start();
    let role = format!("arn:aws:iam::{ACCOUNT}:role/app");
    sts.enable_sts_web_identity(&role, JWT, (&temporary.access_key_id, &temporary.secret_access_key, temporary.session_token.as_deref().unwrap()));
    let auth = json!({"method": "aws_web_identity", "role_arn": role, "token_key": "irsa_token", "sts_url": sts.url()});
    let runtime = runtime(auth, &[("irsa_token", JWT)]);
    // Each fresh instance reads a secret of its own: each signs a request to moto.
    for name in ["irsa/a", "irsa/b", "irsa/c"] {
        let secret = runtime.client().unwrap().get(&Request::new("prod", name)).unwrap();
        assert_eq!(secret.value.expose(), b"pw-irsa");
    }
    assert_eq!(sts.aws_credential_fetches(), (1, 0), "three fresh instances, one exchange (shared state)");
    let recorded = sts.requests();
    assert_eq!((recorded[0].method.as_str(), recorded[0].path_and_query.as_str()), ("POST", "/"));
    assert_eq!(recorded[0].header("content-type"), Some("application/x-www-form-urlencoded"));
    assert!(recorded[0].header("authorization").is_none(), "AssumeRoleWithWebIdentity is unsigned");
}

#[test]
fn a_web_identity_sts_refuses_is_permission_denied_and_never_shown() {
    let sts = FakeBackend::start();
    let role = format!("arn:aws:iam::{ACCOUNT}:role/app");
    sts.enable_sts_web_identity(&role, "eyJ.other.token", ("ASIAUNUSED0000000", "unused", "unused"));
    let auth = json!({"method": "aws_web_identity", "role_arn": role, "token_key": "irsa_token", "sts_url": sts.url()});
    let mut client = runtime(auth, &[("irsa_token", JWT)]).client().unwrap();
    let err = secret_error(client.get(&Request::new("prod", "irsa/none")));
    assert!(matches!(&err, SecretError::PermissionDenied(m) if m.contains("InvalidIdentityToken") && !m.contains("SENTINEL")), "{err:?}");
    assert!(matches!(secret_error(client.get(&Request::new("prod", "irsa/none"))), SecretError::PermissionDenied(_)));
    assert_eq!(sts.aws_credential_fetches().0, 1, "a refused exchange is not sent again within the back-off");
}

#[test]
fn container_credentials_are_fetched_with_the_endpoint_token_and_sign_the_reads() {
    let (id, secret, session) = temporary_credentials_reading("pod/db", "pw-pod", "edge-pod");
    let endpoint = FakeBackend::start();
    endpoint.enable_container_credentials("pod-token-7", (&id, &secret, &session));
    let uri = format!("{}/v1/credentials", endpoint.url());
    let auth = json!({"method": "aws_container", "uri_key": "container_uri", "auth_token_key": "container_token"});
    let mut client = runtime(auth, &[("container_uri", &uri), ("container_token", "pod-token-7")]).client().unwrap();
    assert_eq!(client.get(&Request::new("prod", "pod/db")).unwrap().value.expose(), b"pw-pod");
    assert_eq!(endpoint.aws_credential_fetches(), (0, 1));
    assert_eq!(endpoint.requests()[0].header("authorization"), Some("pod-token-7"));
}

#[test]
fn the_instance_role_is_read_from_imdsv2_with_a_session_token() {
    let (id, secret, session) = temporary_credentials_reading("ec2/db", "pw-ec2", "edge-ec2");
    let imds = FakeBackend::start();
    imds.enable_ec2_imds("web-role", (&id, &secret, &session));
    let auth = json!({"method": "aws_instance", "url": imds.url()});
    let mut client = runtime(auth, &[]).client().unwrap();
    assert_eq!(client.get(&Request::new("prod", "ec2/db")).unwrap().value.expose(), b"pw-ec2");
    let asked: Vec<(String, String)> = imds.requests().iter().map(|r| (r.method.clone(), r.path_and_query.clone())).collect();
    let expected = [("PUT", "/latest/api/token"), ("GET", "/latest/meta-data/iam/security-credentials/"), ("GET", "/latest/meta-data/iam/security-credentials/web-role")];
    assert_eq!(asked, expected.map(|(m, p)| (m.to_string(), p.to_string())), "IMDSv2: a session token first, never IMDSv1");
}
