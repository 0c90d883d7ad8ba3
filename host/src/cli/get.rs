//! `edge-secrets get`: one read through the component, value bytes to stdout.

use std::io::Write;
use std::path::PathBuf;

use base64::Engine as _;
use clap::Args;
use edge_secrets_host::{Client, ConfigFile, Request, Runtime, Secret};

use super::exit;

#[derive(Args)]
pub struct GetArgs {
    /// The host config file (TOML with `policy`, `credentials` and optional `host` tables).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// The environment to read from, as named in the policy.
    #[arg(long = "env", value_name = "ENV")]
    pub environment: String,
    /// The secret's name (a Vault KV path such as `app/db`, or a GCP secret id).
    #[arg(value_name = "NAME")]
    pub name: String,
    #[command(flatten)]
    pub read: ReadArgs,
    #[command(flatten)]
    pub kv: super::kv::KvArgs,
}

/// Which version/field to read and how to print it (shared with `dev --get`).
#[derive(Args)]
pub struct ReadArgs {
    /// The version: a positive integer or `latest` (default).
    #[arg(long, value_name = "V")]
    pub version: Option<String>,
    /// The field (Vault KV; default `value`).
    #[arg(long, value_name = "F")]
    pub field: Option<String>,
    /// Bypass the cache (the component rate-limits this per secret).
    #[arg(long)]
    pub refresh: bool,
    /// A W3C `traceparent` to join: backend requests carry its trace id.
    #[arg(long, value_name = "HEADER")]
    pub traceparent: Option<String>,
    /// Print {"value", "version", "source", "stale", "tier"} as JSON; non-UTF-8 values are
    /// base64 with "encoding": "base64".
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: GetArgs) -> u8 {
    let config = match ConfigFile::load(&args.config) {
        // The component's JSON log lines (secret-free by construction) go to our stderr;
        // the value alone goes to stdout.
        Ok(mut config) => {
            config.options.guest_stderr = true;
            config
        }
        Err(e) => {
            eprintln!("edge-secrets: {e}");
            return exit::USAGE;
        }
    };
    let config = match args.kv.open() {
        Ok(kv) => config.with_keyvalue(kv),
        Err(e) => {
            eprintln!("edge-secrets: {e}");
            return exit::USAGE;
        }
    };
    let mut client = match config.runtime().and_then(|rt| client_of(&rt, "edge-secrets")) {
        Ok(client) => client,
        Err(e) => {
            eprintln!("edge-secrets: cannot start the component: {e}");
            return exit::code(e.kind());
        }
    };
    read_and_print(&mut client, &args.environment, &args.name, &args.read)
}

/// A store URL for messages: a password in it (`redis://:pw@host`) is replaced by `***`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://***@{}", &url[..scheme], &url[at + 1..]),
        _ => url.to_string(),
    }
}

/// A client of `runtime`, after saying on stderr why the compile cache was not used, if it was not.
pub fn client_of(runtime: &Runtime, program: &str) -> Result<Client, edge_secrets_host::Error> {
    if let Some(note) = runtime.compile_cache_note() {
        eprintln!("{program}: warning: {note}");
    }
    runtime.client()
}

/// Reads `environment`/`name` and writes it to stdout; errors go to stderr, naming the
/// environment and the secret, never the value.
pub fn read_and_print(client: &mut Client, environment: &str, name: &str, read: &ReadArgs) -> u8 {
    let mut request = Request::new(environment, name);
    request.version = read.version.clone();
    request.field = read.field.clone();
    request.refresh = read.refresh;
    request.traceparent = read.traceparent.clone();
    let secret = match client.get(&request) {
        Ok(secret) => secret,
        Err(e) => {
            eprintln!("edge-secrets: get {environment}/{name}: {e}");
            return exit::code(e.kind());
        }
    };
    let output = if read.json { json_output(&secret) } else { secret.value.expose().to_vec() };
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(&output).and_then(|()| stdout.flush()) {
        eprintln!("edge-secrets: get {environment}/{name}: cannot write to stdout: {}", e.kind());
        return exit::code(edge_secrets_host::ErrorKind::Host);
    }
    exit::OK
}

/// `{"value": ..., "version": ..., "source": ...}` plus a newline; base64 for binary values.
pub fn json_output(secret: &Secret) -> Vec<u8> {
    let mut doc = serde_json::Map::new();
    match secret.value.expose_str() {
        Some(text) => {
            doc.insert("value".into(), text.into());
        }
        None => {
            doc.insert("value".into(), base64::engine::general_purpose::STANDARD.encode(secret.value.expose()).into());
            doc.insert("encoding".into(), "base64".into());
        }
    }
    doc.insert("version".into(), secret.version.clone().into());
    doc.insert("source".into(), secret.source.to_string().into());
    doc.insert("stale".into(), secret.stale.into());
    doc.insert("tier".into(), secret.tier.into());
    let mut out = serde_json::to_vec(&doc).expect("a JSON map always serializes");
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use edge_secrets_host::{SecretValue, Source};

    #[test]
    fn store_urls_in_messages_hide_their_password() {
        assert_eq!(redact_url("redis://:hunter2@127.0.0.1:6379/0"), "redis://***@127.0.0.1:6379/0");
        assert_eq!(redact_url("redis://user:pw@host"), "redis://***@host");
        assert_eq!(redact_url("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(redact_url("memory"), "memory");
    }

    fn parse(out: Vec<u8>) -> serde_json::Value {
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn json_is_text_or_base64() {
        let text = Secret { value: SecretValue::new("pässword".as_bytes().to_vec()), version: "4".into(), source: Source::Cache, stale: true, tier: 1 };
        let doc = parse(json_output(&text));
        assert_eq!(doc, serde_json::json!({"value": "pässword", "version": "4", "source": "cache", "stale": true, "tier": 1}));

        let binary = Secret { value: SecretValue::new(vec![0xff, 0x00, 0x10]), version: "1".into(), source: Source::Backend, stale: false, tier: 0 };
        let doc = parse(json_output(&binary));
        assert_eq!(doc, serde_json::json!({"value": "/wAQ", "encoding": "base64", "version": "1", "source": "backend", "stale": false, "tier": 0}));
    }
}
