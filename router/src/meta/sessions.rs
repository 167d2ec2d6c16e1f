//! `wamp.session.*`: count, list, get, kill (by id, authid, authrole), and testaments.

use wamp_proto::{uris, Dict, Id, Payload, Uri, Value};

use super::{describe, Args, Caller};
use crate::backplane::Wait;
use crate::broker::{Filter, Publication};
use crate::error::Refusal;
use crate::peer::SessionHandle;
use crate::realm::Realm;

/// A session's testaments, in the order they were added (boxed where a session keeps them:
/// most sessions have none).
#[derive(Debug, Default)]
pub(crate) struct Testaments(Vec<Testament>);

/// When a testament is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The session's transport is lost (without GOODBYE).
    Detached,
    /// The session ends, however it ends.
    Destroyed,
}

/// An event a session asked the router to publish for it when it goes away.
#[derive(Debug)]
pub(crate) struct Testament {
    topic: Uri,
    payload: Payload,
    options: Dict,
    scope: Scope,
}

fn scope(v: Option<&str>) -> Result<Scope, Refusal> {
    match v {
        None | Some("destroyed") => Ok(Scope::Destroyed),
        Some("detached") => Ok(Scope::Detached),
        Some(other) => Err(Refusal::new(
            uris::INVALID_ARGUMENT,
            format!("unknown testament scope `{other}` (destroyed or detached)"),
        )),
    }
}

/// A testament as another node keeps it, to publish if this node dies: every testament
/// fires when a session's transport is lost, whatever its scope.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct PortableTestament {
    pub(crate) topic: String,
    pub(crate) args: Option<Vec<Value>>,
    pub(crate) kwargs: Option<Dict>,
    pub(crate) options: Dict,
}

impl Testaments {
    /// The testaments, for the cluster's registry.
    pub(crate) fn portable(&self) -> Vec<PortableTestament> {
        self.0
            .iter()
            .map(|t| PortableTestament {
                topic: t.topic.as_str().to_owned(),
                args: t.payload.args.clone(),
                kwargs: t.payload.kwargs.clone(),
                options: t.options.clone(),
            })
            .collect()
    }
}

/// Publishes, on behalf of a session of a lost node, the testaments it left.
#[cfg(feature = "cluster-nats")]
pub(crate) fn publish_portable(realm: &Realm, testaments: Vec<PortableTestament>) {
    for t in testaments {
        let Ok(filter) = Filter::from_options(&t.options) else {
            continue;
        };
        let retain = t
            .options
            .get("retain")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        realm.publish(Publication {
            topic: Uri::from(t.topic),
            id: Id::random(),
            payload: Payload::new(t.args, t.kwargs),
            details: Dict::new(),
            exclude_publisher: None,
            filter,
            retain,
        });
    }
}

/// Tells the other nodes what `session` left as testaments (none: forget them); the wait
/// is over once they keep them.
fn share(c: &Caller<'_>) -> Option<Wait<()>> {
    let b = c.realm.backplane()?;
    let t = c
        .testaments
        .as_ref()
        .map(|t| t.portable())
        .unwrap_or_default();
    b.testaments(c.handle.id(), t)
}

/// Publishes the testaments of a leaving session: the `detached` ones first when the
/// transport was lost, then the `destroyed` ones, each with its own publish options.
pub(crate) fn publish_testaments(
    realm: &Realm,
    me: &SessionHandle,
    testaments: Testaments,
    lost: bool,
) {
    let (detached, destroyed): (Vec<_>, Vec<_>) = testaments
        .0
        .into_iter()
        .partition(|t| t.scope == Scope::Detached);
    let order = if lost {
        vec![detached, destroyed]
    } else {
        vec![destroyed]
    };
    for t in order.into_iter().flatten() {
        let Ok(filter) = Filter::from_options(&t.options) else {
            continue;
        };
        let exclude_me = t
            .options
            .get("exclude_me")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        realm.publish(Publication {
            topic: t.topic,
            id: Id::random(),
            payload: t.payload,
            details: Dict::new(),
            exclude_publisher: exclude_me.then(|| me.id()),
            filter,
            retain: t
                .options
                .get("retain")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        });
    }
}

/// The sessions of `realm` that `pick` picks.
fn sessions(realm: &Realm, pick: impl Fn(&SessionHandle) -> bool) -> Vec<SessionHandle> {
    realm
        .sessions
        .iter()
        .map(|e| e.value().clone())
        .filter(|s| pick(s))
        .collect()
}

fn authroles(a: &Args) -> Result<Option<Vec<String>>, Refusal> {
    match a.get(0, "filter_authroles") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::List(l)) => l
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(|| {
                Refusal::new(
                    uris::INVALID_ARGUMENT,
                    "filter_authroles must be a list of strings",
                )
            }),
        Some(_) => Err(Refusal::new(
            uris::INVALID_ARGUMENT,
            "filter_authroles must be a list of strings",
        )),
    }
}

fn no_such_session(id: Id) -> Refusal {
    Refusal::new(
        "wamp.error.no_such_session",
        format!("no session {id} on this realm"),
    )
}

/// The GOODBYE of a kill: `reason` (default `wamp.close.killed`, checked) and `message`.
fn kill_reason(a: &Args) -> Result<(&str, Option<&str>), Refusal> {
    let reason = a.opt_str("reason")?.unwrap_or(uris::CLOSE_KILLED);
    if !wamp_proto::uri::is_valid_uri(
        reason,
        wamp_proto::UriCheck::Loose,
        wamp_proto::MatchPolicy::Exact,
    ) {
        return Err(Refusal::new(
            uris::INVALID_URI,
            format!("`{reason}` is not a valid reason URI"),
        ));
    }
    Ok((reason, a.opt_str("message")?))
}

/// Kills `targets` with the GOODBYE of [`kill_reason`].
fn kill(targets: &[SessionHandle], (reason, message): (&str, Option<&str>)) {
    for t in targets {
        t.end(reason, message);
    }
}

/// `wamp.session.<name>` for this node's own sessions: `count`, `list`, `get`, `kill` and
/// `kill_by_*` (`except`: the caller, never killed by the latter). In a cluster each node
/// answers this part and the asking node merges them (`super::gather`).
pub(super) fn own(
    realm: &Realm,
    name: &str,
    a: &Args,
    except: Option<Id>,
) -> Result<Value, Refusal> {
    let find = |id: Id| {
        realm
            .sessions
            .get(&id)
            .map(|s| s.clone())
            .ok_or_else(|| no_such_session(id))
    };
    Ok(match name {
        "count" => {
            a.at_most(1)?;
            (with_roles(realm, a)?.len() as u64).into()
        }
        "list" => {
            a.at_most(1)?;
            Value::List(ids(&with_roles(realm, a)?))
        }
        "get" => describe::session(&find(a.id(0, "session")?)?),
        "kill" => {
            let id = a.id(0, "session")?;
            let how = kill_reason(a)?;
            kill(&[find(id)?], how);
            Value::Null
        }
        "kill_by_authid" => {
            let authid = a.str(0, "authid")?;
            let how = kill_reason(a)?;
            let found = sessions(realm, |s| {
                Some(s.id()) != except && *s.shared().authid == *authid
            });
            kill(&found, how);
            Value::List(ids(&found))
        }
        "kill_by_authrole" => {
            let authrole = a.str(0, "authrole")?;
            let how = kill_reason(a)?;
            let found = sessions(realm, |s| {
                Some(s.id()) != except && *s.shared().authrole == *authrole
            });
            kill(&found, how);
            (found.len() as u64).into()
        }
        _ => {
            return Err(Refusal::new(
                uris::NO_SUCH_PROCEDURE,
                format!("no meta procedure wamp.session.{name}"),
            ))
        }
    })
}

fn ids(found: &[SessionHandle]) -> Vec<Value> {
    found.iter().map(|s| s.id().get().into()).collect()
}

/// The sessions with one of the `filter_authroles` of `a` (all without it).
fn with_roles(realm: &Realm, a: &Args) -> Result<Vec<SessionHandle>, Refusal> {
    let roles = authroles(a)?;
    Ok(sessions(realm, |s| {
        roles
            .as_ref()
            .is_none_or(|r| r.iter().any(|x| *x == *s.shared().authrole))
    }))
}

pub(super) fn call(
    c: Caller<'_>,
    name: &str,
    a: &Args,
    stored: &mut Option<Wait<()>>,
) -> Result<Value, Refusal> {
    let realm = c.realm;
    Ok(match name {
        "add_testament" => {
            let topic = a.str(0, "topic")?;
            let uri = Uri::new(topic);
            if !uri.is_valid(realm.uri_check, wamp_proto::MatchPolicy::Exact) {
                return Err(Refusal::new(
                    uris::INVALID_URI,
                    format!("invalid topic URI `{topic}`"),
                ));
            }
            let args = match a.args.get(1) {
                None | Some(Value::Null) => None,
                Some(Value::List(l)) => Some(l.clone()),
                Some(_) => return Err(Refusal::new(uris::INVALID_ARGUMENT, "args must be a list")),
            };
            let kwargs = match a.args.get(2) {
                None | Some(Value::Null) => None,
                Some(Value::Dict(d)) => Some(d.clone()),
                Some(_) => {
                    return Err(Refusal::new(
                        uris::INVALID_ARGUMENT,
                        "kwargs must be a dict",
                    ))
                }
            };
            let options = match a.kwargs.get("publish_options") {
                None | Some(Value::Null) => Dict::new(),
                Some(Value::Dict(d)) => d.clone(),
                Some(_) => {
                    return Err(Refusal::new(
                        uris::INVALID_ARGUMENT,
                        "publish_options must be a dict",
                    ))
                }
            };
            Filter::from_options(&options).map_err(|k| {
                Refusal::new(
                    uris::INVALID_ARGUMENT,
                    format!("publish option `{k}` has the wrong type"),
                )
            })?;
            let scope = scope(a.opt_str("scope")?)?;
            c.testaments
                .get_or_insert_with(Box::default)
                .0
                .push(Testament {
                    topic: uri,
                    payload: Payload {
                        args,
                        kwargs,
                        ..Payload::default()
                    },
                    options,
                    scope,
                });
            *stored = share(&c);
            Value::Null
        }
        "flush_testaments" => {
            let scope = scope(a.opt_str("scope")?)?;
            let Some(kept) = c.testaments.as_mut() else {
                return Ok(Value::from(0u64));
            };
            let before = kept.0.len();
            kept.0.retain(|t| t.scope != scope);
            let flushed = (before - kept.0.len()) as u64;
            *stored = share(&c);
            flushed.into()
        }
        _ => own(realm, name, a, Some(c.handle.id()))?,
    })
}
