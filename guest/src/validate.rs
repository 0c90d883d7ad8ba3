//! Input validation, run before any request leaves the component.
//!
//! Each backend has its own name grammar; anything outside it is rejected
//! with `invalid-request` and zero requests sent. The grammars are
//! deliberately narrower than what the backends accept where the extra
//! characters would need URL escaping: a name that needs escaping is far more
//! often an injection attempt (`../`, `?`, `#`, CR/LF) than a real secret.

use crate::prelude::*;
use crate::error::Error;

/// Longest Vault path accepted.
pub const VAULT_PATH_MAX: usize = 512;
/// Longest Vault path segment accepted.
pub const VAULT_SEGMENT_MAX: usize = 255;
/// Longest field name accepted.
pub const FIELD_MAX: usize = 256;

/// Which version a request asks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VersionSel {
    /// The newest version (AWS: the `AWSCURRENT` stage).
    Latest,
    /// A numbered version (Vault, GCP): a positive integer.
    Pinned(u64),
    /// An opaque version id that names one immutable version (AWS `VersionId`).
    Id(String),
    /// A label that moves between versions (AWS `VersionStage`): cached like
    /// `latest`, never like a pinned version.
    Stage(String),
}

/// AWS's own staging labels, accepted without the `stage:` prefix.
const AWS_STAGES: &[&str] = &["AWSCURRENT", "AWSPREVIOUS", "AWSPENDING"];

impl VersionSel {
    /// Parses `latest`; a positive decimal integer without sign or leading
    /// zeros (so each version has one spelling and one cache key); an AWS
    /// version id (32–64 of `[A-Za-z0-9-]`); or a stage: `AWSCURRENT`,
    /// `AWSPREVIOUS`, `AWSPENDING` or `stage:<label>` (1–256 of
    /// `[A-Za-z0-9_.+=@:-]`). Which of these a backend takes is
    /// [`crate::backend::validate`]'s business.
    pub fn parse(text: Option<&str>) -> Result<VersionSel, Error> {
        let Some(text) = text else {
            return Ok(VersionSel::Latest);
        };
        if text == "latest" {
            return Ok(VersionSel::Latest);
        }
        if AWS_STAGES.contains(&text) {
            return Ok(VersionSel::Stage(text.to_string()));
        }
        if let Some(label) = text.strip_prefix("stage:") {
            let ok = (1..=256).contains(&label.len())
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.+=@:-".contains(&b));
            if !ok {
                return Err(Error::InvalidRequest(format!(
                    "a stage label must be 1-256 of [A-Za-z0-9_.+=@:-], got {:?}",
                    shorten(label)
                )));
            }
            return Ok(VersionSel::Stage(label.to_string()));
        }
        let digits_only = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
        // u64::MAX has 20 digits: a longer text cannot fit, a 20-digit one may (the parse
        // below says). Capping at 19 refused versions 10^19..=u64::MAX, which the backends
        // can report (Vault's metadata version is a u64), so they could not be read again.
        if digits_only && !text.starts_with('0') && text.len() <= 20 {
            return text
                .parse::<u64>()
                .map(VersionSel::Pinned)
                .map_err(|_| Error::InvalidRequest("version is out of range".into()));
        }
        // A 32-digit id is an id (AWS accepts client tokens of digits), not a number.
        let id_like = (32..=64).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if id_like {
            return Ok(VersionSel::Id(text.to_string()));
        }
        Err(Error::InvalidRequest(format!(
            "version must be `latest`, a positive integer, an AWS version id or stage, got {:?}",
            shorten(text)
        )))
    }

    /// Whether the version can never change under this selector (a number
    /// or an id): cached for `cache.pinned_ttl_ms`.
    pub fn is_pinned(&self) -> bool {
        matches!(self, VersionSel::Pinned(_) | VersionSel::Id(_))
    }

    /// Whether this is `latest`: the only selector fallback tiers answer
    /// (versions, ids and stages are each backend's own).
    pub fn is_latest(&self) -> bool {
        matches!(self, VersionSel::Latest)
    }

    /// One spelling per selector, distinct across kinds (shared-state ids).
    pub fn text(&self) -> String {
        match self {
            VersionSel::Latest => "latest".to_string(),
            VersionSel::Pinned(n) => n.to_string(),
            VersionSel::Id(id) => format!("id:{id}"),
            VersionSel::Stage(label) => format!("stage:{label}"),
        }
    }
}

/// Checks a GCP secret id: `[A-Za-z0-9_-]{1,255}`.
pub fn gcp_secret_id(name: &str) -> Result<(), Error> {
    let ok = (1..=255).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidRequest(format!(
            "GCP secret id must match [A-Za-z0-9_-]{{1,255}}, got {:?}",
            shorten(name)
        )))
    }
}

/// Longest AWS secret id accepted: AWS's own limit for `SecretId`.
pub const AWS_SECRET_ID_MAX: usize = 2048;

/// Checks an AWS Secrets Manager secret id: a name or an ARN, 1..=2048 of
/// `[A-Za-z0-9/_+=.@:-]`. Names may hold ASCII letters, digits and `/_+=.@-`
/// (AWS's name grammar); `:` is added for ARNs
/// (`arn:aws:secretsmanager:region:account:secret:name-AbCdEf`). The id travels
/// in the JSON body, never in the URL, so `/` needs no escaping and cannot
/// change which endpoint is called; spaces, quotes and control characters,
/// which no AWS name holds, are still refused.
pub fn aws_secret_id(name: &str) -> Result<(), Error> {
    let ok = (1..=AWS_SECRET_ID_MAX).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"/_+=.@:-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidRequest(format!(
            "AWS secret id must be a name or ARN of 1-2048 [A-Za-z0-9/_+=.@:-], got {:?}",
            shorten(name)
        )))
    }
}

/// Checks a Vault KV path such as `app/db`: segments of `[A-Za-z0-9._@+=,:~-]`,
/// no empty, `.` or `..` segments, bounded length. Excludes `%`, `?`, `#`,
/// spaces, backslashes and control characters (CR/LF among them).
pub fn vault_path(path: &str) -> Result<(), Error> {
    let fail = |why: &str| {
        Err(Error::InvalidRequest(format!(
            "Vault path {:?} {why}",
            shorten(path)
        )))
    };
    if path.is_empty() {
        return fail("is empty");
    }
    if path.len() > VAULT_PATH_MAX {
        return fail("is longer than 512 bytes");
    }
    for segment in path.split('/') {
        if segment.is_empty() {
            return fail("has an empty segment");
        }
        if segment == "." || segment == ".." {
            return fail("has a `.` or `..` segment");
        }
        if segment.len() > VAULT_SEGMENT_MAX {
            return fail("has a segment longer than 255 bytes");
        }
        if let Some(c) = segment.chars().find(|c| !is_vault_path_char(*c)) {
            return if c.is_control() {
                fail("contains a control character")
            } else {
                fail(&format!("contains the character {c:?}"))
            };
        }
    }
    Ok(())
}

fn is_vault_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._@+=,:~-".contains(c)
}

/// Checks a field name (Vault map key): 1..=256 bytes, no control characters.
/// Fields never go into a URL, only into a JSON lookup.
pub fn field(field: &str) -> Result<(), Error> {
    if field.is_empty() || field.len() > FIELD_MAX || field.chars().any(char::is_control) {
        return Err(Error::InvalidRequest(format!(
            "field must be 1..=256 bytes without control characters, got {:?}",
            shorten(field)
        )));
    }
    Ok(())
}

/// Caller input echoed in an error is truncated so a huge name cannot bloat
/// errors or logs.
pub fn shorten(text: &str) -> String {
    const MAX: usize = 64;
    if text.len() <= MAX {
        return text.to_string();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_latest_integers_ids_and_stages_only() {
        assert_eq!(VersionSel::parse(None).unwrap(), VersionSel::Latest);
        assert_eq!(VersionSel::parse(Some("latest")).unwrap(), VersionSel::Latest);
        assert_eq!(VersionSel::parse(Some("7")).unwrap(), VersionSel::Pinned(7));
        let uuid = "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111";
        assert_eq!(VersionSel::parse(Some(uuid)).unwrap(), VersionSel::Id(uuid.into()));
        let digits = "1".repeat(32);
        assert_eq!(VersionSel::parse(Some(&digits)).unwrap(), VersionSel::Id(digits.clone()));
        assert_eq!(VersionSel::parse(Some("AWSPREVIOUS")).unwrap(), VersionSel::Stage("AWSPREVIOUS".into()));
        assert_eq!(VersionSel::parse(Some("stage:blue-1")).unwrap(), VersionSel::Stage("blue-1".into()));
        let bad_ids = ["a".repeat(31), "a".repeat(65), format!("{}_", "a".repeat(31))];
        for bad in ["0", "-1", "+1", "01", "1.0", "", "LATEST", " 1", "99999999999999999999", "stage:", "stage:a b", "AWSCURRENTX"] {
            assert!(VersionSel::parse(Some(bad)).is_err(), "{bad:?} accepted");
        }
        for bad in &bad_ids {
            assert!(VersionSel::parse(Some(bad)).is_err(), "{bad:?} accepted");
        }
        assert!(VersionSel::parse(Some(&format!("stage:{}", "s".repeat(257)))).is_err());
        assert!(VersionSel::Id(uuid.into()).is_pinned() && !VersionSel::Stage("x".into()).is_pinned());
        let texts: Vec<String> = [VersionSel::Latest, VersionSel::Pinned(1), VersionSel::Id(uuid.into()), VersionSel::Stage("latest".into())]
            .iter()
            .map(VersionSel::text)
            .collect();
        assert_eq!(texts, ["latest", "1", &format!("id:{uuid}"), "stage:latest"]);
    }

    #[test]
    fn every_positive_u64_version_round_trips() {
        // Found by fuzz/fuzz_targets/validate.rs: 20-digit versions were refused.
        for n in [1, 9_999_999_999_999_999_999, 10_000_000_000_000_000_000, 16_298_437_445_050_935_747, u64::MAX] {
            assert_eq!(VersionSel::parse(Some(&n.to_string())).unwrap(), VersionSel::Pinned(n), "{n}");
        }
        let err = VersionSel::parse(Some("18446744073709551616")).unwrap_err();
        assert_eq!(err, Error::InvalidRequest("version is out of range".into()));
        assert!(VersionSel::parse(Some("100000000000000000000")).is_err(), "21 digits");
    }

    #[test]
    fn gcp_ids_follow_the_grammar() {
        gcp_secret_id("db-password_2").unwrap();
        gcp_secret_id(&"a".repeat(255)).unwrap();
        for bad in ["", "a/b", "a.b", "a b", "ä", "x?y", "x#y", "x%2F"] {
            assert!(gcp_secret_id(bad).is_err(), "{bad:?} accepted");
        }
        assert!(gcp_secret_id(&"a".repeat(256)).is_err());
    }

    #[test]
    fn aws_ids_are_names_or_arns() {
        aws_secret_id("prod/db-password_2+x=y.z@w").unwrap();
        aws_secret_id("arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf").unwrap();
        aws_secret_id(&"a".repeat(AWS_SECRET_ID_MAX)).unwrap();
        for bad in ["", "a b", "a\"b", "a\nb", "ä", "x?y", "x#y", "x%2F", "a,b"] {
            assert!(aws_secret_id(bad).is_err(), "{bad:?} accepted");
        }
        assert!(aws_secret_id(&"a".repeat(AWS_SECRET_ID_MAX + 1)).is_err());
    }

    #[test]
    fn vault_paths_reject_traversal_and_url_metacharacters() {
        vault_path("app/db").unwrap();
        vault_path("team-a/svc.api/key_1").unwrap();
        for bad in [
            "", "/app", "app/", "app//db", "../sys/seal", "app/../x", "app/./x", "a%2e", "a?b",
            "a#b", "a\r\nX-Injected: 1", "a\0b", "a b", "a\\b",
        ] {
            assert!(vault_path(bad).is_err(), "{bad:?} accepted");
        }
        assert!(vault_path(&"a".repeat(256)).is_err());
        assert!(vault_path(&["a"; 300].join("/")).is_err());
    }

    #[test]
    fn fields_reject_control_characters_and_empty() {
        field("value").unwrap();
        field("some key").unwrap();
        assert!(field("").is_err());
        assert!(field("a\nb").is_err());
        assert!(field(&"f".repeat(257)).is_err());
    }

    #[test]
    fn shorten_respects_char_boundaries() {
        let s = "é".repeat(100);
        assert!(shorten(&s).len() < s.len());
    }
}
