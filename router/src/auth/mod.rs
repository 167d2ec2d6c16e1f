//! Authentication: which method a HELLO gets (the first of the client's `authmethods` that
//! the realm and the transport allow for that authid), its CHALLENGE, and the check of the
//! AUTHENTICATE that answers it. The algorithms themselves are in the `wamp-auth` crate.
//!
//! [`roles`] is authorization; [`penalty`] slows down repeated failures per peer address;
//! [`internal`] is the router's own caller, through which a dynamic authenticator is asked.

pub(crate) mod internal;
pub(crate) mod penalty;
pub(crate) mod roles;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Semaphore;

use wamp_proto::message::Challenge;
use wamp_proto::options::dict;
use wamp_proto::{uris, Dict, Id, Message, Payload, Value};

use crate::config::{AuthMethod, AuthenticatorConfig, RealmConfig, UserConfig};
use crate::error::Refusal;

/// Who a session is, once authenticated.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub(crate) authid: String,
    pub(crate) authrole: String,
    pub(crate) authmethod: AuthMethod,
    pub(crate) authprovider: &'static str,
    pub(crate) authextra: Dict,
}

/// A user, with the WAMP-CRA key derived once at startup (PBKDF2 is slow on purpose).
#[derive(Debug)]
struct User {
    config: UserConfig,
    wampcra_key: Option<Vec<u8>>,
}

/// A CHALLENGE sent, waiting for its AUTHENTICATE.
#[derive(Debug)]
pub(crate) struct Pending {
    authid: String,
    kind: PendingKind,
}

#[derive(Debug)]
enum PendingKind {
    Ticket(Arc<User>),
    WampCra {
        user: Arc<User>,
        challenge: String,
        key: Vec<u8>,
    },
    Cryptosign {
        user: Arc<User>,
        challenge: [u8; 32],
        /// The keys the signature may be made with (the one HELLO named, or all the user's).
        pubkeys: Vec<String>,
    },
    /// A ticket the dynamic authenticator decides; `hello` is what HELLO said.
    Dynamic {
        hello: Dict,
    },
}

impl Pending {
    /// The method being authenticated.
    pub(crate) fn method(&self) -> AuthMethod {
        match self.kind {
            PendingKind::Ticket(_) | PendingKind::Dynamic { .. } => AuthMethod::Ticket,
            PendingKind::WampCra { .. } => AuthMethod::WampCra,
            PendingKind::Cryptosign { .. } => AuthMethod::Cryptosign,
        }
    }

    /// The authid being authenticated.
    pub(crate) fn authid(&self) -> &str {
        &self.authid
    }
}

/// A question for the dynamic authenticator: `procedure(realm, authid, details)`.
#[derive(Debug)]
pub(crate) struct Question {
    pub(crate) procedure: String,
    pub(crate) timeout: Duration,
    pub(crate) authid: String,
    /// `details` without `session` and `transport`, which the session adds.
    pub(crate) details: Dict,
}

/// A verification that runs off the async executor (a hashed ticket costs tens of ms).
pub(crate) type Verifying = Pin<Box<dyn Future<Output = Result<Identity, Refusal>> + Send>>;

/// The outcome of an AUTHENTICATE.
pub(crate) enum Verdict {
    /// Decided at once.
    Now(Result<Identity, Refusal>),
    /// Decided by this future (the session waits for it without blocking anyone).
    Later(Verifying),
    /// Decided by the dynamic authenticator: the session asks it.
    Ask(Question),
}

/// What a HELLO leads to.
#[derive(Debug)]
pub(crate) enum Start {
    /// Joined at once (anonymous).
    Welcome(Identity),
    /// This CHALLENGE goes out; the AUTHENTICATE is checked against the pending state.
    Challenge(Message, Pending),
}

/// A realm's users, indexed for HELLO.
#[derive(Debug)]
pub(crate) struct Users {
    by_authid: HashMap<String, Arc<User>>,
    /// Cryptosign public key → the authids holding it.
    by_key: HashMap<String, Vec<Arc<User>>>,
    /// The role of anonymous sessions, if anonymous joins are allowed.
    anonymous: Option<String>,
    /// Decides tickets of authids that are not static users.
    authenticator: Option<AuthenticatorConfig>,
}

fn str_of<'a>(d: &'a Dict, key: &str) -> Option<&'a str> {
    match d.get(key) {
        Some(Value::Str(s)) => Some(s),
        _ => None,
    }
}

impl Users {
    pub(crate) fn new(realm: &RealmConfig) -> Users {
        let mut by_authid = HashMap::new();
        let mut by_key: HashMap<String, Vec<Arc<User>>> = HashMap::new();
        for u in &realm.users {
            let wampcra_key = u.wampcra.as_ref().and_then(|c| {
                let salting = match (&c.salt, c.iterations, c.keylen) {
                    (Some(salt), Some(iterations), Some(keylen)) => {
                        Some(wamp_auth::wampcra::Salting {
                            salt,
                            iterations,
                            keylen: keylen as usize,
                        })
                    }
                    _ => None,
                };
                // The configuration was validated: the parameters are usable.
                wamp_auth::wampcra::key(c.secret.text(), salting).ok()
            });
            let u = Arc::new(User {
                config: u.clone(),
                wampcra_key,
            });
            for k in &u.config.cryptosign_keys {
                by_key
                    .entry(k.to_ascii_lowercase())
                    .or_default()
                    .push(u.clone());
            }
            by_authid.insert(u.config.authid.clone(), u);
        }
        Users {
            by_authid,
            by_key,
            anonymous: realm
                .allows_anonymous()
                .then(|| realm.anonymous_role.clone()),
            authenticator: realm.authenticator.clone(),
        }
    }

    /// Whether the realm offers `method` at all.
    fn offers(&self, method: AuthMethod) -> bool {
        match method {
            AuthMethod::Anonymous => self.anonymous.is_some(),
            AuthMethod::Ticket => {
                self.authenticator.is_some()
                    || self.by_authid.values().any(|u| u.config.ticket.is_some())
            }
            AuthMethod::WampCra => self.by_authid.values().any(|u| u.wampcra_key.is_some()),
            AuthMethod::Cryptosign => !self.by_key.is_empty(),
            AuthMethod::Tls => self.by_authid.values().any(|u| u.config.tls),
        }
    }

    /// Picks the method for a HELLO with `details` and starts it; `session` is the id WELCOME
    /// will carry (WAMP-CRA signs it). `allowed`: the transport's methods, if restricted.
    /// `client_cn`: the verified TLS client certificate's common name, if any.
    pub(crate) fn start(
        &self,
        details: &Dict,
        allowed: Option<&[AuthMethod]>,
        client_cn: Option<&str>,
        session: Id,
    ) -> Result<Start, Refusal> {
        let asked: Vec<&str> = match details.get("authmethods") {
            None => vec!["anonymous"],
            Some(Value::List(l)) => l.iter().filter_map(Value::as_str).collect(),
            Some(_) => {
                return Err(Refusal::violation(
                    "HELLO.Details.authmethods must be a list",
                ))
            }
        };
        let authid = str_of(details, "authid");
        let offered = |m: AuthMethod| self.offers(m) && allowed.is_none_or(|a| a.contains(&m));
        let methods: Vec<AuthMethod> = asked.iter().filter_map(|m| AuthMethod::parse(m)).collect();
        let mut principal_missing = false;
        for method in methods.iter().copied().filter(|m| offered(*m)) {
            let user = authid.and_then(|a| self.by_authid.get(a));
            let fits = match method {
                AuthMethod::Anonymous => return Ok(Start::Welcome(self.anonymous(session))),
                AuthMethod::Ticket => user.filter(|u| u.config.ticket.is_some()),
                AuthMethod::WampCra => user.filter(|u| u.wampcra_key.is_some()),
                AuthMethod::Cryptosign => match self.start_cryptosign(details, authid)? {
                    Some(start) => return Ok(start),
                    None => {
                        principal_missing = true;
                        continue;
                    }
                },
                AuthMethod::Tls => {
                    // The certificate was verified in the TLS handshake; its CN names the user.
                    let user = client_cn
                        .filter(|cn| authid.is_none_or(|a| a == *cn))
                        .and_then(|cn| self.by_authid.get(cn))
                        .filter(|u| u.config.tls);
                    match user {
                        Some(u) => {
                            return Ok(Start::Welcome(identity(u, AuthMethod::Tls, Dict::new())))
                        }
                        None => {
                            principal_missing = true;
                            continue;
                        }
                    }
                }
            };
            match (fits, authid) {
                (Some(u), _) => return Ok(self.challenge(method, u.clone(), session)),
                // No static user: the dynamic authenticator decides tickets.
                (None, Some(a)) if method == AuthMethod::Ticket && self.authenticator.is_some() => {
                    let mut hello = Dict::new();
                    for key in ["authid", "authrole", "authextra"] {
                        if let Some(v) = details.get(key) {
                            hello.insert(key.into(), v.clone());
                        }
                    }
                    let msg = Challenge {
                        auth_method: method.as_str().to_owned(),
                        extra: Dict::new(),
                    }
                    .into();
                    let kind = PendingKind::Dynamic { hello };
                    return Ok(Start::Challenge(
                        msg,
                        Pending {
                            authid: a.to_owned(),
                            kind,
                        },
                    ));
                }
                _ => principal_missing = true,
            }
        }
        if principal_missing {
            return Err(Refusal::new(
                uris::NO_SUCH_PRINCIPAL,
                match authid {
                    Some(a) => format!("no user `{a}` with credentials for the methods offered"),
                    None => "HELLO.Details.authid is required for the methods offered".into(),
                },
            ));
        }
        Err(Refusal::new(
            uris::NO_AUTH_METHOD,
            format!(
                "none of the offered authentication methods [{}] is allowed here",
                asked.join(", ")
            ),
        ))
    }

    fn anonymous(&self, session: Id) -> Identity {
        Identity {
            authid: format!("anonymous-{session}"),
            authrole: self.anonymous.clone().unwrap_or_default(),
            authmethod: AuthMethod::Anonymous,
            authprovider: "static",
            authextra: Dict::new(),
        }
    }

    fn challenge(&self, method: AuthMethod, user: Arc<User>, session: Id) -> Start {
        let authid = user.config.authid.clone();
        let (extra, kind) = match (method, &user.config.wampcra, &user.wampcra_key) {
            (AuthMethod::WampCra, Some(c), Some(key)) => {
                let challenge = wamp_auth::wampcra::challenge(
                    &user.config.authid,
                    &user.config.role,
                    "static",
                    session.get(),
                    &wamp_auth::wampcra::new_nonce(),
                    &wamp_auth::wampcra::timestamp(SystemTime::now()),
                );
                let mut extra = dict([("challenge", challenge.as_str().into())]);
                if let (Some(salt), Some(iterations), Some(keylen)) =
                    (&c.salt, c.iterations, c.keylen)
                {
                    extra.insert("salt".into(), salt.as_str().into());
                    extra.insert("iterations".into(), u64::from(iterations).into());
                    extra.insert("keylen".into(), u64::from(keylen).into());
                }
                let key = key.clone();
                (
                    extra,
                    PendingKind::WampCra {
                        user,
                        challenge,
                        key,
                    },
                )
            }
            _ => (Dict::new(), PendingKind::Ticket(user)),
        };
        let msg = Challenge {
            auth_method: method.as_str().to_owned(),
            extra,
        }
        .into();
        Start::Challenge(msg, Pending { authid, kind })
    }

    /// Cryptosign for the user holding `authextra.pubkey` (or, with an authid and no
    /// pubkey, any of that user's keys); `None` when no user fits, so the next offered method
    /// is tried.
    fn start_cryptosign(
        &self,
        details: &Dict,
        authid: Option<&str>,
    ) -> Result<Option<Start>, Refusal> {
        let pubkey = details
            .get("authextra")
            .and_then(Value::as_dict)
            .and_then(|x| str_of(x, "pubkey"))
            .map(str::to_ascii_lowercase);
        let (user, pubkeys) = match (pubkey, authid) {
            (Some(pk), authid) => {
                let holders = self.by_key.get(&pk).map(Vec::as_slice).unwrap_or(&[]);
                let user = match authid {
                    Some(a) => holders.iter().find(|u| u.config.authid == a),
                    None if holders.len() > 1 => {
                        return Err(Refusal::new(
                            uris::AUTHENTICATION_FAILED,
                            "this public key belongs to several users: send authid",
                        ))
                    }
                    None => holders.first(),
                };
                match user {
                    Some(u) => (u.clone(), vec![pk]),
                    None => return Ok(None),
                }
            }
            (None, Some(a)) => match self.by_authid.get(a) {
                Some(u) if !u.config.cryptosign_keys.is_empty() => {
                    let keys = u
                        .config
                        .cryptosign_keys
                        .iter()
                        .map(|k| k.to_ascii_lowercase());
                    (u.clone(), keys.collect())
                }
                _ => return Ok(None),
            },
            (None, None) => return Ok(None),
        };
        let challenge = wamp_auth::cryptosign::new_challenge();
        let msg = Challenge {
            auth_method: AuthMethod::Cryptosign.as_str().to_owned(),
            extra: dict([
                ("challenge", hex(&challenge).into()),
                ("channel_binding", Value::Null),
            ]),
        }
        .into();
        Ok(Some(Start::Challenge(
            msg,
            Pending {
                authid: user.config.authid.clone(),
                kind: PendingKind::Cryptosign {
                    user,
                    challenge,
                    pubkeys,
                },
            },
        )))
    }

    /// Checks the AUTHENTICATE `signature` against the pending challenge. A hashed ticket is
    /// checked on the blocking pool, at most `limit` at a time router-wide.
    pub(crate) fn finish(
        &self,
        pending: Pending,
        signature: String,
        limit: &Arc<Semaphore>,
    ) -> Verdict {
        let method = pending.method();
        let (user, ok, authextra) = match pending.kind {
            PendingKind::Dynamic { mut hello } => {
                let Some(a) = &self.authenticator else {
                    return Verdict::Now(Err(refused()));
                };
                hello.insert("authmethod".into(), "ticket".into());
                hello.insert("ticket".into(), signature.into());
                return Verdict::Ask(Question {
                    procedure: a.procedure.clone(),
                    timeout: Duration::from_millis(a.timeout_ms),
                    authid: pending.authid,
                    details: hello,
                });
            }
            PendingKind::Ticket(user) => {
                let stored = user.config.ticket.as_ref().map_or("", |t| t.text());
                if wamp_auth::ticket::is_hashed(stored) {
                    return Verdict::Later(hashed_ticket(user, signature, limit.clone()));
                }
                let ok = wamp_auth::ticket::verify(stored, &signature);
                (user, ok, Dict::new())
            }
            PendingKind::WampCra {
                user,
                challenge,
                key,
            } => {
                let ok = wamp_auth::wampcra::verify(&key, &challenge, &signature);
                (user, ok, Dict::new())
            }
            PendingKind::Cryptosign {
                user,
                challenge,
                pubkeys,
            } => {
                let signer = pubkeys.iter().find(|pk| {
                    wamp_auth::cryptosign::verify(pk, &challenge, None, &signature).is_ok()
                });
                let extra =
                    signer.map_or_else(Dict::new, |pk| dict([("pubkey", pk.as_str().into())]));
                (user, signer.is_some(), extra)
            }
        };
        if !ok {
            return Verdict::Now(Err(refused()));
        }
        Verdict::Now(Ok(identity(&user, method, authextra)))
    }
}

/// A hashed ticket, checked on the blocking pool under `limit`.
fn hashed_ticket(user: Arc<User>, ticket: String, limit: Arc<Semaphore>) -> Verifying {
    Box::pin(async move {
        let permit = limit.acquire_owned().await;
        let checked = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let stored = user.config.ticket.as_ref().map_or("", |t| t.text());
            (wamp_auth::ticket::verify(stored, &ticket), user)
        })
        .await;
        match checked {
            Ok((true, user)) => Ok(identity(&user, AuthMethod::Ticket, Dict::new())),
            _ => Err(refused()),
        }
    })
}

/// The dynamic authenticator's answer as an identity: a role string, or a dict with `role`
/// (required), `authid` and `extra`. The role must exist on the realm (`roles` says).
pub(crate) fn principal(
    authid: &str,
    answer: Payload,
    role_exists: impl Fn(&str) -> bool,
) -> Result<Identity, Refusal> {
    let bad = || {
        Refusal::new(
            uris::AUTHENTICATION_FAILED,
            "the authenticator's answer is neither a role nor a dict with `role`",
        )
    };
    let first = answer
        .args
        .and_then(|a| a.into_iter().next())
        .ok_or_else(bad)?;
    let (role, id, extra) = match first {
        Value::Str(role) => (role, None, Dict::new()),
        Value::Dict(mut d) => {
            let role = match d.remove("role") {
                Some(Value::Str(r)) => r,
                _ => return Err(bad()),
            };
            let id = match d.remove("authid") {
                Some(Value::Str(a)) => Some(a),
                None => None,
                Some(_) => return Err(bad()),
            };
            let extra = match d.remove("extra") {
                Some(Value::Dict(x)) => x,
                None => Dict::new(),
                Some(_) => return Err(bad()),
            };
            (role, id, extra)
        }
        _ => return Err(bad()),
    };
    if !role_exists(&role) {
        return Err(Refusal::new(
            uris::NO_SUCH_ROLE,
            format!("the authenticator assigned role `{role}`, which this realm does not have"),
        ));
    }
    Ok(Identity {
        authid: id.unwrap_or_else(|| authid.to_owned()),
        authrole: role,
        authmethod: AuthMethod::Ticket,
        authprovider: "dynamic",
        authextra: extra,
    })
}

fn refused() -> Refusal {
    Refusal::new(
        uris::AUTHENTICATION_FAILED,
        "the credentials were not accepted",
    )
}

fn identity(user: &User, authmethod: AuthMethod, authextra: Dict) -> Identity {
    Identity {
        authid: user.config.authid.clone(),
        authrole: user.config.role.clone(),
        authmethod,
        authprovider: "static",
        authextra,
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
