//! Advanced PubSub through the `wamp-client` API against the real router, over real sockets:
//! the features HELLO announces, publisher exclusion and identification, black/white
//! listing, prefix and wildcard subscriptions and retention (event history and ordering:
//! `client_pubsub_history.rs`).
//!
//! Publications are acknowledged where a later check depends on them: the router routes a
//! publication before it handles the publisher's next message, so once a later
//! acknowledged publication of the same publisher has reached a subscriber, every earlier
//! one that was meant for it has too. [`assert_next_is_marker`] uses that to prove that
//! nothing else was delivered. Every wait is bounded by [`WAIT`].

use std::future::IntoFuture;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use wamp_client::{
    uris, Client, Dict, Event, Id, MatchPolicy, PublishError, ReconnectPolicy, Serializer,
    Subscription, Value,
};
use wamp_proto::message::Welcome;
use wamp_proto::options::dict;
use wamp_proto::{Encoded, Message};
use wamp_tests::{TestRouter, WAIT};

const REALM: &str = "realm1";

/// Awaits `f`, failing the test if it takes longer than [`WAIT`].
pub(crate) async fn within<F: IntoFuture>(what: &str, f: F) -> F::Output {
    timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within {WAIT:?}"))
}

pub(crate) async fn connect(url: &str, serializer: Serializer) -> Client {
    within(
        "connect",
        // These tests see sessions end: no reconnecting (tests/tests/client_reconnect.rs).
        Client::builder(url)
            .realm(REALM)
            .serializer(serializer)
            .reconnect(ReconnectPolicy::never())
            .connect(),
    )
    .await
    .expect("client joins")
}

/// The authid the router gave the client (in WELCOME).
fn authid(c: &Client) -> String {
    c.welcome_details()["authid"]
        .as_str()
        .expect("WELCOME has an authid")
        .to_owned()
}

/// The next event of `s`.
pub(crate) async fn next(s: &mut Subscription) -> Event {
    within(&format!("event on {}", s.topic()), s.next())
        .await
        .unwrap_or_else(|| panic!("the stream of {} ended", s.topic()))
}

/// The next event's only positional argument, as text.
async fn next_text(s: &mut Subscription) -> String {
    let e = next(s).await;
    match e.args.as_slice() {
        [Value::Str(t)] => t.clone(),
        other => panic!("expected one text argument, got {other:?}"),
    }
}

/// Publishes `text` (acknowledged) to `topic`.
pub(crate) async fn publish(publisher: &Client, topic: &str, text: &str) -> Id {
    within("publish", publisher.publish(topic).arg(text).acknowledge())
        .await
        .expect("publication acknowledged")
}

/// Publishes a marker and checks it is the next event on each of `subs`: nothing that was
/// not expected arrived before it.
async fn assert_next_is_marker(publisher: &Client, topic: &str, subs: &mut [&mut Subscription]) {
    publish(publisher, topic, "marker").await;
    for s in subs.iter_mut() {
        assert_eq!(next_text(s).await, "marker", "on {}", s.topic());
    }
}

// --- HELLO ------------------------------------------------------------------------------

/// A one-shot fake router: accepts one WebSocket (`wamp.2.json`), returns the client's HELLO
/// details, and answers WELCOME so the client joins.
async fn capture_hello() -> Dict {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("ws://{}/ws", listener.local_addr().expect("addr"));
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        // The callback type is tungstenite's (its error is an HTTP response).
        #[allow(clippy::result_large_err)]
        let choose = |_req: &Request, mut resp: Response| {
            resp.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                HeaderValue::from_static("wamp.2.json"),
            );
            Ok(resp)
        };
        let mut ws = tokio_tungstenite::accept_hdr_async(tcp, choose)
            .await
            .expect("websocket handshake");
        let hello = loop {
            match ws.next().await {
                Some(Ok(WsMessage::Text(t))) => break t.to_string(),
                Some(Ok(_)) => continue,
                other => panic!("no HELLO: {other:?}"),
            }
        };
        let Message::Hello(hello) = Serializer::Json.decode(hello.as_bytes()).expect("HELLO")
        else {
            panic!("expected HELLO, got {hello}");
        };
        let welcome = Message::from(Welcome {
            session: Id::new(1).expect("valid id"),
            details: dict([(
                "roles",
                Value::Dict(dict([("broker", Value::Dict(Dict::new()))])),
            )]),
        });
        let Ok(Encoded::Text(w)) = Serializer::Json.encode(&welcome) else {
            panic!("WELCOME encodes as text");
        };
        ws.send(WsMessage::Text(w.into())).await.expect("send");
        (hello.details, ws)
    });
    let client = connect(&url, Serializer::Json).await;
    let (details, ws) = within("fake router", server).await.expect("fake router");
    // The fake router never answers GOODBYE: drop the socket instead of leaving.
    drop(ws);
    within("closed", client.closed()).await;
    details
}

#[tokio::test]
async fn hello_announces_the_pubsub_features() {
    let details = capture_hello().await;
    let features = |role: &str| -> Dict {
        details["roles"].as_dict().expect("roles")[role]
            .as_dict()
            .expect("role")["features"]
            .as_dict()
            .expect("features")
            .clone()
    };
    let publisher = features("publisher");
    for f in [
        "publisher_exclusion",
        "publisher_identification",
        "subscriber_blackwhite_listing",
    ] {
        assert_eq!(publisher.get(f), Some(&Value::Bool(true)), "publisher {f}");
    }
    let subscriber = features("subscriber");
    for f in [
        "publisher_identification",
        "pattern_based_subscription",
        "event_retention",
        "event_history",
    ] {
        assert_eq!(
            subscriber.get(f),
            Some(&Value::Bool(true)),
            "subscriber {f}"
        );
    }
}

// --- publisher exclusion and identification --------------------------------------------

#[tokio::test]
async fn publisher_exclusion_is_the_default_and_can_be_lifted() {
    let router = TestRouter::start().await;
    let c = connect(router.url(), Serializer::MsgPack).await;
    let other = connect(router.url(), Serializer::Json).await;
    let mut mine = within("subscribe", c.subscribe("com.excl")).await.unwrap();
    let mut theirs = within("subscribe", other.subscribe("com.excl"))
        .await
        .unwrap();
    publish(&c, "com.excl", "excluded").await;
    within(
        "publish",
        c.publish("com.excl")
            .arg("included")
            .exclude_me(false)
            .acknowledge(),
    )
    .await
    .unwrap();
    assert_eq!(next_text(&mut mine).await, "included");
    assert_eq!(next_text(&mut theirs).await, "excluded");
    assert_eq!(next_text(&mut theirs).await, "included");
}

#[tokio::test]
async fn disclose_me_identifies_the_publisher() {
    let router = TestRouter::start().await;
    let sub = connect(router.url(), Serializer::MsgPack).await;
    let publisher = connect(router.url(), Serializer::Json).await;
    let mut events = within("subscribe", sub.subscribe("com.who")).await.unwrap();

    publish(&publisher, "com.who", "anonymous").await;
    let e = next(&mut events).await;
    assert_eq!(
        (e.publisher(), e.publisher_authid(), e.publisher_authrole()),
        (None, None, None),
        "not disclosed unless asked: {e:?}"
    );
    assert!(!e.retained());
    assert_eq!(e.topic(), "com.who", "an exact subscription's topic");

    let id = within(
        "publish",
        publisher
            .publish("com.who")
            .arg("disclosed")
            .disclose_me()
            .acknowledge(),
    )
    .await
    .unwrap();
    let e = next(&mut events).await;
    assert_eq!(e.publication, id);
    assert_eq!(e.publisher(), Some(publisher.session_id()));
    assert_eq!(e.publisher_authid(), Some(authid(&publisher).as_str()));
    assert_eq!(e.publisher_authrole(), Some("anonymous"));
}

// --- black and white listing -------------------------------------------------------------

#[tokio::test]
async fn black_and_white_lists_by_session_authid_and_authrole() {
    let router = TestRouter::start().await;
    let topic = "com.bw";
    let publisher = connect(router.url(), Serializer::Json).await;
    let a = connect(router.url(), Serializer::Json).await;
    let b = connect(router.url(), Serializer::MsgPack).await;
    let c = connect(router.url(), Serializer::Json).await;
    let mut sa = within("subscribe", a.subscribe(topic)).await.unwrap();
    let mut sb = within("subscribe", b.subscribe(topic)).await.unwrap();
    let mut sc = within("subscribe", c.subscribe(topic)).await.unwrap();
    let (ia, ib, ic) = (a.session_id(), b.session_id(), c.session_id());

    let sends = [
        // Not a: b and c.
        publisher.publish(topic).arg("x").exclude([ia]),
        // Eligible a and b, but b excluded: a.
        publisher
            .publish(topic)
            .arg("y")
            .eligible([ia, ib])
            .exclude([ib]),
        // Eligible by authid: c.
        publisher
            .publish(topic)
            .arg("z")
            .eligible_authid([authid(&c)]),
        // Excluded by authid: c.
        publisher
            .publish(topic)
            .arg("w")
            .exclude_authid([authid(&a), authid(&b)]),
        // Eligible by authrole, another role excluded: everyone.
        publisher
            .publish(topic)
            .arg("v")
            .eligible_authrole(["anonymous"])
            .exclude_authrole(["guest"]),
        // The only role excluded: nobody.
        publisher
            .publish(topic)
            .arg("nobody-1")
            .exclude_authrole(["anonymous"]),
        // Only a role nobody has: nobody.
        publisher
            .publish(topic)
            .arg("nobody-2")
            .eligible_authrole(["admin"]),
        // An empty white list: nobody.
        publisher.publish(topic).arg("nobody-3").eligible([]),
        // Every list present: each must hold; only c passes all of them.
        publisher
            .publish(topic)
            .arg("u")
            .eligible([ia, ic])
            .exclude([ia])
            .eligible_authid([authid(&c), authid(&b)])
            .exclude_authid([authid(&b)])
            .eligible_authrole(["anonymous"])
            .exclude_authrole(["admin"]),
    ];
    for p in sends {
        within("publish", p.acknowledge())
            .await
            .expect("acknowledged");
    }
    let mut got = Vec::new();
    for (s, n) in [(&mut sa, 2), (&mut sb, 2), (&mut sc, 5)] {
        let mut texts = Vec::new();
        for _ in 0..n {
            texts.push(next_text(s).await);
        }
        got.push(texts);
    }
    assert_eq!(got[0], ["y", "v"], "a");
    assert_eq!(got[1], ["x", "v"], "b");
    assert_eq!(got[2], ["x", "z", "w", "v", "u"], "c");
    assert_next_is_marker(&publisher, topic, &mut [&mut sa, &mut sb, &mut sc]).await;

    // A malformed list (only possible through the raw option) is refused when acknowledged.
    let err = within(
        "publish",
        publisher
            .publish(topic)
            .option("eligible", "all")
            .acknowledge(),
    )
    .await
    .expect_err("refused");
    match err {
        PublishError::Rejected(r) => assert_eq!(r.uri, uris::INVALID_ARGUMENT),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

// --- pattern-based subscriptions ---------------------------------------------------------

#[tokio::test]
async fn prefix_and_wildcard_subscriptions_carry_the_concrete_topic() {
    let router = TestRouter::start().await;
    let s = connect(router.url(), Serializer::Json).await;
    let publisher = connect(router.url(), Serializer::MsgPack).await;
    let mut exact = within("subscribe", s.subscribe("com.app.user.update"))
        .await
        .unwrap();
    let mut prefix = within("subscribe", s.subscribe("com.app.").prefix())
        .await
        .unwrap();
    let mut wild = within("subscribe", s.subscribe("com.app..update").wildcard())
        .await
        .unwrap();
    // `match_policy` is the same as the conveniences: the same router subscription.
    let same = within(
        "subscribe",
        s.subscribe("com.app..update")
            .match_policy(MatchPolicy::Wildcard),
    )
    .await
    .unwrap();
    assert_eq!(same.id(), wild.id());
    drop(same);
    let ids = [exact.id(), prefix.id(), wild.id()];
    assert!(
        ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2],
        "{ids:?}"
    );
    assert_eq!(
        (prefix.topic(), wild.topic()),
        ("com.app.", "com.app..update")
    );

    // One publication, three matching subscriptions: each gets it once, same publication.
    let id = publish(&publisher, "com.app.user.update", "1").await;
    for s in [&mut exact, &mut prefix, &mut wild] {
        let e = next(s).await;
        assert_eq!(
            (e.publication, e.args.clone()),
            (id, vec![Value::from("1")])
        );
        assert_eq!(e.topic(), "com.app.user.update", "on {}", s.topic());
    }
    // Wildcards match one component each; a prefix is a string prefix.
    publish(&publisher, "com.app.user.x.update", "2").await;
    publish(&publisher, "com.app.z.update", "3").await;
    publish(&publisher, "com.other", "4").await;
    let e = next(&mut prefix).await;
    assert_eq!(
        (e.topic(), e.args[0].as_str()),
        ("com.app.user.x.update", Some("2"))
    );
    let e = next(&mut prefix).await;
    assert_eq!(
        (e.topic(), e.args[0].as_str()),
        ("com.app.z.update", Some("3"))
    );
    let e = next(&mut wild).await;
    assert_eq!(
        (e.topic(), e.args[0].as_str()),
        ("com.app.z.update", Some("3"))
    );
    assert!(e.details.contains_key("topic"));
    assert_next_is_marker(
        &publisher,
        "com.app.user.update",
        &mut [&mut exact, &mut prefix, &mut wild],
    )
    .await;

    // A handler gets the same topic information as the stream.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let handle = prefix.spawn_handler(move |e: Event| {
        let _ = tx.send(e.topic().to_owned());
        async {}
    });
    publish(&publisher, "com.app.handled", "5").await;
    assert_eq!(
        within("handler", rx.recv()).await.as_deref(),
        Some("com.app.handled")
    );
    within("unsubscribe", handle.unsubscribe())
        .await
        .expect("unsubscribed");

    // An invalid pattern is refused.
    let err = within("subscribe", s.subscribe("com..x").prefix())
        .await
        .expect_err("refused");
    assert!(format!("{err}").contains(uris::INVALID_URI), "{err}");
}

// --- retention ------------------------------------------------------------------------

#[tokio::test]
async fn retained_event_reaches_late_subscribers_that_ask() {
    let router = TestRouter::start().await;
    let publisher = connect(router.url(), Serializer::Json).await;
    let send_retained = |text: &'static str| {
        within(
            "publish",
            publisher
                .publish("com.state.temp")
                .arg(text)
                .retain()
                .acknowledge(),
        )
    };
    send_retained("old").await.unwrap();
    let latest = send_retained("new").await.unwrap();
    publish(&publisher, "com.state.temp", "not retained").await;

    let late = connect(router.url(), Serializer::MsgPack).await;
    let mut asks = within("subscribe", late.subscribe("com.state.temp").get_retained())
        .await
        .unwrap();
    let e = next(&mut asks).await;
    assert!(e.retained(), "{e:?}");
    assert_eq!(
        (e.publication, e.args.clone()),
        (latest, vec!["new".into()])
    );
    assert_eq!(e.topic(), "com.state.temp");

    // Without get_retained nothing is replayed; live events are not marked retained.
    let plain = connect(router.url(), Serializer::Json).await;
    let mut no_ask = within("subscribe", plain.subscribe("com.state.temp"))
        .await
        .unwrap();
    publish(&publisher, "com.state.temp", "live").await;
    for s in [&mut asks, &mut no_ask] {
        let e = next(s).await;
        assert_eq!((e.args[0].as_str(), e.retained()), (Some("live"), false));
    }

    // A pattern subscription gets the retained event of each matching topic.
    within(
        "publish",
        publisher
            .publish("com.state.hum")
            .arg("40%")
            .retain()
            .acknowledge(),
    )
    .await
    .unwrap();
    let pat = connect(router.url(), Serializer::Json).await;
    let mut all = within(
        "subscribe",
        pat.subscribe("com.state.").prefix().get_retained(),
    )
    .await
    .unwrap();
    let mut seen = Vec::new();
    for _ in 0..2 {
        let e = next(&mut all).await;
        assert!(e.retained());
        seen.push((e.topic().to_owned(), e.args[0].as_str().unwrap().to_owned()));
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            ("com.state.hum".to_owned(), "40%".to_owned()),
            ("com.state.temp".to_owned(), "new".to_owned())
        ]
    );
    assert_next_is_marker(&publisher, "com.state.temp", &mut [&mut all]).await;
}
