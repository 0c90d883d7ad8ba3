//! Caller authentication: `Authorization: Bearer <token>`, with tokens configured per
//! environment, so a `dev` token cannot read `prod`.
//!
//! The tokens come from one setting, [`CALLER_TOKENS_KEY`] (`caller_tokens`, a valid Spin
//! variable name), holding a JSON object from environment name to one token or a list of
//! tokens (a list lets a token be rotated without downtime):
//!
//! ```json
//! {"dev": ["dev-token-1", "dev-token-2"], "prod": "prod-token"}
//! ```
//!
//! Only SHA-256 digests of the tokens are kept once parsed, and the presented token is
//! compared digest against digest with `subtle`'s constant-time equality: equal-length
//! inputs whatever the token lengths, and no early exit on the first differing byte. An
//! environment with no tokens is compared against a dummy digest, so the timing of a
//! refusal does not tell configured environments from others either.

use std::collections::BTreeMap;

use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

/// The setting holding the caller tokens.
pub const CALLER_TOKENS_KEY: &str = "caller_tokens";

/// Longest accepted token, in bytes (header lines have practical limits anyway).
const MAX_TOKEN_LEN: usize = 4096;

type TokenDigest = [u8; 32];

/// The parsed `caller_tokens` setting: digests only. No `Debug` (digests of credentials).
pub struct CallerTokens {
    by_environment: BTreeMap<String, Vec<TokenDigest>>,
}

/// Why the request was not let through. The two cases get different statuses (401 vs 403)
/// but neither says anything about the environment or the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No usable `Authorization: Bearer` header: 401. `malformed` when one was sent.
    Unauthenticated { malformed: bool },
    /// A well-formed token that does not grant this environment: 403.
    Forbidden,
}

impl CallerTokens {
    /// Parses the setting's JSON. Errors name the environment and the token's position,
    /// never a token (serde_json's type errors would quote the offending value, so the shape
    /// is checked by hand).
    pub fn parse(json: &str) -> Result<CallerTokens, String> {
        let doc: Value = serde_json::from_str(json).map_err(|e| format!("{CALLER_TOKENS_KEY}: invalid JSON at line {} column {}", e.line(), e.column()))?;
        let Value::Object(map) = doc else {
            return Err(format!("{CALLER_TOKENS_KEY}: must be a JSON object from environment name to token(s)"));
        };
        let mut by_environment = BTreeMap::new();
        for (env, value) in map {
            if !is_environment_name(&env) {
                return Err(format!("{CALLER_TOKENS_KEY}: environment names must match [a-z0-9][a-z0-9_-]{{0,62}}"));
            }
            let tokens: Vec<&Value> = match &value {
                Value::String(_) => vec![&value],
                Value::Array(list) if !list.is_empty() => list.iter().collect(),
                _ => return Err(format!("{CALLER_TOKENS_KEY}.{env}: must be a token or a non-empty list of tokens")),
            };
            let mut digests = Vec::with_capacity(tokens.len());
            for (i, token) in tokens.into_iter().enumerate() {
                match token.as_str() {
                    Some(t) if is_token(t.as_bytes()) => digests.push(digest(t.as_bytes())),
                    _ => {
                        return Err(format!(
                            "{CALLER_TOKENS_KEY}.{env}[{i}]: tokens must be 1 to {MAX_TOKEN_LEN} visible ASCII characters (no spaces)"
                        ))
                    }
                }
            }
            by_environment.insert(env, digests);
        }
        Ok(CallerTokens { by_environment })
    }

    /// Whether `token` is one of `environment`'s tokens, in constant time over the digests.
    pub fn grants(&self, environment: &str, token: &[u8]) -> bool {
        const DUMMY: [TokenDigest; 1] = [[0u8; 32]];
        let presented = digest(token);
        let (candidates, configured) = match self.by_environment.get(environment) {
            Some(digests) => (digests.as_slice(), Choice::from(1)),
            None => (&DUMMY[..], Choice::from(0)),
        };
        // Fold over every candidate: no early exit, so the position of a match is not timed.
        let matched = candidates.iter().fold(Choice::from(0), |acc, d| acc | d.ct_eq(&presented));
        bool::from(matched & configured)
    }

    /// The environments with tokens (for diagnostics; names only).
    pub fn environments(&self) -> impl Iterator<Item = &str> {
        self.by_environment.keys().map(String::as_str)
    }
}

/// Checks the request's `Authorization` header values against `environment`'s tokens.
/// `tokens` is only consulted once a well-formed header is present, so a missing header is a
/// 401 even when the setting is broken.
pub fn check<E>(
    authorization: &[&[u8]],
    environment: &str,
    tokens: impl FnOnce() -> Result<CallerTokens, E>,
) -> Result<Result<(), Refusal>, E> {
    let token = match bearer_token(authorization) {
        Ok(token) => token,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let tokens = tokens()?;
    Ok(if tokens.grants(environment, token) { Ok(()) } else { Err(Refusal::Forbidden) })
}

/// The token of the request's single `Authorization: Bearer <token>` header.
///
/// The scheme is case-insensitive (RFC 9110 §11.1); one or more spaces separate it from the
/// token, surrounding whitespace is ignored, and the token is one run of visible ASCII.
pub fn bearer_token<'a>(authorization: &[&'a [u8]]) -> Result<&'a [u8], Refusal> {
    let value = match authorization {
        [] => return Err(Refusal::Unauthenticated { malformed: false }),
        [one] => trim(one),
        _ => return Err(Refusal::Unauthenticated { malformed: true }),
    };
    let malformed = Refusal::Unauthenticated { malformed: true };
    let space = value.iter().position(|b| *b == b' ').ok_or(malformed)?;
    let (scheme, rest) = value.split_at(space);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Err(malformed);
    }
    let token = trim(rest);
    if !is_token(token) {
        return Err(malformed);
    }
    Ok(token)
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| !matches!(b, b' ' | b'\t')).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !matches!(b, b' ' | b'\t')).map_or(start, |i| i + 1);
    &bytes[start..end.max(start)]
}

fn is_token(token: &[u8]) -> bool {
    (1..=MAX_TOKEN_LEN).contains(&token.len()) && token.iter().all(|b| (0x21..=0x7e).contains(b))
}

/// The component's environment grammar, `[a-z0-9][a-z0-9_-]{0,62}`.
pub fn is_environment_name(name: &str) -> bool {
    let b = name.as_bytes();
    (1..=63).contains(&b.len())
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
}

fn digest(bytes: &[u8]) -> TokenDigest {
    Sha256::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> CallerTokens {
        CallerTokens::parse(r#"{"dev": ["dev-1", "dev-2"], "prod": "prod-token"}"#).unwrap()
    }

    #[test]
    fn a_token_grants_only_its_own_environment() {
        let t = tokens();
        assert!(t.grants("dev", b"dev-1") && t.grants("dev", b"dev-2") && t.grants("prod", b"prod-token"));
        assert!(!t.grants("prod", b"dev-1"), "a dev token must not read prod");
        assert!(!t.grants("dev", b"prod-token"));
        assert!(!t.grants("dev", b"dev-"), "prefix");
        assert!(!t.grants("dev", b"dev-10"), "extension");
        assert!(!t.grants("qa", b"dev-1"), "unconfigured environment");
        assert!(!t.grants("qa", &[0u8; 0]));
        assert_eq!(t.environments().collect::<Vec<_>>(), ["dev", "prod"]);
    }

    #[test]
    fn bearer_headers_are_parsed_strictly() {
        assert_eq!(bearer_token(&[b"Bearer abc"]), Ok(&b"abc"[..]));
        assert_eq!(bearer_token(&[b"bearer   abc  "]), Ok(&b"abc"[..]));
        assert_eq!(bearer_token(&[b"BEARER abc"]), Ok(&b"abc"[..]));
        assert_eq!(bearer_token(&[]), Err(Refusal::Unauthenticated { malformed: false }));
        let malformed = Err(Refusal::Unauthenticated { malformed: true });
        for bad in [&b"Bearer"[..], b"Bearer ", b"Basic abc", b"Bearer a b", b"Bearerabc", b"Bearer \xffx", b"", b"Token abc"] {
            assert_eq!(bearer_token(&[bad]), malformed, "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(bearer_token(&[b"Bearer a", b"Bearer a"]), malformed, "two headers");
    }

    #[test]
    fn check_refuses_before_reading_tokens_when_the_header_is_missing() {
        let broken = || Err::<CallerTokens, &str>("unreadable");
        assert_eq!(check(&[], "dev", broken), Ok(Err(Refusal::Unauthenticated { malformed: false })));
        assert_eq!(check(&[b"Bearer x"], "dev", broken).err(), Some("unreadable"));
        assert_eq!(check(&[b"Bearer dev-1"], "dev", || Ok::<_, ()>(tokens())), Ok(Ok(())));
        assert_eq!(check(&[b"Bearer dev-1"], "prod", || Ok::<_, ()>(tokens())), Ok(Err(Refusal::Forbidden)));
    }

    #[test]
    fn bad_settings_name_the_place_never_the_token() {
        let secret = "s3cr3t-token-value";
        let cases = [
            (format!(r#"{{"dev": ["ok", "{secret} x"]}}"#), "caller_tokens.dev[1]: tokens must be"),
            (format!(r#"{{"dev": {{"t": "{secret}"}}}}"#), "caller_tokens.dev: must be a token or a non-empty list"),
            (r#"{"dev": []}"#.to_string(), "caller_tokens.dev: must be a token or a non-empty list"),
            (format!(r#"{{"Dev": "{secret}"}}"#), "caller_tokens: environment names must match"),
            (format!(r#"["{secret}"]"#), "caller_tokens: must be a JSON object"),
            (format!(r#"{{"dev": "{secret}""#), "caller_tokens: invalid JSON at line 1"),
            (format!(r#"{{"dev": [{secret}]}}"#), "caller_tokens: invalid JSON"),
        ];
        for (json, expected) in cases {
            let err = CallerTokens::parse(&json).err().unwrap_or_else(|| panic!("accepted: {expected}"));
            assert!(err.starts_with(expected), "{err}");
            assert!(!err.contains("s3cr3t"), "{err}");
        }
    }

    #[test]
    fn environment_names_follow_the_component_grammar() {
        for ok in ["dev", "gcp-prod", "a_b", "0"] {
            assert!(is_environment_name(ok), "{ok}");
        }
        for bad in ["", "Dev", "-dev", "d/e", "d%20", &"a".repeat(64)] {
            assert!(!is_environment_name(bad), "{bad}");
        }
    }
}
