//! `edge-secrets`: the command-line front end of the host harness (see `cli/`; `bench/` is
//! `edge-secrets bench`).

mod bench;
mod cli;

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(cli::main())
}
