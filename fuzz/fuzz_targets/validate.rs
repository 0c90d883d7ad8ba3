//! Name validation: `validate::vault_path`, `validate::gcp_secret_id`, `validate::aws_secret_id`,
//! `validate::field`, `VersionSel::parse`, `backend::validate` and `backend::validate_version`,
//! and the request built from an accepted name (for AWS: signed, the name in its JSON body).
//!
//! Input: byte 0 picks the field (0: the default `value`, 1: `user`, else the second half
//! of the text after a NUL); the rest is the name (lossy UTF-8).
//!
//! Invariants beyond "no panic": whatever is accepted meets the documented grammar (never a
//! `.`/`..`/empty segment, never a character that would need URL escaping), a request built
//! from it has no traversal or header-splitting bytes; a parsed version round-trips to the
//! same text and any positive `u64` round-trips through its text; errors are bounded and
//! printable, and never show a name longer than the shortened form. AWS ids and stages parse
//! to the text they came from (`stage:` dropped) and are refused by Vault and GCP, as numbers
//! are by AWS, before any request is built.
#![no_main]

use edge_secrets_guest::auth::{AuthSpec, Presented};
use edge_secrets_guest::backend;
use edge_secrets_guest::config::{BackendSpec, TierSpec};
use edge_secrets_guest::http::BaseUrl;
use edge_secrets_guest::secret::SecretBytes;
use edge_secrets_guest::sigv4::Credentials;
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
    let aws = validate::aws_secret_id(name);
    if aws.is_ok() {
        assert!((1..=validate::AWS_SECRET_ID_MAX).contains(&name.len()));
        assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b"/_+=.@:-".contains(&b)), "accepted {name:?}");
    }
    for result in [&vault, &gcp, &aws, &field_ok] {
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
    let aws_spec = BackendSpec::Aws { region: "us-east-1".into() };
    let a = backend::validate(&aws_spec, name, field);
    assert_eq!(a.is_ok(), aws.is_ok() && field_ok.is_ok());
    if v.is_ok() {
        check_request(vault_spec, name);
    }
    if g.is_ok() {
        check_request(gcp_spec, name);
    }
    if a.is_ok() {
        check_aws_request(aws_spec, name);
    }

    let parsed = VersionSel::parse(Some(&text));
    match &parsed {
        Ok(VersionSel::Latest) => assert_eq!(text, "latest"),
        Ok(VersionSel::Pinned(n)) => assert!(*n > 0 && n.to_string() == text, "{text:?} parsed as {n}"),
        Ok(VersionSel::Id(id)) => {
            assert_eq!(id, &text);
            assert!((32..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'), "id {id:?}");
        }
        Ok(VersionSel::Stage(label)) => {
            let prefixed = format!("stage:{label}");
            assert!(text == prefixed || (text == *label && ["AWSCURRENT", "AWSPREVIOUS", "AWSPENDING"].contains(&text.as_ref())), "{text:?} parsed as stage {label:?}");
            assert!((1..=256).contains(&label.len()));
        }
        Err(e) => check_error(e),
    }
    if let Ok(version) = &parsed {
        // Shared-state ids: one per selector. A stage's text parses back to it.
        if let VersionSel::Stage(_) | VersionSel::Latest | VersionSel::Pinned(_) = version {
            assert_eq!(VersionSel::parse(Some(&version.text())).as_ref(), Ok(version), "{:?} does not round-trip", version.text());
        }
        // Every backend takes exactly its own kinds, and the request refuses the others too.
        let numbered = matches!(version, VersionSel::Latest | VersionSel::Pinned(_));
        let aws_kind = !matches!(version, VersionSel::Pinned(_));
        for (spec, ok) in [
            (BackendSpec::Vault { mount: "secret".into(), namespace: None }, numbered),
            (BackendSpec::Gcp { project: "p-1".into() }, numbered),
            (BackendSpec::Aws { region: "us-east-1".into() }, aws_kind),
        ] {
            match backend::validate_version(&spec, version) {
                Ok(()) => assert!(ok, "{} accepted {version:?}", spec.kind()),
                Err(e) => {
                    assert!(!ok, "{} refused {version:?}", spec.kind());
                    check_error(&e);
                }
            }
        }
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

/// 2015-08-30T12:36:00Z.
const WALL_MS: u64 = 1_440_938_160_000;

fn check_request(backend: BackendSpec, name: &str) {
    let tier = TierSpec { backend, url: BaseUrl::parse("https://h:8200/pfx").unwrap(), auth: AuthSpec::Token { key: "t".into() } };
    let token = SecretBytes::new(b"s.tok".to_vec());
    for version in [VersionSel::Latest, VersionSel::Pinned(3)] {
        let request = backend::request(&tier, Presented::Token(&token), name, &version, WALL_MS).expect("a validated read builds");
        let path = request.path_and_query.split('?').next().unwrap();
        assert!(request.path_and_query.matches('?').count() <= 1);
        assert!(!path.split('/').skip(1).any(|s| s.is_empty() || s == "." || s == ".."), "{path:?}");
        assert!(!request.path_and_query.bytes().any(|b| b.is_ascii_control() || b"# %\\".contains(&b)));
        assert_eq!(request.authority, "h:8200");
    }
}

fn check_aws_request(backend: BackendSpec, name: &str) {
    let auth = AuthSpec::AwsKeys { access_key_id_key: "k".into(), secret_access_key_key: "s".into(), session_token_key: None };
    let tier = TierSpec { backend, url: BaseUrl::parse("https://h:8443/pfx").unwrap(), auth };
    // AWS's published example key pair: not a credential.
    let keys = Credentials {
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
        session_token: None,
    };
    let id = VersionSel::Id("a1b2c3d4-5678-90ab-cdef-EXAMPLE11111".into());
    for version in [VersionSel::Latest, VersionSel::Stage("AWSPREVIOUS".into()), id] {
        let request = backend::request(&tier, Presented::Aws(&keys), name, &version, WALL_MS).expect("a validated read builds");
        // The name travels in the body only: the path is fixed, whatever the name holds.
        assert_eq!((request.authority.as_str(), request.path_and_query.as_str()), ("h:8443", "/pfx/"));
        let body: serde_json::Value = serde_json::from_slice(&request.body).expect("the body is JSON");
        assert_eq!(body["SecretId"].as_str(), Some(name), "the body names another secret");
        assert!(request.headers.iter().all(|(_, v)| !v.iter().any(u8::is_ascii_control)), "a header with control bytes");
        assert!(request.headers.iter().any(|(n, v)| n == "authorization" && v.starts_with(b"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/secretsmanager/aws4_request, ")));
    }
    let pinned = backend::request(&tier, Presented::Aws(&keys), name, &VersionSel::Pinned(3), WALL_MS);
    assert!(matches!(pinned, Err(Error::InvalidRequest(_))), "AWS was asked for a number");
}

fn check_error(error: &Error) {
    let shown = error.to_string();
    assert!(matches!(error, Error::InvalidRequest(_)));
    // 64 bytes of the name, escaped (at most 10 bytes per char as `\u{10ffff}`), plus text.
    assert!(shown.len() <= 64 * 10 + 200, "an error of {} bytes", shown.len());
    assert!(!shown.chars().any(char::is_control), "{shown:?}");
}
