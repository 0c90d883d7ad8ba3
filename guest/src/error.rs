//! The core's one error type. It mirrors the WIT `error` variant and is
//! converted to it in exactly one place (`wasi::exports`).
//!
//! No variant ever carries secret bytes or credentials: messages are built
//! from names, statuses and fixed reasons only.

use crate::prelude::*;

/// Why a secret read failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The request is malformed; nothing was sent.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The environment is not configured; nothing was sent.
    #[error("unknown environment `{0}`")]
    UnknownEnvironment(String),
    /// The backend says the secret, version or field does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The backend rejected the credentials.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// The breaker is open; nothing was sent.
    #[error("backend unavailable (circuit open), retry in {retry_after_ms} ms")]
    Unavailable { retry_after_ms: u64 },
    /// The call did not finish within its deadline.
    #[error("timed out (deadline {deadline_ms} ms)")]
    Timeout { deadline_ms: u64 },
    /// The backend throttled the call.
    #[error("rate limited by the backend")]
    RateLimited { retry_after_ms: Option<u64> },
    /// The backend failed after retries or sent an unacceptable answer.
    #[error("backend failure (status {}): {reason}", status.map_or("none".to_string(), |s| s.to_string()))]
    Backend { status: Option<u16>, reason: String },
    /// The configuration is missing or invalid.
    #[error("config: {0}")]
    Config(String),
}

/// The kind of an [`Error`], for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
}

impl ErrorKind {
    /// The WIT case name (`not-found`, ...): what logs call it.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest => "invalid-request",
            ErrorKind::UnknownEnvironment => "unknown-environment",
            ErrorKind::NotFound => "not-found",
            ErrorKind::PermissionDenied => "permission-denied",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Timeout => "timeout",
            ErrorKind::RateLimited => "rate-limited",
            ErrorKind::Backend => "backend",
            ErrorKind::Config => "config",
        }
    }
}

impl Error {
    /// The error's kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidRequest(_) => ErrorKind::InvalidRequest,
            Error::UnknownEnvironment(_) => ErrorKind::UnknownEnvironment,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::PermissionDenied(_) => ErrorKind::PermissionDenied,
            Error::Unavailable { .. } => ErrorKind::Unavailable,
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::RateLimited { .. } => ErrorKind::RateLimited,
            Error::Backend { .. } => ErrorKind::Backend,
            Error::Config(_) => ErrorKind::Config,
        }
    }

    /// The same error with every occurrence of `secret` in its text replaced:
    /// messages partly come from upstream bodies, which a misbehaving proxy
    /// could fill with what it was sent.
    pub fn redact(self, secret: &[u8]) -> Error {
        let Ok(secret) = core::str::from_utf8(secret) else {
            return self;
        };
        if secret.is_empty() {
            return self;
        }
        let clean = |text: String| {
            let text = if text.contains(secret) { text.replace(secret, "<redacted>") } else { text };
            cut_partial(text, secret)
        };
        match self {
            Error::InvalidRequest(m) => Error::InvalidRequest(clean(m)),
            Error::UnknownEnvironment(m) => Error::UnknownEnvironment(clean(m)),
            Error::NotFound(m) => Error::NotFound(clean(m)),
            Error::PermissionDenied(m) => Error::PermissionDenied(clean(m)),
            Error::Backend { status, reason } => Error::Backend { status, reason: clean(reason) },
            Error::Config(m) => Error::Config(clean(m)),
            other @ (Error::Unavailable { .. } | Error::Timeout { .. } | Error::RateLimited { .. }) => other,
        }
    }

    /// A backend failure with a reason.
    /// Whether a cached value past its TTL may answer instead: only when the
    /// backend failed (transiently, or with an answer that could not be used),
    /// never when it said the secret is gone or the caller may not read it.
    pub fn allows_stale(&self) -> bool {
        matches!(self, Error::Unavailable { .. } | Error::Timeout { .. } | Error::RateLimited { .. } | Error::Backend { .. })
    }

    pub fn backend(status: Option<u16>, reason: impl Into<String>) -> Error {
        Error::Backend {
            status,
            reason: reason.into(),
        }
    }
}

/// A reason cut short by [`sanitize_reason`] (ending in `…`) may end inside
/// the secret, where no whole copy of it can be found: that start of it goes too.
fn cut_partial(text: String, secret: &str) -> String {
    let Some(kept) = text.strip_suffix('…') else { return text };
    let partial = secret.char_indices().skip(1).map(|(i, _)| &secret[..i]).filter(|start| kept.ends_with(start)).last();
    match partial {
        Some(start) => format!("{}<redacted>…", &kept[..kept.len() - start.len()]),
        None => text,
    }
}

/// Keeps text that came from a backend short and printable, so an upstream
/// message cannot flood logs or smuggle control characters into them.
pub fn sanitize_reason(text: &str) -> String {
    const MAX: usize = 160;
    let mut out = String::new();
    for c in text.chars() {
        if out.len() >= MAX {
            out.push('…');
            break;
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_strips_control_characters_and_bounds_length() {
        assert_eq!(sanitize_reason("a\r\nb"), "a  b");
        let long = "x".repeat(1000);
        assert!(sanitize_reason(&long).chars().count() <= 161);
    }

    #[test]
    fn redact_removes_the_secret_from_every_message() {
        let e = Error::PermissionDenied("proxy says: bad token s.TOKEN123 (s.TOKEN123)".into());
        assert_eq!(e.redact(b"s.TOKEN123"), Error::PermissionDenied("proxy says: bad token <redacted> (<redacted>)".into()));
        let e = Error::backend(Some(502), "echo: s.TOKEN123");
        assert_eq!(e.redact(b"s.TOKEN123"), Error::backend(Some(502), "echo: <redacted>"));
        assert_eq!(Error::NotFound("x".into()).redact(b""), Error::NotFound("x".into()));
    }

    #[test]
    fn redact_removes_a_secret_cut_short_by_the_reason_cap() {
        let reason = sanitize_reason(&format!("{}s.TOKEN123", "x".repeat(155)));
        assert!(reason.ends_with("s.TOK…"), "{reason}");
        let e = Error::backend(Some(502), reason).redact(b"s.TOKEN123");
        assert_eq!(e, Error::backend(Some(502), format!("{}<redacted>…", "x".repeat(155))));
        // Untruncated text keeps an ending that only looks like the secret's start.
        assert_eq!(Error::NotFound("ends in s.".into()).redact(b"s.TOKEN123"), Error::NotFound("ends in s.".into()));
    }

    #[test]
    fn backend_display_names_status_and_reason() {
        let e = Error::backend(Some(503), "vault is sealed");
        assert_eq!(e.to_string(), "backend failure (status 503): vault is sealed");
        let e = Error::backend(None, "connection refused");
        assert_eq!(e.to_string(), "backend failure (status none): connection refused");
    }
}
