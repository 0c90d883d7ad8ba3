//! `--kv` / `--kv-file` / `EDGE_SECRETS_KV`, shared by `get` and `serve`: a Redis URL can carry
//! a password, and a command-line argument is visible to every local user in `ps`.

use std::path::PathBuf;

use clap::Args;
use edge_secrets_host::KeyValue;

#[derive(Args)]
pub struct KvArgs {
    /// The `wasi:keyvalue` store for the component's shared state (policy `shared` object):
    /// `memory` (this process only, the default) or `redis://[:PASSWORD@]HOST:PORT[/DB]`, which
    /// every host pointed at the same Redis shares. A password given here is visible to other
    /// local users in `ps`: give such a URL in EDGE_SECRETS_KV or --kv-file instead.
    #[arg(long, value_name = "URL", env = "EDGE_SECRETS_KV", hide_env_values = true)]
    pub kv: Option<String>,
    /// Read the `--kv` URL from the first line of FILE (keeps a Redis password out of `ps`).
    #[arg(long, value_name = "FILE")]
    pub kv_file: Option<PathBuf>,
}

impl KvArgs {
    /// The store, or a message for stderr that names the source and never a password.
    pub fn open(&self) -> Result<KeyValue, String> {
        let (source, url) = match (&self.kv_file, &self.kv) {
            // Checked here, not by clap: clap's conflict message would not mention the variable.
            (Some(_), Some(_)) => return Err("give the store once: --kv-file, or --kv / EDGE_SECRETS_KV".into()),
            (Some(file), None) => {
                let text = std::fs::read_to_string(file).map_err(|e| format!("--kv-file {}: {e}", file.display()))?;
                (format!("--kv-file {}", file.display()), text.lines().next().unwrap_or("").trim().to_string())
            }
            (None, Some(url)) => ("--kv".to_string(), url.clone()),
            (None, None) => ("--kv".to_string(), "memory".to_string()),
        };
        KeyValue::from_url(&url).map_err(|e| format!("{source} {}: {e}", super::get::redact_url(&url)))
    }
}
