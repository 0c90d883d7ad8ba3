//! The `edge-secrets get` binary against the loopback fake of both backends: a Vault and a
//! GCP secret read from one config file, credentials from an environment variable and a file,
//! and the value never on stderr, even when a broken answer contains it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use edge_secrets_tests::{FakeBackend, Fault};

const VAULT_VALUE: &str = "vault-SENTINEL-4417";
const GCP_VALUE: &[u8] = b"gcp-SENTINEL-\x00\xff-binary";

struct Setup {
    backend: FakeBackend,
    config: PathBuf,
}

fn setup(name: &str) -> Setup {
    let backend = FakeBackend::start();
    backend.expect_vault_token("vault-tok");
    backend.expect_gcp_token("gcp-tok");
    backend.put_vault("app/db", 7, &[("value", VAULT_VALUE), ("user", "svc")]);
    backend.put_gcp("proj-1", "api-key", 3, GCP_VALUE);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-backends-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("gcp-token"), "gcp-tok\n").unwrap();
    let config = dir.join("edge.toml");
    std::fs::write(
        &config,
        format!(
            "[policy.defaults.retry]\nbase_delay_ms = 1\nmax_delay_ms = 2\n\n\
             [policy.environments.prod]\nbackend = \"vault\"\nurl = \"{url}\"\ntoken_key = \"vault_token\"\n\n\
             [policy.environments.gprod]\nbackend = \"gcp\"\nurl = \"{url}\"\ntoken_key = \"gcp_token\"\nproject = \"proj-1\"\n\n\
             [credentials]\nvault_token = {{ env = \"EDGE_TEST_VAULT_TOKEN\" }}\ngcp_token = {{ file = \"gcp-token\" }}\n",
            url = backend.url()
        ),
    )
    .unwrap();
    Setup { backend, config }
}

fn get(setup: &Setup, args: &[&str]) -> (i32, Vec<u8>, String) {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-cache");
    let Output { status, stdout, stderr } = Command::new(env!("CARGO_BIN_EXE_edge-secrets"))
        .arg("get")
        .arg("--config")
        .arg(&setup.config)
        .args(args)
        .env("XDG_CACHE_HOME", cache)
        .env("EDGE_TEST_VAULT_TOKEN", "vault-tok")
        .output()
        .expect("run edge-secrets");
    (status.code().expect("exited"), stdout, String::from_utf8_lossy(&stderr).into_owned())
}

#[test]
fn reads_a_vault_and_a_gcp_secret_from_loopback_servers() {
    let s = setup("ok");
    let (code, out, err) = get(&s, &["--env", "prod", "app/db"]);
    assert_eq!((code, out.as_slice()), (0, VAULT_VALUE.as_bytes()), "stderr: {err}");
    let (code, out, err) = get(&s, &["--env", "gprod", "api-key"]);
    assert_eq!((code, out.as_slice()), (0, GCP_VALUE), "raw bytes, not text; stderr: {err}");
    let (code, out, _) = get(&s, &["--env", "prod", "app/db", "--field", "user", "--json"]);
    assert_eq!(code, 0);
    let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!((doc["value"].as_str(), doc["version"].as_str()), (Some("svc"), Some("7")));
    assert!(!err.contains("SENTINEL"));
    let sent = s.backend.requests();
    assert!(sent.iter().any(|r| r.path_and_query == "/v1/projects/proj-1/secrets/api-key/versions/latest:access"));
}

#[test]
fn errors_exit_with_their_code_and_name_env_and_secret_but_never_the_value() {
    let s = setup("errors");
    let (code, out, err) = get(&s, &["--env", "gprod", "nope"]);
    assert_eq!((code, out.len()), (5, 0));
    assert!(err.contains("gprod") && err.contains("nope"), "{err}");

    // A truncated answer holds the first half of the JSON, value included: stderr must not.
    s.backend.set_fault_always(Some(Fault::Truncated));
    let (code, _, err) = get(&s, &["--env", "prod", "app/db"]);
    assert_eq!(code, 10, "{err}");
    assert!(err.contains("prod") && err.contains("app/db"), "{err}");
    assert!(!err.contains("SENTINEL"), "value leaked to stderr: {err}");

    s.backend.set_fault_always(Some(Fault::vault_sealed()));
    let (code, _, err) = get(&s, &["--env", "prod", "app/db"]);
    assert_eq!(code, 10, "{err}");
    s.backend.set_fault_always(Some(Fault::vault_error(429, "slow down").retry_after("60")));
    let (code, _, _) = get(&s, &["--env", "prod", "app/db"]);
    assert_eq!(code, 9);
    let (code, _, _) = get(&s, &["--env", "prod", "../x"]);
    assert_eq!(code, 3);
    let (code, _, _) = get(&s, &["--env", "staging", "x"]);
    assert_eq!(code, 4);
}
