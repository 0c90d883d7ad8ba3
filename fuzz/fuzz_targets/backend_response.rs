//! Every backend's response parser: `backend::response` and `backend::response_at` for Vault,
//! GCP and AWS, and `backend::vault::response` / `gcp::response` / `aws::response` directly.
//!
//! Input layout (so the seeds stay readable: the body is the file's tail, as sent):
//!   byte 0: bit 0 backend (0 Vault, 1 GCP); bits 1-2 version asked (latest, 1, 4, 7; for
//!           AWS latest, the stage AWSCURRENT, or the ids [`VID`], [`VID2`]);
//!           bit 3 status from byte 1-2 raw instead of from the table of interesting ones;
//!           bit 4 a wall time follows the `retry-after` bytes (8 bytes, big-endian Unix ms;
//!           clear: 2015-10-21T07:27:50Z, ten seconds before the RFC's example date);
//!           bit 5 the `retry-after` is an IMF-fixdate made from the wall time plus the
//!           seconds in its n bytes (big-endian, at most 8), instead of those bytes as text;
//!           bit 6 AWS instead of the backend in bit 0; bit 7 (AWS) the body's first line is
//!           an `x-amzn-errortype` header, the rest the body
//!   bytes 1-2: status (big-endian; the table index is byte 2 when bit 3 is clear)
//!   byte 3: length n of a `retry-after` value (0xff: no header), then n bytes of it
//!   [8 bytes of wall time when bit 4 is set]
//!   rest: the body.
//!
//! Invariants beyond "no panic":
//! - a value is returned only for a 200, under a canonical positive version (one spelling
//!   per version: it is a cache key) that is the version asked for when one was pinned; for
//!   AWS under a version id (`VersionSel::parse` reads it back as that `Id`, the one asked
//!   for when an id was), with the whole text or payload as its default field;
//! - a 200 that fails never shows the secret (raw or base64) in its error: the body is the
//!   secret (only an AWS version id served instead of the one asked for is named, and it may
//!   hold anything an id can); errors are short and have no control characters (they reach
//!   logs); an AWS error shows the secret marker only when its type or message (the parts an
//!   error may echo) hold it, never from `SecretString`/`SecretBinary` or any other part;
//! - only transient failures carry the backend's `Retry-After`, and exactly it (seconds
//!   form for `response`, either form for `response_at`), never above the cap; Vault's and
//!   AWS's 429 are throttles;
//! - `response_at` judges exactly as `response` does, but for the `Retry-After` it reads:
//!   the same when the header is in seconds, a date's distance from the wall time (0 once
//!   past, capped, never growing as the clock advances) otherwise.
#![no_main]

use edge_secrets_guest::backend::{self, aws, azure, gcp, vault};
use edge_secrets_guest::config::BackendSpec;
use edge_secrets_guest::error::Error;
use edge_secrets_guest::http::{HttpResponse, MAX_RETRY_AFTER_MS};
use edge_secrets_guest::validate::{self, VersionSel};
use libfuzzer_sys::fuzz_target;

/// The seeds hold this as the secret value (and its base64 `enFlY3JldE1BUktFUnpx` for GCP).
const MARKER: &str = "zqecretMARKERzq";
const MARKER_B64: &str = "enFlY3JldE1BUktFUnpx";
const STATUSES: [u16; 16] = [200, 200, 200, 200, 400, 401, 403, 404, 408, 412, 429, 500, 502, 503, 504, 301];
/// What a well-formed error may be at most: a sanitized upstream reason (160 chars) plus
/// a shortened name (64 chars) plus fixed text.
const MAX_ERROR_BYTES: usize = 1024;
/// The default wall time: ten seconds before `Wed, 21 Oct 2015 07:28:00 GMT`.
const DEFAULT_NOW_MS: u64 = 1_445_412_470_000;
/// The AWS version ids the seeds use (and that bits 1-2 can ask for).
const VID: &str = "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111";
const VID2: &str = "a1b2c3d4-5678-90ab-cdef-EXAMPLE22222";

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let Some((status, rest)) = rest.split_first_chunk::<2>() else { return };
    let status = if flags & 8 != 0 {
        u16::from_be_bytes(*status)
    } else {
        STATUSES[usize::from(status[1]) % STATUSES.len()]
    };
    let Some((&len, rest)) = rest.split_first() else { return };
    let (retry_after, rest) = if len == 0xff {
        (None, rest)
    } else {
        let n = usize::from(len).min(rest.len());
        (Some(&rest[..n]), &rest[n..])
    };
    let (now_wall_ms, body) = match rest.split_first_chunk::<8>() {
        Some((wall, body)) if flags & 16 != 0 => (u64::from_be_bytes(*wall), body),
        _ => (DEFAULT_NOW_MS, rest),
    };
    let is_aws = flags & 64 != 0;
    let (error_type, body) = match body.iter().position(|&b| b == b'\n') {
        Some(at) if is_aws && flags & 128 != 0 => (Some(&body[..at]), &body[at + 1..]),
        _ => (None, body),
    };
    let mut headers = vec![("content-type".to_string(), b"application/json".to_vec())];
    if let Some(value) = error_type {
        headers.push(("x-amzn-errortype".to_string(), value.to_vec()));
    }
    // With bit 5: the date `delta` seconds from now, and what `response_at` must read from it.
    let mut expected_date_ms = None;
    match retry_after {
        Some(bytes) if flags & 32 != 0 => {
            let delta = bytes.iter().take(8).fold(0u64, |n, b| n << 8 | u64::from(*b)) % (400 * 365 * 86_400);
            let at_secs = (now_wall_ms / 1000).saturating_add(delta);
            if let Some(date) = imf_fixdate(at_secs) {
                expected_date_ms = Some((at_secs * 1000).saturating_sub(now_wall_ms).min(MAX_RETRY_AFTER_MS));
                headers.push(("Retry-After".to_string(), date.into_bytes()));
            }
        }
        Some(bytes) => headers.push(("Retry-After".to_string(), bytes.to_vec())),
        None => {}
    }
    let response = HttpResponse { status, headers, body: body.to_vec() };
    let pick = usize::from(flags >> 1) & 3;
    let version = if is_aws {
        [VersionSel::Latest, VersionSel::Stage("AWSCURRENT".into()), VersionSel::Id(VID.into()), VersionSel::Id(VID2.into())][pick].clone()
    } else {
        [VersionSel::Latest, VersionSel::Pinned(1), VersionSel::Pinned(4), VersionSel::Pinned(7)][pick].clone()
    };
    let (spec, name) = if is_aws {
        (BackendSpec::Aws { region: "us-east-1".into() }, "prod/db")
    } else if flags & 1 == 0 {
        (BackendSpec::Vault { mount: "secret".into(), namespace: None }, "app/db")
    } else {
        (BackendSpec::Gcp { project: "p-1".into() }, "db")
    };
    backend::validate_version(&spec, &version).expect("the target asks only for versions the backend has");

    let seconds = response.retry_after_ms();
    let either = response.retry_after_ms_at(now_wall_ms);
    if let Some(ms) = seconds {
        assert_eq!(either, Some(ms), "the seconds form does not depend on the clock");
    }
    if let Some(ms) = expected_date_ms {
        assert_eq!(either, Some(ms), "a Retry-After date read wrong");
        assert_eq!(seconds, None, "a date read as seconds");
    }
    if let Some(ms) = either {
        assert!(ms <= MAX_RETRY_AFTER_MS);
        let later = response.retry_after_ms_at(now_wall_ms.saturating_add(1_000)).expect("readable a second later");
        assert!(later <= ms, "a Retry-After that grows as time passes");
    }

    let direct = match spec {
        BackendSpec::Vault { .. } => vault::response(name, &response, seconds),
        BackendSpec::Gcp { .. } => gcp::response(name, &response, seconds),
        BackendSpec::Aws { .. } => aws::response(name, &response, seconds),
        BackendSpec::Azure => azure::response(name, &response, seconds),
    };
    let judged = backend::response(&spec, name, &version, &response);
    let judged_at = backend::response_at(&spec, name, &version, &response, now_wall_ms);
    match (&judged, &judged_at) {
        (Ok(f), Ok(g)) => assert_eq!(f.version, g.version),
        (Err(a), Err(b)) => {
            assert_eq!(a.transient, b.transient, "the clock changed how a failure is judged");
            assert_eq!(b.retry_after_ms, if b.transient { either } else { None });
            match (&a.error, &b.error) {
                (Error::RateLimited { .. }, Error::RateLimited { retry_after_ms }) => assert_eq!(*retry_after_ms, either),
                (x, y) => assert_eq!(x, y, "the clock changed the error"),
            }
        }
        _ => panic!("response_at and response disagree on success"),
    }
    match (&direct, &judged) {
        (Ok(f), Ok(g)) => assert_eq!(f.version, g.version),
        (Err(a), Err(b)) => assert!(a == b || version.is_pinned()),
        (Err(_), Ok(_)) => panic!("backend::response accepted what the backend's parser rejects"),
        (Ok(_), Err(_)) => assert!(version.is_pinned(), "only a version mismatch turns a value into an error"),
    }

    match judged {
        Ok(fetched) => {
            assert_eq!(status, 200, "a value from a non-200");
            if is_aws {
                // A `latest` or stage read is cached under its id too: it must be an id a read can ask for.
                match VersionSel::parse(Some(&fetched.version)) {
                    Ok(VersionSel::Id(id)) => assert_eq!(id, fetched.version),
                    other => panic!("version {:?} is not an AWS version id: {other:?}", fetched.version),
                }
                assert_eq!(spec.pinned(&fetched.version), Some(VersionSel::Id(fetched.version.clone())));
                if let VersionSel::Id(asked) = &version {
                    assert_eq!(asked, &fetched.version, "an id read served another version");
                }
                let value = fetched.select(backend::DEFAULT_FIELD).expect("an AWS value has the default field");
                check_aws_value(body, &value);
            } else {
                let n = match VersionSel::parse(Some(&fetched.version)) {
                    Ok(VersionSel::Pinned(n)) => n,
                    other => panic!("version {:?} is not a canonical positive integer: {other:?}", fetched.version),
                };
                assert_eq!(n.to_string(), fetched.version);
                assert_eq!(spec.pinned(&fetched.version), Some(VersionSel::Pinned(n)));
                if let VersionSel::Pinned(asked) = version {
                    assert_eq!(asked, n, "a pinned read served another version");
                }
            }
            if matches!(spec, BackendSpec::Gcp { .. }) {
                fetched.select(backend::DEFAULT_FIELD).expect("a GCP value has the default field");
            }
            for field in ["no-such-field", "user", "0"] {
                if let Err(e) = fetched.select(field) {
                    let shown = e.to_string();
                    assert!(!shown.contains(MARKER) && !shown.contains(MARKER_B64), "a field error shows the secret: {shown:?}");
                    assert!(matches!(e, Error::NotFound(_)), "a missing field is not-found: {e:?}");
                }
            }
        }
        Err(failure) => {
            let shown = failure.error.to_string();
            assert!(shown.len() <= MAX_ERROR_BYTES, "an error of {} bytes", shown.len());
            assert!(!shown.chars().any(char::is_control), "an error with control characters: {shown:?}");
            if status == 200 {
                // The version is no secret: an AWS id served instead of the one asked for is
                // named (shortened), and may hold the marker. Nothing else may.
                let served_id = serde_json::from_slice::<serde_json::Value>(body)
                    .ok()
                    .and_then(|doc| doc.get("VersionId")?.as_str().map(validate::shorten))
                    .filter(|_| is_aws);
                let rest = match &served_id {
                    Some(id) => shown.replace(&format!("returned version {id}"), "returned version <id>"),
                    None => shown.clone(),
                };
                assert!(!rest.contains(MARKER) && !rest.contains(MARKER_B64), "a 200's error shows the secret: {shown:?}");
                assert!(!failure.transient, "a bad 200 is not worth a retry");
            }
            if failure.transient {
                assert_eq!(failure.retry_after_ms, response.retry_after_ms());
            } else {
                assert_eq!(failure.retry_after_ms, None);
            }
            if matches!(spec, BackendSpec::Vault { .. } | BackendSpec::Aws { .. }) && status == 429 {
                assert!(failure.transient, "a 429 is a throttle");
                assert!(matches!(failure.error, Error::RateLimited { .. }), "a 429 is rate-limited: {:?}", failure.error);
            }
            if is_aws && status != 200 && shown.contains(MARKER) {
                assert!(echoable_has_marker(body, error_type), "an AWS error shows the secret from its body: {shown:?}");
            }
        }
    }
});

/// The value a 200 served, checked against the body read independently: `SecretString` as
/// its text, else `SecretBinary` decoded (here only its length: the guest's decoder is not
/// re-implemented).
fn check_aws_value(body: &[u8], value: &edge_secrets_guest::secret::SecretBytes) {
    let doc: serde_json::Value = serde_json::from_slice(body).expect("a served AWS body is JSON");
    match doc.get("SecretString") {
        Some(serde_json::Value::String(text)) => assert_eq!(value.expose(), text.as_bytes(), "SecretString served changed"),
        _ => {
            let encoded = doc["SecretBinary"].as_str().expect("served without SecretString: SecretBinary is a string");
            let bytes = encoded.trim_end_matches('=').len() * 3 / 4;
            assert_eq!(value.len(), bytes, "SecretBinary of {} characters served as {} bytes", encoded.len(), value.len());
        }
    }
}

/// Whether the parts of an AWS error answer that its error may echo (the `x-amzn-errortype`
/// header; the JSON body's `__type`, `Code`, `Message`, `message` strings; a body that is not
/// JSON, read as XML) hold the secret marker.
fn echoable_has_marker(body: &[u8], error_type: Option<&[u8]>) -> bool {
    let has = |bytes: &[u8]| bytes.windows(MARKER.len()).any(|w| w == MARKER.as_bytes());
    if error_type.is_some_and(has) {
        return true;
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(doc) => ["__type", "Code", "Message", "message"]
            .iter()
            .any(|key| doc.get(key).and_then(serde_json::Value::as_str).is_some_and(|s| s.contains(MARKER))),
        Err(_) => has(body),
    }
}

/// `secs` (Unix) as an IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`; `None` past year 9999
/// (four digits). Written here independently of the guest's parser, so the two check each
/// other (Howard Hinnant's `civil_from_days`).
fn imf_fixdate(secs: u64) -> Option<String> {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    if year > 9999 {
        return None;
    }
    Some(format!(
        "{}, {day:02} {} {year:04} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    ))
}
