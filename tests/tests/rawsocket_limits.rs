//! Limits at the edge of the RawSocket transport: messages longer than a RawSocket peer
//! announced it accepts (the router never sends them: an EVENT is dropped for that
//! subscriber alone, a RESULT or INVOCATION becomes an ERROR to the caller), and the
//! connection limit of a WebSocket transport (the RawSocket one is in `rawsocket.rs`).

use tokio::time::timeout;
use wamp_client::{CallError, CallResult, Dict, Invocation, Serializer, Value};
use wamp_proto::message::{code, Call, Yield};
use wamp_proto::{uris, Message, Payload, Uri};
use wamp_tests::client::{leave, rust_client};
use wamp_tests::rawsocket::{code as code_of, handshake, RsPeer, MAGIC, MESSAGE};
use wamp_tests::{hello, RawPeer, TestRouter, WAIT};

const REALM: &str = "realm1";

/// A router with a RawSocket transport (`urls()[0]`) and a WebSocket one (`[1]`).
async fn router() -> (TestRouter, String, String) {
    let router = TestRouter::with_config(&format!(
        "[[transport]]\ntype = \"rawsocket\"\nbind = \"127.0.0.1:0\"\nmin_client_max_message_size = 512\n\
         [[transport]]\ntype = \"websocket\"\nbind = \"127.0.0.1:0\"\n\
         [[realm]]\nname = \"{REALM}\"\n"
    ))
    .await;
    let (rs, ws) = match router.server().urls() {
        [rs, ws] => (rs.clone(), ws.clone()),
        other => panic!("two URLs expected: {other:?}"),
    };
    (router, rs, ws)
}

// --- messages longer than a RawSocket peer accepts ---------------------------------------------

/// A RawSocket peer that accepts at most 1024 octets (L = 1), joined.
async fn small_peer(url: &str) -> RsPeer {
    let mut p = RsPeer::open_with(url, Serializer::Json, 1).await;
    p.hello(REALM).await;
    p
}

/// A client may announce the spec's minimum, 512 octets (L = 0): by default it is refused
/// in the handshake (error 2); where the transport accepts it, it gets a WELCOME that fits or
/// an ABORT saying WELCOME does not, never left waiting.
#[tokio::test]
async fn a_client_accepting_only_512_octets_is_welcomed_or_refused() {
    let default = TestRouter::with_config(&format!(
        "[[transport]]\ntype = \"rawsocket\"\nbind = \"127.0.0.1:0\"\n[[realm]]\nname = \"{REALM}\"\n"
    ))
    .await;
    let mut p = RsPeer::connect(default.url()).await;
    let refused = p.handshake(handshake(0, code_of(Serializer::Json))).await;
    assert_eq!(refused, [MAGIC, 0x20, 0, 0]);
    p.expect_eof().await;
    let (_router, rs, _) = router().await;
    for ser in [Serializer::Json, Serializer::MsgPack] {
        let mut p = RsPeer::connect(&rs).await;
        let reply = p.handshake(handshake(0, code_of(ser))).await;
        if reply == [MAGIC, 0x20, 0, 0] {
            p.expect_eof().await;
            continue;
        }
        assert_eq!(reply[1] & 0x0F, code_of(ser), "{reply:02x?}");
        p.serializer = ser;
        p.send(&hello(REALM)).await;
        match p.try_recv_frame().await {
            Ok((MESSAGE, b)) => {
                assert!(
                    b.len() <= 512,
                    "{} octets sent to a 512-octet peer",
                    b.len()
                );
                match ser.decode(&b).expect("decodes") {
                    Message::Welcome(_) => {}
                    Message::Abort(a) => {
                        assert_eq!(a.reason.as_str(), uris::PAYLOAD_SIZE_EXCEEDED, "{a:?}");
                        p.expect_eof().await;
                    }
                    other => panic!("{ser:?}: expected WELCOME or ABORT, got {other:?}"),
                }
            }
            other => panic!("{ser:?}: expected WELCOME, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_event_longer_than_the_subscriber_accepts_is_dropped_for_it_alone() {
    let (router, rs, ws) = router().await;
    let mut small = small_peer(&rs).await;
    let (mut big, _) = RsPeer::join(&rs, REALM, Serializer::Json).await;
    small.subscribe("com.sized").await;
    big.subscribe("com.sized").await;
    let publisher = rust_client(&ws, Serializer::MsgPack).await;
    for text in ["x".repeat(2000), "small".to_owned()] {
        timeout(
            WAIT,
            publisher
                .publish("com.sized")
                .arg(Value::from(text))
                .acknowledge(),
        )
        .await
        .expect("in time")
        .expect("acknowledged");
    }
    let arg = |m: Message| match m {
        Message::Event(e) => e.payload.args.expect("args")[0].as_str().map(str::len),
        other => panic!("expected EVENT, got {other:?}"),
    };
    assert_eq!(arg(big.recv().await), Some(2000));
    assert_eq!(arg(big.recv().await), Some(5));
    // The small peer gets only the event that fits, and stays joined.
    assert_eq!(arg(small.recv().await), Some(5));
    assert_eq!(router.server().session_count(), 3);
    leave(publisher).await;
}

/// TRN-12: a RESULT too long for the caller is answered with an ERROR, not dropped (which
/// would leave the caller waiting forever).
#[tokio::test]
async fn a_result_longer_than_the_caller_accepts_is_answered_with_an_error() {
    let (_router, rs, ws) = router().await;
    let callee = rust_client(&ws, Serializer::Json).await;
    let _big = callee
        .register("com.big", |_inv: Invocation| async move {
            Ok::<_, CallError>(CallResult::new().with_args([Value::from("x".repeat(2000))]))
        })
        .await
        .expect("register");
    let mut small = small_peer(&rs).await;
    let request = small.request();
    let call = Call {
        request,
        options: Dict::new(),
        procedure: Uri::new("com.big"),
        payload: Payload::default(),
    };
    small.send(&call.into()).await;
    match small.recv().await {
        Message::Error(e) => {
            assert_eq!((e.request_type, e.request), (code::CALL, request), "{e:?}");
            assert_eq!(e.error.as_str(), uris::PAYLOAD_SIZE_EXCEEDED, "{e:?}");
        }
        other => panic!("expected ERROR for the CALL, got {other:?}"),
    }
    leave(callee).await;
}

/// A CALL too long for a RawSocket callee is answered with an ERROR to the caller at once;
/// the callee is not invoked and stays joined.
#[tokio::test]
async fn an_invocation_longer_than_the_callee_accepts_is_answered_with_an_error() {
    let (_router, rs, ws) = router().await;
    let mut small = small_peer(&rs).await;
    small.register("com.small").await;
    let caller = rust_client(&ws, Serializer::MsgPack).await;
    let err = timeout(
        WAIT,
        caller.call("com.small").arg(Value::from("x".repeat(2000))),
    )
    .await
    .expect("answered in time")
    .expect_err("too long for the callee");
    // An ERROR at once (not a hang); which URI is the router's choice.
    assert!(err.uri().is_some(), "{err:?}");
    // A call that fits still reaches it.
    let call = caller.call("com.small").arg(Value::from("fits"));
    let serve = async {
        let Message::Invocation(inv) = small.recv().await else {
            panic!("expected INVOCATION")
        };
        assert_eq!(inv.payload.args, Some(vec![Value::from("fits")]));
        let (request, options, payload) = (inv.request, Dict::new(), Payload::default());
        small
            .send(
                &Yield {
                    request,
                    options,
                    payload,
                }
                .into(),
            )
            .await;
    };
    let (r, ()) = tokio::join!(timeout(WAIT, call), serve);
    assert_eq!(r.expect("in time").expect("succeeds"), CallResult::new());
    leave(caller).await;
}

#[tokio::test]
async fn websocket_connections_over_the_limit_get_http_503() {
    let router = TestRouter::with_config(
        "[[transport]]\nbind = \"127.0.0.1:0\"\nmax_connections = 1\n[[realm]]\nname = \"realm1\"\n",
    )
    .await;
    let (mut held, _) = RawPeer::join(router.url(), REALM, Serializer::Json).await;
    match RawPeer::connect_with(router.url(), &["wamp.2.json"], None).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 503);
        }
        other => panic!("expected HTTP 503, got {other:?}"),
    }
    held.subscribe("com.held", Dict::new()).await;
    let metrics = router.server().metrics();
    let line = r#"wamp_limits_hit_total{limit="max_connections"} 1"#;
    assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
}
