//! DNS rebinding defence: a web page can make a browser resolve its own name to 127.0.0.1 and
//! read a loopback listener as same-origin, but the browser still sends the page's name in
//! `Host`. On a loopback listener only loopback names are answered.

use std::net::IpAddr;

use http::HeaderMap;

/// Whether a request to a loopback listener may go on: no `Host` (HTTP/1.0; a browser always
/// sends one), or exactly one naming `localhost`, a `127.0.0.0/8` address or `[::1]`, with or
/// without a port.
pub(crate) fn allowed_on_loopback(headers: &HeaderMap) -> bool {
    let mut hosts = headers.get_all(http::header::HOST).iter();
    let Some(host) = hosts.next() else { return true };
    hosts.next().is_none() && host.to_str().ok().is_some_and(is_loopback_name)
}

fn is_loopback_name(value: &str) -> bool {
    let Ok(authority) = value.parse::<http::uri::Authority>() else { return false };
    if authority.as_str().contains('@') {
        return false; // userinfo has no place in Host
    }
    let host = authority.host();
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_with_or_without_a_port() {
        for ok in ["localhost", "LOCALHOST:8080", "127.0.0.1", "127.8.9.10:443", "[::1]", "[::1]:8080"] {
            assert!(is_loopback_name(ok), "{ok}");
        }
        for refused in ["evil.example", "evil.example:8080", "localhost.evil.example", "10.0.0.1", "[::2]:80", "0.0.0.0", "", "a@localhost", "127.0.0.1.nip.io"] {
            assert!(!is_loopback_name(refused), "{refused}");
        }
    }

    #[test]
    fn no_host_passes_and_two_hosts_do_not() {
        let mut headers = HeaderMap::new();
        assert!(allowed_on_loopback(&headers));
        headers.append(http::header::HOST, "localhost".parse().unwrap());
        assert!(allowed_on_loopback(&headers));
        headers.append(http::header::HOST, "localhost".parse().unwrap());
        assert!(!allowed_on_loopback(&headers));
    }
}
