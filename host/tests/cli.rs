//! The `edge-secrets` binary end to end: output bytes, `--json`, exit codes, stderr messages.
//! Every invocation, successful or not, is checked for secret values on stderr (see [`run`]).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use edge_secrets_host::dev_store::{DevStore, DevStoreOptions, Seed};

/// Every secret value these tests put in a store (the `dev` examples included). None may ever
/// appear on stderr, whatever the command and its outcome.
const VALUES: &[&str] = &["dev-password", "dev-key-1", "dev-key-2", "s3cr3t-bytes", "user-SENTINEL-5113", "pw-SENTINEL-2207"];

fn tmp() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).to_path_buf()
}

/// The binary, with its compile cache under the target dir instead of the user's home.
fn cli(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_edge-secrets"));
    cmd.args(args).env("XDG_CACHE_HOME", tmp().join("cli-cache")).env_remove("VAULT_TOKEN");
    cmd
}

/// Runs the binary; fails the test if stderr holds any of [`VALUES`].
fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output { status, stdout, stderr } = cmd.output().expect("run edge-secrets");
    let (stdout, stderr) = (String::from_utf8(stdout).unwrap(), String::from_utf8(stderr).unwrap());
    for value in VALUES {
        assert!(!stderr.contains(value), "secret value `{value}` on stderr of {cmd:?}:\n{stderr}");
    }
    (status.code().expect("exited"), stdout, stderr)
}

#[test]
fn dev_get_reads_end_to_end() {
    let (code, out, err) = run(&mut cli(&["dev", "--get", "app/db"]));
    assert_eq!((code, out.as_str()), (0, "dev-password"), "stderr: {err}");

    // The whole version (`value` included) is fetched to answer for `user`.
    let (code, out, err) = run(&mut cli(&["dev", "--get", "app/db", "--field", "user", "--json"]));
    assert_eq!(code, 0, "stderr: {err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc, serde_json::json!({ "value": "app", "version": "1", "source": "backend", "stale": false, "tier": 0 }));

    let (code, out, err) = run(&mut cli(&["dev", "--get", "app/nope"]));
    assert_eq!((code, out.as_str()), (5, ""));
    assert!(err.contains("dev/app/nope") && err.contains("not found"), "{err}");
}

#[test]
fn dev_get_with_a_seed_file() {
    let dir = tmp().join(format!("cli-seed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let seed = dir.join("seed.json");
    std::fs::write(&seed, r#"{ "svc/db": { "value": "pw-SENTINEL-2207", "user": "user-SENTINEL-5113" } }"#).unwrap();
    let seed = seed.to_str().unwrap();

    let (code, out, err) = run(&mut cli(&["dev", "--seed", seed, "--get", "svc/db", "--field", "user", "--json"]));
    assert_eq!(code, 0, "stderr: {err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["value"], "user-SENTINEL-5113");

    // The version was fetched with both fields in it; only the missing field is named.
    let (code, out, err) = run(&mut cli(&["dev", "--seed", seed, "--get", "svc/db", "--field", "nope"]));
    assert_eq!((code, out.as_str()), (5, ""), "stderr: {err}");
    assert!(err.contains("dev/svc/db"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn get_with_a_config_file() {
    let mut seed = Seed::new();
    seed.insert("app/db", [("value", "s3cr3t-bytes")]).unwrap();
    let store = DevStore::start(DevStoreOptions { seed, ..Default::default() }).unwrap();
    let dir = tmp().join(format!("cli-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("edge.toml");
    std::fs::write(
        &config,
        format!(
            "[policy.environments.prod]\nbackend = \"vault\"\nurl = \"{}\"\ntoken_key = \"prod_token\"\n\n\
             [credentials]\nprod_token = {{ env = \"VAULT_TOKEN\" }}\n",
            store.url()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let get = |token: &str, args: &[&str]| {
        let mut all = vec!["get", "--config", config];
        all.extend_from_slice(args);
        run(cli(&all).env("VAULT_TOKEN", token))
    };

    let (code, out, err) = get(store.token(), &["--env", "prod", "app/db"]);
    assert_eq!((code, out.as_str()), (0, "s3cr3t-bytes"), "stderr: {err}");

    let (code, out, err) = get(store.token(), &["--env", "prod", "app/db", "--json"]);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap()["value"], "s3cr3t-bytes");

    // Fetched (the answer holds the value), then refused: the message names the field only.
    let (code, out, err) = get(store.token(), &["--env", "prod", "app/db", "--field", "missing"]);
    assert_eq!((code, out.as_str()), (5, ""), "stderr: {err}");
    assert!(err.contains("prod/app/db"), "{err}");

    let (code, out, err) = get(store.token(), &["--env", "qa", "app/db"]);
    assert_eq!((code, out.as_str()), (4, ""));
    assert!(err.contains("qa/app/db") && err.contains("unknown environment"), "{err}");

    let (code, _, err) = get(store.token(), &["--env", "prod", "app/db", "--version", "zero"]);
    assert_eq!(code, 3, "{err}");

    // The credential went to the backend and was refused: it must not be echoed back.
    let (code, _, err) = get("hvs.wrong-token", &["--env", "prod", "app/db"]);
    assert_eq!(code, 6, "{err}");
    assert!(!err.contains("hvs.wrong-token") && !err.contains("wrong-token"), "{err}");

    // Credential missing from the environment: a config-file error naming key and variable.
    let (code, _, err) = run(cli(&["get", "--config", config, "--env", "prod", "app/db"]).env_remove("VAULT_TOKEN"));
    assert_eq!(code, 2);
    assert!(err.contains(&format!("{config}:7:")) && err.contains("credentials.prod_token") && err.contains("`VAULT_TOKEN` is not set"), "{err}");

    let (code, _, err) = run(&mut cli(&["get", "--config", "/nonexistent.toml", "--env", "prod", "x"]));
    assert_eq!(code, 2, "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn usage_errors_and_help() {
    let (code, _, _) = run(&mut cli(&["get", "app/db"]));
    assert_eq!(code, 2);
    let (code, out, _) = run(&mut cli(&["get", "--help"]));
    assert_eq!(code, 0);
    assert!(out.contains("Exit codes:") && out.contains("  5  not-found"), "{out}");
}

#[test]
fn compose_plugs_the_config_provider_into_an_app_and_refuses_what_is_not_one() {
    let out = tmp().join("composed-config-app.wasm");
    let _ = std::fs::remove_file(&out);
    let app = env!("EDGE_SECRETS_EXAMPLE_APP_WASM");
    let (code, _, err) = run(&mut cli(&["compose", "--config-provider", app, "-o", out.to_str().unwrap()]));
    assert_eq!(code, 0, "{err}");
    let composed = std::fs::read(&out).unwrap();
    assert_eq!(composed, edge_secrets_host::compose::with_config_provider(&std::fs::read(app).unwrap()).unwrap(), "what the library composes");
    assert!(err.contains("config provider plugged into its wasi:config/store import"), "{err}");

    // The provider itself imports no wasi:config it could plug: not an app for it.
    let not_an_app = tmp().join("not-an-app.wasm");
    std::fs::write(&not_an_app, b"\0asm not really").unwrap();
    let (code, _, err) = run(&mut cli(&["compose", "--config-provider", not_an_app.to_str().unwrap(), "-o", out.to_str().unwrap()]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot compose the app with the config provider"), "{err}");

    // The provider alone, for a Spin manifest's dependencies.
    let provider = tmp().join("edge_secrets_config_provider.wasm");
    let (code, _, err) = run(&mut cli(&["compose", "--write-provider", provider.to_str().unwrap()]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(&provider).unwrap(), edge_secrets_host::compose::CONFIG_PROVIDER_WASM);
    let (code, _, err) = run(&mut cli(&["compose"]));
    assert_eq!(code, 2, "nothing to do: {err}");
}
