//! How a shared cache entry names the backend it was read from.
//!
//! An entry's identity binds the environment's primary backend and URL (see
//! `entries::cache_ids`), so re-pointing `prod` at another Vault never serves
//! the old one's values. The text is the two values' `Debug` forms joined by
//! `|` (`Vault { mount: "secret", namespace: None }|BaseUrl { scheme: Https,
//! authority: "vault:8200", prefix: "" }`): every deployed instance has keyed
//! its entries with it, so it must not change, or a rolling deploy would stop
//! sharing entries. It is written out here rather than through `Debug`, whose
//! builders were ~5 % of a fresh instance's shared hit (callgrind, counted
//! instructions); a test holds the two equal.

use crate::prelude::*;
use core::fmt::Write;

use crate::config::BackendSpec;
use crate::http::{BaseUrl, Scheme};

/// `format!("{backend:?}|{url:?}")`, written directly. The patterns name every
/// field, so a field added to either type fails to compile here instead of
/// silently leaving the text.
pub(in crate::engine) fn backend_identity(backend: &BackendSpec, url: &BaseUrl) -> String {
    let mut out = String::with_capacity(96);
    match backend {
        BackendSpec::Vault { mount, namespace } => {
            out.push_str("Vault { mount: ");
            quoted(&mut out, mount);
            out.push_str(", namespace: ");
            match namespace {
                Some(namespace) => {
                    out.push_str("Some(");
                    quoted(&mut out, namespace);
                    out.push(')');
                }
                None => out.push_str("None"),
            }
            out.push_str(" }");
        }
        BackendSpec::Gcp { project } => {
            out.push_str("Gcp { project: ");
            quoted(&mut out, project);
            out.push_str(" }");
        }
        BackendSpec::Aws { region } => {
            out.push_str("Aws { region: ");
            quoted(&mut out, region);
            out.push_str(" }");
        }
        BackendSpec::Azure => out.push_str("Azure"),
    }
    let BaseUrl { scheme, authority, prefix } = url;
    out.push_str("|BaseUrl { scheme: ");
    out.push_str(match scheme {
        Scheme::Http => "Http",
        Scheme::Https => "Https",
    });
    out.push_str(", authority: ");
    quoted(&mut out, authority);
    out.push_str(", prefix: ");
    quoted(&mut out, prefix);
    out.push_str(" }");
    out
}

/// `text` as `Debug` writes a string: quoted, with escapes. Plain text
/// (printable ASCII but `"` and `\`, which is all a validated policy holds) is
/// copied; anything else is left to `Debug` itself.
fn quoted(out: &mut String, text: &str) {
    if text.bytes().all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(text);
        out.push('"');
    } else {
        let _ = write!(out, "{text:?}");
    }
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
    }
}
