//! `application/x-www-form-urlencoded` bodies and query strings, as the fake STS and Entra
//! endpoints read them.

use std::collections::BTreeMap;

/// A form or query string, percent- and `+`-decoded (the last of a repeated name wins).
pub(super) fn parse(text: &str) -> BTreeMap<String, String> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// `%XX` and `+` decoding; a `%` not followed by two hex digits stays as it is.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() && bytes[i + 1].is_ascii_hexdigit() && bytes[i + 2].is_ascii_hexdigit() => {
                let hex = |b: u8| (b as char).to_digit(16).unwrap_or(0) as u8;
                out.push(hex(bytes[i + 1]) << 4 | hex(bytes[i + 2]));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_percent_and_plus() {
        let f = parse("a=1&scope=https%3A%2F%2Fvault.azure.net%2F.default&s=x+y%2Bz%25&bad=%zz");
        assert_eq!(f["scope"], "https://vault.azure.net/.default");
        assert_eq!(f["s"], "x y+z%");
        assert_eq!(f["bad"], "%zz");
    }
}
