//! The service-account key reader, `auth::service_account::parse`, on arbitrary text and on
//! edits of a valid key file built around `guest/tests/fixtures/gcp/test_key_2048.pem` (a
//! TEST-ONLY key).
//!
//! Input: byte 0 even: the rest is the key file's text (lossy UTF-8). Byte 0 odd: bits 1-2 pick
//! the PEM the file starts from (the 2048-bit PKCS#8 key, the same key in PKCS#1, the 1024-bit
//! key, the P-256 key); the rest is up to 16 edits, each an op byte and its operands (see
//! [`edit`]): fields set to text or to other JSON types or removed, and the PEM truncated,
//! flipped, cut, spliced, relabelled or rewrapped; then the JSON text itself may be spliced.
//!
//! Invariants beyond "no panic":
//! - no error contains any line of any fixture PEM, nor any 16 characters of the input's own
//!   `private_key` (unless they are a piece of the parser's fixed text, or of the `type`, the
//!   one field an error may name); errors are short and have no control characters;
//! - an accepted key has an email address of at most 254 visible characters with an `@`, a key
//!   id of at most 128 visible characters, 2048 to 4096 bits, and a `Debug` without key lines;
//! - the unedited key file (and the PKCS#1 one) is accepted, with its email and key id.
#![no_main]

use edge_secrets_guest::auth::service_account;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

const KEY_2048: &str = include_str!("../../guest/tests/fixtures/gcp/test_key_2048.pem");
const KEY_2048_PKCS1: &str = include_str!("../../guest/tests/fixtures/gcp/test_key_2048_pkcs1.pem");
const KEY_1024: &str = include_str!("../../guest/tests/fixtures/gcp/test_key_1024.pem");
const KEY_P256: &str = include_str!("../../guest/tests/fixtures/gcp/test_key_p256.pem");
const PEMS: [&str; 4] = [KEY_2048, KEY_2048_PKCS1, KEY_1024, KEY_P256];
const EMAIL: &str = "edge-secrets@test-project.iam.gserviceaccount.com";
const KID: &str = "0123456789abcdef0123456789abcdef01234567";
const FIELDS: [&str; 8] = ["type", "client_email", "private_key_id", "private_key", "project_id", "client_id", "token_uri", "universe_domain"];
const LABELS: [&str; 8] = [
    "PRIVATE KEY",
    "RSA PRIVATE KEY",
    "ENCRYPTED PRIVATE KEY",
    "EC PRIVATE KEY",
    "OPENSSH PRIVATE KEY",
    "DSA PRIVATE KEY",
    "PUBLIC KEY",
    "CERTIFICATE",
];
/// Errors are fixed text, a position, a bit count, an OID or a short credential type.
const MAX_ERROR_BYTES: usize = 512;
/// The parser's errors as it writes them, variable parts (positions, bit counts, OIDs) cut out:
/// a window of the key found in an error is not an echo when it is a piece of one of these.
fn messages() -> &'static [String] {
    static MESSAGES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    MESSAGES.get_or_init(|| {
        let invalid = |what: &str| format!("`private_key` is not a valid RSA private key ({what})");
        let mut all: Vec<String> = [
            "not JSON at line ",
            " column ",
            "not a JSON object (a service-account key file is one)",
            "`client_email` is not an email address",
            "`private_key_id` must be at most 128 printable characters",
            "`private_key` is a ",
            "-bit RSA key; at least 2048 bits are required",
            "`private_key` is longer than 16384 bytes; it is not a key",
            "`private_key` is not a PEM RSA private key",
            "`private_key` is not an RSA key (PKCS#8 algorithm ",
            "`private_key` is encrypted; the key file must hold it unencrypted",
            "`private_key` is not an RSA key",
        ]
        .map(String::from)
        .into();
        for what in [
            "bad PEM or DER encoding",
            "bad PKCS#8 structure",
            "inconsistent key numbers, or larger than 4096 bits",
            "bad PKCS#1 encoding, inconsistent key numbers, or larger than 4096 bits",
        ] {
            all.push(invalid(what));
        }
        for name in ["type", "client_email", "private_key_id", "private_key"] {
            all.extend([format!("missing `{name}`"), format!("`{name}` is empty"), format!("`{name}` must be a string")]);
        }
        for kind in [
            "`authorized_user` (a user's credentials: create a service-account key instead)",
            "`external_account` (workload identity federation is not supported)",
            "`impersonated_service_account` (not supported)",
            "a value that is not a credential type",
        ] {
            all.push(type_message(kind));
        }
        all
    })
}

/// The error for a `type` other than `service_account`, described as `kind`.
fn type_message(kind: &str) -> String {
    format!("`type` must be `service_account`, got {kind}")
}

fn key_file(pem: &str) -> Value {
    json!({
        "type": "service_account",
        "project_id": "test-project",
        "private_key_id": KID,
        "private_key": pem,
        "client_email": EMAIL,
        "client_id": "123456789012345678901",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": "https://oauth2.googleapis.com/token",
        "universe_domain": "googleapis.com",
    })
}

/// Reads operands off the front of the input; zeros once it runs out.
struct Ops<'a>(&'a [u8]);

impl Ops<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn offset(&mut self) -> usize {
        usize::from(self.byte()) << 8 | usize::from(self.byte())
    }
    /// A length byte, then that many bytes (as many as are left).
    fn bytes(&mut self) -> Vec<u8> {
        let n = usize::from(self.byte()).min(self.0.len());
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        taken.to_vec()
    }
}

/// Byte-level edits of a string, kept valid UTF-8 (lossy).
fn edit_bytes(text: &str, f: impl FnOnce(&mut Vec<u8>)) -> String {
    let mut bytes = text.as_bytes().to_vec();
    f(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// One edit of the document or of its PEM.
fn edit(doc: &mut Value, ops: &mut Ops<'_>, splices: &mut Vec<(usize, Vec<u8>)>) {
    let op = ops.byte();
    let field = FIELDS[usize::from(ops.byte()) % FIELDS.len()];
    let pem = doc["private_key"].as_str().unwrap_or("").to_string();
    let set_pem = |doc: &mut Value, pem: String| doc["private_key"] = Value::String(pem);
    match op % 12 {
        0 => doc[field] = Value::String(String::from_utf8_lossy(&ops.bytes()).into_owned()),
        1 => {
            doc.as_object_mut().expect("an object").remove(field);
        }
        2 => {
            doc[field] = match ops.byte() % 6 {
                0 => Value::Null,
                1 => json!(7),
                2 => json!(true),
                3 => json!([doc[field].clone()]),
                4 => json!({ "value": doc[field].clone() }),
                _ => json!(""),
            }
        }
        3 => {
            let at = ops.offset();
            set_pem(doc, edit_bytes(&pem, |b| b.truncate(at)));
        }
        4 => {
            let (at, mask) = (ops.offset(), ops.byte().max(1));
            set_pem(doc, edit_bytes(&pem, |b| {
                if !b.is_empty() {
                    let i = at % b.len();
                    b[i] ^= mask;
                }
            }));
        }
        5 => {
            let (at, insert) = (ops.offset(), ops.bytes());
            set_pem(doc, edit_bytes(&pem, |b| {
                let i = at.min(b.len());
                b.splice(i..i, insert);
            }));
        }
        6 => {
            let (at, n) = (ops.offset(), ops.offset());
            set_pem(doc, edit_bytes(&pem, |b| {
                let i = at.min(b.len());
                let j = i.saturating_add(n).min(b.len());
                b.drain(i..j);
            }));
        }
        7 => {
            let label = LABELS[usize::from(ops.byte()) % LABELS.len()];
            let which = ops.byte();
            let mut lines: Vec<String> = pem.lines().map(String::from).collect();
            for line in &mut lines {
                let is_begin = line.starts_with("-----BEGIN ");
                if (is_begin && which & 1 == 0) || (line.starts_with("-----END ") && which & 2 == 0) {
                    let head = if is_begin { "BEGIN" } else { "END" };
                    *line = format!("-----{head} {label}-----");
                }
            }
            set_pem(doc, lines.join("\n") + "\n");
        }
        8 => {
            let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
            let begin = pem.lines().next().unwrap_or("");
            let end = pem.lines().rev().find(|l| l.starts_with("-----END")).unwrap_or("");
            let rewrapped = match ops.byte() % 4 {
                0 => format!("{begin}\n{body}\n{end}\n"),
                1 => pem.replace('\n', "\r\n"),
                2 => {
                    let chunks: Vec<String> = body.as_bytes().chunks(76).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
                    format!("{begin}\n{}\n{end}\n", chunks.join("\n"))
                }
                _ => format!("  \n{pem}\n\n  "),
            };
            set_pem(doc, rewrapped);
        }
        9 => set_pem(doc, PEMS[usize::from(ops.byte()) % PEMS.len()].to_string()),
        10 => {
            // Past the guest's 16 KiB cap, bounded: repeated edits would otherwise compound.
            let repeat = usize::from(ops.byte() % 8) + 2;
            if pem.len() * repeat <= 40_000 {
                set_pem(doc, pem.repeat(repeat));
            }
        }
        _ => {
            let (at, insert) = (ops.offset(), ops.bytes());
            splices.push((at, insert));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let text = if mode & 1 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        let base = PEMS[usize::from(mode >> 1) & 3];
        let mut doc = key_file(base);
        let mut ops = Ops(rest);
        let mut splices = Vec::new();
        let mut edits = 0;
        while !ops.0.is_empty() && edits < 16 {
            edit(&mut doc, &mut ops, &mut splices);
            edits += 1;
        }
        let mut text = doc.to_string();
        for (at, insert) in splices {
            text = edit_bytes(&text, |b| {
                let i = at.min(b.len());
                b.splice(i..i, insert);
            });
        }
        if edits == 0 && (base == KEY_2048 || base == KEY_2048_PKCS1) {
            let key = service_account::parse(&text).expect("the fixture key file is accepted");
            assert_eq!((key.client_email.as_str(), key.private_key_id.as_str(), key.bits()), (EMAIL, KID, 2048));
        }
        text
    };

    let doc: Option<Value> = serde_json::from_str(&text).ok();
    let field = |name: &str| doc.as_ref().and_then(|d| d.get(name)).and_then(Value::as_str).unwrap_or("");
    let (private_key, kind) = (field("private_key"), field("type"));

    match service_account::parse(&text) {
        Ok(key) => {
            let email = &key.client_email;
            assert!(email.len() <= 254 && email.contains('@') && email.bytes().all(|b| b.is_ascii_graphic()), "{email:?}");
            let id = &key.private_key_id;
            assert!(id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()), "{id:?}");
            assert!((2048..=4096).contains(&key.bits()), "a {}-bit key", key.bits());
            assert_eq!(kind, "service_account");
            assert_eq!((email.as_str(), id.as_str()), (field("client_email"), field("private_key_id")));
            let shown = format!("{key:?}");
            assert_no_key(&shown, private_key, &[email, id]);
        }
        Err(error) => {
            assert!(error.len() <= MAX_ERROR_BYTES, "an error of {} bytes", error.len());
            assert!(!error.chars().any(char::is_control), "an error with control characters: {error:?}");
            // A short `type` is named, in backquotes.
            assert_no_key(&error, private_key, &[kind, &type_message(&format!("`{kind}`"))]);
        }
    }
});

/// Fails if `shown` holds a line of a fixture PEM, or 16 characters of `private_key` that are
/// neither fixed text nor part of one of `echoed` (fields the output may name).
fn assert_no_key(shown: &str, private_key: &str, echoed: &[&str]) {
    for pem in PEMS {
        for line in pem.lines().filter(|l| !l.is_empty()) {
            assert!(!shown.contains(line), "a key line in {shown:?}");
        }
    }
    // By hashing: the key may be 40 KB, and a substring search per window is slow under the
    // fuzzer's comparison hooks.
    let in_shown: std::collections::HashSet<&str> = windows(shown).collect();
    for window in windows(private_key) {
        if !in_shown.contains(window) {
            continue;
        }
        let fixed = messages().iter().any(|m| m.contains(window));
        if !fixed && !echoed.iter().any(|e| e.contains(window)) {
            panic!("16 characters of the private key, {window:?}, in {shown:?}");
        }
    }
}

/// Every run of 16 characters of `text`.
fn windows(text: &str) -> impl Iterator<Item = &str> {
    let starts: Vec<usize> = text.char_indices().map(|(i, _)| i).chain([text.len()]).collect();
    (0..starts.len().saturating_sub(16)).map(move |i| &text[starts[i]..starts[i + 16]])
}
