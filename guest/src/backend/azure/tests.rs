use super::*;
use crate::http::Method;

const VERSION: &str = "4387e9f3d6e14c459867679a90fd0f79";

fn resp(status: u16, body: &str) -> HttpResponse {
    HttpResponse { status, headers: vec![], body: body.as_bytes().to_vec() }
}

fn with_header(mut r: HttpResponse, name: &str, value: &str) -> HttpResponse {
    r.headers.push((name.to_string(), value.as_bytes().to_vec()));
    r
}

fn response(r: &HttpResponse) -> Result<Fetched, Failure> {
    super::response("db", r, r.retry_after_ms())
}

fn error_body(code: &str, message: &str) -> String {
    format!(r#"{{"error":{{"code":"{code}","message":"{message}"}}}}"#)
}

fn ok_body(value: &str) -> String {
    format!(r#"{{"value":{value},"contentType":"text/plain","id":"https://v.vault.azure.net/secrets/db/{VERSION}","attributes":{{"enabled":true}}}}"#)
}

#[test]
fn request_shape_latest_and_pinned() {
    let url = BaseUrl::parse("https://myvault.vault.azure.net").unwrap();
    let token = SecretBytes::new(b"eyJ0.tok".to_vec());
    let latest = request(&url, &token, "db-password", &VersionSel::Latest);
    assert_eq!((latest.method, latest.authority.as_str()), (Method::Get, "myvault.vault.azure.net"));
    assert_eq!(latest.path_and_query, "/secrets/db-password?api-version=7.4");
    assert_eq!(latest.headers, vec![("authorization".to_string(), b"Bearer eyJ0.tok".to_vec())]);
    assert!(latest.body.is_empty());
    let pinned = request(&BaseUrl::parse("http://127.0.0.1:9/kv/").unwrap(), &token, "db", &VersionSel::Id(VERSION.into()));
    assert_eq!(pinned.path_and_query, format!("/kv/secrets/db/{VERSION}?api-version=7.4"));
    assert!(!format!("{pinned:?}").contains("eyJ0"), "the token never shows in Debug");
}

#[test]
fn names_follow_key_vaults_grammar() {
    validate_name("db-Password-2").unwrap();
    validate_name(&"a".repeat(127)).unwrap();
    for bad in ["", "a_b", "a/b", "a.b", "a b", "../x", "x?y", "x#y", "x%2F", "ä", "a\r\nb"] {
        let err = validate_name(bad).unwrap_err();
        assert!(matches!(&err, Error::InvalidRequest(m) if m.contains("[0-9a-zA-Z-]{1,127}")), "{bad:?}: {err:?}");
    }
    assert!(validate_name(&"a".repeat(128)).is_err());
}

#[test]
fn version_ids_are_32_lowercase_hex() {
    assert!(is_version_id(VERSION));
    assert!(is_version_id(&"0".repeat(32)));
    for bad in [&VERSION.to_uppercase(), &VERSION[1..], &format!("{VERSION}0"), &"g".repeat(32), ""] {
        assert!(!is_version_id(bad), "{bad:?}");
    }
}

#[test]
fn a_200_gives_the_value_and_the_version_from_the_id() {
    let f = response(&resp(200, &ok_body(r#""s3cr3t""#))).unwrap();
    assert_eq!(f.version, VERSION);
    assert_eq!(f.select("value").unwrap().expose(), b"s3cr3t");
    // Fields are keys of a JSON object value, as for AWS `SecretString`.
    let json = response(&resp(200, &ok_body(r#""{\"user\":\"app\",\"port\":5432}""#))).unwrap();
    assert_eq!(json.select("user").unwrap().expose(), b"app");
    assert_eq!(json.select("port").unwrap().expose(), b"5432");
    assert!(matches!(json.select("password"), Err(Error::NotFound(_))));
    assert!(matches!(f.select("user"), Err(Error::NotFound(_))), "a plain text has no fields");
    // Without `contentType` (it is optional) or with it null.
    let bare = format!(r#"{{"value":"v","id":"https://v.vault.azure.net/secrets/db/{VERSION}","contentType":null}}"#);
    assert_eq!(response(&resp(200, &bare)).unwrap().version, VERSION);
}

#[test]
fn malformed_200s_are_permanent_and_never_show_the_value() {
    let id = format!("https://v.vault.azure.net/secrets/db/{VERSION}");
    for (i, (body, expected)) in [
        (r#"{"value":"hunter2""#.to_string(), "invalid JSON"),
        (r#"["hunter2"]"#.to_string(), "not a JSON object"),
        (r#"{"value":"hunter2"}"#.to_string(), "`id` does not end"),
        (r#"{"value":"hunter2","id":"https://v/secrets/db/"}"#.to_string(), "`id` does not end"),
        (format!(r#"{{"value":"hunter2","id":"https://v/secrets/db/{}"}}"#, VERSION.to_uppercase()), "`id` does not end"),
        (r#"{"value":"hunter2","id":7}"#.to_string(), "`id` does not end"),
        (format!(r#"{{"id":"{id}"}}"#), "no `value`"),
        (format!(r#"{{"value":["hunter2"],"id":"{id}"}}"#), "`value` is not a string"),
        (format!(r#"{{"value":"hunter2","id":"{id}","contentType":["hunter2"]}}"#), "`contentType` is not a string"),
    ]
    .into_iter()
    .enumerate()
    {
        let f = response(&resp(200, &body)).unwrap_err();
        assert!(!f.transient, "case {i}");
        let Error::Backend { status: Some(200), reason } = &f.error else { panic!("case {i}: {:?}", f.error.kind()) };
        assert!(reason.starts_with("malformed Azure Key Vault response: ") && reason.contains(expected), "case {i}: expected {expected:?}");
        assert!(!reason.contains("hunter2"), "case {i}: the reason quotes the secret");
    }
}

#[test]
fn not_found_forbidden_and_throttled_map_to_our_kinds() {
    let nf = response(&resp(404, &error_body("SecretNotFound", "A secret with (name/id) db was not found in this key vault."))).unwrap_err();
    assert_eq!(nf, Failure::permanent(not_found("db")));
    assert_eq!(response(&resp(404, "")).unwrap_err(), Failure::permanent(not_found("db")));
    let body = r#"{"error":{"code":"Forbidden","message":"The user, group or application does not have secrets get permission.","innererror":{"code":"AccessDenied"}}}"#;
    let denied = response(&resp(403, body)).unwrap_err();
    assert!(!denied.transient);
    assert_eq!(
        denied.error,
        Error::PermissionDenied("Azure Key Vault denied access: Forbidden: The user, group or application does not have secrets get permission.".into())
    );
    let throttled = response(&with_header(resp(429, &error_body("Throttled", "Request was not processed because too many requests were received.")), "retry-after", "7")).unwrap_err();
    assert_eq!(throttled, Failure::transient(Error::RateLimited { retry_after_ms: Some(7_000) }, Some(7_000)));
    // A 429 whose body claims not-found is still throttling.
    let odd = response(&resp(429, &error_body("SecretNotFound", "x"))).unwrap_err();
    assert_eq!(odd, Failure::transient(Error::RateLimited { retry_after_ms: None }, None));
}

#[test]
fn server_errors_are_transient_and_other_client_errors_permanent() {
    for status in [500, 502, 503, 504] {
        let f = response(&resp(status, &error_body("InternalServerError", "oops\\r\\nInjected: x"))).unwrap_err();
        assert!(f.transient, "{status}");
        assert_eq!(f.error, Error::backend(Some(status), "InternalServerError: oops  Injected: x"));
    }
    let bad = response(&resp(400, &error_body("BadParameter", "The api-version is invalid."))).unwrap_err();
    assert_eq!(bad, Failure::permanent(Error::backend(Some(400), "BadParameter: The api-version is invalid.")));
    let html = response(&resp(502, "<html>bad gateway</html>")).unwrap_err();
    assert_eq!(html, Failure::transient(Error::backend(Some(502), "HTTP 502"), None));
    // A code that is not an identifier is neither matched nor echoed.
    let weird = response(&resp(409, &error_body("Throttled Not\\nFound", "m"))).unwrap_err();
    assert_eq!(weird, Failure::permanent(Error::backend(Some(409), "m")));
    // A 404 with another code (a wrong route, not a missing secret) is not `not-found`.
    let route = response(&resp(404, &error_body("NotFound", "no such route"))).unwrap_err();
    assert_eq!(route, Failure::permanent(Error::backend(Some(404), "NotFound: no such route")));
}

#[test]
fn a_401_names_the_challenges_resource_never_a_token() {
    let challenge = r#"Bearer authorization="https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47", resource="https://vault.azure.net""#;
    let r = with_header(resp(401, &error_body("Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.")), "www-authenticate", challenge);
    let f = response(&r).unwrap_err();
    assert!(!f.transient);
    let Error::PermissionDenied(message) = &f.error else { panic!("{f:?}") };
    assert!(message.contains("resource \"https://vault.azure.net\""), "{message}");
    assert!(message.contains("https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47"), "{message}");
    assert!(message.contains("AKV10000"), "{message}");
    // The newer `scope` form names the resource too; parameter names are case-insensitive.
    let scoped = with_header(resp(401, ""), "www-authenticate", r#"bearer Authorization_URI="https://login.example/t", Scope="https://vault.azure.net/.default""#);
    let Error::PermissionDenied(message) = response(&scoped).unwrap_err().error else { panic!() };
    assert!(message.contains("\"https://vault.azure.net/.default\"") && message.contains("https://login.example/t"), "{message}");
    // A challenge stuffed with something that is not a URL (a token a proxy echoed) is not repeated.
    let stuffed = with_header(resp(401, ""), "www-authenticate", r#"Bearer resource="eyJ0eXAi.SECRET", authorization="x y""#);
    let Error::PermissionDenied(message) = response(&stuffed).unwrap_err().error else { panic!() };
    assert_eq!(message, "Azure Key Vault did not accept the token (HTTP 401)");
    // No challenge at all, and a non-Bearer one.
    for header in [None, Some(r#"Basic realm="x", resource="https://vault.azure.net""#)] {
        let r = match header {
            Some(h) => with_header(resp(401, ""), "www-authenticate", h),
            None => resp(401, ""),
        };
        assert_eq!(response(&r).unwrap_err().error, Error::PermissionDenied("Azure Key Vault did not accept the token (HTTP 401)".into()));
    }
}

#[test]
fn backend_dispatch_validates_names_versions_and_credentials() {
    use crate::auth::{AuthSpec, Presented};
    use crate::backend::{request as build, response as judge, validate, validate_version};
    use crate::config::{BackendSpec, TierSpec};
    let spec = BackendSpec::Azure;
    validate(&spec, "db-1", "value").unwrap();
    validate(&spec, "db-1", "user").unwrap();
    assert!(matches!(validate(&spec, "db_1", "value"), Err(Error::InvalidRequest(_))));
    validate_version(&spec, &VersionSel::Latest).unwrap();
    validate_version(&spec, &VersionSel::Id(VERSION.into())).unwrap();
    for bad in [VersionSel::Pinned(3), VersionSel::Stage("AWSCURRENT".into()), VersionSel::Id(VERSION.to_uppercase()), VersionSel::Id("a1b2c3d4-5678-90ab-cdef-EXAMPLE11111".into())] {
        assert_eq!(validate_version(&spec, &bad), Err(Error::InvalidRequest(VERSION_REFUSED.into())), "{bad:?}");
    }
    assert_eq!(spec.kind(), "azure");
    assert_eq!(spec.pinned(VERSION), Some(VersionSel::Id(VERSION.into())));
    assert_eq!(spec.pinned("3"), None);
    let tier = TierSpec { backend: spec.clone(), url: BaseUrl::parse("http://127.0.0.1:1").unwrap(), auth: AuthSpec::Token { key: "k".into() } };
    let token = SecretBytes::new(b"t".to_vec());
    assert!(matches!(build(&tier, Presented::Token(&token), "db", &VersionSel::Pinned(1), 0), Err(Error::InvalidRequest(_))));
    let keys = crate::sigv4::Credentials { access_key_id: "AKIDEXAMPLE".into(), secret_access_key: "s".into(), session_token: None };
    assert!(matches!(build(&tier, Presented::Aws(&keys), "db", &VersionSel::Latest, 0), Err(Error::InvalidRequest(_))));
    assert!(build(&tier, Presented::Token(&token), "db", &VersionSel::Latest, 0).unwrap().path_and_query.starts_with("/secrets/db?"));
    // A pinned read answered with another version is refused (it would be cached under the wrong one).
    let other = "0".repeat(32);
    let wrong = judge(&spec, "db", &VersionSel::Id(other.clone()), &resp(200, &ok_body(r#""v""#))).unwrap_err();
    assert_eq!(wrong, Failure::permanent(Error::backend(Some(200), format!("asked for version {other} but the backend returned version {VERSION}"))));
}

#[test]
fn every_truncation_and_byte_flip_of_an_answer_is_judged_without_a_panic_or_the_value() {
    // A cheap stand-in for the fuzz target the other backends have: every prefix of a real
    // answer, and each byte of it replaced by a quote, a backslash or a control character.
    let body = ok_body(r#""s3cr3t-\u0041\n""#);
    let mut bodies: Vec<Vec<u8>> = (0..=body.len()).map(|n| body.as_bytes()[..n].to_vec()).collect();
    for i in 0..body.len() {
        for b in [b'"', b'\\', 0x01, 0xff] {
            let mut flipped = body.as_bytes().to_vec();
            flipped[i] = b;
            bodies.push(flipped);
        }
    }
    for body in bodies {
        for status in [200, 401, 404, 429, 503] {
            let r = with_header(HttpResponse { status, headers: vec![], body: body.clone() }, "www-authenticate", "Bearer resource=\"https://vault.azure.net\"");
            match response(&r) {
                Ok(f) => assert!(status == 200 && is_version_id(&f.version)),
                Err(f) => {
                    let shown = f.error.to_string();
                    assert!(!shown.contains("s3cr3t") && !shown.chars().any(char::is_control), "{shown:?}");
                }
            }
        }
    }
}
