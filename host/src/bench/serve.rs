//! Figure 7: a cache-hit `GET /v1/secrets/{env}/{name}` through `edge-secrets serve` (the
//! composed Spin app in the P3 host, instances reused as Spin does) against the same route
//! served natively ([`super::native_app`]). Both sides get the same load from the same
//! generator, in interleaved rounds (A B, B A, ...), so machine noise hits both; the ratios are
//! medians of per-round ratios.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{ensure, Context as _, Result};
use edge_secrets_host::serve::{ServeOptions, Server};
use edge_secrets_host::RuntimeOptions;

use super::load::{self, Load, LoadResult};
use super::stats::{ratio, Samples};
use super::{native_app, Plan, Report, SERVE_CONNECTIONS};

const CALLER_TOKEN: &str = "bench-caller-token-0123456789";
/// Each round stops early after this long, whatever its request count.
const ROUND_LIMIT: Duration = Duration::from_secs(10);

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
    let mut config = config.clone();
    config.insert("caller_tokens".into(), serde_json::json!({ env: [CALLER_TOKEN] }).to_string());
    let options = ServeOptions { listen: SocketAddr::from(([127, 0, 0, 1], 0)), ..ServeOptions::default() };
    let server = Server::start(config.clone(), RuntimeOptions::default().cache_dir(Some(cache_dir)), options).context("start serve")?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let native = native_app::start(&rt, config, env, name)?;

    let load_of = |addr: SocketAddr, requests: u64| Load {
        addr,
        target: format!("/v1/secrets/{env}/{name}"),
        authorization: Some(format!("Bearer {CALLER_TOKEN}")),
        expect_status: 200,
        connections: SERVE_CONNECTIONS,
        requests,
        time_limit: ROUND_LIMIT,
    };
    // Warm-up: fills both caches (and the server's instances), and checks both answer 200.
    for addr in [server.local_addr(), native] {
        let warm = load::run(&rt, &load_of(addr, (SERVE_CONNECTIONS * 4) as u64))?;
        ensure!(warm.failed == 0 && warm.ok > 0, "warm-up GETs to {addr} failed ({} of {})", warm.failed, warm.ok + warm.failed);
    }

    let (mut wasm, mut plain) = (Side::default(), Side::default());
    for round in 0..plan.batches {
        let order = if round % 2 == 0 { [true, false] } else { [false, true] };
        for through_serve in order {
            let (addr, side) = if through_serve { (server.local_addr(), &mut wasm) } else { (native, &mut plain) };
            let result = load::run(&rt, &load_of(addr, plan.serve_ops()))?;
            ensure!(result.failed == 0, "{} of {} GETs to {addr} failed (first: {})", result.failed, result.ok + result.failed, result.first_failure.as_deref().unwrap_or("?"));
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
