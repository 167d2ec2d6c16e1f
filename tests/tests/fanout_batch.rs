//! Fan-out batched per publisher read, over real sockets: many publications arriving in
//! one read reach every subscriber complete and in order, whatever its serializer and
//! transport (WebSocket, RawSocket, a RawSocket peer that accepts only short frames), across
//! topics and subscription kinds, and before whatever the publisher sends next.

use wamp_proto::message::{Call, Event, Invocation, Publish, Published};
use wamp_proto::options::dict;
use wamp_proto::{Dict, Id, Message, Payload, Serializer, Uri, Value};
use wamp_tests::rawsocket::{code, frame, handshake, RsPeer, MESSAGE};
use wamp_tests::{RawPeer, TestRouter};

const REALM: &str = "realm1";

/// A router with a RawSocket transport (`urls()[0]`) and a WebSocket one (`[1]`).
async fn router() -> TestRouter {
    TestRouter::with_config(&format!(
        "[[transport]]\ntype = \"rawsocket\"\nbind = \"127.0.0.1:0\"\n\
         serializers = [\"json\", \"msgpack\", \"cbor\"]\n\
         [[transport]]\ntype = \"websocket\"\nbind = \"127.0.0.1:0\"\n\
         [[realm]]\nname = \"{REALM}\"\n"
    ))
    .await
}

fn urls(r: &TestRouter) -> (String, String) {
    match r.server().urls() {
        [rs, ws] => (rs.clone(), ws.clone()),
        other => panic!("two URLs expected: {other:?}"),
    }
}

fn publish(request: u64, topic: &str, n: i64, options: Dict) -> Message {
    Publish {
        request: Id::new(request).expect("id"),
        options,
        topic: Uri::new(topic),
        payload: Payload::args(vec![Value::Int(n)]),
    }
    .into()
}

/// `msgs` as RawSocket frames in one buffer: the router reads them in one go.
fn frames(ser: Serializer, msgs: &[Message]) -> Vec<u8> {
    msgs.iter()
        .flat_map(|m| frame(MESSAGE, ser.encode(m).expect("encodes").as_bytes()))
        .collect()
}

/// The subscription id and the first argument of an EVENT.
fn event(m: Message) -> (Id, i64, Event) {
    match m {
        Message::Event(e) => {
            let n = match e.payload.args.as_deref() {
                Some([Value::UInt(n), ..]) => *n as i64,
                Some([Value::Int(n), ..]) => *n,
                other => panic!("an integer argument expected: {other:?}"),
            };
            (e.subscription, n, e)
        }
        other => panic!("expected EVENT, got {other:?}"),
    }
}

/// 600 publications in one read, to two exact topics and one a prefix subscription
/// catches, reach WebSocket (JSON, MessagePack) and RawSocket subscribers complete and in
/// publish order, each under its own subscription id, with the topic for the prefix match.
#[tokio::test]
async fn one_read_of_publications_reaches_every_serializer_and_transport_in_order() {
    let r = router().await;
    let (rs, ws) = urls(&r);
    let (mut ws_json, _) = RawPeer::join(&ws, REALM, Serializer::Json).await;
    let (mut ws_pack, _) = RawPeer::join(&ws, REALM, Serializer::MsgPack).await;
    let (mut rs_pack, _) = RsPeer::join(&rs, REALM, Serializer::MsgPack).await;
    let (mut rs_cbor, _) = RsPeer::join(&rs, REALM, Serializer::Cbor).await;
    let a_json = ws_json.subscribe("batch.a", Dict::new()).await;
    let b_pack = ws_pack.subscribe("batch.b", Dict::new()).await;
    let a_pack = ws_pack.subscribe("batch.a", Dict::new()).await;
    assert_eq!(a_json, a_pack, "one subscription per URI");
    let prefix = rs_pack
        .subscribe_with("batch.", dict([("match", "prefix".into())]))
        .await;
    let a_cbor = rs_cbor.subscribe_with("batch.a", Dict::new()).await;
    assert_eq!(a_cbor, a_json);
    // Runs of one topic (batched), then switches (each switch flushes first).
    let topic = |n: i64| {
        if (n / 7) % 3 == 2 {
            "batch.b"
        } else {
            "batch.a"
        }
    };
    let (mut publisher, _) = RsPeer::join(&rs, REALM, Serializer::MsgPack).await;
    let msgs: Vec<_> = (0..600)
        .map(|n| publish(n as u64 + 1, topic(n), n, Dict::new()))
        .collect();
    publisher.write(&frames(Serializer::MsgPack, &msgs)).await;

    let on_a: Vec<i64> = (0..600).filter(|n| topic(*n) == "batch.a").collect();
    for want in &on_a {
        let (sub, n, _) = event(ws_json.recv().await);
        assert_eq!((sub, n), (a_json, *want), "JSON WebSocket subscriber");
        let (sub, n, _) = event(rs_cbor.recv().await);
        assert_eq!((sub, n), (a_cbor, *want), "CBOR RawSocket subscriber");
    }
    // Both subscriptions of one session: one stream, in publish order.
    for want in 0..600 {
        let (sub, n, _) = event(ws_pack.recv().await);
        let expected = if topic(want) == "batch.a" {
            a_pack
        } else {
            b_pack
        };
        assert_eq!(
            (sub, n),
            (expected, want),
            "MessagePack subscriber of both topics"
        );
    }
    for want in 0..600 {
        let (sub, n, e) = event(rs_pack.recv().await);
        assert_eq!((sub, n), (prefix, want), "prefix subscriber");
        assert_eq!(
            e.details.get("topic"),
            Some(&Value::Str(topic(want).into())),
            "a pattern match names the topic"
        );
    }
    r.shutdown().await;
}

/// A RawSocket subscriber that accepts at most 4 KiB messages (the least the router allows) gets the short events of
/// a batch in order and not the long ones, while a WebSocket subscriber gets them all.
#[tokio::test]
async fn a_peer_with_a_short_frame_limit_gets_what_fits_in_order() {
    let r = router().await;
    let (rs, ws) = urls(&r);
    let mut small = RsPeer::connect(&rs).await;
    small.handshake(handshake(3, code(Serializer::Json))).await;
    small.serializer = Serializer::Json;
    small.hello(REALM).await;
    let small_sub = small.subscribe_with("batch.sizes", Dict::new()).await;
    let (mut all, _) = RawPeer::join(&ws, REALM, Serializer::Json).await;
    let all_sub = all.subscribe("batch.sizes", Dict::new()).await;
    let long = |n: i64| n % 5 == 3;
    let msgs: Vec<Message> = (0..50)
        .map(|n| {
            let mut args = vec![Value::Int(n)];
            if long(n) {
                args.push(Value::Str("x".repeat(5000)));
            }
            Publish {
                request: Id::new(n as u64 + 1).expect("id"),
                options: Dict::new(),
                topic: Uri::new("batch.sizes"),
                payload: Payload::args(args),
            }
            .into()
        })
        .collect();
    let (mut publisher, _) = RsPeer::join(&rs, REALM, Serializer::Json).await;
    publisher.write(&frames(Serializer::Json, &msgs)).await;
    for want in 0..50 {
        let (sub, n, _) = event(all.recv().await);
        assert_eq!((sub, n), (all_sub, want));
    }
    for want in (0..50).filter(|n| !long(*n)) {
        let (sub, n, _) = event(small.recv().await);
        assert_eq!((sub, n), (small_sub, want), "short events, in order");
    }
    r.shutdown().await;
}

/// A publisher that hears its own events (`exclude_me: false`) and asks for some
/// acknowledgements gets each PUBLISHED after the events of what it published before, and
/// before the event it acknowledges (as without batching).
#[tokio::test]
async fn acknowledgements_keep_their_place_among_the_publishers_own_events() {
    let r = router().await;
    let (rs, _) = urls(&r);
    let (mut p, _) = RsPeer::join(&rs, REALM, Serializer::MsgPack).await;
    let sub = p.subscribe_with("batch.echo", Dict::new()).await;
    let acked = |n: i64| n % 4 == 0;
    let msgs: Vec<_> = (0..40)
        .map(|n| {
            let mut o = dict([("exclude_me", false.into())]);
            if acked(n) {
                o.insert("acknowledge".into(), true.into());
            }
            publish(n as u64 + 100, "batch.echo", n, o)
        })
        .collect();
    p.write(&frames(Serializer::MsgPack, &msgs)).await;
    for n in 0..40 {
        if acked(n) {
            match p.recv().await {
                Message::Published(Published { request, .. }) => {
                    assert_eq!(request.get(), n as u64 + 100, "PUBLISHED in its place")
                }
                other => panic!("expected PUBLISHED for {n}, got {other:?}"),
            }
        }
        let (s, got, _) = event(p.recv().await);
        assert_eq!((s, got), (sub, n));
    }
    r.shutdown().await;
}

/// Events published in the same read as a CALL reach the callee, who also subscribes, before
/// the INVOCATION; a publication with an eligible list (fanned out on its own) keeps its
/// place among batched ones.
#[tokio::test]
async fn what_follows_a_batch_in_the_same_read_comes_after_it() {
    let r = router().await;
    let (rs, ws) = urls(&r);
    let (mut callee, welcome) = RawPeer::join(&ws, REALM, Serializer::Json).await;
    let sub = callee.subscribe("batch.then", Dict::new()).await;
    callee.register("batch.proc", Dict::new()).await;
    let me = welcome.session.get();
    let (mut caller, _) = RsPeer::join(&rs, REALM, Serializer::MsgPack).await;
    let mut msgs: Vec<Message> = (0..20)
        .map(|n| {
            let o = if n == 10 {
                dict([("eligible", Value::List(vec![Value::Int(me as i64)]))])
            } else {
                Dict::new()
            };
            publish(n as u64 + 1, "batch.then", n, o)
        })
        .collect();
    msgs.push(
        Call {
            request: Id::new(99).expect("id"),
            options: Dict::new(),
            procedure: Uri::new("batch.proc"),
            payload: Payload::default(),
        }
        .into(),
    );
    caller.write(&frames(Serializer::MsgPack, &msgs)).await;
    for want in 0..20 {
        let (s, n, _) = event(callee.recv().await);
        assert_eq!((s, n), (sub, want), "events first, in order");
    }
    assert!(
        matches!(callee.recv().await, Message::Invocation(Invocation { .. })),
        "then the INVOCATION"
    );
    r.shutdown().await;
}
