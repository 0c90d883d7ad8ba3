use super::*;
use crate::http::Method;

const TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.TEST-ONLY.sig_0123";
const SECRET: &str = "Qm~8Q~a&b=c+d/e%f g";

fn resp(status: u16, body: &str) -> HttpResponse {
    HttpResponse { status, headers: vec![], body: body.as_bytes().to_vec() }
}

/// Every failure, checked never to show the token or the client secret.
fn err(issuer: Issuer, r: &HttpResponse) -> Failure {
    let f = token_response(issuer, r, r.retry_after_ms()).expect_err("should fail");
    let shown = format!("{f:?} {}", f.error);
    assert!(!shown.contains(TOKEN) && !shown.contains("TEST-ONLY") && !shown.contains(SECRET), "leaked: {shown}");
    f
}

#[test]
fn client_credentials_request_is_a_form_post_to_the_tenants_endpoint() {
    let authority = BaseUrl::parse("https://login.microsoftonline.us/").unwrap();
    let secret = SecretBytes::new(SECRET.as_bytes().to_vec());
    let r = client_credentials_request(&authority, "contoso.onmicrosoft.com", "00000000-aaaa-bbbb-cccc-000000000001", &secret);
    assert_eq!((r.method, r.authority.as_str()), (Method::Post, "login.microsoftonline.us"));
    assert_eq!(r.path_and_query, "/contoso.onmicrosoft.com/oauth2/v2.0/token");
    assert_eq!(r.headers, vec![("content-type".to_string(), b"application/x-www-form-urlencoded".to_vec())]);
    assert_eq!(
        String::from_utf8(r.body.clone()).unwrap(),
        "grant_type=client_credentials&client_id=00000000-aaaa-bbbb-cccc-000000000001\
         &client_secret=Qm~8Q~a%26b%3Dc%2Bd%2Fe%25f%20g&scope=https%3A%2F%2Fvault.azure.net%2F.default"
    );
    let shown = format!("{r:?}");
    assert!(!shown.contains("Qm~8Q") && shown.contains("body_bytes"), "{shown}");
}

#[test]
fn managed_identity_request_carries_the_metadata_header_and_optional_client_id() {
    let imds = BaseUrl::parse(DEFAULT_IMDS_URL).unwrap();
    let r = managed_identity_request(&imds, None);
    assert_eq!((r.method, r.authority.as_str()), (Method::Get, "169.254.169.254"));
    assert_eq!(r.path_and_query, "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net");
    assert_eq!(r.headers, vec![("metadata".to_string(), b"true".to_vec())]);
    assert!(r.body.is_empty());
    let user = managed_identity_request(&BaseUrl::parse("http://127.0.0.1:9/imds").unwrap(), Some("1234-abcd"));
    assert!(user.path_and_query.starts_with("/imds/metadata/identity/oauth2/token?"));
    assert!(user.path_and_query.ends_with("&client_id=1234-abcd"), "{}", user.path_and_query);
}

#[test]
fn ids_are_guids_or_domain_names() {
    for ok in ["72f988bf-86f1-41af-91ab-2d7cd011db47", "contoso.onmicrosoft.com", "a"] {
        assert!(is_id(ok), "{ok}");
    }
    for bad in ["", "a/b", "a?b", "a b", "a&b", "ä", &"a".repeat(129)] {
        assert!(!is_id(bad), "{bad}");
    }
}

#[test]
fn tokens_are_read_from_both_issuers_with_their_lifetimes() {
    let entra = token_response(Issuer::Entra, &resp(200, &format!(r#"{{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"{TOKEN}"}}"#)), None).unwrap();
    assert_eq!((entra.token.expose(), entra.ttl_ms, entra.renewable), (TOKEN.as_bytes(), 3_599_000, false));
    assert!(!format!("{entra:?}").contains(TOKEN));
    // IMDS: every number a string, `token_type` in any case, extra fields.
    let imds_body = format!(
        r#"{{"access_token":"{TOKEN}","client_id":"c","expires_in":"86399","expires_on":"1506484173","not_before":"1506397473","resource":"https://vault.azure.net","token_type":"bearer"}}"#
    );
    assert_eq!(token_response(Issuer::Imds, &resp(200, &imds_body), None).unwrap().ttl_ms, 86_399_000);
    let untyped = format!(r#"{{"access_token":"{TOKEN}","expires_in":60}}"#);
    assert_eq!(token_response(Issuer::Imds, &resp(200, &untyped), None).unwrap().ttl_ms, 60_000);
}

#[test]
fn malformed_token_answers_are_permanent_and_named_without_the_token() {
    let huge = "a".repeat(MAX_TOKEN_BYTES + 1);
    let cases: Vec<(String, &str)> = vec![
        ("not json".into(), "not JSON at line 1 column 2"),
        (r#"{"expires_in":60}"#.into(), "missing `access_token`"),
        (r#"{"access_token":"","expires_in":60}"#.into(), "`access_token` is empty"),
        (r#"{"access_token":["x"],"expires_in":60}"#.into(), "`access_token` is not a string"),
        (format!(r#"{{"access_token":"{TOKEN}\r\nx: y","expires_in":60}}"#), "characters a header cannot carry"),
        (format!(r#"{{"access_token":"{huge}","expires_in":60}}"#), "too long"),
        (format!(r#"{{"access_token":"{TOKEN}","expires_in":60,"token_type":"{TOKEN}"}}"#), "`token_type` is not `Bearer`"),
        (format!(r#"{{"access_token":"{TOKEN}","expires_in":60,"token_type":"pop"}}"#), "`token_type` is not `Bearer`"),
        (format!(r#"{{"access_token":"{TOKEN}"}}"#), "missing `expires_in`"),
        (format!(r#"{{"access_token":"{TOKEN}","expires_in":-5}}"#), "not a whole number"),
        (format!(r#"{{"access_token":"{TOKEN}","expires_in":"-5"}}"#), "not a whole number"),
        (format!(r#"{{"access_token":"{TOKEN}","expires_in":"+5"}}"#), "not a whole number"),
        (format!(r#"{{"access_token":"{TOKEN}","expires_in":" 5"}}"#), "not a whole number"),
        (format!(r#"{{"access_token":"{TOKEN}","expires_in":1.5}}"#), "not a whole number"),
        (format!(r#"{{"access_token":"{TOKEN}","expires_in":1e300}}"#), "not a whole number"),
        (format!(r#"{{"access_token":"{TOKEN}","expires_in":"99999999999999999999"}}"#), "not a whole number"),
        (format!(r#"{{"access_token":"{TOKEN}","expires_in":18446744073709551615}}"#), "got 18446744073709551615"),
        (format!(r#"{{"access_token":"{TOKEN}","expires_in":0}}"#), "must be 1 to 86400 s, got 0"),
        (format!(r#"{{"access_token":"{TOKEN}","expires_in":"86401"}}"#), "got 86401"),
    ];
    for (i, (body, expected)) in cases.iter().enumerate() {
        for issuer in [Issuer::Entra, Issuer::Imds] {
            let f = err(issuer, &resp(200, body));
            assert!(!f.transient, "case {i}");
            let Error::Backend { status: Some(200), reason } = &f.error else { panic!("case {i}: {:?}", f.error.kind()) };
            assert!(reason.starts_with("malformed token response from ") && reason.contains(expected), "case {i}: expected {expected:?}");
            assert!(!reason.contains(&huge[..64]));
        }
    }
}

#[test]
fn refusals_are_permanent_permission_denials_naming_the_oauth_error() {
    let invalid_client = r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value.\r\nTrace ID: 0000\r\nCorrelation ID: 1111\r\nTimestamp: 2026-12-05 10:00:00Z","error_codes":[7000215]}"#;
    for status in [400, 401] {
        let f = err(Issuer::Entra, &resp(status, invalid_client));
        assert!(!f.transient);
        let Error::PermissionDenied(message) = &f.error else { panic!("{f:?}") };
        assert!(message.starts_with("Microsoft Entra ID refused the token request: invalid_client: AADSTS7000215"), "{message}");
        assert!(!message.contains("Trace ID"), "{message}");
    }
    let no_identity = r#"{"error":"invalid_request","error_description":"Identity not found"}"#;
    let f = err(Issuer::Imds, &resp(400, no_identity));
    assert_eq!(f, Failure::permanent(Error::PermissionDenied("the Azure instance metadata service refused the token request: invalid_request: Identity not found".into())));
    let f = err(Issuer::Entra, &resp(403, "<html>blocked</html>"));
    assert_eq!(f.error, Error::PermissionDenied("Microsoft Entra ID refused the token request: HTTP 403".into()));
}

#[test]
fn throttling_and_outages_are_transient() {
    let mut throttled = resp(429, r#"{"error":"temporarily_unavailable"}"#);
    throttled.headers.push(("retry-after".into(), b"3".to_vec()));
    for issuer in [Issuer::Entra, Issuer::Imds] {
        assert_eq!(err(issuer, &throttled), Failure::transient(Error::RateLimited { retry_after_ms: Some(3_000) }, Some(3_000)));
        let f = err(issuer, &resp(503, r#"{"error":"temporarily_unavailable","error_description":"busy"}"#));
        assert_eq!(f, Failure::transient(Error::backend(Some(503), "temporarily_unavailable: busy"), None));
    }
    // IMDS says 404/410 while it is being updated; Entra's 404 is a wrong URL.
    for status in [404, 410] {
        assert!(err(Issuer::Imds, &resp(status, "")).transient, "{status}");
    }
    assert!(!err(Issuer::Entra, &resp(404, "")).transient);
    // An error code that is not an identifier is not echoed.
    let f = err(Issuer::Entra, &resp(500, &format!(r#"{{"error":"{TOKEN}"}}"#)));
    assert_eq!(f.error, Error::backend(Some(500), "HTTP 500"));
}

#[test]
fn every_truncation_and_byte_flip_of_a_token_answer_is_judged_without_a_panic_or_the_token() {
    let body = format!(r#"{{"token_type":"Bearer","expires_in":"3599","access_token":"{TOKEN}"}}"#);
    let mut bodies: Vec<Vec<u8>> = (0..=body.len()).map(|n| body.as_bytes()[..n].to_vec()).collect();
    for i in 0..body.len() {
        for b in [b'"', b'\\', b'-', 0x01, 0xff] {
            let mut flipped = body.as_bytes().to_vec();
            flipped[i] = b;
            bodies.push(flipped);
        }
    }
    for body in bodies {
        for (issuer, status) in [(Issuer::Entra, 200), (Issuer::Imds, 200), (Issuer::Entra, 401), (Issuer::Imds, 503)] {
            if let Err(f) = token_response(issuer, &HttpResponse { status, headers: vec![], body: body.clone() }, None) {
                let shown = f.error.to_string();
                assert!(!shown.contains("TEST-ONLY") && !shown.chars().any(char::is_control), "{shown:?}");
            }
        }
    }
}
