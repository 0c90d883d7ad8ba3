//! The `serve` baseline: the same HTTP route served natively, without wasm. The Spin app's own
//! request → reply logic (`edge_secrets_spin_app::handler`, routing, bearer auth, error mapping)
//! runs over the guest's core (`NativeCore`), both compiled into this binary, behind a plain
//! hyper HTTP/1 server. What `serve` adds on top of this is the price of running them as
//! composed components in wasmtime.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context as _, Result};
use bytes::Bytes;
use edge_secrets_guest::engine::{SecretRequest, Source as CoreSource};
use edge_secrets_spin_app::auth::{CallerTokens, TokenCache};
use edge_secrets_spin_app::handler::{self, Incoming};
use edge_secrets_spin_app::model::{self, HealthReport, SecretError, SecretRead, Secrets, Settings};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::native::{NativeCore, NativeHttp};

const POLICY_KEY: &str = edge_secrets_guest::config::POLICY_KEY;

/// The app's settings: the same config map the component reads, with the caller tokens kept
/// for a second as the app's shell keeps them (`auth::TokenCache`), so both sides do the same work.
struct MapSettings {
    map: BTreeMap<String, String>,
    tokens: Mutex<TokenCache>,
    started: Instant,
}

impl Settings for MapSettings {
    fn get(&self, key: &str) -> Result<Option<String>, String> {
        Ok(self.map.get(key).cloned())
    }

    fn caller_tokens(&self) -> Result<Arc<CallerTokens>, SecretError> {
        let now_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens.get(now_ms, || handler::read_caller_tokens(self))
    }
}

/// The `secrets` port over the native core. Only `get` is measured; the admin routes are not.
struct CoreSecrets(NativeCore<'static>);

impl Secrets for CoreSecrets {
    fn get(&mut self, read: &SecretRead) -> Result<model::Secret, SecretError> {
        let request = SecretRequest { environment: read.environment.clone(), name: read.name.clone(), version: read.version.clone(), field: read.field.clone(), refresh: read.refresh, traceparent: read.traceparent.clone() };
        match self.0.get(&request) {
            Ok(secret) => Ok(model::Secret {
                value: secret.value.into_vec(),
                version: secret.version,
                from_cache: secret.source == CoreSource::Cache,
                stale: secret.stale,
                tier: secret.tier,
            }),
            // The benchmark reads one existing secret: any error is reported as a backend
            // failure (a 502, which the load generator counts as failed).
            Err(e) => Err(SecretError::Backend { status: None, reason: e.to_string() }),
        }
    }

    fn stats(&mut self) -> Vec<model::EnvironmentStats> {
        Vec::new()
    }

    fn health(&mut self) -> HealthReport {
        HealthReport {
            ok: true,
            config_error: None,
            environments: Vec::new(),
            unknown_environment_errors: 0,
            shared_status: "disabled",
            shared_error: None,
        }
    }
}

/// Starts the native server on `runtime` at a free loopback port; it runs until the runtime is
/// dropped. `config` must hold the policy, its credentials and `caller_tokens`. The core's
/// cache is filled with `environment`/`name` first and kept for a day: the baseline is the hit
/// path (a miss would block the server's async worker on the native HTTP client).
pub fn start(runtime: &tokio::runtime::Runtime, mut config: BTreeMap<String, String>, environment: &str, name: &str) -> Result<SocketAddr> {
    let mut policy: serde_json::Value = serde_json::from_str(config.get(POLICY_KEY).context("no policy")?)?;
    policy["defaults"]["cache"]["ttl_ms"] = serde_json::json!(86_400_000u64);
    config.insert(POLICY_KEY.into(), policy.to_string());
    // Leaked: the bench process makes one and keeps it to the end, as the core needs a
    // `'static` client for its transport.
    let http: &'static NativeHttp = Box::leak(Box::new(NativeHttp::new()?));
    let mut core = NativeCore::new(&config, http)?;
    core.get(&SecretRequest { environment: environment.into(), name: name.into(), ..SecretRequest::default() })?;
    let settings = MapSettings { map: config, tokens: Mutex::new(TokenCache::default()), started: Instant::now() };
    let app = Arc::new((settings, Mutex::new(CoreSecrets(core))));
    let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    runtime.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let app = app.clone();
            let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let app = app.clone();
                async move { Ok::<_, Infallible>(answer(&app.0, &app.1, &request)) }
            });
            tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    Ok(addr)
}

fn answer(settings: &MapSettings, secrets: &Mutex<CoreSecrets>, request: &hyper::Request<hyper::body::Incoming>) -> hyper::Response<Full<Bytes>> {
    let target = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let authorization = request.headers().get_all(hyper::header::AUTHORIZATION).iter().map(|v| v.as_bytes()).collect();
    let traceparent = request.headers().get_all("traceparent").iter().map(|v| v.as_bytes()).collect();
    let incoming = Incoming { method: request.method().as_str(), target, authorization, traceparent };
    let reply = {
        let mut secrets = secrets.lock().unwrap_or_else(|p| p.into_inner());
        handler::handle(&incoming, settings, &mut *secrets)
    };
    let mut response = hyper::Response::new(Full::new(Bytes::from(reply.body)));
    *response.status_mut() = hyper::StatusCode::from_u16(reply.status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in reply.headers {
        if let Ok(value) = hyper::header::HeaderValue::from_str(&value) {
            response.headers_mut().append(name, value);
        }
    }
    response
}
