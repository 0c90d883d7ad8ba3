//! `edge-secrets compose --config-provider APP.wasm -o OUT.wasm`, and
//! `edge-secrets compose --write-provider FILE` (the provider alone, for Spin's
//! `[component.<app>.dependencies]`, which composes it itself).

use std::path::PathBuf;

use clap::Args;
use edge_secrets_host::compose::{with_config_provider, CONFIG_PROVIDER_WASM};

use super::exit;

#[derive(Args)]
pub struct ComposeArgs {
    /// The app: a component importing `wasi:config/store@0.2.0-draft-2024-09-27`. Its import
    /// is satisfied by the config provider; the result imports the provider's own
    /// `wasi:config` (its policy, credentials and the app's other settings), outbound
    /// `wasi:http`, `wasi:keyvalue`, clocks and random, plus whatever else the app imports.
    #[arg(long = "config-provider", value_name = "APP_WASM", requires = "output", conflicts_with = "write_provider")]
    pub app: Option<PathBuf>,
    /// Where to write the composed component.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Write the config provider component itself to FILE (for a Spin app's dependencies).
    #[arg(long, value_name = "FILE", required_unless_present = "app")]
    pub write_provider: Option<PathBuf>,
}

pub fn run(args: ComposeArgs) -> u8 {
    let (Some(app_path), Some(output)) = (&args.app, &args.output) else {
        return write_provider(args.write_provider.as_deref().unwrap_or(std::path::Path::new("edge_secrets_config_provider.wasm")));
    };
    let app = match std::fs::read(app_path) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("edge-secrets: --config-provider {}: {e}", app_path.display());
            return exit::USAGE;
        }
    };
    let composed = match with_config_provider(&app) {
        Ok(composed) => composed,
        Err(e) => {
            eprintln!("edge-secrets: {}: {e}", app_path.display());
            return exit::USAGE;
        }
    };
    if let Err(e) = std::fs::write(output, &composed) {
        eprintln!("edge-secrets: cannot write {}: {e}", output.display());
        return exit::code(edge_secrets_host::ErrorKind::Host);
    }
    eprintln!("edge-secrets: wrote {} ({} bytes): {} with the config provider plugged into its wasi:config/store import", output.display(), composed.len(), app_path.display());
    exit::OK
}

fn write_provider(path: &std::path::Path) -> u8 {
    if let Err(e) = std::fs::write(path, CONFIG_PROVIDER_WASM) {
        eprintln!("edge-secrets: cannot write {}: {e}", path.display());
        return exit::code(edge_secrets_host::ErrorKind::Host);
    }
    eprintln!("edge-secrets: wrote the config provider to {} ({} bytes)", path.display(), CONFIG_PROVIDER_WASM.len());
    exit::OK
}
