//! Sealing shared-state records: ChaCha20-Poly1305 with the record's identity
//! (kind, environment, name, version, field) as associated data, and entry ids
//! that are HMAC-SHA256 of that identity.
//!
//! Why both: the AEAD makes a bucket dump unreadable and an edited entry fail
//! to open; binding the identity as associated data makes an entry copied under
//! another key (a swap) fail to open too. The keyed ids keep secret *names* out
//! of the bucket's key list, which a dump would otherwise show in clear.

use crate::prelude::*;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use crate::digest::{hex, hex_digit, HmacKey};
use core::fmt;

/// Format byte of a sealed record; bumped if the layout ever changes.
const FORMAT: u8 = 1;
const NONCE_LEN: usize = 12;
/// Format byte + nonce + Poly1305 tag.
pub const OVERHEAD: usize = 1 + NONCE_LEN + 16;

/// The two keys derived from the configured master key. No `Debug` that shows them.
#[derive(Clone)]
pub struct SealKey {
    cipher: [u8; 32],
    /// The id key, prepared: a fresh instance computes several ids per request.
    ids: HmacKey,
}

impl fmt::Debug for SealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealKey(<redacted>)")
    }
}

/// Why a sealed record was refused. Says nothing about its contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// Too short, or an unknown format byte.
    Malformed,
    /// The tag did not verify: edited, swapped, or sealed under another key.
    Forged,
}

impl SealKey {
    /// Parses a master key written as 64 hex digits (32 bytes).
    pub fn from_hex(text: &str) -> Result<SealKey, String> {
        let text = text.trim();
        if text.len() != 64 {
            return Err(format!("must be 64 hex digits (32 bytes), got {} characters", text.len()));
        }
        let mut master = [0u8; 32];
        for (i, pair) in text.as_bytes().chunks(2).enumerate() {
            let hi = hex_digit(pair[0]).ok_or("must be hex digits only")?;
            let lo = hex_digit(pair[1]).ok_or("must be hex digits only")?;
            master[i] = (hi << 4) | lo;
        }
        Ok(SealKey::from_master(&master))
    }

    /// Derives the cipher and id keys from a master key, so that neither is the
    /// master key itself and the two uses never share a key.
    pub fn from_master(master: &[u8; 32]) -> SealKey {
        let master = HmacKey::new(master);
        SealKey { cipher: master.mac(&[b"edge-secrets/v1/cipher"]), ids: HmacKey::new(&master.mac(&[b"edge-secrets/v1/ids"])) }
    }

    /// A bucket key for a record: `es1-<kind>-<32 hex digits>`, the first 16
    /// bytes of HMAC-SHA256 over the identity parts. Deterministic, so every
    /// instance finds the same entry; keyed, so names cannot be guessed from it.
    pub fn entry_id(&self, kind: &str, parts: &[&[u8]]) -> String {
        let mut all: Vec<&[u8]> = Vec::with_capacity(parts.len() + 1);
        all.push(kind.as_bytes());
        all.extend_from_slice(parts);
        let mac = self.ids.mac(&[&framed(&all)]);
        format!("es1-{kind}-{}", hex(&mac[..16]))
    }

    /// Encrypts `plain`, binding `identity` (see [`identity`]).
    pub fn seal(&self, identity: &[u8], plain: &[u8], nonce: [u8; NONCE_LEN]) -> Vec<u8> {
        let cipher = ChaCha20Poly1305::new(Key::from_slice(&self.cipher));
        // Encryption only fails on inputs above ~256 GiB, which a guest cannot hold.
        let sealed = cipher.encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad: identity }).unwrap_or_default();
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(FORMAT);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Decrypts a sealed record, checking it was sealed for `identity`.
    pub fn open(&self, identity: &[u8], sealed: &[u8]) -> Result<Vec<u8>, Rejected> {
        if sealed.len() < OVERHEAD || sealed[0] != FORMAT {
            return Err(Rejected::Malformed);
        }
        let (nonce, body) = sealed[1..].split_at(NONCE_LEN);
        let cipher = ChaCha20Poly1305::new(Key::from_slice(&self.cipher));
        cipher.decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad: identity }).map_err(|_| Rejected::Forged)
    }
}

/// The associated data for a record: its kind and identity parts, each
/// length-prefixed so that (`a/b`, `c`) and (`a`, `b/c`) never collide.
pub fn identity(kind: &str, parts: &[&[u8]]) -> Vec<u8> {
    let mut all: Vec<&[u8]> = Vec::with_capacity(parts.len() + 2);
    all.push(b"edge-secrets/v1");
    all.push(kind.as_bytes());
    all.extend_from_slice(parts);
    framed(&all)
}

fn framed(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}


#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SealKey {
        SealKey::from_hex(&"0f".repeat(32)).unwrap()
    }

    #[test]
    fn sealed_records_open_only_under_their_identity() {
        let k = key();
        let id_a = identity("cache", &[b"prod", b"app/db"]);
        let id_b = identity("cache", &[b"prod", b"app/dc"]);
        let sealed = k.seal(&id_a, b"hunter2", [7; 12]);
        assert_eq!(k.open(&id_a, &sealed).unwrap(), b"hunter2");
        assert_eq!(k.open(&id_b, &sealed), Err(Rejected::Forged), "a swapped entry must not open");
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"), "the plaintext is not in the sealed bytes");
        let mut edited = sealed.clone();
        let last = edited.len() - 1;
        edited[last] ^= 1;
        assert_eq!(k.open(&id_a, &edited), Err(Rejected::Forged));
        let other = SealKey::from_hex(&"1f".repeat(32)).unwrap();
        assert_eq!(other.open(&id_a, &sealed), Err(Rejected::Forged), "another key cannot open it");
        assert_eq!(k.open(&id_a, &sealed[..OVERHEAD - 1]), Err(Rejected::Malformed));
        let mut wrong_format = sealed;
        wrong_format[0] = 9;
        assert_eq!(k.open(&id_a, &wrong_format), Err(Rejected::Malformed));
    }

    #[test]
    fn identity_parts_are_framed() {
        assert_ne!(identity("c", &[b"a/b", b"c"]), identity("c", &[b"a", b"b/c"]));
        assert_ne!(key().entry_id("c", &[b"ab", b""]), key().entry_id("c", &[b"a", b"b"]));
    }

    #[test]
    fn entry_ids_are_stable_keyed_and_hide_the_name() {
        let k = key();
        let id = k.entry_id("cache", &[b"prod", b"app/db"]);
        assert_eq!(id, k.entry_id("cache", &[b"prod", b"app/db"]));
        assert!(id.starts_with("es1-cache-") && id.len() == "es1-cache-".len() + 32, "{id}");
        assert!(!id.contains("app") && !id.contains("prod"));
        let other = SealKey::from_hex(&"1f".repeat(32)).unwrap();
        assert_ne!(id, other.entry_id("cache", &[b"prod", b"app/db"]));
    }

    #[test]
    fn master_keys_must_be_64_hex_digits() {
        assert!(SealKey::from_hex(&"ab".repeat(32)).is_ok());
        assert!(SealKey::from_hex(&"AB".repeat(32)).is_ok());
        assert!(SealKey::from_hex("abcd").unwrap_err().contains("64 hex digits"));
        assert!(SealKey::from_hex(&"zz".repeat(32)).unwrap_err().contains("hex digits only"));
        assert_eq!(format!("{:?}", key()), "SealKey(<redacted>)");
    }
}
