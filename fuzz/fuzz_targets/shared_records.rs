//! The shared-state record decoders (`shared::record`) and `SealKey::open` with a fixed key:
//! what another instance (or anyone with write access to the bucket) stored is untrusted.
//!
//! Input: byte 0 picks the identity the record is opened under; the rest is both a sealed
//! record to open and a plaintext to decode as each record kind.
//!
//! Invariants beyond "no panic": a decoded record encodes back to a record that decodes the
//! same (cache and lease records byte for byte: their layouts have one spelling); a record
//! sealed under the key opens under its identity only, and any edit to it is refused; what
//! `open` accepts is exactly what `seal` produces for that nonce.
#![no_main]

use edge_secrets_guest::shared::record::{BreakerRecord, CacheRecord, LeaseRecord};
use edge_secrets_guest::shared::seal::{self, Rejected, OVERHEAD};
use edge_secrets_guest::shared::SealKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    let key = SealKey::from_master(&[0x5e; 32]);
    let identities = [
        seal::identity("cache", &[b"prod", b"vault", b"app/db", b"latest", b"value"]),
        seal::identity("breaker", &[b"prod", b"vault"]),
        seal::identity("lease", &[b"prod", b"app/db", b"7"]),
    ];
    let identity = &identities[usize::from(which) % identities.len()];

    decode_all(rest);

    // Untrusted sealed bytes: forging is out of reach, so this mostly checks the framing.
    match key.open(identity, rest) {
        Ok(plain) => {
            let nonce: [u8; 12] = rest[1..13].try_into().unwrap();
            assert_eq!(key.seal(identity, &plain, nonce), rest, "open accepted what seal never makes");
            decode_all(&plain);
        }
        Err(Rejected::Malformed) => assert!(rest.len() < OVERHEAD || rest[0] != 1),
        Err(Rejected::Forged) => assert!(rest.len() >= OVERHEAD),
    }

    // The fuzz bytes as a plaintext: sealing round-trips, and every edit is caught.
    let nonce = [which; 12];
    let sealed = key.seal(identity, rest, nonce);
    assert_eq!(sealed.len(), rest.len() + OVERHEAD);
    assert_eq!(key.open(identity, &sealed).as_deref(), Ok(rest));
    for other in identities.iter().filter(|i| *i != identity) {
        assert_eq!(key.open(other, &sealed), Err(Rejected::Forged), "opened under another identity");
    }
    let at = usize::from(which) % sealed.len();
    let mut edited = sealed.clone();
    edited[at] ^= 0x01;
    assert!(key.open(identity, &edited).is_err(), "an edit at byte {at} was not caught");
    assert!(key.open(identity, &sealed[..sealed.len() - 1]).is_err(), "a truncated record opened");
});

fn decode_all(bytes: &[u8]) {
    if let Some(record) = CacheRecord::decode(bytes) {
        assert!(record.encode() == bytes, "a cache record with two spellings");
    }
    if let Some(record) = LeaseRecord::decode(bytes) {
        assert_eq!(record.encode(), bytes, "a lease record with two spellings");
    }
    // The breaker layout has fields a state does not use (ignored when decoding), so only
    // the decoded value must survive a round trip.
    if let Some(record) = BreakerRecord::decode(bytes) {
        assert_eq!(BreakerRecord::decode(&record.encode()), Some(record));
    }
}
