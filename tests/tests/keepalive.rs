//! Keep-alive and dead peers: the router pings silent peers and closes those that answer
//! nothing; half-done handshakes on every transport are closed on time while normal clients
//! still connect.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use wamp_proto::Serializer;
use wamp_tests::rawsocket::{eventually, RsPeer, MESSAGE};
use wamp_tests::{hello, RawPeer, TestRouter, WAIT};

/// PING and PONG frame types of RawSocket.
const PING: u8 = 1;
const PONG: u8 = 2;

fn config(extra_ws: &str, extra_rs: &str) -> String {
    format!(
        "[router]\nhandshake_timeout_ms = 300\n\
         [[transport]]\nbind = \"127.0.0.1:0\"\n{extra_ws}\n\
         [[transport]]\ntype = \"rawsocket\"\nbind = \"127.0.0.1:0\"\n{extra_rs}\n\
         [[realm]]\nname = \"realm1\"\n"
    )
}

#[tokio::test]
async fn websocket_peers_that_answer_pings_stay_and_silent_ones_are_closed() {
    let router = TestRouter::with_config(&config(
        "keepalive_interval_ms = 100\nkeepalive_timeout_ms = 150",
        "",
    ))
    .await;
    let mut req = router.url().into_client_request().unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "wamp.2.json".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let hello = Serializer::Json.encode(&hello("realm1")).unwrap();
    ws.send(WsMessage::Text(
        hello.as_bytes().to_vec().try_into().unwrap(),
    ))
    .await
    .unwrap();
    // Reading answers each ping (tungstenite queues the pong and writes it as it reads on).
    let mut pings = 0;
    while pings < 3 {
        match timeout(WAIT, ws.next()).await.expect("a frame in time") {
            Some(Ok(WsMessage::Ping(_))) => pings += 1,
            Some(Ok(WsMessage::Text(_))) => {} // WELCOME
            other => panic!("expected pings on a quiet session, got {other:?}"),
        }
    }
    assert_eq!(router.server().session_count(), 1, "answered pings keep it");
    // Stop reading: no more pongs, and the router lets the connection go.
    eventually("the silent session is closed", || {
        router.server().session_count() == 0
    })
    .await;
    drop(ws);
}

#[tokio::test]
async fn rawsocket_pings_are_opt_in_and_unanswered_ones_close() {
    let router = TestRouter::with_config(&config(
        "",
        "keepalive_interval_ms = 100\nkeepalive_timeout_ms = 150",
    ))
    .await;
    let rs = &router.server().urls()[1];
    let mut p = RsPeer::open(rs, Serializer::Json).await;
    p.hello("realm1").await;
    for _ in 0..3 {
        let (kind, payload) = p.recv_frame().await;
        assert_eq!(kind, PING, "a PING on a quiet session");
        p.send_frame(PONG, &payload).await;
    }
    let started = Instant::now();
    loop {
        match p.try_recv_frame().await {
            Ok((PING, _)) => continue, // not answered any more
            Ok((kind, _)) => assert_ne!(kind, MESSAGE, "nothing else is sent"),
            Err(_) => break,
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "closed soon after the timeout"
    );

    // The default RawSocket transport sends no unsolicited PING (autobahn's Twisted client
    // cannot answer one): a quiet session gets nothing.
    let router = TestRouter::with_config(&config("", "")).await;
    let mut p = RsPeer::open(&router.server().urls()[1], Serializer::Json).await;
    p.hello("realm1").await;
    assert!(
        timeout(Duration::from_millis(300), p.try_recv_frame())
            .await
            .is_err(),
        "no frame on a quiet default RawSocket session"
    );
}

#[tokio::test]
async fn half_done_handshakes_are_closed_on_time_while_others_connect() {
    let router = TestRouter::with_config(&config("", "")).await;
    let ws_addr = router
        .url()
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let rs_addr = router.server().urls()[1]
        .trim_start_matches("rs://")
        .to_owned();
    let started = Instant::now();
    let mut stuck = Vec::new();
    for i in 0..40 {
        let addr = if i % 2 == 0 { &ws_addr } else { &rs_addr };
        let mut s = TcpStream::connect(addr).await.unwrap();
        // Half a request head, half a RawSocket handshake, or nothing at all.
        let partial: &[u8] = match i % 4 {
            0 => b"GET /ws HTTP/1.1\r\nHost: x\r\n",
            1 => &[0x7f, 0xf1],
            _ => b"",
        };
        s.write_all(partial).await.unwrap();
        stuck.push(s);
    }
    // A normal client is not held up by them.
    let (_ok, _) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    let (_rs, _) = RsPeer::join(&router.server().urls()[1], "realm1", Serializer::Json).await;
    for mut s in stuck {
        let mut buf = [0u8; 64];
        let end = timeout(WAIT, tokio::io::AsyncReadExt::read(&mut s, &mut buf))
            .await
            .expect("closed by the router");
        assert!(
            matches!(end, Ok(0) | Err(_)),
            "closed, nothing sent: {end:?}"
        );
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "closed at the 300 ms deadline, took {took:?}"
    );
}
