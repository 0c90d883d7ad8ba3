//! Builds the guest component and the Spin app component, and composes them, so the host
//! library can embed all three (`include_bytes!`).
//!
//! `cargo build -p edge-secrets-host` must be enough to get a working harness, so this script runs
//! nested `cargo build`s for `wasm32-wasip2` with the `guest` profile:
//!
//! - `edge-secrets-guest` → `EDGE_SECRETS_GUEST_WASM` (the provider component);
//! - `edge-secrets-guest --features config-provider` → `EDGE_SECRETS_CONFIG_PROVIDER_WASM` (the
//!   same core exporting `wasi:config/store`), in a target dir of its own so the two builds do
//!   not overwrite each other's artifact;
//! - `edge-secrets-spin-app` → `EDGE_SECRETS_APP_WASM` (the Spin HTTP app, WASI P3);
//! - `examples/config-app` (its own workspace) → `EDGE_SECRETS_EXAMPLE_APP_WASM`: the example
//!   app that knows only `wasi:config`, which the tests compose with the config provider;
//! - the app with the guest plugged into its `edge:secrets/*` imports (what `wac plug` does,
//!   here with the `wac-graph` crate) → `EDGE_SECRETS_COMPOSED_WASM`, which imports only WASI.
//!
//! The two packages are built by separate cargo invocations on purpose: in one invocation
//! cargo unifies their dependencies' features, and the app's `std` serde would drag std (and
//! its `wasi:cli` imports) into the `no_std` guest.
//!
//! The nested builds use their own target dir, `guest/` inside the outer one (`$CARGO_TARGET_DIR`
//! or `$CARGO_BUILD_TARGET_DIR` when set, else `<workspace>/target`): sharing the outer target
//! dir itself would deadlock on cargo's build-directory lock, which the outer build holds while
//! this runs. They run with `--locked`, like CI: the components are built from exactly
//! `Cargo.lock`.
//!
//! Set `EDGE_SECRETS_GUEST_WASM_PATH` / `EDGE_SECRETS_APP_WASM_PATH` to embed prebuilt components
//! instead (for example ones built by CI in an earlier step); that nested build is then skipped.
//! The composition always runs (it takes milliseconds).

#[path = "build/compose.rs"]
mod compose;

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const GUEST_TARGET: &str = "wasm32-wasip2";
const GUEST_PROFILE: &str = "guest";

/// One nested wasm build: the package, its artifact, the variable that overrides it with a
/// prebuilt file, the variable the host crate reads, and the inputs that trigger a rebuild.
struct Wasm {
    package: &'static str,
    artifact: &'static str,
    override_var: &'static str,
    export_var: &'static str,
    inputs: &'static [&'static str],
    /// Cargo features of the package.
    features: &'static [&'static str],
    /// The nested target dir, under the outer one.
    target_subdir: &'static str,
    /// A manifest of its own (a package outside this workspace), relative to the workspace.
    manifest: Option<&'static str>,
}

const GUEST: Wasm = Wasm {
    package: "edge-secrets-guest",
    artifact: "edge_secrets_guest.wasm",
    override_var: "EDGE_SECRETS_GUEST_WASM_PATH",
    export_var: "EDGE_SECRETS_GUEST_WASM",
    inputs: &["guest/src", "guest/Cargo.toml", "guest/build.rs"],
    features: &[],
    target_subdir: "guest",
    manifest: None,
};

/// The same package with its other world: its own target dir, so the two builds do not take
/// turns overwriting (and rebuilding) one artifact.
const CONFIG_PROVIDER: Wasm = Wasm {
    override_var: "EDGE_SECRETS_CONFIG_PROVIDER_WASM_PATH",
    export_var: "EDGE_SECRETS_CONFIG_PROVIDER_WASM",
    features: &["config-provider"],
    target_subdir: "guest-config",
    ..GUEST
};

const EXAMPLE_APP: Wasm = Wasm {
    package: "config-app",
    artifact: "config_app.wasm",
    override_var: "EDGE_SECRETS_EXAMPLE_APP_WASM_PATH",
    export_var: "EDGE_SECRETS_EXAMPLE_APP_WASM",
    inputs: &["examples/config-app/src", "examples/config-app/wit", "examples/config-app/Cargo.toml", "examples/config-app/Cargo.lock"],
    features: &[],
    target_subdir: "guest",
    manifest: Some("examples/config-app/Cargo.toml"),
};

const APP: Wasm = Wasm {
    package: "edge-secrets-spin-app",
    artifact: "edge_secrets_spin_app.wasm",
    override_var: "EDGE_SECRETS_APP_WASM_PATH",
    export_var: "EDGE_SECRETS_APP_WASM",
    inputs: &["spin-app/src", "spin-app/Cargo.toml"],
    features: &[],
    target_subdir: "guest",
    manifest: None,
};

/// Inputs of both builds.
const SHARED_INPUTS: &[&str] = &["wit", "Cargo.toml", "Cargo.lock"];

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
    let target_dir = outer_target_dir(&workspace);
    for input in SHARED_INPUTS {
        println!("cargo:rerun-if-changed={}", workspace.join(input).display());
    }

    let guest = wasm(&GUEST, &workspace, &target_dir);
    wasm(&CONFIG_PROVIDER, &workspace, &target_dir);
    let app = wasm(&APP, &workspace, &target_dir);
    wasm(&EXAMPLE_APP, &workspace, &target_dir);

    println!("cargo:rerun-if-changed=build/compose.rs");
    let composed = compose::plug(&read(&guest), &read(&app)).unwrap_or_else(|e| fail(&format!("composing the app with the guest failed: {e:#}")));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let composed_path = out_dir.join("edge_secrets_app_composed.wasm");
    std::fs::write(&composed_path, composed).unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", composed_path.display())));
    println!("cargo:rustc-env=EDGE_SECRETS_COMPOSED_WASM={}", composed_path.display());
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", path.display())))
}

/// The prebuilt file named by `spec.override_var`, or a nested `cargo build` of `spec.package`.
fn wasm(spec: &Wasm, workspace: &Path, target_dir: &Path) -> PathBuf {
    println!("cargo:rerun-if-env-changed={}", spec.override_var);
    let path = match env::var_os(spec.override_var) {
        Some(path) => {
            let path = PathBuf::from(path);
            if !path.is_file() {
                fail(&format!("{}={} does not name a file", spec.override_var, path.display()));
            }
            println!("cargo:rerun-if-changed={}", path.display());
            path
        }
        None => {
            for input in spec.inputs {
                println!("cargo:rerun-if-changed={}", workspace.join(input).display());
            }
            nested_build(spec, workspace, target_dir)
        }
    };
    println!("cargo:rustc-env={}={}", spec.export_var, path.display());
    path
}

fn nested_build(spec: &Wasm, workspace: &Path, target_dir: &Path) -> PathBuf {
    check_wasm_target_installed(spec.override_var);
    let target_dir = target_dir.join(spec.target_subdir);
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    // A package with a manifest of its own is built as its users would: `--release`.
    let profile = if spec.manifest.is_some() { "release" } else { GUEST_PROFILE };
    cmd.current_dir(workspace)
        .args(["build", "--locked", "-p", spec.package, "--target", GUEST_TARGET, "--profile", profile])
        .arg("--target-dir")
        .arg(&target_dir);
    if let Some(manifest) = spec.manifest {
        cmd.arg("--manifest-path").arg(workspace.join(manifest));
    }
    if !spec.features.is_empty() {
        cmd.arg("--features").arg(spec.features.join(","));
    }
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
    let output = cmd.output().unwrap_or_else(|e| fail(&format!("could not run cargo to build {}: {e}", spec.package)));
    if !output.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&output.stdout));
        eprintln!("{}", String::from_utf8_lossy(&output.stderr));
        let stderr = String::from_utf8_lossy(&output.stderr);
        let hint = if stderr.contains("may not be installed") || stderr.contains("can't find crate for `core`") {
            "\nhint: the wasm32-wasip2 target looks missing: run `rustup target add wasm32-wasip2`"
        } else {
            ""
        };
        fail(&format!("building the {} component ({GUEST_TARGET}) failed: see the cargo output above{hint}", spec.package));
    }

    let wasm = target_dir.join(GUEST_TARGET).join(profile).join(spec.artifact);
    if !wasm.is_file() {
        fail(&format!("the {} build succeeded but {} is missing", spec.package, wasm.display()));
    }
    wasm
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
fn check_wasm_target_installed(override_var: &str) {
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
             or point {override_var} at a prebuilt component.",
            target_lib.display()
        ));
    }
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    panic!("{message}");
}
