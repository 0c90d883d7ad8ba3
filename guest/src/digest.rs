//! SHA-256, HMAC-SHA256 and lowercase hex, shared by shared-state sealing
//! ([`crate::shared::seal`]) and SigV4 signing ([`crate::sigv4`]) so that the
//! guest carries one HMAC over the one `sha2` it already links.

use crate::prelude::*;
use sha2::{Digest, Sha256};

/// SHA-256 block size: HMAC pads (or first hashes) its key to this.
const BLOCK: usize = 64;

/// SHA-256 of the concatenated `parts`.
pub fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// HMAC-SHA256 (RFC 2104) of the concatenated `parts` under `key`. Keys longer
/// than a block are hashed first, as the RFC says; SigV4's first key
/// (`"AWS4"` + a secret key of any length) can be.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    HmacKey::new(key).mac(parts)
}

/// An HMAC-SHA256 key with its padded blocks already hashed: each MAC under it
/// then costs two compressions fewer. Shared-state ids are MACs under one key,
/// several per request on a fresh instance, so the key is prepared once when
/// the configuration loads. No `Debug`: the states are the key.
#[derive(Clone)]
pub struct HmacKey {
    inner: Sha256,
    outer: Sha256,
}

impl HmacKey {
    pub fn new(key: &[u8]) -> HmacKey {
        let hashed;
        let key = if key.len() > BLOCK {
            hashed = sha256(&[key]);
            &hashed[..]
        } else {
            key
        };
        let mut ipad = [0x36u8; BLOCK];
        let mut opad = [0x5cu8; BLOCK];
        for (i, k) in key.iter().enumerate() {
            ipad[i] ^= k;
            opad[i] ^= k;
        }
        let (mut inner, mut outer) = (Sha256::new(), Sha256::new());
        inner.update(ipad);
        outer.update(opad);
        HmacKey { inner, outer }
    }

    /// HMAC-SHA256 of the concatenated `parts`.
    pub fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut inner = self.inner.clone();
        for part in parts {
            inner.update(part);
        }
        let mut outer = self.outer.clone();
        outer.update(inner.finalize());
        outer.finalize().into()
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Lowercase hex, as SigV4 writes hashes and signatures.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
    out
}

/// The value of one hex digit, either case (`None` for anything else).
pub fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prepared_key_gives_the_same_macs_as_the_one_shot_function() {
        // RFC 4231 test case 2, then a key longer than a block (hashed first).
        let key = HmacKey::new(b"Jefe");
        assert_eq!(hex(&key.mac(&[b"what do ya want ", b"for nothing?"])), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        assert_eq!(key.mac(&[b"a"]), hmac_sha256(b"Jefe", &[b"a"]), "a prepared key is reusable");
        let long = [0xaau8; 131];
        assert_eq!(
            hex(&HmacKey::new(&long).mac(&[b"Test Using Larger Than Block-Size Key - Hash Key First"])),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn sha256_matches_the_empty_and_abc_vectors() {
        assert_eq!(hex(&sha256(&[])), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(hex(&sha256(&[b"a", b"bc"])), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // Case 1: a 20-byte key.
        let mac = hmac_sha256(&[0x0b; 20], &[b"Hi There"]);
        assert_eq!(hex(&mac), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
        // Case 2: a 4-byte key, the message in two parts.
        let mac = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(hex(&mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        // Case 6: a 131-byte key, longer than a block, so hashed first.
        let mac = hmac_sha256(&[0xaa; 131], &[b"Test Using Larger Than Block-Size Key - Hash Key First"]);
        assert_eq!(hex(&mac), "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
        // A 64-byte key is exactly a block: padded, not hashed.
        assert_ne!(hmac_sha256(&[1; 64], &[b"m"]), hmac_sha256(&sha256(&[&[1; 64]]), &[b"m"]));
    }

    #[test]
    fn hex_is_lowercase_and_two_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
        assert_eq!(hex(&[]), "");
    }
}

