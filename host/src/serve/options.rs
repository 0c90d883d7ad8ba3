//! [`ServeOptions`]: the server's knobs, their defaults, and the checks `Server::start` runs on
//! them before it binds anything.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::ServeError;

/// Server knobs. Secret-free (TLS is given as file paths), so it derives `Debug`.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Where to listen; port 0 picks a free port (see [`Server::local_addr`](super::Server::local_addr)).
    /// An address that is not loopback needs [`ServeOptions::tls`] or
    /// [`ServeOptions::allow_plaintext`].
    pub listen: SocketAddr,
    /// Every request gets a fresh instance (empty cache, closed breakers) instead of Spin's
    /// reuse; the answers must be the same.
    pub fresh_instance_per_request: bool,
    /// Requests handled by the server at once; more wait for a slot.
    pub max_in_flight: usize,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
    /// How long a client has to send a complete request head (and, with TLS, to finish the
    /// handshake). hyper starts this clock whenever a connection waits for a request, so it is
    /// also how long a keep-alive connection may sit idle between requests.
    pub header_read_timeout: Duration,
    /// Connections open at once. The next one is accepted only when one closes (until then it
    /// waits in the kernel's listen backlog), so a flood of idle connections cannot exhaust the
    /// process's file descriptors. Lowered at start to fit the open-file limit.
    pub max_connections: usize,
    /// Requests one connection may carry; the last one is answered with `Connection: close`.
    pub max_requests_per_connection: u32,
    /// Failed authentications (401/403 answers) one connection may collect; its next request
    /// is answered 429 with `Retry-After` and the connection is closed, without running the app.
    pub max_auth_failures_per_connection: u32,
    /// Serve HTTPS with this certificate chain and key (PEM files).
    pub tls: Option<TlsFiles>,
    /// Allow plain HTTP on an address that is not loopback (e.g. behind a TLS-terminating
    /// proxy). Without it such a listener needs `tls`: bearer tokens and secret values would
    /// otherwise cross the network in clear text.
    pub allow_plaintext: bool,
}

/// PEM files for HTTPS: the certificate chain (leaf first) and its private key (PKCS#8, PKCS#1
/// or SEC1).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert_chain: PathBuf,
    pub private_key: PathBuf,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            fresh_instance_per_request: false,
            max_in_flight: 1024,
            shutdown_grace: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
            max_connections: 4096,
            max_requests_per_connection: 1000,
            max_auth_failures_per_connection: 5,
            tls: None,
            allow_plaintext: false,
        }
    }
}

/// File descriptors kept for everything but client connections: outbound backend connections,
/// Redis, the compile cache, the listener.
const RESERVED_FDS: u64 = 256;

impl ServeOptions {
    /// Refuses values that would disable a limit (zero) and plain HTTP off loopback; returns
    /// the connection cap to use, lowered to fit the open-file limit (with a note saying so).
    pub(super) fn check(&self) -> Result<(usize, Option<String>), ServeError> {
        let zero = [
            ("max_in_flight", self.max_in_flight == 0),
            ("header_read_timeout", self.header_read_timeout.is_zero()),
            ("max_connections", self.max_connections == 0),
            ("max_requests_per_connection", self.max_requests_per_connection == 0),
            ("max_auth_failures_per_connection", self.max_auth_failures_per_connection == 0),
        ];
        if let Some((name, _)) = zero.iter().find(|(_, is_zero)| *is_zero) {
            return Err(ServeError::Setup(format!("{name} must be greater than zero")));
        }
        if !self.listen.ip().is_loopback() && self.tls.is_none() && !self.allow_plaintext {
            return Err(ServeError::Plaintext { addr: self.listen });
        }
        Ok(fit_to_fd_limit(self.max_connections, open_file_limit()))
    }
}

fn fit_to_fd_limit(wanted: usize, limit: Option<u64>) -> (usize, Option<String>) {
    let Some(limit) = limit else { return (wanted, None) };
    let fits = usize::try_from(limit.saturating_sub(RESERVED_FDS)).unwrap_or(usize::MAX).max(1);
    if wanted <= fits {
        return (wanted, None);
    }
    let note = format!("max_connections lowered from {wanted} to {fits}: the open-file limit is {limit} ({RESERVED_FDS} kept for backends)");
    (fits, Some(note))
}

#[cfg(unix)]
fn open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 || limit.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is u64 on Linux, not on every Unix
    Some(limit.rlim_cur as u64)
}

#[cfg(not(unix))]
fn open_file_limit() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_cap_is_lowered_below_the_open_file_limit() {
        assert_eq!(fit_to_fd_limit(4096, None), (4096, None));
        assert_eq!(fit_to_fd_limit(4096, Some(20_000)), (4096, None));
        let (cap, note) = fit_to_fd_limit(4096, Some(1024));
        assert_eq!(cap, 768);
        assert!(note.unwrap().contains("open-file limit is 1024"));
        assert_eq!(fit_to_fd_limit(10, Some(100)).0, 1, "never zero");
    }

    #[test]
    fn zero_limits_and_plaintext_off_loopback_are_refused() {
        let zero = ServeOptions { max_connections: 0, ..ServeOptions::default() };
        assert!(matches!(zero.check(), Err(ServeError::Setup(m)) if m.contains("max_connections")));
        let zero = ServeOptions { header_read_timeout: Duration::ZERO, ..ServeOptions::default() };
        assert!(matches!(zero.check(), Err(ServeError::Setup(m)) if m.contains("header_read_timeout")));
        let open = ServeOptions { listen: SocketAddr::from(([0, 0, 0, 0], 0)), ..ServeOptions::default() };
        assert!(matches!(open.check(), Err(ServeError::Plaintext { .. })));
        assert!(ServeOptions { allow_plaintext: true, ..open }.check().is_ok());
    }
}
