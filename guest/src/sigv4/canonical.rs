//! The parts of a SigV4 canonical request: URI, query and headers.
//!
//! The rules follow AWS's "Create a canonical request" and, where that page is
//! silent, what `aws-sigv4` (the reference signer, see [`super`]) does, since a
//! server check that differs from it would break every AWS SDK too.

use crate::prelude::*;
use crate::digest::hex_digit;

/// Percent-encodes everything but SigV4's unreserved set (`A-Z a-z 0-9 - . _ ~`),
/// with uppercase hex; `/` is kept when `keep_slash` (paths).
pub(super) fn uri_encode(bytes: &[u8], keep_slash: bool, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') || (keep_slash && b == b'/') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
}

/// The canonical URI of `path` as it goes on the wire (already percent-encoded).
///
/// Every byte of it is encoded once more, so `%3D` becomes `%253D`: what AWS
/// calls "URI-encoded twice" for every service but S3, which this signer does
/// not serve. With `normalize`, dot segments and empty segments are removed
/// first (RFC 3986 §5.2.4), as AWS does for those services.
pub(super) fn canonical_uri(path: &str, normalize: bool) -> String {
    let mut out = String::with_capacity(path.len() + 8);
    if path.is_empty() {
        out.push('/');
    } else if normalize {
        uri_encode(normalized_path(path).as_bytes(), true, &mut out);
    } else {
        uri_encode(path.as_bytes(), true, &mut out);
    }
    out
}

/// `path` without `.`, `..` and empty segments, absolute, keeping a trailing
/// slash (`/a/b/.` is `/a/b/`, per the RFC's rules 2B and 2C).
fn normalized_path(path: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                kept.pop();
            }
            other => kept.push(other),
        }
    }
    let mut out = String::with_capacity(path.len() + 1);
    for segment in &kept {
        out.push('/');
        out.push_str(segment);
    }
    let trailing = ["/", "/.", "/.."].iter().any(|end| path.ends_with(end));
    if out.is_empty() || (trailing && !out.ends_with('/')) {
        out.push('/');
    }
    out
}

/// The canonical query string of `query` as it goes on the wire (without `?`).
///
/// Each name and value is decoded the way `application/x-www-form-urlencoded`
/// is (`+` is a space, as `aws-sigv4` reads it), encoded again with the
/// unreserved set, and the pairs are sorted by encoded name, then value. A
/// parameter without `=` has an empty value.
pub(super) fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (reencode(name), reencode(value))
        })
        .collect();
    pairs.sort();
    let mut out = String::with_capacity(query.len() + 8);
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out
}

fn reencode(component: &str) -> String {
    let mut decoded = Vec::with_capacity(component.len());
    let bytes = component.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let escape = match bytes.get(i..i + 3) {
            Some([b'%', hi, lo]) => hex_digit(*hi).zip(hex_digit(*lo)).map(|(hi, lo)| (hi << 4) | lo),
            _ => None,
        };
        match (bytes[i], escape) {
            (_, Some(byte)) => {
                decoded.push(byte);
                i += 3;
            }
            (b'+', None) => {
                decoded.push(b' ');
                i += 1;
            }
            // A `%` not followed by two hex digits stands for itself.
            (other, None) => {
                decoded.push(other);
                i += 1;
            }
        }
    }
    let mut out = String::with_capacity(decoded.len());
    uri_encode(&decoded, false, &mut out);
    out
}


/// The canonical headers block (`name:value\n` per name) and the signed-headers
/// list (`a;b;c`) of `headers`.
///
/// Names are lowercased and sorted; the values of a repeated name are joined
/// with `,` in the order given; values lose their leading and trailing spaces
/// and tabs (which HTTP itself strips) and runs of inner spaces become one.
pub(super) fn canonical_headers(headers: &[(&str, &str)]) -> (String, String) {
    let mut lowered: Vec<(String, String)> =
        headers.iter().map(|(name, value)| (name.to_ascii_lowercase(), trim_all(value))).collect();
    // Stable, so a repeated header keeps its values' order.
    lowered.sort_by(|a, b| a.0.cmp(&b.0));
    let (mut block, mut signed) = (String::new(), String::new());
    let mut previous: Option<&str> = None;
    for (name, value) in &lowered {
        if previous == Some(name.as_str()) {
            // Replace the previous line's newline with the next value.
            block.pop();
            block.push(',');
        } else {
            if previous.is_some() {
                signed.push(';');
            }
            signed.push_str(name);
            block.push_str(name);
            block.push(':');
        }
        block.push_str(value);
        block.push('\n');
        previous = Some(name);
    }
    (block, signed)
}

fn trim_all(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.trim_matches([' ', '\t']).chars() {
        if !(c == ' ' && out.ends_with(' ')) {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalized_then_encoded_again() {
        for (path, normalized) in [
            ("", "/"),
            ("/", "/"),
            ("//", "/"),
            ("/./", "/"),
            ("/example/..", "/"),
            ("/example1/example2/../..", "/"),
            ("/../a", "/a"),
            ("/./example", "/example"),
            ("//example//", "/example/"),
            ("/a/b/.", "/a/b/"),
            ("/a/b/..", "/a/"),
            ("a/b", "/a/b"),
            ("/a.b/c..", "/a.b/c.."),
        ] {
            assert_eq!(canonical_uri(path, true), normalized, "{path:?}");
        }
        assert_eq!(canonical_uri("//example/./", false), "//example/./");
        assert_eq!(canonical_uri("/a%3Db/c d", true), "/a%253Db/c%20d");
        assert_eq!(canonical_uri("/@:+*!", true), "/%40%3A%2B%2A%21");
    }

    #[test]
    fn queries_are_decoded_reencoded_and_sorted() {
        assert_eq!(canonical_query(""), "");
        assert_eq!(canonical_query("b=2&a=1&A=0"), "A=0&a=1&b=2");
        // By name first, then value: `Param-3` sorts after `Param`.
        assert_eq!(canonical_query("Param-3=x&Param=y&%E1%88%B4=z"), "%E1%88%B4=z&Param=y&Param-3=x");
        assert_eq!(canonical_query("k=2&k=1&k"), "k=&k=1&k=2");
        assert_eq!(canonical_query("a=b+c&d=%2f%2F&e=~-._"), "a=b%20c&d=%2F%2F&e=~-._");
        assert_eq!(canonical_query("p=100%&q=%zz&r=%4"), "p=100%25&q=%25zz&r=%254");
        assert_eq!(canonical_query("&&x=1&"), "x=1");
        assert_eq!(canonical_query("eq=a=b"), "eq=a%3Db");
    }

    #[test]
    fn headers_are_lowercased_sorted_trimmed_and_joined() {
        let (block, signed) = canonical_headers(&[
            ("My-Header1", "value4"),
            ("Host", "example.amazonaws.com"),
            ("my-header1", "  a   b \t"),
            ("My-Header2", "\"a   b   c\""),
            ("My-Header1", "value1"),
        ]);
        assert_eq!(block, "host:example.amazonaws.com\nmy-header1:value4,a b,value1\nmy-header2:\"a b c\"\n");
        assert_eq!(signed, "host;my-header1;my-header2");
        assert_eq!(canonical_headers(&[]), (String::new(), String::new()));
    }
}
