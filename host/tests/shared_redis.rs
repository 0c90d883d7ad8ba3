//! Several hosts share one Redis: separate `edge-secrets get` processes, each a fresh host with a
//! fresh instance, see each other's cache entries and breaker state through `--kv redis://...`,
//! and so do two `edge-secrets serve` processes (fresh instance per request) over HTTP.
//! Also the Redis backend's own semantics (compare-and-swap, buckets) against a real server.

#[path = "serve/process.rs"]
mod process;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use edge_secrets_host::keyvalue::{Bounded, KvBackend, RedisBackend, ValueLimits};
use edge_secrets_tests::{FakeBackend, Fault, RedisServer};

const VALUE: &str = "redis-shared-SENTINEL-5521";
const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn config(backend: &FakeBackend, name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("shared-redis-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("edge.toml");
    std::fs::write(
        &path,
        format!(
            "[policy.shared]\nkey_key = \"state_key\"\n\n\
             [policy.defaults.retry]\nattempts = 1\n\n\
             [policy.defaults.breaker]\nfailure_threshold = 2\n\n\
             [policy.environments.prod]\nbackend = \"vault\"\nurl = \"{url}\"\ntoken_key = \"vault_token\"\n\n\
             [credentials]\nvault_token = {{ env = \"EDGE_TEST_VAULT_TOKEN\" }}\nstate_key = {{ env = \"EDGE_TEST_STATE_KEY\" }}\n",
            url = backend.url()
        ),
    )
    .unwrap();
    path
}

/// One `edge-secrets get` process: (exit code, stdout, stderr). The value must never reach stderr.
fn get(config: &Path, redis: &RedisServer, name: &str) -> (i32, Vec<u8>, String) {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-cache");
    let Output { status, stdout, stderr } = Command::new(env!("CARGO_BIN_EXE_edge-secrets"))
        .args(["get", "--env", "prod", name, "--kv", &redis.url(), "--config"])
        .arg(config)
        .env("XDG_CACHE_HOME", cache)
        .env("EDGE_TEST_VAULT_TOKEN", "tok")
        .env("EDGE_TEST_STATE_KEY", KEY)
        .output()
        .expect("run edge-secrets");
    let stderr = String::from_utf8_lossy(&stderr).into_owned();
    assert!(!stderr.contains("SENTINEL") && !stderr.contains(KEY), "{stderr}");
    (status.code().expect("exited"), stdout, stderr)
}

#[test]
fn separate_host_processes_share_cache_entries_through_redis() {
    let redis = RedisServer::start();
    let backend = FakeBackend::start();
    backend.expect_vault_token("tok");
    backend.put_vault("app/db", 2, &[("value", VALUE)]);
    let config = config(&backend, "cache");
    for _ in 0..3 {
        let (code, out, err) = get(&config, &redis, "app/db");
        assert_eq!((code, out.as_slice()), (0, VALUE.as_bytes()), "stderr: {err}");
    }
    assert_eq!(backend.request_count(), 1, "the second and third hosts read the first one's entry from Redis");
    // What Redis holds is sealed: no value, no name.
    let kv = RedisBackend::connect(&redis.url()).unwrap();
    let keys = kv.keys("default").unwrap();
    assert!(!keys.is_empty());
    for key in keys {
        assert!(!key.contains("app"), "{key}");
        let sealed = kv.get("default", &key).unwrap().unwrap();
        assert!(!sealed.windows(VALUE.len()).any(|w| w == VALUE.as_bytes()));
    }
}

#[test]
fn separate_host_processes_share_the_breaker_through_redis() {
    let redis = RedisServer::start();
    let backend = FakeBackend::start();
    backend.accept_any_credentials();
    backend.set_fault_always(Some(Fault::vault_error(503, "down")));
    let config = config(&backend, "breaker");
    // Exit codes (see `edge-secrets get --help`): 10 backend, 7 unavailable (breaker open).
    for _ in 0..2 {
        let (code, _, err) = get(&config, &redis, "a");
        assert_eq!(code, 10, "{err}");
    }
    assert_eq!(backend.request_count(), 2);
    let (code, _, err) = get(&config, &redis, "b");
    assert_eq!(code, 7, "expected the open breaker: {err}");
    assert_eq!(backend.request_count(), 2, "a third host sent nothing: the breaker opened in Redis");
}

/// An `edge-secrets serve --kv <redis> --fresh-instance-per-request` process, killed on drop.
struct ServeProcess(process::Started);

impl ServeProcess {
    fn start(config: &Path, redis: &RedisServer) -> ServeProcess {
        let args = ["--fresh-instance-per-request", "--kv", &redis.url(), "--config", config.to_str().unwrap()];
        ServeProcess(process::start(&args, &[("EDGE_TEST_VAULT_TOKEN", "tok"), ("EDGE_TEST_STATE_KEY", KEY)]))
    }

    fn get(&self, path: &str) -> String {
        process::get(self.0.addr, path, CALLER)
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.0.child.kill();
        let _ = self.0.child.wait();
    }
}

const CALLER: &str = "caller-redis-0123456789";

#[test]
fn two_serve_processes_share_the_cache_through_redis() {
    let redis = RedisServer::start();
    let backend = FakeBackend::start();
    backend.expect_vault_token("tok");
    backend.put_vault("app/db", 2, &[("value", VALUE)]);
    let config = config(&backend, "serve");
    let tokens = config.with_file_name("caller-tokens.json");
    std::fs::write(&tokens, format!(r#"{{"prod": ["{CALLER}"]}}"#)).unwrap();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("caller_tokens = { file = \"caller-tokens.json\" }\n");
    std::fs::write(&config, text).unwrap();

    let (first, second) = (ServeProcess::start(&config, &redis), ServeProcess::start(&config, &redis));
    let a = first.get("/v1/secrets/prod/app/db");
    assert!(a.starts_with("HTTP/1.1 200") && a.contains(VALUE) && a.contains("x-secret-source: backend"), "{}", a.lines().next().unwrap_or(""));
    let b = second.get("/v1/secrets/prod/app/db");
    assert!(b.starts_with("HTTP/1.1 200") && b.contains(VALUE), "{}", b.lines().next().unwrap_or(""));
    assert!(b.contains("x-secret-source: cache"), "the second host answered from Redis");
    assert_eq!(backend.request_count(), 1);
}

#[test]
fn redis_compare_and_swap_and_buckets() {
    let redis = RedisServer::start();
    let kv = RedisBackend::connect(&redis.url()).unwrap();
    let limit = 1 << 20;
    assert!(kv.compare_and_swap("b1", "k", None, b"one", limit).unwrap(), "absent as expected: written");
    assert!(!kv.compare_and_swap("b1", "k", None, b"two", limit).unwrap(), "present now: refused");
    assert!(!kv.compare_and_swap("b1", "k", Some(b"zzz"), b"two", limit).unwrap());
    assert!(kv.compare_and_swap("b1", "k", Some(b"one"), b"\x00binary\xff", limit).unwrap());
    assert_eq!(kv.get("b1", "k").unwrap().as_deref(), Some(&b"\x00binary\xff"[..]));
    assert_eq!(kv.get("b2", "k").unwrap(), None, "buckets do not share keys");
    assert_eq!(kv.increment("b1", "n", 3).unwrap(), 3);
    // One round trip: an answer per key, in the order asked, within the bucket.
    let keys = ["k", "absent", "k"].map(String::from);
    let value = Bounded::Value(b"\x00binary\xff".to_vec());
    let limits = ValueLimits::default();
    assert_eq!(kv.read_bounded("b1", &keys, limits).unwrap(), vec![value.clone(), Bounded::Absent, value]);
    assert_eq!(kv.read_bounded("b2", &keys[..1], limits).unwrap(), vec![Bounded::Absent]);
    assert_eq!(kv.read_bounded("b1", &[], limits).unwrap(), Vec::<Bounded>::new());
    kv.delete("b1", "k").unwrap();
    assert_eq!(kv.keys("b1").unwrap(), vec!["n".to_string()]);
    assert!(RedisBackend::connect("redis://127.0.0.1:1").is_err(), "nothing listens on port 1");
}

/// Someone with write access to Redis plants a value far larger than any record (issue 12: a
/// 150 MB value trapped every read of its secret). Redis reports its length and never sends it;
/// a key of another type reads as absent; both can be replaced by a compare-and-swap expecting
/// absence, as the component does when it overwrites an unusable record.
#[test]
fn redis_reads_report_oversized_values_without_sending_them() {
    let redis = RedisServer::start();
    let kv = RedisBackend::connect(&redis.url()).unwrap();
    let limits = ValueLimits::new(4096, 8192).unwrap();
    let planted = 64 << 20;
    let mut raw = redis::Client::open(redis.url()).unwrap().get_connection().unwrap();
    redis::cmd("SETRANGE").arg("edge-secrets:b:big").arg(planted - 1).arg("x").exec(&mut raw).unwrap();
    redis::cmd("RPUSH").arg("edge-secrets:b:list").arg("x").exec(&mut raw).unwrap();
    kv.set("b", "small", b"ok").unwrap();
    let keys = ["big", "list", "small"].map(String::from);
    let read = kv.read_bounded("b", &keys, limits).unwrap();
    assert_eq!(read, vec![Bounded::TooLarge(planted as u64), Bounded::Absent, Bounded::Value(b"ok".to_vec())]);
    assert!(kv.compare_and_swap("b", "big", None, b"fresh", limits.per_value).unwrap(), "oversized counts as absent");
    assert!(kv.compare_and_swap("b", "list", None, b"fresh", limits.per_value).unwrap(), "another type counts as absent");
    assert!(!kv.compare_and_swap("b", "small", None, b"fresh", limits.per_value).unwrap(), "a usable value does not");
    assert_eq!(kv.get("b", "big").unwrap().as_deref(), Some(&b"fresh"[..]));
}
