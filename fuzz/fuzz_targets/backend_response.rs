//! Every backend's response parser: `backend::response` for Vault and GCP, and
//! `backend::vault::response` / `backend::gcp::response` directly.
//!
//! Input layout (so the seeds stay readable: the body is the file's tail, as sent):
//!   byte 0: bit 0 backend (0 Vault, 1 GCP); bits 1-2 version asked (latest, 1, 4, 7);
//!           bit 3 status from byte 1-2 raw instead of from the table of interesting ones
//!   bytes 1-2: status (big-endian; the table index is byte 2 when bit 3 is clear)
//!   byte 3: length n of a `retry-after` value (0xff: no header), then n bytes of it
//!   rest: the body.
//!
//! Invariants beyond "no panic":
//! - a value is returned only for a 200, under a canonical positive version (one spelling
//!   per version: it is a cache key) that is the version asked for when one was pinned;
//! - a 200 that fails never shows the secret (raw or base64) in its error: the body is the
//!   secret; errors are short and have no control characters (they reach logs);
//! - only transient failures carry the backend's `Retry-After`, and exactly it.
#![no_main]

use edge_secrets_guest::backend::{self, gcp, vault};
use edge_secrets_guest::config::BackendSpec;
use edge_secrets_guest::http::HttpResponse;
use edge_secrets_guest::validate::VersionSel;
use libfuzzer_sys::fuzz_target;

/// The seeds hold this as the secret value (and its base64 `enFlY3JldE1BUktFUnpx` for GCP).
const MARKER: &str = "zqecretMARKERzq";
const MARKER_B64: &str = "enFlY3JldE1BUktFUnpx";
const STATUSES: [u16; 16] = [200, 200, 200, 200, 400, 401, 403, 404, 408, 412, 429, 500, 502, 503, 504, 301];
/// What a well-formed error may be at most: a sanitized upstream reason (160 chars) plus
/// a shortened name (64 chars) plus fixed text.
const MAX_ERROR_BYTES: usize = 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let Some((status, rest)) = rest.split_first_chunk::<2>() else { return };
    let status = if flags & 8 != 0 {
        u16::from_be_bytes(*status)
    } else {
        STATUSES[usize::from(status[1]) % STATUSES.len()]
    };
    let Some((&len, rest)) = rest.split_first() else { return };
    let mut headers = vec![("content-type".to_string(), b"application/json".to_vec())];
    let body = if len == 0xff {
        rest
    } else {
        let n = usize::from(len).min(rest.len());
        headers.push(("Retry-After".to_string(), rest[..n].to_vec()));
        &rest[n..]
    };
    let response = HttpResponse { status, headers, body: body.to_vec() };
    let version = [VersionSel::Latest, VersionSel::Pinned(1), VersionSel::Pinned(4), VersionSel::Pinned(7)]
        [usize::from(flags >> 1) & 3];
    let (spec, name) = if flags & 1 == 0 {
        (BackendSpec::Vault { mount: "secret".into(), namespace: None }, "app/db")
    } else {
        (BackendSpec::Gcp { project: "p-1".into() }, "db")
    };

    let direct = match spec {
        BackendSpec::Vault { .. } => vault::response(name, &response),
        BackendSpec::Gcp { .. } => gcp::response(name, &response),
    };
    let judged = backend::response(&spec, name, version, &response);
    match (&direct, &judged) {
        (Ok(f), Ok(g)) => assert_eq!(f.version, g.version),
        (Err(a), Err(b)) => assert!(a == b || version.is_pinned()),
        (Err(_), Ok(_)) => panic!("backend::response accepted what the backend's parser rejects"),
        (Ok(_), Err(_)) => assert!(version.is_pinned(), "only a version mismatch turns a value into an error"),
    }

    match judged {
        Ok(fetched) => {
            assert_eq!(status, 200, "a value from a non-200");
            let n = match VersionSel::parse(Some(&fetched.version)) {
                Ok(VersionSel::Pinned(n)) => n,
                other => panic!("version {:?} is not a canonical positive integer: {other:?}", fetched.version),
            };
            assert_eq!(n.to_string(), fetched.version);
            if let VersionSel::Pinned(asked) = version {
                assert_eq!(asked, n, "a pinned read served another version");
            }
            if matches!(spec, BackendSpec::Gcp { .. }) {
                fetched.select(backend::DEFAULT_FIELD).expect("a GCP value has the default field");
            }
            if let Err(e) = fetched.select("no-such-field") {
                assert!(!e.to_string().contains(MARKER));
            }
        }
        Err(failure) => {
            let shown = failure.error.to_string();
            assert!(shown.len() <= MAX_ERROR_BYTES, "an error of {} bytes", shown.len());
            assert!(!shown.chars().any(char::is_control), "an error with control characters: {shown:?}");
            if status == 200 {
                assert!(!shown.contains(MARKER) && !shown.contains(MARKER_B64), "a 200's error shows the secret");
                assert!(!failure.transient, "a bad 200 is not worth a retry");
            }
            if failure.transient {
                assert_eq!(failure.retry_after_ms, response.retry_after_ms());
            } else {
                assert_eq!(failure.retry_after_ms, None);
            }
            if matches!(spec, BackendSpec::Vault { .. }) && status == 429 {
                assert!(failure.transient, "Vault's 429 is a throttle");
            }
        }
    }
});
