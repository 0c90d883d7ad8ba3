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

/// A config whose backend is never contacted, with `caller_tokens` from EDGE_TEST_CALLERS.
fn idle_config(name: &str) -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("serve.toml");
    std::fs::write(
        &config,
        "[policy.environments.dev]\nbackend = \"vault\"\nurl = \"http://127.0.0.1:9\"\ntoken_key = \"dev_token\"\n\n\
         [credentials]\ndev_token = { env = \"EDGE_TEST_T\" }\ncaller_tokens = { env = \"EDGE_TEST_CALLERS\" }\n",
    )
    .unwrap();
    config
}

fn serve(args: &[&str], envs: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_edge-secrets"));
    command.arg("serve").args(args).env("EDGE_TEST_T", "x").env("EDGE_TEST_CALLERS", format!(r#"{{"dev": ["{CALLER}"]}}"#)).env_remove("EDGE_SECRETS_KV");
    for (name, value) in envs {
        command.env(name, value);
    }
    let out = command.output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A loopback port nothing listens on (bound on port 0, then released).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn the_kv_url_comes_from_the_environment_or_a_file_and_its_password_is_never_printed() {
    let config = idle_config("cli-serve-kv");
    let url = format!("redis://:pw-SENTINEL-5521@127.0.0.1:{}", closed_port());
    let config = config.to_str().unwrap();

    let (code, stderr) = serve(&["--config", config, "--listen", "127.0.0.1:0"], &[("EDGE_SECRETS_KV", &url)]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--kv redis://***@127.0.0.1:"), "the URL from EDGE_SECRETS_KV was used: {stderr}");

    let file = Path::new(config).with_file_name("kv-url");
    std::fs::write(&file, format!("{url}\nignored second line\n")).unwrap();
    let (code, stderr_file) = serve(&["--config", config, "--listen", "127.0.0.1:0", "--kv-file", file.to_str().unwrap()], &[]);
    assert_eq!(code, Some(2), "{stderr_file}");
    assert!(stderr_file.contains("--kv-file") && stderr_file.contains("redis://***@127.0.0.1:"), "the URL from the file was used: {stderr_file}");
    for text in [&stderr, &stderr_file] {
        assert!(!text.contains("SENTINEL"), "the password on stderr: {text}");
    }

    let help = Command::new(env!("CARGO_BIN_EXE_edge-secrets")).args(["serve", "--help"]).env("EDGE_SECRETS_KV", &url).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("EDGE_SECRETS_KV") && help.contains("--kv-file") && help.contains("`ps`"), "{help}");
    assert!(!help.contains("SENTINEL"), "--help shows the variable's value");
}

#[test]
fn plain_http_on_a_non_loopback_address_is_refused_with_the_reason() {
    let config = idle_config("cli-serve-plaintext");
    let (code, stderr) = serve(&["--config", config.to_str().unwrap(), "--listen", "0.0.0.0:0"], &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("refusing to serve plain HTTP on 0.0.0.0:0") && stderr.contains("--allow-plaintext") && stderr.contains("--tls-cert"), "{stderr}");
}

#[test]
fn serve_speaks_https_and_logs_when_the_connection_cap_is_reached() {
    let config = idle_config("cli-serve-tls");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
    let (cert, key) = (fixtures.join("cert.pem"), fixtures.join("key.pem"));
    let process::Started { mut child, addr, stderr, seen } = process::start(
        &["--config", config.to_str().unwrap(), "--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap(), "--max-connections", "1"],
        &[("EDGE_TEST_T", "x"), ("EDGE_TEST_CALLERS", &format!(r#"{{"dev": ["{CALLER}"]}}"#))],
    );
    assert!(seen.contains("listening on https://"), "{seen}");
    // The only slot is held by a silent connection; the next waits and the cap is logged.
    let _held = TcpStream::connect(addr).unwrap();
    let _waiting = TcpStream::connect(addr).unwrap();
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(stderr).map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let logged = loop {
        match received.recv_timeout(std::time::Duration::from_secs(20)) {
            Ok(line) if line.contains("connections open (max_connections)") => break Some(line),
            Ok(_) => continue,
            Err(_) => break None,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(logged.is_some_and(|l| l.contains("1 connections open")), "no log line when the cap was reached");
}
