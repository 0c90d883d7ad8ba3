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
//!
//! Tokens are checked for strength when the setting is read: one under 128 bits of entropy
//! (shorter than 22 characters, or 32 when all are hex digits, or with fewer than 8 distinct
//! characters) is refused with a `config` error naming the environment and position. A token
//! that can be guessed makes the constant-time comparison pointless. Make them with e.g.
//! `openssl rand -base64 32` or `openssl rand -hex 32`.
//!
//! An instance keeps the parsed caller tokens (digests) for [`CALLER_TOKENS_REREAD_MS`] and then
//! reads the setting again ([`TokenCache`]): under Spin every variable read is a thread hand-off
//! in the host (`tokio::task::block_in_place` in its environment provider; ~3.6× the cost of the
//! app's own 404 route per request when every request read it), while a reused instance serves
//! up to 128 requests. A token taken out of the setting is refused, and one added is granted,
//! at most a second later; a re-read that fails (the setting broke, or cannot be read) fails its
//! request, and older tokens never answer for it.
//!
//! `/metrics` and the detailed `/healthz` need a token of their own, from [`ADMIN_TOKENS_KEY`]
//! (`admin_tokens`: one token, or a JSON list of tokens), so that callers who can read secrets
//! cannot read operational details, and nobody without a token can make the app read every
//! counter from the store.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

/// The setting holding the caller tokens.
pub const CALLER_TOKENS_KEY: &str = "caller_tokens";

/// The setting holding the admin tokens.
pub const ADMIN_TOKENS_KEY: &str = "admin_tokens";

/// Longest accepted token, in bytes (header lines have practical limits anyway).
const MAX_TOKEN_LEN: usize = 4096;

/// Shortest token, in characters, when all are hex digits (4 bits each) or not (~6 bits each
/// for base64url; more for other visible ASCII): 128 bits either way.
const MIN_HEX_LEN: usize = 32;
const MIN_LEN: usize = 22;
/// A random token of 22 or more characters has far more distinct ones; fewer means a pattern.
const MIN_DISTINCT: usize = 8;

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
            let digests = digests_of(&value, Place(CALLER_TOKENS_KEY, Some(&env)))?;
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

/// Where a setting's tokens are: the setting and, for caller tokens, the environment. Written out
/// (`caller_tokens.dev`) only for an error: a fresh instance parses the setting on every request.
#[derive(Clone, Copy)]
struct Place<'a>(&'static str, Option<&'a str>);

impl core::fmt::Display for Place<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.1 {
            Some(env) => write!(f, "{}.{env}", self.0),
            None => f.write_str(self.0),
        }
    }
}

/// The digests of a token or non-empty list of tokens at `place` (e.g. `caller_tokens.dev`), each
/// checked for form and strength. Errors name the place and position, never a token.
fn digests_of(value: &Value, place: Place<'_>) -> Result<Vec<TokenDigest>, String> {
    let tokens: Vec<&Value> = match value {
        Value::String(_) => vec![value],
        Value::Array(list) if !list.is_empty() => list.iter().collect(),
        _ => return Err(format!("{place}: must be a token or a non-empty list of tokens")),
    };
    let mut digests = Vec::with_capacity(tokens.len());
    for (i, token) in tokens.into_iter().enumerate() {
        let Some(token) = token.as_str().filter(|t| is_token(t.as_bytes())) else {
            return Err(format!("{place}[{i}]: tokens must be 1 to {MAX_TOKEN_LEN} visible ASCII characters (no spaces)"));
        };
        if !is_strong(token.as_bytes()) {
            return Err(format!(
                "{place}[{i}]: the token is too weak: tokens need 128 bits of entropy, e.g. {MIN_LEN} or more random \
                 base64url characters or {MIN_HEX_LEN} hex digits (`openssl rand -base64 32`)"
            ));
        }
        digests.push(digest(token.as_bytes()));
    }
    Ok(digests)
}

/// Whether a token can hold 128 bits of entropy (see the module docs).
fn is_strong(token: &[u8]) -> bool {
    let hex = token.iter().all(u8::is_ascii_hexdigit);
    let mut seen = [false; 128];
    token.iter().for_each(|b| seen[usize::from(*b & 0x7f)] = true);
    let distinct = seen.iter().filter(|s| **s).count();
    token.len() >= if hex { MIN_HEX_LEN } else { MIN_LEN } && distinct >= MIN_DISTINCT
}

/// The parsed `admin_tokens` setting: digests only. No `Debug`.
pub struct AdminTokens {
    digests: Vec<TokenDigest>,
}

impl AdminTokens {
    /// One bare token (the easy form for a Spin variable), a JSON string, or a JSON list.
    pub fn parse(setting: &str) -> Result<AdminTokens, String> {
        let trimmed = setting.trim();
        let value = if trimmed.starts_with('[') || trimmed.starts_with('"') {
            serde_json::from_str(trimmed).map_err(|e| format!("{ADMIN_TOKENS_KEY}: invalid JSON at line {} column {}", e.line(), e.column()))?
        } else {
            Value::String(trimmed.to_string())
        };
        Ok(AdminTokens { digests: digests_of(&value, Place(ADMIN_TOKENS_KEY, None))? })
    }

    /// Whether `token` is an admin token, in constant time over the digests.
    pub fn grants(&self, token: &[u8]) -> bool {
        let presented = digest(token);
        bool::from(self.digests.iter().fold(Choice::from(0), |acc, d| acc | d.ct_eq(&presented)))
    }
}

/// Checks the request's `Authorization` header values against `environment`'s tokens.
/// `tokens` is only consulted once a well-formed header is present, so a missing header is a
/// 401 even when the setting is broken.
pub fn check<T: Borrow<CallerTokens>, E>(
    authorization: &[&[u8]],
    environment: &str,
    tokens: impl FnOnce() -> Result<T, E>,
) -> Result<Result<(), Refusal>, E> {
    let token = match bearer_token(authorization) {
        Ok(token) => token,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let tokens = tokens()?;
    Ok(if tokens.borrow().grants(environment, token) { Ok(()) } else { Err(Refusal::Forbidden) })
}

/// How long an instance reuses the caller tokens it read (see the module docs).
pub const CALLER_TOKENS_REREAD_MS: u64 = 1_000;

/// The caller tokens an instance read last and when (monotonic ms): digests only, like
/// [`CallerTokens`]. No `Debug`. (`Arc`, not `Rc`: the native baseline in the host's bench
/// shares one across threads.)
#[derive(Default)]
pub struct TokenCache {
    held: Option<(u64, Arc<CallerTokens>)>,
}

impl TokenCache {
    /// The tokens read less than [`CALLER_TOKENS_REREAD_MS`] before `now_ms`, if any.
    pub fn fresh(&self, now_ms: u64) -> Option<Arc<CallerTokens>> {
        let (at, tokens) = self.held.as_ref()?;
        // A clock that went backwards (it cannot, being monotonic) also reads again.
        (now_ms >= *at && now_ms - at < CALLER_TOKENS_REREAD_MS).then(|| Arc::clone(tokens))
    }

    /// Keeps what a read at `now_ms` gave. A failed read empties the cache: the error is
    /// returned, and the next call reads again.
    pub fn store<E>(&mut self, now_ms: u64, read: Result<CallerTokens, E>) -> Result<Arc<CallerTokens>, E> {
        self.held = None;
        let tokens = Arc::new(read?);
        self.held = Some((now_ms, Arc::clone(&tokens)));
        Ok(tokens)
    }

    /// [`Self::fresh`], or else [`Self::store`] of `read`'s answer. (Hosts whose reads may
    /// re-enter the caller call the two with no borrow of the cache held across the read.)
    pub fn get<E>(&mut self, now_ms: u64, read: impl FnOnce() -> Result<CallerTokens, E>) -> Result<Arc<CallerTokens>, E> {
        match self.fresh(now_ms) {
            Some(tokens) => Ok(tokens),
            None => self.store(now_ms, read()),
        }
    }
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

    // Strong enough to load: 22+ characters, 8+ distinct.
    const DEV1: &str = "dev-1-Xq7vK2pL9mN4rT8wY3";
    const DEV2: &str = "dev-2-Xq7vK2pL9mN4rT8wY3";
    const PROD: &str = "prod-Hc5jW1sD6fG0aE2uJ7";

    fn tokens() -> CallerTokens {
        CallerTokens::parse(&format!(r#"{{"dev": ["{DEV1}", "{DEV2}"], "prod": "{PROD}"}}"#)).unwrap()
    }

    #[test]
    fn a_token_grants_only_its_own_environment() {
        let t = tokens();
        assert!(t.grants("dev", DEV1.as_bytes()) && t.grants("dev", DEV2.as_bytes()) && t.grants("prod", PROD.as_bytes()));
        assert!(!t.grants("prod", DEV1.as_bytes()), "a dev token must not read prod");
        assert!(!t.grants("dev", PROD.as_bytes()));
        assert!(!t.grants("dev", &DEV1.as_bytes()[..DEV1.len() - 1]), "prefix");
        assert!(!t.grants("dev", format!("{DEV1}0").as_bytes()), "extension");
        assert!(!t.grants("qa", DEV1.as_bytes()), "unconfigured environment");
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
        let header = format!("Bearer {DEV1}");
        assert_eq!(check(&[header.as_bytes()], "dev", || Ok::<_, ()>(tokens())), Ok(Ok(())));
        assert_eq!(check(&[header.as_bytes()], "prod", || Ok::<_, ()>(tokens())), Ok(Err(Refusal::Forbidden)));
    }

    #[test]
    fn bad_settings_name_the_place_never_the_token() {
        let secret = "s3cr3t-token-value";
        let cases = [
            (format!(r#"{{"dev": ["{DEV1}", "{secret} x"]}}"#), "caller_tokens.dev[1]: tokens must be"),
            (format!(r#"{{"dev": ["{DEV1}", "{secret}"]}}"#), "caller_tokens.dev[1]: the token is too weak"),
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

    #[test]
    fn tokens_under_128_bits_are_refused_at_load_naming_the_place_never_the_token() {
        for (i, weak) in ["t1", "let-me-in", "s3cr3t-token-value-21", &"ab".repeat(20), &"0123456789abcdef".repeat(2)[..31], "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"].into_iter().enumerate() {
            let err = CallerTokens::parse(&format!(r#"{{"prod": ["{PROD}", "{weak}"]}}"#)).err().unwrap_or_else(|| panic!("accepted weak token {i}"));
            assert!(err.starts_with("caller_tokens.prod[1]: the token is too weak"), "{err}");
            assert!(!err.contains(weak), "{err}");
            assert!(AdminTokens::parse(weak).is_err(), "admin {weak}");
        }
        for strong in [PROD, "0123456789abcdef0123456789abcdef", "Zm9vYmFyYmF6cXV4MTIzNDU2"] {
            assert!(CallerTokens::parse(&format!(r#"{{"prod": "{strong}"}}"#)).is_ok(), "{strong}");
        }
    }

    #[test]
    fn cached_tokens_are_reused_for_a_second_then_read_again() {
        let mut cache = TokenCache::default();
        let reads = std::cell::Cell::new(0);
        let read = |json: &'static str| {
            reads.set(reads.get() + 1);
            CallerTokens::parse(json)
        };
        let dev = r#"{"dev": "dev-Xq7vK2pL9mN4rT8wY3zB"}"#;
        let rotated = r#"{"dev": "dev-Hc5jW1sD6fG0aE2uJ7kq"}"#;
        assert!(cache.get(10_000, || read(dev)).unwrap().grants("dev", b"dev-Xq7vK2pL9mN4rT8wY3zB"));
        // Within the second the setting is not read: the old token still works.
        let held = cache.get(10_000 + CALLER_TOKENS_REREAD_MS - 1, || read(rotated)).unwrap();
        assert!(held.grants("dev", b"dev-Xq7vK2pL9mN4rT8wY3zB"));
        assert_eq!(reads.get(), 1);
        // Then it is: the removed token is refused, the new one granted.
        let fresh = cache.get(10_000 + CALLER_TOKENS_REREAD_MS, || read(rotated)).unwrap();
        assert!(!fresh.grants("dev", b"dev-Xq7vK2pL9mN4rT8wY3zB") && fresh.grants("dev", b"dev-Hc5jW1sD6fG0aE2uJ7kq"));
        assert_eq!(reads.get(), 2);
    }

    #[test]
    fn a_failed_read_is_never_covered_by_cached_tokens() {
        let mut cache = TokenCache::default();
        let dev = r#"{"dev": "dev-Xq7vK2pL9mN4rT8wY3zB"}"#;
        cache.get(0, || CallerTokens::parse(dev)).unwrap();
        // The setting broke (or the store failed) after the tokens were read: the next read
        // reports it, and the one after that reads again instead of reviving the old tokens.
        let broken = cache.get(CALLER_TOKENS_REREAD_MS, || CallerTokens::parse("{")).err().unwrap();
        assert!(broken.starts_with("caller_tokens: invalid JSON"), "{broken}");
        let again = cache.get(CALLER_TOKENS_REREAD_MS + 1, || Err::<CallerTokens, _>("store down")).err();
        assert_eq!(again, Some("store down"));
        // A clock going backwards reads again too.
        cache.get(5_000, || CallerTokens::parse(dev)).unwrap();
        assert_eq!(cache.get(4_999, || Err::<CallerTokens, _>("read")).err(), Some("read"));
    }

    #[test]
    fn admin_tokens_are_one_bare_token_or_json_and_grant_only_themselves() {
        let bare = AdminTokens::parse(&format!(" {PROD}\n")).unwrap();
        assert!(bare.grants(PROD.as_bytes()) && !bare.grants(DEV1.as_bytes()));
        let list = AdminTokens::parse(&format!(r#"["{DEV1}", "{PROD}"]"#)).unwrap();
        assert!(list.grants(DEV1.as_bytes()) && list.grants(PROD.as_bytes()) && !list.grants(DEV2.as_bytes()));
        assert!(AdminTokens::parse(&format!(r#""{DEV2}""#)).unwrap().grants(DEV2.as_bytes()));
        let err = AdminTokens::parse(r#"["s3cr3t"#).err().unwrap();
        assert!(err.starts_with("admin_tokens: invalid JSON") && !err.contains("s3cr3t"), "{err}");
        assert!(AdminTokens::parse("[]").err().unwrap().starts_with("admin_tokens: must be a token or a non-empty list"));
    }
}
