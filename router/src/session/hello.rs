//! HELLO → (CHALLENGE → AUTHENTICATE →) WELCOME: the realm, the peer's roles, the session's
//! authenticated identity and its WELCOME.

use std::collections::HashSet;
use std::sync::Arc;

use tracing::{info, warn};
use wamp_proto::message::{Authenticate, Hello, Welcome};
use wamp_proto::options::dict;
use wamp_proto::{uris, Dict, Id, Uri, Value};

use super::core::{Joined, SessionCore};
use crate::auth::{Identity, Pending, Question, Start, Verdict, Verifying};
use crate::config::AuthMethod;
use crate::error::Refusal;
use crate::peer::{NotSent, PeerFeatures, SessionHandle, SessionInfo};
use crate::realm::Realm;

/// A session waiting for its AUTHENTICATE.
pub(crate) struct PendingJoin {
    /// The id WELCOME will carry (reserved: WAMP-CRA signs it).
    id: Id,
    realm: Arc<Realm>,
    features: PeerFeatures,
    /// The challenge sent (taken when the AUTHENTICATE arrives).
    auth: Option<Pending>,
    /// Who is being authenticated, and how (for the log).
    authid: String,
    method: AuthMethod,
    /// A verification running elsewhere, if any.
    check: Option<Verifying>,
}

/// What a HELLO led to.
pub(super) enum Greeted {
    Joined(Joined),
    /// A CHALLENGE was queued.
    Challenged(Box<PendingJoin>),
}

/// Handles HELLO: the realm, then the first authentication method that fits. `Err` is the
/// ABORT to send, or a protocol violation.
pub(super) fn hello(core: &SessionCore, hello: Hello) -> Result<Greeted, Refusal> {
    check_roles(&hello.details).map_err(Refusal::violation)?;
    let peer = &core.transport.peer;
    let Some(realm) = core.router.realm(hello.realm.as_str()) else {
        warn!(%peer, realm = %hello.realm, "HELLO for unknown realm; refused");
        return Err(Refusal::new(
            uris::NO_SUCH_REALM,
            format!("no realm `{}` on this router", hello.realm),
        ));
    };
    let limit = |max: usize, what: &str| {
        core.router.metrics.limit_hit(if what == "router" {
            "router.max_sessions"
        } else {
            "max_sessions"
        });
        warn!(%peer, realm = %realm.name, max, "{what} limit reached; HELLO refused");
        Refusal::new(
            crate::dealer::call::LIMIT_EXCEEDED,
            format!("this {what} holds at most {max} sessions"),
        )
    };
    if core.router.session_ids.len() > core.router.options.max_sessions {
        return Err(limit(core.router.options.max_sessions, "router"));
    }
    if realm.sessions.len() >= realm.limits.max_sessions {
        return Err(limit(realm.limits.max_sessions, "realm"));
    }
    let id = core.router.new_session_id();
    let started = realm.users().start(
        &hello.details,
        core.transport.auth_methods.as_deref(),
        core.transport.client_cn.as_deref(),
        id,
    );
    let features = PeerFeatures::from_hello(&hello.details);
    match started {
        Ok(Start::Welcome(identity)) => {
            welcome(core, id, realm, features, identity).map(Greeted::Joined)
        }
        Ok(Start::Challenge(msg, auth)) => {
            core.send(&msg);
            Ok(Greeted::Challenged(Box::new(PendingJoin {
                id,
                realm,
                features,
                authid: auth.authid().to_owned(),
                method: auth.method(),
                auth: Some(auth),
                check: None,
            })))
        }
        Err(refusal) => {
            core.router.session_ids.remove(&id);
            let authid = hello.details.get("authid").and_then(Value::as_str);
            warn!(%peer, realm = %realm.name, authid, reason = refusal.uri, why = %refusal.message, "HELLO refused");
            Err(refusal)
        }
    }
}

/// What an AUTHENTICATE led to.
pub(super) enum Authenticated {
    Joined(Joined),
    /// The check runs elsewhere: poll [`PendingJoin::check`], then call [`done`].
    Checking(Box<PendingJoin>),
}

/// Handles the AUTHENTICATE answering a CHALLENGE. `Err` is the ABORT to send.
pub(super) fn authenticate(
    core: &SessionCore,
    mut p: Box<PendingJoin>,
    m: Authenticate,
) -> Result<Authenticated, Refusal> {
    let Some(auth) = p.auth.take() else {
        return Err(Refusal::violation("a second AUTHENTICATE"));
    };
    match p
        .realm
        .users()
        .finish(auth, m.signature, &core.router.auth_checks)
    {
        Verdict::Now(result) => done(core, *p, result).map(Authenticated::Joined),
        Verdict::Later(check) => {
            p.check = Some(check);
            Ok(Authenticated::Checking(p))
        }
        Verdict::Ask(question) => {
            p.check = Some(ask(core, &p, question));
            Ok(Authenticated::Checking(p))
        }
    }
}

/// Asks the realm's dynamic authenticator (through the router's internal caller), which
/// must be registered by sessions of role `trusted` only.
fn ask(core: &SessionCore, p: &PendingJoin, q: Question) -> Verifying {
    let realm = p.realm.clone();
    let internal = core.router.internal.clone();
    let mut details = q.details;
    details.insert("session".into(), p.id.get().into());
    details.insert(
        "transport".into(),
        Value::Dict(dict([
            ("type", core.transport.kind.into()),
            ("peer", (&*core.transport.peer).into()),
        ])),
    );
    Box::pin(async move {
        let procedure = Uri::new(&q.procedure);
        let trusted = realm.dealer.lookup(&procedure).is_some_and(|r| {
            r.all_callees(|c| &*c.session.shared().authrole == crate::config::TRUSTED_ROLE)
        });
        if !trusted {
            warn!(realm = %realm.name, procedure = %q.procedure, "no authenticator registered by a trusted session");
            return Err(Refusal::new(
                uris::AUTHENTICATION_FAILED,
                "the authenticator is not available",
            ));
        }
        let args = vec![
            realm.name.as_str().into(),
            q.authid.as_str().into(),
            Value::Dict(details),
        ];
        let answer = internal
            .call(&realm.dealer, &q.procedure, args, q.timeout)
            .await
            .map_err(|r| {
                warn!(realm = %realm.name, procedure = %q.procedure, refusal = %r, "the authenticator refused or failed");
                if r.uri == uris::TIMEOUT {
                    Refusal::new(uris::AUTHENTICATION_FAILED, r.message)
                } else {
                    r
                }
            })?;
        let mut answer = answer;
        answer
            .materialize()
            .map_err(|e| Refusal::new(uris::AUTHENTICATION_FAILED, e.to_string()))?;
        crate::auth::principal(&q.authid, answer, |role| realm.roles().exists(role))
    })
}

impl PendingJoin {
    /// The check running elsewhere, if any.
    pub(super) fn check(&mut self) -> Option<&mut Verifying> {
        self.check.as_mut()
    }
}

/// Ends authentication with `result`: WELCOME, or the refusal (logged, counted per address).
pub(super) fn done(
    core: &SessionCore,
    p: PendingJoin,
    result: Result<Identity, Refusal>,
) -> Result<Joined, Refusal> {
    match result {
        Ok(identity) => {
            core.router.penalties.succeed(core.transport.ip);
            let PendingJoin {
                id,
                realm,
                features,
                ..
            } = p;
            welcome(core, id, realm, features, identity)
        }
        Err(refusal) => {
            core.router.session_ids.remove(&p.id);
            // The secret is never logged: only who tried what, from where.
            warn!(peer = %core.transport.peer, realm = %p.realm.name, authid = %p.authid, method = p.method.as_str(), reason = refusal.uri, "authentication failed");
            Err(refusal)
        }
    }
}

/// Joins `realm` as `identity` and queues WELCOME.
fn welcome(
    core: &SessionCore,
    id: Id,
    realm: Arc<Realm>,
    features: PeerFeatures,
    identity: Identity,
) -> Result<Joined, Refusal> {
    let authid: Arc<str> = Arc::from(identity.authid.as_str());
    let authrole: Arc<str> = Arc::from(identity.authrole.as_str());
    let handle = SessionHandle::new(
        id,
        core.serializer,
        (authid.clone(), authrole.clone()),
        core.outbox().clone(),
        features,
        (
            core.transport.wire,
            core.transport.max_frame,
            SessionInfo {
                authmethod: identity.authmethod.as_str(),
                authprovider: identity.authprovider,
                authextra: identity.authextra.clone(),
                transport: core.transport.kind,
                peer: core.transport.peer.clone(),
            },
        ),
    );
    realm.sessions.insert(id, handle.clone());
    // After the insert: a reload that removes the realm or the role now either is seen here
    // or sees this session (and closes it).
    let roles = realm.roles();
    let gone = if !core.router.has_realm(&realm) {
        Some((uris::NO_SUCH_REALM, "realm"))
    } else if !roles.exists(&authrole) {
        Some((uris::NO_SUCH_ROLE, "role"))
    } else {
        None
    };
    if let Some((uri, what)) = gone {
        realm.sessions.remove(&id);
        core.router.session_ids.remove(&id);
        warn!(peer = %core.transport.peer, realm = %realm.name, %authid, %authrole, "the {what} was removed by a reload during authentication; refused");
        return Err(Refusal::new(
            uri,
            format!("the {what} was removed from the router's configuration"),
        ));
    }
    let mut details = dict([
        ("realm", realm.name.as_str().into()),
        ("authid", (*authid).into()),
        ("authrole", (*authrole).into()),
        ("authmethod", identity.authmethod.as_str().into()),
        ("authprovider", identity.authprovider.into()),
        ("roles", router_roles(realm.meta_api)),
        (
            "agent",
            concat!("wamp-router-rs/", env!("CARGO_PKG_VERSION")).into(),
        ),
    ]);
    if !identity.authextra.is_empty() {
        details.insert("authextra".into(), Value::Dict(identity.authextra));
    }
    let sent = handle.try_send(
        &Welcome {
            session: id,
            details,
        }
        .into(),
    );
    if let Err(NotSent::TooLarge { len, max }) = sent {
        realm.sessions.remove(&id);
        core.router.session_ids.remove(&id);
        warn!(peer = %core.transport.peer, len, max, "WELCOME is longer than the peer accepts; refused");
        return Err(Refusal::new(
            uris::PAYLOAD_SIZE_EXCEEDED,
            format!("WELCOME ({len} bytes) is longer than this transport accepts ({max} bytes)"),
        ));
    }
    info!(session = %id, realm = %realm.name, peer = %core.transport.peer, transport = core.transport.kind, serializer = core.serializer.name(), %authid, %authrole, authmethod = identity.authmethod.as_str(), "session joined");
    crate::meta::events::joined(&realm, &handle);
    Ok(Joined {
        handle,
        role: roles.role(&authrole),
        realm,
        subscriptions: HashSet::default(),
        registrations: HashSet::default(),
        testaments: None,
        paused_by: None,
        deferred: None,
    })
}

impl PendingJoin {
    /// Gives up the reserved session id (the join was abandoned).
    pub(super) fn release(&self, core: &SessionCore) {
        core.router.session_ids.remove(&self.id);
    }
}

/// Validates HELLO.Details.roles: a non-empty dict of known client roles.
fn check_roles(details: &Dict) -> Result<(), String> {
    let roles = details
        .get("roles")
        .and_then(Value::as_dict)
        .ok_or("HELLO.Details.roles must be a dict")?;
    if roles.is_empty() {
        return Err("HELLO.Details.roles must announce at least one role".into());
    }
    for (name, role) in roles {
        if !matches!(
            name.as_str(),
            "publisher" | "subscriber" | "caller" | "callee"
        ) {
            return Err(format!("unknown client role `{name}` in HELLO"));
        }
        if role.as_dict().is_none() {
            return Err(format!("role `{name}` must be a dict"));
        }
    }
    Ok(())
}

/// The router's roles for WELCOME: only the features that really work (the meta API's
/// where the realm has it on).
fn router_roles(meta_api: bool) -> Value {
    let role = |mut features: Dict, meta: &[&str]| {
        if meta_api {
            for f in meta {
                features.insert((*f).into(), Value::Bool(true));
            }
        }
        Value::Dict(dict([("features", Value::Dict(features))]))
    };
    let common = ["session_meta_api", "testament_meta_api"];
    Value::Dict(dict([
        (
            "broker",
            role(
                crate::broker::features(),
                &[common[0], common[1], "subscription_meta_api"],
            ),
        ),
        (
            "dealer",
            role(
                crate::dealer::features(),
                &[common[0], common[1], "registration_meta_api"],
            ),
        ),
    ]))
}
