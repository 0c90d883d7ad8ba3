//! The signer against AWS's published vectors (guest/tests/fixtures/sigv4/,
//! see its README for where each comes from), and its own edges.

use super::*;
use serde_json::Value;

/// AWS's example key pair, published with the test suite: not a credential.
const AKID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

struct Case {
    name: &'static str,
    request: &'static str,
    context: &'static str,
    creq: &'static str,
    sts: &'static str,
    signature: &'static str,
    signed_request: &'static str,
}

macro_rules! case {
    ($name:literal) => {
        Case {
            name: $name,
            request: include_str!(concat!("../../tests/fixtures/sigv4/", $name, "/request.txt")),
            context: include_str!(concat!("../../tests/fixtures/sigv4/", $name, "/context.json")),
            creq: include_str!(concat!("../../tests/fixtures/sigv4/", $name, "/header-canonical-request.txt")),
            sts: include_str!(concat!("../../tests/fixtures/sigv4/", $name, "/header-string-to-sign.txt")),
            signature: include_str!(concat!("../../tests/fixtures/sigv4/", $name, "/header-signature.txt")),
            signed_request: include_str!(concat!("../../tests/fixtures/sigv4/", $name, "/header-signed-request.txt")),
        }
    };
}

/// Every header-signed v4 case of the suite but two (see the fixtures' README):
/// `get-space-normalized` expects a path encoded only once, and
/// `post-sts-header-after` adds the session token without signing it.
const SUITE: &[Case] = &[
    case!("get-header-key-duplicate"),
    case!("get-header-value-multiline"),
    case!("get-header-value-order"),
    case!("get-header-value-trim"),
    case!("get-relative-normalized"),
    case!("get-relative-relative-normalized"),
    case!("get-relative-relative-unnormalized"),
    case!("get-relative-unnormalized"),
    case!("get-slash-dot-slash-normalized"),
    case!("get-slash-dot-slash-unnormalized"),
    case!("get-slash-normalized"),
    case!("get-slash-pointless-dot-normalized"),
    case!("get-slash-pointless-dot-unnormalized"),
    case!("get-slash-unnormalized"),
    case!("get-slashes-normalized"),
    case!("get-slashes-unnormalized"),
    case!("get-space-unnormalized"),
    case!("get-unreserved"),
    case!("get-utf8"),
    case!("get-vanilla"),
    case!("get-vanilla-empty-query-key"),
    case!("get-vanilla-query"),
    case!("get-vanilla-query-order-encoded"),
    case!("get-vanilla-query-order-key-case"),
    case!("get-vanilla-query-unreserved"),
    case!("get-vanilla-utf8-query"),
    case!("get-vanilla-with-session-token"),
    case!("post-header-key-case"),
    case!("post-header-key-sort"),
    case!("post-header-value-case"),
    case!("post-sts-header-before"),
    case!("post-vanilla"),
    case!("post-vanilla-empty-query-value"),
    case!("post-vanilla-query"),
    case!("post-x-www-form-urlencoded"),
    case!("post-x-www-form-urlencoded-parameters"),
];

/// A request.txt: method, path, query, headers (obs-folded lines joined with a
/// space, as HTTP/1.1 reads them) and body.
struct Parsed<'a> {
    method: &'a str,
    path: &'a str,
    query: &'a str,
    headers: Vec<(&'a str, String)>,
    body: &'a str,
}

fn parse(text: &str) -> Parsed<'_> {
    let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
    let mut lines = head.lines();
    let start = lines.next().unwrap();
    let (method, rest) = start.split_once(' ').unwrap();
    // The target may hold a space (get-space-unnormalized): the version is after the last.
    let target = rest.rsplit_once(' ').map_or(rest, |(target, _)| target);
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut headers: Vec<(&str, String)> = Vec::new();
    for line in lines {
        if line.starts_with([' ', '\t']) {
            let last = headers.last_mut().unwrap();
            last.1.push(' ');
            last.1.push_str(line);
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name, value.to_string()));
        }
    }
    Parsed { method, path, query, headers, body }
}

fn authorization_of(signed_request: &str) -> &str {
    let line = signed_request.lines().find(|l| l.starts_with("Authorization:")).unwrap();
    line["Authorization:".len()..].trim()
}

/// Signs a parsed request; `host` is taken from its headers.
fn sign_parsed(p: &Parsed<'_>, creds: &Credentials, scope: &Scope<'_>, date: &str, options: Options) -> Signed {
    let host = p.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("host")).map(|(_, v)| v.trim()).unwrap();
    let headers: Vec<(&str, &str)> = p.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let request = SignableRequest {
        method: p.method,
        host,
        path: p.path,
        query: p.query,
        headers: &headers,
        body: p.body.as_bytes(),
    };
    sign(&request, creds, scope, date, options).unwrap()
}

#[test]
fn the_published_suite_signs_to_its_published_values() {
    for case in SUITE {
        let ctx: Value = serde_json::from_str(case.context).unwrap();
        let creds = Credentials {
            access_key_id: ctx["credentials"]["access_key_id"].as_str().unwrap().into(),
            secret_access_key: ctx["credentials"]["secret_access_key"].as_str().unwrap().into(),
            session_token: ctx["credentials"]["token"].as_str().map(String::from),
        };
        assert_eq!((creds.access_key_id.as_str(), creds.secret_access_key.as_str()), (AKID, SECRET));
        let scope = Scope { region: ctx["region"].as_str().unwrap(), service: ctx["service"].as_str().unwrap() };
        let date: String = ctx["timestamp"].as_str().unwrap().chars().filter(|c| !matches!(c, '-' | ':')).collect();
        let options = Options {
            normalize_path: ctx["normalize"].as_bool().unwrap(),
            content_sha256_header: ctx["sign_body"].as_bool().unwrap(),
        };
        let s = sign_parsed(&parse(case.request), &creds, &scope, &date, options);
        let name = case.name;
        assert_eq!(s.canonical_request, case.creq, "{name}: canonical request");
        assert_eq!(s.string_to_sign, case.sts, "{name}: string to sign");
        assert_eq!(s.signature, case.signature.trim(), "{name}: signature");
        assert_eq!(s.authorization, authorization_of(case.signed_request), "{name}: authorization");
        let added: Vec<&str> = s.headers.iter().map(|(n, _)| n.as_str()).collect();
        let mut expected = vec!["x-amz-date"];
        expected.extend(options.content_sha256_header.then_some("x-amz-content-sha256"));
        expected.extend(creds.session_token.is_some().then_some("x-amz-security-token"));
        expected.push("authorization");
        assert_eq!(added, expected, "{name}: headers to add");
    }
}

/// A fixture file of the smithy-rs additions (their names are literals, for `include_str!`).
macro_rules! fixture {
    ($dir:literal, $file:literal) => {
        include_str!(concat!("../../tests/fixtures/sigv4/", $dir, "/", $file))
    };
}

/// smithy-rs's additions to the suite: wire paths with escapes, encoded again.
#[test]
fn escaped_paths_are_encoded_twice() {
    // double-url-encode: canonical request, string to sign and signature.
    let dir = "double-url-encode";
    let p = parse(fixture!("double-url-encode", "request.txt"));
    let creds = Credentials { access_key_id: AKID.into(), secret_access_key: SECRET.into(), session_token: None };
    let scope = Scope { region: "us-east-2", service: "lambda" };
    let s = sign_parsed(&p, &creds, &scope, "20210511T154045Z", Options::default());
    assert_eq!(s.canonical_request, fixture!("double-url-encode", "header-canonical-request.txt"), "{dir}");
    assert_eq!(s.string_to_sign, fixture!("double-url-encode", "header-string-to-sign.txt").trim_end(), "{dir}");
    let signed = fixture!("double-url-encode", "header-signed-request.txt");
    assert_eq!(s.authorization, authorization_of(signed), "{dir}");

    // double-encode-path: its canonical request was written at another time than its signature.
    let dir = "double-encode-path";
    let p = parse(fixture!("double-encode-path", "request.txt"));
    let creds = Credentials {
        access_key_id: "ANOTREAL".into(),
        secret_access_key: "notrealrnrELgWzOk3IfjzDKtFBhDby".into(),
        session_token: None,
    };
    let scope = Scope { region: "us-east-1", service: "service" };
    let s = sign_parsed(&p, &creds, &scope, "20210511T154045Z", Options::default());
    assert_eq!(s.canonical_request, fixture!("double-encode-path", "header-canonical-request.txt"), "{dir}");
    let s = sign_parsed(&p, &creds, &scope, "20150830T123600Z", Options::default());
    let signed = fixture!("double-encode-path", "header-signed-request.txt");
    assert_eq!(s.authorization, authorization_of(signed), "{dir}");
}

/// The worked example of AWS's General Reference ("Create a signed AWS API
/// request"): IAM `ListUsers`, with its canonical request hash, signing key and
/// signature.
#[test]
fn the_documented_iam_example() {
    let creds = Credentials { access_key_id: AKID.into(), secret_access_key: SECRET.into(), session_token: None };
    let scope = Scope { region: "us-east-1", service: "iam" };
    let request = SignableRequest {
        method: "GET",
        host: "iam.amazonaws.com",
        path: "/",
        query: "Action=ListUsers&Version=2010-05-08",
        headers: &[("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")],
        body: b"",
    };
    let s = sign(&request, &creds, &scope, "20150830T123600Z", Options::default()).unwrap();
    assert_eq!(
        s.canonical_request,
        "GET\n/\nAction=ListUsers&Version=2010-05-08\n\
         content-type:application/x-www-form-urlencoded; charset=utf-8\nhost:iam.amazonaws.com\nx-amz-date:20150830T123600Z\n\n\
         content-type;host;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
        s.string_to_sign,
        "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/iam/aws4_request\n\
         f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
    );
    assert_eq!(
        hex(&signing_key(SECRET, "20150830", &scope)),
        "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
    );
    assert_eq!(s.signature, "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7");
    assert_eq!(
        s.authorization,
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
         SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
    );
}

#[test]
fn amz_dates_are_utc_civil_time() {
    for (unix_ms, expected) in [
        (0, "19700101T000000Z"),
        (1_440_938_160_000, "20150830T123600Z"),
        (1_440_938_160_999, "20150830T123600Z"),
        (94_694_399_000, "19721231T235959Z"),
        (951_868_799_000, "20000229T235959Z"),
        (946_684_799_000, "19991231T235959Z"),
        (1_709_164_800_000, "20240229T000000Z"),
        (2_147_483_648_000, "20380119T031408Z"),
        (4_107_542_400_000, "21000301T000000Z"),
        (13_574_606_400_000, "24000229T120000Z"),
    ] {
        assert_eq!(amz_date(unix_ms), expected, "{unix_ms}");
    }
    // 2100 is not a leap year: the day before 1 March is 28 February.
    assert_eq!(amz_date(4_107_542_400_000 - 86_400_000), "21000228T000000Z");
}

#[test]
fn bad_input_is_refused_naming_the_header_only() {
    let creds = Credentials { access_key_id: AKID.into(), secret_access_key: SECRET.into(), session_token: None };
    let scope = Scope { region: "us-east-1", service: "service" };
    let mut request =
        SignableRequest { method: "GET", host: "example.amazonaws.com", path: "/", query: "", headers: &[], body: b"" };
    for bad in ["2015-08-30T12:36:00Z", "20150830T123600", "20150830X123600Z", ""] {
        assert_eq!(sign(&request, &creds, &scope, bad, Options::default()).err(), Some(SignError::BadDate), "{bad:?}");
    }
    let date = "20150830T123600Z";
    request.method = "GE T";
    assert_eq!(sign(&request, &creds, &scope, date, Options::default()).err(), Some(SignError::BadMethod));
    request.method = "GET";
    request.headers = &[("x-token", "hunter2\r\nx-evil: 1")];
    let err = sign(&request, &creds, &scope, date, Options::default()).err().unwrap();
    assert_eq!(err, SignError::BadHeader { name: "x-token".into() });
    assert!(!format!("{err} {err:?}").contains("hunter2"));
    request.headers = &[("bad name", "v")];
    assert!(matches!(sign(&request, &creds, &scope, date, Options::default()), Err(SignError::BadHeader { .. })));
}

#[test]
fn signer_owned_headers_given_by_the_caller_are_not_signed_twice() {
    let creds = Credentials { access_key_id: AKID.into(), secret_access_key: SECRET.into(), session_token: None };
    let scope = Scope { region: "us-east-1", service: "service" };
    let plain =
        SignableRequest { method: "GET", host: "example.amazonaws.com", path: "/", query: "", headers: &[], body: b"" };
    let cluttered = SignableRequest {
        headers: &[("Host", "other"), ("X-Amz-Date", "19990101T000000Z"), ("Authorization", "old")],
        ..plain
    };
    let date = "20150830T123600Z";
    let a = sign(&plain, &creds, &scope, date, Options::default()).unwrap();
    let b = sign(&cluttered, &creds, &scope, date, Options::default()).unwrap();
    assert_eq!(a.canonical_request, b.canonical_request);
    assert_eq!(b.signature, "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31", "get-vanilla");
}

#[test]
fn credentials_never_show_in_debug() {
    let creds = Credentials {
        access_key_id: AKID.into(),
        secret_access_key: SECRET.into(),
        session_token: Some("TOKEN-VALUE".into()),
    };
    let shown = format!("{creds:?}");
    assert!(!shown.contains("EXAMPLEKEY") && !shown.contains("TOKEN-VALUE") && !shown.contains(AKID), "{shown}");
}

/// Requests signed by `aws-sigv4` 1.6.4 (scripts/sigv4-crosscheck), with
/// made-up keys: the same signature, the same headers to add, and the same
/// `x-amz-date` from the same Unix time.
#[test]
fn aws_sigv4_signs_the_same() {
    let cases: Value =
        serde_json::from_str(include_str!("../../tests/fixtures/sigv4/aws-sigv4-cross-check.json")).unwrap();
    let cases = cases.as_array().unwrap();
    assert!(cases.len() >= 40);
    let text = |v: &Value| v.as_str().unwrap().to_string();
    for (i, case) in cases.iter().enumerate() {
        let creds = Credentials {
            access_key_id: text(&case["access_key_id"]),
            secret_access_key: text(&case["secret_access_key"]),
            session_token: case["session_token"].as_str().map(String::from),
        };
        let pairs: Vec<(String, String)> =
            case["headers"].as_array().unwrap().iter().map(|h| (text(&h[0]), text(&h[1]))).collect();
        let headers: Vec<(&str, &str)> = pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let (method, host, path, query, body) = (
            text(&case["method"]),
            text(&case["host"]),
            text(&case["path"]),
            text(&case["query"]),
            text(&case["body"]),
        );
        let request = SignableRequest {
            method: &method,
            host: &host,
            path: &path,
            query: &query,
            headers: &headers,
            body: body.as_bytes(),
        };
        let (region, service) = (text(&case["region"]), text(&case["service"]));
        let date = amz_date(case["unix_ms"].as_u64().unwrap());
        let s =
            sign(&request, &creds, &Scope { region: &region, service: &service }, &date, Options::default()).unwrap();
        assert_eq!(s.signature, text(&case["signature"]), "case {i}: {method} {host}{path}?{query}");
        let mut theirs: Vec<(String, String)> =
            case["added_headers"].as_array().unwrap().iter().map(|h| (text(&h[0]), text(&h[1]))).collect();
        let mut ours = s.headers.clone();
        theirs.sort();
        ours.sort();
        assert_eq!(ours, theirs, "case {i}: headers to add");
    }
}
