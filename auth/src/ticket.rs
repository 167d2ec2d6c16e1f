//! Ticket authentication (WAMP.md 6.2 AUTH-02): the client sends a shared secret in the clear
//! (`[5, "<ticket>", {}]`, so only over TLS), the router compares it with what it has stored.
//!
//! What is stored is either the ticket itself or a PHC string made by [`hash`] (or by another
//! tool that writes the same format):
//! - `$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>` (also `argon2i` and `argon2d`),
//! - `$pbkdf2-sha256$i=600000,l=32$<salt>$<hash>` (also `pbkdf2-sha512`), the `pbkdf2` crate's
//!   format.
//!
//! Anything that starts with `$` is taken as a PHC string, so a plain ticket must not start
//! with `$`: a hash in an unsupported format (bcrypt's `$2b$…`, say) then fails closed instead
//! of becoming a plain ticket equal to its own text. [`validate`] tells an operator, at config
//! load time, why a stored value would never match.

use argon2::password_hash::phc::PasswordHash;
use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use pbkdf2::Pbkdf2;
use rand::RngCore;

/// Largest Argon2 memory cost [`verify`] accepts, in KiB (256 MiB; [`hash`] uses 19 MiB).
/// A larger value in a config is a typo or a denial of service on the router, not a policy.
pub const MAX_ARGON2_M_COST: u32 = 256 * 1024;
/// Largest Argon2 time cost (passes over memory) [`verify`] accepts ([`hash`] uses 2).
pub const MAX_ARGON2_T_COST: u32 = 64;
/// Largest Argon2 parallelism [`verify`] accepts ([`hash`] uses 1; lanes run one after the other).
pub const MAX_ARGON2_P_COST: u32 = 16;
/// Largest PBKDF2 iteration count [`verify`] accepts (OWASP recommends 600,000 for SHA-256).
pub const MAX_PBKDF2_ROUNDS: u32 = 10_000_000;

/// Why a stored ticket can never match (from [`validate`]), or why [`hash`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// The stored ticket is empty; an empty ticket never matches.
    #[error("the stored ticket is empty")]
    Empty,
    /// It starts with `$` but is not a PHC string with both a salt and a hash.
    #[error("not a PHC string `$alg$params$salt$hash`: {0}")]
    Malformed(String),
    /// A PHC string for an algorithm other than argon2id/i/d or pbkdf2-sha256/512.
    #[error("unsupported password hash algorithm `{0}`")]
    Unsupported(String),
    /// The algorithm is known but its parameters are not valid for it.
    #[error("invalid `{algorithm}` parameters: {reason}")]
    InvalidParams {
        /// The PHC algorithm identifier.
        algorithm: String,
        /// What the hashing crate said.
        reason: String,
    },
    /// A cost parameter is above the limit this crate accepts (see the `MAX_*` constants).
    #[error("{param}={value} is above the accepted maximum {max}")]
    TooCostly {
        /// The PHC parameter name (`m`, `t`, `p` or `i`).
        param: &'static str,
        /// Its value in the stored string.
        value: u32,
        /// The limit.
        max: u32,
    },
    /// Hashing failed (only for a ticket longer than Argon2 allows, 4 GiB).
    #[error("hashing failed: {0}")]
    Hashing(String),
}

/// Whether `stored` is a PHC string (starts with `$`) rather than a plain ticket.
pub fn is_hashed(stored: &str) -> bool {
    stored.starts_with('$')
}

/// Checks the `presented` ticket (AUTHENTICATE.Signature) against the `stored` one.
///
/// A plain stored ticket is compared in constant time (lengths included); a PHC string is
/// verified with the algorithm and parameters it names. An empty or malformed stored value,
/// an unsupported algorithm or parameters above the `MAX_*` limits give `false`.
pub fn verify(stored: &str, presented: &str) -> bool {
    if stored.is_empty() {
        return false;
    }
    if !is_hashed(stored) {
        return crate::ct_eq_hashed(stored.as_bytes(), presented.as_bytes());
    }
    match parse(stored) {
        Ok((phc, Scheme::Argon2)) => Argon2::default()
            .verify_password(presented.as_bytes(), &phc)
            .is_ok(),
        Ok((phc, Scheme::Pbkdf2)) => Pbkdf2::default()
            .verify_password(presented.as_bytes(), &phc)
            .is_ok(),
        Err(_) => false,
    }
}

/// Checks that a stored ticket can match at all: not empty and, if hashed, a well-formed PHC
/// string for a supported algorithm with parameters within the limits. For config loading.
pub fn validate(stored: &str) -> Result<(), TicketError> {
    if stored.is_empty() {
        return Err(TicketError::Empty);
    }
    if is_hashed(stored) {
        parse(stored)?;
    }
    Ok(())
}

/// Hashes a ticket for the config: an argon2id (v=19) PHC string with a random 16-byte salt
/// and the `argon2` crate's defaults, m=19456 KiB, t=2, p=1 (OWASP's first recommendation).
pub fn hash(ticket: &str) -> Result<String, TicketError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let phc: PasswordHash = Argon2::default()
        .hash_password_with_salt(ticket.as_bytes(), &salt)
        .map_err(|e| TicketError::Hashing(e.to_string()))?;
    Ok(phc.to_string())
}

enum Scheme {
    Argon2,
    Pbkdf2,
}

fn parse(stored: &str) -> Result<(PasswordHash, Scheme), TicketError> {
    let phc = PasswordHash::new(stored).map_err(|e| TicketError::Malformed(e.to_string()))?;
    if phc.salt.is_none() || phc.hash.is_none() {
        return Err(TicketError::Malformed("no salt or no hash".into()));
    }
    let algorithm = phc.algorithm.as_str();
    let invalid = |e: argon2::password_hash::Error| TicketError::InvalidParams {
        algorithm: algorithm.to_owned(),
        reason: e.to_string(),
    };
    let scheme = match algorithm {
        "argon2id" | "argon2i" | "argon2d" => {
            if let Some(v) = phc.version {
                argon2::Version::try_from(v).map_err(|e| TicketError::InvalidParams {
                    algorithm: algorithm.to_owned(),
                    reason: e.to_string(),
                })?;
            }
            let params = argon2::Params::try_from(&phc).map_err(invalid)?;
            at_most("m", params.m_cost(), MAX_ARGON2_M_COST)?;
            at_most("t", params.t_cost(), MAX_ARGON2_T_COST)?;
            at_most("p", params.p_cost(), MAX_ARGON2_P_COST)?;
            Scheme::Argon2
        }
        "pbkdf2-sha256" | "pbkdf2-sha512" => {
            let params = pbkdf2::Params::try_from(&phc).map_err(invalid)?;
            at_most("i", params.rounds(), MAX_PBKDF2_ROUNDS)?;
            Scheme::Pbkdf2
        }
        other => return Err(TicketError::Unsupported(other.to_owned())),
    };
    Ok((phc, scheme))
}

fn at_most(param: &'static str, value: u32, max: u32) -> Result<(), TicketError> {
    if value > max {
        return Err(TicketError::TooCostly { param, value, max });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made with Python's `argon2-cffi` 25 (the package autobahn's SCRAM uses):
    //   argon2.PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
    //       .hash("s3cr3t-ticket", salt=b"0123456789abcdef")
    // Small costs keep the debug-build test fast.
    const ARGON2ID_CFFI: &str =
        "$argon2id$v=19$m=64,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZg$FNTZ225p5M+08T6s7Ahg9KDMvCFTUS8PokRT926L2mY";

    // The `pbkdf2` crate's PHC layout, with the hash computed by Python's
    //   hashlib.pbkdf2_hmac("sha256", b"s3cr3t-ticket", b"0123456789abcdef", 1000, 32)
    // and salt and hash written as PHC B64 (standard alphabet, no padding).
    const PBKDF2_SHA256: &str =
        "$pbkdf2-sha256$i=1000,l=32$MDEyMzQ1Njc4OWFiY2RlZg$dCIKAH2GdkNZG/55nUlCzeJVHcXILgCqt7ciGQCR8Zw";

    #[test]
    fn plain_ticket_matches_only_itself() {
        assert!(verify("s3cr3t-ticket", "s3cr3t-ticket"));
        assert!(!verify("s3cr3t-ticket", "s3cr3t-ticke"));
        assert!(!verify("s3cr3t-ticket", "s3cr3t-ticket "));
        assert!(!verify("s3cr3t-ticket", ""));
        assert!(verify("pässwörd-秘密-🔑", "pässwörd-秘密-🔑"));
        assert!(!is_hashed("s3cr3t-ticket"));
    }

    #[test]
    fn empty_stored_ticket_never_matches() {
        assert!(!verify("", ""));
        assert_eq!(validate(""), Err(TicketError::Empty));
    }

    #[test]
    fn argon2id_from_argon2_cffi_verifies() {
        assert!(is_hashed(ARGON2ID_CFFI));
        assert_eq!(validate(ARGON2ID_CFFI), Ok(()));
        assert!(verify(ARGON2ID_CFFI, "s3cr3t-ticket"));
        assert!(!verify(ARGON2ID_CFFI, "s3cr3t-tickeT"));
    }

    #[test]
    fn pbkdf2_sha256_phc_verifies() {
        assert_eq!(validate(PBKDF2_SHA256), Ok(()));
        assert!(verify(PBKDF2_SHA256, "s3cr3t-ticket"));
        assert!(!verify(PBKDF2_SHA256, "wrong"));
    }

    #[test]
    fn hash_round_trips_with_random_salt() {
        let a = hash("s3cr3t-ticket").unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert!(is_hashed(&a));
        assert_eq!(validate(&a), Ok(()));
        assert!(verify(&a, "s3cr3t-ticket"));
        assert!(!verify(&a, "s3cr3t-ticket2"));
        let b = hash("s3cr3t-ticket").unwrap();
        assert_ne!(a, b, "two hashes of one ticket must differ by their salt");
    }

    #[test]
    fn malformed_and_unsupported_phc_fail_closed() {
        let cases = [
            "$",
            "$$$$",
            "$argon2id",
            "$argon2id$v=19$m=64,t=1,p=1",
            "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ",
            "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$!!!",
            "$argon2id$v=7$m=64,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "$argon2id$v=19$m=1,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "$argon2id$v=19$x=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "$pbkdf2-sha256$i=10,l=32$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "$pbkdf2-sha256$i=1000,l=16$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
            "$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E",
        ];
        for stored in cases {
            assert!(is_hashed(stored));
            assert!(validate(stored).is_err(), "{stored}");
            assert!(!verify(stored, "s3cr3t-ticket"), "{stored}");
            assert!(!verify(stored, stored), "{stored}");
        }
        assert!(matches!(
            validate("$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW"),
            Err(TicketError::Malformed(_) | TicketError::Unsupported(_))
        ));
    }

    #[test]
    fn costs_above_the_limits_are_refused_before_hashing() {
        let huge_m = "$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        assert_eq!(
            validate(huge_m),
            Err(TicketError::TooCostly {
                param: "m",
                value: 4_194_304,
                max: MAX_ARGON2_M_COST
            })
        );
        assert!(!verify(huge_m, "x"));
        let huge_t = "$argon2id$v=19$m=64,t=1000,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        assert!(matches!(
            validate(huge_t),
            Err(TicketError::TooCostly { param: "t", .. })
        ));
        let huge_i = "$pbkdf2-sha256$i=4000000000,l=32$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        assert!(matches!(
            validate(huge_i),
            Err(TicketError::TooCostly { param: "i", .. })
        ));
        assert!(!verify(huge_i, "x"));
    }
}
