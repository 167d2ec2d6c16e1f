//! The meta API over real sockets: session, registration and subscription procedures, their
//! events (and their order when a session leaves), kills, and testaments.

use wamp_proto::message::{Call, Goodbye, Register, Unregister};
use wamp_proto::options::dict;
use wamp_proto::{uris, Dict, Id, Message, Payload, Serializer, Uri, Value};
use wamp_tests::{RawPeer, TestRouter};

/// CALLs `procedure` and returns the RESULT's first argument, or the ERROR's URI as `Err`.
async fn call(
    p: &mut RawPeer,
    procedure: &str,
    args: Vec<Value>,
    kwargs: Dict,
) -> Result<Value, String> {
    let request = p.request();
    let payload = if kwargs.is_empty() {
        Payload::args(args)
    } else {
        Payload {
            args: Some(args),
            kwargs: Some(kwargs),
            ..Payload::default()
        }
    };
    p.send(
        &Call {
            request,
            options: Dict::new(),
            procedure: Uri::new(procedure),
            payload,
        }
        .into(),
    )
    .await;
    loop {
        match p.recv().await {
            Message::Result(mut r) if r.request == request => {
                r.payload.materialize().unwrap();
                return Ok(r
                    .payload
                    .args
                    .unwrap_or_default()
                    .into_iter()
                    .next()
                    .unwrap_or(Value::Null));
            }
            Message::Error(e) if e.request == request => return Err(e.error.as_str().to_owned()),
            Message::Event(_) => continue,
            other => panic!("expected the answer to {procedure}, got {other:?}"),
        }
    }
}

async fn meta(p: &mut RawPeer, procedure: &str, args: Vec<Value>) -> Value {
    call(p, procedure, args, Dict::new())
        .await
        .unwrap_or_else(|e| panic!("{procedure}: {e}"))
}

/// The next EVENT's (subscription, args).
async fn event(p: &mut RawPeer) -> (Id, Vec<Value>) {
    match p.recv().await {
        Message::Event(mut e) => {
            e.payload.materialize().unwrap();
            (e.subscription, e.payload.args.unwrap_or_default())
        }
        other => panic!("expected an EVENT, got {other:?}"),
    }
}

fn id(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("an id, got {v:?}"))
}

#[tokio::test]
async fn sessions_are_counted_listed_described_and_announced() {
    let router = TestRouter::start().await;
    let (mut watcher, w) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    let on_join = watcher.subscribe("wamp.session.on_join", Dict::new()).await;
    let on_leave = watcher
        .subscribe("wamp.session.on_leave", Dict::new())
        .await;
    let (other, o) = RawPeer::join(router.url(), "realm1", Serializer::MsgPack).await;
    let (sub, args) = event(&mut watcher).await;
    assert_eq!(sub, on_join);
    let details = args[0].as_dict().unwrap();
    assert_eq!(details.get("session").map(id), Some(o.session.get()));
    assert_eq!(details.get("authrole"), Some(&Value::from("anonymous")));
    assert_eq!(details.get("authmethod"), Some(&Value::from("anonymous")));

    assert_eq!(
        meta(&mut watcher, "wamp.session.count", vec![]).await,
        Value::from(2u64)
    );
    let Value::List(ids) = meta(&mut watcher, "wamp.session.list", vec![]).await else {
        panic!("a list");
    };
    let mut ids: Vec<u64> = ids.iter().map(id).collect();
    ids.sort_unstable();
    let mut want = vec![w.session.get(), o.session.get()];
    want.sort_unstable();
    assert_eq!(ids, want);
    let none = meta(
        &mut watcher,
        "wamp.session.count",
        vec![Value::List(vec!["nobody".into()])],
    )
    .await;
    assert_eq!(none, Value::from(0u64), "filtered by authrole");
    let got = meta(
        &mut watcher,
        "wamp.session.get",
        vec![o.session.get().into()],
    )
    .await;
    let got = got.as_dict().unwrap();
    let transport = got.get("transport").and_then(Value::as_dict).unwrap();
    assert_eq!(transport.get("type"), Some(&Value::from("websocket")));
    assert_eq!(transport.get("serializer"), Some(&Value::from("msgpack")));
    assert_eq!(
        call(
            &mut watcher,
            "wamp.session.get",
            vec![1u64.into()],
            Dict::new()
        )
        .await,
        Err("wamp.error.no_such_session".into())
    );
    assert_eq!(
        call(
            &mut watcher,
            "wamp.session.get",
            vec!["x".into()],
            Dict::new()
        )
        .await,
        Err(uris::INVALID_ARGUMENT.into())
    );

    drop(other);
    let (sub, args) = event(&mut watcher).await;
    assert_eq!(sub, on_leave);
    assert_eq!(args.first().map(id), Some(o.session.get()));
    assert_eq!(args.get(2), Some(&Value::from("anonymous")));
}

#[tokio::test]
async fn kill_says_goodbye_to_the_target_and_never_to_the_caller() {
    let router = TestRouter::start().await;
    let (mut admin, _) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    let (mut victim, v) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    let kw = dict([
        ("reason", "com.example.kicked".into()),
        ("message", "bye".into()),
    ]);
    call(
        &mut admin,
        "wamp.session.kill",
        vec![v.session.get().into()],
        kw,
    )
    .await
    .unwrap();
    match victim.recv().await {
        Message::Goodbye(g) => {
            assert_eq!(g.reason.as_str(), "com.example.kicked");
            assert_eq!(g.details.get("message"), Some(&Value::from("bye")));
        }
        other => panic!("expected GOODBYE, got {other:?}"),
    }
    victim
        .send(
            &Goodbye {
                details: Dict::new(),
                reason: Uri::new(uris::CLOSE_GOODBYE_AND_OUT),
            }
            .into(),
        )
        .await;
    let (rest, _) = victim.until_closed().await;
    assert!(rest.is_empty(), "{rest:?}");

    // kill_by_authrole: everyone with the role but the caller, who stays.
    let (mut a, _) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    let n = meta(
        &mut admin,
        "wamp.session.kill_by_authrole",
        vec!["anonymous".into()],
    )
    .await;
    assert_eq!(n, Value::from(1u64));
    match a.recv().await {
        Message::Goodbye(g) => assert_eq!(g.reason.as_str(), uris::CLOSE_KILLED),
        other => panic!("expected GOODBYE, got {other:?}"),
    }
    assert_eq!(
        meta(&mut admin, "wamp.session.count", vec![])
            .await
            .as_u64()
            .map(|c| c >= 1),
        Some(true)
    );
    assert_eq!(
        call(
            &mut admin,
            "wamp.session.kill",
            vec![12345u64.into()],
            Dict::new()
        )
        .await,
        Err("wamp.error.no_such_session".into())
    );
}

#[tokio::test]
async fn registrations_are_listed_looked_up_and_announced_in_order() {
    let router = TestRouter::start().await;
    let (mut watcher, _) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    let mut subs = Vec::new();
    for t in ["on_create", "on_register", "on_unregister", "on_delete"] {
        subs.push(
            watcher
                .subscribe(&format!("wamp.registration.{t}"), Dict::new())
                .await,
        );
    }
    let on_leave = watcher
        .subscribe("wamp.session.on_leave", Dict::new())
        .await;
    let (mut callee, c) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    let reg = callee.register("com.example.add", Dict::new()).await;
    let prefix = callee
        .register("com.example.", dict([("match", "prefix".into())]))
        .await;
    for expect in [subs[0], subs[1], subs[0], subs[1]] {
        let (s, args) = event(&mut watcher).await;
        assert_eq!(s, expect);
        assert_eq!(args.first().map(id), Some(c.session.get()));
    }
    let list = meta(&mut watcher, "wamp.registration.list", vec![]).await;
    let list = list.as_dict().unwrap();
    assert_eq!(
        list.get("exact"),
        Some(&Value::List(vec![reg.get().into()]))
    );
    assert_eq!(
        list.get("prefix"),
        Some(&Value::List(vec![prefix.get().into()]))
    );
    let found = meta(
        &mut watcher,
        "wamp.registration.lookup",
        vec!["com.example.add".into()],
    )
    .await;
    assert_eq!(found.as_u64(), Some(reg.get()));
    let opts = Value::Dict(dict([("match", "prefix".into())]));
    let found = meta(
        &mut watcher,
        "wamp.registration.lookup",
        vec!["com.example.".into(), opts],
    )
    .await;
    assert_eq!(found.as_u64(), Some(prefix.get()));
    let matched = meta(
        &mut watcher,
        "wamp.registration.match",
        vec!["com.example.mul".into()],
    )
    .await;
    assert_eq!(matched.as_u64(), Some(prefix.get()));
    let got = meta(
        &mut watcher,
        "wamp.registration.get",
        vec![reg.get().into()],
    )
    .await;
    let got = got.as_dict().unwrap();
    assert_eq!(got.get("uri"), Some(&Value::from("com.example.add")));
    assert_eq!(got.get("match"), Some(&Value::from("exact")));
    assert_eq!(got.get("invoke"), Some(&Value::from("single")));
    let callees = meta(
        &mut watcher,
        "wamp.registration.list_callees",
        vec![reg.get().into()],
    )
    .await;
    assert_eq!(callees, Value::List(vec![c.session.get().into()]));
    let n = meta(
        &mut watcher,
        "wamp.registration.count_callees",
        vec![reg.get().into()],
    )
    .await;
    assert_eq!(n, Value::from(1u64));
    assert_eq!(
        call(
            &mut watcher,
            "wamp.registration.get",
            vec![1u64.into()],
            Dict::new()
        )
        .await,
        Err(uris::NO_SUCH_REGISTRATION.into())
    );

    // UNREGISTER: on_unregister then on_delete.
    let r = callee.request();
    callee
        .send(
            &Unregister {
                request: r,
                registration: reg,
                options: None,
            }
            .into(),
        )
        .await;
    assert!(matches!(callee.recv().await, Message::Unregistered(_)));
    assert_eq!(event(&mut watcher).await.0, subs[2]);
    assert_eq!(event(&mut watcher).await.0, subs[3]);
    // A dropped callee: its registrations go (unregister, delete) before on_leave.
    drop(callee);
    let order: Vec<Id> = [
        event(&mut watcher).await,
        event(&mut watcher).await,
        event(&mut watcher).await,
    ]
    .into_iter()
    .map(|(s, _)| s)
    .collect();
    assert_eq!(order, vec![subs[2], subs[3], on_leave]);
    let _ = Register {
        request: Id::new(1).unwrap(),
        options: Dict::new(),
        procedure: Uri::new("x"),
    };
}

#[tokio::test]
async fn subscriptions_are_listed_matched_and_counted() {
    let router = TestRouter::start().await;
    let (mut watcher, _) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    let on_create = watcher
        .subscribe("wamp.subscription.on_create", Dict::new())
        .await;
    // The first on_create announces the watcher's own new subscription.
    let (s, args) = event(&mut watcher).await;
    assert_eq!(s, on_create);
    let first = args
        .get(1)
        .and_then(Value::as_dict)
        .and_then(|d| d.get("uri"))
        .cloned();
    assert_eq!(first, Some(Value::from("wamp.subscription.on_create")));
    let (mut s1, a) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    let (mut s2, b) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    let exact = s1.subscribe("com.example.tick", Dict::new()).await;
    let (s, args) = event(&mut watcher).await;
    assert_eq!(s, on_create);
    assert_eq!(
        args.get(1)
            .and_then(Value::as_dict)
            .and_then(|d| d.get("uri")),
        Some(&Value::from("com.example.tick"))
    );
    assert_eq!(s2.subscribe("com.example.tick", Dict::new()).await, exact);
    let wild = s2
        .subscribe("com..tick", dict([("match", "wildcard".into())]))
        .await;
    let _ = event(&mut watcher).await; // on_create of the wildcard one
    let matched = meta(
        &mut watcher,
        "wamp.subscription.match",
        vec!["com.example.tick".into()],
    )
    .await;
    let Value::List(m) = matched else {
        panic!("a list")
    };
    let mut m: Vec<u64> = m.iter().map(id).collect();
    m.sort_unstable();
    let mut want = vec![exact.get(), wild.get()];
    want.sort_unstable();
    assert_eq!(m, want);
    assert_eq!(
        meta(
            &mut watcher,
            "wamp.subscription.match",
            vec!["org.none".into()]
        )
        .await,
        Value::Null
    );
    let mut subscribers: Vec<u64> = match meta(
        &mut watcher,
        "wamp.subscription.list_subscribers",
        vec![exact.get().into()],
    )
    .await
    {
        Value::List(l) => l.iter().map(id).collect(),
        other => panic!("a list, got {other:?}"),
    };
    subscribers.sort_unstable();
    let mut want = vec![a.session.get(), b.session.get()];
    want.sort_unstable();
    assert_eq!(subscribers, want);
    let n = meta(
        &mut watcher,
        "wamp.subscription.count_subscribers",
        vec![exact.get().into()],
    )
    .await;
    assert_eq!(n, Value::from(2u64));
    let found = meta(
        &mut watcher,
        "wamp.subscription.lookup",
        vec!["com.example.tick".into()],
    )
    .await;
    assert_eq!(found.as_u64(), Some(exact.get()));
    let list = meta(&mut watcher, "wamp.subscription.list", vec![]).await;
    let wildcards = list.as_dict().and_then(|d| d.get("wildcard")).cloned();
    assert_eq!(wildcards, Some(Value::List(vec![wild.get().into()])));
    let _ = (&mut s1, &mut s2);
}

#[tokio::test]
async fn testaments_are_published_when_the_session_is_lost_or_destroyed() {
    let router = TestRouter::start().await;
    let (mut watcher, _) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    let lost = watcher.subscribe("com.example.lost", Dict::new()).await;
    let gone = watcher.subscribe("com.example.gone", Dict::new()).await;

    let (mut dying, _) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    let detached = dict([("scope", "detached".into())]);
    call(
        &mut dying,
        "wamp.session.add_testament",
        vec![
            "com.example.lost".into(),
            Value::List(vec!["bye".into()]),
            Value::Dict(Dict::new()),
        ],
        detached,
    )
    .await
    .unwrap();
    call(
        &mut dying,
        "wamp.session.add_testament",
        vec!["com.example.gone".into(), Value::List(vec![1u64.into()])],
        Dict::new(),
    )
    .await
    .unwrap();
    drop(dying); // lost: detached first, then destroyed
    let (s, args) = event(&mut watcher).await;
    assert_eq!((s, args), (lost, vec![Value::from("bye")]));
    assert_eq!(event(&mut watcher).await.0, gone);

    // GOODBYE: only the destroyed ones; flushed ones never.
    let (mut leaving, _) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    for topic in ["com.example.lost", "com.example.gone"] {
        let scope = if topic.ends_with("lost") {
            "detached"
        } else {
            "destroyed"
        };
        call(
            &mut leaving,
            "wamp.session.add_testament",
            vec![topic.into(), Value::List(vec![])],
            dict([("scope", scope.into())]),
        )
        .await
        .unwrap();
    }
    let flushed = call(
        &mut leaving,
        "wamp.session.flush_testaments",
        vec![],
        dict([("scope", "destroyed".into())]),
    )
    .await;
    assert_eq!(flushed, Ok(Value::from(1u64)));
    call(
        &mut leaving,
        "wamp.session.add_testament",
        vec!["com.example.gone".into(), Value::List(vec!["last".into()])],
        Dict::new(),
    )
    .await
    .unwrap();
    leaving
        .send(
            &Goodbye {
                details: Dict::new(),
                reason: Uri::new(uris::CLOSE_NORMAL),
            }
            .into(),
        )
        .await;
    let (s, args) = event(&mut watcher).await;
    assert_eq!((s, args), (gone, vec![Value::from("last")]));
    assert_eq!(
        call(
            &mut watcher,
            "wamp.session.add_testament",
            vec![1u64.into()],
            Dict::new()
        )
        .await,
        Err(uris::INVALID_ARGUMENT.into())
    );
}

#[tokio::test]
async fn a_realm_can_turn_the_meta_api_off() {
    let router = TestRouter::with_config(
        "[[transport]]\nbind = \"127.0.0.1:0\"\n[[realm]]\nname = \"realm1\"\nmeta_api = false\n",
    )
    .await;
    let (mut p, w) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    assert_eq!(
        call(&mut p, "wamp.session.count", vec![], Dict::new()).await,
        Err(uris::NO_SUCH_PROCEDURE.into())
    );
    let roles = w.details.get("roles").and_then(Value::as_dict).unwrap();
    let broker = roles
        .get("broker")
        .and_then(Value::as_dict)
        .and_then(|b| b.get("features"))
        .and_then(Value::as_dict)
        .unwrap();
    assert!(!broker.contains_key("session_meta_api"));
}
