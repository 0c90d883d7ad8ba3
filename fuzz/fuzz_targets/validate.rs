//! Name validation: `validate::vault_path`, `validate::gcp_secret_id`, `validate::field`,
//! `VersionSel::parse` and `backend::validate`, and the request built from an accepted name.
//!
//! Input: byte 0 picks the field (0: the default `value`, 1: `user`, else the second half
//! of the text after a NUL); the rest is the name (lossy UTF-8).
//!
//! Invariants beyond "no panic": whatever is accepted meets the documented grammar (never a
//! `.`/`..`/empty segment, never a character that would need URL escaping), a request built
//! from it has no traversal or header-splitting bytes; a parsed version round-trips to the
//! same text and any positive `u64` round-trips through its text; errors are bounded and
//! printable, and never show a name longer than the shortened form.
#![no_main]

use edge_secrets_guest::backend;
use edge_secrets_guest::config::{BackendSpec, TierSpec};
use edge_secrets_guest::http::BaseUrl;
use edge_secrets_guest::secret::SecretBytes;
use edge_secrets_guest::validate::{self, VersionSel};
use edge_secrets_guest::Error;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    let (name, field) = match which {
        0 => (&*text, backend::DEFAULT_FIELD),
        1 => (&*text, "user"),
        _ => text.split_once('\0').unwrap_or((&*text, "")),
    };

    let vault = validate::vault_path(name);
    if vault.is_ok() {
        check_vault_grammar(name);
    }
    let gcp = validate::gcp_secret_id(name);
    if gcp.is_ok() {
        assert!((1..=255).contains(&name.len()));
        assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
    }
    let field_ok = validate::field(field);
    if field_ok.is_ok() {
        assert!((1..=validate::FIELD_MAX).contains(&field.len()) && !field.chars().any(char::is_control));
    }
    for result in [&vault, &gcp, &field_ok] {
        if let Err(e) = result {
            check_error(e);
        }
    }

    let vault_spec = BackendSpec::Vault { mount: "secret".into(), namespace: Some("team-a".into()) };
    let gcp_spec = BackendSpec::Gcp { project: "p-1".into() };
    let v = backend::validate(&vault_spec, name, field);
    assert_eq!(v.is_ok(), vault.is_ok() && field_ok.is_ok());
    let g = backend::validate(&gcp_spec, name, field);
    assert_eq!(g.is_ok(), gcp.is_ok() && field == backend::DEFAULT_FIELD);
    if v.is_ok() {
        check_request(vault_spec, name);
    }
    if g.is_ok() {
        check_request(gcp_spec, name);
    }

    match VersionSel::parse(Some(&text)) {
        Ok(VersionSel::Latest) => assert_eq!(text, "latest"),
        Ok(VersionSel::Pinned(n)) => assert!(n > 0 && n.to_string() == text, "{text:?} parsed as {n}"),
        Err(e) => check_error(&e),
    }
    // Any version a backend can report must be one a caller can ask for again.
    if let Some(bytes) = rest.first_chunk::<8>() {
        let n = u64::from_le_bytes(*bytes);
        if n > 0 {
            assert_eq!(VersionSel::parse(Some(&n.to_string())).ok(), Some(VersionSel::Pinned(n)), "version {n}");
        }
    }
});

fn check_vault_grammar(path: &str) {
    assert!(!path.is_empty() && path.len() <= validate::VAULT_PATH_MAX);
    for segment in path.split('/') {
        assert!(!segment.is_empty() && segment != "." && segment != "..", "accepted {path:?}");
        assert!(segment.len() <= validate::VAULT_SEGMENT_MAX);
        assert!(segment.bytes().all(|b| b.is_ascii_alphanumeric() || b"._@+=,:~-".contains(&b)), "accepted {path:?}");
    }
}

fn check_request(backend: BackendSpec, name: &str) {
    let tier = TierSpec { backend, url: BaseUrl::parse("https://h:8200/pfx").unwrap(), token_key: "t".into() };
    let token = SecretBytes::new(b"s.tok".to_vec());
    for version in [VersionSel::Latest, VersionSel::Pinned(3)] {
        let request = backend::request(&tier, &token, name, version);
        let path = request.path_and_query.split('?').next().unwrap();
        assert!(request.path_and_query.matches('?').count() <= 1);
        assert!(!path.split('/').skip(1).any(|s| s.is_empty() || s == "." || s == ".."), "{path:?}");
        assert!(!request.path_and_query.bytes().any(|b| b.is_ascii_control() || b"# %\\".contains(&b)));
        assert_eq!(request.authority, "h:8200");
    }
}

fn check_error(error: &Error) {
    let shown = error.to_string();
    assert!(matches!(error, Error::InvalidRequest(_)));
    // 64 bytes of the name, escaped (at most 10 bytes per char as `\u{10ffff}`), plus text.
    assert!(shown.len() <= 64 * 10 + 200, "an error of {} bytes", shown.len());
    assert!(!shown.chars().any(char::is_control), "{shown:?}");
}
