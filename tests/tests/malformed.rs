//! Hostile or broken backend answers become typed errors: never a trap, never a lost instance.

use edge_secrets_host::SecretError;
use edge_secrets_tests::harness::secret_error;
use edge_secrets_tests::{Fault, Harness};

/// After each fault the same instance keeps serving: its counters survive (a trap would have
/// replaced the instance and reset them).
fn still_serving(h: &mut Harness) {
    h.backend.clear_faults();
    assert_eq!(h.get("prod", "app/db").unwrap().value.expose(), b"pw-one");
    let stats = h.client.stats().unwrap();
    assert!(stats[0].misses >= 2, "the instance was replaced: {stats:?}");
}

#[test]
fn malformed_json_is_a_backend_error() {
    let mut h = Harness::vault();
    h.backend.fail_next(1, Fault::Malformed);
    assert!(matches!(secret_error(h.get("prod", "app/db")), SecretError::Backend { status: Some(200), .. }));
    still_serving(&mut h);
}

#[test]
fn truncated_json_is_a_backend_error() {
    let mut h = Harness::vault();
    h.backend.fail_next(1, Fault::Truncated);
    assert!(matches!(secret_error(h.get("prod", "app/db")), SecretError::Backend { .. }));
    still_serving(&mut h);
}

#[test]
fn a_64_mib_body_is_refused_without_running_out_of_memory() {
    for fault in [Fault::HugeBody(64 << 20), Fault::HugeBodyDeclared(64 << 20)] {
        let mut h = Harness::vault();
        h.backend.fail_next(1, fault.clone());
        let err = secret_error(h.get("prod", "app/db"));
        assert!(
            matches!(&err, SecretError::Backend { reason, .. } if reason.contains("exceeds 1048576 bytes")),
            "{fault:?}: {err}"
        );
        assert_eq!(h.backend.request_count(), 1, "an oversized body is not retried");
        still_serving(&mut h);
    }
}

#[test]
fn a_bad_crc32c_is_rejected() {
    let mut h = Harness::start(|p, url| p.gcp("g", url, "proj", "t"));
    h.backend.put_gcp("proj", "s", 1, b"payload");
    h.backend.fail_next(1, Fault::BadCrc);
    let err = secret_error(h.get("g", "s"));
    assert!(matches!(&err, SecretError::Backend { reason, .. } if reason.contains("CRC32C")), "{err}");
    h.backend.clear_faults();
    assert_eq!(h.get("g", "s").unwrap().value.expose(), b"payload");
}

#[test]
fn no_error_message_carries_the_secret_value() {
    let mut h = Harness::vault();
    h.backend.put_vault("app/db", 2, &[("value", "pw-SENTINEL-zz9")]);
    for fault in [Fault::Truncated, Fault::Malformed] {
        h.backend.fail_next(1, fault);
        let err = secret_error(h.get("prod", "app/db"));
        assert!(!format!("{err} {err:?}").contains("SENTINEL"), "{err:?}");
    }
    let secret = h.get("prod", "app/db").unwrap();
    assert!(!format!("{secret:?}").contains("SENTINEL"));
}
