//! Builds the guest component so the host library can embed it (`include_bytes!`).
//!
//! `cargo build -p edge-secrets-host` must be enough to get a working harness, so this script runs
//! a nested `cargo build` of `edge-secrets-guest` for `wasm32-wasip2` with the `guest` profile and
//! exports the resulting `.wasm` path as `EDGE_SECRETS_GUEST_WASM`.
//!
//! The nested build uses its own target dir, `guest/` inside the outer one (`$CARGO_TARGET_DIR`
//! or `$CARGO_BUILD_TARGET_DIR` when set, else `<workspace>/target`): sharing the outer target
//! dir itself would deadlock on cargo's build-directory lock, which the outer build holds while
//! this runs. It runs with `--locked`, like CI: the guest is built from exactly `Cargo.lock`.
//!
//! Set `EDGE_SECRETS_GUEST_WASM_PATH` to embed a prebuilt component instead (for example one built
//! by CI in an earlier step); the nested build is then skipped.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const GUEST_PACKAGE: &str = "edge-secrets-guest";
const GUEST_TARGET: &str = "wasm32-wasip2";
const GUEST_PROFILE: &str = "guest";
const GUEST_ARTIFACT: &str = "edge_secrets_guest.wasm";
const OVERRIDE_VAR: &str = "EDGE_SECRETS_GUEST_WASM_PATH";

/// Variables the outer cargo sets for this build script (or a user sets for the host build) that
/// would change or break the nested wasm build. The rest of the environment (PATH, RUSTUP_*,
/// CARGO_HOME, proxies, CARGO_NET_OFFLINE...) is kept on purpose.
const LEAKY_VARS: &[&str] = &[
    // Flags meant for the host target (e.g. `-C target-cpu=native`, coverage instrumentation).
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "RUSTDOCFLAGS",
    "CARGO_ENCODED_RUSTDOCFLAGS",
    // Would redirect the nested build to the host target or the outer (locked) target dir.
    "CARGO_BUILD_TARGET",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_BUILD_BUILD_DIR",
    // The outer jobserver's file descriptors are not meant for a second cargo.
    "CARGO_MAKEFLAGS",
    "MAKEFLAGS",
    "MFLAGS",
    // `cargo clippy` / coverage wrappers would run over the guest too.
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_LLVM_COV",
    "CARGO_LLVM_COV_TARGET_DIR",
    // Build-script context that must not look like ours to the nested cargo.
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "OUT_DIR",
    "TARGET",
    "HOST",
    "PROFILE",
    "OPT_LEVEL",
    "DEBUG",
    "NUM_JOBS",
];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir.parent().expect("host/ lives inside the workspace").to_path_buf();

    println!("cargo:rerun-if-env-changed={OVERRIDE_VAR}");
    if let Some(path) = env::var_os(OVERRIDE_VAR) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            fail(&format!("{OVERRIDE_VAR}={} does not name a file", path.display()));
        }
        println!("cargo:rerun-if-changed={}", path.display());
        export(&path);
        return;
    }

    for input in ["guest/src", "guest/Cargo.toml", "wit", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", workspace.join(input).display());
    }

    check_wasm_target_installed();

    let target_dir = outer_target_dir(&workspace).join("guest");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&workspace)
        .args(["build", "--locked", "-p", GUEST_PACKAGE, "--target", GUEST_TARGET, "--profile", GUEST_PROFILE])
        .arg("--target-dir")
        .arg(&target_dir);
    for var in LEAKY_VARS {
        cmd.env_remove(var);
    }
    // Per-target flags and feature/cfg variables of *this* crate are also build-script context.
    for (key, _) in env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_FEATURE_") || key.starts_with("CARGO_CFG_") || key.starts_with("CARGO_PKG_") {
            cmd.env_remove(key.as_ref());
        }
    }
    // Keep this script's stdout clean: cargo parses it for `cargo:` directives.
    let output = cmd.output().unwrap_or_else(|e| fail(&format!("could not run cargo to build the guest: {e}")));
    if !output.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&output.stdout));
        eprintln!("{}", String::from_utf8_lossy(&output.stderr));
        let stderr = String::from_utf8_lossy(&output.stderr);
        let hint = if stderr.contains("may not be installed") || stderr.contains("can't find crate for `core`") {
            "\nhint: the wasm32-wasip2 target looks missing: run `rustup target add wasm32-wasip2`"
        } else {
            ""
        };
        fail(&format!("building the guest component ({GUEST_PACKAGE}, {GUEST_TARGET}) failed: see the cargo output above{hint}"));
    }

    let wasm = target_dir.join(GUEST_TARGET).join(GUEST_PROFILE).join(GUEST_ARTIFACT);
    if !wasm.is_file() {
        fail(&format!("the guest build succeeded but {} is missing", wasm.display()));
    }
    export(&wasm);
}

/// The outer build's target dir as the user chose it: `CARGO_TARGET_DIR`, else
/// `CARGO_BUILD_TARGET_DIR` (cargo's precedence), else `<workspace>/target`. (A `build.target-dir`
/// set only in `.cargo/config.toml` is not visible here; the default is used then.)
fn outer_target_dir(workspace: &Path) -> PathBuf {
    for var in ["CARGO_TARGET_DIR", "CARGO_BUILD_TARGET_DIR"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let chosen = ["CARGO_TARGET_DIR", "CARGO_BUILD_TARGET_DIR"].iter().find_map(|var| env::var_os(var).filter(|v| !v.is_empty()));
    let Some(dir) = chosen.map(PathBuf::from) else {
        return workspace.join("target");
    };
    if dir.is_absolute() {
        return dir;
    }
    // Relative to where cargo was started, which a build script does not know. OUT_DIR is
    // `<target>/[<triple>/]<profile>/build/<pkg>-<hash>/out`, so the target dir is the ancestor
    // above those four components that ends in `dir`. Failing that, assume the workspace root.
    let out_dir = env::var_os("OUT_DIR").map(PathBuf::from);
    out_dir
        .as_deref()
        .and_then(|out| out.ancestors().skip(4).find(|a| a.ends_with(&dir)).map(Path::to_path_buf))
        .unwrap_or_else(|| workspace.join(dir))
}

/// Fails early with an actionable message instead of a wall of "can't find crate" errors.
fn check_wasm_target_installed() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let Ok(out) = Command::new(&rustc).args(["--print", "sysroot"]).output() else {
        return; // let the nested build report whatever is wrong
    };
    if !out.status.success() {
        return;
    }
    let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let target_lib = sysroot.join("lib").join("rustlib").join(GUEST_TARGET);
    if !target_lib.is_dir() {
        fail(&format!(
            "the {GUEST_TARGET} Rust target is not installed (no {}).\n\
             The host embeds the guest component and builds it for {GUEST_TARGET}: run\n\n    \
             rustup target add {GUEST_TARGET}\n\n\
             or point {OVERRIDE_VAR} at a prebuilt edge_secrets_guest.wasm.",
            target_lib.display()
        ));
    }
}

fn export(wasm: &Path) {
    println!("cargo:rustc-env=EDGE_SECRETS_GUEST_WASM={}", wasm.display());
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    panic!("{message}");
}
