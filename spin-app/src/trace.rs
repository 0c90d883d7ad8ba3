//! W3C Trace Context `traceparent` validation (<https://www.w3.org/TR/trace-context/>).
//!
//! The provider answers a `traceparent` it cannot parse with `invalid-request`, but the spec
//! tells a receiver that cannot parse one to start a new trace, not to fail the request. So the
//! app checks the header first and forwards only well-formed values; anything else is dropped
//! and the provider starts a new trace.

/// The length of a version-00 `traceparent`: `vv-` + 32 + `-` + 16 + `-` + 2.
const LEN: usize = 55;

/// The value to forward for the request's `traceparent` header values, or `None` to start a
/// new trace: when there is none, more than one (the W3C test suite expects a restart), or the
/// one there is does not parse.
pub fn forwardable(values: &[&[u8]]) -> Option<String> {
    match values {
        [value] => parse(std::str::from_utf8(value).ok()?),
        _ => None,
    }
}

/// Parses one header value. `Some` is always in version-00 form: a value of a later version
/// is reduced to the fields version 00 defines, because those are the only ones this app (and
/// the provider it forwards to) understands, and the spec's rules for later versions exist so
/// that exactly those fields can be read from them.
pub fn parse(value: &str) -> Option<String> {
    // Optional whitespace around a header value is not part of it (RFC 9110 5.5); proxies
    // may leave it in.
    let value = value.trim_matches([' ', '\t']);
    let bytes = value.as_bytes();
    if bytes.len() < LEN || !bytes.is_ascii() {
        return None;
    }
    let version = &value[0..2];
    if !is_lower_hex(version) || version == "ff" {
        return None;
    }
    // Version 00 is exactly 55 characters; a later version may append fields after a `-`.
    let rest_ok = if version == "00" { bytes.len() == LEN } else { bytes.len() == LEN || bytes[LEN] == b'-' };
    if !rest_ok || bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
        return None;
    }
    let (trace_id, parent_id, flags) = (&value[3..35], &value[36..52], &value[53..55]);
    let nonzero = |id: &str| id.bytes().any(|b| b != b'0');
    if !(is_lower_hex(trace_id) && nonzero(trace_id) && is_lower_hex(parent_id) && nonzero(parent_id) && is_lower_hex(flags)) {
        return None;
    }
    Some(format!("00-{trace_id}-{parent_id}-{flags}"))
}

/// The spec's `HEXDIGLC`: uppercase hex is invalid in every field.
fn is_lower_hex(text: &str) -> bool {
    text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spec's own example.
    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_specification_examples_parse_unchanged() {
        assert_eq!(parse(EXAMPLE).as_deref(), Some(EXAMPLE));
        let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        assert_eq!(parse(unsampled).as_deref(), Some(unsampled));
        // Flags other than `sampled` are carried, not judged.
        let other_flags = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-09";
        assert_eq!(parse(other_flags).as_deref(), Some(other_flags));
        assert_eq!(parse(&format!(" \t{EXAMPLE}\t ")).as_deref(), Some(EXAMPLE), "surrounding whitespace is trimmed");
    }

    #[test]
    fn later_versions_are_read_as_version_00() {
        let tail = "-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(parse(&format!("cc{tail}")).as_deref(), Some(EXAMPLE));
        assert_eq!(parse(&format!("01{tail}-what-the-future-will-be-like")).as_deref(), Some(EXAMPLE));
        assert_eq!(parse(&format!("cc{tail}.what-the-future")), None, "the 56th character must be `-`");
        assert_eq!(parse(&format!("ff{tail}")), None, "version ff is invalid");
    }

    #[test]
    fn malformed_values_are_rejected() {
        let cases = [
            "",
            "00",
            // Version 00 allows nothing after the flags.
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            // All-zero ids.
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            // Uppercase hex, in each field.
            "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
            // Non-hex characters, wrong separators, shifted fields.
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-.0",
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            "00-4bf92f3577b34da6a3ce929d0e0e47366-0f067aa0ba902b7-01",
            "0-04bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0é",
        ];
        for case in cases {
            assert_eq!(parse(case), None, "{case:?}");
        }
    }

    #[test]
    fn exactly_one_utf8_header_is_forwarded() {
        let one = EXAMPLE.as_bytes();
        assert_eq!(forwardable(&[one]).as_deref(), Some(EXAMPLE));
        assert_eq!(forwardable(&[]), None);
        assert_eq!(forwardable(&[one, one]), None, "duplicated headers restart the trace");
        assert_eq!(forwardable(&[b"00-\xff"]), None);
    }
}
