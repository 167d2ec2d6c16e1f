//! WAMP-Cryptosign, Ed25519 challenge-response (WAMP.md 6.2 AUTH-04).
//!
//! 1. HELLO carries `authextra.pubkey`, the client's 32-byte Ed25519 public key as 64 hex
//!    characters.
//! 2. The router sends `[4, "cryptosign", {"challenge": hex(new_challenge()), "channel_binding":
//!    null | "tls-unique"}]`.
//! 3. The client signs the 32-byte message `challenge` (XOR the channel ID when channel binding
//!    is on) and answers with 192 hex characters: the 64-byte signature followed by the 32-byte
//!    message ([`SigningKey::sign_challenge`]).
//! 4. The router checks that the message is the one it expects and that the signature is valid
//!    for the public key ([`verify`]).
//!
//! Router authentication (the client sends `authextra.challenge`, the router adds
//! `extra.signature` and `extra.pubkey` to its CHALLENGE) is the same computation with the
//! roles swapped: the router signs with its own [`SigningKey`], the client calls [`verify`].
//!
//! Verification is strict (RFC 8032 with canonical `S`, no small-order `R` or public key), as
//! libsodium, which autobahn and Crossbar use through PyNaCl, is.

use std::fmt;

use ed25519_dalek::{Signature, Signer, VerifyingKey};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The `authmethod` name.
pub const AUTHMETHOD: &str = "cryptosign";

/// Which hex input of this module was malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HexField {
    /// `authextra.pubkey` (64 hex characters).
    PublicKey,
    /// AUTHENTICATE.Signature or CHALLENGE `extra.signature` (192 hex characters).
    Signature,
    /// CHALLENGE `extra.challenge` or HELLO `authextra.challenge` (64 hex characters).
    Challenge,
    /// A private key seed (64 hex characters).
    Seed,
}

impl fmt::Display for HexField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HexField::PublicKey => "public key",
            HexField::Signature => "signature",
            HexField::Challenge => "challenge",
            HexField::Seed => "seed",
        })
    }
}

/// Why a cryptosign signature was refused or could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptosignError {
    /// A hex input has the wrong length.
    #[error("{field} must be {expected} hex characters, got {got} bytes")]
    HexLength {
        /// Which input.
        field: HexField,
        /// The required number of hex characters.
        expected: usize,
        /// The length received, in bytes.
        got: usize,
    },
    /// A hex input has a character outside `0-9a-fA-F`.
    #[error("{field} is not hex")]
    NotHex {
        /// Which input.
        field: HexField,
    },
    /// The public key is not a valid Ed25519 point, or is a weak (small-order) one.
    #[error("public key is not a usable Ed25519 point")]
    InvalidPublicKey,
    /// The signed message (the last 32 bytes) is not the expected challenge.
    #[error("the signed message is not the challenge")]
    WrongMessage,
    /// The Ed25519 signature does not verify for this public key and message.
    #[error("Ed25519 signature verification failed")]
    BadSignature,
}

/// A fresh random 32-byte challenge; send it as `hex` in CHALLENGE `extra.challenge`.
pub fn new_challenge() -> [u8; 32] {
    let mut challenge = [0u8; 32];
    rand::rng().fill_bytes(&mut challenge);
    challenge
}

/// The 32-byte channel ID for `tls-unique` channel binding as autobahn computes it: the
/// SHA-256 of the TLS Finished message that RFC 5929 defines as `tls-unique`.
pub fn tls_unique_channel_id(tls_unique: &[u8]) -> [u8; 32] {
    Sha256::digest(tls_unique).into()
}

/// Checks an AUTHENTICATE signature (192 hex characters: 64-byte Ed25519 signature, then the
/// 32-byte signed message) against the public key `pubkey_hex` (64 hex characters) and the
/// `challenge` this side sent, XOR `channel_binding` when given.
///
/// Hex is accepted in either case. Every malformed input is an error, never a panic.
pub fn verify(
    pubkey_hex: &str,
    challenge: &[u8; 32],
    channel_binding: Option<&[u8; 32]>,
    signature_hex: &str,
) -> Result<(), CryptosignError> {
    let pubkey: [u8; 32] = decode_hex(HexField::PublicKey, pubkey_hex)?;
    let signed: [u8; 96] = decode_hex(HexField::Signature, signature_hex)?;
    let (sig, message) = signed.split_at(64);

    let expected = signed_message(challenge, channel_binding);
    if !bool::from(message.ct_eq(&expected)) {
        return Err(CryptosignError::WrongMessage);
    }

    let key = VerifyingKey::from_bytes(&pubkey).map_err(|_| CryptosignError::InvalidPublicKey)?;
    if key.is_weak() {
        return Err(CryptosignError::InvalidPublicKey);
    }
    let sig = Signature::from_slice(sig).map_err(|_| CryptosignError::BadSignature)?;
    key.verify_strict(&expected, &sig)
        .map_err(|_| CryptosignError::BadSignature)
}

/// An Ed25519 private key for answering cryptosign challenges (the client's, or the router's
/// for router authentication). Its `Debug` shows the public key only.
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

impl SigningKey {
    /// From the 32-byte seed (what autobahn calls the private key).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        SigningKey(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    /// From the seed as 64 hex characters (autobahn's `privkey=` and Crossbar's key files).
    pub fn from_hex(seed_hex: &str) -> Result<Self, CryptosignError> {
        let seed: [u8; 32] = decode_hex(HexField::Seed, seed_hex)?;
        Ok(Self::from_seed(&seed))
    }

    /// A new random key.
    pub fn generate() -> Self {
        let mut seed = [0u8; 32];
        rand::rng().fill_bytes(&mut seed);
        let key = Self::from_seed(&seed);
        seed.fill(0);
        key
    }

    /// The seed as 64 lowercase hex characters, to store the key (it is the secret).
    pub fn seed_hex(&self) -> String {
        hex::encode(self.0.as_bytes())
    }

    /// The 32-byte public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.0.verifying_key().to_bytes()
    }

    /// The public key as 64 lowercase hex characters, for HELLO `authextra.pubkey` (and for the
    /// router's `authorized_keys`).
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.public_key())
    }

    /// Answers a CHALLENGE: signs the 32 bytes of `challenge_hex` (64 hex characters), XOR
    /// `channel_binding` when given, and returns the 192 lowercase hex characters of
    /// signature‖message for AUTHENTICATE.
    pub fn sign_challenge(
        &self,
        challenge_hex: &str,
        channel_binding: Option<&[u8; 32]>,
    ) -> Result<String, CryptosignError> {
        let challenge: [u8; 32] = decode_hex(HexField::Challenge, challenge_hex)?;
        let message = signed_message(&challenge, channel_binding);
        let signature = self.0.sign(&message);
        let mut out = String::with_capacity(192);
        out.push_str(&hex::encode(signature.to_bytes()));
        out.push_str(&hex::encode(message));
        Ok(out)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("public_key", &self.public_key_hex())
            .finish_non_exhaustive()
    }
}

/// The message that is signed: the challenge, XOR the channel ID under channel binding.
fn signed_message(challenge: &[u8; 32], channel_binding: Option<&[u8; 32]>) -> [u8; 32] {
    let mut message = *challenge;
    if let Some(channel_id) = channel_binding {
        for (m, c) in message.iter_mut().zip(channel_id) {
            *m ^= c;
        }
    }
    message
}

/// Decodes exactly `2 * N` hex characters (either case) into `N` bytes.
fn decode_hex<const N: usize>(field: HexField, text: &str) -> Result<[u8; N], CryptosignError> {
    if text.len() != 2 * N {
        return Err(CryptosignError::HexLength {
            field,
            expected: 2 * N,
            got: text.len(),
        });
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).map_err(|_| CryptosignError::NotHex { field })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The six test vectors of the WAMP spec, rfc/text/advanced/authentication_cryptosign.md
    // ("Test Vectors"; the first is the one quoted in WAMP.md 6.2): private key (seed),
    // challenge, channel ID (tls-unique) or none, and the AUTHENTICATE signature. The same
    // values come out of autobahn-python's CryptosignKey.sign_challenge (PyNaCl).
    const CHANNEL_ID: &str = "62e935ae755f3d48f80d4d59f6121358c435722a67e859cc0caa8b539027f2ff";
    const VECTORS: [(&str, &str, bool, &str); 6] = [
        (
            "4d57d97a68f555696620a6d849c0ce582568518d729eb753dc7c732de2804510",
            "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            false,
            "b32675b221f08593213737bef8240e7c15228b07028e19595294678c90d11c0cae80a357331bfc5cc9fb71081464e6e75013517c2cf067ad566a6b7b728e5d03ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        ),
        (
            "d511fe78e23934b3dadb52fcd022974b80bd92bccc7c5cf404e46cc0a8a2f5cd",
            "b26c1f87c13fc1da14997f1b5a71995dff8fbe0a62fae8473c7bdbd05bfb607d",
            false,
            "d4209ad10d5aff6bfbc009d7e924795de138a63515efc7afc6b01b7fe5201372190374886a70207b042294af5bd64ce725cd8dceb344e6d11c09d1aaaf4d660fb26c1f87c13fc1da14997f1b5a71995dff8fbe0a62fae8473c7bdbd05bfb607d",
        ),
        (
            "6e1fde9cf9e2359a87420b65a87dc0c66136e66945196ba2475990d8a0c3a25b",
            "b05e6b8ad4d69abf74aa3be3c0ee40ae07d66e1895b9ab09285a2f1192d562d2",
            false,
            "7beb282184baadd08f166f16dd683b39cab53816ed81e6955def951cb2ddad1ec184e206746fd82bda075af03711d3d5658fc84a76196b0fa8d1ebc92ef9f30bb05e6b8ad4d69abf74aa3be3c0ee40ae07d66e1895b9ab09285a2f1192d562d2",
        ),
        (
            "4d57d97a68f555696620a6d849c0ce582568518d729eb753dc7c732de2804510",
            "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            true,
            "9b6f41540c9b95b4b7b281c3042fa9c54cef43c842d62ea3fd6030fcb66e70b3e80d49d44c29d1635da9348d02ec93f3ed1ef227dfb59a07b580095c2b82f80f9d16ca518aa0c2b707f2b2a609edeca73bca8dd59817a633f35574ac6fd80d00",
        ),
        (
            "d511fe78e23934b3dadb52fcd022974b80bd92bccc7c5cf404e46cc0a8a2f5cd",
            "b26c1f87c13fc1da14997f1b5a71995dff8fbe0a62fae8473c7bdbd05bfb607d",
            true,
            "305aaa3ac25e98f651427688b3fc43fe7d8a68a7ec1d7d61c61517c519bd4a427c3015599d83ca28b4c652333920223844ef0725eb5dc2febfd6af7677b73f01d0852a29b460fc92ec943242ac638a053bbacc200512b18b30d15083cbdc9282",
        ),
        (
            "6e1fde9cf9e2359a87420b65a87dc0c66136e66945196ba2475990d8a0c3a25b",
            "b05e6b8ad4d69abf74aa3be3c0ee40ae07d66e1895b9ab09285a2f1192d562d2",
            true,
            "ee3c7644fd8070532bc1fde3d70d742267da545d8c8f03e63bda63f1ad4214f4d2c4bfdb4eb9526def42deeb7e31602a6ff99eba893e0a4ad4d45892ca75e608d2b75e24a189a7f78ca776ba36fc53f6c3e31c32f251f2c524f0a44202f2902d",
        ),
    ];

    fn bytes32(text: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).unwrap();
        out
    }

    #[test]
    fn wamp_md_vector_signs_as_the_spec_says() {
        let key = SigningKey::from_hex(VECTORS[0].0).unwrap();
        let challenge = "ff".repeat(32);
        assert_eq!(key.sign_challenge(&challenge, None).unwrap(), VECTORS[0].3);
    }

    #[test]
    fn spec_vectors_sign_and_verify() {
        let channel_id = bytes32(CHANNEL_ID);
        for (seed, challenge, bound, signature) in VECTORS {
            let key = SigningKey::from_hex(seed).unwrap();
            let binding = bound.then_some(&channel_id);
            assert_eq!(key.sign_challenge(challenge, binding).unwrap(), signature);
            let challenge = bytes32(challenge);
            assert_eq!(
                verify(&key.public_key_hex(), &challenge, binding, signature),
                Ok(())
            );
            // Upper-case hex is accepted too (Python's a2b_hex does).
            assert_eq!(
                verify(
                    &key.public_key_hex().to_uppercase(),
                    &challenge,
                    binding,
                    &signature.to_uppercase()
                ),
                Ok(())
            );
        }
    }

    #[test]
    fn round_trip_with_and_without_channel_binding() {
        let key = SigningKey::generate();
        let challenge = new_challenge();
        let channel_id = tls_unique_channel_id(b"tls finished message");
        for binding in [None, Some(&channel_id)] {
            let signature = key
                .sign_challenge(&hex::encode(challenge), binding)
                .unwrap();
            assert_eq!(signature.len(), 192);
            assert_eq!(
                verify(&key.public_key_hex(), &challenge, binding, &signature),
                Ok(())
            );
        }
        // A signature made with channel binding does not pass without it, and vice versa.
        let bound = key
            .sign_challenge(&hex::encode(challenge), Some(&channel_id))
            .unwrap();
        assert_eq!(
            verify(&key.public_key_hex(), &challenge, None, &bound),
            Err(CryptosignError::WrongMessage)
        );
        let unbound = key.sign_challenge(&hex::encode(challenge), None).unwrap();
        assert_eq!(
            verify(
                &key.public_key_hex(),
                &challenge,
                Some(&channel_id),
                &unbound
            ),
            Err(CryptosignError::WrongMessage)
        );
    }

    #[test]
    fn seed_round_trips_and_debug_hides_it() {
        let key = SigningKey::from_hex(VECTORS[0].0).unwrap();
        assert_eq!(key.seed_hex(), VECTORS[0].0);
        assert_eq!(
            SigningKey::from_seed(&bytes32(VECTORS[0].0)).public_key_hex(),
            key.public_key_hex()
        );
        let debug = format!("{key:?}");
        assert!(debug.contains(&key.public_key_hex()), "{debug}");
        assert!(!debug.contains(VECTORS[0].0), "{debug}");
        assert_ne!(
            SigningKey::generate().seed_hex(),
            SigningKey::generate().seed_hex()
        );
    }

    #[test]
    fn wrong_key_is_rejected() {
        let (seed, challenge, _, signature) = VECTORS[0];
        let other = SigningKey::from_hex(VECTORS[1].0).unwrap();
        assert_ne!(
            other.public_key_hex(),
            SigningKey::from_hex(seed).unwrap().public_key_hex()
        );
        assert_eq!(
            verify(
                &other.public_key_hex(),
                &bytes32(challenge),
                None,
                signature
            ),
            Err(CryptosignError::BadSignature)
        );
    }

    #[test]
    fn wrong_message_and_tampering_are_rejected() {
        let (seed, challenge, _, signature) = VECTORS[1];
        let pubkey = SigningKey::from_hex(seed).unwrap().public_key_hex();
        let challenge = bytes32(challenge);
        // A different challenge than the one sent.
        let mut other = challenge;
        other[0] ^= 1;
        assert_eq!(
            verify(&pubkey, &other, None, signature),
            Err(CryptosignError::WrongMessage)
        );
        // The signature part altered (first byte), the message left as is.
        let mut tampered = signature.to_owned();
        tampered.replace_range(0..2, if &signature[0..2] == "00" { "01" } else { "00" });
        assert_eq!(
            verify(&pubkey, &challenge, None, &tampered),
            Err(CryptosignError::BadSignature)
        );
        // S made non-canonical (top bit of the last signature byte set): strict verification.
        let mut high_s = signature.to_owned();
        high_s.replace_range(126..128, "ff");
        assert_eq!(
            verify(&pubkey, &challenge, None, &high_s),
            Err(CryptosignError::BadSignature)
        );
    }

    #[test]
    fn malformed_hex_is_an_error() {
        let (seed, challenge, _, signature) = VECTORS[0];
        let pubkey = SigningKey::from_hex(seed).unwrap().public_key_hex();
        let challenge = bytes32(challenge);
        assert_eq!(
            verify(&pubkey, &challenge, None, &signature[..190]),
            Err(CryptosignError::HexLength {
                field: HexField::Signature,
                expected: 192,
                got: 190
            })
        );
        assert_eq!(
            verify(&pubkey, &challenge, None, &format!("{signature}00")),
            Err(CryptosignError::HexLength {
                field: HexField::Signature,
                expected: 192,
                got: 194
            })
        );
        assert_eq!(
            verify(&pubkey, &challenge, None, &signature.replace('f', "g")),
            Err(CryptosignError::NotHex {
                field: HexField::Signature
            })
        );
        assert_eq!(
            verify(&pubkey[..62], &challenge, None, signature),
            Err(CryptosignError::HexLength {
                field: HexField::PublicKey,
                expected: 64,
                got: 62
            })
        );
        // 64 bytes, but 'é' is two of them: not hex, and no slicing inside a character.
        let mut not_hex = pubkey[..62].to_owned();
        not_hex.push('é');
        assert_eq!(
            verify(&not_hex, &challenge, None, signature),
            Err(CryptosignError::NotHex {
                field: HexField::PublicKey
            })
        );
        let key = SigningKey::from_hex(seed).unwrap();
        assert!(matches!(
            key.sign_challenge(&"ff".repeat(31), None),
            Err(CryptosignError::HexLength {
                field: HexField::Challenge,
                ..
            })
        ));
        assert!(matches!(
            key.sign_challenge(&"zz".repeat(32), None),
            Err(CryptosignError::NotHex {
                field: HexField::Challenge
            })
        ));
        assert!(matches!(
            SigningKey::from_hex("abc"),
            Err(CryptosignError::HexLength {
                field: HexField::Seed,
                ..
            })
        ));
    }

    #[test]
    fn invalid_and_weak_public_keys_are_rejected() {
        let (_, challenge, _, signature) = VECTORS[0];
        let challenge = bytes32(challenge);
        // y = 2 is not on the curve (no x with x^2 = (y^2 - 1) / (d y^2 + 1) exists).
        let mut off_curve = [0u8; 32];
        off_curve[0] = 2;
        // The identity point (y = 1) has order 1: weak.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        for pubkey in [off_curve, identity] {
            assert_eq!(
                verify(&hex::encode(pubkey), &challenge, None, signature),
                Err(CryptosignError::InvalidPublicKey)
            );
        }
    }
}
