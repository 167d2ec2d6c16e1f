//! Authentication, client side: the credentials configured on the
//! [`ClientBuilder`](crate::ClientBuilder), what they add to HELLO, and the AUTHENTICATE that
//! answers the router's CHALLENGE. The algorithms are the `wamp-auth` crate's.

use std::fmt;
use std::str::FromStr;

use wamp_auth::{cryptosign, wampcra};
use wamp_proto::message::Challenge;
use wamp_proto::options::dict;
use wamp_proto::{uris, Dict, Value};

use crate::error::InvalidKey;

/// The most PBKDF2 iterations this client computes for a salted WAMP-CRA challenge (the
/// router chooses them; WAMP routers use about 1000). A CHALLENGE asking for more is refused
/// locally with [`ConnectError::ChallengeRefused`](crate::ConnectError::ChallengeRefused), so
/// a hostile router cannot make the client burn CPU. The derived key length is capped too
/// (at 1024 bytes).
pub const MAX_WAMPCRA_ITERATIONS: u32 = 1_000_000;

/// PBKDF2 parameters assumed when a salted WAMP-CRA challenge omits them (autobahn's and
/// Crossbar's defaults).
const DEFAULT_ITERATIONS: u64 = 1000;
const DEFAULT_KEYLEN: u64 = 32;

/// ABORT reasons that mean the router refused to authenticate the client (as opposed to,
/// e.g., `wamp.error.no_such_realm`).
const AUTH_FAILURES: &[&str] = &[
    uris::AUTHENTICATION_FAILED,
    uris::NO_AUTH_METHOD,
    uris::NO_SUCH_PRINCIPAL,
    uris::NOT_AUTHORIZED,
    // The spec's names for the same refusals.
    "wamp.error.no_matching_auth_method",
    "wamp.error.authentication_denied",
    "wamp.error.authentication_required",
];

/// Whether an ABORT with this reason refuses the client's authentication.
pub(crate) fn is_auth_failure(reason: &str) -> bool {
    AUTH_FAILURES.contains(&reason)
}

/// An Ed25519 private key for `cryptosign` authentication
/// ([`ClientBuilder::cryptosign`](crate::ClientBuilder::cryptosign)).
///
/// Its `Debug` output shows the public key only. The router's configuration lists the public
/// key ([`CryptosignKey::public_key_hex`]) under the user's `cryptosign_keys`.
#[derive(Clone)]
pub struct CryptosignKey(cryptosign::SigningKey);

impl CryptosignKey {
    /// From the 32-byte seed (what autobahn calls the private key).
    pub fn from_seed(seed: [u8; 32]) -> CryptosignKey {
        CryptosignKey(cryptosign::SigningKey::from_seed(&seed))
    }

    /// From the seed as 64 hex characters (autobahn's `privkey`, Crossbar's key files);
    /// surrounding whitespace, such as a file's trailing newline, is ignored.
    pub fn from_hex(seed_hex: &str) -> Result<CryptosignKey, InvalidKey> {
        cryptosign::SigningKey::from_hex(seed_hex.trim())
            .map(CryptosignKey)
            .map_err(|e| InvalidKey::new(e.to_string()))
    }

    /// A new random key (store [`CryptosignKey::seed_hex`] to use it again).
    pub fn generate() -> CryptosignKey {
        CryptosignKey(cryptosign::SigningKey::generate())
    }

    /// The seed as 64 lowercase hex characters: the secret, to store the key.
    pub fn seed_hex(&self) -> String {
        self.0.seed_hex()
    }

    /// The 32-byte public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.0.public_key()
    }

    /// The public key as 64 lowercase hex characters: HELLO's `authextra.pubkey`, and what
    /// the router's configuration lists.
    pub fn public_key_hex(&self) -> String {
        self.0.public_key_hex()
    }
}

impl From<[u8; 32]> for CryptosignKey {
    fn from(seed: [u8; 32]) -> CryptosignKey {
        CryptosignKey::from_seed(seed)
    }
}

impl FromStr for CryptosignKey {
    type Err = InvalidKey;

    /// [`CryptosignKey::from_hex`].
    fn from_str(seed_hex: &str) -> Result<CryptosignKey, InvalidKey> {
        CryptosignKey::from_hex(seed_hex)
    }
}

impl fmt::Debug for CryptosignKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CryptosignKey")
            .field("public_key", &self.public_key_hex())
            .finish_non_exhaustive()
    }
}

/// One authentication method the client offers, with its credential.
#[derive(Clone)]
pub(crate) enum Method {
    Anonymous,
    Ticket(String),
    WampCra(String),
    Cryptosign(CryptosignKey),
    /// The TLS client certificate (its credential is in the TLS options).
    Tls,
}

impl Method {
    /// The `authmethod` name.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Method::Anonymous => "anonymous",
            Method::Ticket(_) => "ticket",
            Method::WampCra(_) => wampcra::AUTHMETHOD,
            Method::Cryptosign(_) => cryptosign::AUTHMETHOD,
            Method::Tls => "tls",
        }
    }
}

impl fmt::Debug for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Method::Anonymous => f.write_str("Anonymous"),
            Method::Ticket(_) => f.write_str("Ticket(<redacted>)"),
            Method::WampCra(_) => f.write_str("WampCra(<redacted>)"),
            Method::Cryptosign(k) => f.debug_tuple("Cryptosign").field(k).finish(),
            Method::Tls => f.write_str("Tls"),
        }
    }
}

/// Who the client authenticates as, and how.
#[derive(Debug, Clone, Default)]
pub(crate) struct Auth {
    pub(crate) authid: Option<String>,
    pub(crate) authrole: Option<String>,
    /// In the order configured; a method configured again replaces its credential in place.
    methods: Vec<Method>,
}

/// Why a CHALLENGE gets no AUTHENTICATE.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Unanswered {
    /// The router asked for a method this client did not offer: a protocol error.
    NotOffered(String),
    /// The CHALLENGE is malformed or beyond this client's limits: refused locally.
    Refused(String),
}

impl Auth {
    /// Offers `method` (after those configured before it), replacing an earlier credential
    /// for the same method in place.
    pub(crate) fn offer(&mut self, method: Method) {
        match self.methods.iter_mut().find(|m| m.name() == method.name()) {
            Some(m) => *m = method,
            None => self.methods.push(method),
        }
    }

    /// HELLO.Details.authmethods: the configured methods in order, `anonymous` alone when
    /// none is.
    pub(crate) fn method_names(&self) -> Vec<&'static str> {
        if self.methods.is_empty() {
            return vec![Method::Anonymous.name()];
        }
        self.methods.iter().map(Method::name).collect()
    }

    /// Adds `authmethods`, and `authid`, `authrole` and `authextra` (cryptosign: `pubkey`)
    /// when there are any, to HELLO.Details.
    pub(crate) fn add_to_hello(&self, details: &mut Dict) {
        let methods = self.method_names().into_iter().map(Value::from).collect();
        details.insert("authmethods".into(), Value::List(methods));
        if let Some(id) = &self.authid {
            details.insert("authid".into(), id.as_str().into());
        }
        if let Some(role) = &self.authrole {
            details.insert("authrole".into(), role.as_str().into());
        }
        let key = self.methods.iter().find_map(|m| match m {
            Method::Cryptosign(k) => Some(k),
            _ => None,
        });
        if let Some(key) = key {
            let extra = dict([("pubkey", key.public_key_hex().into())]);
            details.insert("authextra".into(), Value::Dict(extra));
        }
    }

    /// The AUTHENTICATE signature answering `challenge`. A salted WAMP-CRA key is derived on
    /// the blocking pool (PBKDF2 is slow on purpose).
    pub(crate) async fn answer(&self, challenge: &Challenge) -> Result<String, Unanswered> {
        let asked = challenge.auth_method.as_str();
        let method = self
            .methods
            .iter()
            .find(|m| m.name() == asked && !matches!(m, Method::Anonymous));
        let extra = &challenge.extra;
        match method {
            None => Err(Unanswered::NotOffered(format!(
                "CHALLENGE for authmethod `{asked}`, which this client did not offer (offered: {})",
                self.method_names().join(", ")
            ))),
            Some(Method::Ticket(t)) => Ok(t.clone()),
            Some(Method::WampCra(secret)) => answer_wampcra(secret, extra).await,
            Some(Method::Cryptosign(key)) => answer_cryptosign(key, extra),
            Some(Method::Tls) => Err(Unanswered::Refused(
                "the tls method is proven by the client certificate in the TLS handshake, \
                 not by answering a CHALLENGE"
                    .into(),
            )),
            Some(Method::Anonymous) => unreachable!("anonymous is filtered out above"),
        }
    }
}

async fn answer_wampcra(secret: &str, extra: &Dict) -> Result<String, Unanswered> {
    let refused = |m: String| Unanswered::Refused(m);
    let challenge = match extra.get("challenge") {
        Some(Value::Str(c)) => c.clone(),
        _ => return Err(refused("the CHALLENGE has no `challenge` string".into())),
    };
    let salt = match extra.get("salt") {
        None | Some(Value::Null) => {
            let key = secret.as_bytes();
            return Ok(wampcra::sign(key, &challenge));
        }
        Some(Value::Str(s)) => s.clone(),
        Some(_) => return Err(refused("the CHALLENGE's `salt` is not a string".into())),
    };
    let iterations = count(extra, "iterations", DEFAULT_ITERATIONS).map_err(refused)?;
    let keylen = count(extra, "keylen", DEFAULT_KEYLEN).map_err(refused)?;
    let iterations = u32::try_from(iterations)
        .ok()
        .filter(|n| *n <= MAX_WAMPCRA_ITERATIONS)
        .ok_or_else(|| {
            refused(format!(
                "the CHALLENGE asks for {iterations} PBKDF2 iterations, over this client's \
                 limit of {MAX_WAMPCRA_ITERATIONS}"
            ))
        })?;
    let keylen = usize::try_from(keylen)
        .ok()
        .filter(|n| (1..=wampcra::MAX_KEYLEN).contains(n))
        .ok_or_else(|| {
            refused(format!(
                "the CHALLENGE asks for a {keylen}-byte key, outside 1..={}",
                wampcra::MAX_KEYLEN
            ))
        })?;
    let secret = secret.to_owned();
    let derived = tokio::task::spawn_blocking(move || {
        let salting = wampcra::Salting {
            salt: &salt,
            iterations,
            keylen,
        };
        wampcra::key(&secret, Some(salting)).map(|key| wampcra::sign(&key, &challenge))
    })
    .await;
    match derived {
        Ok(Ok(signature)) => Ok(signature),
        Ok(Err(e)) => Err(refused(e.to_string())),
        Err(e) => Err(refused(format!("deriving the WAMP-CRA key failed: {e}"))),
    }
}

fn answer_cryptosign(key: &CryptosignKey, extra: &Dict) -> Result<String, Unanswered> {
    let refused = |m: String| Unanswered::Refused(m);
    match extra.get("channel_binding") {
        None | Some(Value::Null) => {}
        Some(other) => {
            return Err(refused(format!(
                "the CHALLENGE asks for channel binding {}, which needs TLS (not supported)",
                describe(other)
            )))
        }
    }
    let Some(Value::Str(challenge)) = extra.get("challenge") else {
        return Err(refused("the CHALLENGE has no `challenge` string".into()));
    };
    key.0
        .sign_challenge(challenge, None)
        .map_err(|e| refused(format!("the CHALLENGE's {e}")))
}

/// A non-negative integer field of the CHALLENGE extra (`default` when absent); a float with
/// an integral value is accepted too (JSON routers may send `1000.0`).
fn count(extra: &Dict, field: &str, default: u64) -> Result<u64, String> {
    match extra.get(field) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::UInt(n)) => Ok(*n),
        Some(Value::Float(f)) if f.fract() == 0.0 && *f >= 0.0 && *f < 1e19 => Ok(*f as u64),
        Some(other) => Err(format!(
            "the CHALLENGE's `{field}` is {}, not a non-negative integer",
            describe(other)
        )),
    }
}

/// A short description of a received value for an error message (no unbounded echo).
fn describe(v: &Value) -> String {
    match v {
        Value::Str(s) if s.len() <= 40 => format!("{s:?}"),
        Value::Str(_) => "a long string".into(),
        Value::Int(n) => n.to_string(),
        Value::UInt(n) => n.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".into(),
        Value::Bytes(_) => "binary".into(),
        Value::List(_) => "a list".into(),
        Value::Dict(_) => "a dict".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenge(method: &str, extra: Dict) -> Challenge {
        Challenge {
            auth_method: method.into(),
            extra,
        }
    }

    fn auth(methods: impl IntoIterator<Item = Method>) -> Auth {
        let mut a = Auth::default();
        for m in methods {
            a.offer(m);
        }
        a
    }

    #[test]
    fn methods_are_offered_in_configuration_order_once_each() {
        assert_eq!(Auth::default().method_names(), ["anonymous"]);
        let key = CryptosignKey::from_seed([7; 32]);
        let a = auth([
            Method::Cryptosign(key.clone()),
            Method::Ticket("t1".into()),
            Method::Anonymous,
            Method::WampCra("s".into()),
            Method::Ticket("t2".into()),
        ]);
        assert_eq!(
            a.method_names(),
            ["cryptosign", "ticket", "anonymous", "wampcra"]
        );
        let mut hello = Dict::new();
        a.add_to_hello(&mut hello);
        assert_eq!(
            hello["authextra"],
            Value::Dict(dict([("pubkey", key.public_key_hex().into())]))
        );
        assert!(!hello.contains_key("authid") && !hello.contains_key("authrole"));
        // The later ticket replaced the earlier one.
        let Method::Ticket(t) = &a.methods[1] else {
            panic!("{:?}", a.methods)
        };
        assert_eq!(t, "t2");
    }

    #[tokio::test]
    async fn hostile_wampcra_parameters_are_refused_locally() {
        let a = auth([Method::WampCra("s".into())]);
        let salted = |iterations: Value, keylen: Value| {
            challenge(
                "wampcra",
                dict([
                    ("challenge", "c".into()),
                    ("salt", "salt".into()),
                    ("iterations", iterations),
                    ("keylen", keylen),
                ]),
            )
        };
        for (c, why) in [
            (
                salted(1_000_001u64.into(), 32u64.into()),
                "limit of 1000000",
            ),
            (salted(u64::MAX.into(), 32u64.into()), "limit of 1000000"),
            (salted(1000u64.into(), 1025u64.into()), "1025-byte key"),
            (salted(1000u64.into(), 0u64.into()), "0-byte key"),
            (
                salted(0u64.into(), 32u64.into()),
                "iterations must be at least 1",
            ),
            (
                salted((-5i64).into(), 32u64.into()),
                "not a non-negative integer",
            ),
            (
                salted("many".into(), 32u64.into()),
                "not a non-negative integer",
            ),
            (challenge("wampcra", Dict::new()), "no `challenge` string"),
            (
                challenge("wampcra", dict([("challenge", 5u64.into())])),
                "no `challenge` string",
            ),
            (
                challenge(
                    "wampcra",
                    dict([("challenge", "c".into()), ("salt", 1u64.into())]),
                ),
                "`salt` is not a string",
            ),
        ] {
            match a.answer(&c).await {
                Err(Unanswered::Refused(m)) => assert!(m.contains(why), "{m} (wanted {why})"),
                other => panic!("{c:?}: {other:?}"),
            }
        }
        // At the limit, and with integral floats, the key is derived.
        let ok = salted(Value::Float(1000.0), Value::Float(32.0));
        let expected = wampcra::sign(
            &wampcra::key(
                "s",
                Some(wampcra::Salting {
                    salt: "salt",
                    iterations: 1000,
                    keylen: 32,
                }),
            )
            .unwrap(),
            "c",
        );
        assert_eq!(a.answer(&ok).await, Ok(expected));
    }

    #[tokio::test]
    async fn cryptosign_challenges_are_checked() {
        let a = auth([Method::Cryptosign(CryptosignKey::from_seed([1; 32]))]);
        for (extra, why) in [
            (
                dict([
                    ("challenge", "ff".repeat(32).into()),
                    ("channel_binding", "tls-unique".into()),
                ]),
                "channel binding \"tls-unique\"",
            ),
            (dict([("channel_binding", Value::Null)]), "no `challenge`"),
            (dict([("challenge", "ff".into())]), "64 hex characters"),
            (dict([("challenge", "zz".repeat(32).into())]), "not hex"),
        ] {
            match a.answer(&challenge("cryptosign", extra)).await {
                Err(Unanswered::Refused(m)) => assert!(m.contains(why), "{m} (wanted {why})"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn only_offered_methods_are_answered() {
        let a = auth([Method::Ticket("t".into()), Method::Anonymous]);
        for method in ["wampcra", "anonymous", "cryptosign", "scram"] {
            let r = a.answer(&challenge(method, Dict::new())).await;
            assert!(
                matches!(r, Err(Unanswered::NotOffered(_))),
                "{method}: {r:?}"
            );
        }
        let r = Auth::default()
            .answer(&challenge("ticket", Dict::new()))
            .await;
        assert!(matches!(r, Err(Unanswered::NotOffered(_))), "{r:?}");
        assert_eq!(
            a.answer(&challenge("ticket", Dict::new())).await,
            Ok("t".into())
        );
        // The certificate proves `tls` in the TLS handshake; a CHALLENGE for it is refused.
        let a = auth([Method::Tls, Method::Anonymous]);
        assert_eq!(a.method_names(), ["tls", "anonymous"]);
        let r = a.answer(&challenge("tls", Dict::new())).await;
        assert!(matches!(r, Err(Unanswered::Refused(_))), "{r:?}");
    }

    #[test]
    fn keys_parse_and_hide_their_seed() {
        // The WAMP spec's cryptosign test vector.
        let seed = "4d57d97a68f555696620a6d849c0ce582568518d729eb753dc7c732de2804510";
        let k: CryptosignKey = seed.parse().unwrap();
        assert_eq!(k.seed_hex(), seed);
        let mut bytes = [0u8; 32];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = u8::from_str_radix(&seed[2 * i..2 * i + 2], 16).unwrap();
        }
        assert_eq!(
            CryptosignKey::from(bytes).public_key_hex(),
            k.public_key_hex()
        );
        assert_eq!(k.public_key_hex().len(), 64);
        let debug = format!("{k:?} {:?}", Method::Cryptosign(k.clone()));
        assert!(
            !debug.contains(seed) && debug.contains(&k.public_key_hex()),
            "{debug}"
        );
        assert!(CryptosignKey::from_hex("abc").is_err());
        assert!(CryptosignKey::from_hex(&"g".repeat(64)).is_err());
        let secret = format!(
            "{:?} {:?}",
            Method::Ticket("hunter2".into()),
            Method::WampCra("hunter2".into())
        );
        assert!(!secret.contains("hunter2"), "{secret}");
    }

    #[test]
    fn auth_abort_reasons() {
        for r in [
            uris::AUTHENTICATION_FAILED,
            uris::NO_AUTH_METHOD,
            uris::NO_SUCH_PRINCIPAL,
            uris::NOT_AUTHORIZED,
        ] {
            assert!(is_auth_failure(r), "{r}");
        }
        for r in [
            uris::NO_SUCH_REALM,
            uris::NO_SUCH_ROLE,
            uris::PROTOCOL_VIOLATION,
        ] {
            assert!(!is_auth_failure(r), "{r}");
        }
    }
}
