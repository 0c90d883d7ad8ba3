//! The `edge-secrets get` binary against the loopback fake of both backends: a Vault and a
//! GCP secret read from one config file, credentials from an environment variable and a file,
//! and the value never on stderr, even when a broken answer contains it: every invocation is
//! checked (see [`get`]).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine as _;
use edge_secrets_tests::{FakeBackend, Fault};

const VAULT_VALUE: &str = "vault-SENTINEL-4417";
const VAULT_USER: &str = "svc-SENTINEL-8930";
const GCP_VALUE: &[u8] = b"gcp-SENTINEL-\x00\xff-binary";

/// Fails the test if `stderr` holds a secret value in any form it travels in: as is, or as the
/// base64 GCP sends (and `--json` prints for binary values). Every value here carries
/// `SENTINEL`, so a partial echo (a truncated answer quoted in a message) is caught too.
fn assert_no_value(stderr: &[u8], args: &[&str]) {
    let b64 = base64::engine::general_purpose::STANDARD.encode(GCP_VALUE);
    let needles: [&[u8]; 5] = [VAULT_VALUE.as_bytes(), VAULT_USER.as_bytes(), GCP_VALUE, b64.as_bytes(), b"SENTINEL"];
    for needle in needles {
        let found = stderr.windows(needle.len()).any(|w| w == needle);
        assert!(!found, "secret value {:?} on stderr of `get {}`:\n{}", String::from_utf8_lossy(needle), args.join(" "), String::from_utf8_lossy(stderr));
    }
}

struct Setup {
    backend: FakeBackend,
    config: PathBuf,
}

fn setup(name: &str) -> Setup {
    let backend = FakeBackend::start();
    backend.expect_vault_token("vault-tok");
    backend.expect_gcp_token("gcp-tok");
    backend.put_vault("app/db", 7, &[("value", VAULT_VALUE), ("user", VAULT_USER)]);
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

/// Runs `edge-secrets get --config <setup> args...`; fails the test if a value reaches stderr.
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
    assert_no_value(&stderr, args);
    (status.code().expect("exited"), stdout, String::from_utf8_lossy(&stderr).into_owned())
}

#[test]
fn reads_a_vault_and_a_gcp_secret_from_loopback_servers() {
    let s = setup("ok");
    let (code, out, err) = get(&s, &["--env", "prod", "app/db"]);
    assert_eq!((code, out.as_slice()), (0, VAULT_VALUE.as_bytes()), "stderr: {err}");
    let (code, out, err) = get(&s, &["--env", "gprod", "api-key"]);
    assert_eq!((code, out.as_slice()), (0, GCP_VALUE), "raw bytes, not text; stderr: {err}");
    let (code, out, err) = get(&s, &["--env", "prod", "app/db", "--field", "user", "--json"]);
    assert_eq!(code, 0, "stderr: {err}");
    let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!((doc["value"].as_str(), doc["version"].as_str()), (Some(VAULT_USER), Some("7")));
    let (code, out, err) = get(&s, &["--env", "gprod", "api-key", "--json"]);
    assert_eq!(code, 0, "stderr: {err}");
    let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(doc["encoding"], "base64");
    assert_eq!(base64::engine::general_purpose::STANDARD.decode(doc["value"].as_str().unwrap()).unwrap(), GCP_VALUE);
    let sent = s.backend.requests();
    assert!(sent.iter().any(|r| r.path_and_query == "/v1/projects/proj-1/secrets/api-key/versions/latest:access"));
}

#[test]
fn errors_exit_with_their_code_and_name_env_and_secret_but_never_the_value() {
    let s = setup("errors");
    let (code, out, err) = get(&s, &["--env", "gprod", "nope"]);
    assert_eq!((code, out.len()), (5, 0));
    assert!(err.contains("gprod") && err.contains("nope"), "{err}");

    // Each of these answers holds the value (`get` checks stderr for it):
    // a field missing from a version that was fetched,
    let (code, out, err) = get(&s, &["--env", "prod", "app/db", "--field", "nope"]);
    assert_eq!((code, out.len()), (5, 0), "{err}");
    assert!(err.contains("prod/app/db"), "{err}");
    // a GCP payload whose checksum does not match (decoded, then refused),
    s.backend.set_fault_always(Some(Fault::BadCrc));
    let (code, out, err) = get(&s, &["--env", "gprod", "api-key"]);
    assert_eq!((code, out.len()), (10, 0), "{err}");
    assert!(err.contains("gprod/api-key"), "{err}");
    // and a truncated answer: the first half of the JSON, value included.
    s.backend.set_fault_always(Some(Fault::Truncated));
    let (code, _, err) = get(&s, &["--env", "prod", "app/db"]);
    assert_eq!(code, 10, "{err}");
    assert!(err.contains("prod") && err.contains("app/db"), "{err}");

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
