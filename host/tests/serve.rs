//! `edge-secrets serve` end to end: the composed Spin app in the P3 host, over real HTTP on
//! loopback, against the fake backend. The stateless answers are checked in both instance
//! modes (Spin-like reuse and a fresh instance per request) and must be identical.

#[path = "serve/support.rs"]
mod support;

use std::time::{Duration, Instant};

use edge_secrets_host::serve::ServeOptions;
use edge_secrets_tests::Fault;
use support::{App, Reply, ADMIN_TOKEN, DB_PASSWORD, DEV_TOKEN, PROD_TOKEN};

/// Status, sorted headers (without `date`) and body of one response.
type Answer = (u16, Vec<(String, String)>, Vec<u8>);

/// Everything whose answer does not depend on instance state; returns the answers so the two
/// modes can be compared.
fn stateless_answers(fresh: bool) -> Vec<Answer> {
    let app = App::start(fresh);
    let mut answers = Vec::new();
    let mut keep = |r: &Reply| {
        let mut headers: Vec<(String, String)> =
            r.headers.iter().filter(|(n, _)| *n != "date").map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("?").to_string())).collect();
        headers.sort();
        answers.push((r.status, headers, r.body.to_vec()));
    };

    // 200: the raw value, not cached by anyone, with its version.
    let ok = app.get("/v1/secrets/dev/app/db", Some(DEV_TOKEN));
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body, DB_PASSWORD.as_bytes(), "the value");
    assert_eq!(ok.header("content-type"), Some("application/octet-stream"));
    assert_eq!(ok.header("cache-control"), Some("no-store"));
    assert_eq!(ok.header("x-secret-version"), Some("1"));
    keep(&ok);
    let field = app.get("/v1/secrets/prod/app%2Fdb?field=user&version=1", Some(PROD_TOKEN));
    assert_eq!((field.status, &field.body[..]), (200, &b"admin"[..]));
    keep(&field);
    let nested = app.get("/v1/secrets/dev/team/a/key", Some(DEV_TOKEN));
    assert_eq!((nested.status, &nested.body[..], nested.header("x-secret-version")), (200, &b"k-4"[..], Some("4")));

    // Errors from the component.
    assert_eq!(app.get("/v1/secrets/dev/app/missing", Some(DEV_TOKEN)).error(), (404, "not-found".into()));
    assert_eq!(app.get("/v1/secrets/dev/app/db?field=nope", Some(DEV_TOKEN)).error(), (404, "not-found".into()));
    assert_eq!(app.get("/v1/secrets/dev/..%2Fetc", Some(DEV_TOKEN)).error(), (400, "invalid-request".into()));
    assert_eq!(app.get("/v1/secrets/dev/app/db?version=latest-ish", Some(DEV_TOKEN)).error(), (400, "invalid-request".into()));
    assert_eq!(app.get("/v1/secrets/dev/app/db?colour=red", Some(DEV_TOKEN)).error(), (400, "invalid-request".into()));
    keep(&app.get("/v1/secrets/dev/app/missing", Some(DEV_TOKEN)));

    // Routing.
    assert_eq!(app.get("/v1/nothing-here", Some(DEV_TOKEN)).error(), (404, "not-found".into()));
    let post = app.client.request("POST", "/v1/secrets/dev/app/db", vec![&format!("Bearer {DEV_TOKEN}")]);
    assert_eq!((post.error(), post.header("allow")), ((405, "method-not-allowed".into()), Some("GET")));
    keep(&post);
    answers
}

#[test]
fn stateless_answers_are_the_same_with_reuse_and_with_a_fresh_instance_per_request() {
    let reuse = stateless_answers(false);
    let fresh = stateless_answers(true);
    assert_eq!(reuse.len(), fresh.len());
    for (i, (a, b)) in reuse.iter().zip(&fresh).enumerate() {
        assert!(a == b, "answer {i} differs between modes (status {} vs {})", a.0, b.0);
    }
}

fn refusals(fresh: bool) {
    // Eleven refusals on one keep-alive connection: above the default throttle (tested in
    // serve_limits.rs), which would answer 429 from the sixth on.
    let options = ServeOptions { fresh_instance_per_request: fresh, max_auth_failures_per_connection: 100, ..support::options() };
    let app = App::start_serving(options, |p| p);
    // 401: no header, or not a Bearer header.
    for auth in [None, Some("Basic ZGV2OmRldg=="), Some("Bearer"), Some("Bearer two words")] {
        let r = app.client.get("/v1/secrets/dev/app/db", auth);
        assert_eq!(r.error(), (401, "unauthorized".into()), "{auth:?}");
        assert!(r.header("www-authenticate").is_some_and(|v| v.starts_with("Bearer")), "{auth:?}");
    }
    let two = app.client.request("GET", "/v1/secrets/dev/app/db", vec![&format!("Bearer {DEV_TOKEN}"), &format!("Bearer {DEV_TOKEN}")]);
    assert_eq!(two.status, 401, "two Authorization headers");

    // 403: a wrong token, or another environment's token; the body is the same whether the
    // secret or the environment exists or not.
    let forbidden = |path: &str, token: &str| {
        let r = app.get(path, Some(token));
        assert_eq!(r.status, 403, "{path}");
        assert_eq!(r.header("www-authenticate"), None);
        r.body
    };
    let reference = forbidden("/v1/secrets/prod/app/db", DEV_TOKEN);
    for (path, token) in [
        ("/v1/secrets/prod/app/missing", DEV_TOKEN),
        ("/v1/secrets/prod/app/db", "not-a-token"),
        ("/v1/secrets/dev/app/db", PROD_TOKEN),
        ("/v1/secrets/dev/app/db", &DEV_TOKEN[..DEV_TOKEN.len() - 1]),
        ("/v1/secrets/nowhere/app/db", DEV_TOKEN),
        ("/v1/secrets/nowhere/app/missing", "not-a-token"),
    ] {
        assert_eq!(forbidden(path, token), reference, "{path}");
    }
    let body = String::from_utf8(reference.to_vec()).unwrap();
    assert!(!body.contains("prod") && !body.contains("app") && !body.contains("db"), "{body}");
    assert_eq!(app.backend.request_count(), 0, "refused requests must not reach the backend");
}

#[test]
fn refusals_with_reuse() {
    refusals(false);
}

#[test]
fn refusals_with_a_fresh_instance_per_request() {
    refusals(true);
}

#[test]
fn reuse_keeps_the_cache_and_fresh_instances_do_not() {
    let app = App::start(false);
    for _ in 0..5 {
        assert_eq!(app.get("/v1/secrets/dev/app/db", Some(DEV_TOKEN)).status, 200);
    }
    assert_eq!(app.backend.request_count(), 1, "one instance, one miss, four cache hits");
    assert_eq!(app.server.instances_created(), 1);
    let hit = app.get("/v1/secrets/dev/app/db", Some(DEV_TOKEN));
    assert_eq!(hit.header("x-secret-source"), Some("cache"));

    let app = App::start(true);
    for _ in 0..3 {
        let r = app.get("/v1/secrets/dev/app/db", Some(DEV_TOKEN));
        assert_eq!((r.status, r.header("x-secret-source")), (200, Some("backend")));
    }
    assert_eq!(app.backend.request_count(), 3);
    assert_eq!(app.server.instances_created(), 3);
}

#[test]
fn rate_limits_and_open_breakers_carry_retry_after() {
    let app = App::start_with(false, |p| p.set("prod", "retry.attempts", 1).set("prod", "breaker.failure_threshold", 1).set("prod", "breaker.open_ms", 2500));
    app.backend.fail_next(1, Fault::vault_error(429, "slow down").retry_after("2"));
    let limited = app.get("/v1/secrets/prod/app/db", Some(PROD_TOKEN));
    assert_eq!((limited.error(), limited.header("retry-after")), ((429, "rate-limited".into()), Some("2")));

    // The 429 counted as a transient failure: the breaker (threshold 1) is open now.
    let open = app.get("/v1/secrets/prod/app/db", Some(PROD_TOKEN));
    assert_eq!(open.error(), (503, "unavailable".into()));
    let seconds: u64 = open.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=3).contains(&seconds), "Retry-After {seconds} for a 2.5 s breaker");
    assert_eq!(app.backend.request_count(), 1, "an open breaker sends nothing");

    let health = app.get("/healthz", Some(ADMIN_TOKEN));
    assert_eq!(health.status, 200);
    let prod = health.json()["environments"].as_array().unwrap().iter().find(|e| e["environment"] == "prod").cloned().unwrap();
    assert_eq!(prod["breaker"], "open");
    assert_eq!(health.json()["ok"], false);

    // A backend failure after retries is a 502; a timeout a 504.
    app.backend.fail_next(1, Fault::vault_error(500, "boom"));
    assert_eq!(app.get("/v1/secrets/dev/app/missing", Some(DEV_TOKEN)).error().0, 404, "dev is unaffected");
    app.backend.set_fault_always(Some(Fault::vault_error(500, "boom")));
    assert_eq!(app.get("/v1/secrets/dev/team/a/key", Some(DEV_TOKEN)).error(), (502, "backend".into()));
}

#[test]
fn a_hanging_backend_is_a_504() {
    let app = App::start_with(false, |p| p.set("dev", "retry.attempts", 1).set("dev", "timeouts.attempt_ms", 200).set("dev", "timeouts.deadline_ms", 300));
    app.backend.set_fault_always(Some(Fault::Hang));
    assert_eq!(app.get("/v1/secrets/dev/app/db", Some(DEV_TOKEN)).error(), (504, "timeout".into()));
}

#[test]
fn health_and_metrics_report_counters_without_secret_bytes() {
    let app = App::start(false);
    assert_eq!(app.get("/v1/secrets/dev/app/db", Some(DEV_TOKEN)).status, 200);
    assert_eq!(app.get("/v1/secrets/dev/app/db", Some(DEV_TOKEN)).status, 200);
    assert_eq!(app.get("/v1/secrets/dev/app/missing", Some(DEV_TOKEN)).status, 404);

    let health = app.get("/healthz", Some(ADMIN_TOKEN));
    assert_eq!((health.status, health.header("content-type")), (200, Some("application/json")));
    let body = health.json();
    assert_eq!(body["ok"], true);
    let envs: Vec<_> = body["environments"].as_array().unwrap().iter().map(|e| (e["environment"].as_str().unwrap().to_string(), e["breaker"].clone())).collect();
    assert_eq!(envs, [("dev".to_string(), "closed".into()), ("prod".to_string(), "closed".into())]);

    assert_eq!(app.get("/metrics", None).status, 401, "details need the admin token");
    assert_eq!(app.get("/metrics", Some(DEV_TOKEN)).status, 403, "a caller token is not one");
    let metrics = app.get("/metrics", Some(ADMIN_TOKEN));
    assert_eq!(metrics.status, 200);
    assert!(metrics.header("content-type").is_some_and(|c| c.starts_with("text/plain; version=0.0.4")));
    let text = metrics.text();
    for line in [
        r#"edge_secrets_cache_hits_total{environment="dev",backend="vault"} 1"#,
        r#"edge_secrets_cache_misses_total{environment="dev",backend="vault"} 2"#,
        r#"edge_secrets_backend_calls_total{environment="dev",backend="vault"} 2"#,
        r#"edge_secrets_errors_total{environment="dev",backend="vault",kind="not-found"} 1"#,
        r#"edge_secrets_breaker_state{environment="dev",backend="vault",state="closed"} 1"#,
        r#"edge_secrets_cache_entries{environment="prod",backend="vault"} 0"#,
        "edge_secrets_config_ok 1",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?}");
    }
    for (name, body) in [("healthz", health.body.clone()), ("metrics", metrics.body.clone())] {
        for secret in [DB_PASSWORD, DEV_TOKEN, PROD_TOKEN, "t-vault"] {
            assert!(!String::from_utf8_lossy(&body).contains(secret), "{name} leaks a secret");
        }
    }
}

#[test]
fn shutdown_finishes_in_flight_requests_and_stops_accepting() {
    let app = App::start(false);
    let addr = app.server.local_addr();
    app.backend.fail_next(1, Fault::Delay(Duration::from_millis(600)));
    let in_flight = std::thread::spawn(move || support::HttpClient::new(addr).get("/v1/secrets/dev/app/db", Some(&format!("Bearer {DEV_TOKEN}"))));
    // Wait until the request reached the backend (so it is in flight), then shut down.
    let started = Instant::now();
    while app.backend.request_count() == 0 {
        assert!(started.elapsed() < Duration::from_secs(20), "the request never reached the backend");
        std::thread::sleep(Duration::from_millis(5));
    }
    let App { server, backend, .. } = app;
    server.shutdown();
    let reply = in_flight.join().unwrap();
    assert_eq!((reply.status, &reply.body[..]), (200, DB_PASSWORD.as_bytes()), "the in-flight request completed");
    assert!(std::net::TcpStream::connect(addr).is_err(), "no longer accepting");
    drop(backend);
}

#[test]
fn concurrent_requests_all_get_their_own_answers() {
    for fresh in [false, true] {
        let app = App::start(fresh);
        let addr = app.server.local_addr();
        let workers: Vec<_> = (0..6)
            .map(|i| {
                std::thread::spawn(move || {
                    let client = support::HttpClient::new(addr);
                    let (path, token, value) =
                        if i % 2 == 0 { ("/v1/secrets/dev/app/db", DEV_TOKEN, DB_PASSWORD) } else { ("/v1/secrets/prod/team/a/key", PROD_TOKEN, "k-4") };
                    (0..5).all(|_| {
                        let r = client.get(path, Some(&format!("Bearer {token}")));
                        r.status == 200 && r.body == value.as_bytes()
                    })
                })
            })
            .collect();
        for worker in workers {
            assert!(worker.join().unwrap(), "a concurrent read got a wrong answer (fresh: {fresh})");
        }
        let created = app.server.instances_created();
        if fresh {
            assert_eq!(created, 30, "one instance per request");
        } else {
            assert!((1..30).contains(&created), "instances are reused: {created} for 30 requests");
        }
    }
}

#[test]
fn an_instance_serves_at_most_128_requests_and_is_dropped_after_1_s_idle() {
    let app = App::start(false);
    for _ in 0..130 {
        assert_eq!(app.get("/healthz", None).status, 200);
    }
    assert_eq!(app.server.instances_created(), 2, "128 requests on the first instance, 2 on the second");
    // Spin's 1 s idle timeout: the only wall-clock wait in these tests.
    std::thread::sleep(Duration::from_millis(1300));
    assert_eq!(app.get("/healthz", None).status, 200);
    assert_eq!(app.server.instances_created(), 3, "the idle instance was dropped");
}
