//! Exit codes: one per error kind, so scripts can react without parsing messages.

use edge_secrets_host::ErrorKind;

/// Success.
pub const OK: u8 = 0;
/// Bad arguments (clap uses 2 as well) or an unusable config file.
pub const USAGE: u8 = 2;

/// The documented table (also shown by `--help`).
pub const TABLE: &[(u8, &str)] = &[
    (OK, "ok"),
    (USAGE, "usage error, or the config file is unreadable or invalid"),
    (3, "invalid-request: bad secret name, version or field"),
    (4, "unknown-environment: no such environment in the policy"),
    (5, "not-found: no such secret, version or field"),
    (6, "permission-denied: the backend rejected the credential"),
    (7, "unavailable: the environment's circuit breaker is open"),
    (8, "timeout: the call exceeded the environment's deadline"),
    (9, "rate-limited: the backend throttled the call"),
    (10, "backend: the backend failed after retries or answered badly"),
    (11, "config: the component rejected its configuration"),
    (12, "host: the component trapped, hit the host deadline, or could not start"),
];

pub fn code(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::InvalidRequest => 3,
        ErrorKind::UnknownEnvironment => 4,
        ErrorKind::NotFound => 5,
        ErrorKind::PermissionDenied => 6,
        ErrorKind::Unavailable => 7,
        ErrorKind::Timeout => 8,
        ErrorKind::RateLimited => 9,
        ErrorKind::Backend => 10,
        ErrorKind::Config => 11,
        ErrorKind::Host => 12,
    }
}

/// The table as `--help` text.
pub fn help() -> String {
    let mut text = String::from("Exit codes:\n");
    for (code, meaning) in TABLE {
        text.push_str(&format!("  {code:>3}  {meaning}\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    const ALL: [ErrorKind; 10] = [
        ErrorKind::InvalidRequest,
        ErrorKind::UnknownEnvironment,
        ErrorKind::NotFound,
        ErrorKind::PermissionDenied,
        ErrorKind::Unavailable,
        ErrorKind::Timeout,
        ErrorKind::RateLimited,
        ErrorKind::Backend,
        ErrorKind::Config,
        ErrorKind::Host,
    ];

    #[test]
    fn every_kind_has_its_own_documented_code() {
        let codes: BTreeSet<u8> = ALL.iter().map(|k| code(*k)).collect();
        assert_eq!(codes.len(), ALL.len(), "two kinds share an exit code");
        let documented: BTreeSet<u8> = TABLE.iter().map(|(c, _)| *c).collect();
        assert_eq!(documented.len(), TABLE.len(), "duplicate rows in the table");
        for c in &codes {
            assert!(documented.contains(c), "exit code {c} is not documented");
            assert!(*c != OK && *c != USAGE, "exit code {c} collides with ok/usage");
        }
        assert_eq!(documented.len(), codes.len() + 2, "the table documents codes nothing returns");
    }

    #[test]
    fn table_rows_name_the_wit_case() {
        for (kind, name) in [
            (ErrorKind::InvalidRequest, "invalid-request"),
            (ErrorKind::UnknownEnvironment, "unknown-environment"),
            (ErrorKind::NotFound, "not-found"),
            (ErrorKind::PermissionDenied, "permission-denied"),
            (ErrorKind::Unavailable, "unavailable"),
            (ErrorKind::Timeout, "timeout"),
            (ErrorKind::RateLimited, "rate-limited"),
            (ErrorKind::Backend, "backend"),
            (ErrorKind::Config, "config"),
            (ErrorKind::Host, "host"),
        ] {
            let row = TABLE.iter().find(|(c, _)| *c == code(kind)).expect("documented");
            assert!(row.1.starts_with(name), "code {} is documented as {:?}, expected {name}", row.0, row.1);
        }
        assert!(help().contains("  12  host:"), "{}", help());
    }
}
