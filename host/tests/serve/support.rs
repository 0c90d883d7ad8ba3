//! Test support: the server started in-process against the loopback fake backend, and a small
//! HTTP client. Responses never print their bodies (they may be secret values).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use edge_secrets_host::serve::{ServeOptions, Server};
use edge_secrets_host::RuntimeOptions;
use edge_secrets_tests::harness::{quick_defaults, test_options};
use edge_secrets_tests::{FakeBackend, PolicyBuilder};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

pub const DEV_TOKEN: &str = "caller-dev-0123456789abcdef";
/// The `admin_tokens` setting: `/metrics` and the detailed `/healthz` need it.
pub const ADMIN_TOKEN: &str = "admin-Lm3nB8vC1xZ6qW0eR5tY";
pub const PROD_TOKEN: &str = "caller-prod-0123456789";
pub const DB_PASSWORD: &str = "pw-one-s3cr3t";

/// A fake backend with environments `dev` and `prod` (Vault), caller tokens for both, and the
/// server over them.
pub struct App {
    pub backend: FakeBackend,
    pub server: Server,
    pub client: HttpClient,
}

impl App {
    #[allow(dead_code)] // each test file compiles its own copy; only some use this
    pub fn start(fresh_instance_per_request: bool) -> App {
        App::start_with(fresh_instance_per_request, |p| p)
    }

    /// `configure` adjusts the policy (after `dev` and `prod` are added).
    pub fn start_with(fresh_instance_per_request: bool, configure: impl FnOnce(PolicyBuilder) -> PolicyBuilder) -> App {
        App::start_serving(ServeOptions { fresh_instance_per_request, ..options() }, configure)
    }

    #[allow(dead_code)] // each test file compiles its own copy; only some use this
    /// Like [`App::start_with`] with the server's options given (start from [`options`]).
    pub fn start_serving(options: ServeOptions, configure: impl FnOnce(PolicyBuilder) -> PolicyBuilder) -> App {
        App::start_full(options, test_options(), configure)
    }

    #[allow(dead_code)] // each test file compiles its own copy; only some use this
    /// Like [`App::start_serving`] with the runtime options given too (start from `test_options()`).
    pub fn start_full(options: ServeOptions, runtime: RuntimeOptions, configure: impl FnOnce(PolicyBuilder) -> PolicyBuilder) -> App {
        let backend = FakeBackend::start();
        backend.expect_vault_token("t-vault");
        backend.put_vault("app/db", 1, &[("value", DB_PASSWORD), ("user", "admin")]);
        backend.put_vault("team/a/key", 4, &[("value", "k-4")]);
        let policy = configure(quick_defaults().vault("dev", &backend.url(), "t-vault").vault("prod", &backend.url(), "t-vault"));
        let server = start_server_full(policy.config(), runtime, options);
        let client = HttpClient::new(server.local_addr());
        App { backend, server, client }
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> Reply {
        let auth = token.map(|t| format!("Bearer {t}"));
        self.client.get(path, auth.as_deref())
    }
}

#[allow(dead_code)] // each test file compiles its own copy; only some use this
pub fn start_server(config: BTreeMap<String, String>, fresh_instance_per_request: bool) -> Server {
    start_server_with(config, ServeOptions { fresh_instance_per_request, ..options() })
}

/// The tests' server options: loopback, port 0, a shorter shutdown grace.
pub fn options() -> ServeOptions {
    ServeOptions { listen: SocketAddr::from(([127, 0, 0, 1], 0)), shutdown_grace: Duration::from_secs(10), ..ServeOptions::default() }
}

#[allow(dead_code)] // each test file compiles its own copy; only some use this
pub fn start_server_with(config: BTreeMap<String, String>, options: ServeOptions) -> Server {
    start_server_full(config, test_options(), options)
}

pub fn start_server_full(mut config: BTreeMap<String, String>, runtime: RuntimeOptions, options: ServeOptions) -> Server {
    let tokens = serde_json::json!({ "dev": [DEV_TOKEN], "prod": PROD_TOKEN });
    config.insert("caller_tokens".into(), tokens.to_string());
    config.insert("admin_tokens".into(), ADMIN_TOKEN.to_string());
    Server::start(config, runtime, options).expect("start the server")
}

/// A response. No `Debug`: the body may be a secret.
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| panic!("status {}: body is not JSON", self.status))
    }

    #[allow(dead_code)] // each test file compiles its own copy; only some use this
    pub fn text(&self) -> String {
        String::from_utf8(self.body.to_vec()).expect("UTF-8 body")
    }

    #[allow(dead_code)] // each test file compiles its own copy; only some use this
    /// `(status, error kind)` of a JSON error reply.
    pub fn error(&self) -> (u16, String) {
        (self.status, self.json()["error"].as_str().unwrap_or("<none>").to_string())
    }
}

/// A keep-alive HTTP/1.1 client on its own runtime, so sync tests can use it.
pub struct HttpClient {
    rt: tokio::runtime::Runtime,
    client: Client<HttpConnector, Empty<Bytes>>,
    addr: SocketAddr,
}

impl HttpClient {
    pub fn new(addr: SocketAddr) -> HttpClient {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let client = Client::builder(TokioExecutor::new()).build_http();
        HttpClient { rt, client, addr }
    }

    pub fn get(&self, path: &str, authorization: Option<&str>) -> Reply {
        self.request("GET", path, authorization.map(|a| vec![a]).unwrap_or_default())
    }

    pub fn request(&self, method: &str, path: &str, authorization: Vec<&str>) -> Reply {
        self.try_request(method, path, authorization).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`HttpClient::request`], but a transport failure (no response within `timeout`, a
    /// dropped connection, a broken body) is an `Err` naming it, for tests that count them.
    #[allow(dead_code)] // each test file compiles its own copy; only some use this
    pub fn try_request_within(&self, timeout: Duration, method: &str, path: &str, authorization: Vec<&str>) -> Result<Reply, String> {
        self.rt.block_on(async {
            let mut request = http::Request::builder().method(method).uri(format!("http://{}{path}", self.addr));
            for value in authorization {
                request = request.header(http::header::AUTHORIZATION, value);
            }
            let request = request.body(Empty::new()).unwrap();
            let response = tokio::time::timeout(timeout, self.client.request(request)).await.map_err(|_| "no response in time".to_string())?;
            let (parts, body) = response.map_err(|e| format!("request: {e}"))?.into_parts();
            let body = body.collect().await.map_err(|e| format!("body: {e}"))?.to_bytes();
            Ok(Reply { status: parts.status.as_u16(), headers: parts.headers, body })
        })
    }

    fn try_request(&self, method: &str, path: &str, authorization: Vec<&str>) -> Result<Reply, String> {
        self.try_request_within(Duration::from_secs(30), method, path, authorization)
    }
}
