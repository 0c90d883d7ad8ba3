//! W3C Trace Context (`traceparent`, <https://www.w3.org/TR/trace-context/>):
//! parsed from callers, passed on to backends, and named in log events so a
//! read can be followed across hosts.

use crate::prelude::*;
use core::fmt;

use crate::engine::Random;

/// `version-traceid-parentid-flags`, all lowercase hex: 2 + 1 + 32 + 1 + 16 + 1 + 2.
const LEN: usize = 55;
/// The `sampled` flag.
const SAMPLED: u8 = 0x01;

/// A trace context: which trace a call belongs to, and the span (the caller's
/// or ours) it runs under.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    flags: u8,
}

impl TraceParent {
    /// Parses a `traceparent` header. Version `00` must be exactly 55
    /// characters; a higher version (except the invalid `ff`) is read as `00`
    /// when its first 55 characters parse and are followed by `-`, as the spec
    /// asks of parsers that do not know it. Surrounding spaces and tabs (HTTP
    /// whitespace) are ignored. Errors never quote the header.
    pub fn parse(header: &str) -> Result<TraceParent, String> {
        let h = header.trim_matches([' ', '\t']).as_bytes();
        if h.len() < LEN {
            return Err(error("too short"));
        }
        let version = hex_byte(&h[0..2]).ok_or_else(|| error("version must be two lowercase hex digits"))?;
        if version == 0xff {
            return Err(error("version ff is invalid"));
        }
        if version == 0 && h.len() != LEN {
            return Err(error("version 00 must be 55 characters"));
        }
        if h.len() > LEN && h[LEN] != b'-' {
            return Err(error("unexpected data after the flags"));
        }
        if h[2] != b'-' || h[35] != b'-' || h[52] != b'-' {
            return Err(error("fields must be separated by '-'"));
        }
        let mut trace_id = [0u8; 16];
        hex_into(&h[3..35], &mut trace_id).ok_or_else(|| error("trace id must be 32 lowercase hex digits"))?;
        let mut span_id = [0u8; 8];
        hex_into(&h[36..52], &mut span_id).ok_or_else(|| error("parent id must be 16 lowercase hex digits"))?;
        let flags = hex_byte(&h[53..55]).ok_or_else(|| error("flags must be two lowercase hex digits"))?;
        if trace_id == [0; 16] {
            return Err(error("trace id must not be all zeros"));
        }
        if span_id == [0; 8] {
            return Err(error("parent id must not be all zeros"));
        }
        Ok(TraceParent { trace_id, span_id, flags })
    }

    /// A new trace (no caller context), sampled.
    pub fn root(random: &mut dyn Random) -> TraceParent {
        let mut trace_id = [0u8; 16];
        trace_id[..8].copy_from_slice(&random.next_u64().to_be_bytes());
        trace_id[8..].copy_from_slice(&random.next_u64().to_be_bytes());
        if trace_id == [0; 16] {
            trace_id[15] = 1;
        }
        TraceParent { trace_id, span_id: new_span(random), flags: SAMPLED }
    }

    /// A span under this one: same trace and flags, a new span id.
    pub fn child(&self, random: &mut dyn Random) -> TraceParent {
        TraceParent { span_id: new_span(random), ..*self }
    }

    /// The header value, always version `00`.
    pub fn header(&self) -> String {
        let mut out = String::with_capacity(LEN);
        out.push_str("00-");
        push_hex(&mut out, &self.trace_id);
        out.push('-');
        push_hex(&mut out, &self.span_id);
        out.push('-');
        push_hex(&mut out, &[self.flags]);
        out
    }

    /// The trace id as 32 hex digits (what log events carry).
    pub fn trace_id(&self) -> String {
        let mut out = String::with_capacity(32);
        push_hex(&mut out, &self.trace_id);
        out
    }
}

impl fmt::Debug for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceParent({})", self.header())
    }
}

fn error(what: &str) -> String {
    format!("traceparent: {what}")
}

/// A non-zero span id (all zeros means "none" in the spec).
fn new_span(random: &mut dyn Random) -> [u8; 8] {
    let mut id = random.next_u64();
    if id == 0 {
        id = 1;
    }
    id.to_be_bytes()
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

fn hex_byte(two: &[u8]) -> Option<u8> {
    Some(hex_digit(two[0])? << 4 | hex_digit(two[1])?)
}

fn hex_into(text: &[u8], out: &mut [u8]) -> Option<()> {
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        *byte = hex_byte(pair)?;
    }
    Some(())
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spec's example.
    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    struct Seq(Vec<u64>);
    impl Random for Seq {
        fn next_u64(&mut self) -> u64 {
            self.0.remove(0)
        }
    }

    #[test]
    fn parses_the_spec_examples_and_round_trips() {
        let tp = TraceParent::parse(EXAMPLE).unwrap();
        assert_eq!(tp.header(), EXAMPLE);
        assert_eq!(tp.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(format!("{tp:?}"), format!("TraceParent({EXAMPLE})"));
        let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        assert_eq!(TraceParent::parse(unsampled).unwrap().header(), unsampled);
        assert_eq!(TraceParent::parse(&format!(" {EXAMPLE}\t")).unwrap(), tp);
    }

    #[test]
    fn higher_versions_are_read_as_00() {
        let v1 = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(TraceParent::parse(v1).unwrap().header(), EXAMPLE);
        let v1_more = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-will-be-like";
        assert_eq!(TraceParent::parse(v1_more).unwrap().header(), EXAMPLE);
        let v1_glued = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.future";
        assert!(TraceParent::parse(v1_glued).is_err());
    }

    #[test]
    fn rejects_invalid_headers_with_short_secret_free_reasons() {
        let cases = [
            ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", "traceparent: trace id must not be all zeros"),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", "traceparent: parent id must not be all zeros"),
            ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "traceparent: version ff is invalid"),
            ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", "traceparent: trace id must be 32 lowercase hex digits"),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bZ-01", "traceparent: parent id must be 16 lowercase hex digits"),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g", "traceparent: flags must be two lowercase hex digits"),
            ("0G-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "traceparent: version must be two lowercase hex digits"),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", "traceparent: version 00 must be 55 characters"),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1", "traceparent: too short"),
            ("00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01", "traceparent: fields must be separated by '-'"),
            ("", "traceparent: too short"),
        ];
        for (header, reason) in cases {
            assert_eq!(TraceParent::parse(header), Err(reason.to_string()), "{header:?}");
        }
        // Multi-byte text of the right byte length must not panic on slicing.
        assert!(TraceParent::parse(&"é".repeat(28)).is_err());
    }

    #[test]
    fn root_and_child_make_valid_non_zero_ids() {
        let root = TraceParent::root(&mut Seq(vec![0x0102030405060708, 0x090a0b0c0d0e0f10, 0xaabbccddeeff0011]));
        assert_eq!(root.header(), "00-0102030405060708090a0b0c0d0e0f10-aabbccddeeff0011-01");
        let child = root.child(&mut Seq(vec![7]));
        assert_eq!(child.header(), "00-0102030405060708090a0b0c0d0e0f10-0000000000000007-01");
        // All-zero randomness still gives ids the spec accepts.
        let zero = TraceParent::root(&mut Seq(vec![0, 0, 0]));
        assert_eq!(TraceParent::parse(&zero.header()), Ok(zero));
        assert_eq!(TraceParent::parse(&zero.child(&mut Seq(vec![0])).header()).map(|t| t.trace_id()), Ok(zero.trace_id()));
        // A child keeps the caller's flags (here: not sampled).
        let unsampled = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
        assert!(unsampled.child(&mut Seq(vec![9])).header().ends_with("-0000000000000009-00"));
    }
}
