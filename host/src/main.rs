//! `edge-secrets`: the command-line front end of the host harness (see `cli/`).

mod cli;

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(cli::main())
}
