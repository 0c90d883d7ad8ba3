//! Figure 8: the edge's shape. Spin (and `serve --fresh-instance-per-request`) gives the
//! component a fresh instance for (almost) every request, so what a cached read costs there is
//! instantiation, the first call (policy load) and shared state, not a memory hit.
//!
//! - `serve` with a fresh instance per request and with Spin's instance reuse, each answering
//!   the app's own no-op route (a 404 the app answers without calling the provider) and a
//!   cached secret (a shared-state hit when fresh, a memory hit when reused), all four under
//!   the same load in interleaved rounds. The headline: a fresh instance's secret read over
//!   its no-op route (what a provider call adds to a request the host had to set up anyway).
//! - Store operations per shared hit, per miss and per `stats` environment, counted in the
//!   `wasi:keyvalue` binding ([`KeyValue::operations`]): with Redis each is a round trip, with
//!   Spin's SQLite store each write is a write.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{ensure, Context as _, Result};
use edge_secrets_host::serve::{ServeOptions, Server};
use edge_secrets_host::{KeyValue, KvOperations, Request, Runtime, RuntimeOptions, Source};

use super::load;
use super::stats::{interleave, ratio, timed, Samples, Side};
use super::{Plan, Report, SERVE_CONNECTIONS};

const STATE_KEY: &str = "bench_state_key";
/// A path the app answers itself (404) without calling the provider.
const NO_OP_TARGET: &str = "/no-such-route";
/// Fresh instances per store-operation figure.
const STORE_SAMPLES: u64 = 160;

/// Environments added to the policy for the figure that shows what a fresh instance's first
/// call pays per environment (the component reads only the one a call names).
const MORE_ENVIRONMENTS: usize = 8;

/// `config` with `n` more environments like the first one (other names, same backend).
fn with_more_environments(config: &BTreeMap<String, String>, n: usize) -> Result<BTreeMap<String, String>> {
    let key = edge_secrets_guest::config::POLICY_KEY;
    let mut policy: serde_json::Value = serde_json::from_str(config.get(key).context("the bench config has no policy")?)?;
    let environments = policy.get_mut("environments").and_then(|e| e.as_object_mut()).context("the policy has environments")?;
    let like = environments.values().next().cloned().context("the policy has an environment")?;
    for i in 0..n {
        environments.insert(format!("more-{i}"), like.clone());
    }
    let mut config = config.clone();
    config.insert(key.into(), policy.to_string());
    Ok(config)
}

/// `config` with shared state on (the in-memory store in the bench: a `KeyValue` per figure).
pub fn with_shared_state(config: &BTreeMap<String, String>) -> Result<BTreeMap<String, String>> {
    let key = edge_secrets_guest::config::POLICY_KEY;
    let mut policy: serde_json::Value = serde_json::from_str(config.get(key).context("the bench config has no policy")?)?;
    policy.as_object_mut().context("the policy is an object")?.insert("shared".into(), serde_json::json!({ "key_key": STATE_KEY }));
    let mut config = config.clone();
    config.insert(key.into(), policy.to_string());
    // A fixed sealing key is fine here: the bench's store lives in this process only.
    config.insert(STATE_KEY.into(), "42".repeat(32));
    Ok(config)
}

/// The four serve figures and their ratios.
pub fn serve_figures(plan: &Plan, config: &BTreeMap<String, String>, env: &str, name: &str, cache_dir: PathBuf, report: &mut Report) -> Result<()> {
    let config = super::serve::with_caller_token(&with_shared_state(config)?, env);
    let kv = KeyValue::memory();
    let start = |fresh: bool| {
        let options = ServeOptions { listen: SocketAddr::from(([127, 0, 0, 1], 0)), fresh_instance_per_request: fresh, ..ServeOptions::default() };
        let runtime = RuntimeOptions::default().cache_dir(Some(cache_dir.clone())).keyvalue(kv.clone());
        Server::start(config.clone(), runtime, options).context("start serve")
    };
    let (fresh, reused) = (start(true)?, start(false)?);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let secret = format!("/v1/secrets/{env}/{name}");
    let load_of = |addr: SocketAddr, target: &str, requests: u64| {
        super::serve::load_round(addr, target, if target == NO_OP_TARGET { 404 } else { 200 }, requests)
    };
    let sides = [(fresh.local_addr(), NO_OP_TARGET), (fresh.local_addr(), secret.as_str()), (reused.local_addr(), NO_OP_TARGET), (reused.local_addr(), secret.as_str())];
    // Warm-up: the first secret read fetches and publishes it; every side must answer as expected.
    for (addr, target) in sides {
        load::run(&rt, &load_of(addr, target, (SERVE_CONNECTIONS * 4) as u64))?.all_answered(&format!("{target} on {addr} (warm-up)"))?;
    }
    let created = fresh.instances_created();
    let mut rates: [Samples; 4] = Default::default();
    let mut p50: [Samples; 4] = Default::default();
    let mut fresh_requests = 0;
    for round in 0..plan.batches {
        for k in 0..sides.len() {
            // A different side first in each round, so a noisy moment does not always hit one.
            let i = (round + k) % sides.len();
            let (addr, target) = sides[i];
            let result = load::run(&rt, &load_of(addr, target, plan.serve_ops()))?;
            result.all_answered(&format!("{target} on {addr}"))?;
            rates[i].push(result.per_second());
            if addr == fresh.local_addr() {
                fresh_requests += result.ok;
            }
            p50[i].push(result.quantile(0.5).as_nanos() as f64);
        }
    }
    let served = fresh.instances_created() - created;
    ensure!(served >= fresh_requests, "the fresh server reused instances ({served} for {fresh_requests} requests)");
    fresh.shutdown();
    reused.shutdown();

    let [fresh_noop, fresh_secret, reused_noop, reused_secret] = &rates;
    report.rate("edge: fresh instance, no-op route (404), req/s", fresh_noop);
    report.rate("edge: fresh instance, cached secret, req/s", fresh_secret);
    report.time("  fresh: p50 latency, no-op route", &p50[0], None);
    report.time("  fresh: p50 latency, cached secret", &p50[1], None);
    report.rate("edge: reused instance, no-op route (404), req/s", reused_noop);
    report.rate("edge: reused instance, cached secret, req/s", reused_secret);
    report.ratio_at_least("fresh: secret / no-op route (req/s)", ratio(fresh_secret, fresh_noop), 0.8);
    report.ratio("reused: secret / no-op route (req/s)", ratio(reused_secret, reused_noop), None);
    report.ratio("no-op route: reused / fresh (req/s)", ratio(reused_noop, fresh_noop), None);
    Ok(())
}

/// Store operations per shared hit, per miss and per `stats` environment, each in a fresh
/// instance (the edge's case), counted through the key-value binding; and, without HTTP in the
/// way, what a fresh instance's shared hit costs next to a fresh instance's empty call.
pub fn store_figures(plan: &Plan, config: &BTreeMap<String, String>, hit_env: &str, miss_env: &str, name: &str, cache_dir: PathBuf, report: &mut Report) -> Result<()> {
    let config = with_shared_state(config)?;
    let kv = KeyValue::memory();
    let runtime = Runtime::new(config.clone(), RuntimeOptions::default().cache_dir(Some(cache_dir.clone())).keyvalue(kv.clone()))?;
    let hit = Request::new(hit_env, name);
    ensure!(runtime.client()?.get(&hit)?.source == Source::Backend, "the first read should fetch");

    // Each call's own operations: a shared hit's counts are flushed by one call in
    // `count_sample` (16), so hits are reported as the usual hit plus how often one flushed.
    let per_call = |f: &mut dyn FnMut() -> Result<()>| -> Result<Vec<KvOperations>> {
        let mut calls = Vec::new();
        for _ in 0..STORE_SAMPLES {
            let before = kv.operations();
            f()?;
            calls.push(kv.operations() - before);
        }
        Ok(calls)
    };
    let mean = |calls: &[KvOperations]| {
        let n = calls.len().max(1) as f64;
        (calls.iter().map(|c| c.reads).sum::<u64>() as f64 / n, calls.iter().map(|c| c.writes).sum::<u64>() as f64 / n)
    };
    let hits = per_call(&mut || {
        let secret = runtime.client()?.get(&hit)?;
        ensure!(secret.source == Source::Cache, "a fresh instance missed the shared cache");
        Ok(())
    })?;
    let (flushing, plain): (Vec<KvOperations>, Vec<KvOperations>) = hits.iter().partition(|c| c.writes > 0);
    ensure!(!plain.is_empty(), "every shared hit wrote to the store");
    let most = |f: fn(&KvOperations) -> u64| plain.iter().map(f).max().unwrap_or(0) as f64;
    let miss = Request::new(miss_env, name);
    let missed = mean(&per_call(&mut || {
        let secret = runtime.client()?.get(&miss)?;
        ensure!(secret.source == Source::Backend, "a ttl-0 read was served from a cache");
        Ok(())
    })?);
    let mut environments = 0;
    let stats = mean(&per_call(&mut || {
        let stats = runtime.client()?.stats()?;
        ensure!(stats.iter().all(|s| s.counters_shared), "stats did not read the shared totals");
        environments = stats.len().max(1);
        Ok(())
    })?);
    let per_env = |(r, w): (f64, f64)| (r / environments as f64, w / environments as f64);
    let stats = per_env(stats);

    // A fresh instance per operation, as under Spin: its first call is a shared hit (policy
    // load, one store read, unsealing) or an empty export call (neither). The same hit with
    // a policy of more environments (same store, same entry) shows what each one adds.
    let wide = Runtime::new(with_more_environments(&config, MORE_ENVIRONMENTS)?, RuntimeOptions::default().cache_dir(Some(cache_dir)).keyvalue(kv.clone()))?;
    let fresh_hit = |runtime: &Runtime| -> Result<()> {
        let secret = runtime.client()?.get(&hit)?;
        ensure!(secret.source == Source::Cache, "a fresh instance missed the shared cache");
        Ok(())
    };
    let mut fresh_get = |n| timed(n, || fresh_hit(&runtime));
    let mut fresh_get_wide = |n| timed(n, || fresh_hit(&wide));
    let mut fresh_ping = |n| timed(n, || Ok(runtime.client()?.ping()?));
    let ops = plan.instance_ops();
    let [get, ping, wide_get]: [Samples; 3] = interleave(
        plan.batches,
        true,
        &mut [Side::new(ops, &mut fresh_get), Side::new(ops, &mut fresh_ping), Side::new(ops, &mut fresh_get_wide)],
    )?
    .try_into()
    .expect("three sides");
    report.time("fresh instance + shared-hit get (Runtime, no HTTP)", &get, None);
    report.time("fresh instance + empty call (Runtime, no HTTP)", &ping, None);
    report.time("  the same get, policy with 8 more environments", &wide_get, None);
    report.ratio("fresh instance: shared-hit get / empty call", ratio(&get, &ping), None);
    report.ratio("fresh shared hit: 8 more environments / the bench's 2", ratio(&wide_get, &get), None);

    report.count("store ops per unsampled shared hit (fresh): reads", most(|c| c.reads), Some(1.0));
    report.count("store ops per unsampled shared hit (fresh): writes", most(|c| c.writes), Some(0.0));
    report.count("  shared hits that flushed sampled counts (~1/16)", flushing.len() as f64 / hits.len() as f64, None);
    report.count("store ops per miss (fresh instance): reads", missed.0, None);
    report.count("store ops per miss (fresh instance): writes", missed.1, None);
    report.count("store ops per stats, per environment: reads", stats.0, None);
    report.count("store ops per stats, per environment: writes", stats.1, None);
    Ok(())
}
