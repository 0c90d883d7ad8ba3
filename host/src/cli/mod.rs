//! The `edge-secrets` command line: argument parsing and dispatch. Each subcommand lives in its
//! own module and returns its exit code (see [`exit`]).

mod compose;
mod dev;
pub mod exit;
mod get;
mod kv;
mod serve;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// Resilient access to secret stores (Vault KV v2, GCP Secret Manager) through the
/// edge:secrets WebAssembly component, run in wasmtime.
#[derive(Parser)]
#[command(name = "edge-secrets", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Read one secret and write its raw bytes to stdout (or JSON with --json).
    ///
    /// Errors go to stderr and name the environment and secret, never the value.
    Get(get::GetArgs),
    /// Run a local Vault-compatible dev store with the component pointed at it.
    ///
    /// With --get NAME: read NAME once through the component and exit. Without: keep the store
    /// running and print a config file and the `get` command that reads from it.
    Dev(dev::DevArgs),
    /// Measure the component against its baselines and print figures, ratios and targets.
    ///
    /// Runs a loopback dev store and a private compile cache; prints timings only. Build with
    /// --release for meaningful figures. Exits 0 even when a target is missed (MISS rows).
    Bench(crate::bench::BenchArgs),
    /// Serve secrets over HTTP: the Spin app composed with the component, run as Spin 4 runs it
    /// (WASI P3), until SIGINT/SIGTERM.
    ///
    /// Routes: GET /v1/secrets/{env}/{name...}?version=&field= (Authorization: Bearer with a
    /// token configured for env in `caller_tokens`), GET /healthz, GET /metrics.
    Serve(serve::ServeArgs),
    /// Compose an app that reads its settings through `wasi:config` with the config provider,
    /// so the settings the policy maps are read from secret stores (what `wac plug` does).
    Compose(compose::ComposeArgs),
}

/// Parses the process arguments (exiting with 2 on usage errors, like clap) and runs the command.
pub fn main() -> u8 {
    let help = exit::help();
    let command = Cli::command().after_help(help.clone()).mut_subcommands(|sub| sub.after_help(help.clone()));
    let matches = command.get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match cli.command {
        Command::Get(args) => get::run(args),
        Command::Dev(args) => dev::run(args),
        Command::Bench(args) => crate::bench::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Compose(args) => compose::run(args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_parse() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["edge-secrets", "get", "--config", "c.toml", "--env", "prod", "app/db", "--version", "3", "--field", "user", "--json"]).unwrap();
        let Command::Get(get) = cli.command else { panic!("expected get") };
        assert_eq!((get.environment.as_str(), get.name.as_str()), ("prod", "app/db"));
        assert_eq!((get.read.version.as_deref(), get.read.field.as_deref(), get.read.json), (Some("3"), Some("user"), true));
        assert!(Cli::try_parse_from(["edge-secrets", "get", "--env", "prod", "app/db"]).is_err(), "--config is required");
        let cli = Cli::try_parse_from(["edge-secrets", "dev", "--get", "app/db", "--field", "user"]).unwrap();
        let Command::Dev(dev) = cli.command else { panic!("expected dev") };
        assert_eq!((dev.get.as_deref(), dev.listen.port()), (Some("app/db"), 0));
        let cli = Cli::try_parse_from(["edge-secrets", "bench", "--quick", "--iterations", "10"]).unwrap();
        let Command::Bench(bench) = cli.command else { panic!("expected bench") };
        assert_eq!((bench.quick, bench.iterations, bench.batches), (true, Some(10), None));
        let cli = Cli::try_parse_from(["edge-secrets", "serve", "--config", "c.toml"]).unwrap();
        let Command::Serve(serve) = cli.command else { panic!("expected serve") };
        assert_eq!((serve.listen.to_string().as_str(), serve.fresh_instance_per_request), ("127.0.0.1:8080", false));
        let cli = Cli::try_parse_from(["edge-secrets", "serve", "--config", "c.toml", "--listen", "127.0.0.1:0", "--fresh-instance-per-request"]).unwrap();
        let Command::Serve(serve) = cli.command else { panic!("expected serve") };
        assert_eq!((serve.listen.port(), serve.fresh_instance_per_request), (0, true));
        assert!(Cli::try_parse_from(["edge-secrets", "serve"]).is_err(), "--config is required");
    }
}
