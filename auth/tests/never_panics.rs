//! Property tests: the verifying functions of all three methods return `false` or an error for
//! any input, and never panic. Arbitrary strings, plus near misses of valid inputs (one
//! character changed, inserted or cut), which reach deeper into the parsers.

use proptest::prelude::*;
use wamp_auth::{cryptosign, ticket, wampcra};

// A valid stored hash of each kind, with small costs so that a mutation that still parses
// stays cheap in a debug build. (Same values as the ticket module's known-answer tests.)
const PHC_STRINGS: [&str; 2] = [
    "$argon2id$v=19$m=64,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZg$FNTZ225p5M+08T6s7Ahg9KDMvCFTUS8PokRT926L2mY",
    "$pbkdf2-sha256$i=1000,l=32$MDEyMzQ1Njc4OWFiY2RlZg$dCIKAH2GdkNZG/55nUlCzeJVHcXILgCqt7ciGQCR8Zw",
];

// The first WAMP-Cryptosign spec vector: seed, public key and signature for challenge ff×32.
const SEED: &str = "4d57d97a68f555696620a6d849c0ce582568518d729eb753dc7c732de2804510";
const SIGNATURE: &str = "b32675b221f08593213737bef8240e7c15228b07028e19595294678c90d11c0cae80a357331bfc5cc9fb71081464e6e75013517c2cf067ad566a6b7b728e5d03ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

/// One edit of `base`: a character replaced, inserted or the string cut, at a char boundary.
/// Digits are favoured as replacements so cost parameters change but stay small-ish.
fn near_miss(base: &'static str) -> impl Strategy<Value = String> {
    let chars = base.chars().count();
    (
        0..3u8,
        0..=chars,
        prop_oneof![proptest::char::range('0', '9'), any::<char>()],
    )
        .prop_map(move |(edit, at, c)| {
            let mut out: Vec<char> = base.chars().collect();
            let at = at.min(out.len());
            match edit {
                0 if at < out.len() => out[at] = c,
                1 => out.insert(at, c),
                _ => out.truncate(at),
            }
            out.into_iter().collect()
        })
}

fn stored_ticket() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        any::<String>().prop_map(|s| format!("${s}")),
        "\\$(argon2id|argon2i|argon2d|pbkdf2-sha256|pbkdf2-sha512|scrypt)\\$[a-z0-9=,$+/]{0,60}",
        near_miss(PHC_STRINGS[0]),
        near_miss(PHC_STRINGS[1]),
    ]
}

fn hexish(len: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        proptest::collection::vec(any::<u8>(), len / 2).prop_map(hex::encode),
        proptest::string::string_regex(&format!(
            "[0-9a-fA-Fg ]{{{},{}}}",
            len.saturating_sub(2),
            len + 2
        ))
        .unwrap(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn ticket_verify_never_panics(stored in stored_ticket(), presented in any::<String>()) {
        let matched = ticket::verify(&stored, &presented);
        let valid = ticket::validate(&stored);
        // A stored value that cannot match (per validate) never matches.
        prop_assert!(!matched || valid.is_ok());
        prop_assert_eq!(ticket::is_hashed(&stored), stored.starts_with('$'));
    }

    #[test]
    fn ticket_plain_matches_exactly_itself(stored in "[^$].*", presented in any::<String>()) {
        prop_assert!(ticket::verify(&stored, &stored));
        prop_assert_eq!(ticket::verify(&stored, &presented), stored == presented);
    }

    #[test]
    fn wampcra_verify_never_panics(
        key in proptest::collection::vec(any::<u8>(), 0..200),
        challenge in any::<String>(),
        signature in any::<String>(),
    ) {
        let good = wampcra::sign(&key, &challenge);
        prop_assert!(wampcra::verify(&key, &challenge, &good));
        prop_assert_eq!(wampcra::verify(&key, &challenge, &signature), signature == good);
    }

    #[test]
    fn wampcra_derive_key_never_panics(
        secret in any::<String>(),
        salt in any::<String>(),
        iterations in 0u32..4,
        keylen in prop_oneof![0usize..100, Just(usize::MAX)],
    ) {
        let derived = wampcra::derive_key(&secret, &salt, iterations, keylen);
        prop_assert_eq!(derived.is_ok(), iterations > 0 && (1..=wampcra::MAX_KEYLEN).contains(&keylen));
    }

    #[test]
    fn cryptosign_verify_never_panics(
        pubkey in prop_oneof![hexish(64), Just(hex::encode(
            cryptosign::SigningKey::from_hex(SEED).unwrap().public_key()
        ))],
        challenge in any::<[u8; 32]>(),
        binding in proptest::option::of(any::<[u8; 32]>()),
        signature in prop_oneof![hexish(192), near_miss(SIGNATURE)],
    ) {
        let result = cryptosign::verify(&pubkey, &challenge, binding.as_ref(), &signature);
        // Random input never forges a signature (the real one is for challenge ff×32 unbound).
        if challenge != [0xff; 32] || binding.is_some_and(|b| b != [0; 32]) {
            prop_assert!(result.is_err());
        }
    }

    #[test]
    fn cryptosign_sign_challenge_never_panics(challenge in hexish(64)) {
        let key = cryptosign::SigningKey::from_hex(SEED).unwrap();
        if let Ok(signature) = key.sign_challenge(&challenge, None) {
            prop_assert_eq!(signature.len(), 192);
            let mut bytes = [0u8; 32];
            hex::decode_to_slice(&challenge, &mut bytes).unwrap();
            prop_assert_eq!(cryptosign::verify(&key.public_key_hex(), &bytes, None, &signature), Ok(()));
        }
    }

    #[test]
    fn signing_key_from_hex_never_panics(seed in hexish(64)) {
        let _ = cryptosign::SigningKey::from_hex(&seed);
    }
}
