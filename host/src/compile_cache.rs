//! Compiles the component once per (component, wasmtime version, engine configuration) and keeps
//! the native artifact on disk: loading it takes ~130 µs, compiling ~70 ms (release) to seconds
//! (debug builds), which matters for a CLI that starts a runtime per invocation.
//!
//! Files are named by a SHA-256 over the wasm bytes, the wasmtime version and the engine's
//! precompile-compatibility hash, so a stale or foreign artifact is never picked up by name;
//! wasmtime additionally checks the artifact's header when loading it. Any cache problem
//! (unwritable dir, corrupt file) falls back to compiling in memory.
//!
//! Trust: an artifact is native code that wasmtime loads as is (`Component::deserialize` is
//! `unsafe` for that reason), so on Unix the cache is only used when nobody else can write to it:
//!
//! - the cache dir's last component is created on its own (not recursively) with mode 0700; its
//!   parents are created as usual;
//! - before anything is read, the dir must be a real directory (not a symlink), owned by the
//!   effective uid and not writable by group or others. Otherwise the cache is not used at all:
//!   the component is compiled in memory and the reason is returned as a note (see
//!   [`Runtime::compile_cache_note`](crate::Runtime::compile_cache_note));
//! - an artifact is only loaded if the opened file is a regular file with the same owner and no
//!   group/world write bit (anything else is recompiled and replaced);
//! - artifacts are written to a fresh temporary file (`create_new`, mode 0600) and renamed into
//!   place, so no reader ever sees a partial artifact.
//!
//! The directories above the cache dir are trusted as they are (as for `~/.ssh` and the like).

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

/// A compiled component and where it came from.
pub(crate) struct Loaded {
    pub(crate) component: Component,
    pub(crate) source: CompileSource,
    /// Why the cache dir was not used (it is not private to this user), when that happened.
    pub(crate) note: Option<String>,
}

pub(crate) fn load(engine: &Engine, wasm: &[u8], cache_dir: Option<&Path>) -> wasmtime::Result<Loaded> {
    let compiled = |note| -> wasmtime::Result<Loaded> { Ok(Loaded { component: Component::new(engine, wasm)?, source: CompileSource::Compiled, note }) };
    let Some(dir) = cache_dir else {
        return compiled(None);
    };
    if let Err(why) = prepare_dir(dir) {
        return compiled(Some(format!("compile cache {} not used: {why}; compiling in memory", dir.display())));
    }
    let path = dir.join(format!("component-{}.cwasm", cache_key(engine, wasm)));
    if let Some(bytes) = read_trusted(&path) {
        // SAFETY: the file name is derived from a hash of the inputs; the directory was checked
        // above to be a real directory owned by this user and writable by nobody else, and the
        // file to be a regular file with the same owner and no group/world write bit, so only
        // this user (`store` below, atomically) can have written it. wasmtime also checks the
        // artifact's header and engine compatibility before using it.
        if let Ok(component) = unsafe { Component::deserialize(engine, &bytes) } {
            return Ok(Loaded { component, source: CompileSource::Cache, note: None });
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
    Ok(Loaded { component, source: if cached { CompileSource::CompiledAndCached } else { CompileSource::Compiled }, note: None })
}

fn cache_key(engine: &Engine, wasm: &[u8]) -> String {
    let mut hasher = ShaHasher(Sha256::new());
    hasher.0.update(KEY_DOMAIN);
    hasher.0.update(WASMTIME_VERSION.as_bytes());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.0.update(Sha256::digest(wasm));
    hasher.0.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// Writes to a fresh temporary file (owner-only) and renames it into place, so concurrent hosts
/// never load a half-written artifact.
fn store(dir: &Path, path: &Path, artifact: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(".tmp-{}-{:?}", std::process::id(), std::thread::current().id()));
    // Left over by a crashed process that had the same pid: never write through it.
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp)?;
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

/// Creates the cache dir if needed (its last component alone, mode 0700) and checks that it is
/// private to this user. `Err` says why it must not be used.
fn prepare_dir(dir: &Path) -> Result<(), String> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    match builder.create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create it: {e}")),
    }
    // Not `metadata`: a symlink could be pointed elsewhere between this check and the reads.
    let meta = std::fs::symlink_metadata(dir).map_err(|e| format!("cannot inspect it: {e}"))?;
    if meta.file_type().is_symlink() {
        return Err("it is a symbolic link (point the cache at the real directory)".into());
    }
    if !meta.is_dir() {
        return Err("it is not a directory".into());
    }
    check_private(&meta, "the directory")
}

/// The artifact at `path`, if it exists and passes the ownership checks. The checks are made on
/// the opened file, so what is checked is what is read.
fn read_trusted(path: &Path) -> Option<Vec<u8>> {
    let mut file = std::fs::File::open(path).ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || check_private(&meta, "the artifact").is_err() {
        return None;
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    std::io::Read::read_to_end(&mut file, &mut bytes).ok()?;
    Some(bytes)
}

/// Owned by the effective uid and not writable by group or others.
#[cfg(unix)]
fn check_private(meta: &std::fs::Metadata, what: &str) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: `geteuid` has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(format!("{what} is owned by uid {}, not by this user (uid {me})", meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!("{what} is writable by group or others (mode {:o})", meta.mode() & 0o7777));
    }
    Ok(())
}

/// No ownership model to check against off Unix.
#[cfg(not(unix))]
fn check_private(_meta: &std::fs::Metadata, _what: &str) -> Result<(), String> {
    Ok(())
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

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use super::*;

    /// The smallest valid component (preamble only): compiles in microseconds.
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\x00\x01\x00";

    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let path = std::env::temp_dir().join(format!("edge-secrets-compile-cache-unit-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            Scratch(path)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn load_empty(engine: &Engine, dir: &Path) -> (CompileSource, Option<String>) {
        let loaded = load(engine, EMPTY_COMPONENT, Some(dir)).unwrap();
        (loaded.source, loaded.note)
    }

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
    }

    fn artifacts(dir: &Path) -> Vec<PathBuf> {
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect()
    }

    #[test]
    fn creates_an_owner_only_dir_and_owner_only_artifacts() {
        let scratch = Scratch::new("fresh");
        let engine = Engine::default();
        let dir = scratch.0.join("a").join("cache");
        assert_eq!(load_empty(&engine, &dir), (CompileSource::CompiledAndCached, None));
        assert_eq!(mode(&dir), 0o700);
        let files = artifacts(&dir);
        assert_eq!(files.len(), 1, "{files:?}");
        assert_eq!(mode(&files[0]), 0o600);
        assert_eq!(load_empty(&engine, &dir), (CompileSource::Cache, None));
    }

    #[test]
    fn a_dir_others_can_write_is_not_used() {
        let scratch = Scratch::new("shared");
        let engine = Engine::default();
        let dir = scratch.0.join("cache");
        assert_eq!(load_empty(&engine, &dir).0, CompileSource::CompiledAndCached);
        // A valid artifact is there, but anyone could have replaced it.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let (source, note) = load_empty(&engine, &dir);
        assert_eq!(source, CompileSource::Compiled);
        let note = note.expect("a note says why");
        assert!(note.contains(&dir.display().to_string()) && note.contains("writable by group or others (mode 777)"), "{note}");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o720)).unwrap();
        assert_eq!(load_empty(&engine, &dir).0, CompileSource::Compiled);
        // Back to private: the artifact is trusted again.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(load_empty(&engine, &dir), (CompileSource::Cache, None));
    }

    #[test]
    fn a_dir_owned_by_someone_else_is_not_used() {
        // SAFETY: no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return; // only root can hand a directory to another user
        }
        let scratch = Scratch::new("foreign");
        let engine = Engine::default();
        let dir = scratch.0.join("cache");
        assert_eq!(load_empty(&engine, &dir).0, CompileSource::CompiledAndCached);
        std::os::unix::fs::chown(&dir, Some(4242), None).unwrap();
        let (source, note) = load_empty(&engine, &dir);
        assert_eq!(source, CompileSource::Compiled);
        assert!(note.as_deref().is_some_and(|n| n.contains("owned by uid 4242")), "{note:?}");
    }

    #[test]
    fn a_symlinked_dir_is_not_used() {
        let scratch = Scratch::new("symlink");
        let engine = Engine::default();
        let real = scratch.0.join("real");
        assert_eq!(load_empty(&engine, &real).0, CompileSource::CompiledAndCached);
        let link = scratch.0.join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let (source, note) = load_empty(&engine, &link);
        assert_eq!(source, CompileSource::Compiled);
        assert!(note.as_deref().is_some_and(|n| n.contains("symbolic link")), "{note:?}");
    }

    #[test]
    fn an_artifact_others_can_write_is_replaced_not_loaded() {
        let scratch = Scratch::new("artifact");
        let engine = Engine::default();
        let dir = scratch.0.join("cache");
        assert_eq!(load_empty(&engine, &dir).0, CompileSource::CompiledAndCached);
        let file = artifacts(&dir).remove(0);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert_eq!(load_empty(&engine, &dir), (CompileSource::CompiledAndCached, None));
        assert_eq!(mode(&file), 0o600, "replaced by a fresh owner-only file");
        assert_eq!(load_empty(&engine, &dir), (CompileSource::Cache, None));
    }

    #[test]
    fn a_stale_temporary_file_is_not_written_through() {
        let scratch = Scratch::new("tmpfile");
        let dir = scratch.0.join("cache");
        prepare_dir(&dir).unwrap();
        // Something already sits at this thread's temporary name (e.g. a symlink elsewhere).
        let victim = scratch.0.join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        let tmp = dir.join(format!(".tmp-{}-{:?}", std::process::id(), std::thread::current().id()));
        std::os::unix::fs::symlink(&victim, &tmp).unwrap();
        store(&dir, &dir.join("component-x.cwasm"), b"artifact").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert_eq!(std::fs::read(dir.join("component-x.cwasm")).unwrap(), b"artifact");
        assert_eq!(mode(&dir.join("component-x.cwasm")), 0o600);
    }
}
