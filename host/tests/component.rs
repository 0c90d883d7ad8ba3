//! The host harness around the real component, against the dev store (and two tiny
//! misbehaving servers): what the host itself promises — typed calls, instance recovery after a
//! trap or the call deadline, the memory cap, the compile cache (and its ownership checks),
//! connection reuse.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use edge_secrets_host::dev_store::{DevStore, DevStoreOptions, Seed};
use edge_secrets_host::{CompileSource, Error, Request, Runtime, RuntimeOptions, SecretError, Source};

fn dev_store(seed: Seed) -> DevStore {
    DevStore::start(DevStoreOptions { seed, ..Default::default() }).expect("start the dev store")
}

fn seed() -> Seed {
    let mut seed = Seed::new();
    seed.insert("app/db", [("value", "pw-one"), ("user", "admin")]).unwrap();
    seed.insert("app/db", [("value", "pw-two"), ("user", "admin")]).unwrap();
    seed.insert("app/api", [("value", "key-1")]).unwrap();
    seed
}

/// A `wasi:config` map with one Vault environment `dev` at `url`; `extra` is merged into it.
fn config(url: &str, token: &str, extra: serde_json::Value) -> BTreeMap<String, String> {
    let mut env = serde_json::json!({ "backend": "vault", "url": url, "token_key": "dev_token" });
    if let (Some(env), Some(extra)) = (env.as_object_mut(), extra.as_object()) {
        env.extend(extra.clone());
    }
    let policy = serde_json::json!({ "environments": { "dev": env } });
    BTreeMap::from([("secrets_policy".to_string(), policy.to_string()), ("dev_token".to_string(), token.to_string())])
}

/// A compile cache shared by these tests (compiling in a debug build takes seconds).
fn options() -> RuntimeOptions {
    RuntimeOptions::default().cache_dir(Some(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("edge-secrets-compile-cache")))
}

#[test]
fn reads_through_the_component_with_typed_results() {
    let store = dev_store(seed());
    let runtime = Runtime::new(config(&store.url(), store.token(), serde_json::json!({})), options()).unwrap();
    let mut client = runtime.client().unwrap();
    client.ping().unwrap();

    let first = client.get(&Request::new("dev", "app/db")).unwrap();
    assert_eq!((first.value.expose(), first.version.as_str(), first.source), (&b"pw-two"[..], "2", Source::Backend));
    let again = client.get(&Request::new("dev", "app/db")).unwrap();
    assert_eq!((again.value.expose(), again.source), (&b"pw-two"[..], Source::Cache));
    let v1 = client.get(&Request::new("dev", "app/db").version("1").field("user")).unwrap();
    assert_eq!((v1.value.expose(), v1.version.as_str()), (&b"admin"[..], "1"));

    let many = client.get_many(&[Request::new("dev", "app/api"), Request::new("dev", "nope"), Request::new("qa", "app/api")]).unwrap();
    assert_eq!(many.len(), 3);
    assert_eq!(many[0].as_ref().unwrap().value.expose(), b"key-1");
    assert!(matches!(many[1], Err(SecretError::NotFound(_))), "{:?}", many[1]);
    assert_eq!(many[2].as_ref().err(), Some(&SecretError::UnknownEnvironment("qa".into())));

    match client.get(&Request::new("dev", "../etc")) {
        Err(Error::Secret(SecretError::InvalidRequest(_))) => {}
        other => panic!("expected invalid-request, got {other:?}"),
    }
    assert!(client.invalidate("dev", Some("app/db")).unwrap() >= 2);
    assert_eq!(client.get(&Request::new("dev", "app/db")).unwrap().source, Source::Backend);

    let stats = client.stats().unwrap();
    assert_eq!(stats.len(), 1);
    assert_eq!((stats[0].environment.as_str(), stats[0].backend.as_str()), ("dev", "vault"));
    assert!(stats[0].hits >= 1 && stats[0].misses >= 4, "{stats:?}");
    let health = client.health().unwrap();
    assert!(health.ok, "{health:?}");
    assert_eq!(health.unknown_environment_errors, 1);
    assert_eq!(client.instantiations(), 1);
}

#[test]
fn a_bad_token_is_permission_denied_and_never_echoed() {
    let store = dev_store(seed());
    let wrong = "hvs.definitely-wrong-token";
    let mut client = Runtime::new(config(&store.url(), wrong, serde_json::json!({})), options()).unwrap().client().unwrap();
    let err = client.get(&Request::new("dev", "app/db")).unwrap_err();
    assert!(matches!(err, Error::Secret(SecretError::PermissionDenied(_))), "{err:?}");
    assert!(!format!("{err} {err:?}").contains(wrong));
}

#[test]
fn connections_are_reused_across_calls_and_clients() {
    let store = dev_store(seed());
    let proxy = CountingProxy::start(store.addr());
    // ttl 0: every read goes to the backend.
    let runtime = Runtime::new(config(&proxy.url(), store.token(), serde_json::json!({ "cache": { "ttl_ms": 0 } })), options()).unwrap();
    let mut a = runtime.client().unwrap();
    let mut b = runtime.client().unwrap();
    for _ in 0..25 {
        assert_eq!(a.get(&Request::new("dev", "app/api")).unwrap().source, Source::Backend);
        assert_eq!(b.get(&Request::new("dev", "app/api")).unwrap().source, Source::Backend);
    }
    let accepted = proxy.accepted.load(Ordering::SeqCst);
    // A request can occasionally race the pool's background return of a connection and open
    // another; without pooling it would be 50.
    assert!((1..=5).contains(&accepted), "50 sequential requests opened {accepted} connections");
}

#[test]
fn a_call_timeout_within_the_policy_deadline_is_refused() {
    // The host would cut the call off while the component still waits for its backend.
    let cfg = config("http://127.0.0.1:9", "t", serde_json::json!({ "timeouts": { "attempt_ms": 1500, "deadline_ms": 1500 } }));
    match Runtime::new(cfg.clone(), options().call_timeout(Duration::from_millis(300))) {
        Err(Error::Runtime(msg)) => assert!(msg.contains("300 ms") && msg.contains("1500 ms"), "{msg}"),
        Err(other) => panic!("expected Error::Runtime, got {other:?}"),
        Ok(_) => panic!("a 300 ms call timeout under a 1500 ms policy deadline was accepted"),
    }
    assert!(Runtime::new(cfg, options().call_timeout(Duration::from_millis(1501))).is_ok());
}

#[test]
fn the_call_deadline_discards_a_runaway_instance_and_the_next_call_recovers() {
    // The component ends its own calls at the policy's deadline (1 ms here), and the host's
    // deadline must exceed that, so only a guest that keeps computing meets it. Make the
    // component compute: its first call parses a policy padded with 64 MiB of JSON whitespace,
    // ~200 ms of work, far beyond the 10 ms host deadline.
    let padding = " ".repeat(64 << 20);
    let policy = format!(
        r#"{{"environments":{padding}{{"dev":{{"backend":"vault","url":"http://127.0.0.1:9","token_key":"t","timeouts":{{"attempt_ms":1,"deadline_ms":1}}}}}}}}"#
    );
    let cfg = BTreeMap::from([("secrets_policy".to_string(), policy), ("t".to_string(), "x".to_string())]);
    let timeout = Duration::from_millis(10);
    let runtime = Runtime::new(cfg, options().call_timeout(timeout)).unwrap();
    let mut client = runtime.client().unwrap();
    let started = Instant::now();
    let err = client.get(&Request::new("dev", "app/db")).unwrap_err();
    assert!(matches!(err, Error::Deadline(t) if t == timeout), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    // A fresh instance serves the next call (one that does not load the policy).
    client.ping().unwrap();
    assert_eq!(client.instantiations(), 2);
}

#[test]
fn the_memory_cap_stops_a_big_body_without_crashing_the_host() {
    let mut seed = seed();
    seed.insert("big", [("value", "x".repeat(8 << 20))]).unwrap();
    let store = dev_store(seed);
    let cfg = config(&store.url(), store.token(), serde_json::json!({
        "max_body_bytes": 16 << 20, // the component's largest allowed body cap
        "retry": { "attempts": 1 },
        // A debug-build dev store needs a while to serialise 8 MiB: this test is about memory.
        "timeouts": { "attempt_ms": 50_000, "deadline_ms": 50_000 },
    }));
    // Under a 4 MiB cap the 8 MiB body cannot fit. The component either reports that (a typed
    // backend error: its body buffer grows fallibly, and the instance lives on) or fails an
    // allocation and aborts (a trap: the instance is discarded). Never a host crash.
    let mut client = Runtime::new(cfg.clone(), options().memory_limit_mib(4)).unwrap().client().unwrap();
    let err = client.get(&Request::new("dev", "big")).unwrap_err();
    let instances_after = match &err {
        Error::Secret(SecretError::Backend { status: None, reason }) if reason.contains("memory") => 1,
        Error::Trap(_) => 2,
        other => panic!("expected an out-of-memory backend error or a trap, got {other:?}"),
    };
    assert!(!err.to_string().contains("xxxx") && !format!("{err:?}").contains("xxxx"), "{err}");
    assert_eq!(client.get(&Request::new("dev", "app/api")).unwrap().value.expose(), b"key-1");
    assert_eq!(client.instantiations(), instances_after);
    // The same read fits under a larger cap: the cap, not the read, stopped it.
    let mut roomy = Runtime::new(cfg, options().memory_limit_mib(64)).unwrap().client().unwrap();
    assert_eq!(roomy.get(&Request::new("dev", "big")).unwrap().value.len(), 8 << 20);
}

#[test]
fn the_compiled_component_is_cached_on_disk() {
    let dir = std::env::temp_dir().join(format!("edge-secrets-cache-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let opts = RuntimeOptions::default().cache_dir(Some(dir.clone()));
    let first = Runtime::new(BTreeMap::new(), opts.clone()).unwrap();
    assert_eq!(first.compile_source(), CompileSource::CompiledAndCached);
    let second = Runtime::new(BTreeMap::new(), opts.clone()).unwrap();
    assert_eq!(second.compile_source(), CompileSource::Cache);
    // Without a policy every call is a config error, from the cached component too.
    let err = second.client().unwrap().get(&Request::new("dev", "x")).unwrap_err();
    assert!(matches!(err, Error::Secret(SecretError::Config(_))), "{err:?}");

    // A corrupt artifact is replaced, not trusted.
    for entry in std::fs::read_dir(&dir).unwrap() {
        std::fs::write(entry.unwrap().path(), b"not an artifact").unwrap();
    }
    assert_eq!(Runtime::new(BTreeMap::new(), opts.clone()).unwrap().compile_source(), CompileSource::CompiledAndCached);
    assert_eq!(Runtime::new(BTreeMap::new(), opts).unwrap().compile_source(), CompileSource::Cache);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn clients_move_between_threads() {
    let store = dev_store(seed());
    let runtime = Runtime::new(config(&store.url(), store.token(), serde_json::json!({})), options()).unwrap();
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let mut client = runtime.client().unwrap();
            std::thread::spawn(move || client.get(&Request::new("dev", "app/api")).map(|s| s.value.into_bytes()))
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap().unwrap(), b"key-1");
    }
}

/// A TCP proxy that counts the connections it accepts.
struct CountingProxy {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
}

impl CountingProxy {
    fn start(upstream: SocketAddr) -> CountingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                count.fetch_add(1, Ordering::SeqCst);
                let Ok(server) = TcpStream::connect(upstream) else { return };
                pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                pipe(server, client);
            }
        });
        CountingProxy { addr, accepted }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
}
