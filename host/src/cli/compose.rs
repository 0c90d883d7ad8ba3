//! `edge-secrets compose --config-provider APP.wasm -o OUT.wasm`.

use std::path::PathBuf;

use clap::Args;
use edge_secrets_host::compose::with_config_provider;

use super::exit;

#[derive(Args)]
pub struct ComposeArgs {
    /// The app: a component importing `wasi:config/store@0.2.0-draft-2024-09-27`. Its import
    /// is satisfied by the config provider; the result imports the provider's own
    /// `wasi:config` (its policy, credentials and the app's other settings), outbound
    /// `wasi:http`, `wasi:keyvalue`, clocks and random, plus whatever else the app imports.
    #[arg(long = "config-provider", value_name = "APP_WASM")]
    pub app: PathBuf,
    /// Where to write the composed component.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
}

pub fn run(args: ComposeArgs) -> u8 {
    let app = match std::fs::read(&args.app) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("edge-secrets: --config-provider {}: {e}", args.app.display());
            return exit::USAGE;
        }
    };
    let composed = match with_config_provider(&app) {
        Ok(composed) => composed,
        Err(e) => {
            eprintln!("edge-secrets: {}: {e}", args.app.display());
            return exit::USAGE;
        }
    };
    if let Err(e) = std::fs::write(&args.output, &composed) {
        eprintln!("edge-secrets: cannot write {}: {e}", args.output.display());
        return exit::code(edge_secrets_host::ErrorKind::Host);
    }
    eprintln!("edge-secrets: wrote {} ({} bytes): {} with the config provider plugged into its wasi:config/store import", args.output.display(), composed.len(), args.app.display());
    exit::OK
}
