//! Compiles the component once per (component, wasmtime version, engine configuration) and keeps
//! the native artifact on disk: loading it takes ~130 µs, compiling ~70 ms (release) to seconds
//! (debug builds), which matters for a CLI that starts a runtime per invocation.
//!
//! Files are named by a SHA-256 over the wasm bytes, the wasmtime version and the engine's
//! precompile-compatibility hash, so a stale or foreign artifact is never picked up by name;
//! wasmtime additionally checks the artifact's header when loading it. Any cache problem
//! (unwritable dir, corrupt file) falls back to compiling in memory.
//!
//! Trust: the artifact is native code that wasmtime loads as is, so the cache dir must be
//! writable only by the user running the host (it is created with mode 0700 on Unix).

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

/// The wasmtime version this crate pins (`=48.0.8` in the workspace manifest).
const WASMTIME_VERSION: &str = "48.0.8";
const KEY_DOMAIN: &[u8] = b"edge-secrets compile cache v1\0";

/// Where artifacts go when the caller does not say: `$XDG_CACHE_HOME/edge-secrets`, else
/// `$HOME/.cache/edge-secrets`; `None` when neither variable is set.
pub fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("edge-secrets"))
}

/// How the component was obtained (reported by [`crate::Runtime::compile_source`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompileSource {
    /// Loaded from an artifact in the cache dir.
    Cache,
    /// Compiled now, and the artifact written to the cache dir.
    CompiledAndCached,
    /// Compiled in memory (no cache dir, or the cache could not be used).
    Compiled,
}

pub(crate) fn load(engine: &Engine, wasm: &[u8], cache_dir: Option<&Path>) -> wasmtime::Result<(Component, CompileSource)> {
    let Some(dir) = cache_dir else {
        return Ok((Component::new(engine, wasm)?, CompileSource::Compiled));
    };
    let path = dir.join(format!("component-{}.cwasm", cache_key(engine, wasm)));
    // Read into memory rather than `Component::deserialize_file`: that maps the file, and if
    // anything truncates it in place while it is mapped the process dies with SIGBUS.
    if let Ok(bytes) = std::fs::read(&path) {
        // SAFETY: the file name is derived from a hash of the inputs and the file was written by
        // `store` below (atomically) in a directory only this user can write; wasmtime checks
        // the artifact's header and engine compatibility before using it.
        if let Ok(component) = unsafe { Component::deserialize(engine, &bytes) } {
            return Ok((component, CompileSource::Cache));
        }
        // Corrupt or incompatible: recompile and overwrite below.
    }
    let artifact = engine.precompile_component(wasm)?;
    let cached = store(dir, &path, &artifact).is_ok();
    if cached {
        prune(dir, &path);
    }
    // SAFETY: `artifact` was produced just now by this engine.
    let component = unsafe { Component::deserialize(engine, &artifact)? };
    Ok((component, if cached { CompileSource::CompiledAndCached } else { CompileSource::Compiled }))
}

fn cache_key(engine: &Engine, wasm: &[u8]) -> String {
    let mut hasher = ShaHasher(Sha256::new());
    hasher.0.update(KEY_DOMAIN);
    hasher.0.update(WASMTIME_VERSION.as_bytes());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.0.update(Sha256::digest(wasm));
    hasher.0.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// Writes to a temporary file and renames it into place, so concurrent hosts never load a
/// half-written artifact.
fn store(dir: &Path, path: &Path, artifact: &[u8]) -> std::io::Result<()> {
    create_private_dir(dir)?;
    let tmp = dir.join(format!(".tmp-{}-{:?}", std::process::id(), std::thread::current().id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(artifact)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Every guest rebuild or wasmtime upgrade adds an artifact: drop the ones nobody has written
/// for a week (another config may still use a recent one; a pruned one is just recompiled).
fn prune(dir: &Path, keep: &Path) {
    const MAX_AGE: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let ours = name.starts_with("component-") && name.ends_with(".cwasm");
        let old = entry.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok()).is_some_and(|age| age > MAX_AGE);
        if ours && old && path != keep {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Feeds `Hash` impls (the engine's compatibility hash) into SHA-256, so the key is stable
/// across processes (std's `DefaultHasher` makes no such promise).
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        // Only `write` is used; the digest is read from the inner hasher.
        0
    }
}
