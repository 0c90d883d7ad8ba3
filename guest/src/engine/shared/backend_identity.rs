//! How a shared cache entry names the backend it was read from.
//!
//! An entry's identity binds the environment's primary backend and URL (see
//! `entries::cache_ids`), so re-pointing `prod` at another Vault never serves
//! the old one's values. The text is the two values' `Debug` forms joined by
//! `|` (`Vault { mount: "secret", namespace: None }|BaseUrl { scheme: Https,
//! authority: "vault:8200", prefix: "" }`): every deployed instance has keyed
//! its entries with it, so it must not change, or a rolling deploy would stop
//! sharing entries. It is written out here rather than through `Debug`'s struct
//! builders, the costliest part of it (callgrind: with one other change, a fresh
//! instance's shared hit went from 544 k to 533 k instructions); tests hold the
//! two equal and pin the text.

use crate::prelude::*;
use core::fmt::Write;

use crate::config::BackendSpec;
use crate::http::{BaseUrl, Scheme};

/// `format!("{backend:?}|{url:?}")`, written directly. The patterns name every
/// field, so a field added to either type fails to compile here instead of
/// silently leaving the text. (Pieces in a table, not a `push_str` each: the
/// guest has a size budget.)
pub(in crate::engine) fn backend_identity(backend: &BackendSpec, url: &BaseUrl) -> String {
    use Piece::{Quoted as Q, Text as T};
    let backend: &[Piece<'_>] = match backend {
        BackendSpec::Vault { mount, namespace: None } => &[T("Vault { mount: "), Q(mount), T(", namespace: None }")],
        BackendSpec::Vault { mount, namespace: Some(namespace) } => {
            &[T("Vault { mount: "), Q(mount), T(", namespace: Some("), Q(namespace), T(") }")]
        }
        BackendSpec::Gcp { project } => &[T("Gcp { project: "), Q(project), T(" }")],
        BackendSpec::Aws { region } => &[T("Aws { region: "), Q(region), T(" }")],
        BackendSpec::Azure => &[T("Azure")],
    };
    let BaseUrl { scheme, authority, prefix } = url;
    let scheme = match scheme {
        Scheme::Http => "|BaseUrl { scheme: Http, authority: ",
        Scheme::Https => "|BaseUrl { scheme: Https, authority: ",
    };
    let url = [T(scheme), Q(authority), T(", prefix: "), Q(prefix), T(" }")];
    let mut out = String::with_capacity(96);
    for piece in backend.iter().chain(&url) {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Quoted(text) => quoted(&mut out, text),
        }
    }
    out
}

/// Part of the identity: written as is, or as `Debug` writes a string.
enum Piece<'a> {
    Text(&'a str),
    Quoted(&'a str),
}

/// `text` as `Debug` writes a string: quoted, with escapes. (Copying plain
/// text directly instead measured the same instruction count, for 250 more
/// bytes of guest.)
fn quoted(out: &mut String, text: &str) {
    let _ = write!(out, "{text:?}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(scheme: Scheme, authority: &str, prefix: &str) -> BaseUrl {
        BaseUrl { scheme, authority: authority.into(), prefix: prefix.into() }
    }

    #[test]
    fn the_identity_is_the_debug_text_entries_have_always_been_keyed_with() {
        let odd = ["", "secret", "a\"b", "back\\slash", "tab\there", "é-unicode", "new\nline", "it's", "\u{7f}del", "~ space"];
        let mut backends = vec![BackendSpec::Azure];
        for text in odd {
            backends.push(BackendSpec::Vault { mount: text.into(), namespace: None });
            backends.push(BackendSpec::Vault { mount: "kv".into(), namespace: Some(text.into()) });
            backends.push(BackendSpec::Gcp { project: text.into() });
            backends.push(BackendSpec::Aws { region: text.into() });
        }
        for backend in &backends {
            for scheme in [Scheme::Http, Scheme::Https] {
                for text in odd {
                    for url in [url(scheme, text, ""), url(scheme, "vault:8200", text)] {
                        assert_eq!(backend_identity(backend, &url), format!("{backend:?}|{url:?}"));
                    }
                }
            }
        }
    }

    #[test]
    fn the_identity_text_is_pinned() {
        // The exact bytes live instances key entries with: if this changes, entries written
        // before a deploy are no longer found after it.
        let vault = BackendSpec::Vault { mount: "secret".into(), namespace: Some("team".into()) };
        assert_eq!(
            backend_identity(&vault, &url(Scheme::Https, "vault:8200", "/v")),
            r#"Vault { mount: "secret", namespace: Some("team") }|BaseUrl { scheme: Https, authority: "vault:8200", prefix: "/v" }"#
        );
        assert_eq!(backend_identity(&BackendSpec::Azure, &url(Scheme::Http, "kv", "")), r#"Azure|BaseUrl { scheme: Http, authority: "kv", prefix: "" }"#);
        let cases = [
            (BackendSpec::Vault { mount: "kv".into(), namespace: None }, r#"Vault { mount: "kv", namespace: None }"#),
            (BackendSpec::Gcp { project: "p-1".into() }, r#"Gcp { project: "p-1" }"#),
            (BackendSpec::Aws { region: "eu-west-1".into() }, r#"Aws { region: "eu-west-1" }"#),
            // Escapes as `Debug` writes them today (the text entries were keyed with).
            (BackendSpec::Gcp { project: "a\"b\\c\té\u{7f}".into() }, r#"Gcp { project: "a\"b\\c\té\u{7f}" }"#),
        ];
        for (backend, text) in cases {
            assert_eq!(backend_identity(&backend, &url(Scheme::Http, "h", "")), format!(r#"{text}|BaseUrl {{ scheme: Http, authority: "h", prefix: "" }}"#));
        }
    }
}
