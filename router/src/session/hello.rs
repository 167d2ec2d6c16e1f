//! HELLO → WELCOME: the realm, the peer's roles, the session's identity and its WELCOME.

use std::collections::HashSet;
use std::sync::Arc;

use tracing::{info, warn};
use wamp_proto::message::{Hello, Welcome};
use wamp_proto::options::dict;
use wamp_proto::{uris, Dict, Value};

use super::core::{Joined, SessionCore};
use crate::error::Refusal;
use crate::peer::{PeerFeatures, SessionHandle};

/// Joins the realm HELLO names (anonymously: authentication methods come with their own
/// issue) and queues WELCOME. `Err` is the ABORT to send, or a protocol violation.
pub(super) fn join(core: &SessionCore, hello: Hello) -> Result<Joined, Refusal> {
    check_roles(&hello.details).map_err(Refusal::violation)?;
    let peer = &core.transport.peer;
    let Some(realm) = core.router.realms.get(hello.realm.as_str()).cloned() else {
        warn!(%peer, realm = %hello.realm, "HELLO for unknown realm; refused");
        return Err(Refusal::new(
            uris::NO_SUCH_REALM,
            format!("no realm `{}` on this router", hello.realm),
        ));
    };
    if !realm.anonymous {
        warn!(%peer, realm = %realm.name, "anonymous join refused");
        return Err(Refusal::new(
            uris::NOT_AUTHORIZED,
            "anonymous access is disabled on this realm",
        ));
    }
    let id = core.router.new_session_id();
    let authid: Arc<str> = Arc::from(format!("anonymous-{id}"));
    let authrole: Arc<str> = Arc::from("anonymous");
    let handle = SessionHandle::new(
        id,
        core.serializer,
        authid.clone(),
        authrole.clone(),
        core.outbox().clone(),
        PeerFeatures::from_hello(&hello.details),
        core.transport.max_frame,
    );
    realm.sessions.insert(id, handle.clone());
    let details = dict([
        ("realm", realm.name.as_str().into()),
        ("authid", (*authid).into()),
        ("authrole", (*authrole).into()),
        ("authmethod", "anonymous".into()),
        ("authprovider", "static".into()),
        ("roles", router_roles()),
        (
            "agent",
            concat!("wamp-router-rs/", env!("CARGO_PKG_VERSION")).into(),
        ),
    ]);
    handle.send(
        &Welcome {
            session: id,
            details,
        }
        .into(),
    );
    info!(session = %id, realm = %realm.name, %peer, transport = core.transport.kind, serializer = core.serializer.name(), %authid, "session joined");
    Ok(Joined {
        handle,
        realm,
        subscriptions: HashSet::new(),
        registrations: HashSet::new(),
    })
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

/// The router's roles for WELCOME: only the features that really work.
fn router_roles() -> Value {
    let role = |features| Value::Dict(dict([("features", Value::Dict(features))]));
    Value::Dict(dict([
        ("broker", role(crate::broker::features())),
        ("dealer", role(crate::dealer::features())),
    ]))
}
