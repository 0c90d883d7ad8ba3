//! Pseudo-random requests (a fixed seed, so the output is stable) signed by
//! `aws-sigv4` with its default settings: header signing, path normalization,
//! paths encoded twice, session token signed, no `x-amz-content-sha256`.

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use serde_json::json;
use std::time::{Duration, UNIX_EPOCH};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> usize {
        (self.next() % n) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64)]
    }
    fn text(&mut self, parts: &[&str], max: u64) -> String {
        (0..1 + self.below(max)).map(|_| self.pick(parts)).collect()
    }
}

/// Path pieces: unreserved, reserved-but-legal, escapes (some of UTF-8), dots.
const PATH: &[&str] = &[
    "a",
    "Z",
    "9",
    "-",
    "_",
    "~",
    ".",
    "..",
    "@",
    ":",
    "+",
    "!",
    "*",
    "=",
    ",",
    ";",
    "'",
    "(",
    ")",
    "%20",
    "%3D",
    "%2F",
    "%E1%88%B4",
    "%C3%A9",
    "%25",
];
const QUERY: &[&str] = &[
    "a",
    "B",
    "7",
    "-",
    "_",
    ".",
    "~",
    "+",
    "%20",
    "%2B",
    "%2F",
    "%3D",
    "%26",
    "%C3%A9",
    "%E1%88%B4",
    "/",
    ":",
    "@",
    "!",
    "*",
    "%zz",
];
const VALUE: &[&str] = &["v", "V", "1", " ", "  ", "   ", "\"", "/", ";", "=", ",", "x y", "é"];
const NAMES: &[&str] = &[
    "X-Custom",
    "x-amz-target",
    "Content-Type",
    "content-length",
    "My-Header1",
    "x-b",
    "X-A",
    "accept",
    "x-amz-meta-k",
];
const HOSTS: &[&str] =
    &["example.amazonaws.com", "secretsmanager.us-east-1.amazonaws.com", "127.0.0.1:4566", "localhost:8080"];
const REGIONS: &[&str] = &["us-east-1", "eu-west-3", "ap-southeast-2"];
const SERVICES: &[&str] = &["service", "secretsmanager", "sts"];

fn main() {
    let mut rng = Rng(0x5167_7634_2025_0001);
    // What the AWS backend will send: GetSecretValue, with temporary credentials.
    let sm_headers = vec![
        ("X-Amz-Target".to_string(), "secretsmanager.GetSecretValue".to_string()),
        ("Content-Type".to_string(), "application/x-amz-json-1.1".to_string()),
    ];
    let mut cases = vec![signed(Input {
        method: "POST",
        host: "secretsmanager.eu-west-3.amazonaws.com",
        path: "/",
        query: "",
        headers: &sm_headers,
        body: r#"{"SecretId":"prod/db","VersionStage":"AWSCURRENT"}"#,
        secret: "secret/sm+1",
        token: Some("FQoGZXIvYXdzEsm//token=".to_string()),
        region: "eu-west-3",
        service: "secretsmanager",
        unix_ms: 1_767_225_600_123,
    })];
    for i in 0..40 {
        let method = rng.pick(&["GET", "POST", "PUT", "DELETE"]);
        let host = rng.pick(HOSTS);
        let segments = rng.below(5);
        let mut path: String = (0..segments).map(|_| format!("/{}", rng.text(PATH, 4))).collect();
        if path.is_empty() || rng.below(4) == 0 {
            path.push('/');
        }
        let query: Vec<String> = (0..rng.below(4))
            .map(|_| match rng.below(5) {
                0 => rng.text(QUERY, 4),
                _ => format!("{}={}", rng.text(QUERY, 4), rng.text(QUERY, 5)),
            })
            .collect();
        let query = query.join("&");
        let mut headers: Vec<(String, String)> = Vec::new();
        for _ in 0..rng.below(5) {
            let name = rng.pick(NAMES);
            headers.push((name.to_string(), rng.text(VALUE, 6)));
        }
        // HTTP itself strips leading and trailing whitespace; what is sent has none to trim.
        for (_, value) in &mut headers {
            *value = value.trim().to_string();
            if value.is_empty() {
                value.push('v');
            }
        }
        let body: String = (0..rng.below(3) * 17).map(|_| rng.pick(&["{", "}", "a", "\"", ":", " ", "é"])).collect();
        let region = rng.pick(REGIONS);
        let service = rng.pick(SERVICES);
        let token = (rng.below(3) == 0).then(|| format!("FQoGZXIvYXdzE{}//token+{}=", i, rng.next()));
        let secs = 946_684_800 + rng.next() % (100 * 365 * 86_400);
        let unix_ms = secs * 1000 + rng.next() % 1000;

        let secret = format!("secret/{}+{}", i, rng.next());
        cases.push(signed(Input {
            method,
            host,
            path: &path,
            query: &query,
            headers: &headers,
            body: &body,
            secret: &secret,
            token,
            region,
            service,
            unix_ms,
        }));
    }
    println!("{}", serde_json::to_string_pretty(&cases).unwrap());
}

struct Input<'a> {
    method: &'a str,
    host: &'a str,
    path: &'a str,
    query: &'a str,
    headers: &'a [(String, String)],
    body: &'a str,
    secret: &'a str,
    token: Option<String>,
    region: &'a str,
    service: &'a str,
    unix_ms: u64,
}

fn signed(input: Input<'_>) -> serde_json::Value {
    let Input { method, host, path, query, headers, body, secret, token, region, service, unix_ms } = input;
    let identity = Credentials::new("AKIDCROSSCHECK", secret.to_string(), token.clone(), None, "crosscheck").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(UNIX_EPOCH + Duration::from_millis(unix_ms))
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let scheme = if host.contains(':') { "http" } else { "https" };
    let uri =
        if query.is_empty() { format!("{scheme}://{host}{path}") } else { format!("{scheme}://{host}{path}?{query}") };
    let request = SignableRequest::new(
        method,
        uri,
        headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        SignableBody::Bytes(body.as_bytes()),
    )
    .unwrap();
    let (instructions, signature) = sign(request, &params).unwrap().into_parts();
    let (added, _) = instructions.into_parts();
    let added: Vec<(String, String)> = added.iter().map(|h| (h.name().to_string(), h.value().to_string())).collect();
    json!({
        "method": method, "host": host, "path": path, "query": query,
        "headers": headers, "body": body,
        "access_key_id": "AKIDCROSSCHECK", "secret_access_key": secret, "session_token": token,
        "region": region, "service": service, "unix_ms": unix_ms,
        "signature": signature, "added_headers": added,
    })
}
