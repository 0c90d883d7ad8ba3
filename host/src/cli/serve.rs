//! `edge-secrets serve`: the Spin app over HTTP until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use edge_secrets_host::serve::{ServeError, ServeOptions, Server, TlsFiles};
use edge_secrets_host::ConfigFile;

use super::exit;

/// The setting the app reads its caller tokens from (see spin-app/src/auth.rs).
const CALLER_TOKENS_KEY: &str = "caller_tokens";

#[derive(Args)]
pub struct ServeArgs {
    /// The host config file. Besides the policy's credentials, `[credentials]` must define
    /// `caller_tokens`: a JSON object from environment to the bearer token(s) callers use,
    /// e.g. `caller_tokens = { file = "caller-tokens.json" }`.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Address to listen on (port 0 picks a free port; the address is printed).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Give every request a fresh component instance instead of reusing one for up to 128
    /// requests (16 at once, 1 s idle), as Spin does. The answers are the same; the cache and
    /// breakers then never outlive a request.
    #[arg(long)]
    pub fresh_instance_per_request: bool,
    #[command(flatten)]
    pub kv: super::kv::KvArgs,
    /// Serve HTTPS with this PEM certificate chain (leaf first); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key (PKCS#8, PKCS#1 or SEC1) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Allow plain HTTP on a --listen address that is not loopback (e.g. behind a proxy that
    /// terminates TLS). Without it such an address needs --tls-cert and --tls-key, since tokens
    /// and secret values would cross the network unencrypted.
    #[arg(long)]
    pub allow_plaintext: bool,
    /// Seconds a client has to send a request's headers (and finish a TLS handshake); also how
    /// long a keep-alive connection may stay idle between requests.
    #[arg(long, value_name = "SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout: u64,
    /// Connections open at once; more wait in the listen backlog until one closes (lowered to
    /// fit the open-file limit).
    #[arg(long, value_name = "N", default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: u64,
    /// Serve this app instead of the built-in one: a WASI P3 `wasi:http` component, e.g. your
    /// app composed with the config provider (`edge-secrets compose --config-provider`). The
    /// config file's entries are then its `wasi:config` store, and `caller_tokens` is not needed.
    #[arg(long, value_name = "WASM")]
    pub app: Option<PathBuf>,
}

pub fn run(args: ServeArgs) -> u8 {
    let config = match ConfigFile::load(&args.config) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("edge-secrets: {e}");
            return exit::USAGE;
        }
    };
    let app = match args.app.as_deref().map(std::fs::read).transpose() {
        Ok(app) => app,
        Err(e) => {
            eprintln!("edge-secrets: --app {}: {e}", args.app.as_deref().unwrap_or(std::path::Path::new("")).display());
            return exit::USAGE;
        }
    };
    if app.is_none() && !config.wasi_config.contains_key(CALLER_TOKENS_KEY) {
        // Every secrets request would be a 500 config error: say so now instead.
        eprintln!(
            "edge-secrets: {}: credentials.{CALLER_TOKENS_KEY}: missing: serve needs the callers' bearer tokens \
             (a JSON object from environment to token list), e.g. {CALLER_TOKENS_KEY} = {{ env = \"CALLER_TOKENS\" }}",
            config.path.display()
        );
        return exit::USAGE;
    }
    let mut runtime = config.options.clone();
    // The component's JSON log lines (secret-free by construction) go to our stderr.
    runtime.guest_stderr = true;
    match args.kv.open() {
        Ok(kv) => runtime.keyvalue = Some(kv),
        Err(e) => {
            eprintln!("edge-secrets: {e}");
            return exit::USAGE;
        }
    }
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert_chain), Some(private_key)) => Some(TlsFiles { cert_chain, private_key }),
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let options = ServeOptions {
        listen: args.listen,
        fresh_instance_per_request: args.fresh_instance_per_request,
        header_read_timeout: Duration::from_secs(args.header_timeout),
        max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
        tls,
        allow_plaintext: args.allow_plaintext,
        ..ServeOptions::default()
    };
    let started = match &app {
        Some(app) => Server::start_app(app, config.wasi_config.clone(), runtime, options),
        None => Server::start(config.wasi_config.clone(), runtime, options),
    };
    let server = match started {
        Ok(server) => server,
        Err(e @ ServeError::Plaintext { .. }) => {
            eprintln!("edge-secrets: {e} (--tls-cert and --tls-key, or --allow-plaintext)");
            return exit::USAGE;
        }
        Err(e) => {
            eprintln!("edge-secrets: cannot start the server: {e}");
            return exit::code(edge_secrets_host::ErrorKind::Host);
        }
    };
    let mode = if args.fresh_instance_per_request { "a fresh instance per request" } else { "instances reused as by Spin" };
    eprintln!("edge-secrets serve: listening on {scheme}://{} ({mode}); Ctrl-C or SIGTERM stops", server.local_addr());
    if let Err(e) = wait_for_signal() {
        eprintln!("edge-secrets: cannot wait for signals: {e}");
    }
    eprintln!("edge-secrets serve: shutting down (finishing in-flight requests)");
    server.shutdown();
    eprintln!("edge-secrets serve: stopped");
    exit::OK
}

/// Blocks until SIGINT or (on Unix) SIGTERM.
fn wait_for_signal() -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        #[cfg(unix)]
        {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                r = tokio::signal::ctrl_c() => r,
                _ = term.recv() => Ok(()),
            }
        }
        #[cfg(not(unix))]
        tokio::signal::ctrl_c().await
    })
}
