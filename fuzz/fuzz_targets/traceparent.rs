//! The W3C `traceparent` parser (`trace::TraceParent::parse`): the header comes from callers,
//! so it is untrusted, and what it accepts is passed on to every backend and into logs.
//!
//! Input: the header (lossy UTF-8); its first 8 bytes, when there are 8, also seed the
//! randomness `child()` draws its span id from (all zeros included: the id must still be
//! non-zero).
//!
//! Invariants beyond "no panic":
//! - an accepted header re-renders (`header()`) as version `00`: 55 characters, lowercase hex
//!   in the `00-<32>-<16>-<2>` shape, trace and parent ids not all zeros (the spec's
//!   "invalid" values: a backend or collector would drop or restart the trace);
//! - that rendering parses to the same `TraceParent` and renders to itself (one spelling);
//! - `trace_id()` is the rendering's trace id field;
//! - `child()` keeps the trace id and flags and makes a valid non-zero span id;
//! - an error is short, printable and never quotes the header (it reaches logs).
#![no_main]

use edge_secrets_guest::engine::Random;
use edge_secrets_guest::trace::TraceParent;
use libfuzzer_sys::fuzz_target;

/// The guest's errors are `traceparent: <fixed reason>`; anything longer echoes input.
const MAX_ERROR_BYTES: usize = 80;

struct Fixed(u64);

impl Random for Fixed {
    fn next_u64(&mut self) -> u64 {
        self.0
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let parsed = match TraceParent::parse(&text) {
        Ok(parsed) => parsed,
        Err(message) => {
            assert!(message.len() <= MAX_ERROR_BYTES && message.starts_with("traceparent: "), "{message:?}");
            assert!(!message.chars().any(char::is_control), "{message:?}");
            return;
        }
    };
    let header = check_rendering(&parsed);
    assert_eq!(TraceParent::parse(&header), Ok(parsed), "the rendering parses to another TraceParent");
    assert_eq!(parsed.trace_id(), header[3..35], "trace_id() is not the header's trace id");
    // A version-00 input is accepted only as itself (trimmed of HTTP whitespace).
    let trimmed = text.trim_matches([' ', '\t']);
    if trimmed.starts_with("00") {
        assert_eq!(trimmed, header, "a version-00 header with two spellings");
    }

    let random = data.first_chunk::<8>().map_or(0, |b| u64::from_le_bytes(*b));
    let child = parsed.child(&mut Fixed(random));
    let child_header = check_rendering(&child);
    assert_eq!(child.trace_id(), parsed.trace_id(), "a child left the trace");
    assert_eq!(child_header[53..], header[53..], "a child changed the flags");
    assert_eq!(TraceParent::parse(&child_header), Ok(child));
});

/// Checks the shape of a rendered header and returns it.
fn check_rendering(tp: &TraceParent) -> String {
    let header = tp.header();
    assert_eq!(header.len(), 55, "{header:?}");
    let fields: Vec<&str> = header.split('-').collect();
    assert_eq!(fields.len(), 4, "{header:?}");
    assert_eq!(fields[0], "00", "rendered as another version: {header:?}");
    for (field, len) in fields.iter().zip([2, 32, 16, 2]) {
        assert_eq!(field.len(), len, "{header:?}");
        assert!(field.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')), "not lowercase hex: {header:?}");
    }
    assert!(fields[1].bytes().any(|b| b != b'0'), "an all-zero trace id: {header:?}");
    assert!(fields[2].bytes().any(|b| b != b'0'), "an all-zero parent id: {header:?}");
    assert_eq!(format!("{tp:?}"), format!("TraceParent({header})"));
    header
}
