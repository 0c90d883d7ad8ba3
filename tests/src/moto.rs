//! A throwaway moto server (the AWS emulator, PyPI `moto[server]`, installed by
//! `./scripts/test`) on a loopback port it picks itself, with IAM authentication on: every
//! request must carry a valid SigV4 signature by a known IAM access key, and its policies must
//! allow the action. moto recomputes each signature with botocore, so a read it accepts proves
//! the component's signing, and one it refuses proves a bad key is caught.
//!
//! Fixture calls (`CreateSecret`, `PutSecretValue`, ...) are plain HTTP/1.1 JSON requests
//! signed with the guest's own signer; moto has no unsigned mode once authentication is on
//! (an unsigned request gets a 500).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use edge_secrets_guest::sigv4::{self, Credentials, Scope, SignableRequest};
use serde_json::{json, Value};

use crate::codec::base64_encode;

/// The launcher: `ThreadedMotoServer` on port 0, printing the port it bound.
const LAUNCHER: &str = include_str!("moto_server.py");
/// moto's default account, in every ARN it makes.
pub const ACCOUNT: &str = "123456789012";
/// The region fixtures are created in.
pub const REGION: &str = "us-east-1";

/// An IAM access key moto issued. `Debug` shows the key id only.
#[derive(Clone)]
pub struct AwsKeys {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for AwsKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AwsKeys({}, <redacted>)", self.access_key_id)
    }
}

impl AwsKeys {
    fn credentials(&self) -> Credentials {
        Credentials {
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret_access_key.clone(),
            session_token: self.session_token.clone(),
        }
    }
}

/// What a secret version holds.
pub enum SecretValue<'a> {
    Text(&'a str),
    Binary(&'a [u8]),
}

impl SecretValue<'_> {
    fn insert_into(&self, body: &mut Value) {
        match self {
            SecretValue::Text(text) => body["SecretString"] = json!(text),
            SecretValue::Binary(bytes) => body["SecretBinary"] = json!(base64_encode(bytes)),
        }
    }
}

/// A moto call that did not answer 200: its status and error body (never a secret value:
/// fixture errors name secrets, not their contents).
#[derive(Debug)]
pub struct MotoError {
    pub status: u16,
    pub body: String,
}

pub struct Moto {
    child: Child,
    /// Held open: the launcher exits when it closes.
    _stdin: ChildStdin,
    port: u16,
    reader: AwsKeys,
    denied: AwsKeys,
}

impl Moto {
    /// One server for the whole test process, started on first use (~1-2 s). Never dropped:
    /// the launcher stops when the process exits and its stdin closes.
    pub fn shared() -> &'static Moto {
        static SHARED: OnceLock<Moto> = OnceLock::new();
        SHARED.get_or_init(Moto::start)
    }

    /// Starts a server, creates the IAM users `edge-reader` (allowed everything) and
    /// `edge-denied` (no policy), then turns authentication on.
    pub fn start() -> Moto {
        let mut child = Command::new("python3")
            .args(["-c", LAUNCHER])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 is not installed (./scripts/test installs it and moto[server])");
        let stdin = child.stdin.take().expect("piped stdin");
        let mut line = String::new();
        let read = BufReader::new(child.stdout.take().expect("piped stdout")).read_line(&mut line);
        let port = match (read, line.trim().parse::<u16>()) {
            (Ok(_), Ok(port)) if port != 0 => port,
            _ => {
                let _ = child.kill();
                panic!("moto did not start (is `moto[server]` installed? ./scripts/test installs it); it printed {line:?}");
            }
        };
        let bootstrap = AwsKeys { access_key_id: "AKIABOOTSTRAP0000000".into(), secret_access_key: "unchecked".into(), session_token: None };
        let mut moto = Moto { child, _stdin: stdin, port, reader: bootstrap.clone(), denied: bootstrap };
        moto.wait_until_it_answers();
        let allow_all = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]});
        moto.reader = moto.iam_user("edge-reader", Some(&allow_all));
        moto.denied = moto.iam_user("edge-denied", None);
        // From now on every request is authenticated (moto counts unauthenticated ones up to
        // this number; 0: none).
        let (status, body) = moto.http("/moto-api/reset-auth", &[("content-type", "text/plain".into())], b"0");
        assert_eq!(status, 200, "moto refused to turn authentication on: {}", String::from_utf8_lossy(&body));
        moto
    }

    /// `http://127.0.0.1:PORT`, the component's `url` for it.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// An access key whose user may do everything.
    pub fn keys(&self) -> &AwsKeys {
        &self.reader
    }

    /// A valid access key whose user has no policy: every action is denied.
    pub fn denied_keys(&self) -> &AwsKeys {
        &self.denied
    }

    /// Creates a secret; returns its first version id.
    pub fn create_secret(&self, name: &str, value: SecretValue<'_>) -> String {
        let mut body = json!({ "Name": name });
        value.insert_into(&mut body);
        version_id(self.secrets("CreateSecret", body))
    }

    /// Adds a version, which becomes `AWSCURRENT` (the old one `AWSPREVIOUS`) unless `stages`
    /// names others; returns its version id.
    pub fn put_secret_value(&self, name: &str, value: SecretValue<'_>, stages: &[&str]) -> String {
        let mut body = json!({ "SecretId": name });
        value.insert_into(&mut body);
        if !stages.is_empty() {
            body["VersionStages"] = json!(stages);
        }
        version_id(self.secrets("PutSecretValue", body))
    }

    /// Moves the label `stage` to `version_id` (from wherever it was).
    pub fn move_stage(&self, name: &str, stage: &str, version_id: &str, from: Option<&str>) {
        let mut body = json!({ "SecretId": name, "VersionStage": stage, "MoveToVersionId": version_id });
        if let Some(from) = from {
            body["RemoveFromVersionId"] = json!(from);
        }
        self.secrets("UpdateSecretVersionStage", body);
    }

    /// Schedules the secret for deletion (it then refuses reads with InvalidRequestException).
    pub fn delete_secret(&self, name: &str) {
        self.secrets("DeleteSecret", json!({ "SecretId": name }));
    }

    /// Any Secrets Manager action, signed with `keys`.
    pub fn call_secrets(&self, action: &str, body: &Value, keys: &AwsKeys) -> Result<Value, MotoError> {
        let target = format!("secretsmanager.{action}");
        let headers = [("content-type", "application/x-amz-json-1.1"), ("x-amz-target", target.as_str())];
        let (status, body) = self.signed("secretsmanager", &headers, body.to_string().as_bytes(), keys);
        let text = String::from_utf8_lossy(&body).into_owned();
        match status {
            200 => Ok(serde_json::from_str(&text).unwrap_or(Value::Null)),
            _ => Err(MotoError { status, body: text }),
        }
    }

    /// Temporary credentials (with a session token) for a new role allowed everything,
    /// assumed by `edge-reader` through STS.
    pub fn assume_role(&self, role: &str) -> AwsKeys {
        let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:user/edge-reader")}, "Action": "sts:AssumeRole"}]});
        let allow_all = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]});
        self.query("iam", &[("Action", "CreateRole"), ("RoleName", role), ("AssumeRolePolicyDocument", &trust.to_string())]);
        self.query("iam", &[("Action", "PutRolePolicy"), ("RoleName", role), ("PolicyName", "all"), ("PolicyDocument", &allow_all.to_string())]);
        let arn = format!("arn:aws:iam::{ACCOUNT}:role/{role}");
        let xml = self.query("sts", &[("Action", "AssumeRole"), ("RoleArn", &arn), ("RoleSessionName", "edge-test")]);
        AwsKeys {
            access_key_id: xml_text(&xml, "AccessKeyId"),
            secret_access_key: xml_text(&xml, "SecretAccessKey"),
            session_token: Some(xml_text(&xml, "SessionToken")),
        }
    }

    fn secrets(&self, action: &str, body: Value) -> Value {
        self.call_secrets(action, &body, &self.reader).unwrap_or_else(|e| panic!("moto {action}: {e:?}"))
    }

    /// An IAM user with an access key and, optionally, an inline policy.
    fn iam_user(&self, user: &str, policy: Option<&Value>) -> AwsKeys {
        self.query("iam", &[("Action", "CreateUser"), ("UserName", user)]);
        if let Some(policy) = policy {
            self.query("iam", &[("Action", "PutUserPolicy"), ("UserName", user), ("PolicyName", "all"), ("PolicyDocument", &policy.to_string())]);
        }
        let xml = self.query("iam", &[("Action", "CreateAccessKey"), ("UserName", user)]);
        AwsKeys { access_key_id: xml_text(&xml, "AccessKeyId"), secret_access_key: xml_text(&xml, "SecretAccessKey"), session_token: None }
    }

    /// A query-protocol call (IAM, STS): form-encoded, answered in XML.
    fn query(&self, service: &str, params: &[(&str, &str)]) -> String {
        let version = if service == "sts" { "2011-06-15" } else { "2010-05-08" };
        let mut form = format!("Version={version}");
        for (key, value) in params {
            form += &format!("&{key}={}", form_encode(value));
        }
        let headers = [("content-type", "application/x-www-form-urlencoded")];
        let (status, body) = self.signed(service, &headers, form.as_bytes(), &self.reader);
        let text = String::from_utf8_lossy(&body).into_owned();
        assert_eq!(status, 200, "moto {service} {:?}: {text}", params.first());
        text
    }

    /// A signed POST to `/`. moto routes by the service in the credential scope.
    fn signed(&self, service: &str, headers: &[(&str, &str)], body: &[u8], keys: &AwsKeys) -> (u16, Vec<u8>) {
        let host = format!("127.0.0.1:{}", self.port);
        let request = SignableRequest { method: "POST", host: &host, path: "/", query: "", headers, body };
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).expect("a clock after 1970").as_millis() as u64;
        let scope = Scope { region: REGION, service };
        let signed = sigv4::sign(&request, &keys.credentials(), &scope, &sigv4::amz_date(now_ms), sigv4::Options::default())
            .expect("fixture requests are signable");
        let mut all: Vec<(&str, String)> = headers.iter().map(|(n, v)| (*n, v.to_string())).collect();
        all.extend(signed.headers.iter().map(|(n, v)| (n.as_str(), v.clone())));
        self.http("/", &all, body)
    }

    /// One HTTP/1.1 exchange on a fresh connection (`Connection: close`).
    fn http(&self, path: &str, headers: &[(&str, String)], body: &[u8]) -> (u16, Vec<u8>) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to moto");
        stream.set_read_timeout(Some(Duration::from_secs(30))).expect("a read timeout");
        let mut head = format!("POST {path} HTTP/1.1\r\nhost: 127.0.0.1:{}\r\ncontent-length: {}\r\nconnection: close\r\n", self.port, body.len());
        for (name, value) in headers {
            head += &format!("{name}: {value}\r\n");
        }
        head += "\r\n";
        stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(body)).expect("send to moto");
        let mut response = Vec::new();
        stream.read_to_end(&mut response).expect("read moto's answer");
        let split = response.windows(4).position(|w| w == b"\r\n\r\n").expect("an HTTP response head");
        let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
        assert!(!head.contains("transfer-encoding: chunked"), "moto answered chunked; this client reads plain bodies");
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status code");
        (status, response[split + 4..].to_vec())
    }

    fn wait_until_it_answers(&self) {
        let started = Instant::now();
        while TcpStream::connect_timeout(&([127, 0, 0, 1], self.port).into(), Duration::from_millis(200)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "moto did not answer on port {}", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn version_id(answer: Value) -> String {
    answer["VersionId"].as_str().expect("moto answered without a VersionId").to_string()
}

/// The text of the first `<tag>` element (moto's IAM/STS answers; keys are plain base64-ish).
fn xml_text(xml: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let start = xml.find(&open).map(|i| i + open.len()).unwrap_or_else(|| panic!("no <{tag}> in moto's answer"));
    let end = xml[start..].find('<').expect("a closing tag") + start;
    xml[start..end].to_string()
}

/// `application/x-www-form-urlencoded` value encoding (RFC 3986 unreserved kept).
fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
