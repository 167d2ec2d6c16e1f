//! Calls across nodes, through proxy sessions, so the dealer's call lifecycle (invoke
//! policies, progressive results and invocations, cancel modes, timeouts, either side
//! leaving) runs unchanged on both nodes:
//! - on the caller's node, a remote callee is a **callee proxy** registered in the local
//!   dealer; the INVOCATIONs and INTERRUPTs the dealer sends it go to the callee's node, and
//!   the RESULTs and ERRORs that come back are its YIELDs and ERRORs;
//! - on the callee's node, each calling node is a **caller proxy**: it issues those
//!   INVOCATIONs to the callee (with the caller's node's details), CANCELs on an INTERRUPT,
//!   and the RESULTs and ERRORs it receives go back.
//!
//! Everything between two nodes goes through one NATS connection and one subscription at
//! each end, so a call's messages keep their order.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::task::AbortHandle;
use tracing::{debug, warn};
use wamp_proto::message::{code, Cancel, Error, Yield};
use wamp_proto::options::{bool_opt, dict, str_opt};
use wamp_proto::{uris, Dict, Id, MatchPolicy, Message, Serializer, Uri};

use super::envelope::{self, CalleeRecord, RpcHeader};
use super::pubsub::RealmLink;
use super::Core;
use crate::dealer::{self, InvokePolicy, RegisterOptions};
use crate::peer::{lock, Outbox, PeerFeatures, SessionHandle, SessionInfo, Wire};
use crate::realm::Realm;

/// The `transport` of proxy sessions (meta API).
const TRANSPORT: &str = crate::peer::PROXY_TRANSPORT;

/// A remote callee, on the caller's node.
#[derive(Debug)]
struct CalleeProxy {
    handle: SessionHandle,
    /// Its registrations here (ids).
    registrations: HashSet<u64>,
    task: AbortHandle,
}

/// Calls a caller proxy issued: its own request ids against (callee, the calling node's
/// invocation id).
#[derive(Debug, Default)]
struct CallMap {
    local: HashMap<u64, (u64, u64)>,
    remote: HashMap<(u64, u64), u64>,
    next: u64,
}

/// A remote node's calls to local callees, on the callee's node.
#[derive(Debug)]
struct CallerProxy {
    handle: SessionHandle,
    calls: Arc<Mutex<CallMap>>,
    task: AbortHandle,
}

/// A realm's proxies.
#[derive(Debug, Default)]
pub(crate) struct Proxies {
    callees: Mutex<HashMap<(String, u64), CalleeProxy>>,
    callers: Mutex<HashMap<String, CallerProxy>>,
}

fn new_handle(
    core: &Core,
    id: Id,
    who: (&str, &str),
    features: PeerFeatures,
    node: &str,
) -> (SessionHandle, Arc<Outbox>) {
    let outbox = Arc::new(Outbox::new(core.budget.clone()));
    let handle = SessionHandle::new(
        id,
        Serializer::MsgPack,
        (Arc::from(who.0), Arc::from(who.1)),
        outbox.clone(),
        features,
        (
            Wire::Unframed,
            usize::MAX,
            SessionInfo {
                authmethod: "cluster",
                authprovider: "cluster",
                transport: TRANSPORT,
                peer: Arc::from(format!("node:{node}")),
                ..SessionInfo::default()
            },
        ),
    );
    (handle, outbox)
}

/// Hands each frame queued in `outbox` (msgpack: proxies speak it) to `each`, until the
/// proxy is dropped.
async fn drain(outbox: Arc<Outbox>, mut each: impl FnMut(Bytes)) {
    let mut frames = VecDeque::new();
    loop {
        std::future::poll_fn(|cx| {
            outbox.take(&mut frames);
            if !frames.is_empty() || !outbox.park(cx.waker()) {
                return std::task::Poll::Ready(());
            }
            std::task::Poll::Pending
        })
        .await;
        if frames.is_empty() && outbox.is_killed() {
            return;
        }
        for f in frames.drain(..) {
            each(f.bytes);
        }
    }
}

fn parse_policy(s: &str) -> Option<MatchPolicy> {
    MatchPolicy::parse(s)
}

impl Proxies {
    /// Whether `s` is one of the cluster's proxies (never a record of its own).
    pub(crate) fn is_proxy(s: &SessionHandle) -> bool {
        s.is_cluster_proxy()
    }

    /// A remote callee's record: its proxy joins the registration in the local dealer.
    pub(crate) fn add_callee(&self, link: &RealmLink, realm: &Realm, rec: &CalleeRecord) {
        let (Some(policy), Some(invoke), Some(id)) = (
            parse_policy(&rec.policy),
            InvokePolicy::parse(&rec.invoke),
            Id::new(rec.session),
        ) else {
            warn!(uri = %rec.uri, "cluster: unreadable callee record");
            return;
        };
        let mut callees = lock(&self.callees);
        let key = (rec.node.clone(), rec.session);
        let proxy = callees.entry(key).or_insert_with(|| {
            let core = &link.core;
            let (handle, outbox) = new_handle(
                core,
                id,
                (&rec.authid, &rec.authrole),
                PeerFeatures::from_bits(rec.features),
                &rec.node,
            );
            let route = Route {
                realm: link.name.clone(),
                node: rec.node.clone(),
                calls: core.node_subject(&rec.node, "rpc"),
                no_responders: core.node_subject(
                    &core.node,
                    &format!("nr.{}.{}.{}.", link.token, rec.node, handle.id()),
                ),
            };
            let (core2, h) = (core.clone(), handle.clone());
            let task = tokio::spawn(drain(outbox, move |frame| {
                to_callee(&core2, &route, &h, frame);
            }));
            CalleeProxy {
                handle,
                registrations: HashSet::new(),
                task: task.abort_handle(),
            }
        });
        if proxy.registrations.contains(&rec.registration) {
            return;
        }
        let o = RegisterOptions {
            policy,
            invoke,
            disclose_caller: rec.disclose_caller,
            force: false,
        };
        match realm
            .dealer
            .register(&proxy.handle, &Uri::new(&rec.uri), o, |_| {})
        {
            Ok(r) => {
                if r.id.get() != rec.registration {
                    debug!(uri = %rec.uri, "cluster: registration id differs from the callee's node");
                }
                proxy.registrations.insert(r.id.get());
            }
            Err(e) => {
                warn!(uri = %rec.uri, node = %rec.node, why = ?e, "cluster: a remote callee conflicts with this node's registration; not routed here")
            }
        }
    }

    /// A remote callee's record is gone.
    pub(crate) fn remove_callee(&self, realm: &Realm, node: &str, session: u64, reg: u64) {
        let mut callees = lock(&self.callees);
        let key = (node.to_owned(), session);
        let Some(proxy) = callees.get_mut(&key) else {
            return;
        };
        if let Some(id) = Id::new(reg) {
            if proxy.registrations.remove(&reg) {
                let _ = realm.dealer.unregister(proxy.handle.id(), id);
            }
        }
        let idle = proxy.registrations.is_empty()
            && lock(&proxy.handle.shared().invocations).pending.is_empty();
        if idle {
            if let Some(p) = callees.remove(&key) {
                p.task.abort();
            }
        }
    }

    /// Every proxy leaves registration `reg` here (its callees left the cluster).
    pub(crate) fn drop_registration(&self, realm: &Realm, reg: Id) {
        for p in lock(&self.callees).values_mut() {
            if p.registrations.remove(&reg.get()) {
                let _ = realm.dealer.unregister(p.handle.id(), reg);
            }
        }
    }

    /// `node` is lost: its callees leave every registration here and their callers get
    /// ERROR `canceled`; the calls it made here are forgotten (callees are interrupted).
    pub(crate) fn node_lost(&self, realm: &Realm, node: &str) {
        let gone: Vec<CalleeProxy> = {
            let mut callees = lock(&self.callees);
            let keys: Vec<_> = callees.keys().filter(|(n, _)| n == node).cloned().collect();
            keys.into_iter()
                .filter_map(|k| callees.remove(&k))
                .collect()
        };
        for p in gone {
            for reg in &p.registrations {
                if let Some(id) = Id::new(*reg) {
                    let _ = realm.dealer.unregister(p.handle.id(), id);
                }
            }
            dealer::answer::fail_pending_invocations(&p.handle);
            p.task.abort();
        }
        if let Some(c) = lock(&self.callers).remove(node) {
            dealer::answer::forget_pending_calls(&c.handle);
            c.task.abort();
        }
    }

    /// The caller proxy of `node` (created on its first call).
    fn caller(&self, link: &RealmLink, node: &str) -> (SessionHandle, Arc<Mutex<CallMap>>) {
        let mut callers = lock(&self.callers);
        let c = callers.entry(node.to_owned()).or_insert_with(|| {
            let core = &link.core;
            let (handle, outbox) = new_handle(
                core,
                Id::random(),
                ("cluster", crate::config::TRUSTED_ROLE),
                PeerFeatures::from_bits(PeerFeatures::CALLER_PROGRESSIVE_CALL_INVOCATIONS),
                node,
            );
            let calls: Arc<Mutex<CallMap>> = Arc::default();
            let (core2, calls2, answers, realm) = (
                core.clone(),
                calls.clone(),
                core.node_subject(node, "r"),
                link.name.clone(),
            );
            let task = tokio::spawn(drain(outbox, move |frame| {
                match Serializer::MsgPack.decode(&frame) {
                    Ok(m) => to_caller(&core2, &realm, &answers, &calls2, m),
                    Err(e) => warn!(cause = %e, "cluster: a proxy's own message does not decode"),
                }
            }));
            CallerProxy {
                handle,
                calls,
                task: task.abort_handle(),
            }
        });
        (c.handle.clone(), c.calls.clone())
    }

    fn callee_proxy(&self, node: &str, session: u64) -> Option<SessionHandle> {
        lock(&self.callees)
            .get(&(node.to_owned(), session))
            .map(|p| p.handle.clone())
    }
}

/// The callee's node sends a caller proxy's RESULT or ERROR back, under the calling node's
/// invocation id.
fn to_caller(
    core: &Arc<Core>,
    realm: &str,
    answers_subject: &str,
    calls: &Mutex<CallMap>,
    mut m: Message,
) {
    let (request, last) = match &m {
        Message::Result(r) => (
            r.request,
            !bool_opt(&r.details, "progress", false).unwrap_or(false),
        ),
        Message::Error(e) => (e.request, true),
        _ => return,
    };
    let found = {
        let mut c = lock(calls);
        let found = c.local.get(&request.get()).copied();
        if let (true, Some(k)) = (last, found) {
            c.local.remove(&request.get());
            c.remote.remove(&k);
        }
        found
    };
    let Some((callee, invocation)) = found else {
        return;
    };
    let Some(invocation) = Id::new(invocation) else {
        return;
    };
    match &mut m {
        Message::Result(r) => r.request = invocation,
        Message::Error(e) => e.request = invocation,
        _ => return,
    }
    let header = RpcHeader::<&str> {
        realm,
        from: &core.node,
        incarnation: core.incarnation(),
        callee,
        sent_ms: envelope::now_ms(),
    };
    if let Some(bytes) = envelope::encode_message(&header, &m) {
        core.send(answers_subject.to_owned(), bytes);
    }
}

/// Receives the other nodes' call-path messages for this node, until the router stops.
pub(crate) async fn serve(core: Arc<Core>) {
    let nr = core.node_subject(&core.node, "nr.>");
    match core.client.subscribe(nr.clone()).await {
        Ok(sub) => {
            let c = core.clone();
            super::spawn(
                &core,
                super::each_message(sub, move |m| no_responders(&c, &m)),
            );
        }
        Err(e) => warn!(subject = nr, cause = %e, "cluster: cannot subscribe"),
    }
    for (what, towards_callee) in [("rpc", true), ("r", false)] {
        let subject = core.node_subject(&core.node, what);
        match core.client.subscribe(subject.clone()).await {
            Ok(sub) => {
                let c = core.clone();
                super::spawn(
                    &core,
                    super::each_message(sub, move |m| inbound(&c, &m.payload, towards_callee)),
                );
            }
            Err(e) => {
                warn!(subject, cause = %e, "cluster: cannot subscribe; calls across nodes will fail")
            }
        }
    }
}

fn inbound(core: &Arc<Core>, payload: &Bytes, towards_callee: bool) {
    let (h, m) = match envelope::decode_with::<RpcHeader>(payload) {
        Ok(x) => x,
        Err(e) => {
            warn!(cause = %e, "cluster: unreadable call message from another node");
            return;
        }
    };
    if core.nodes.is_lost(&h.from, h.incarnation) {
        return;
    }
    // Its caller's node gave up on it (the call failed there within the node timeout).
    if envelope::is_stale(h.sent_ms, core.node_timeout_ms()) {
        debug!(node = %h.from, "cluster: a call message older than the node timeout is dropped");
        return;
    }
    let Some(link) = core.link(&h.realm) else {
        return;
    };
    let Some(realm) = link.realm.upgrade() else {
        return;
    };
    if towards_callee {
        at_callee(&link, &realm, &h, m);
    } else {
        at_caller(&link, &h, m);
    }
}

/// On the callee's node: an INVOCATION (or a further chunk of one), or an INTERRUPT.
fn at_callee(link: &RealmLink, realm: &Realm, h: &RpcHeader, m: Message) {
    let (proxy, calls) = link.proxies.caller(link, &h.from);
    match m {
        Message::Invocation(inv) => {
            let key = (h.callee, inv.request.get());
            let known = lock(&calls).remote.get(&key).copied();
            let request = match known {
                Some(r) => r,
                None => {
                    let mut c = lock(&calls);
                    c.next += 1;
                    let r = c.next;
                    c.local.insert(r, key);
                    c.remote.insert(key, r);
                    r
                }
            };
            let Some(request) = Id::new(request) else {
                return;
            };
            let callee =
                Id::new(h.callee).and_then(|id| realm.sessions.get(&id).map(|s| s.clone()));
            let answer = match callee {
                Some(callee) => dealer::call::forwarded(
                    &proxy,
                    &realm.dealer,
                    &callee,
                    inv.registration,
                    request,
                    inv.details,
                    inv.payload,
                ),
                None => Err(crate::error::Refusal::new(
                    uris::CANCELED,
                    "the callee left before the call reached it",
                )),
            };
            if let Err(r) = answer {
                proxy.send(&r.to_error(code::CALL, request));
            }
        }
        Message::Interrupt(i) => {
            let Some(request) = lock(&calls)
                .remote
                .get(&(h.callee, i.request.get()))
                .copied()
                .and_then(Id::new)
            else {
                return;
            };
            let mode = str_opt(&i.options, "mode")
                .ok()
                .flatten()
                .unwrap_or("killnowait")
                .to_owned();
            let _ = dealer::answer::cancel(
                &proxy,
                Cancel {
                    request,
                    options: dict([("mode", mode.into())]),
                },
            );
        }
        other => {
            debug!(message = other.name(), node = %h.from, "cluster: unexpected message towards a callee")
        }
    }
}

/// On the caller's node: a RESULT or ERROR from a remote callee, as its proxy's answer.
fn at_caller(link: &RealmLink, h: &RpcHeader, m: Message) {
    let Some(proxy) = link.proxies.callee_proxy(&h.from, h.callee) else {
        return;
    };
    let handled = match m {
        Message::Result(r) => {
            let progress = bool_opt(&r.details, "progress", false).unwrap_or(false);
            dealer::answer::on_yield(
                &proxy,
                Yield {
                    request: r.request,
                    options: if progress {
                        dict([("progress", true.into())])
                    } else {
                        Dict::new()
                    },
                    payload: r.payload,
                },
            )
        }
        Message::Error(e) => dealer::answer::on_error(
            &proxy,
            Error {
                request_type: code::INVOCATION,
                request: e.request,
                details: e.details,
                error: e.error,
                payload: e.payload,
            },
        ),
        other => {
            debug!(message = other.name(), node = %h.from, "cluster: unexpected message towards a caller");
            Ok(())
        }
    };
    if let Err(r) = handled {
        debug!(node = %h.from, why = %r.message, "cluster: a remote answer was refused");
    }
}

/// The caller's node sends the dealer's INVOCATION or INTERRUPT to the callee's node, as
/// the dealer encoded it (only its code and request id are read).
fn to_callee(core: &Arc<Core>, to: &Route, proxy: &SessionHandle, frame: Bytes) {
    let Some((kind, request)) = wamp_proto::raw::msgpack::head(&frame) else {
        warn!("cluster: a callee proxy's own message does not decode");
        return;
    };
    let invocation = (kind == code::INVOCATION)
        .then(|| Id::new(request))
        .flatten();
    let header = RpcHeader::<&str> {
        realm: &to.realm,
        from: &core.node,
        incarnation: core.incarnation(),
        callee: proxy.id().get(),
        sent_ms: envelope::now_ms(),
    };
    // An INVOCATION asks nats-server to say at once if the callee's node does not listen
    // (gone, or not subscribed again yet after an outage): the call then fails now.
    let reply = invocation.map(|request| {
        let mut reply = String::with_capacity(to.no_responders.len() + 20);
        reply.push_str(&to.no_responders);
        let _ = write!(reply, "{}", request.get());
        reply
    });
    let body = envelope::encode_with(&header, &frame);
    if core.send_with_reply(to.calls.clone(), reply, body) {
        return;
    }
    // Not sent (NATS is down): the call fails now rather than at its timeout.
    if let Some(request) = invocation {
        unreachable_callee(proxy, request, &to.node);
    }
}

/// Where a callee proxy's messages go (the subjects formatted once, not per message).
#[derive(Debug)]
struct Route {
    realm: String,
    node: String,
    /// `<prefix>.n.<node>.rpc`.
    calls: String,
    /// `<prefix>.n.<me>.nr.<realm token>.<node>.<proxy>.`, followed by the invocation's
    /// request id: see [`no_responders`].
    no_responders: String,
}

/// Fails invocation `request` of callee proxy `proxy`: its node cannot be reached.
fn unreachable_callee(proxy: &SessionHandle, request: Id, node: &str) {
    let _ = dealer::answer::on_error(
        proxy,
        Error {
            request_type: code::INVOCATION,
            request,
            details: Dict::new(),
            error: Uri::new(uris::CANCELED),
            payload: wamp_proto::Payload::args(vec![format!(
                "the callee's cluster node `{node}` cannot be reached"
            )
            .into()]),
        },
    );
}

/// nats-server's "no responders" for an INVOCATION sent to `<node>.rpc`, on
/// `<prefix>.n.<me>.nr.<realm token>.<node>.<proxy>.<invocation>`: the call fails now.
fn no_responders(core: &Arc<Core>, m: &async_nats::Message) {
    if m.status != Some(async_nats::StatusCode::NO_RESPONDERS) {
        return;
    }
    let tail: Vec<&str> = m.subject.as_str().rsplitn(5, '.').collect();
    let [invocation, proxy, node, token, _] = tail[..] else {
        return;
    };
    let (Ok(invocation), Ok(proxy)) = (invocation.parse::<u64>(), proxy.parse::<u64>()) else {
        return;
    };
    let Some(link) = core.links().into_iter().find(|l| l.token == token) else {
        return;
    };
    let found = (link.proxies.callee_proxy(node, proxy), Id::new(invocation));
    if let (Some(handle), Some(request)) = found {
        debug!(
            node,
            "cluster: a call's callee node does not listen; the call fails"
        );
        unreachable_callee(&handle, request, node);
    }
}
