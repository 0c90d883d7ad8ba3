//! Routing and URL decoding. Pure functions over the method and the request target.
//!
//! - `GET /v1/secrets/{env}/{name...}[?version=V][&field=F][&refresh=true|1]`: `name` is
//!   everything after the environment segment, so it may contain `/` (Vault paths); `%2F` works
//!   too. Percent-escapes are decoded in the name and the query values (`+` is kept as `+`:
//!   Vault names allow it). `refresh` asks the provider to bypass its cache.
//! - `GET /healthz`, `GET /metrics`.
//!
//! Decoding the name and query is a separate step ([`decode_read`]) that runs after the caller
//! is authenticated, so a malformed URL never tells an unauthenticated caller anything.

use percent_encoding::percent_decode_str;

use crate::model::SecretRead;

const SECRETS_PREFIX: &str = "/v1/secrets/";

/// A matched route. `Secret` keeps the raw (still encoded) parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<'a> {
    Secret { environment: &'a str, name: &'a str, query: Option<&'a str> },
    Health,
    Metrics,
}

/// Why no route answers: 404, or 405 for a known path with another method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteError {
    NotFound,
    MethodNotAllowed,
}

/// Matches `method` and `target` (the path and query, e.g. `/v1/secrets/dev/a?version=2`).
pub fn route<'a>(method: &str, target: &'a str) -> Result<Route<'a>, RouteError> {
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    let route = match path {
        "/healthz" => Route::Health,
        "/metrics" => Route::Metrics,
        _ => {
            let rest = path.strip_prefix(SECRETS_PREFIX).ok_or(RouteError::NotFound)?;
            let (environment, name) = rest.split_once('/').ok_or(RouteError::NotFound)?;
            if environment.is_empty() || name.is_empty() {
                return Err(RouteError::NotFound);
            }
            Route::Secret { environment, name, query }
        }
    };
    if method != "GET" {
        return Err(RouteError::MethodNotAllowed);
    }
    Ok(route)
}

/// Decodes a secrets route into a read. `Err` is an `invalid-request` message, which may quote
/// the parameter's name but never its value.
pub fn decode_read(environment: &str, name: &str, query: Option<&str>) -> Result<SecretRead, String> {
    let name = decode(name).ok_or("the secret name is not valid percent-encoded UTF-8")?;
    let mut read = SecretRead { environment: environment.to_string(), name, version: None, field: None, refresh: false, traceparent: None };
    let mut refresh = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match key {
            "version" => &mut read.version,
            "field" => &mut read.field,
            "refresh" => &mut refresh,
            _ => return Err("unknown query parameter (expected `version`, `field` or `refresh`)".to_string()),
        };
        if slot.is_some() {
            return Err(format!("query parameter `{key}` given twice"));
        }
        let value = decode(value).ok_or_else(|| format!("query parameter `{key}` is not valid percent-encoded UTF-8"))?;
        if value.is_empty() {
            return Err(format!("query parameter `{key}` is empty"));
        }
        *slot = Some(value);
    }
    // Only the two spellings that ask for a refresh: `refresh=false` would be a request that
    // does nothing, and a typo such as `refresh=ture` must not silently read the cache.
    read.refresh = match refresh.as_deref() {
        None => false,
        Some("true" | "1") => true,
        Some(_) => return Err("query parameter `refresh` must be `true` or `1`".to_string()),
    };
    Ok(read)
}

/// Strict percent-decoding: a `%` must start a two-hex-digit escape, and the result must be
/// UTF-8 (the `percent-encoding` crate passes malformed escapes through unchanged).
fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'%' && !(bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit) && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit)) {
            return None;
        }
    }
    percent_decode_str(text).decode_utf8().ok().map(|s| s.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_paths_then_methods() {
        assert_eq!(route("GET", "/healthz"), Ok(Route::Health));
        assert_eq!(route("GET", "/metrics"), Ok(Route::Metrics));
        assert_eq!(route("GET", "/v1/secrets/dev/app/db"), Ok(Route::Secret { environment: "dev", name: "app/db", query: None }));
        assert_eq!(
            route("GET", "/v1/secrets/dev/a%2Fb?version=2&field=user"),
            Ok(Route::Secret { environment: "dev", name: "a%2Fb", query: Some("version=2&field=user") })
        );
        for missing in ["/", "/v1/secrets", "/v1/secrets/", "/v1/secrets/dev", "/v1/secrets/dev/", "/v1/secrets//x", "/healthz/", "/v2/secrets/dev/a"] {
            assert_eq!(route("GET", missing), Err(RouteError::NotFound), "{missing}");
        }
        for method in ["POST", "PUT", "DELETE", "HEAD", "get"] {
            assert_eq!(route(method, "/v1/secrets/dev/a"), Err(RouteError::MethodNotAllowed), "{method}");
            assert_eq!(route(method, "/healthz"), Err(RouteError::MethodNotAllowed), "{method}");
        }
        assert_eq!(route("POST", "/nope"), Err(RouteError::NotFound), "unknown paths are 404 for any method");
    }

    #[test]
    fn names_and_query_values_are_percent_decoded() {
        let read = decode_read("dev", "app%2Fdb%20x", Some("version=3&field=p%40ss+word")).unwrap();
        let expected = SecretRead {
            environment: "dev".into(),
            name: "app/db x".into(),
            version: Some("3".into()),
            field: Some("p@ss+word".into()),
            refresh: false,
            traceparent: None,
        };
        assert_eq!(read, expected);
        assert_eq!(decode_read("dev", "a/b", None).unwrap().version, None);
        assert_eq!(decode_read("dev", "a", Some("")).unwrap().field, None);
        assert_eq!(decode_read("dev", "a", Some("&field=x&")).unwrap().field.as_deref(), Some("x"));
    }

    #[test]
    fn refresh_is_true_or_1() {
        for query in ["refresh=true", "refresh=1", "version=2&refresh=true", "refresh=%31"] {
            assert!(decode_read("dev", "a", Some(query)).unwrap().refresh, "{query}");
        }
        assert!(!decode_read("dev", "a", None).unwrap().refresh);
        assert!(!decode_read("dev", "a", Some("field=x")).unwrap().refresh);
    }

    #[test]
    fn malformed_urls_are_invalid_requests_without_echoing_values() {
        let cases = [
            ("a%zz", None, "the secret name is not valid"),
            ("a%f", None, "the secret name is not valid"),
            ("a%ff", None, "the secret name is not valid"),
            ("a", Some("version=1&version=2"), "query parameter `version` given twice"),
            ("a", Some("field=%zzhidden"), "query parameter `field` is not valid"),
            ("a", Some("field="), "query parameter `field` is empty"),
            ("a", Some("version"), "query parameter `version` is empty"),
            ("a", Some("hidden=1"), "unknown query parameter"),
            ("a", Some("refresh=hidden"), "query parameter `refresh` must be `true` or `1`"),
            ("a", Some("refresh=false"), "query parameter `refresh` must be `true` or `1`"),
            ("a", Some("refresh=TRUE"), "query parameter `refresh` must be `true` or `1`"),
            ("a", Some("refresh"), "query parameter `refresh` is empty"),
            ("a", Some("refresh=1&refresh=1"), "query parameter `refresh` given twice"),
        ];
        for (name, query, expected) in cases {
            let err = decode_read("dev", name, query).unwrap_err();
            assert!(err.starts_with(expected), "{err}");
            assert!(!err.contains("hidden"), "{err}");
        }
    }
}
