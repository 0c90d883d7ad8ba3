//! The shared-state record decoders (`shared::record`) and `SealKey::open` with a fixed key:
//! what another instance (or anyone with write access to the bucket) stored is untrusted.
//!
//! Input: byte 0 picks the identity the record is opened under; the rest is both a sealed
//! record to open and a plaintext to decode as each record kind, and (from byte 1 on) the
//! fields of a cache record to build: fetched-at, expires-at (8 bytes each, big-endian),
//! tier, negative flag, version length (one byte), version, value.
//!
//! Invariants beyond "no panic": a decoded record encodes back to a record that decodes the
//! same (cache and lease records byte for byte: their layouts have one spelling); a decoded
//! cache record was fetched no later than it expires (the reader relies on it for staleness);
//! a built cache record round-trips field for field (tier, not-found flag, times, version)
//! exactly when its times are in order; a decoded breaker record's window is one a breaker
//! could hold; a record sealed under the key opens under its identity only, and any edit to
//! it is refused; what `open` accepts is exactly what `seal` produces for that nonce.
#![no_main]

use edge_secrets_guest::breaker::{State, Window};
use edge_secrets_guest::shared::record::{BreakerRecord, CacheRecord, CountsRecord, Epoch, LeaseRecord};
use edge_secrets_guest::shared::seal::{self, Rejected, OVERHEAD};
use edge_secrets_guest::shared::SealKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    let key = SealKey::from_master(&[0x5e; 32]);
    // The identities the engine seals under (engine::shared_entries, shared_breaker,
    // shared_lease): kind, environment, backend, epoch, name, version, field; environment,
    // backend kind, tier; environment, name, version.
    let identities = [
        seal::identity("entry", &[b"prod", b"Vault|https://h", &[0; 8], b"app/db", b"latest", b"value"]),
        seal::identity("breaker", &[b"prod", b"vault", &[1]]),
        seal::identity("lease", &[b"prod", b"app/db", b"7"]),
    ];
    let identity = &identities[usize::from(which) % identities.len()];

    decode_all(rest);
    build_cache_record(rest);

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
        assert!(record.fetched_at_ms <= record.expires_at_ms, "a cache record that expired before it was fetched");
    }
    if let Some(record) = LeaseRecord::decode(bytes) {
        assert_eq!(record.encode(), bytes, "a lease record with two spellings");
    }
    if let Some(record) = CountsRecord::decode(bytes) {
        assert_eq!(record.encode(), bytes, "a counts record with two spellings");
    }
    // The breaker layout has fields a state does not use (ignored when decoding), so only
    // the decoded value must survive a round trip.
    if let Some(record) = BreakerRecord::decode(bytes) {
        assert_eq!(BreakerRecord::decode(&record.encode()), Some(record));
        if let State::Closed { window, .. } = record.state {
            // A window from the store is re-checked, not trusted: no outcome beyond the calls
            // held, at most 128 of them.
            assert!(window.calls() <= 128 && window.failures() <= window.calls());
            assert_eq!(Window::from_parts(window.failed_bits(), window.calls() as u8), Some(window));
        }
    }
}

/// A cache record made from the fuzz bytes' fields, encoded and decoded.
fn build_cache_record(bytes: &[u8]) {
    let Some((fetched, rest)) = bytes.split_first_chunk::<8>() else { return };
    let Some((expires, rest)) = rest.split_first_chunk::<8>() else { return };
    let Some((&[tier, negative, len], rest)) = rest.split_first_chunk::<3>() else { return };
    let len = usize::from(len).min(rest.len());
    let Ok(version) = std::str::from_utf8(&rest[..len]) else { return };
    // The epoch from the same bytes as the times: any 16 bytes are one.
    let mut epoch = [0u8; 16];
    epoch[..8].copy_from_slice(fetched);
    epoch[8..].copy_from_slice(expires);
    let record = CacheRecord {
        epoch: Epoch(epoch),
        fetched_at_ms: u64::from_be_bytes(*fetched),
        expires_at_ms: u64::from_be_bytes(*expires),
        tier,
        negative: negative & 1 == 1,
        version: version.to_string(),
        value: rest[len..].to_vec(),
    };
    let encoded = record.encode();
    match CacheRecord::decode(&encoded) {
        Some(back) => {
            assert!(record.fetched_at_ms <= record.expires_at_ms, "a record with its times reversed decoded");
            // Field by field, so a failure says which one (CacheRecord has no Debug: it holds a value).
            assert_eq!(
                (back.epoch, back.fetched_at_ms, back.expires_at_ms, back.tier, back.negative, &back.version),
                (record.epoch, record.fetched_at_ms, record.expires_at_ms, record.tier, record.negative, &record.version)
            );
            assert!(back.value == record.value, "the value changed in a round trip");
        }
        None => assert!(record.fetched_at_ms > record.expires_at_ms, "a well-formed cache record did not decode"),
    }
}
