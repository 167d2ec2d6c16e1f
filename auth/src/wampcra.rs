//! WAMP-CRA, challenge-response with a shared secret (WAMP.md 6.2 AUTH-03).
//!
//! 1. The router builds the challenge string with [`challenge`] (a JSON object it never has to
//!    parse again) and sends `[4, "wampcra", {"challenge": <it>}]`, plus `salt`, `iterations`
//!    and `keylen` when the secret is salted.
//! 2. Both sides compute the key with [`key`]: the secret's UTF-8 bytes, or, salted, the
//!    **base64 text** of PBKDF2-HMAC-SHA256 ([`derive_key`]).
//! 3. The client answers `[5, sign(key, challenge), {}]`; the router checks it with [`verify`].
//!
//! The challenge is signed byte for byte, so its key order and spacing only have to be stable
//! between building and signing; [`challenge`] writes what Crossbar writes
//! (`json.dumps(obj, ensure_ascii=False)`).

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The `authmethod` name.
pub const AUTHMETHOD: &str = "wampcra";

/// Largest `keylen` [`derive_key`] accepts. WAMP uses 32; the bound keeps a CHALLENGE from a
/// hostile router from making the client allocate without limit.
pub const MAX_KEYLEN: usize = 1024;

/// Why a key could not be derived.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WampCraError {
    /// `iterations` was 0.
    #[error("PBKDF2 iterations must be at least 1")]
    ZeroIterations,
    /// `keylen` was 0 or above [`MAX_KEYLEN`].
    #[error("PBKDF2 keylen must be in 1..={MAX_KEYLEN}, got {0}")]
    KeyLength(usize),
}

/// The salting parameters of a salted secret, as in the CHALLENGE extra (`salt`, `iterations`,
/// `keylen`) and in the router's per-user config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Salting<'a> {
    /// The salt, used as its UTF-8 bytes (not decoded).
    pub salt: &'a str,
    /// PBKDF2 iterations (Crossbar's default is 1000).
    pub iterations: u32,
    /// Derived key length in bytes (Crossbar's default is 32).
    pub keylen: usize,
}

/// The challenge string: a JSON object with `authid`, `authrole`, `authmethod` (`"wampcra"`),
/// `authprovider`, `nonce`, `timestamp` and `session`, in that order, with Python's
/// `json.dumps` spacing and non-ASCII characters left unescaped.
///
/// `session` is the ID the WELCOME will carry, so the router reserves it at HELLO time.
/// `nonce` comes from [`new_nonce`] and `timestamp` from [`timestamp`].
pub fn challenge(
    authid: &str,
    authrole: &str,
    authprovider: &str,
    session: u64,
    nonce: &str,
    timestamp: &str,
) -> String {
    let mut out = String::with_capacity(160 + authid.len() + authrole.len() + nonce.len());
    let fields = [
        ("authid", authid),
        ("authrole", authrole),
        ("authmethod", AUTHMETHOD),
        ("authprovider", authprovider),
        ("nonce", nonce),
        ("timestamp", timestamp),
    ];
    out.push('{');
    for (name, value) in fields {
        out.push('"');
        out.push_str(name);
        out.push_str("\": ");
        push_json_string(&mut out, value);
        out.push_str(", ");
    }
    out.push_str("\"session\": ");
    out.push_str(&session.to_string());
    out.push('}');
    out
}

/// A fresh nonce: 64 characters of standard base64 (48 random bytes), the shape of Crossbar's
/// `util.newid(64)`.
pub fn new_nonce() -> String {
    let mut bytes = [0u8; 48];
    rand::rng().fill_bytes(&mut bytes);
    STANDARD.encode(bytes)
}

/// `now` as UTC ISO-8601 with milliseconds and `Z`, e.g. `2014-06-22T16:36:25.448Z`
/// (autobahn's `utcnow()`; sub-millisecond digits are dropped, not rounded).
pub fn timestamp(now: SystemTime) -> String {
    let nanos: i128 = match now.duration_since(UNIX_EPOCH) {
        Ok(after) => i128::try_from(after.as_nanos()).unwrap_or(i128::MAX),
        Err(before) => -i128::try_from(before.duration().as_nanos()).unwrap_or(i128::MAX),
    };
    let millis = nanos.div_euclid(1_000_000);
    let days = millis.div_euclid(86_400_000);
    let ms_of_day = millis.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    let (secs, ms) = (ms_of_day / 1000, ms_of_day % 1000);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Base64 text (standard alphabet, padded, no newline) of
/// PBKDF2-HMAC-SHA256(utf8(secret), utf8(salt), iterations, keylen): autobahn's `derive_key`.
pub fn derive_key(
    secret: &str,
    salt: &str,
    iterations: u32,
    keylen: usize,
) -> Result<String, WampCraError> {
    if iterations == 0 {
        return Err(WampCraError::ZeroIterations);
    }
    if keylen == 0 || keylen > MAX_KEYLEN {
        return Err(WampCraError::KeyLength(keylen));
    }
    let mut derived = vec![0u8; keylen];
    pbkdf2::pbkdf2_hmac::<Sha256>(secret.as_bytes(), salt.as_bytes(), iterations, &mut derived);
    Ok(STANDARD.encode(derived))
}

/// The HMAC key for a secret: its UTF-8 bytes when unsalted, else the ASCII bytes of
/// [`derive_key`]'s base64 text (not the raw PBKDF2 output).
pub fn key(secret: &str, salting: Option<Salting<'_>>) -> Result<Vec<u8>, WampCraError> {
    match salting {
        None => Ok(secret.as_bytes().to_vec()),
        Some(s) => derive_key(secret, s.salt, s.iterations, s.keylen).map(String::into_bytes),
    }
}

/// The AUTHENTICATE signature: base64(HMAC-SHA256(key, utf8(challenge))), standard alphabet
/// with padding (autobahn's `compute_wcs`).
pub fn sign(key: &[u8], challenge: &str) -> String {
    STANDARD.encode(hmac_sha256(key, challenge.as_bytes()))
}

/// Whether `signature` (AUTHENTICATE.Signature) is [`sign`]`(key, challenge)`, compared in
/// constant time. It must be the exact base64 text: other padding or whitespace fails, as it
/// does in Crossbar.
pub fn verify(key: &[u8], challenge: &str, signature: &str) -> bool {
    let expected = sign(key, challenge);
    bool::from(expected.as_bytes().ct_eq(signature.as_bytes()))
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(key) else {
        // HMAC takes keys of any length (a long one is hashed first): this cannot happen.
        unreachable!("HMAC-SHA256 rejected a key")
    };
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// Appends `value` as a JSON string the way Python's `json.dumps(..., ensure_ascii=False)`
/// writes it: `"` and `\` and the C0 controls escaped, everything else verbatim.
fn push_json_string(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Days since 1970-01-01 to the proleptic Gregorian (year, month, day), after Howard Hinnant's
/// `civil_from_days` (eras of 400 years, years starting on March 1).
fn civil_from_days(days: i128) -> (i128, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of the March-based year, 0..=365
    let mp = (5 * doy + 2) / 153; // March = 0 .. February = 11
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i128::from(month <= 2);
    // day is 1..=31 and month 1..=12 by construction.
    (year, month as u32, day as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    // Known answers computed with autobahn-python 26.11.1 (`pip install autobahn`):
    //   from autobahn.wamp import auth
    //   auth.derive_key(secret, salt, iterations, keylen)
    //   auth.compute_wcs(key, challenge)
    // with the challenges built by `json.dumps({...}, ensure_ascii=False)`.

    const CHALLENGE_PETER: &str = r#"{"authid": "peter", "authrole": "user", "authmethod": "wampcra", "authprovider": "static", "nonce": "LHRTC9zeOIrt_9U3", "timestamp": "2014-06-22T16:36:25.448Z", "session": 3251278072152162}"#;
    const CHALLENGE_JUERGEN: &str = r#"{"authid": "jürgen", "authrole": "frontend", "authmethod": "wampcra", "authprovider": "static", "nonce": "n", "timestamp": "2024-02-29T23:59:59.999Z", "session": 1}"#;
    const UNICODE_SECRET: &str = "pässwörd-秘密-🔑";

    #[test]
    fn derive_key_matches_autobahn() {
        let cases: [(&str, &str, u32, usize, &str); 5] = [
            // The WAMP.md / Crossbar example: salt "salt123", 1000 iterations, 32 bytes.
            (
                "secret123",
                "salt123",
                1000,
                32,
                "Eu7CQLfR+/Ffb+275A4s9/6H/RGKYxM4s6IMrsNKzC8=",
            ),
            ("secret", "salt", 1, 20, "ON9CizCTCOSMNofn+QvaDpzyU1Y="),
            (UNICODE_SECRET, "sälz", 100, 16, "2ApMr7NJlEf+wLcC6+6Sgw=="),
            (
                "",
                "salt123",
                1000,
                32,
                "zptjRxp5imriNU+x8n/voN2cZVGkpWtP18GKOpVvghA=",
            ),
            (
                "secret123",
                "salt123",
                1000,
                64,
                "Eu7CQLfR+/Ffb+275A4s9/6H/RGKYxM4s6IMrsNKzC8Ih9BjlZB3LVE9S2c5Vez0gpwDx15XNqht4Kr3Xowpbg==",
            ),
        ];
        for (secret, salt, iterations, keylen, expected) in cases {
            assert_eq!(
                derive_key(secret, salt, iterations, keylen).unwrap(),
                expected,
                "{secret:?} {salt:?} {iterations} {keylen}"
            );
        }
    }

    #[test]
    fn sign_matches_autobahn_compute_wcs() {
        // Unsalted: the key is the secret's bytes.
        let unsalted = key("secret1", None).unwrap();
        assert_eq!(
            sign(&unsalted, CHALLENGE_PETER),
            "MCxaM9uCp1n9arPWK6eZa/FXI45WGn6YBR7fuAWVAuY="
        );
        // Salted: the key is the base64 text of the PBKDF2 output.
        let salting = Salting {
            salt: "salt123",
            iterations: 1000,
            keylen: 32,
        };
        let salted = key("secret123", Some(salting)).unwrap();
        assert_eq!(salted, b"Eu7CQLfR+/Ffb+275A4s9/6H/RGKYxM4s6IMrsNKzC8=");
        assert_eq!(
            sign(&salted, CHALLENGE_PETER),
            "q3lfFraPoc8Q5G9Ta0RWPDY/NGa9ZuMxoHrlq7lAsPE="
        );
        // Unicode secret and unicode authid in the challenge.
        let unicode = key(UNICODE_SECRET, None).unwrap();
        assert_eq!(
            sign(&unicode, CHALLENGE_JUERGEN),
            "A5FIPq9TuKw/8L0G/FesukGFSoijKiE1RLIk/7ao5vU="
        );
    }

    #[test]
    fn challenge_is_what_crossbar_writes() {
        let built = challenge(
            "peter",
            "user",
            "static",
            3_251_278_072_152_162,
            "LHRTC9zeOIrt_9U3",
            "2014-06-22T16:36:25.448Z",
        );
        assert_eq!(built, CHALLENGE_PETER);
        let built = challenge(
            "jürgen",
            "frontend",
            "static",
            1,
            "n",
            "2024-02-29T23:59:59.999Z",
        );
        assert_eq!(built, CHALLENGE_JUERGEN);
    }

    #[test]
    fn challenge_escapes_json_and_parses_back() {
        let authid = "a\"b\\c\nd\u{1}é😀";
        let built = challenge(authid, "r\tole", "dyn", u64::MAX, "n", "t");
        let parsed: serde_json::Value = serde_json::from_str(&built).unwrap();
        assert_eq!(parsed["authid"], authid);
        assert_eq!(parsed["authrole"], "r\tole");
        assert_eq!(parsed["authmethod"], "wampcra");
        assert_eq!(parsed["authprovider"], "dyn");
        assert_eq!(parsed["session"], u64::MAX);
        assert!(built.contains(r#""a\"b\\c\nd\u0001é😀""#), "{built}");
    }

    #[test]
    fn verify_accepts_only_the_exact_signature() {
        let k = key("secret1", None).unwrap();
        let good = sign(&k, CHALLENGE_PETER);
        assert!(verify(&k, CHALLENGE_PETER, &good));
        assert!(!verify(&k, CHALLENGE_PETER, good.trim_end_matches('=')));
        assert!(!verify(&k, CHALLENGE_PETER, &format!("{good}\n")));
        assert!(!verify(b"secret2", CHALLENGE_PETER, &good));
        assert!(!verify(&k, CHALLENGE_JUERGEN, &good));
        assert!(!verify(&k, CHALLENGE_PETER, ""));
    }

    #[test]
    fn derive_key_rejects_degenerate_parameters() {
        assert_eq!(
            derive_key("s", "salt", 0, 32),
            Err(WampCraError::ZeroIterations)
        );
        assert_eq!(
            derive_key("s", "salt", 1, 0),
            Err(WampCraError::KeyLength(0))
        );
        assert_eq!(
            derive_key("s", "salt", 1, MAX_KEYLEN + 1),
            Err(WampCraError::KeyLength(MAX_KEYLEN + 1))
        );
        assert!(derive_key("s", "salt", 1, MAX_KEYLEN).is_ok());
    }

    #[test]
    fn nonce_is_64_fresh_base64_characters() {
        let (a, b) = (new_nonce(), new_nonce());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert_eq!(STANDARD.decode(&a).unwrap().len(), 48);
    }

    #[test]
    fn timestamp_matches_autobahn_utcstr() {
        // Expected strings from autobahn.util.utcstr(datetime(1970, 1, 1) + timedelta(ms=…)).
        let cases: [(i64, &str); 8] = [
            (0, "1970-01-01T00:00:00.000Z"),
            (1_403_454_985_448, "2014-06-22T16:36:25.448Z"),
            (-1, "1969-12-31T23:59:59.999Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (1_709_251_199_999, "2024-02-29T23:59:59.999Z"),
            (1_234_567_890_123, "2009-02-13T23:31:30.123Z"),
            (4_102_444_800_000, "2100-01-01T00:00:00.000Z"),
            (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
        ];
        for (ms, expected) in cases {
            let at = if ms >= 0 {
                UNIX_EPOCH + Duration::from_millis(ms.unsigned_abs())
            } else {
                UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
            };
            assert_eq!(timestamp(at), expected, "{ms}");
        }
        // Sub-millisecond digits are cut, not rounded, on both sides of the epoch.
        assert_eq!(
            timestamp(UNIX_EPOCH + Duration::from_micros(1_999)),
            "1970-01-01T00:00:00.001Z"
        );
        assert_eq!(
            timestamp(UNIX_EPOCH - Duration::from_micros(1)),
            "1969-12-31T23:59:59.999Z"
        );
    }

    /// Days since the epoch for a civil date (Hinnant's `days_from_civil`), only to check the
    /// converse over a long range.
    fn days_from_civil(y: i128, m: u32, d: u32) -> i128 {
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y.rem_euclid(400);
        let m = i128::from(m);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i128::from(d) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    #[test]
    fn civil_dates_are_consecutive_over_six_thousand_years() {
        let mut previous = civil_from_days(-1_000_000);
        for days in -999_999..1_200_000 {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
            let (py, pm, pd) = previous;
            let next_day = (y, m, d) == (py, pm, pd + 1);
            let next_month = (y, m, d) == (py, pm + 1, 1) && pd >= 28;
            let next_year = (y, m, d) == (py + 1, 1, 1) && (pm, pd) == (12, 31);
            assert!(
                next_day || next_month || next_year,
                "{previous:?} -> {y}-{m}-{d}"
            );
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let month_len = match m {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            assert!((1..=month_len).contains(&d));
            previous = (y, m, d);
        }
    }
}
