//! Authentication with a [`RawPeer`]: HELLO with `authmethods`, `authid` and `authextra`,
//! the router's CHALLENGE answered frame by frame (signatures computed with `wamp_auth`), and
//! authenticated joins for the authorization tests.

use wamp_auth::cryptosign::SigningKey;
use wamp_auth::wampcra::{self, Salting};
use wamp_proto::message::{Abort, Authenticate, Challenge, Welcome};
use wamp_proto::{Dict, Message, Serializer, Value};

use crate::{hello, RawPeer};

/// A credential, and so the method that HELLO offers for it.
#[derive(Debug, Clone, Copy)]
pub enum Cred<'a> {
    /// `anonymous`: no CHALLENGE.
    Anonymous,
    /// `ticket`: the ticket is the signature.
    Ticket(&'a str),
    /// `wampcra` with this secret (salted when the CHALLENGE says so).
    WampCra(&'a str),
    /// `cryptosign` with this key (its public key goes in `authextra.pubkey`).
    Cryptosign(&'a SigningKey),
}

impl Cred<'_> {
    /// The `authmethod` name.
    pub fn method(&self) -> &'static str {
        match self {
            Cred::Anonymous => "anonymous",
            Cred::Ticket(_) => "ticket",
            Cred::WampCra(_) => wampcra::AUTHMETHOD,
            Cred::Cryptosign(_) => wamp_auth::cryptosign::AUTHMETHOD,
        }
    }

    /// HELLO `authextra` for this credential (the cryptosign public key), if any.
    pub fn authextra(&self) -> Option<Dict> {
        match self {
            Cred::Cryptosign(k) => Some(Dict::from([(
                "pubkey".to_owned(),
                Value::from(k.public_key_hex()),
            )])),
            _ => None,
        }
    }

    /// The AUTHENTICATE signature answering `challenge`; panics on a CHALLENGE for another
    /// method or without what the method needs.
    pub fn answer(&self, challenge: &Challenge) -> String {
        assert_eq!(challenge.auth_method, self.method(), "{challenge:?}");
        match self {
            Cred::Anonymous => panic!("anonymous was challenged: {challenge:?}"),
            Cred::Ticket(t) => (*t).to_owned(),
            Cred::WampCra(secret) => {
                let text = extra_str(challenge, "challenge");
                wampcra::sign(&wampcra_key(secret, challenge), text)
            }
            Cred::Cryptosign(k) => k
                .sign_challenge(extra_str(challenge, "challenge"), None)
                .expect("the router's challenge is 64 hex characters"),
        }
    }
}

/// The WAMP-CRA key for `secret`: salted with the CHALLENGE's `salt`, `iterations` and
/// `keylen` when it has them.
pub fn wampcra_key(secret: &str, challenge: &Challenge) -> Vec<u8> {
    let x = &challenge.extra;
    let salting = match (x.get("salt"), x.get("iterations"), x.get("keylen")) {
        (Some(Value::Str(salt)), Some(i), Some(l)) => Some(Salting {
            salt,
            iterations: i
                .as_u64()
                .and_then(|i| u32::try_from(i).ok())
                .expect("iterations"),
            keylen: l
                .as_u64()
                .and_then(|l| usize::try_from(l).ok())
                .expect("keylen"),
        }),
        (None, None, None) => None,
        other => panic!("partial salting in the CHALLENGE: {other:?}"),
    };
    wampcra::key(secret, salting).expect("usable salting")
}

fn extra_str<'a>(challenge: &'a Challenge, key: &str) -> &'a str {
    challenge
        .extra
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("CHALLENGE extra.{key} is not a string: {challenge:?}"))
}

/// A HELLO for `realm` (all four client roles) offering `methods`, with `authid` and
/// `authextra` when given.
pub fn auth_hello(
    realm: &str,
    methods: &[&str],
    authid: Option<&str>,
    authextra: Option<Dict>,
) -> Message {
    let Message::Hello(mut h) = hello(realm) else {
        unreachable!("hello() builds a HELLO")
    };
    let methods = methods.iter().map(|m| Value::from(*m)).collect();
    h.details.insert("authmethods".into(), Value::List(methods));
    if let Some(a) = authid {
        h.details.insert("authid".into(), a.into());
    }
    if let Some(x) = authextra {
        h.details.insert("authextra".into(), Value::Dict(x));
    }
    Message::Hello(h)
}

impl RawPeer {
    /// Connects (JSON) and sends `hello`; returns the peer and the router's first answer.
    pub async fn greet(url: &str, hello: &Message) -> (RawPeer, Message) {
        let mut p = RawPeer::connect(url, Serializer::Json).await;
        p.send(hello).await;
        let first = p.recv().await;
        (p, first)
    }

    /// Sends AUTHENTICATE with `signature` and returns the router's answer.
    pub async fn authenticate(&mut self, signature: &str) -> Message {
        self.send(
            &Authenticate {
                signature: signature.to_owned(),
                extra: Dict::new(),
            }
            .into(),
        )
        .await;
        self.recv().await
    }

    /// Logs in to `realm` as `authid` with `cred` (answering a CHALLENGE if one comes) and
    /// returns the peer and the router's final answer: WELCOME (the session is then set) or
    /// ABORT.
    pub async fn login(
        url: &str,
        realm: &str,
        authid: Option<&str>,
        cred: Cred<'_>,
    ) -> (RawPeer, Message) {
        let hello = auth_hello(realm, &[cred.method()], authid, cred.authextra());
        let (mut p, first) = RawPeer::greet(url, &hello).await;
        let last = match first {
            Message::Challenge(c) => {
                let signature = cred.answer(&c);
                p.authenticate(&signature).await
            }
            other => other,
        };
        if let Message::Welcome(w) = &last {
            p.session = Some(w.session);
        }
        (p, last)
    }

    /// [`RawPeer::login`], which must be refused with an ABORT `reason` (with a message).
    pub async fn refused(
        url: &str,
        realm: &str,
        authid: Option<&str>,
        cred: Cred<'_>,
        reason: &str,
    ) -> Abort {
        let (_p, answer) = RawPeer::login(url, realm, authid, cred).await;
        assert_abort(&answer, reason)
    }

    /// [`RawPeer::login`], which must succeed.
    pub async fn join_as(
        url: &str,
        realm: &str,
        authid: Option<&str>,
        cred: Cred<'_>,
    ) -> (RawPeer, Welcome) {
        match RawPeer::login(url, realm, authid, cred).await {
            (p, Message::Welcome(w)) => (p, w),
            (_, other) => panic!(
                "{authid:?} with {}: expected WELCOME, got {other:?}",
                cred.method()
            ),
        }
    }
}

/// `msg` as an ABORT with `reason` and a non-empty `Details.message`; panics otherwise.
pub fn assert_abort(msg: &Message, reason: &str) -> Abort {
    match msg {
        Message::Abort(a) => {
            assert_eq!(a.reason.as_str(), reason, "{a:?}");
            let text = a.details.get("message").and_then(Value::as_str);
            assert!(
                text.is_some_and(|m| !m.is_empty()),
                "ABORT without Details.message: {a:?}"
            );
            a.clone()
        }
        other => panic!("expected ABORT {reason}, got {other:?}"),
    }
}

/// A WELCOME detail as text.
pub fn detail<'a>(w: &'a Welcome, key: &str) -> &'a str {
    w.details
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("WELCOME.Details.{key} is not a string: {w:?}"))
}

/// INVOCATION or EVENT `details` (or a callee's echo of them) disclose `who` (`caller` or
/// `publisher`): `who`, `who_authid` and `who_authrole`.
pub fn assert_disclosed(details: &Dict, who: &str, session: u64, authid: &str, authrole: &str) {
    let get = |suffix: &str| details.get(&format!("{who}{suffix}"));
    assert_eq!(get(""), Some(&Value::UInt(session)), "{who}: {details:?}");
    assert_eq!(get("_authid"), Some(&Value::from(authid)), "{details:?}");
    assert_eq!(
        get("_authrole"),
        Some(&Value::from(authrole)),
        "{details:?}"
    );
}

/// `details` disclose nothing of `who` (`caller` or `publisher`).
pub fn assert_undisclosed(details: &Dict, who: &str) {
    for suffix in ["", "_authid", "_authrole"] {
        let key = format!("{who}{suffix}");
        assert!(!details.contains_key(&key), "{key} disclosed: {details:?}");
    }
}
