//! Figure 7: a cache-hit `GET /v1/secrets/{env}/{name}` through `edge-secrets serve` (the
//! composed Spin app in the P3 host, instances reused as Spin does) against the same route
//! served natively ([`super::native_app`]). Both sides get the same load from the same
//! generator, in interleaved rounds (A B, B A, ...), so machine noise hits both; the ratios are
//! medians of per-round ratios.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result};
use edge_secrets_host::serve::{ServeOptions, Server};
use edge_secrets_host::RuntimeOptions;

use super::load::{self, Load, LoadResult};
use super::stats::{ratio, Samples};
use super::{native_app, Plan, Report, SERVE_CONNECTIONS};

const CALLER_TOKEN: &str = "bench-caller-token-0123456789";
/// Each round stops early after this long, whatever its request count.
const ROUND_LIMIT: Duration = Duration::from_secs(10);

/// `config` with the app's setting that lets [`load_round`]'s token read `env`.
pub(super) fn with_caller_token(config: &BTreeMap<String, String>, env: &str) -> BTreeMap<String, String> {
    let mut config = config.clone();
    config.insert("caller_tokens".into(), serde_json::json!({ env: [CALLER_TOKEN] }).to_string());
    config
}

/// One round of load on `addr`: `requests` authorised GETs of `target` on the bench's
/// connections, each expected to answer `expect_status`.
pub(super) fn load_round(addr: SocketAddr, target: &str, expect_status: u16, requests: u64) -> Load {
    Load {
        addr,
        target: target.to_string(),
        authorization: Some(format!("Bearer {CALLER_TOKEN}")),
        expect_status,
        connections: SERVE_CONNECTIONS,
        requests,
        time_limit: ROUND_LIMIT,
    }
}

/// What one side measured over the rounds.
#[derive(Default)]
struct Side {
    rate: Samples,
    p50: Samples,
    p99: Samples,
}

impl Side {
    fn push(&mut self, result: &LoadResult) {
        self.rate.push(result.per_second());
        self.p50.push(result.quantile(0.50).as_nanos() as f64);
        self.p99.push(result.quantile(0.99).as_nanos() as f64);
    }
}

pub fn figures(plan: &Plan, config: &BTreeMap<String, String>, env: &str, name: &str, cache_dir: PathBuf, report: &mut Report) -> Result<()> {
    let config = with_caller_token(config, env);
    let options = ServeOptions { listen: SocketAddr::from(([127, 0, 0, 1], 0)), ..ServeOptions::default() };
    let server = Server::start(config.clone(), RuntimeOptions::default().cache_dir(Some(cache_dir)), options).context("start serve")?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let native = native_app::start(&rt, config, env, name)?;
    let target = format!("/v1/secrets/{env}/{name}");
    // Warm-up: fills both caches (and the server's instances), and checks both answer 200.
    for addr in [server.local_addr(), native] {
        load::run(&rt, &load_round(addr, &target, 200, (SERVE_CONNECTIONS * 4) as u64))?.all_answered(&format!("{target} on {addr} (warm-up)"))?;
    }

    let (mut wasm, mut plain) = (Side::default(), Side::default());
    for round in 0..plan.batches {
        let order = if round % 2 == 0 { [true, false] } else { [false, true] };
        for through_serve in order {
            let (addr, side) = if through_serve { (server.local_addr(), &mut wasm) } else { (native, &mut plain) };
            let result = load::run(&rt, &load_round(addr, &target, 200, plan.serve_ops()))?;
            result.all_answered(&format!("{target} on {addr}"))?;
            side.push(&result);
        }
    }
    server.shutdown();

    report.rate("serve: cache-hit GET, requests/s (8 connections)", &wasm.rate);
    report.time("serve: p50 latency", &wasm.p50, None);
    report.time("serve: p99 latency", &wasm.p99, None);
    report.rate("native app + core, same route, requests/s", &plain.rate);
    report.time("native: p50 latency", &plain.p50, None);
    report.time("native: p99 latency", &plain.p99, None);
    // Issue 11: a reused instance's cached read at least half as fast as the native route.
    report.ratio("serve GET: native / serve requests/s", ratio(&plain.rate, &wasm.rate), Some(2.0));
    report.ratio("serve GET: p50 serve / native", ratio(&wasm.p50, &plain.p50), None);
    report.ratio("serve GET: p99 serve / native", ratio(&wasm.p99, &plain.p99), None);
    Ok(())
}
