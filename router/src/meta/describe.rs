//! The meta API's descriptions of sessions, registrations and subscriptions (Crossbar's
//! shapes, which existing tools read).

use wamp_proto::options::dict;
use wamp_proto::{MatchPolicy, Value};

use crate::broker::{rfc3339, Subscription};
use crate::dealer::Registration;
use crate::peer::SessionHandle;

/// `{session, authid, authrole, authmethod, authprovider, authextra, transport}`.
pub(crate) fn session(s: &SessionHandle) -> Value {
    let sh = s.shared();
    let info = &sh.info;
    Value::Dict(dict([
        ("session", s.id().get().into()),
        ("authid", (*sh.authid).into()),
        ("authrole", (*sh.authrole).into()),
        ("authmethod", info.authmethod.into()),
        ("authprovider", info.authprovider.into()),
        ("authextra", Value::Dict(info.authextra.clone())),
        (
            "transport",
            Value::Dict(dict([
                ("type", info.transport.into()),
                ("peer", (*info.peer).into()),
                ("serializer", s.serializer().name().into()),
            ])),
        ),
    ]))
}

fn match_name(p: MatchPolicy) -> &'static str {
    p.as_str()
}

/// `{id, created, uri, match, invoke}`.
pub(crate) fn registration(r: &Registration) -> Value {
    Value::Dict(dict([
        ("id", r.id.get().into()),
        ("created", rfc3339(r.created).into()),
        ("uri", r.uri.as_str().into()),
        ("match", match_name(r.policy).into()),
        ("invoke", r.invoke.as_str().into()),
    ]))
}

/// `{id, created, uri, match}`.
pub(crate) fn subscription(s: &Subscription) -> Value {
    Value::Dict(dict([
        ("id", s.id.get().into()),
        ("created", rfc3339(s.created).into()),
        ("uri", s.uri.as_str().into()),
        ("match", match_name(s.policy).into()),
    ]))
}
