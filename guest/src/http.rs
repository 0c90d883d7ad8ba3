//! Plain HTTP request/response values exchanged between the pure core and
//! the transport. Their `Debug` impls redact credentials and bodies.

use crate::prelude::*;
use core::fmt;

use crate::error::Error;

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

/// A backend's base URL, split the way `wasi:http` wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    pub scheme: Scheme,
    /// `host[:port]`.
    pub authority: String,
    /// A path prefix without trailing slash (often empty).
    pub prefix: String,
}

impl BaseUrl {
    /// Parses `http(s)://host[:port][/prefix]`. No user info, query or fragment.
    pub fn parse(url: &str) -> Result<BaseUrl, String> {
        let (scheme, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (Scheme::Https, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (Scheme::Http, rest)
        } else {
            return Err("must start with http:// or https://".into());
        };
        if rest.contains(['?', '#', '@', ' ', '\\']) || rest.chars().any(char::is_control) {
            return Err("must not contain user info, a query, a fragment, spaces or control characters".into());
        }
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err("has no host".into());
        }
        if let Some((_, port)) = authority.rsplit_once(':') {
            if !authority.ends_with(']') && port.parse::<u16>().is_err() {
                return Err(format!("has an invalid port {port:?}"));
            }
        }
        Ok(BaseUrl {
            scheme,
            authority: authority.to_string(),
            prefix: prefix.to_string(),
        })
    }
}

/// A GET request for the transport.
#[derive(Clone)]
pub struct HttpRequest {
    pub scheme: Scheme,
    pub authority: String,
    pub path_and_query: String,
    /// Header names are lowercase. Values may hold credentials.
    pub headers: Vec<(String, Vec<u8>)>,
}

/// Headers whose values are credentials and must never be printed.
const SENSITIVE: &[&str] = &["authorization", "x-vault-token"];

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|(name, value)| {
                if SENSITIVE.contains(&name.as_str()) {
                    format!("{name}: <redacted>")
                } else {
                    format!("{name}: {}", String::from_utf8_lossy(value))
                }
            })
            .collect();
        f.debug_struct("HttpRequest")
            .field("scheme", &self.scheme)
            .field("authority", &self.authority)
            .field("path_and_query", &self.path_and_query)
            .field("headers", &headers)
            .finish()
    }
}

/// A complete response (body read in full, within the size cap).
pub struct HttpResponse {
    pub status: u16,
    /// Header names are lowercase.
    pub headers: Vec<(String, Vec<u8>)>,
    /// May hold secret bytes.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first value of a header, as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| core::str::from_utf8(v).ok())
    }

    /// `Retry-After` in milliseconds, when it is given in seconds (the
    /// HTTP-date form is ignored: the component has no wall clock to compare).
    pub fn retry_after_ms(&self) -> Option<u64> {
        let secs: u64 = self.header("retry-after")?.trim().parse().ok()?;
        Some(secs.saturating_mul(1000))
    }
}

impl fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpResponse")
            .field("status", &self.status)
            .field("body", &format_args!("<{} bytes redacted>", self.body.len()))
            .finish()
    }
}

/// Why an HTTP exchange produced no complete response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    /// The attempt's timeout passed (connect, first byte, or body).
    Timeout,
    /// The connection could not be made or broke.
    Connect(String),
    /// Anything else the transport reported.
    Protocol(String),
    /// The body exceeded the size cap; reading stopped there.
    BodyTooLarge { limit: usize },
    /// The host refused the request itself (not allowed, invalid URI, untrusted
    /// certificate): the same request will be refused again.
    Rejected(String),
    /// The body did not fit in the component's memory.
    OutOfMemory { bytes: usize },
}

impl TransportError {
    /// Whether another attempt may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, TransportError::Timeout | TransportError::Connect(_) | TransportError::Protocol(_))
    }

    /// The caller-facing error once retries are spent.
    pub fn into_error(self, deadline_ms: u64) -> Error {
        match self {
            TransportError::Timeout => Error::Timeout { deadline_ms },
            TransportError::Connect(why) => Error::backend(None, format!("connection failed: {why}")),
            TransportError::Protocol(why) => Error::backend(None, format!("transport error: {why}")),
            TransportError::BodyTooLarge { limit } => {
                Error::backend(None, format!("response body exceeds {limit} bytes"))
            }
            TransportError::Rejected(why) => Error::backend(None, format!("the host refused the request: {why}")),
            TransportError::OutOfMemory { bytes } => {
                Error::backend(None, format!("response body of {bytes}+ bytes does not fit in memory"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_parse_and_reject_bad_forms() {
        let u = BaseUrl::parse("http://127.0.0.1:8200").unwrap();
        assert_eq!((u.scheme, u.authority.as_str(), u.prefix.as_str()), (Scheme::Http, "127.0.0.1:8200", ""));
        let u = BaseUrl::parse("https://vault.example.com/proxy/").unwrap();
        assert_eq!((u.scheme, u.prefix.as_str()), (Scheme::Https, "/proxy"));
        for bad in ["ftp://x", "http://", "http://u:p@host", "http://h?x=1", "http://h:99999", "vault:8200"] {
            assert!(BaseUrl::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn request_debug_redacts_credentials() {
        let r = HttpRequest {
            scheme: Scheme::Http,
            authority: "h".into(),
            path_and_query: "/".into(),
            headers: vec![("x-vault-token".into(), b"s.TOPSECRET".to_vec()), ("authorization".into(), b"Bearer ya29".to_vec())],
        };
        let shown = format!("{r:?}");
        assert!(!shown.contains("TOPSECRET") && !shown.contains("ya29"), "{shown}");
    }

    #[test]
    fn retry_after_reads_seconds_only() {
        let mut r = HttpResponse { status: 429, headers: vec![("retry-after".into(), b"2".to_vec())], body: vec![] };
        assert_eq!(r.retry_after_ms(), Some(2000));
        r.headers = vec![("retry-after".into(), b"Wed, 21 Oct 2015 07:28:00 GMT".to_vec())];
        assert_eq!(r.retry_after_ms(), None);
    }
}
