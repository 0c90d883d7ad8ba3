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

/// The methods backends are called with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    /// Logins (Vault AppRole), token renewal, and AWS's JSON API.
    Post,
    /// IMDSv2's session token (`PUT /latest/api/token`).
    Put,
}

impl Method {
    /// As it goes on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
        }
    }
}

/// A request for the transport.
#[derive(Clone)]
pub struct HttpRequest {
    pub method: Method,
    pub scheme: Scheme,
    pub authority: String,
    pub path_and_query: String,
    /// Header names are lowercase. Values may hold credentials.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Sent as is (empty: no body). May hold credentials (a login), so
    /// `Debug` shows only its length.
    pub body: Vec<u8>,
}

impl HttpRequest {
    /// A GET with no body.
    pub fn get(url: &BaseUrl, path_and_query: String, headers: Vec<(String, Vec<u8>)>) -> HttpRequest {
        HttpRequest { method: Method::Get, scheme: url.scheme, authority: url.authority.clone(), path_and_query, headers, body: Vec::new() }
    }

    /// A POST of `body`.
    pub fn post(url: &BaseUrl, path_and_query: String, headers: Vec<(String, Vec<u8>)>, body: Vec<u8>) -> HttpRequest {
        HttpRequest { method: Method::Post, scheme: url.scheme, authority: url.authority.clone(), path_and_query, headers, body }
    }
}

/// Headers whose values are credentials and must never be printed
/// (`x-amz-security-token`: an AWS session token, see [`crate::sigv4`]).
const SENSITIVE: &[&str] = &["authorization", "x-vault-token", "x-amz-security-token"];

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
            .field("method", &self.method)
            .field("scheme", &self.scheme)
            .field("authority", &self.authority)
            .field("path_and_query", &self.path_and_query)
            .field("headers", &headers)
            .field("body_bytes", &self.body.len())
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
    /// HTTP-date form needs the time now: [`HttpResponse::retry_after_ms_at`]).
    /// Capped at [`MAX_RETRY_AFTER_MS`].
    pub fn retry_after_ms(&self) -> Option<u64> {
        delay_seconds(self.header("retry-after")?.trim())
    }

    /// `Retry-After` in milliseconds, in either form: delta-seconds, or an
    /// IMF-fixdate (`Wed, 21 Oct 2015 07:28:00 GMT`) compared with
    /// `now_wall_ms` (Unix milliseconds; a date in the past gives 0). The
    /// obsolete RFC 850 and asctime date forms are not accepted. Capped at
    /// [`MAX_RETRY_AFTER_MS`].
    pub fn retry_after_ms_at(&self, now_wall_ms: u64) -> Option<u64> {
        let value = self.header("retry-after")?.trim();
        if let Some(ms) = delay_seconds(value) {
            return Some(ms);
        }
        let at_ms = imf_fixdate_secs(value)?.saturating_mul(1000);
        Some(at_ms.saturating_sub(now_wall_ms).min(MAX_RETRY_AFTER_MS))
    }
}

/// The longest `Retry-After` honoured: a backend (or a proxy in front of it)
/// asking for days is wrong, and callers must not be told to wait that long.
pub const MAX_RETRY_AFTER_MS: u64 = 3_600_000;

/// delta-seconds (`1*DIGIT`) in milliseconds, capped; too many digits is
/// "very long", not "unreadable".
fn delay_seconds(value: &str) -> Option<u64> {
    let secs = match value.parse::<u64>() {
        // `parse` also takes a leading `+`, which delta-seconds has not.
        Ok(_) if value.starts_with('+') => return None,
        Ok(secs) => secs,
        Err(e) if *e.kind() == core::num::IntErrorKind::PosOverflow => u64::MAX,
        Err(_) => return None,
    };
    Some(secs.saturating_mul(1000).min(MAX_RETRY_AFTER_MS))
}

/// Seconds since the Unix epoch of an IMF-fixdate (RFC 9110 §5.6.7), e.g.
/// `Sun, 06 Nov 1994 08:49:37 GMT`; 0 for dates before 1970.
fn imf_fixdate_secs(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() != 29 || &b[3..5] != b", " || b[7] != b' ' || b[11] != b' ' || b[16] != b' ' || &b[25..] != b" GMT" {
        return None;
    }
    if b[19] != b':' || b[22] != b':' {
        return None;
    }
    const DAYS: [&[u8]; 7] = [b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun"];
    const MONTHS: [&[u8]; 12] = [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"];
    if !DAYS.contains(&&b[0..3]) {
        return None;
    }
    let month = MONTHS.iter().position(|m| *m == &b[8..11])? as u64 + 1;
    let number = |range: core::ops::Range<usize>| decimal(&b[range]);
    let (day, year) = (number(5..7)?, number(12..16)?);
    unix_secs(year, month, day, (number(17..19)?, number(20..22)?, number(23..25)?))
}

/// Seconds since the Unix epoch of an ISO 8601 UTC time as AWS writes credential expiries,
/// `2026-12-05T11:35:41Z` (fractional seconds allowed and dropped); 0 before 1970.
pub fn iso8601_utc_secs(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' || b.last() != Some(&b'Z') {
        return None;
    }
    let fraction = &b[19..b.len() - 1];
    if !fraction.is_empty() && (fraction[0] != b'.' || fraction.len() < 2 || !fraction[1..].iter().all(u8::is_ascii_digit)) {
        return None;
    }
    let number = |range: core::ops::Range<usize>| decimal(&b[range]);
    unix_secs(number(0..4)?, number(5..7)?, number(8..10)?, (number(11..13)?, number(14..16)?, number(17..19)?))
}

/// The value of ASCII decimal digits (`None` if any byte is not one).
fn decimal(digits: &[u8]) -> Option<u64> {
    digits.iter().all(u8::is_ascii_digit).then(|| digits.iter().fold(0, |n, d| n * 10 + u64::from(d - b'0')))
}

/// Seconds since the Unix epoch of a UTC date and time, checked; 0 before 1970.
fn unix_secs(year: u64, month: u64, day: u64, (hour, minute, second): (u64, u64, u64)) -> Option<u64> {
    let leap = year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
    let month_days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return None,
    };
    // Second 60: a leap second.
    if day == 0 || day > month_days || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    if year < 1970 {
        return Some(0);
    }
    // Days from 1970-01-01 to the date (Howard Hinnant's `days_from_civil`, years ≥ 1970).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3_600 + minute * 60 + second)
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
        let url = BaseUrl::parse("http://h").unwrap();
        let r = HttpRequest::post(
            &url,
            "/".into(),
            vec![
                ("x-vault-token".into(), b"s.TOPSECRET".to_vec()),
                ("authorization".into(), b"Bearer ya29".to_vec()),
                ("x-amz-security-token".into(), b"FQoGZXIvYXdz".to_vec()),
            ],
            br#"{"secret_id":"SIDSECRET"}"#.to_vec(),
        );
        let shown = format!("{r:?}");
        assert!(!shown.contains("TOPSECRET") && !shown.contains("ya29") && !shown.contains("FQoG"), "{shown}");
        assert!(!shown.contains("SIDSECRET") && shown.contains("body_bytes: 25"), "{shown}");
    }

    fn with_retry_after(value: &str) -> HttpResponse {
        HttpResponse { status: 429, headers: vec![("retry-after".into(), value.as_bytes().to_vec())], body: vec![] }
    }

    #[test]
    fn retry_after_seconds_are_read_and_capped() {
        assert_eq!(with_retry_after("2").retry_after_ms(), Some(2000));
        assert_eq!(with_retry_after(" 0 ").retry_after_ms(), Some(0));
        assert_eq!(with_retry_after("86400").retry_after_ms(), Some(MAX_RETRY_AFTER_MS));
        assert_eq!(with_retry_after("99999999999999999999999").retry_after_ms(), Some(MAX_RETRY_AFTER_MS));
        for bad in ["", "+5", "-1", "1.5", "soon"] {
            assert_eq!(with_retry_after(bad).retry_after_ms(), None, "{bad:?}");
        }
        let none = HttpResponse { status: 429, headers: vec![], body: vec![] };
        assert_eq!((none.retry_after_ms(), none.retry_after_ms_at(0)), (None, None));
        // Without the time now, a date cannot be read.
        assert_eq!(with_retry_after("Wed, 21 Oct 2015 07:28:00 GMT").retry_after_ms(), None);
    }

    #[test]
    fn retry_after_dates_are_compared_with_the_wall_clock() {
        // 2015-10-21T07:28:00Z = 1445412480 s.
        let at = 1_445_412_480_000;
        let r = with_retry_after("Wed, 21 Oct 2015 07:28:00 GMT");
        assert_eq!(r.retry_after_ms_at(at - 5_000), Some(5_000));
        assert_eq!(r.retry_after_ms_at(at), Some(0));
        assert_eq!(r.retry_after_ms_at(at + 60_000), Some(0), "a past date: retry now");
        assert_eq!(r.retry_after_ms_at(0), Some(MAX_RETRY_AFTER_MS), "far in the future: capped");
        assert_eq!(with_retry_after("7").retry_after_ms_at(at), Some(7_000), "seconds work too");
        // RFC 9110's example, a leap day and a leap second.
        assert_eq!(imf_fixdate_secs("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784_111_777));
        assert_eq!(imf_fixdate_secs("Thu, 29 Feb 2024 00:00:00 GMT"), Some(1_709_164_800));
        assert_eq!(imf_fixdate_secs("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(imf_fixdate_secs("Wed, 31 Dec 1969 23:59:59 GMT"), Some(0));
        assert_eq!(imf_fixdate_secs("Sat, 31 Dec 2016 23:59:60 GMT"), Some(1_483_228_800));
        for bad in [
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Xyz, 06 Nov 1994 08:49:37 GMT",
            "Fri, 29 Feb 2023 00:00:00 GMT",
            "Sun, 31 Apr 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:3x GMT",
            "Sun, 06 Nov 1994 08:49:37 GMTé",
        ] {
            assert_eq!(with_retry_after(bad).retry_after_ms_at(at), None, "{bad:?}");
        }
    }
}
