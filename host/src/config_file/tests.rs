use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use super::*;

const TOKEN: &str = "hvs.s3cr3t-token-value";

const GOOD: &str = r#"# comment
[policy.defaults]
cache = { ttl_ms = 1000 }

[policy.environments.prod]
backend = "vault"
url = "http://127.0.0.1:8200"
token_key = "prod_vault_token"
timeouts = { attempt_ms = 1000, deadline_ms = 90000 }

[policy.environments.dev]
backend = "vault"
url = "http://127.0.0.1:8201"
token_key = "dev_token"

[credentials]
prod_vault_token = { env = "VAULT_TOKEN" }
dev_token = { env = "DEV_TOKEN" }
"#;

fn env(name: &str) -> Option<String> {
    match name {
        "VAULT_TOKEN" => Some(TOKEN.to_string()),
        "DEV_TOKEN" => Some("dev-root".to_string()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

fn parse(text: &str) -> Result<ConfigFile, ConfigError> {
    ConfigFile::parse(text, Path::new("/etc/edge/secrets.toml"), &env)
}

fn parse_err(text: &str) -> ConfigError {
    match parse(text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => {
            let shown = format!("{e} {e:?}");
            assert!(!shown.contains(TOKEN), "error leaks the token: {shown}");
            e
        }
    }
}

/// A fresh directory per test (tests run in parallel).
fn temp_dir() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!("edge-secrets-config-test-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn good_file_becomes_wasi_config() {
    let cfg = parse(GOOD).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.environments, ["prod", "dev"]);
    assert_eq!(cfg.wasi_config.get("prod_vault_token").map(String::as_str), Some(TOKEN));
    assert_eq!(cfg.wasi_config.get("dev_token").map(String::as_str), Some("dev-root"));
    assert_eq!(cfg.wasi_config.len(), 3);
    let policy: serde_json::Value = serde_json::from_str(&cfg.wasi_config[POLICY_KEY]).unwrap();
    assert_eq!(policy["environments"]["prod"]["url"], "http://127.0.0.1:8200");
    assert_eq!(policy["defaults"]["cache"]["ttl_ms"], 1000);
    // File order survives the TOML -> JSON trip.
    let text = &cfg.wasi_config[POLICY_KEY];
    assert!(text.find("\"prod\"").unwrap() < text.find("\"dev\"").unwrap(), "{text}");
    // No [host]: the call deadline stays above the largest policy deadline (90 s).
    assert_eq!(cfg.options.call_timeout, Duration::from_secs(95));
}

#[test]
fn default_call_timeout_has_a_floor() {
    let text = GOOD.replace("deadline_ms = 90000", "deadline_ms = 2000");
    assert_eq!(parse(&text).unwrap_or_else(|e| panic!("{e}")).options.call_timeout, Duration::from_secs(60));
}

#[test]
fn unknown_top_level_key_names_line_and_key() {
    let e = parse_err(&format!("{GOOD}\n[hots]\nmemory_mib = 3\n"));
    assert_eq!(e.key.as_deref(), Some("hots"));
    assert_eq!(e.line, Some(GOOD.lines().count() + 2));
    assert!(e.to_string().starts_with("/etc/edge/secrets.toml:"), "{e}");
}

#[test]
fn toml_syntax_error_has_a_line_and_no_source_echo() {
    let e = parse_err("[policy]\nx = \"unterminated\n");
    assert_eq!(e.line, Some(2));
    assert!(e.message.starts_with("invalid TOML"), "{e}");
    assert!(!e.message.contains("unterminated"), "echoes source text: {e}");
}

#[test]
fn inline_credential_is_refused_without_echo() {
    let text = GOOD.replace("prod_vault_token = { env = \"VAULT_TOKEN\" }", &format!("prod_vault_token = \"{TOKEN}\""));
    let e = parse_err(&text);
    assert_eq!(e.key.as_deref(), Some("credentials.prod_vault_token"));
    assert_eq!(e.line, Some(17));
    assert!(e.message.contains("never written in the config file"), "{e}");
}

#[test]
fn missing_env_var_names_key_and_variable() {
    let e = parse_err(&GOOD.replace("{ env = \"DEV_TOKEN\" }", "{ env = \"NOPE_TOKEN\" }"));
    assert_eq!(e.key.as_deref(), Some("credentials.dev_token"));
    assert_eq!(e.line, Some(18));
    assert!(e.message.contains("`NOPE_TOKEN` is not set"), "{e}");
    let e = parse_err(&GOOD.replace("{ env = \"DEV_TOKEN\" }", "{ env = \"EMPTY\" }"));
    assert!(e.message.contains("`EMPTY` is empty"), "{e}");
}

#[test]
fn credential_shape_errors() {
    for (bad, needle) in [
        ("{ env = \"A\", file = \"b\" }", "exactly one"),
        ("{ }", "exactly one"),
        ("{ vault = \"x\" }", "unknown source `vault`"),
        ("{ env = 3 }", "`env` must be a string"),
    ] {
        let e = parse_err(&GOOD.replace("{ env = \"DEV_TOKEN\" }", bad));
        assert_eq!(e.key.as_deref(), Some("credentials.dev_token"), "{bad}");
        assert!(e.message.contains(needle), "{bad}: {e}");
    }
    let e = parse_err(&GOOD.replace("dev_token = {", "Dev-Token = {"));
    assert_eq!(e.key.as_deref(), Some("credentials.Dev-Token"));
    assert!(e.message.contains("[a-z][a-z0-9_]*"), "{e}");
}

#[test]
fn file_credentials_are_relative_and_trimmed() {
    let dir = temp_dir();
    std::fs::create_dir_all(dir.join("creds")).unwrap();
    std::fs::write(dir.join("creds/dev"), "file-token\r\n\n").unwrap();
    let text = GOOD.replace("{ env = \"DEV_TOKEN\" }", "{ file = \"creds/dev\" }");
    let path = dir.join("edge.toml");
    std::fs::write(&path, &text).unwrap();
    // `load` reads the process environment, which has no VAULT_TOKEN here: use `parse` with the
    // same path instead so relative files resolve against the config's directory.
    let cfg = ConfigFile::parse(&text, &path, &env).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.wasi_config["dev_token"], "file-token");

    let missing = GOOD.replace("{ env = \"DEV_TOKEN\" }", "{ file = \"creds/none\" }");
    let e = ConfigFile::parse(&missing, &path, &env).err().expect("missing file must fail");
    assert_eq!(e.key.as_deref(), Some("credentials.dev_token"));
    assert!(e.message.contains("creds/none") && e.message.contains("not found"), "{e}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn load_names_an_unreadable_config_file() {
    let e = ConfigFile::load(Path::new("/nonexistent/edge-secrets.toml")).err().expect("must fail");
    assert_eq!(e.file, Path::new("/nonexistent/edge-secrets.toml"));
    assert!(e.to_string().starts_with("/nonexistent/edge-secrets.toml: cannot read"), "{e}");
}

#[test]
fn policy_errors_point_at_the_key() {
    let text = GOOD.replace("timeouts = { attempt_ms = 1000, deadline_ms = 90000 }", "timeouts = { attempt_ms = 1000, deadline_ms = 90000 }\nretry = { attempts = 0 }");
    let e = parse_err(&text);
    assert_eq!(e.key.as_deref(), Some("policy.environments.prod.retry.attempts"), "{e}");
    assert_eq!(e.line, Some(10), "{e}");
    let e = parse_err(&GOOD.replace("backend = \"vault\"\nurl = \"http://127.0.0.1:8200\"", "backend = \"vault\"\nurl = \"http://127.0.0.1:8200\"\ntypo = 1"));
    assert!(e.key.as_deref().unwrap_or_default().starts_with("policy.environments.prod"), "{e}");
    let e = parse_err("[credentials]\n");
    assert_eq!(e.key.as_deref(), Some("policy"));
}

#[test]
fn token_key_without_credential_is_an_error() {
    let text = GOOD.replace("dev_token = { env = \"DEV_TOKEN\" }\n", "");
    let e = parse_err(&text);
    assert_eq!(e.key.as_deref(), Some("policy.environments.dev.token_key"));
    assert_eq!(e.line, Some(14));
    assert!(e.message.contains("`dev_token`"), "{e}");
}

#[test]
fn host_table() {
    let cfg = parse(&format!("{GOOD}[host]\nmemory_mib = 64\ncall_timeout_ms = 120000\ncache_dir = \"cache\"\n")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.options.memory_limit_bytes, 64 << 20);
    assert_eq!(cfg.options.call_timeout, Duration::from_secs(120));
    assert_eq!(cfg.options.cache_dir.as_deref(), Some(Path::new("/etc/edge/cache")));

    let e = parse_err(&format!("{GOOD}[host]\ncall_timeout_ms = 1000\n"));
    assert_eq!(e.key.as_deref(), Some("host.call_timeout_ms"));
    assert!(e.message.contains("90000 ms"), "{e}");
    let e = parse_err(&format!("{GOOD}[host]\nmemory_mib = \"lots\"\n"));
    assert_eq!(e.key.as_deref(), Some("host.memory_mib"));
    assert_eq!(e.line, Some(GOOD.lines().count() + 2));
    let e = parse_err(&format!("{GOOD}[host]\nmemroy_mib = 1\n"));
    assert_eq!(e.key.as_deref(), Some("host.memroy_mib"));
}

#[test]
fn display_format() {
    let e = ConfigError { file: "a.toml".into(), line: Some(3), column: Some(7), key: Some("host.x".into()), message: "bad".into() };
    assert_eq!(e.to_string(), "a.toml:3:7: host.x: bad");
    let e = ConfigError { file: "a.toml".into(), line: None, column: None, key: None, message: "bad".into() };
    assert_eq!(e.to_string(), "a.toml: bad");
}

#[test]
fn line_col_counts_characters() {
    assert_eq!(line_col("ab\ncé d", 7), (2, 4));
    assert_eq!(line_col("x", 0), (1, 1));
}

#[test]
fn fallback_tiers_are_tables_of_an_array_and_need_their_credentials() {
    let tiers = GOOD.replace(
        "[credentials]\n",
        "[[policy.environments.prod.fallbacks]]\nbackend = \"gcp\"\nurl = \"http://127.0.0.1:8202\"\nproject = \"mirror\"\ntoken_key = \"mirror_token\"\n\n[credentials]\n",
    );
    let e = parse_err(&tiers);
    assert_eq!(e.key.as_deref(), Some("policy.environments.prod.fallbacks.0.token_key"), "{e}");
    assert!(e.message.contains("`mirror_token`"), "{e}");
    let cfg = parse(&format!("{tiers}mirror_token = {{ env = \"DEV_TOKEN\" }}\n")).unwrap_or_else(|e| panic!("{e}"));
    let policy: serde_json::Value = serde_json::from_str(&cfg.wasi_config[POLICY_KEY]).unwrap();
    assert_eq!(policy["environments"]["prod"]["fallbacks"][0]["project"], "mirror");
}

#[test]
fn auth_tables_name_each_credential_key_they_need() {
    let approle = GOOD.replace(
        "[credentials]\n",
        "[policy.environments.approle]\nbackend = \"vault\"\nurl = \"http://127.0.0.1:8200\"\n\n\
         [policy.environments.approle.auth]\nmethod = \"approle\"\nrole_id_key = \"vault_role_id\"\nsecret_id_key = \"vault_secret_id\"\n\n[credentials]\n",
    );
    let with_role = format!("{approle}vault_role_id = {{ env = \"DEV_TOKEN\" }}\n");
    let e = parse_err(&with_role);
    assert_eq!(e.key.as_deref(), Some("policy.environments.approle.auth.secret_id_key"), "{e}");
    assert!(e.message.contains("`vault_secret_id`"), "{e}");
    assert_eq!(e.line, Some(approle.lines().position(|l| l.starts_with("secret_id_key")).unwrap() + 1), "{e}");
    let cfg = parse(&format!("{with_role}vault_secret_id = {{ env = \"DEV_TOKEN\" }}\n")).unwrap_or_else(|e| panic!("{e}"));
    let policy: serde_json::Value = serde_json::from_str(&cfg.wasi_config[POLICY_KEY]).unwrap();
    assert_eq!(policy["environments"]["approle"]["auth"]["method"], "approle");
    assert!(cfg.wasi_config.contains_key("vault_secret_id"));
}
