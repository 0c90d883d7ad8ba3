//! A bounded chaos run through `serve`: two backend tiers (a Vault primary, and a GCP mirror
//! holding the same values under its own version numbers) each fault on 30 % of requests,
//! while 16 callers read for a fixed wall time from `dev` (both tiers, stale answers allowed)
//! and `prod` (the primary alone, never stale, so failures reach callers as typed errors). Asserted are invariants only — every answer is
//! the right value or a typed error, and the backends saw no more requests than the retry
//! budget allows — never tallies, which depend on timing. The tallies are printed (see them
//! with `--nocapture`; a failing run shows them anyway).
//!
//! Determinism: the seeds fix each backend's fault sequence (the fate of the n-th request it
//! receives) and each caller's sequence of secrets. Which caller's request is a backend's n-th,
//! and so every tally, is up to thread interleaving; the invariants hold whatever it is.
//!
//! Two phases of 5 s, both with shared state (`wasi:keyvalue` in memory) so that the retry
//! budget, breakers and cache are one per deployment: a fresh instance per request (how Spin
//! runs the component, where everything goes through the store), then Spin-like reuse (16
//! concurrent requests per instance, where the in-memory and shared layers interleave).

#[allow(dead_code)] // shared with serve.rs, which uses the rest of it
#[path = "serve/support.rs"]
mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use edge_secrets_tests::fake_backend::SplitMix64;
use edge_secrets_tests::harness::quick_defaults;
use edge_secrets_tests::{FakeBackend, Fault};
use serde_json::{json, Value};
use support::{start_server, HttpClient, Reply, ADMIN_TOKEN, DEV_TOKEN, PROD_TOKEN};

const KEY: &str = "c4a05c4a05c4a05c4a05c4a05c4a05c4a05c4a05c4a05c4a05c4a05c4a05c4a0";
const CALLERS: u64 = 16;
const PHASE: Duration = Duration::from_secs(5);
const SECRETS: usize = 8;
const FAULT_PERCENT: u32 = 30;
/// Vault's version of every secret; the mirror's is `MIRROR_VERSION + i` for secret `i`, so a
/// value's version says which tier it came from.
const VAULT_VERSION: u64 = 3;
const MIRROR_VERSION: u64 = 100;
const RATIO_PERCENT: u64 = 5;
const MIN_PER_SEC: u64 = 1;
const WINDOW_MS: u64 = 2_000;
const TIERS: u64 = 2;
/// `dev` reads through both tiers and may answer stale; `prod` reads the primary alone with
/// `max_stale_ms` 0, so its failures reach the callers as typed errors.
const ENVS: [(&str, &str, bool); 2] = [("dev", DEV_TOKEN, true), ("prod", PROD_TOKEN, false)];

/// The WIT error kinds with the status `serve` gives each (spin-app/src/reply.rs). Kinds no
/// injected fault can cause (a 503 is never a permission problem) are violations here.
const KINDS: [(&str, u16, bool); 9] = [
    ("invalid-request", 400, false),
    ("unknown-environment", 404, false),
    ("not-found", 404, true),
    ("permission-denied", 403, false),
    ("unavailable", 503, true),
    ("timeout", 504, true),
    ("rate-limited", 429, true),
    ("backend", 502, true),
    ("config", 500, false),
];

/// Valid both as a Vault path and as a GCP secret id, so either tier can serve it.
fn name(i: usize) -> String {
    if i < SECRETS { format!("chaos-{i}") } else { "chaos-missing".to_string() }
}

fn value(i: usize) -> Vec<u8> {
    format!("value-{i}-{:016x}", SplitMix64::new(i as u64).next_u64()).into_bytes()
}

fn vault_faults() -> Vec<Fault> {
    vec![
        Fault::vault_sealed(),
        Fault::vault_error(500, "internal error"),
        Fault::vault_error(429, "slow down").retry_after("1"),
        Fault::Delay(Duration::from_millis(30)),
        Fault::Delay(Duration::from_millis(80)),
        Fault::CloseConnection,
        Fault::Malformed,
        Fault::Truncated,
        Fault::Hang, // bounded by timeouts.attempt_ms
    ]
}

fn gcp_faults() -> Vec<Fault> {
    vec![
        Fault::gcp_error(503, "unavailable"),
        Fault::gcp_error(500, "internal"),
        Fault::gcp_error(429, "quota").retry_after("1"),
        Fault::Delay(Duration::from_millis(30)),
        Fault::Delay(Duration::from_millis(80)),
        Fault::CloseConnection,
        Fault::Malformed,
        Fault::Truncated,
        Fault::BadCrc,
        Fault::Hang,
    ]
}

/// What the callers saw. Violations are described by secret index, status and lengths only.
#[derive(Default)]
struct Tally {
    reads: u64,
    from_backend: u64,
    from_cache: u64,
    stale: u64,
    tier: [u64; 2],
    errors: BTreeMap<String, u64>,
    violations: u64,
    first_violations: Vec<String>,
}

impl Tally {
    fn violation(&mut self, what: String) {
        self.violations += 1;
        if self.first_violations.len() < 20 {
            self.first_violations.push(what);
        }
    }

    fn merge(&mut self, other: Tally) {
        self.reads += other.reads;
        self.from_backend += other.from_backend;
        self.from_cache += other.from_cache;
        self.stale += other.stale;
        (self.tier[0], self.tier[1]) = (self.tier[0] + other.tier[0], self.tier[1] + other.tier[1]);
        for (kind, n) in other.errors {
            *self.errors.entry(kind).or_default() += n;
        }
        self.violations += other.violations;
        let room = 20usize.saturating_sub(self.first_violations.len());
        self.first_violations.extend(other.first_violations.into_iter().take(room));
    }

    /// Checks one answer to a read of secret `i` (`SECRETS` is the one that does not exist) in
    /// environment `env`, which has the mirror as its fallback if `fallback`.
    fn check(&mut self, (env, fallback): (&str, bool), i: usize, reply: Result<Reply, String>, values: &[Vec<u8>]) {
        self.reads += 1;
        let r = match reply {
            Ok(r) => r,
            Err(e) => return self.violation(format!("secret {i}: no HTTP answer ({e})")),
        };
        if r.status == 200 {
            self.check_value(fallback, i, &r, values);
        } else {
            self.check_error(env, i, &r, values);
        }
    }

    fn check_value(&mut self, fallback: bool, i: usize, r: &Reply, values: &[Vec<u8>]) {
        if i == SECRETS {
            return self.violation(format!("missing secret: 200 with {} bytes", r.body.len()));
        }
        if r.body != values[i] {
            let other = values.iter().position(|v| *v == r.body);
            return self.violation(format!("secret {i}: wrong value ({} bytes; secret {other:?}'s)", r.body.len()));
        }
        let (tier, version) = (r.header("x-secret-tier"), r.header("x-secret-version"));
        let mirror_version = (MIRROR_VERSION + i as u64).to_string();
        match (tier, version) {
            (Some("0"), Some(v)) if v == VAULT_VERSION.to_string() => self.tier[0] += 1,
            (Some("1"), Some(v)) if fallback && v == mirror_version => self.tier[1] += 1,
            _ => return self.violation(format!("secret {i}: tier {tier:?} with version {version:?}")),
        }
        let warning = r.header("warning").is_some();
        match (r.header("x-secret-source"), r.header("x-secret-stale"), warning) {
            (Some("backend"), Some("false"), false) => self.from_backend += 1,
            (Some("cache"), Some("false"), false) => self.from_cache += 1,
            (Some("cache"), Some("true"), true) => self.stale += 1,
            (source, stale, _) => self.violation(format!("secret {i}: source {source:?}, stale {stale:?}, warning {warning}")),
        }
    }

    fn check_error(&mut self, env: &str, i: usize, r: &Reply, values: &[Vec<u8>]) {
        if values.iter().any(|v| r.body.windows(v.len()).any(|w| w == &v[..])) {
            return self.violation(format!("secret {i}: status {} carries a secret value", r.status));
        }
        let Ok(body) = serde_json::from_slice::<Value>(&r.body) else {
            return self.violation(format!("secret {i}: status {} with a body that is not JSON", r.status));
        };
        let kind = body["error"].as_str().unwrap_or("<none>").to_string();
        match KINDS.iter().find(|(k, ..)| *k == kind) {
            None => return self.violation(format!("secret {i}: status {} with error kind {kind:?}", r.status)),
            Some((_, status, _)) if *status != r.status => {
                return self.violation(format!("secret {i}: {kind} with status {}", r.status))
            }
            Some((_, _, false)) => return self.violation(format!("secret {i}: {kind}, which no fault here can cause")),
            Some(_) if kind == "not-found" && i < SECRETS => return self.violation(format!("secret {i}: not-found, but it exists")),
            Some(_) => {}
        }
        if !body["message"].is_string() {
            return self.violation(format!("secret {i}: {kind} without a message"));
        }
        *self.errors.entry(format!("{env} {kind}")).or_default() += 1;
    }
}

/// Sum of a counter family's samples whose labels contain `labels`.
fn metric(text: &str, name: &str, labels: &str) -> u64 {
    text.lines()
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with('{')) && l.contains(labels))
        .map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<u64>().ok()).expect("a counter value"))
        .sum()
}

/// Retries the budgets of `envs` environments can have allowed in a run of `elapsed` that made
/// `first_attempts` in all.
///
/// At any retry the budget checks, over the sliding window of the current and the nine
/// previous slots (wall-clock slots of `WINDOW_MS / 10`, counted in the shared store, a retry
/// taken before it is checked): `retries in window <= floor + ratio * first attempts in
/// window`, with `floor = MIN_PER_SEC * WINDOW_MS / 1000`. Cut the run into blocks of
/// `WINDOW_MS` aligned with the slots: for the last retry allowed in a block, the window covers
/// every earlier slot of that block and reaches back only into the previous block, so a block
/// allows at most `floor + ratio * (first attempts in it and in the block before)`. Summed over
/// the `elapsed / WINDOW_MS + 2` blocks a run can touch, each block's first attempts counted
/// twice: `retries <= blocks * floor + 2 * ratio * first attempts`. Each environment has its
/// own budget, so the floors add up. Sound, not tight.
fn retry_allowance(elapsed: Duration, first_attempts: u64, envs: u64) -> u64 {
    let blocks = elapsed.as_millis() as u64 / WINDOW_MS + 2;
    envs * blocks * MIN_PER_SEC * WINDOW_MS / 1_000 + (2 * RATIO_PERCENT * first_attempts).div_ceil(100)
}

fn phase(label: &str, fresh_instance_per_request: bool, seed: u64) {
    let (primary, mirror) = (FakeBackend::start(), FakeBackend::start());
    primary.expect_vault_token("t-vault");
    mirror.expect_gcp_token("t-mirror");
    for i in 0..SECRETS {
        let v = String::from_utf8(value(i)).unwrap();
        primary.put_vault(&name(i), VAULT_VERSION, &[("value", &v)]);
        mirror.put_gcp("mirror", &name(i), MIRROR_VERSION + i as u64, v.as_bytes());
    }
    let fallback = json!([{ "backend": "gcp", "url": mirror.url(), "project": "mirror", "token_key": "mirror_token" }]);
    let policy = quick_defaults()
        .vault("dev", &primary.url(), "t-vault")
        .set("dev", "fallbacks", fallback)
        .credential("mirror_token", "t-mirror")
        .vault("prod", &primary.url(), "t-vault")
        .set("prod", "cache.max_stale_ms", 0)
        .shared(KEY)
        // Short TTLs so values are refetched (and go stale) many times in 5 s.
        .set_default("cache.ttl_ms", 50)
        .set_default("cache.max_stale_ms", 3_000)
        .set_default("cache.negative_ttl_ms", 500)
        // Hang ends at the attempt timeout; generous for a loaded debug build.
        .set_default("timeouts.attempt_ms", 400)
        .set_default("timeouts.deadline_ms", 2_000)
        // Open breakers must close again within the phase, or one tier is just off.
        .set_default("breaker.open_ms", 500)
        .set_default("retry.budget.ratio_percent", RATIO_PERCENT)
        .set_default("retry.budget.min_per_sec", MIN_PER_SEC)
        .set_default("retry.budget.window_ms", WINDOW_MS);
    let started = Instant::now();
    let server = start_server(policy.config(), fresh_instance_per_request);
    primary.set_random_faults(seed, FAULT_PERCENT, vault_faults());
    mirror.set_random_faults(seed.rotate_left(32), FAULT_PERCENT, gcp_faults());

    let values: Arc<Vec<Vec<u8>>> = Arc::new((0..SECRETS).map(value).collect());
    let addr = server.local_addr();
    let end = Instant::now() + PHASE;
    let callers: Vec<_> = (0..CALLERS)
        .map(|c| {
            let values = values.clone();
            std::thread::spawn(move || {
                let client = HttpClient::new(addr);
                let mut rng = SplitMix64::new(seed ^ (c + 1).wrapping_mul(0x9E37_79B9));
                let mut tally = Tally::default();
                while Instant::now() < end {
                    let (env, token, fallback) = ENVS[usize::from(rng.below(3) == 0)]; // a third to prod
                    let i = rng.below(SECRETS as u64 + 1) as usize; // one in nine reads misses
                    let path = format!("/v1/secrets/{env}/{}", name(i));
                    let auth = format!("Bearer {token}");
                    let reply = client.try_request_within(Duration::from_secs(20), "GET", &path, vec![&auth]);
                    tally.check((env, fallback), i, reply, &values);
                }
                tally
            })
        })
        .collect();
    let mut t = Tally::default();
    for caller in callers {
        t.merge(caller.join().expect("a caller thread"));
    }
    let metrics = HttpClient::new(addr).get("/metrics", Some(&format!("Bearer {ADMIN_TOKEN}"))).text();
    let elapsed = started.elapsed();
    let m = |name: &str, labels: &str| metric(&metrics, name, labels);
    let dev = r#"environment="dev""#;
    let tier_calls = |backend: &str, tier: u32| m("edge_secrets_tier_backend_calls_total", &format!(r#"{dev},backend="{backend}",tier="{tier}""#));
    // Per environment, from its own counters: (calls, retries, the retries its budget allows).
    let budgets: Vec<(u64, u64, u64)> = ENVS
        .iter()
        .map(|(env, ..)| {
            let labels = format!(r#"environment="{env}""#);
            let (calls, retries) = (m("edge_secrets_backend_calls_total", &labels), m("edge_secrets_retries_total", &labels));
            (calls, retries, retry_allowance(elapsed, calls.saturating_sub(retries), 1))
        })
        .collect();
    let (calls, retries) = budgets.iter().fold((0, 0), |(c, r), b| (c + b.0, r + b.1));
    let received = primary.request_count() + mirror.request_count();
    // Only a fresh-cache answer is sure to have sent nothing (WIT: `cache` means no request);
    // every other read may have made a first attempt on each tier.
    let first_attempts = TIERS * (t.reads - t.from_cache);
    let bound = first_attempts + retry_allowance(elapsed, first_attempts, ENVS.len() as u64);

    println!("chaos [{label}] {:.1} s, {CALLERS} callers, seed {seed:#x}: {} reads", elapsed.as_secs_f64(), t.reads);
    println!("  values: {} fresh from a backend, {} cached, {} stale; tier 0 {}, tier 1 {}", t.from_backend, t.from_cache, t.stale, t.tier[0], t.tier[1]);
    println!("  errors: {:?}", t.errors);
    println!("  primary (vault): {} requests, {} faulted", primary.request_count(), primary.faults_injected());
    println!("  mirror (gcp): {} requests, {} faulted", mirror.request_count(), mirror.faults_injected());
    println!(
        "  metrics: backend calls {calls} (dev tier 0 {}, dev tier 1 {}), retries {retries}, budget exhausted {}, fallbacks {}, stale served {}, instances {}",
        tier_calls("vault", 0),
        tier_calls("gcp", 1),
        m("edge_secrets_budget_exhausted_total", ""),
        m("edge_secrets_fallbacks_total", ""),
        m("edge_secrets_stale_served_total", ""),
        server.instances_created(),
    );
    println!("  budget: backends received {received} <= {bound}; retries (dev, prod) {:?} <= {:?}", budgets.iter().map(|b| b.1).collect::<Vec<_>>(), budgets.iter().map(|b| b.2).collect::<Vec<_>>());
    println!("  violations: {}", t.violations);
    for v in &t.first_violations {
        println!("    {v}");
    }

    assert_eq!(t.violations, 0, "[{label}] answers that were neither the right value nor a typed error: {:#?}", t.first_violations);
    assert!(received <= bound, "[{label}] the backends received {received} requests, more than the budget allows ({bound})");
    // The per-environment bounds rest on the component's own counters: they must not have
    // missed a request the backends received.
    assert!(received <= calls, "[{label}] the backends received {received} requests, the component counted {calls}");
    for ((env, ..), (_, retries, allowed)) in ENVS.iter().zip(&budgets) {
        assert!(retries <= allowed, "[{label}] {env}: {retries} retries, more than its budget allows ({allowed})");
    }
    // The memory store never fails; a degraded one would leave each instance its own budget.
    assert_eq!(m("edge_secrets_shared_state", r#"status="ok""#), 1, "[{label}] shared state stayed usable");
}

#[test]
fn chaos_answers_are_right_or_typed_and_backend_load_stays_in_budget() {
    phase("fresh instance per request, shared state", true, 0xC4A0_5EED_0001);
    phase("instance reuse, shared state", false, 0xC4A0_5EED_0002);
}
