//! The WebSocket transport: subprotocol negotiation, Origin checks, path, message size.

use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};
use wamp_proto::message::Publish;
use wamp_proto::{Dict, Message, Payload, Serializer, Uri, Value};
use wamp_tests::{Closed, RawPeer, TestRouter};

fn http_status(e: WsError) -> u16 {
    match e {
        WsError::Http(resp) => resp.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn first_supported_offered_subprotocol_wins() {
    let router = TestRouter::start().await;
    let p = RawPeer::connect_with(
        router.url(),
        &["wamp.2.ubjson", "wamp.2.msgpack", "wamp.2.json"],
        None,
    )
    .await
    .unwrap();
    assert_eq!(p.serializer, Serializer::MsgPack);
    let p = RawPeer::connect_with(router.url(), &["wamp.2.json", "wamp.2.msgpack"], None)
        .await
        .unwrap();
    assert_eq!(p.serializer, Serializer::Json);
}

#[tokio::test]
async fn transport_limited_to_json_selects_json() {
    let router = TestRouter::with_config(
        "[[transport]]\nbind = \"127.0.0.1:0\"\nserializers = [\"json\"]\n[[realm]]\nname = \"realm1\"\n",
    )
    .await;
    let p = RawPeer::connect_with(router.url(), &["wamp.2.msgpack", "wamp.2.json"], None)
        .await
        .unwrap();
    assert_eq!(p.serializer, Serializer::Json);
    let e = RawPeer::connect_with(router.url(), &["wamp.2.msgpack"], None)
        .await
        .unwrap_err();
    assert_eq!(http_status(e), 400);
}

#[tokio::test]
async fn no_wamp_subprotocol_is_refused() {
    let router = TestRouter::start().await;
    let e = RawPeer::connect_with(router.url(), &[], None)
        .await
        .unwrap_err();
    assert_eq!(http_status(e), 400);
    let e = RawPeer::connect_with(router.url(), &["mqtt", "wamp.2.ubjson"], None)
        .await
        .unwrap_err();
    assert_eq!(http_status(e), 400);
}

#[tokio::test]
async fn wrong_path_is_not_found() {
    let router = TestRouter::start().await;
    let url = router.url().replace("/ws", "/other");
    let e = RawPeer::connect_with(&url, &["wamp.2.json"], None)
        .await
        .unwrap_err();
    assert_eq!(http_status(e), 404);
}

#[tokio::test]
async fn origins_are_checked_before_upgrade() {
    let router = TestRouter::with_config(
        "[[transport]]\nbind = \"127.0.0.1:0\"\nallowed_origins = [\"https://app.example.com\", \"http://*.local\"]\n[[realm]]\nname = \"realm1\"\n",
    )
    .await;
    let e = RawPeer::connect_with(
        router.url(),
        &["wamp.2.json"],
        Some("https://evil.example.org"),
    )
    .await
    .unwrap_err();
    assert_eq!(http_status(e), 403);
    for ok in ["https://app.example.com", "http://dev.local"] {
        RawPeer::connect_with(router.url(), &["wamp.2.json"], Some(ok))
            .await
            .unwrap();
    }
    // Non-browser clients send no Origin and are allowed.
    RawPeer::connect_with(router.url(), &["wamp.2.json"], None)
        .await
        .unwrap();
}

#[tokio::test]
async fn default_allows_any_origin() {
    let router = TestRouter::start().await;
    RawPeer::connect_with(
        router.url(),
        &["wamp.2.json"],
        Some("https://anything.example"),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn oversized_message_closes_only_that_connection() {
    let router = TestRouter::with_config(
        "[[transport]]\nbind = \"127.0.0.1:0\"\nmax_message_size = 1024\n[[realm]]\nname = \"realm1\"\n",
    )
    .await;
    let (mut big, _) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    let (mut other, _) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    let r = big.request();
    big.send(&Message::from(Publish {
        request: r,
        options: Dict::new(),
        topic: Uri::new("com.big"),
        payload: Payload::args(vec![Value::Str("x".repeat(4096))]),
    }))
    .await;
    let (msgs, closed) = big.until_closed().await;
    assert!(msgs.is_empty(), "{msgs:?}");
    assert!(
        matches!(closed, Closed::CloseFrame(Some(1009)) | Closed::Dropped),
        "{closed:?}"
    );
    // The other session is untouched.
    other
        .send_frame(WsMessage::Text(r#"[32, 1, {}, "com.t"]"#.into()))
        .await;
    assert!(matches!(other.recv().await, Message::Subscribed(_)));
    let metrics = router.server().metrics();
    let line = r#"wamp_limits_hit_total{limit="max_message_size"} 1"#;
    assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
}
