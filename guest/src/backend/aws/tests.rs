//! The AWS mapping: request shape and signature, every error type, the two
//! payload kinds and their fields, malformed answers.

use super::*;
use crate::http::{Method, Scheme};

/// AWS's published example key pair (the SigV4 test suite's): not a credential.
fn keys(session_token: Option<&str>) -> Credentials {
    Credentials {
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
        session_token: session_token.map(String::from),
    }
}

fn url() -> BaseUrl {
    BaseUrl::parse("http://127.0.0.1:4566").unwrap()
}

/// 2015-08-30T12:36:00Z, the suite's date.
const WALL_MS: u64 = 1_440_938_160_000;

fn header<'a>(r: &'a HttpRequest, name: &str) -> Option<&'a str> {
    r.headers.iter().find(|(n, _)| n == name).map(|(_, v)| core::str::from_utf8(v).unwrap())
}

fn resp(status: u16, body: &str) -> HttpResponse {
    HttpResponse { status, headers: vec![], body: body.as_bytes().to_vec() }
}

fn response(r: &HttpResponse) -> Result<Fetched, Failure> {
    super::response("prod/db", r, r.retry_after_ms())
}

const VID: &str = "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111";

#[test]
fn request_shape_and_exact_signature() {
    let r = request(&url(), "us-east-1", &keys(None), "prod/db", &VersionSel::Latest, WALL_MS).unwrap();
    assert_eq!((r.method, r.scheme, r.authority.as_str(), r.path_and_query.as_str()), (Method::Post, Scheme::Http, "127.0.0.1:4566", "/"));
    assert_eq!(r.body, br#"{"SecretId":"prod/db"}"#);
    assert_eq!(header(&r, "content-type"), Some("application/x-amz-json-1.1"));
    assert_eq!(header(&r, "x-amz-target"), Some("secretsmanager.GetSecretValue"));
    assert_eq!(header(&r, "x-amz-date"), Some("20150830T123600Z"));
    assert_eq!(header(&r, "x-amz-security-token"), None);
    // Computed independently (Python hmac/hashlib from the SigV4 spec) and
    // matched by botocore 1.43's SigV4Auth for the same request and time.
    assert_eq!(
        header(&r, "authorization"),
        Some(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/secretsmanager/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date;x-amz-target, \
             Signature=9f0a63128bc8b4231a318154a65ac8c4f3586aeb04d1b583db0c73c0c77113f6"
        )
    );
    // The same through the signer directly: the canonical request it signed.
    let headers = [("content-type", CONTENT_TYPE), ("x-amz-target", TARGET)];
    let signable = sigv4::SignableRequest { method: "POST", host: "127.0.0.1:4566", path: "/", query: "", headers: &headers, body: &r.body };
    let scope = Scope { region: "us-east-1", service: "secretsmanager" };
    let signed = sigv4::sign(&signable, &keys(None), &scope, "20150830T123600Z", sigv4::Options::default()).unwrap();
    assert_eq!(
        signed.canonical_request,
        "POST\n/\n\ncontent-type:application/x-amz-json-1.1\nhost:127.0.0.1:4566\nx-amz-date:20150830T123600Z\n\
         x-amz-target:secretsmanager.GetSecretValue\n\ncontent-type;host;x-amz-date;x-amz-target\n\
         f7e8785d034ab0cf4e95a95a1009431190b7a90407bd6acb5fa5aa34cb09c689"
    );
    assert_eq!(header(&r, "authorization"), Some(signed.authorization.as_str()));
}

#[test]
fn stages_ids_session_tokens_and_prefixes() {
    let r = request(&url(), "eu-west-1", &keys(Some("session-token-example")), "prod/db", &VersionSel::Stage("AWSPREVIOUS".into()), WALL_MS)
        .unwrap();
    assert_eq!(r.body, br#"{"SecretId":"prod/db","VersionStage":"AWSPREVIOUS"}"#);
    assert_eq!(header(&r, "x-amz-security-token"), Some("session-token-example"));
    // Also computed independently and matched by botocore.
    assert_eq!(
        header(&r, "authorization"),
        Some(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/eu-west-1/secretsmanager/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, \
             Signature=fd03ffc16398f981ab99e250dc9eda603836c8106217ec99ccc55b143d1bd9b2"
        )
    );
    assert!(!format!("{r:?}").contains("session-token-example"), "Debug redacts the session token");
    let id = request(&url(), "us-east-1", &keys(None), "arn:aws:secretsmanager:us-east-1:1:secret:x-AbCdEf", &VersionSel::Id(VID.into()), WALL_MS)
        .unwrap();
    assert_eq!(id.body, format!(r#"{{"SecretId":"arn:aws:secretsmanager:us-east-1:1:secret:x-AbCdEf","VersionId":"{VID}"}}"#).into_bytes());
    let prefixed = request(&BaseUrl::parse("https://proxy.example/aws").unwrap(), "us-east-1", &keys(None), "x", &VersionSel::Latest, WALL_MS).unwrap();
    assert_eq!((prefixed.authority.as_str(), prefixed.path_and_query.as_str()), ("proxy.example", "/aws/"));
}

#[test]
fn requests_that_cannot_be_signed_are_typed_errors_naming_no_credential() {
    let mut bad_token = keys(Some("tok\r\nX-Injected: 1"));
    let e = request(&url(), "us-east-1", &bad_token, "x", &VersionSel::Latest, WALL_MS).unwrap_err();
    assert_eq!(e, Error::Config("the AWS session token holds a control character".into()));
    bad_token.session_token = None;
    bad_token.access_key_id = "AKID\nEXAMPLE".into();
    let e = request(&url(), "us-east-1", &bad_token, "x", &VersionSel::Latest, WALL_MS).unwrap_err();
    assert!(matches!(&e, Error::Config(m) if !m.contains("AKID")), "{e:?}");
    // Past year 9999 the date has more digits and cannot be signed.
    let far = 253_402_300_800_000;
    let e = request(&url(), "us-east-1", &keys(None), "x", &VersionSel::Latest, far).unwrap_err();
    assert_eq!(e, Error::backend(None, "cannot sign the AWS request: the signing time is not YYYYMMDDTHHMMSSZ"));
    let e = request(&url(), "us-east-1", &keys(None), "x", &VersionSel::Pinned(3), WALL_MS).unwrap_err();
    assert_eq!(e, Error::InvalidRequest(PINNED_REFUSED.into()));
}

#[test]
fn secret_string_is_the_value_and_its_json_keys_are_fields() {
    let body = format!(
        r#"{{"ARN":"arn:x","Name":"prod/db","VersionId":"{VID}","SecretString":"{{\"user\":\"admin\",\"port\":5432,\"tls\":{{\"on\":true}}}}","VersionStages":["AWSCURRENT"]}}"#
    );
    let f = response(&resp(200, &body)).unwrap();
    assert_eq!(f.version, VID);
    assert_eq!(f.select("value").unwrap().expose(), br#"{"user":"admin","port":5432,"tls":{"on":true}}"#);
    assert_eq!(f.select("user").unwrap().expose(), b"admin");
    assert_eq!(f.select("port").unwrap().expose(), b"5432");
    assert_eq!(f.select("tls").unwrap().expose(), br#"{"on":true}"#);
    let missing = f.select("password").unwrap_err();
    assert_eq!(missing, Error::NotFound("field \"password\" is not in the secret".into()));

    let plain = response(&resp(200, &format!(r#"{{"VersionId":"{VID}","SecretString":"hunter2"}}"#))).unwrap();
    assert_eq!(plain.select("value").unwrap().expose(), b"hunter2");
    for field in ["user", "0"] {
        let e = plain.select(field).unwrap_err();
        assert!(matches!(&e, Error::NotFound(m) if m.contains(field) && !m.contains("hunter2")), "{e:?}");
    }
    let array = response(&resp(200, &format!(r#"{{"VersionId":"{VID}","SecretString":"[\"hunter2\"]"}}"#))).unwrap();
    assert!(matches!(array.select("user"), Err(Error::NotFound(_))));
    let shown = format!("{f:?} {plain:?}");
    assert!(!shown.contains("admin") && !shown.contains("hunter2") && !shown.contains("user"), "{shown}");
}

#[test]
fn secret_binary_is_base64_with_only_the_default_field() {
    // "hello\0\xff" → aGVsbG8A/w==
    let f = response(&resp(200, &format!(r#"{{"VersionId":"{VID}","SecretBinary":"aGVsbG8A/w==","SecretString":null}}"#))).unwrap();
    assert_eq!(f.select("value").unwrap().expose(), b"hello\0\xff");
    assert!(matches!(f.select("user"), Err(Error::NotFound(_))));
    assert_eq!(f.version, VID);
}

#[test]
fn malformed_answers_are_permanent_backend_errors_without_content() {
    for (i, body) in [
        format!(r#"{{"VersionId":"{VID}","SecretString":"hunter2"#),
        "not json hunter2".to_string(),
        r#"["hunter2"]"#.to_string(),
        r#"{"SecretString":"hunter2"}"#.to_string(),
        r#"{"VersionId":"v1","SecretString":"hunter2"}"#.to_string(),
        r#"{"VersionId":"AWSCURRENT","SecretString":"hunter2"}"#.to_string(),
        r#"{"VersionId":7,"SecretString":"hunter2"}"#.to_string(),
        format!(r#"{{"VersionId":"{VID}"}}"#),
        format!(r#"{{"VersionId":"{VID}","SecretString":["hunter2"]}}"#),
        format!(r#"{{"VersionId":"{VID}","SecretBinary":"hunter2!"}}"#),
        format!(r#"{{"VersionId":"{VID}","SecretBinary":7}}"#),
        String::new(),
    ]
    .into_iter()
    .enumerate()
    {
        let f = response(&resp(200, &body)).unwrap_err();
        assert!(!f.transient, "case {i}");
        assert!(matches!(&f.error, Error::Backend { status: Some(200), reason } if reason.starts_with("malformed AWS response")), "case {i}: {:?}", f.error.kind());
        assert!(!f.error.to_string().contains("hunter2"), "case {i}: the error quotes the secret");
    }
}

fn aws_error(status: u16, kind: &str, message: &str) -> HttpResponse {
    resp(status, &format!(r#"{{"__type":"{kind}","Message":"{message}"}}"#))
}

#[test]
fn maps_every_error_type() {
    let nf = response(&aws_error(400, "ResourceNotFoundException", "Secrets Manager can't find the specified secret.")).unwrap_err();
    assert_eq!(nf, Failure::permanent(not_found("prod/db")));
    let prefixed = response(&aws_error(400, "com.amazonaws.secretsmanager#ResourceNotFoundException", "m")).unwrap_err();
    assert_eq!(prefixed, Failure::permanent(not_found("prod/db")));
    let mut by_header = resp(400, "");
    by_header.headers.push(("x-amzn-errortype".into(), b"ResourceNotFoundException:http://internal.amazon.com/coral/".to_vec()));
    assert_eq!(response(&by_header).unwrap_err(), Failure::permanent(not_found("prod/db")));

    for kind in [
        "AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException", "IncompleteSignature",
        "ExpiredTokenException", "InvalidClientTokenId", "MissingAuthenticationToken", "AccessDenied",
        "SignatureDoesNotMatch",
    ] {
        let f = response(&aws_error(400, kind, "denied")).unwrap_err();
        assert_eq!(f, Failure::permanent(Error::PermissionDenied(format!("AWS denied access: {kind}: denied"))), "{kind}");
    }
    for status in [401, 403] {
        assert!(matches!(response(&resp(status, "")).unwrap_err().error, Error::PermissionDenied(_)));
    }

    for kind in ["ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded"] {
        let mut r = aws_error(400, kind, "slow down");
        r.headers.push(("retry-after".into(), b"2".to_vec()));
        assert_eq!(response(&r).unwrap_err(), Failure::transient(Error::RateLimited { retry_after_ms: Some(2_000) }, Some(2_000)), "{kind}");
    }
    // A 429 is throttling whatever its body claims.
    let odd = response(&aws_error(429, "ResourceNotFoundException", "m")).unwrap_err();
    assert_eq!(odd, Failure::transient(Error::RateLimited { retry_after_ms: None }, None));

    for (status, kind) in [(500, "InternalServiceError"), (500, "InternalFailure"), (503, "ServiceUnavailable"), (400, "InternalFailure")] {
        let f = response(&aws_error(status, kind, "oops")).unwrap_err();
        assert_eq!(f, Failure::transient(Error::backend(Some(status), format!("{kind}: oops")), None), "{kind}");
    }
    assert_eq!(response(&resp(502, "<html>bad gateway</html>")).unwrap_err(), Failure::transient(Error::backend(Some(502), "HTTP 502"), None));

    let kms = response(&aws_error(400, "DecryptionFailure", "can't decrypt")).unwrap_err();
    assert_eq!(
        kms,
        Failure::permanent(Error::backend(Some(400), "AWS could not decrypt the secret with its KMS key (DecryptionFailure: can't decrypt)"))
    );
    let deleting = response(&aws_error(400, "InvalidRequestException", "You can't perform this operation on the secret because it was marked for deletion.\\r\\n")).unwrap_err();
    assert!(!deleting.transient);
    assert!(matches!(&deleting.error, Error::Backend { status: Some(400), reason } if reason.contains("marked for deletion") && !reason.contains(char::is_control)));
    let padded = response(&aws_error(400, "InvalidRequestException", &format!("You tried to{}perform it", " ".repeat(200)))).unwrap_err();
    assert_eq!(padded.error, Error::backend(Some(400), "InvalidRequestException: You tried to perform it"));
    let param = response(&aws_error(400, "InvalidParameterException", "bad")).unwrap_err();
    assert_eq!(param, Failure::permanent(Error::backend(Some(400), "InvalidParameterException: bad")));

    // Unknown types and bodies fall back to the status; a lowercase `message` is read too.
    let other = response(&resp(400, r#"{"__type":"SomethingNew","message":"hm"}"#)).unwrap_err();
    assert_eq!(other, Failure::permanent(Error::backend(Some(400), "SomethingNew: hm")));
    // A type that is not an identifier is neither matched nor echoed.
    let junk = response(&resp(400, r#"{"__type":"Resource NotFound <script>"}"#)).unwrap_err();
    assert_eq!(junk, Failure::permanent(Error::backend(Some(400), "HTTP 400")));

    // moto (and AWS's authentication front end) answer with the query protocol's XML.
    let xml = |code: &str| {
        resp(403, &format!("<?xml version=\"1.0\"?>\n<ErrorResponse><Errors><Error><Code>{code}</Code><Message>no.</Message></Error></Errors></ErrorResponse>"))
    };
    for code in ["SignatureDoesNotMatch", "InvalidClientTokenId", "AccessDenied"] {
        let f = response(&xml(code)).unwrap_err();
        assert_eq!(f, Failure::permanent(Error::PermissionDenied(format!("AWS denied access: {code}: no."))), "{code}");
    }
    let throttled = resp(400, "<ErrorResponse><Error><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>");
    assert!(matches!(response(&throttled).unwrap_err().error, Error::RateLimited { .. }));
    let unclosed = resp(400, "<Error><Code>ResourceNotFoundException<Message>x</Message>");
    assert_eq!(response(&unclosed).unwrap_err(), Failure::permanent(Error::backend(Some(400), "x")));
}
