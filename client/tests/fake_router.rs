//! The client against a scripted fake router, for the session endings and protocol corners a
//! real router rarely produces on demand (ABORT after join, GOODBYE first, garbage, silence).
// Test helpers outside `#[test]` fns: a failed unwrap is a failed test. The handshake callback's
// error type is tungstenite's.
#![allow(clippy::unwrap_used, clippy::result_large_err)]

use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::header::SEC_WEBSOCKET_PROTOCOL;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;
use wamp_client::{
    CallError, Client, CloseKind, ConnectError, LeaveError, PublishError, Serializer, Value,
};
use wamp_proto::message::{Abort, Goodbye, Result as ResultMsg, Welcome};
use wamp_proto::options::dict;
use wamp_proto::{uris, Dict, Encoded, Id, Message, Payload, Uri};

use futures_util::{SinkExt, StreamExt};

const WAIT: Duration = Duration::from_secs(5);

struct Peer {
    ws: WebSocketStream<TcpStream>,
}

impl Peer {
    async fn recv(&mut self) -> Message {
        loop {
            let frame = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("peer timed out")
                .expect("socket closed")
                .expect("socket error");
            if let WsMessage::Text(t) = frame {
                return Serializer::Json
                    .decode(t.as_bytes())
                    .expect("client sent garbage");
            }
        }
    }

    async fn send(&mut self, m: impl Into<Message>) {
        let Encoded::Text(t) = Serializer::Json.encode(&m.into()).unwrap() else {
            unreachable!()
        };
        self.ws.send(WsMessage::text(t)).await.unwrap();
    }
}

async fn listen() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", l.local_addr().unwrap());
    (l, url)
}

/// Accepts one WebSocket, selecting `protocol` (or none).
async fn accept(l: &TcpListener, protocol: Option<&'static str>) -> Peer {
    let (tcp, _) = l.accept().await.unwrap();
    let cb = move |_req: &Request, mut resp: Response| {
        if let Some(p) = protocol {
            resp.headers_mut()
                .insert(SEC_WEBSOCKET_PROTOCOL, p.parse().unwrap());
        }
        Ok(resp)
    };
    Peer {
        ws: tokio_tungstenite::accept_hdr_async(tcp, cb).await.unwrap(),
    }
}

/// A client joined to a fake router speaking JSON.
async fn joined(builder: impl FnOnce(&str) -> wamp_client::ClientBuilder) -> (Client, Peer) {
    let (l, url) = listen().await;
    let router = async {
        let mut p = accept(&l, Some("wamp.2.json")).await;
        let Message::Hello(h) = p.recv().await else {
            panic!("expected HELLO")
        };
        assert_eq!(h.realm.as_str(), "realm1");
        p.send(Welcome {
            session: Id::new(77).unwrap(),
            details: dict([("authrole", "anonymous".into())]),
        })
        .await;
        p
    };
    let (peer, client) = tokio::join!(router, builder(&url).connect());
    let client = client.unwrap();
    assert_eq!(client.session_id().get(), 77);
    assert_eq!(client.serializer(), Serializer::Json);
    assert_eq!(
        client.welcome_details().get("authrole"),
        Some(&Value::from("anonymous"))
    );
    (client, peer)
}

fn default_builder(url: &str) -> wamp_client::ClientBuilder {
    Client::builder(url).realm("realm1")
}

#[tokio::test]
async fn request_ids_are_sequential_and_replies_reach_their_caller() {
    let (client, mut peer) = joined(default_builder).await;
    let c1 = client.clone();
    let first = tokio::spawn(async move { c1.call("com.first").await });
    let Message::Call(a) = peer.recv().await else {
        panic!("expected CALL")
    };
    let c2 = client.clone();
    let second = tokio::spawn(async move { c2.call("com.second").await });
    let Message::Call(b) = peer.recv().await else {
        panic!("expected CALL")
    };
    assert_eq!((a.request.get(), b.request.get()), (1, 2));
    // Answer out of order.
    for call in [&b, &a] {
        peer.send(ResultMsg {
            request: call.request,
            details: Dict::new(),
            payload: Payload::args(vec![Value::from(call.procedure.as_str())]),
        })
        .await;
    }
    let r1 = first.await.unwrap().unwrap();
    let r2 = second.await.unwrap().unwrap();
    assert_eq!(r1.args, vec![Value::from("com.first")]);
    assert_eq!(r2.args, vec![Value::from("com.second")]);
}

#[tokio::test]
async fn router_goodbye_is_answered_and_fails_pending_calls() {
    let (client, mut peer) = joined(default_builder).await;
    let c = client.clone();
    let pending = tokio::spawn(async move { c.call("com.slow").await });
    let Message::Call(_) = peer.recv().await else {
        panic!("expected CALL")
    };
    peer.send(Goodbye {
        details: dict([("message", "maintenance".into())]),
        reason: Uri::new(uris::CLOSE_SYSTEM_SHUTDOWN),
    })
    .await;
    let Message::Goodbye(reply) = peer.recv().await else {
        panic!("expected GOODBYE reply")
    };
    assert_eq!(reply.reason.as_str(), uris::CLOSE_GOODBYE_AND_OUT);
    let r = tokio::time::timeout(WAIT, pending).await.unwrap().unwrap();
    assert_eq!(r, Err(CallError::ConnectionClosed));
    let closed = tokio::time::timeout(WAIT, client.closed()).await.unwrap();
    assert_eq!(closed.kind, CloseKind::RouterGoodbye);
    assert_eq!(closed.reason, uris::CLOSE_SYSTEM_SHUTDOWN);
    assert_eq!(closed.message.as_deref(), Some("maintenance"));
}

#[tokio::test]
async fn abort_after_join_fails_pending_publish_ack() {
    let (client, mut peer) = joined(default_builder).await;
    let c = client.clone();
    let pending = tokio::spawn(async move { c.publish("com.t").arg(1).acknowledge().await });
    let Message::Publish(p) = peer.recv().await else {
        panic!("expected PUBLISH")
    };
    assert_eq!(p.options.get("acknowledge"), Some(&Value::Bool(true)));
    peer.send(Abort {
        details: Dict::new(),
        reason: Uri::new("wamp.error.kicked"),
        payload: Payload::default(),
    })
    .await;
    let r = tokio::time::timeout(WAIT, pending).await.unwrap().unwrap();
    assert_eq!(r, Err(PublishError::ConnectionClosed));
    let closed = client.closed().await;
    assert_eq!(
        (closed.kind, closed.reason.as_str()),
        (CloseKind::Aborted, "wamp.error.kicked")
    );
}

#[tokio::test]
async fn garbage_is_answered_with_protocol_violation() {
    let (client, mut peer) = joined(default_builder).await;
    peer.ws.send(WsMessage::text("[999]")).await.unwrap();
    let Message::Abort(a) = peer.recv().await else {
        panic!("expected ABORT")
    };
    assert_eq!(a.reason.as_str(), uris::PROTOCOL_VIOLATION);
    assert_eq!(client.closed().await.kind, CloseKind::ProtocolViolation);
}

#[tokio::test]
async fn leave_is_bounded_when_the_router_stays_silent() {
    let (client, mut peer) =
        joined(|url| default_builder(url).leave_timeout(Duration::from_millis(200))).await;
    let leave = tokio::spawn(async move { client.leave().await });
    let Message::Goodbye(g) = peer.recv().await else {
        panic!("expected GOODBYE")
    };
    assert_eq!(g.reason.as_str(), uris::CLOSE_NORMAL);
    let r = tokio::time::timeout(WAIT, leave).await.unwrap().unwrap();
    assert_eq!(r, Err(LeaveError::Timeout));
}

#[tokio::test]
async fn hello_abort_and_missing_subprotocol_fail_connect() {
    let (l, url) = listen().await;
    let router = async {
        let mut p = accept(&l, Some("wamp.2.json")).await;
        let _hello = p.recv().await;
        p.send(Abort {
            details: dict([("message", "no such realm".into())]),
            reason: Uri::new(uris::NO_SUCH_REALM),
            payload: Payload::default(),
        })
        .await;
        p
    };
    let (_p, r) = tokio::join!(router, Client::connect(&url, "realm1"));
    match r {
        Err(ConnectError::Aborted { reason, message }) => {
            assert_eq!(reason, uris::NO_SUCH_REALM);
            assert_eq!(message.as_deref(), Some("no such realm"));
        }
        other => panic!("{other:?}"),
    }

    let router = async { accept(&l, None).await };
    let (_p, r) = tokio::join!(router, Client::connect(&url, "realm1"));
    assert!(matches!(r, Err(ConnectError::NoSerializer { .. })), "{r:?}");
}

#[tokio::test]
async fn leave_waits_for_the_reply_and_is_idempotent() {
    let (client, mut peer) = joined(default_builder).await;
    let c = client.clone();
    let leave = tokio::spawn(async move { c.leave().await });
    let Message::Goodbye(_) = peer.recv().await else {
        panic!("expected GOODBYE")
    };
    peer.send(Goodbye {
        details: Dict::new(),
        reason: Uri::new(uris::CLOSE_GOODBYE_AND_OUT),
    })
    .await;
    // Keep reading, so the peer answers the client's WebSocket close.
    tokio::spawn(async move { while peer.ws.next().await.is_some() {} });
    let left = tokio::time::timeout(WAIT, leave)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(left.kind, CloseKind::Left);
    assert_eq!(left.reason, uris::CLOSE_GOODBYE_AND_OUT);
    assert_eq!(client.leave().await, Ok(left));
    assert_eq!(
        client.call("com.x").await.unwrap_err(),
        CallError::ConnectionClosed
    );
}
