//! GCP service-account keys: reading the JSON key file Google issues, and
//! signing the component's own access tokens with it.
//!
//! Google APIs accept a "self-signed JWT" in place of an OAuth access token
//! (AIP-4111): an RS256 JWT whose `iss` and `sub` are the service account,
//! whose `aud` is the API's root URL and whose header names the key (`kid`).
//! No token exchange is needed, so this method makes no network calls of its
//! own; the engine re-signs before `exp`.
//!
//! Nothing here ever puts key material, the key file's text or a signed token
//! into an error or a `Debug`: errors name the field that is wrong and say
//! why, from fixed text.

use crate::prelude::*;
use alloc::boxed::Box;
use core::cell::OnceCell;
use core::fmt;

use base64ct::{Base64UrlUnpadded, Encoding};
use rsa::errors::Error as RsaError;
use rsa::pkcs1::der::asn1::UintRef;
use rsa::pkcs1::der::Decode;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::{PrivateKeyInfo, SecretDocument};
use rsa::rand_core::{CryptoRng, RngCore};
use rsa::signature::{RandomizedSigner, SignatureEncoding};
use rsa::traits::PrivateKeyParts;
use rsa::{BigUint, RsaPrivateKey, RsaPublicKey};
use serde_json::Value;
use sha2::Sha256;

use super::IssuedToken;
use crate::secret::SecretBytes;

/// The audience of self-signed JWTs for Secret Manager: the API's root URL
/// with its trailing slash, as AIP-4111 specifies.
pub const AUDIENCE: &str = "https://secretmanager.googleapis.com/";

/// How long a signed token is valid, in seconds: Google's maximum.
pub const DEFAULT_LIFETIME_S: u64 = 3600;

/// Google rejects self-signed JWTs whose `exp` is more than an hour after `iat`.
const MAX_LIFETIME_S: u64 = 3600;

/// Smaller RSA keys are not safe to sign with; Google issues 2048-bit keys.
const MIN_BITS: usize = 2048;

/// `RsaPublicKey::MAX_SIZE`, the `rsa` crate's limit for public keys, applied
/// to private keys too (the crate does not check them): a larger key would
/// only cost signing time.
const MAX_BITS: usize = RsaPublicKey::MAX_SIZE;

/// A 4096-bit PKCS#8 PEM is ~3.3 KB: anything far longer is not a key, and
/// would only cost time to decode.
const MAX_PEM_BYTES: usize = 16 * 1024;

/// A parsed service-account key. `Debug` shows the account and key id only.
///
/// Parsing checks everything that needs no bignum arithmetic (the encoding,
/// the algorithm, the sizes, the public exponent) and keeps the key's DER;
/// the `rsa` key is built, and its numbers checked against each other, at the
/// first signature. Every request under Spin is a fresh instance that loads
/// its configuration, while a signature is needed about once an hour per
/// deployment (tokens are shared), so building it at load time was paid on
/// every request for nothing.
pub struct ServiceAccountKey {
    pub client_email: String,
    pub private_key_id: String,
    /// The modulus size, read from the DER.
    bits: usize,
    /// The key as a PKCS#1 `RSAPrivateKey` (DER, unwrapped from PKCS#8 when
    /// it came that way), checked by [`check_rsa_private_key`]. Wiped when
    /// dropped.
    der: SecretBytes,
    /// RS256 (PKCS#1 v1.5 with SHA-256), built from `der` at the first
    /// signature; an inconsistent key's error is kept too, so it is not
    /// rebuilt at every attempt. The `rsa` crate wipes the key's numbers when
    /// it is dropped. Boxed: the key's numbers are ~1 KB inline, and this sits
    /// in `Credential` next to small variants. A `OnceCell`, not `Sync`: the
    /// component is single-threaded, and nothing holding a `Credential` is
    /// shared between threads.
    signing_key: OnceCell<Result<Box<SigningKey<Sha256>>, &'static str>>,
}

impl fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("private_key_id", &self.private_key_id)
            .finish_non_exhaustive()
    }
}

impl ServiceAccountKey {
    /// The modulus size, in bits.
    pub fn bits(&self) -> usize {
        self.bits
    }

    /// The RS256 signing key, built at the first call. An `Err` names what is
    /// wrong with the key, from fixed text.
    fn signing_key(&self) -> Result<&SigningKey<Sha256>, String> {
        match self.signing_key.get_or_init(|| build_signing_key(&self.der)) {
            Ok(key) => Ok(key),
            Err(why) => Err(format!("`private_key` is not a valid RSA private key ({why})")),
        }
    }

    #[cfg(test)]
    fn rsa_key(&self) -> Result<&RsaPrivateKey, String> {
        self.signing_key().map(|key| key.as_ref())
    }
}

/// Reads a service-account key file (the JSON Google issues). Fields other
/// than `type`, `client_email`, `private_key_id` and `private_key` (project
/// id, token URI, ...) are allowed and ignored.
///
/// Cheap: the key's numbers are checked against each other at the first
/// signature (see [`ServiceAccountKey`]), so a key that is well formed but
/// whose numbers do not belong together is refused by [`self_signed_jwt`].
pub fn parse(json: &str) -> Result<ServiceAccountKey, String> {
    // Parsed as a `Value`, never into typed fields: serde's type errors quote
    // the offending value, which could be the key. Syntax errors carry only a
    // position.
    let doc: Value = serde_json::from_str(json)
        .map_err(|e| format!("not JSON at line {} column {}", e.line(), e.column()))?;
    let Value::Object(fields) = doc else {
        return Err("not a JSON object (a service-account key file is one)".into());
    };
    let text = |name: &str| -> Result<&str, String> {
        match fields.get(name) {
            None | Some(Value::Null) => Err(format!("missing `{name}`")),
            Some(Value::String(s)) if s.trim().is_empty() => Err(format!("`{name}` is empty")),
            Some(Value::String(s)) => Ok(s.as_str()),
            Some(_) => Err(format!("`{name}` must be a string")),
        }
    };

    let kind = text("type")?;
    if kind != "service_account" {
        return Err(format!("`type` must be `service_account`, got {}", describe_type(kind)));
    }
    let client_email = text("client_email")?;
    if client_email.len() > 254 || !client_email.contains('@') || !printable(client_email) {
        return Err("`client_email` is not an email address".into());
    }
    let private_key_id = text("private_key_id")?;
    if private_key_id.len() > 128 || !printable(private_key_id) {
        return Err("`private_key_id` must be at most 128 printable characters".into());
    }
    // The key is held in a wiping container while it is decoded. (The JSON
    // parser's own copy is freed unwiped, like every transient copy: see
    // `crate::secret`.)
    let pem = SecretBytes::new(text("private_key")?.trim().as_bytes().to_vec());
    let (der, bits) = decode_private_key(&pem)?;
    Ok(ServiceAccountKey {
        client_email: client_email.to_string(),
        private_key_id: private_key_id.to_string(),
        bits,
        der,
        signing_key: OnceCell::new(),
    })
}

/// What to call a wrong `type` in an error: the known credential kinds by
/// name (with what to do), anything else only by shape, since it is the
/// caller's text.
fn describe_type(kind: &str) -> String {
    match kind {
        "authorized_user" => "`authorized_user` (a user's credentials: create a service-account key instead)".into(),
        "external_account" => "`external_account` (workload identity federation is not supported)".into(),
        "impersonated_service_account" => "`impersonated_service_account` (not supported)".into(),
        k if k.len() <= 40 && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') => format!("`{k}`"),
        _ => "a value that is not a credential type".into(),
    }
}

/// Printable ASCII, no spaces: what emails and key ids are, and what can go
/// into a JWT and a log line without surprises.
fn printable(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_graphic())
}

/// PEM to the key's PKCS#1 DER and modulus size. PKCS#8 (`BEGIN PRIVATE
/// KEY`) is what Google issues; PKCS#1 (`BEGIN RSA PRIVATE KEY`) is what
/// OpenSSL's older tools write.
fn decode_private_key(pem: &SecretBytes) -> Result<(SecretBytes, usize), String> {
    const NOT_PEM: &str = "`private_key` is not a PEM RSA private key";
    if pem.len() > MAX_PEM_BYTES {
        return Err(format!("`private_key` is longer than {MAX_PEM_BYTES} bytes; it is not a key"));
    }
    let pem = core::str::from_utf8(pem.expose()).map_err(|_| NOT_PEM.to_string())?;
    let label = pem
        .strip_prefix("-----BEGIN ")
        .and_then(|rest| rest.split_once("-----"))
        .map(|(label, _)| label)
        .ok_or_else(|| NOT_PEM.to_string())?;
    // The crates' own errors are not passed on: mapped to fixed text, so no
    // error can ever echo a decoded byte.
    let invalid = |what: &str| format!("`private_key` is not a valid RSA private key ({what})");
    let pkcs1 = match label {
        "PRIVATE KEY" => {
            let (_, der) = SecretDocument::from_pem(pem).map_err(|_| invalid("bad PEM or DER encoding"))?;
            let info = PrivateKeyInfo::from_der(der.as_bytes()).map_err(|_| invalid("bad PKCS#8 structure"))?;
            if info.algorithm.oid != rsa::pkcs1::ALGORITHM_OID {
                return Err(format!("`private_key` is not an RSA key (PKCS#8 algorithm {})", info.algorithm.oid));
            }
            // RFC 8017 A.1: rsaEncryption's parameters are NULL (as `rsa` checks).
            if !matches!(info.algorithm.parameters, Some(p) if p.is_null()) {
                return Err(invalid("PKCS#8 algorithm parameters are not NULL"));
            }
            SecretBytes::new(info.private_key.to_vec())
        }
        "RSA PRIVATE KEY" => {
            let (_, der) = SecretDocument::from_pem(pem).map_err(|_| invalid("bad PEM or DER encoding"))?;
            SecretBytes::new(der.as_bytes().to_vec())
        }
        "ENCRYPTED PRIVATE KEY" => return Err("`private_key` is encrypted; the key file must hold it unencrypted".into()),
        "EC PRIVATE KEY" | "OPENSSH PRIVATE KEY" | "DSA PRIVATE KEY" => return Err("`private_key` is not an RSA key".into()),
        _ => return Err(NOT_PEM.into()),
    };
    let bits = check_rsa_private_key(pkcs1.expose())?;
    Ok((pkcs1, bits))
}

/// Checks a PKCS#1 `RSAPrivateKey` as far as can be done without bignum
/// arithmetic, and returns the modulus size in bits: the DER structure, two
/// primes, the modulus size, the public exponent (what `rsa`'s own
/// `check_public` requires), and that the primes' sizes fit the modulus. What
/// is left (`n = p·q`, `d·e ≡ 1 mod p−1, q−1`) is checked when the key is
/// built, at the first signature.
fn check_rsa_private_key(der: &[u8]) -> Result<usize, String> {
    let invalid = |what: &str| format!("`private_key` is not a valid RSA private key ({what})");
    let key = rsa::pkcs1::RsaPrivateKey::from_der(der).map_err(|_| invalid("bad PKCS#1 structure"))?;
    // `rsa` builds two-prime keys only.
    if key.other_prime_infos.is_some() {
        return Err(invalid("a multi-prime key; two primes are required"));
    }
    let bits = bit_length(key.modulus);
    if bits < MIN_BITS {
        return Err(format!("`private_key` is a {bits}-bit RSA key; at least {MIN_BITS} bits are required"));
    }
    if bits > MAX_BITS {
        return Err(format!("`private_key` is a {bits}-bit RSA key; at most {MAX_BITS} bits are supported"));
    }
    if key.modulus.as_bytes().last().is_some_and(|b| b & 1 == 0) {
        return Err(invalid("the modulus is even"));
    }
    // An exponent this small is below the modulus, as `rsa` requires.
    let e = key.public_exponent.as_bytes();
    let e = (e.len() <= 8).then(|| e.iter().fold(0u64, |acc, &b| acc << 8 | u64::from(b)));
    match e {
        Some(e) if e & 1 == 0 => return Err(invalid("the public exponent is even")),
        Some(e) if (RsaPublicKey::MIN_PUB_EXPONENT..=RsaPublicKey::MAX_PUB_EXPONENT).contains(&e) => {}
        _ => return Err(invalid("the public exponent is out of range")),
    }
    let (p, q) = (bit_length(key.prime1), bit_length(key.prime2));
    if p <= 1 || q <= 1 || bit_length(key.private_exponent) == 0 {
        return Err(invalid("a prime or the private exponent is 0 or 1"));
    }
    // The product of a p-bit and a q-bit number has p+q−1 or p+q bits.
    if p + q != bits && p + q != bits + 1 {
        return Err(invalid("the primes' sizes do not match the modulus"));
    }
    Ok(bits)
}

/// The number of significant bits of a DER unsigned integer.
fn bit_length(n: UintRef<'_>) -> usize {
    let bytes = n.as_bytes();
    match bytes.iter().position(|&b| b != 0) {
        Some(i) => (bytes.len() - i) * 8 - bytes[i].leading_zeros() as usize,
        None => 0,
    }
}

/// Builds the `rsa` key from a PKCS#1 DER that [`check_rsa_private_key`]
/// passed: the bignum work deferred from [`parse`]. The `Err` says which of
/// the key's numbers do not belong together (fixed text, no number).
fn build_signing_key(der: &SecretBytes) -> Result<Box<SigningKey<Sha256>>, &'static str> {
    let key = rsa::pkcs1::RsaPrivateKey::from_der(der.expose()).map_err(|_| "bad PKCS#1 structure")?;
    let n = |u: UintRef<'_>| BigUint::from_bytes_be(u.as_bytes());
    let primes = vec![n(key.prime1), n(key.prime2)];
    // Validates (`n = p·q`, the exponents) and precomputes the CRT values.
    let key = RsaPrivateKey::from_components(n(key.modulus), n(key.public_exponent), n(key.private_exponent), primes)
        .map_err(|e| match e {
            RsaError::InvalidModulus => "the primes' product is not the modulus",
            RsaError::InvalidExponent => "the private exponent does not match the public exponent and primes",
            RsaError::InvalidPrime => "a prime is 0 or 1",
            RsaError::PublicExponentTooSmall | RsaError::PublicExponentTooLarge => "the public exponent is out of range",
            _ => "inconsistent key numbers",
        })?;
    // `from_components` ignores a failed precomputation (the primes have no
    // common inverse, so they are not primes); signing would then be slow
    // and wrong.
    if key.qinv().is_none() {
        return Err("the primes are not coprime");
    }
    Ok(Box::new(SigningKey::<Sha256>::new(key)))
}

/// Signs a self-signed JWT for `audience` (see [`AUDIENCE`]), issued at
/// `now_unix_s` and valid for `lifetime_s` (1 to 3600 s, see
/// [`DEFAULT_LIFETIME_S`]). `random` blinds the RSA operation, so signing
/// takes the same time whatever the key; give it a real random source
/// (`wasi:random`).
pub fn self_signed_jwt(
    key: &ServiceAccountKey,
    audience: &str,
    now_unix_s: u64,
    lifetime_s: u64,
    random: &mut dyn FnMut() -> u64,
) -> Result<IssuedToken, String> {
    if lifetime_s == 0 || lifetime_s > MAX_LIFETIME_S {
        return Err(format!("token lifetime must be 1 to {MAX_LIFETIME_S} s, got {lifetime_s}"));
    }
    if audience.is_empty() || audience.len() > 256 || !printable(audience) {
        return Err("audience must be a URL of at most 256 printable characters".into());
    }
    // JSON numbers beyond 2^53 lose precision in many verifiers; a clock that
    // far off is broken anyway.
    let exp = now_unix_s.checked_add(lifetime_s).filter(|&exp| exp < 1 << 53).ok_or("the clock is out of range")?;
    let header = serde_json::json!({ "alg": "RS256", "typ": "JWT", "kid": key.private_key_id });
    let claims = serde_json::json!({
        "iss": key.client_email,
        "sub": key.client_email,
        "aud": audience,
        "iat": now_unix_s,
        "exp": exp,
    });
    let mut token = String::with_capacity(700);
    token.push_str(&Base64UrlUnpadded::encode_string(header.to_string().as_bytes()));
    token.push('.');
    token.push_str(&Base64UrlUnpadded::encode_string(claims.to_string().as_bytes()));
    let signature = key
        .signing_key()?
        .try_sign_with_rng(&mut Blinding::new(random), token.as_bytes())
        .map_err(|_| String::from("RSA signing failed"))?;
    token.push('.');
    token.push_str(&Base64UrlUnpadded::encode_string(&signature.to_bytes()));
    Ok(IssuedToken { token: SecretBytes::from(token), ttl_ms: lifetime_s * 1000, renewable: false })
}

/// The caller's random source as the `rand_core` RNG `rsa` blinds with.
///
/// Each draw is passed through a bijection keyed by a counter. A good source
/// stays exactly as good (a bijection of a uniform value is uniform); a
/// broken one (a host handing out constant bytes) can then still not stall
/// the guest: `rsa` draws blinding factors by rejection sampling, which with a
/// constant all-ones source would never finish.
struct Blinding<'a> {
    random: &'a mut dyn FnMut() -> u64,
    counter: u64,
}

impl<'a> Blinding<'a> {
    fn new(random: &'a mut dyn FnMut() -> u64) -> Self {
        Blinding { random, counter: 0 }
    }
}

impl RngCore for Blinding<'_> {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }

    fn next_u64(&mut self) -> u64 {
        self.counter = self.counter.wrapping_add(0x9E37_79B9_7F4A_7C15);
        // SplitMix64's finaliser: invertible, so it maps distinct inputs to distinct outputs.
        let mut z = (self.random)() ^ self.counter;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        rsa::rand_core::impls::fill_bytes_via_next(self, dest);
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

// The caller promises a cryptographic source (`wasi:random/random`).
impl CryptoRng for Blinding<'_> {}

#[cfg(test)]
#[path = "tests_service_account.rs"]
mod tests;
