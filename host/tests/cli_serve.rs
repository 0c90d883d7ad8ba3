//! `edge-secrets serve` as a process: config file with `caller_tokens`, a real request, and a
//! graceful stop on SIGTERM (exit 0). The request itself is covered in depth by tests/serve.rs.

#[path = "serve/process.rs"]
mod process;

use std::io::Read;
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;

use edge_secrets_host::dev_store::{DevStore, DevStoreOptions, Seed};

const VALUE: &str = "pw-SENTINEL-7781";
const CALLER: &str = "caller-SENTINEL-4410-q8Zx";

#[cfg(unix)]
#[test]
fn serve_answers_and_stops_on_sigterm() {
    let mut seed = Seed::new();
    seed.insert("app/db", [("value", VALUE)]).unwrap();
    let store = DevStore::start(DevStoreOptions { seed, ..Default::default() }).expect("dev store");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-serve");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("caller-tokens.json"), format!(r#"{{"dev": ["{CALLER}"]}}"#)).unwrap();
    let config = dir.join("serve.toml");
    std::fs::write(
        &config,
        format!(
            "[policy.environments.dev]\nbackend = \"vault\"\nurl = \"{}\"\ntoken_key = \"dev_token\"\n\n\
             [credentials]\ndev_token = {{ env = \"EDGE_TEST_VAULT_TOKEN\" }}\ncaller_tokens = {{ file = \"caller-tokens.json\" }}\n",
            store.url()
        ),
    )
    .unwrap();

    let process::Started { mut child, addr, mut stderr, mut seen } =
        process::start(&["--config", config.to_str().unwrap()], &[("EDGE_TEST_VAULT_TOKEN", store.token())]);

    let ok = process::get(addr, "/v1/secrets/dev/app/db", CALLER);
    assert!(ok.starts_with("HTTP/1.1 200"), "{}", ok.lines().next().unwrap_or(""));
    assert!(ok.contains(VALUE), "the body is the value (possibly chunked)");
    let denied = process::get(addr, "/v1/secrets/dev/app/db", "wrong");
    assert!(denied.starts_with("HTTP/1.1 403"), "{}", denied.lines().next().unwrap_or(""));

    // SAFETY: plain kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) }, 0);
    let status = child.wait().unwrap();
    stderr.read_to_string(&mut seen).unwrap();
    assert_eq!(status.code(), Some(0), "stderr: {seen}");
    assert!(seen.contains("stopped"), "{seen}");
    for secret in [VALUE, CALLER, store.token()] {
        assert!(!seen.contains(secret), "a secret on stderr");
    }
    assert!(TcpStream::connect(addr).is_err(), "the port is closed after exit");
}

#[test]
fn serve_refuses_a_config_without_caller_tokens() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-serve-no-tokens");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("serve.toml");
    std::fs::write(&config, "[policy.environments.dev]\nbackend = \"vault\"\nurl = \"http://127.0.0.1:9\"\ntoken_key = \"dev_token\"\n\n[credentials]\ndev_token = { env = \"EDGE_TEST_T\" }\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_edge-secrets"))
        .args(["serve", "--config", config.to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .env("EDGE_TEST_T", "x")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("credentials.caller_tokens: missing"), "{stderr}");
}
