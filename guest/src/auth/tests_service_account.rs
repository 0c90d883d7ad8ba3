//! Tests of `service_account`. The keys under `guest/tests/fixtures/gcp/` are
//! TEST-ONLY keys generated for these tests (see the README there).

use super::*;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::der::{pem::LineEnding, Encode};
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use rsa::traits::PublicKeyParts;
use rsa::RsaPublicKey;

const KEY_2048: &str = include_str!("../../tests/fixtures/gcp/test_key_2048.pem");
const KEY_2048_PUB: &str = include_str!("../../tests/fixtures/gcp/test_key_2048.pub.pem");
const KEY_2048_PKCS1: &str = include_str!("../../tests/fixtures/gcp/test_key_2048_pkcs1.pem");
const KEY_1024: &str = include_str!("../../tests/fixtures/gcp/test_key_1024.pem");
const KEY_P256: &str = include_str!("../../tests/fixtures/gcp/test_key_p256.pem");

const EMAIL: &str = "edge-secrets@test-project.iam.gserviceaccount.com";
const KID: &str = "0123456789abcdef0123456789abcdef01234567";
const NOW: u64 = 1_700_000_000;

/// A key file as Google issues it, with `private_key` replaced by `pem`.
fn key_file(pem: &str) -> Value {
    serde_json::json!({
        "type": "service_account",
        "project_id": "test-project",
        "private_key_id": KID,
        "private_key": pem,
        "client_email": EMAIL,
        "client_id": "123456789012345678901",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": "https://oauth2.googleapis.com/token",
        "universe_domain": "googleapis.com",
    })
}

fn with(field: &str, value: Value) -> String {
    let mut doc = key_file(KEY_2048);
    doc[field] = value;
    doc.to_string()
}

fn without(field: &str) -> String {
    let mut doc = key_file(KEY_2048);
    doc.as_object_mut().unwrap().remove(field);
    doc.to_string()
}

/// Fails if `text` holds any line of any fixture key (the `-----BEGIN`
/// lines included) or the account's JSON text.
fn assert_no_key_material(text: &str) {
    for pem in [KEY_2048, KEY_2048_PKCS1, KEY_1024, KEY_P256] {
        for line in pem.lines().filter(|l| !l.is_empty()) {
            assert!(!text.contains(line), "key material in output: {text}");
        }
    }
    assert!(!text.contains("{\"") && !text.contains("\\n"), "JSON text in output: {text}");
}

fn parse_err(json: &str) -> String {
    let e = parse(json).expect_err("should be refused");
    assert_no_key_material(&e);
    e
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn sign(key: &ServiceAccountKey, seed: u64) -> IssuedToken {
    let mut state = seed;
    self_signed_jwt(key, AUDIENCE, NOW, DEFAULT_LIFETIME_S, &mut || splitmix(&mut state)).unwrap()
}

fn decode_json(segment: &str) -> Value {
    let bytes = Base64UrlUnpadded::decode_vec(segment).expect("base64url without padding");
    serde_json::from_slice(&bytes).unwrap()
}

fn verifying_key() -> VerifyingKey<Sha256> {
    VerifyingKey::new(RsaPublicKey::from_public_key_pem(KEY_2048_PUB).unwrap())
}

fn verify(token: &str) -> bool {
    let Some((input, sig)) = token.rsplit_once('.') else { return false };
    let Ok(sig) = Base64UrlUnpadded::decode_vec(sig) else { return false };
    let Ok(sig) = Signature::try_from(sig.as_slice()) else { return false };
    verifying_key().verify(input.as_bytes(), &sig).is_ok()
}

#[test]
fn parses_the_key_file_google_issues() {
    let key = parse(&key_file(KEY_2048).to_string()).unwrap();
    assert_eq!((key.client_email.as_str(), key.private_key_id.as_str(), key.bits()), (EMAIL, KID, 2048));
    // PKCS#1 is the same key in another wrapping.
    let pkcs1 = parse(&key_file(KEY_2048_PKCS1).to_string()).unwrap();
    assert_eq!(pkcs1.rsa_key().unwrap().n(), key.rsa_key().unwrap().n());
    // Only the required fields matter; surrounding whitespace in the PEM is fine.
    let minimal = serde_json::json!({"type": "service_account", "client_email": EMAIL, "private_key_id": KID,
        "private_key": format!("\n  {KEY_2048}\n")});
    assert_eq!(parse(&minimal.to_string()).unwrap().bits(), 2048);
}

#[test]
fn debug_shows_no_key_material() {
    let key = parse(&key_file(KEY_2048).to_string()).unwrap();
    let direct = format!("{key:?}");
    let shown = format!("{direct} {:?}", super::super::Credential::ServiceAccount(key));
    assert_no_key_material(&shown);
    assert!(shown.contains(EMAIL) && shown.contains(KID), "{shown}");
    assert!(!shown.contains("signing_key") && !shown.contains("BigUint"), "{shown}");
}

#[test]
fn each_bad_field_is_named() {
    let public_pem = KEY_2048_PUB;
    // A PEM whose base64 body is damaged where the DER's lengths are (still valid base64 characters).
    let corrupt: String = KEY_2048
        .lines()
        .enumerate()
        .map(|(i, line)| if i == 1 { line.replace('A', "B").replace('a', "b") + "\n" } else { format!("{line}\n") })
        .collect();
    assert_ne!(corrupt, KEY_2048);
    let truncated = &KEY_2048[..KEY_2048.len() / 2];
    let encrypted = KEY_2048.replace("PRIVATE KEY", "ENCRYPTED PRIVATE KEY");
    let cases: Vec<(String, &str)> = vec![
        ("{\"type\": \"service_account\",".into(), "not JSON at line 1 column 27"),
        ("\"service_account\"".into(), "not a JSON object"),
        (without("type"), "missing `type`"),
        (with("type", "authorized_user".into()), "`type` must be `service_account`, got `authorized_user`"),
        (with("type", "External-Thing_2".into()), "`type` must be `service_account`, got `External-Thing_2`"),
        (with("type", KEY_2048.into()), "`type` must be `service_account`, got a value that is not a credential type"),
        (with("type", 5.into()), "`type` must be a string"),
        (without("client_email"), "missing `client_email`"),
        (with("client_email", Value::Null), "missing `client_email`"),
        (with("client_email", " ".into()), "`client_email` is empty"),
        (with("client_email", "no-at-sign".into()), "`client_email` is not an email address"),
        (with("client_email", "a b@c".into()), "`client_email` is not an email address"),
        (with("client_email", KEY_2048.into()), "`client_email` is not an email address"),
        (without("private_key_id"), "missing `private_key_id`"),
        (with("private_key_id", "ab\ncd".into()), "`private_key_id` must be at most 128 printable characters"),
        (with("private_key_id", serde_json::json!([1])), "`private_key_id` must be a string"),
        (without("private_key"), "missing `private_key`"),
        (with("private_key", "".into()), "`private_key` is empty"),
        (with("private_key", "hunter2".into()), "`private_key` is not a PEM RSA private key"),
        (with("private_key", public_pem.into()), "`private_key` is not a PEM RSA private key"),
        (with("private_key", corrupt.into()), "`private_key` is not a valid RSA private key"),
        (with("private_key", truncated.into()), "`private_key` is not a valid RSA private key"),
        (with("private_key", encrypted.into()), "`private_key` is encrypted"),
        (with("private_key", KEY_P256.into()), "`private_key` is not an RSA key (PKCS#8 algorithm 1.2.840.10045.2.1)"),
        (with("private_key", KEY_P256.replace("PRIVATE KEY", "EC PRIVATE KEY").into()), "`private_key` is not an RSA key"),
        (with("private_key", KEY_1024.into()), "`private_key` is a 1024-bit RSA key; at least 2048 bits are required"),
        (with("private_key", "x".repeat(20_000).into()), "`private_key` is longer than 16384 bytes"),
    ];
    for (json, expected) in &cases {
        let e = parse_err(json);
        assert!(e.starts_with(expected), "expected {expected:?}, got {e:?}");
        assert!(e.len() < 160, "{e}");
    }
}

#[test]
fn no_input_panics() {
    // Every prefix of a key file, and the key cut at many points inside valid JSON.
    let json = key_file(KEY_2048).to_string();
    for end in (0..json.len()).filter(|&i| json.is_char_boundary(i)) {
        let _ = parse_err(&json[..end]);
    }
    for end in (0..KEY_2048.len()).step_by(23) {
        let _ = parse_err(&key_file(&KEY_2048[..end]).to_string());
    }
}

#[test]
fn the_jwt_carries_every_claim_and_a_valid_signature() {
    let key = parse(&key_file(KEY_2048).to_string()).unwrap();
    let issued = sign(&key, 1);
    assert_eq!((issued.ttl_ms, issued.renewable), (3_600_000, false));
    let token = core::str::from_utf8(issued.token.expose()).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{} segments", parts.len());
    assert!(parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')));
    assert_eq!(decode_json(parts[0]), serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": KID}));
    assert_eq!(
        decode_json(parts[1]),
        serde_json::json!({"iss": EMAIL, "sub": EMAIL, "aud": AUDIENCE, "iat": NOW, "exp": NOW + 3600})
    );
    assert_eq!(AUDIENCE, "https://secretmanager.googleapis.com/");
    assert_eq!(Base64UrlUnpadded::decode_vec(parts[2]).unwrap().len(), 256);
    assert!(verify(token), "the public key must verify the signature");

    // One flipped byte anywhere breaks it: in the signature, or in the claims.
    let mut sig = Base64UrlUnpadded::decode_vec(parts[2]).unwrap();
    sig[100] ^= 0x01;
    assert!(!verify(&format!("{}.{}.{}", parts[0], parts[1], Base64UrlUnpadded::encode_string(&sig))));
    let mut claims = Base64UrlUnpadded::decode_vec(parts[1]).unwrap();
    claims[10] ^= 0x01;
    assert!(!verify(&format!("{}.{}.{}", parts[0], Base64UrlUnpadded::encode_string(&claims), parts[2])));
}

#[test]
fn blinding_changes_nothing_but_timing() {
    // PKCS#1 v1.5 signatures are deterministic: any random source, even a
    // broken constant one, gives the same token (and finishes).
    let key = parse(&key_file(KEY_2048_PKCS1).to_string()).unwrap();
    let reference = sign(&key, 1);
    assert_eq!(sign(&key, 99).token, reference.token);
    for constant in [0, u64::MAX] {
        let t = self_signed_jwt(&key, AUDIENCE, NOW, DEFAULT_LIFETIME_S, &mut || constant).unwrap();
        assert_eq!(t.token, reference.token);
    }
    assert!(verify(core::str::from_utf8(reference.token.expose()).unwrap()));
}

#[test]
fn bad_lifetimes_audiences_and_clocks_are_refused() {
    let key = parse(&key_file(KEY_2048).to_string()).unwrap();
    let mut zero = || 0;
    for (aud, now, life, expected) in [
        (AUDIENCE, NOW, 0, "token lifetime must be 1 to 3600 s, got 0"),
        (AUDIENCE, NOW, 3601, "token lifetime must be 1 to 3600 s, got 3601"),
        ("", NOW, 60, "audience must be a URL"),
        ("https://a b/", NOW, 60, "audience must be a URL"),
        (AUDIENCE, u64::MAX, 60, "the clock is out of range"),
        (AUDIENCE, 1 << 53, 60, "the clock is out of range"),
    ] {
        let e = self_signed_jwt(&key, aud, now, life, &mut zero).unwrap_err();
        assert!(e.starts_with(expected), "{e}");
    }
    let short = self_signed_jwt(&key, "https://example.test/", NOW, 1, &mut zero).unwrap();
    assert_eq!(short.ttl_ms, 1000);
}

#[test]
fn issued_token_debug_shows_no_token() {
    let key = parse(&key_file(KEY_2048).to_string()).unwrap();
    let issued = sign(&key, 7);
    let shown = format!("{issued:?}");
    let token = core::str::from_utf8(issued.token.expose()).unwrap();
    for segment in token.split('.') {
        assert!(!shown.contains(&segment[..16]), "{shown}");
    }
    assert_eq!(shown, "IssuedToken { ttl_ms: 3600000, renewable: false }");
}

/// The PKCS#1 fixture's numbers, big-endian, in `RSAPrivateKey` order:
/// n, e, d, p, q, d mod p−1, d mod q−1, q⁻¹ mod p.
fn fixture_numbers() -> Vec<Vec<u8>> {
    let (_, der) = SecretDocument::from_pem(KEY_2048_PKCS1).unwrap();
    let k = rsa::pkcs1::RsaPrivateKey::from_der(der.as_bytes()).unwrap();
    [k.modulus, k.public_exponent, k.private_exponent, k.prime1, k.prime2, k.exponent1, k.exponent2, k.coefficient]
        .iter()
        .map(|u| u.as_bytes().to_vec())
        .collect()
}

const N: usize = 0;
const E: usize = 1;
const D: usize = 2;
const P: usize = 3;
const Q: usize = 4;

/// A well-formed PEM key (PKCS#8, or PKCS#1) holding `numbers` (in
/// [`fixture_numbers`]' order), whether or not they belong together.
fn pem_of(numbers: &[Vec<u8>], pkcs8: bool) -> String {
    let u = |i: usize| UintRef::new(&numbers[i]).unwrap();
    let key = rsa::pkcs1::RsaPrivateKey {
        modulus: u(0),
        public_exponent: u(1),
        private_exponent: u(2),
        prime1: u(3),
        prime2: u(4),
        exponent1: u(5),
        exponent2: u(6),
        coefficient: u(7),
        other_prime_infos: None,
    };
    let der = key.to_der().unwrap();
    if pkcs8 {
        let info = PrivateKeyInfo::new(rsa::pkcs1::ALGORITHM_ID, &der).to_der().unwrap();
        rsa::pkcs8::der::pem::encode_string("PRIVATE KEY", LineEnding::LF, &info).unwrap()
    } else {
        rsa::pkcs8::der::pem::encode_string("RSA PRIVATE KEY", LineEnding::LF, &der).unwrap()
    }
}

fn sign_err(key: &ServiceAccountKey) -> String {
    let e = self_signed_jwt(key, AUDIENCE, NOW, DEFAULT_LIFETIME_S, &mut || 7).expect_err("should not sign");
    assert_no_key_material(&e);
    e
}

#[test]
fn the_test_keys_rebuilt_from_their_numbers_sign() {
    for pkcs8 in [true, false] {
        let key = parse(&key_file(&pem_of(&fixture_numbers(), pkcs8)).to_string()).unwrap();
        assert!(verify(core::str::from_utf8(sign(&key, 3).token.expose()).unwrap()), "pkcs8: {pkcs8}");
    }
}

#[test]
fn a_key_whose_numbers_do_not_belong_together_parses_but_does_not_sign() {
    const INVALID: &str = "`private_key` is not a valid RSA private key";
    let changed = |i: usize, edit: &dyn Fn(&mut Vec<u8>)| {
        let mut numbers = fixture_numbers();
        edit(&mut numbers[i]);
        numbers
    };
    // p² is a 2048-bit modulus (the fixture's p has its top bits set) that
    // the fixture's d and e fit, but whose two "primes" are the same.
    let square = {
        let p = BigUint::from_bytes_be(&fixture_numbers()[P]);
        let mut numbers = fixture_numbers();
        numbers[N] = (&p * &p).to_bytes_be();
        numbers[Q] = numbers[P].clone();
        numbers
    };
    let cases: Vec<(Vec<Vec<u8>>, &str)> = vec![
        (changed(D, &|d| d[128] ^= 0x10), "the private exponent does not match the public exponent and primes"),
        (changed(D, &|d| *d.last_mut().unwrap() ^= 0x02), "the private exponent does not match the public exponent and primes"),
        (changed(P, &|p| p[64] ^= 0x01), "the primes' product is not the modulus"),
        (changed(N, &|n| n[100] ^= 0x80), "the primes' product is not the modulus"),
        (changed(E, &|e| *e = vec![0x01, 0x00, 0x03]), "the private exponent does not match the public exponent and primes"),
        (square, "the primes are not coprime"),
    ];
    for (numbers, why) in &cases {
        for pkcs8 in [true, false] {
            let key = parse(&key_file(&pem_of(numbers, pkcs8)).to_string()).expect("well formed: parses");
            assert_eq!(key.bits(), 2048);
            let expected = format!("{INVALID} ({why})");
            assert_eq!(sign_err(&key), expected, "pkcs8: {pkcs8}");
            // The failure is kept: the same error again, without rebuilding.
            assert_eq!(sign_err(&key), expected);
        }
    }
    // The CRT values in the file are not used (`rsa` computes its own): wrong ones change nothing.
    let key = parse(&key_file(&pem_of(&changed(7, &|c| c[5] ^= 0xff), false)).to_string()).unwrap();
    assert!(verify(core::str::from_utf8(sign(&key, 5).token.expose()).unwrap()));
}

#[test]
fn shapes_that_need_no_arithmetic_are_refused_at_parse() {
    let changed = |i: usize, value: Vec<u8>| {
        let mut numbers = fixture_numbers();
        numbers[i] = value;
        numbers
    };
    let n = fixture_numbers()[N].clone();
    let mut n_even = n.clone();
    *n_even.last_mut().unwrap() &= 0xfe;
    let huge = [vec![0x01], vec![0; 256], n.clone()].concat();
    let cases: Vec<(Vec<Vec<u8>>, &str)> = vec![
        (changed(N, huge), "`private_key` is a 4097-bit RSA key; at most 4096 bits are supported"),
        (changed(N, n[..128].to_vec()), "`private_key` is a 1024-bit RSA key; at least 2048 bits are required"),
        (changed(N, n_even), "`private_key` is not a valid RSA private key (the modulus is even)"),
        (changed(E, vec![0x01, 0x00, 0x00]), "`private_key` is not a valid RSA private key (the public exponent is even)"),
        (changed(E, vec![0x01]), "`private_key` is not a valid RSA private key (the public exponent is out of range)"),
        (changed(E, vec![0x03, 0, 0, 0, 1]), "`private_key` is not a valid RSA private key (the public exponent is out of range)"),
        (changed(E, n.clone()), "`private_key` is not a valid RSA private key (the public exponent is out of range)"),
        (changed(P, vec![0x01]), "`private_key` is not a valid RSA private key (a prime or the private exponent is 0 or 1)"),
        (changed(D, vec![0x00]), "`private_key` is not a valid RSA private key (a prime or the private exponent is 0 or 1)"),
        (changed(Q, fixture_numbers()[Q][..64].to_vec()), "`private_key` is not a valid RSA private key (the primes' sizes do not match the modulus)"),
    ];
    for (numbers, expected) in &cases {
        for pkcs8 in [true, false] {
            assert_eq!(&parse_err(&key_file(&pem_of(numbers, pkcs8)).to_string()), expected, "pkcs8: {pkcs8}");
        }
    }
    // rsaEncryption's parameters must be NULL.
    let (_, der) = SecretDocument::from_pem(KEY_2048_PKCS1).unwrap();
    let mut algorithm = rsa::pkcs1::ALGORITHM_ID;
    algorithm.parameters = None;
    let info = PrivateKeyInfo::new(algorithm, der.as_bytes()).to_der().unwrap();
    let pem = rsa::pkcs8::der::pem::encode_string("PRIVATE KEY", LineEnding::LF, &info).unwrap();
    assert_eq!(
        parse_err(&key_file(&pem).to_string()),
        "`private_key` is not a valid RSA private key (PKCS#8 algorithm parameters are not NULL)"
    );
}

#[test]
fn damaged_numbers_never_panic() {
    // A bit flipped in each number, at a few places: refused at parse, refused
    // at signing, or (the CRT values, which are not used) a valid signature.
    let sizes: Vec<usize> = fixture_numbers().iter().map(Vec::len).collect();
    for (i, &len) in sizes.iter().enumerate() {
        for at in [0, len / 2, len - 1] {
            for bit in [0x01] {
                let mut numbers = fixture_numbers();
                numbers[i][at] ^= bit;
                let Ok(key) = parse(&key_file(&pem_of(&numbers, false)).to_string()) else { continue };
                let mut state = 9;
                if let Ok(t) = self_signed_jwt(&key, AUDIENCE, NOW, DEFAULT_LIFETIME_S, &mut || splitmix(&mut state)) {
                    assert!(i > Q && verify(core::str::from_utf8(t.token.expose()).unwrap()), "number {i} byte {at} bit {bit}");
                }
            }
        }
    }
}

/// The key must stay `Send`: the host's native benchmark moves a `Provider`
/// (which holds `Credential`s) behind a `Mutex` shared by threads. It need not
/// be `Sync` (the lazily built key is in a `OnceCell`).
#[test]
fn the_key_is_send() {
    fn send<T: Send>() {}
    send::<ServiceAccountKey>();
    send::<super::super::Credential>();
}
