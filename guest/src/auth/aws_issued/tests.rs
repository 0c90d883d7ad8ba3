use super::*;
use crate::http::Method;

const NOW_MS: u64 = 1_764_930_000_000; // 2025-12-05T10:20:00Z
const JWT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyZXBvOm9yZy9hcHAifQ.SIG-SENTINEL-55";

fn resp(status: u16, body: &str) -> HttpResponse {
    HttpResponse { status, headers: vec![], body: body.as_bytes().to_vec() }
}

fn sts_ok(expiration: &str) -> String {
    format!(
        r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleWithWebIdentityResult>
        <Credentials><SessionToken>FwoGZ&amp;session</SessionToken><SecretAccessKey>wJalr/SECRET+key</SecretAccessKey>
        <Expiration>{expiration}</Expiration><AccessKeyId>ASIAEXAMPLE123456</AccessKeyId></Credentials>
        </AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"#
    )
}

#[test]
fn the_web_identity_request_is_an_unsigned_form_post_with_the_role_and_the_jwt() {
    let sts = BaseUrl::parse("https://sts.eu-west-1.amazonaws.com").unwrap();
    let r = web_identity_request(&sts, "arn:aws:iam::123456789012:role/app", "edge secrets", &SecretBytes::new(JWT.as_bytes().to_vec()));
    assert_eq!((r.method, r.path_and_query.as_str()), (Method::Post, "/"));
    let body = String::from_utf8(r.body.clone()).unwrap();
    assert_eq!(
        body,
        format!("Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fapp&RoleSessionName=edge%20secrets&WebIdentityToken={JWT}&DurationSeconds=3600")
    );
    assert!(!r.headers.iter().any(|(n, _)| n == "authorization"), "AssumeRoleWithWebIdentity is not signed");
    assert!(!format!("{r:?}").contains("SENTINEL"), "Debug shows no token");
}

#[test]
fn sts_credentials_become_a_token_that_decodes_back_and_lives_until_the_expiration() {
    let issued = web_identity_response(&resp(200, &sts_ok("2025-12-05T11:20:00Z")), None, NOW_MS).unwrap();
    assert_eq!((issued.ttl_ms, issued.renewable), (3_600_000, false));
    let credentials = decode(&issued.token).unwrap();
    assert_eq!(credentials.access_key_id, "ASIAEXAMPLE123456");
    assert_eq!(credentials.secret_access_key, "wJalr/SECRET+key");
    assert_eq!(credentials.session_token.as_deref(), Some("FwoGZ&session"), "entities decoded");
    assert!(decode(&SecretBytes::new(b"hvs.vault-token".to_vec())).is_none(), "other tokens are not AWS credentials");
    // Fractional seconds, and a far expiry capped at 12 h.
    assert!(web_identity_response(&resp(200, &sts_ok("2025-12-05T11:20:00.123Z")), None, NOW_MS).is_ok());
    assert_eq!(web_identity_response(&resp(200, &sts_ok("2030-01-01T00:00:00Z")), None, NOW_MS).unwrap().ttl_ms, 12 * 3_600_000);
}

#[test]
fn unusable_answers_are_malformed_and_refusals_are_permission_denied() {
    for bad in [sts_ok("2025-12-05T10:00:00Z"), sts_ok("tomorrow"), sts_ok("2025-13-05T10:00:00Z"), "<Credentials></Credentials>".to_string(), sts_ok("2025-12-05T11:20:00Z").replace("ASIAEXAMPLE123456", "")] {
        let failure = web_identity_response(&resp(200, &bad), None, NOW_MS).unwrap_err();
        assert!(!failure.transient && matches!(failure.error, Error::Backend { .. }), "{failure:?}");
    }
    let refused = r#"<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code><Message>No OpenIDConnect provider found</Message></Error></ErrorResponse>"#;
    let failure = web_identity_response(&resp(400, refused), None, NOW_MS).unwrap_err();
    assert!(matches!(&failure.error, Error::PermissionDenied(m) if m.contains("InvalidIdentityToken")), "{failure:?}");
    assert!(!failure.transient);
    let throttled = r#"<ErrorResponse><Error><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>"#;
    assert!(web_identity_response(&resp(400, throttled), Some(1_000), NOW_MS).unwrap_err().transient);
    assert!(web_identity_response(&resp(503, "<html>"), None, NOW_MS).unwrap_err().transient);
}

#[test]
fn the_container_endpoint_is_read_with_its_token_and_answers_json() {
    let uri = BaseUrl::parse("http://169.254.170.23/v1/credentials").unwrap();
    let r = container_request(&uri, Some(&SecretBytes::new(b"pod-token-SENTINEL".to_vec())));
    assert_eq!((r.method, r.authority.as_str(), r.path_and_query.as_str()), (Method::Get, "169.254.170.23", "/v1/credentials"));
    assert!(r.headers.iter().any(|(n, v)| n == "authorization" && v == b"pod-token-SENTINEL"));
    assert!(!format!("{r:?}").contains("SENTINEL"));
    let body = r#"{"AccessKeyId":"ASIACONTAINER1234","SecretAccessKey":"s3cr3t","Token":"tok","Expiration":"2025-12-05T10:50:00Z"}"#;
    let issued = container_response(&resp(200, body), None, NOW_MS).unwrap();
    assert_eq!(issued.ttl_ms, 1_800_000);
    assert_eq!(decode(&issued.token).unwrap().session_token.as_deref(), Some("tok"));
    assert!(matches!(container_response(&resp(403, ""), None, NOW_MS).unwrap_err().error, Error::PermissionDenied(_)));
    assert!(container_response(&resp(500, ""), None, NOW_MS).unwrap_err().transient);
    assert!(!container_response(&resp(200, r#"{"AccessKeyId":1}"#), None, NOW_MS).unwrap_err().transient);
}

#[test]
fn imdsv2_asks_for_a_session_token_then_presents_it() {
    let imds = BaseUrl::parse("http://169.254.169.254").unwrap();
    let put = imds_token_request(&imds);
    assert_eq!((put.method, put.path_and_query.as_str()), (Method::Put, "/latest/api/token"));
    assert!(put.headers.iter().any(|(n, v)| n == "x-aws-ec2-metadata-token-ttl-seconds" && v == b"60"));
    let session = SecretBytes::new(b"AQAEAsession==".to_vec());
    let list = imds_request(&imds, &session, None);
    assert_eq!(list.path_and_query, "/latest/meta-data/iam/security-credentials/");
    assert!(list.headers.iter().any(|(n, v)| n == "x-aws-ec2-metadata-token" && v == b"AQAEAsession=="));
    assert_eq!(imds_request(&imds, &session, Some("web-role")).path_and_query, "/latest/meta-data/iam/security-credentials/web-role");
    assert_eq!(imds_text(&resp(200, "web-role\nother"), None, "instance role").unwrap(), "web-role");
    assert!(matches!(imds_text(&resp(404, ""), None, "instance role").unwrap_err().error, Error::PermissionDenied(_)));
    assert!(imds_text(&resp(503, ""), None, "session token").unwrap_err().transient);
    assert!(!imds_text(&resp(200, "   "), None, "session token").unwrap_err().transient);
}
