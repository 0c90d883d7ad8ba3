//! Backends: for each, how a read becomes an HTTP request and how the answer
//! becomes a value or a classified failure. Pure functions, no I/O.

use crate::prelude::*;

pub mod aws;
pub mod azure;
pub mod gcp;
pub mod vault;
mod wire;

pub use wire::{bearer, json_object, reason_of};

use core::fmt;

use crate::auth::Presented;
use crate::config::{BackendSpec, TierSpec};
use crate::error::Error;
use crate::http::{HttpRequest, HttpResponse};
use crate::secret::SecretBytes;
use crate::validate::{self, VersionSel};

/// The field read when a request names none.
pub const DEFAULT_FIELD: &str = "value";

/// A failed attempt, judged: what to tell the caller, and whether trying
/// again (and counting it against the breaker) makes sense.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub error: Error,
    /// Timeouts, connection errors, 5xx and 429: worth a retry, and a sign
    /// the backend is unhealthy.
    pub transient: bool,
    /// The backend's own `Retry-After`, in milliseconds.
    pub retry_after_ms: Option<u64>,
}

impl Failure {
    /// A failure that retrying cannot fix.
    pub fn permanent(error: Error) -> Failure {
        Failure { error, transient: false, retry_after_ms: None }
    }

    /// A failure that may pass.
    pub fn transient(error: Error, retry_after_ms: Option<u64>) -> Failure {
        Failure { error, transient: true, retry_after_ms }
    }
}

/// What one successful fetch returned: a version and its content.
pub struct Fetched {
    /// The concrete version.
    pub version: String,
    content: Content,
}

enum Content {
    /// Vault: a map of fields (non-string JSON values kept as their JSON text).
    Fields(Vec<(String, SecretBytes)>),
    /// GCP, AWS `SecretBinary`: one opaque payload.
    Bytes(SecretBytes),
    /// AWS `SecretString`, Azure `value`: the whole text, and — when it is a JSON object —
    /// its keys as fields, parsed only when a field is asked for.
    Text(SecretBytes),
}

impl Fetched {
    /// A map of fields.
    pub fn fields(version: String, fields: Vec<(String, SecretBytes)>) -> Fetched {
        Fetched { version, content: Content::Fields(fields) }
    }

    /// An opaque payload.
    pub fn bytes(version: String, bytes: SecretBytes) -> Fetched {
        Fetched { version, content: Content::Bytes(bytes) }
    }

    /// A text that is itself the value, and may be a JSON object of fields.
    pub fn text(version: String, text: SecretBytes) -> Fetched {
        Fetched { version, content: Content::Text(text) }
    }

    /// The value of one field.
    pub fn select(&self, field: &str) -> Result<SecretBytes, Error> {
        match &self.content {
            Content::Text(text) if field == DEFAULT_FIELD => Ok(text.clone()),
            Content::Text(text) => json_field(text, field),
            Content::Fields(fields) => fields
                .iter()
                .find(|(name, _)| name == field)
                .map(|(_, value)| value.clone())
                .ok_or_else(|| Error::NotFound(format!("field {:?} is not in the secret", validate::shorten(field)))),
            Content::Bytes(bytes) if field == DEFAULT_FIELD => Ok(bytes.clone()),
            Content::Bytes(_) => Err(Error::NotFound(format!("field {:?} is not in the secret", validate::shorten(field)))),
        }
    }
}

/// Field `field` of a text holding a JSON object, as Vault maps are read:
/// strings raw, other values as their JSON text. Errors name the field only.
fn json_field(text: &SecretBytes, field: &str) -> Result<SecretBytes, Error> {
    let missing = || Error::NotFound(format!("field {:?} is not in the secret", validate::shorten(field)));
    match serde_json::from_slice::<serde_json::Value>(text.expose()) {
        Ok(serde_json::Value::Object(map)) => match map.get(field) {
            Some(serde_json::Value::String(s)) => Ok(SecretBytes::new(s.as_bytes().to_vec())),
            Some(other) => Ok(SecretBytes::new(other.to_string().into_bytes())),
            None => Err(missing()),
        },
        _ => Err(Error::NotFound(format!(
            "field {:?} is not in the secret (its text is not a JSON object)",
            validate::shorten(field)
        ))),
    }
}

impl fmt::Debug for Fetched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = match &self.content {
            Content::Fields(fields) => fields.iter().map(|(n, _)| n.as_str()).collect(),
            Content::Bytes(_) | Content::Text(_) => vec![DEFAULT_FIELD],
        };
        f.debug_struct("Fetched").field("version", &self.version).field("fields", &names).finish()
    }
}

/// Checks a request against the backend's grammar before anything is sent.
/// The version is checked by [`validate_version`].
pub fn validate(spec: &BackendSpec, name: &str, field: &str) -> Result<(), Error> {
    validate::field(field)?;
    match spec {
        BackendSpec::Vault { .. } => validate::vault_path(name),
        // Any field: it names a key of a JSON `SecretString`, read after the fetch.
        BackendSpec::Aws { .. } => validate::aws_secret_id(name),
        // Any field, as for AWS: the keys of a `value` holding a JSON object.
        BackendSpec::Azure => azure::validate_name(name),
        BackendSpec::Gcp { .. } => {
            validate::gcp_secret_id(name)?;
            if field != DEFAULT_FIELD {
                return Err(Error::InvalidRequest(format!(
                    "GCP secrets have no fields; only `{DEFAULT_FIELD}` can be read"
                )));
            }
            Ok(())
        }
    }
}

/// Checks that the backend has versions of this kind: numbers for Vault and
/// GCP; version ids and stages for AWS; 32-hex version ids for Azure.
/// `latest` everywhere.
pub fn validate_version(spec: &BackendSpec, version: &VersionSel) -> Result<(), Error> {
    match (spec, version) {
        (_, VersionSel::Latest)
        | (BackendSpec::Vault { .. } | BackendSpec::Gcp { .. }, VersionSel::Pinned(_))
        | (BackendSpec::Aws { .. }, VersionSel::Id(_) | VersionSel::Stage(_)) => Ok(()),
        (BackendSpec::Aws { .. }, VersionSel::Pinned(_)) => Err(Error::InvalidRequest(aws::PINNED_REFUSED.into())),
        (BackendSpec::Azure, VersionSel::Id(id)) if azure::is_version_id(id) => Ok(()),
        (BackendSpec::Azure, _) => Err(Error::InvalidRequest(azure::VERSION_REFUSED.into())),
        (other, VersionSel::Id(_) | VersionSel::Stage(_)) => Err(Error::InvalidRequest(format!(
            "{} versions are positive integers or `latest`; version ids and stages are AWS's",
            other.kind()
        ))),
    }
}

/// The HTTP request reading `name` at `version`, presenting `presented`
/// (AWS signs at `wall_ms`, Unix ms). The name must be validated; the version
/// is checked here too, so that no backend is ever asked (and no answer
/// cached) for a kind of version it does not have.
pub fn request(tier: &TierSpec, presented: Presented<'_>, name: &str, version: &VersionSel, wall_ms: u64) -> Result<HttpRequest, Error> {
    validate_version(&tier.backend, version)?;
    match (&tier.backend, presented) {
        (BackendSpec::Aws { region }, Presented::Aws(keys)) => aws::request(&tier.url, region, keys, name, version, wall_ms),
        (BackendSpec::Vault { mount, namespace }, Presented::Token(token)) => {
            Ok(vault::request(&tier.url, mount, namespace.as_deref(), token, name, version))
        }
        (BackendSpec::Gcp { project }, Presented::Token(token)) => Ok(gcp::request(&tier.url, project, token, name, version)),
        (BackendSpec::Azure, Presented::Token(token)) => Ok(azure::request(&tier.url, token, name, version)),
        (backend, _) => Err(Error::InvalidRequest(format!("the {} backend cannot use this credential", backend.kind()))),
    }
}

/// Judges a complete response to a read of `name` at `version`. Reads only
/// the seconds form of `Retry-After`; [`response_at`] reads both.
pub fn response(spec: &BackendSpec, name: &str, version: &VersionSel, response: &HttpResponse) -> Result<Fetched, Failure> {
    judge(spec, name, version, response, response.retry_after_ms())
}

/// [`response`], with `Retry-After` dates compared with `now_wall_ms` (Unix ms).
pub fn response_at(
    spec: &BackendSpec,
    name: &str,
    version: &VersionSel,
    response: &HttpResponse,
    now_wall_ms: u64,
) -> Result<Fetched, Failure> {
    judge(spec, name, version, response, response.retry_after_ms_at(now_wall_ms))
}

fn judge(spec: &BackendSpec, name: &str, version: &VersionSel, response: &HttpResponse, retry_after: Option<u64>) -> Result<Fetched, Failure> {
    let fetched = match spec {
        BackendSpec::Vault { .. } => vault::response(name, response, retry_after),
        BackendSpec::Gcp { .. } => gcp::response(name, response, retry_after),
        BackendSpec::Aws { .. } => aws::response(name, response, retry_after),
        BackendSpec::Azure => azure::response(name, response, retry_after),
    }?;
    // A pinned read is cached for long under its version: never under the wrong one.
    let asked = match version {
        VersionSel::Pinned(n) => Some(n.to_string()),
        VersionSel::Id(id) => Some(id.clone()),
        VersionSel::Latest | VersionSel::Stage(_) => None,
    };
    if let Some(asked) = asked {
        if fetched.version != asked {
            return Err(Failure::permanent(Error::backend(
                Some(response.status),
                format!(
                    "asked for version {} but the backend returned version {}",
                    validate::shorten(&asked),
                    validate::shorten(&fetched.version)
                ),
            )));
        }
    }
    Ok(fetched)
}

/// Classification shared by both backends for statuses their error bodies
/// did not settle: 429 throttles, 5xx and 408 pass, the rest is permanent.
pub fn by_status(status: u16, reason: String, retry_after_ms: Option<u64>) -> Failure {
    match status {
        429 => Failure::transient(Error::RateLimited { retry_after_ms }, retry_after_ms),
        408 | 500..=599 => Failure::transient(Error::backend(Some(status), reason), retry_after_ms),
        _ => Failure::permanent(Error::backend(Some(status), reason)),
    }
}

/// A `not-found` message naming the secret.
pub fn not_found(name: &str) -> Error {
    Error::NotFound(format!("secret {:?} (or that version) does not exist", validate::shorten(name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetched_debug_shows_field_names_not_values() {
        let f = Fetched::fields("3".into(), vec![("password".into(), SecretBytes::new(b"pa55w0rd".to_vec()))]);
        let shown = format!("{f:?}");
        assert!(shown.contains("password") && !shown.contains("pa55w0rd"), "{shown}");
    }

    #[test]
    fn select_reads_fields_and_rejects_missing_ones() {
        let f = Fetched::fields("1".into(), vec![("user".into(), SecretBytes::new(b"u".to_vec()))]);
        assert_eq!(f.select("user").unwrap().expose(), b"u");
        assert!(matches!(f.select("value"), Err(Error::NotFound(_))));
        let g = Fetched::bytes("1".into(), SecretBytes::new(vec![0, 1]));
        assert_eq!(g.select("value").unwrap().expose(), &[0, 1]);
    }

    #[test]
    fn gcp_requests_accept_only_the_default_field() {
        let gcp = BackendSpec::Gcp { project: "p".into() };
        validate(&gcp, "db", "value").unwrap();
        assert!(matches!(validate(&gcp, "db", "user"), Err(Error::InvalidRequest(_))));
        assert!(matches!(validate(&gcp, "a/b", "value"), Err(Error::InvalidRequest(_))));
    }

    #[test]
    fn a_pinned_read_answered_with_another_version_is_rejected() {
        let vault = BackendSpec::Vault { mount: "secret".into(), namespace: None };
        let body = br#"{"data":{"data":{"value":"v"},"metadata":{"version":5}}}"#.to_vec();
        let ok = HttpResponse { status: 200, headers: vec![], body };
        assert_eq!(response(&vault, "x", &VersionSel::Pinned(5), &ok).unwrap().version, "5");
        assert_eq!(response(&vault, "x", &VersionSel::Latest, &ok).unwrap().version, "5");
        let wrong = response(&vault, "x", &VersionSel::Pinned(4), &ok).unwrap_err();
        assert!(!wrong.transient);
        assert_eq!(wrong.error, Error::backend(Some(200), "asked for version 4 but the backend returned version 5"));
    }

    #[test]
    fn versions_are_checked_per_backend() {
        let vault = BackendSpec::Vault { mount: "secret".into(), namespace: None };
        let gcp = BackendSpec::Gcp { project: "p".into() };
        let aws = BackendSpec::Aws { region: "us-east-1".into() };
        let id = VersionSel::Id("a1b2c3d4-5678-90ab-cdef-EXAMPLE11111".into());
        let stage = VersionSel::Stage("AWSPREVIOUS".into());
        for spec in [&vault, &gcp] {
            validate_version(spec, &VersionSel::Latest).unwrap();
            validate_version(spec, &VersionSel::Pinned(3)).unwrap();
            for v in [&id, &stage] {
                assert!(matches!(validate_version(spec, v), Err(Error::InvalidRequest(m)) if m.starts_with(spec.kind())), "{spec:?} {v:?}");
            }
        }
        for v in [&VersionSel::Latest, &id, &stage] {
            validate_version(&aws, v).unwrap();
        }
        let pinned = validate_version(&aws, &VersionSel::Pinned(3)).unwrap_err();
        assert_eq!(pinned, Error::InvalidRequest(aws::PINNED_REFUSED.into()));
        assert!(pinned.to_string().contains("AWS versions are version ids or stages"));
    }

    #[test]
    fn aws_names_are_names_or_arns_and_any_field_is_accepted() {
        let aws = BackendSpec::Aws { region: "us-east-1".into() };
        validate(&aws, "prod/db", "value").unwrap();
        validate(&aws, "arn:aws:secretsmanager:us-east-1:1:secret:prod/db-AbCdEf", "user").unwrap();
        for bad in ["", "a b", "a\"b", "a\nb"] {
            assert!(matches!(validate(&aws, bad, "value"), Err(Error::InvalidRequest(_))), "{bad:?}");
        }
    }

    #[test]
    fn requests_refuse_versions_the_backend_lacks_and_credentials_it_cannot_use() {
        use crate::http::BaseUrl;
        use crate::sigv4::Credentials;
        let tier = |backend| TierSpec { backend, url: BaseUrl::parse("http://127.0.0.1:1").unwrap(), auth: crate::auth::AuthSpec::Token { key: "k".into() } };
        let vault = tier(BackendSpec::Vault { mount: "secret".into(), namespace: None });
        let aws = tier(BackendSpec::Aws { region: "us-east-1".into() });
        let token = SecretBytes::new(b"t".to_vec());
        let keys = Credentials { access_key_id: "AKIDEXAMPLE".into(), secret_access_key: "s".into(), session_token: None };
        let stage = VersionSel::Stage("AWSCURRENT".into());
        assert!(matches!(request(&vault, Presented::Token(&token), "x", &stage, 0), Err(Error::InvalidRequest(_))));
        assert!(matches!(request(&aws, Presented::Token(&token), "x", &VersionSel::Latest, 0), Err(Error::InvalidRequest(_))));
        assert!(matches!(request(&vault, Presented::Aws(&keys), "x", &VersionSel::Latest, 0), Err(Error::InvalidRequest(_))));
        let signed = request(&aws, Presented::Aws(&keys), "x", &stage, 1_440_938_160_000).unwrap();
        assert!(signed.headers.iter().any(|(n, v)| n == "authorization" && v.starts_with(b"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/secretsmanager/aws4_request, ")));
    }

    #[test]
    fn an_id_read_answered_with_another_version_is_rejected() {
        let aws = BackendSpec::Aws { region: "us-east-1".into() };
        let (a, b) = ("a1b2c3d4-5678-90ab-cdef-EXAMPLE11111", "a1b2c3d4-5678-90ab-cdef-EXAMPLE22222");
        let ok = HttpResponse { status: 200, headers: vec![], body: format!(r#"{{"VersionId":"{a}","SecretString":"v"}}"#).into_bytes() };
        assert_eq!(response(&aws, "x", &VersionSel::Id(a.into()), &ok).unwrap().version, a);
        assert_eq!(response(&aws, "x", &VersionSel::Stage("AWSCURRENT".into()), &ok).unwrap().version, a);
        let wrong = response(&aws, "x", &VersionSel::Id(b.into()), &ok).unwrap_err();
        assert!(!wrong.transient);
        assert_eq!(wrong.error, Error::backend(Some(200), format!("asked for version {b} but the backend returned version {a}")));
    }

    #[test]
    fn text_debug_shows_no_value() {
        let f = Fetched::text("v".into(), SecretBytes::new(br#"{"password":"pa55w0rd"}"#.to_vec()));
        let shown = format!("{f:?}");
        assert!(!shown.contains("pa55w0rd") && !shown.contains("password"), "{shown}");
    }

    #[test]
    fn status_classification() {
        assert!(by_status(503, "x".into(), None).transient);
        assert!(by_status(408, "x".into(), None).transient);
        let throttled = by_status(429, "x".into(), Some(2_000));
        assert!(throttled.transient);
        assert_eq!(throttled.error, Error::RateLimited { retry_after_ms: Some(2_000) });
        assert!(!by_status(400, "x".into(), None).transient);
    }

    #[test]
    fn response_at_reads_retry_after_dates_for_both_backends() {
        let vault = BackendSpec::Vault { mount: "secret".into(), namespace: None };
        let gcp = BackendSpec::Gcp { project: "p".into() };
        // 2015-10-21T07:28:00Z, ten seconds from "now".
        let now = 1_445_412_470_000;
        for status in [429, 503] {
            let r = HttpResponse {
                status,
                headers: vec![("retry-after".into(), b"Wed, 21 Oct 2015 07:28:00 GMT".to_vec())],
                body: vec![],
            };
            for spec in [&vault, &gcp] {
                let f = response_at(spec, "x", &VersionSel::Latest, &r, now).unwrap_err();
                assert!(f.transient && f.retry_after_ms == Some(10_000), "{spec:?} {status}: {f:?}");
                assert_eq!(response(spec, "x", &VersionSel::Latest, &r).unwrap_err().retry_after_ms, None);
            }
        }
    }
}
