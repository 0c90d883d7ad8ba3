//! The host-side API types, and the one place where the generated WIT types are converted.
//!
//! Secret bytes live only in [`SecretValue`], whose `Debug` is redacted; every error type here
//! is built from names, statuses and fixed reasons, never from values or credentials.

use std::fmt;
use std::time::Duration;

use crate::bindings::wit_secrets as wit;

/// One secret read: the WIT `request` record itself (re-exported, so a call passes it to the
/// component without copying).
///
/// ```
/// use edge_secrets_host::Request;
/// let req = Request::new("prod", "app/db").version("3").field("password");
/// assert_eq!(req.version.as_deref(), Some("3"));
/// ```
pub use crate::bindings::wit_secrets::Request;

impl Request {
    /// Reads the `latest` version of the default field (`value`).
    pub fn new(environment: impl Into<String>, name: impl Into<String>) -> Request {
        Request { environment: environment.into(), name: name.into(), version: None, field: None, refresh: false, traceparent: None }
    }

    /// Bypasses the cache (rate-limited per secret by the component: see the WIT).
    pub fn refresh(mut self, refresh: bool) -> Request {
        self.refresh = refresh;
        self
    }

    /// Joins the caller's W3C trace: backend requests carry this trace id.
    pub fn traceparent(mut self, traceparent: impl Into<String>) -> Request {
        self.traceparent = Some(traceparent.into());
        self
    }

    /// Reads version `version` (a positive integer, or `latest`).
    pub fn version(mut self, version: impl Into<String>) -> Request {
        self.version = Some(version.into());
        self
    }

    /// Reads field `field` (Vault KV); GCP accepts only `value`.
    pub fn field(mut self, field: impl Into<String>) -> Request {
        self.field = Some(field.into());
        self
    }
}

/// Secret bytes. `Debug` never prints them; read them with [`expose`](SecretValue::expose).
/// The buffer is zeroed when dropped (copies made by the caller are the caller's concern).
#[derive(Clone, Default)]
pub struct SecretValue(Vec<u8>);

impl SecretValue {
    pub fn new(bytes: Vec<u8>) -> SecretValue {
        SecretValue(bytes)
    }

    /// The secret's bytes. Named so that every use is easy to find in review.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Same as [`expose`](SecretValue::expose).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The bytes as UTF-8 text, if they are.
    pub fn expose_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// Takes the bytes out (the caller now owns the only copy).
    pub fn into_bytes(mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

impl Drop for SecretValue {
    fn drop(&mut self) {
        for byte in self.0.iter_mut() {
            // SAFETY: `byte` is a valid, exclusive reference; volatile keeps the store from being
            // optimised away as a dead write.
            unsafe { std::ptr::write_volatile(byte, 0) };
        }
        std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
    }
}

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// Fetched from the backend during this call.
    Backend,
    /// Served from the component's cache; nothing was sent.
    Cache,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Backend => "backend",
            Source::Cache => "cache",
        })
    }
}

/// A secret and what it resolved to.
#[derive(Clone)]
pub struct Secret {
    pub value: SecretValue,
    /// The concrete version read (never `latest`).
    pub version: String,
    pub source: Source,
    /// Past its TTL, served because the backends failed transiently.
    pub stale: bool,
    /// The backend tier that served it (0: the primary).
    pub tier: u32,
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secret")
            .field("value", &self.value)
            .field("version", &self.version)
            .field("source", &self.source)
            .field("stale", &self.stale)
            .field("tier", &self.tier)
            .finish()
    }
}

/// Why the component refused or failed a read: the WIT `error` variant. Safe to log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The request is malformed (bad name, version or field); nothing was sent.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// No such environment is configured; nothing was sent.
    #[error("unknown environment `{0}`")]
    UnknownEnvironment(String),
    /// The backend says the secret, version or field does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The backend rejected the credentials (401/403).
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// The environment's breaker is open; nothing was sent.
    #[error("backend unavailable (circuit open), retry in {retry_after_ms} ms")]
    Unavailable { retry_after_ms: u64 },
    /// The call did not finish within the environment's deadline.
    #[error("timed out (deadline {deadline_ms} ms)")]
    Timeout { deadline_ms: u64 },
    /// The backend throttled the call (HTTP 429).
    #[error("rate limited by the backend{}", retry_after_ms.map(|ms| format!(", retry in {ms} ms")).unwrap_or_default())]
    RateLimited { retry_after_ms: Option<u64> },
    /// The backend failed after all retries, or sent something unacceptable.
    #[error("backend failure (status {}): {reason}", status.map_or("none".to_string(), |s| s.to_string()))]
    Backend { status: Option<u16>, reason: String },
    /// The component's configuration is missing or invalid; the message names the key.
    #[error("config: {0}")]
    Config(String),
}

/// Every way a host call can fail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The component answered with an error.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The call ran past the host's per-call deadline; the instance was discarded (its cache
    /// and breaker state are lost) and the next call gets a fresh one.
    #[error("the component exceeded the host's call deadline ({} ms) and was discarded", .0.as_millis())]
    Deadline(Duration),
    /// The component trapped; the instance was discarded and the next call gets a fresh one.
    #[error("the component trapped and was discarded: {0}")]
    Trap(String),
    /// The host could not set up or run the component (compile, link, instantiate, options).
    #[error("host runtime error: {0}")]
    Runtime(String),
}

/// The kind of an [`Error`]: one per WIT error case, plus the host's own failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    InvalidRequest,
    UnknownEnvironment,
    NotFound,
    PermissionDenied,
    Unavailable,
    Timeout,
    RateLimited,
    Backend,
    Config,
    /// A trap, the host deadline, or a runtime setup failure.
    Host,
}

impl SecretError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            SecretError::InvalidRequest(_) => ErrorKind::InvalidRequest,
            SecretError::UnknownEnvironment(_) => ErrorKind::UnknownEnvironment,
            SecretError::NotFound(_) => ErrorKind::NotFound,
            SecretError::PermissionDenied(_) => ErrorKind::PermissionDenied,
            SecretError::Unavailable { .. } => ErrorKind::Unavailable,
            SecretError::Timeout { .. } => ErrorKind::Timeout,
            SecretError::RateLimited { .. } => ErrorKind::RateLimited,
            SecretError::Backend { .. } => ErrorKind::Backend,
            SecretError::Config(_) => ErrorKind::Config,
        }
    }
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Secret(e) => e.kind(),
            Error::Deadline(_) | Error::Trap(_) | Error::Runtime(_) => ErrorKind::Host,
        }
    }

    /// The component's error, if that is what this is.
    pub fn as_secret_error(&self) -> Option<&SecretError> {
        match self {
            Error::Secret(e) => Some(e),
            _ => None,
        }
    }

    pub(crate) fn runtime(err: impl fmt::Display) -> Error {
        Error::Runtime(format!("{err:#}"))
    }
}

// ---- conversions from the generated types: the only place they are taken apart ----

impl From<wit::Error> for SecretError {
    fn from(e: wit::Error) -> SecretError {
        match e {
            wit::Error::InvalidRequest(m) => SecretError::InvalidRequest(m),
            wit::Error::UnknownEnvironment(m) => SecretError::UnknownEnvironment(m),
            wit::Error::NotFound(m) => SecretError::NotFound(m),
            wit::Error::PermissionDenied(m) => SecretError::PermissionDenied(m),
            wit::Error::Unavailable(ms) => SecretError::Unavailable { retry_after_ms: ms },
            wit::Error::Timeout(ms) => SecretError::Timeout { deadline_ms: ms },
            wit::Error::RateLimited(ms) => SecretError::RateLimited { retry_after_ms: ms },
            wit::Error::Backend(f) => SecretError::Backend { status: f.status, reason: f.reason },
            wit::Error::Config(m) => SecretError::Config(m),
        }
    }
}

impl From<wit::Secret> for Secret {
    fn from(s: wit::Secret) -> Secret {
        let source = match s.source {
            wit::Source::Backend => Source::Backend,
            wit::Source::Cache => Source::Cache,
        };
        Secret { value: SecretValue::new(s.value), version: s.version, source, stale: s.stale, tier: s.tier }
    }
}

pub(crate) fn convert_result(r: Result<wit::Secret, wit::Error>) -> Result<Secret, SecretError> {
    r.map(Secret::from).map_err(SecretError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_debug_is_redacted() {
        let secret = Secret { value: SecretValue::new(b"hunter2-topsecret".to_vec()), version: "3".into(), source: Source::Cache, stale: false, tier: 0 };
        let text = format!("{secret:?} {:?} {:#?}", secret.value, secret);
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains("104"), "bytes printed as numbers: {text}"); // b'h' == 104
        assert!(text.contains("<redacted>") && text.contains("\"3\"") && text.contains("Cache"), "{text}");
        assert_eq!(secret.value.expose(), b"hunter2-topsecret");
        assert_eq!(secret.value.expose_str(), Some("hunter2-topsecret"));
        assert_eq!(secret.value.clone().into_bytes(), b"hunter2-topsecret".to_vec());
    }

    #[test]
    fn wit_errors_convert_case_by_case() {
        let cases = [
            (wit::Error::InvalidRequest("bad name".into()), SecretError::InvalidRequest("bad name".into()), ErrorKind::InvalidRequest),
            (wit::Error::UnknownEnvironment("qa".into()), SecretError::UnknownEnvironment("qa".into()), ErrorKind::UnknownEnvironment),
            (wit::Error::NotFound("app/db".into()), SecretError::NotFound("app/db".into()), ErrorKind::NotFound),
            (wit::Error::PermissionDenied("403".into()), SecretError::PermissionDenied("403".into()), ErrorKind::PermissionDenied),
            (wit::Error::Unavailable(1500), SecretError::Unavailable { retry_after_ms: 1500 }, ErrorKind::Unavailable),
            (wit::Error::Timeout(5000), SecretError::Timeout { deadline_ms: 5000 }, ErrorKind::Timeout),
            (wit::Error::RateLimited(Some(7)), SecretError::RateLimited { retry_after_ms: Some(7) }, ErrorKind::RateLimited),
            (
                wit::Error::Backend(wit::BackendFailure { status: Some(503), reason: "sealed".into() }),
                SecretError::Backend { status: Some(503), reason: "sealed".into() },
                ErrorKind::Backend,
            ),
            (wit::Error::Config("secrets_policy: is not set".into()), SecretError::Config("secrets_policy: is not set".into()), ErrorKind::Config),
        ];
        for (from, want, kind) in cases {
            let got = SecretError::from(from);
            assert_eq!(got, want);
            assert_eq!(got.kind(), kind);
            assert_eq!(Error::from(got).kind(), kind);
        }
        assert_eq!(Error::Trap("x".into()).kind(), ErrorKind::Host);
    }

    #[test]
    fn error_display_names_things_not_values() {
        assert_eq!(SecretError::UnknownEnvironment("qa".into()).to_string(), "unknown environment `qa`");
        assert_eq!(SecretError::RateLimited { retry_after_ms: None }.to_string(), "rate limited by the backend");
        assert_eq!(SecretError::RateLimited { retry_after_ms: Some(20) }.to_string(), "rate limited by the backend, retry in 20 ms");
        assert_eq!(SecretError::Backend { status: None, reason: "bad CRC32C".into() }.to_string(), "backend failure (status none): bad CRC32C");
        assert_eq!(Error::Deadline(Duration::from_millis(250)).to_string(), "the component exceeded the host's call deadline (250 ms) and was discarded");
    }

    #[test]
    fn request_builder_sets_fields() {
        let r = Request::new("prod", "app/db");
        assert_eq!((r.version.as_deref(), r.field.as_deref()), (None, None));
        let r = r.version("latest").field("user");
        assert_eq!((r.environment.as_str(), r.name.as_str()), ("prod", "app/db"));
        assert_eq!((r.version.as_deref(), r.field.as_deref()), (Some("latest"), Some("user")));
    }
}
