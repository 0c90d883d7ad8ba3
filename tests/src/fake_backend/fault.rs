//! Faults the fake backend can inject instead of (or before) a normal answer, and the
//! streamed body used for oversized responses.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use serde_json::json;

/// What to do with a request instead of answering it normally.
///
/// Queue with [`FakeBackend::fail_next`](super::FakeBackend::fail_next), or apply to every
/// request with [`FakeBackend::set_fault_always`](super::FakeBackend::set_fault_always).
/// Faulted requests are still counted and recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and body (`Content-Type: application/json`), plus a
    /// `Retry-After` header with the given value if any (seconds such as `"2"`, an HTTP date,
    /// or junk, to test parsing). See the constructors for each API's error shape.
    Status {
        code: u16,
        body: String,
        retry_after: Option<String>,
    },
    /// Never answer; the connection stays open until the backend is dropped.
    Hang,
    /// Wait this long, then answer normally.
    Delay(Duration),
    /// The normal answer's status and headers, but only the first half of its JSON body
    /// (well framed: `Content-Length` matches what is sent).
    Truncated,
    /// Status 200 with a body that is not JSON.
    Malformed,
    /// Status 200 with a body of exactly this many bytes, streamed in chunks without a
    /// `Content-Length` (chunked), so a client must count to enforce its limit.
    HugeBody(u64),
    /// Like [`Fault::HugeBody`], but announces the size in `Content-Length` first.
    HugeBodyDeclared(u64),
    /// Status 200 and headers at once, then one byte of body every interval, forever: no
    /// first-byte or between-bytes timeout ever fires, only a whole-exchange deadline ends it.
    Trickle(Duration),
    /// GCP: the normal answer with a wrong `payload.dataCrc32c`. Vault answers are unaffected.
    BadCrc,
    /// Drop the connection without sending anything back.
    CloseConnection,
}

impl Fault {
    /// A status fault with an explicit body.
    pub fn status(code: u16, body: impl Into<String>) -> Fault {
        Fault::Status {
            code,
            body: body.into(),
            retry_after: None,
        }
    }

    /// A Vault error: `{"errors":[message]}`.
    pub fn vault_error(code: u16, message: &str) -> Fault {
        Fault::status(code, json!({ "errors": [message] }).to_string())
    }

    /// What a sealed Vault answers: 503 `{"errors":["Vault is sealed"]}`.
    pub fn vault_sealed() -> Fault {
        Fault::vault_error(503, "Vault is sealed")
    }

    /// A google.rpc error: `{"error":{"code":..,"message":..,"status":..}}`, the status name
    /// following the HTTP code (429 → `RESOURCE_EXHAUSTED`, 503 → `UNAVAILABLE`, ...).
    pub fn gcp_error(code: u16, message: &str) -> Fault {
        Fault::status(code, gcp_error_body(code, message))
    }

    /// Adds `Retry-After: value` to a [`Fault::Status`]; other faults are returned unchanged.
    pub fn retry_after(self, value: impl Into<String>) -> Fault {
        match self {
            Fault::Status { code, body, .. } => Fault::Status {
                code,
                body,
                retry_after: Some(value.into()),
            },
            other => other,
        }
    }
}

/// The google.rpc.Status name for an HTTP code, as Google's APIs map them.
pub(crate) fn gcp_status_name(code: u16) -> &'static str {
    match code {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        412 => "FAILED_PRECONDITION",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        500 => "INTERNAL",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "UNKNOWN",
    }
}

pub(crate) fn gcp_error_body(code: u16, message: &str) -> String {
    json!({ "error": { "code": code, "message": message, "status": gcp_status_name(code) } })
        .to_string()
}

/// Filler for huge bodies: valid base64 and valid JSON-string characters, so only the size
/// (not a parse error) can be what stops a client. Static, so no body is ever allocated.
static FILLER: [u8; 64 * 1024] = [b'A'; 64 * 1024];

/// A body of exactly `len` bytes: `prefix` then filler, produced chunk by chunk on demand.
pub(crate) struct RepeatBody {
    prefix: Option<Bytes>,
    remaining: u64,
    declared: bool,
}

impl RepeatBody {
    /// `declared` makes the exact size visible, so hyper sends `Content-Length`.
    pub(crate) fn new(prefix: &'static [u8], len: u64, declared: bool) -> RepeatBody {
        let prefix = &prefix[..prefix.len().min(usize::try_from(len).unwrap_or(usize::MAX))];
        RepeatBody {
            prefix: Some(Bytes::from_static(prefix)),
            remaining: len - prefix.len() as u64,
            declared,
        }
    }
}

impl Body for RepeatBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(prefix) = self.prefix.take().filter(|p| !p.is_empty()) {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = self.remaining.min(FILLER.len() as u64) as usize;
        self.remaining -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&FILLER[..n])))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0 && self.prefix.as_ref().is_none_or(Bytes::is_empty)
    }

    fn size_hint(&self) -> SizeHint {
        if self.declared {
            let prefix = self.prefix.as_ref().map_or(0, |p| p.len() as u64);
            SizeHint::with_exact(prefix + self.remaining)
        } else {
            SizeHint::default() // unknown length: hyper falls back to chunked encoding
        }
    }
}

/// The body of [`Fault::Trickle`]: a space every `every`, never ending.
pub(crate) struct TrickleBody {
    every: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl TrickleBody {
    pub(crate) fn new(every: Duration) -> TrickleBody {
        TrickleBody { every, sleep: Box::pin(tokio::time::sleep(every)) }
    }
}

impl Body for TrickleBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        let next = tokio::time::Instant::now() + self.every;
        self.sleep.as_mut().reset(next);
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b" ")))))
    }
}
