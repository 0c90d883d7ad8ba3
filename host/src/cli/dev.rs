//! `edge-secrets dev`: a local Vault-compatible dev store with the component pointed at it, so a
//! new user can go from nothing to a secret read in one command:
//!
//! - `edge-secrets dev --get app/db` starts the store, reads once through the component, exits;
//! - `edge-secrets dev` keeps the store running, writes a ready-to-use config file and prints
//!   the `edge-secrets get` command that reads from it, until Ctrl-C.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Args;
use edge_secrets_host::config_file::POLICY_KEY;
use edge_secrets_host::dev_store::{DevStore, DevStoreOptions, Seed};
use edge_secrets_host::{Client, ConfigFile, Request, Runtime, RuntimeOptions};

use super::exit;
use super::get::{client_of, read_and_print, ReadArgs};

/// The environment `dev` configures, and the config key of its token.
const ENVIRONMENT: &str = "dev";
const TOKEN_KEY: &str = "dev_token";

#[derive(Args)]
pub struct DevArgs {
    /// Seed file (JSON or TOML: KV path -> fields). Without it the store holds examples:
    /// `app/db` (fields `value`, `user`) and `app/api-key` (versions 1 and 2).
    #[arg(long, value_name = "FILE")]
    pub seed: Option<PathBuf>,
    /// Where the store listens (loopback only); port 0 picks a free port.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Read this secret once through the component, print it, stop the store and exit.
    #[arg(long = "get", value_name = "NAME")]
    pub get: Option<String>,
    #[command(flatten)]
    pub read: ReadArgs,
}

pub fn run(args: DevArgs) -> u8 {
    let seed = match &args.seed {
        Some(path) => Seed::from_file(path),
        None => example_seed(),
    };
    let seed = match seed {
        Ok(seed) => seed,
        Err(e) => {
            eprintln!("edge-secrets dev: {e:#}");
            return exit::USAGE;
        }
    };
    let paths: Vec<String> = seed.paths().map(str::to_string).collect();
    let store = match DevStore::start(DevStoreOptions { listen: args.listen, token: None, seed }) {
        Ok(store) => store,
        Err(e) => {
            eprintln!("edge-secrets dev: {e:#}");
            return exit::USAGE;
        }
    };
    let config = BTreeMap::from([(POLICY_KEY.to_string(), policy_json(&store.url())), (TOKEN_KEY.to_string(), store.token().to_string())]);
    // Starting the component here also compiles it into the cache, so later `get`s are quick.
    let mut client = match Runtime::new(config, RuntimeOptions::default()).and_then(|rt| client_of(&rt, "edge-secrets dev")) {
        Ok(client) => client,
        Err(e) => {
            eprintln!("edge-secrets dev: cannot start the component: {e}");
            return exit::code(e.kind());
        }
    };
    if let Some(name) = &args.get {
        return read_and_print(&mut client, ENVIRONMENT, name, &args.read);
    }
    serve(&store, &paths, &mut client)
}

fn serve(store: &DevStore, paths: &[String], client: &mut Client) -> u8 {
    let dir = match create_private_dir(&std::env::temp_dir()) {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("edge-secrets dev: cannot create a directory for the config file in {}: {e}", std::env::temp_dir().display());
            return exit::code(edge_secrets_host::ErrorKind::Host);
        }
    };
    let config_path = match write_config(&dir, &store.url(), store.token()) {
        Ok(path) => path,
        Err(e) => {
            eprintln!("edge-secrets dev: cannot write the config file in {}: {e}", dir.display());
            let _ = std::fs::remove_dir_all(&dir);
            return exit::code(edge_secrets_host::ErrorKind::Host);
        }
    };
    // The file must be exactly what `get` accepts; check it the same way.
    if let Err(e) = ConfigFile::load(&config_path) {
        eprintln!("edge-secrets dev: the generated config is invalid: {e}");
        let _ = std::fs::remove_dir_all(&dir);
        return exit::code(edge_secrets_host::ErrorKind::Host);
    }
    let program = std::env::args().next().unwrap_or_else(|| "edge-secrets".into());
    let example = paths.iter().find(|p| *p == "app/db").or(paths.first()).map(String::as_str).unwrap_or("app/db");
    println!("dev store (Vault KV v2, mount `secret`) listening on {}", store.url());
    println!("root token: {}  (a dev credential: it reads and writes every secret)", store.token());
    println!("secrets: {}", if paths.is_empty() { "(none)".to_string() } else { paths.join(", ") });
    println!("config for environment `{ENVIRONMENT}`: {}", config_path.display());
    // One read end to end, so a broken setup shows here rather than at the user's first `get`.
    // Only metadata is printed: a --seed file may hold values worth keeping off the terminal.
    if !paths.is_empty() {
        match client.get(&Request::new(ENVIRONMENT, example)) {
            Ok(secret) => println!("read `{example}` through the component: version {}, {} bytes, from the {}", secret.version, secret.value.len(), secret.source),
            Err(e) => println!("reading `{example}` through the component failed: {e}"),
        }
    }
    println!();
    println!("read a secret through the component:");
    println!("  {program} get --config {} --env {ENVIRONMENT} {example}", config_path.display());
    println!("write one (Vault API):");
    println!("  curl -H 'X-Vault-Token: {}' -d '{{\"data\":{{\"value\":\"...\"}}}}' {}/v1/secret/data/{example}", store.token(), store.url());
    println!();
    println!("Ctrl-C stops the store and removes {}", dir.display());
    let stopped = tokio::runtime::Builder::new_current_thread().enable_all().build().map(|rt| rt.block_on(tokio::signal::ctrl_c()));
    let _ = std::fs::remove_dir_all(&dir);
    match stopped {
        Ok(Ok(())) => exit::OK,
        Ok(Err(e)) | Err(e) => {
            eprintln!("edge-secrets dev: cannot wait for Ctrl-C: {e}");
            exit::code(edge_secrets_host::ErrorKind::Host)
        }
    }
}

/// Example secrets for when the user brings no seed file: fields, and two versions.
fn example_seed() -> anyhow::Result<Seed> {
    let mut seed = Seed::new();
    seed.insert("app/db", [("value", "dev-password"), ("user", "app")])?;
    seed.insert("app/api-key", [("value", "dev-key-1")])?;
    seed.insert("app/api-key", [("value", "dev-key-2")])?;
    Ok(seed)
}

fn policy_json(url: &str) -> String {
    serde_json::json!({
        "environments": { ENVIRONMENT: { "backend": "vault", "url": url, "token_key": TOKEN_KEY } }
    })
    .to_string()
}

/// A new owner-only (0700) directory `edge-secrets-dev-<pid>-<random>` under `parent`. Created
/// on its own, never reusing an existing path: in a shared temp dir another user could have
/// prepared one (or a symlink) at a predictable name to read or swap the token.
fn create_private_dir(parent: &Path) -> std::io::Result<PathBuf> {
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    let mut attempts = 0;
    loop {
        let mut suffix = [0u8; 8];
        getrandom::fill(&mut suffix).map_err(|e| std::io::Error::other(e.to_string()))?;
        let suffix: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
        let dir = parent.join(format!("edge-secrets-dev-{}-{suffix}", std::process::id()));
        match builder.create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempts < 8 => attempts += 1,
            Err(e) => return Err(e),
        }
    }
}

/// Creates `path` (owner-only), failing if anything, a symlink included, is already there.
fn create_new_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    std::io::Write::write_all(&mut file, contents)
}

/// `dir/dev.toml` plus the token in `dir/dev-token` (owner-only), referenced as a file
/// credential so the printed command works without exporting anything. `dir` comes from
/// [`create_private_dir`]; neither file may exist yet.
fn write_config(dir: &Path, url: &str, token: &str) -> std::io::Result<PathBuf> {
    create_new_private(&dir.join("dev-token"), token.as_bytes())?;
    let url = serde_json::to_string(url).expect("a string serializes"); // a valid TOML basic string too
    let config = format!(
        "# written by `edge-secrets dev`; removed when it stops\n\
         [policy.environments.{ENVIRONMENT}]\nbackend = \"vault\"\nurl = {url}\ntoken_key = \"{TOKEN_KEY}\"\n\n\
         [credentials]\n{TOKEN_KEY} = {{ file = \"dev-token\" }}\n"
    );
    let path = dir.join("dev.toml");
    create_new_private(&path, config.as_bytes())?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch parent dir, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let path = std::env::temp_dir().join(format!("edge-secrets-dev-test-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            Scratch(path)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn generated_config_loads_and_matches_the_store() {
        let scratch = Scratch::new("load");
        let dir = create_private_dir(&scratch.0).unwrap();
        let path = write_config(&dir, "http://127.0.0.1:4567", "hvs.devtoken").unwrap();
        let config = ConfigFile::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.environments, [ENVIRONMENT]);
        assert_eq!(config.wasi_config[TOKEN_KEY], "hvs.devtoken");
        let policy: serde_json::Value = serde_json::from_str(&config.wasi_config[POLICY_KEY]).unwrap();
        let from_code: serde_json::Value = serde_json::from_str(&policy_json("http://127.0.0.1:4567")).unwrap();
        assert_eq!(policy, from_code);
    }

    #[cfg(unix)]
    #[test]
    fn the_dir_and_files_are_new_and_owner_only() {
        use std::os::unix::fs::MetadataExt;
        let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().mode() & 0o7777;
        let scratch = Scratch::new("modes");
        let a = create_private_dir(&scratch.0).unwrap();
        let b = create_private_dir(&scratch.0).unwrap();
        assert_ne!(a, b, "each run gets its own, unpredictable directory");
        assert!(a.file_name().unwrap().to_str().unwrap().starts_with(&format!("edge-secrets-dev-{}-", std::process::id())));
        assert_eq!(mode(&a), 0o700);
        let config = write_config(&a, "http://127.0.0.1:1", "hvs.devtoken").unwrap();
        assert_eq!(mode(&config), 0o600);
        assert_eq!(mode(&a.join("dev-token")), 0o600);
        // Never over an existing file: a second write into the same dir fails.
        assert_eq!(write_config(&a, "http://127.0.0.1:1", "other").unwrap_err().kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(a.join("dev-token")).unwrap(), "hvs.devtoken");
    }

    #[cfg(unix)]
    #[test]
    fn a_planted_symlink_is_not_followed() {
        let scratch = Scratch::new("symlink");
        let dir = scratch.0.join("planted");
        std::fs::create_dir(&dir).unwrap();
        let victim = scratch.0.join("victim");
        std::fs::write(&victim, "keep").unwrap();
        std::os::unix::fs::symlink(&victim, dir.join("dev-token")).unwrap();
        let err = write_config(&dir, "http://127.0.0.1:1", "hvs.devtoken").unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
    }
}
