//! `wamp-client` surviving a router restart: a router on a fixed port is shut down under a
//! running client and started again on the same port; the client reconnects, re-joins
//! (re-authenticating) and restores its registrations and subscriptions, so the very same
//! handler and event stream keep working. Backoff bounds and opting out too; the corner
//! cases are in `client_reconnect_edges.rs`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::mpsc;
use wamp_client::{
    uris, CallError, Client, CloseKind, ConnectionState, CryptosignKey, Id, Invocation,
    PublishError, ReconnectPolicy, RegisterError, SubscribeError, Value,
};
use wamp_tests::reconnect::{config, free_port, join, leave, other, quick, reconnected, REALM};
use wamp_tests::{within, TestRouter};

/// The router's registration ID for `procedure` (meta API).
async fn lookup(client: &Client, procedure: &str) -> Option<u64> {
    let r = within(
        "lookup",
        client.call("wamp.registration.lookup").arg(procedure),
    )
    .await
    .expect("lookup");
    r.args.first().and_then(Value::as_u64)
}

#[tokio::test]
async fn registrations_and_subscriptions_survive_a_router_restart() {
    let port = free_port();
    let config = config(port, "");
    let router = TestRouter::with_config(&config).await;
    let url = router.url().to_owned();
    let service = join(Client::builder(&url).realm(REALM).reconnect(quick())).await;
    assert_eq!(
        service.state(),
        ConnectionState::Connected {
            session: service.session_id()
        }
    );

    // One handler object counts every invocation, before and after the restart.
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let echo = within(
        "register",
        service.register("com.svc.echo", move |inv: Invocation| {
            let n = counted.fetch_add(1, Ordering::SeqCst) + 1;
            async move { Ok::<_, CallError>(vec![inv.args[0].clone(), Value::from(n as u64)]) }
        }),
    )
    .await
    .expect("register echo");
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let _hang = within(
        "register",
        service.register("com.svc.hang", move |inv: Invocation| {
            let _ = started_tx.send(());
            async move {
                inv.cancelled().await;
                Err::<Value, _>(CallError::canceled())
            }
        }),
    )
    .await
    .expect("register hang");
    let mut ticks = within("subscribe", service.subscribe("com.svc.tick"))
        .await
        .expect("subscribe");
    let gone = within(
        "register",
        service.register("com.svc.gone", |_: Invocation| async {
            Ok::<_, CallError>(())
        }),
    )
    .await
    .expect("register gone");
    let dropped = within("subscribe", service.subscribe("com.svc.dropped"))
        .await
        .expect("subscribe");

    let before = other(&url).await;
    let r = within("call", before.call("com.svc.echo").arg("a"))
        .await
        .expect("call");
    assert_eq!(r.args, vec![Value::from("a"), Value::from(1u64)]);
    leave(before).await;

    // A call in flight (to the service's own procedure) when the router goes away.
    let c = service.clone();
    let in_flight = tokio::spawn(async move { c.call("com.svc.hang").await });
    within("invocation", started.recv())
        .await
        .expect("hang invoked");
    let first_session = service.session_id();
    within("shutdown", router.shutdown()).await;

    let r = within("in-flight call", in_flight)
        .await
        .expect("call task");
    assert_eq!(r, Err(CallError::ConnectionLost), "a distinct, clear error");
    let mut w = service.state_watcher();
    let down = within(
        "disconnected",
        w.wait_for(|s| !matches!(s, ConnectionState::Connected { .. })),
    )
    .await;
    assert!(
        matches!(
            down,
            ConnectionState::Disconnected { .. } | ConnectionState::Reconnecting { .. }
        ),
        "{down:?}"
    );
    assert!(!service.is_closed(), "a reconnecting client is not closed");
    // Nothing listens: requests fail at once, nothing is queued for later.
    let e = within("call", service.call("com.svc.echo").arg("x")).await;
    assert_eq!(e, Err(CallError::NotConnected));
    let e = within("publish", service.publish("com.svc.tick").arg(0)).await;
    assert_eq!(e, Err(PublishError::NotConnected));
    let e = within("publish", service.publish("com.svc.tick").acknowledge()).await;
    assert_eq!(e, Err(PublishError::NotConnected));
    let e = within(
        "register",
        service.register("com.svc.new", |_: Invocation| async {
            Ok::<_, CallError>(())
        }),
    )
    .await;
    assert_eq!(e.err(), Some(RegisterError::NotConnected));
    let e = within("subscribe", service.subscribe("com.svc.new")).await;
    assert_eq!(e.err(), Some(SubscribeError::NotConnected));
    // Unregistering and unsubscribing succeed: those are not restored.
    within("unregister", gone.unregister())
        .await
        .expect("unregister offline");
    within("unsubscribe", dropped.unsubscribe())
        .await
        .expect("unsubscribe offline");

    let router = TestRouter::with_config(&config).await;
    assert_eq!(router.url(), url, "the same port again");
    let session = reconnected(&service, first_session).await;
    assert_ne!(session, first_session);

    let after = other(&url).await;
    let r = within("call", after.call("com.svc.echo").arg("b"))
        .await
        .expect("call");
    assert_eq!(
        r.args,
        vec![Value::from("b"), Value::from(2u64)],
        "the same handler serves the restored registration"
    );
    assert_eq!(
        lookup(&after, "com.svc.echo").await,
        Some(echo.id().get()),
        "the handle shows the new registration ID"
    );
    let publication = within(
        "publish",
        after.publish("com.svc.tick").arg(7).acknowledge(),
    )
    .await
    .expect("publish");
    let event = within("event", ticks.next())
        .await
        .expect("the same stream goes on");
    assert_eq!(event.publication, publication);
    assert_eq!(event.args, vec![Value::from(7)]);
    assert_eq!(event.subscription, ticks.id());

    let e = within("call", after.call("com.svc.gone"))
        .await
        .expect_err("not restored");
    assert_eq!(e.uri(), Some(uris::NO_SUCH_PROCEDURE));
    let r = within(
        "lookup",
        after
            .call("wamp.subscription.lookup")
            .arg("com.svc.dropped"),
    )
    .await
    .expect("lookup");
    assert_eq!(r.args.first(), Some(&Value::Null), "not restored: {r:?}");

    // The handles act on the new session.
    within("unregister", echo.unregister())
        .await
        .expect("unregister");
    let e = within("call", after.call("com.svc.echo"))
        .await
        .expect_err("gone");
    assert_eq!(e.uri(), Some(uris::NO_SUCH_PROCEDURE));
    leave(after).await;
    leave(service).await;
    router.shutdown().await;
}

#[tokio::test]
async fn every_authentication_method_is_redone_on_reconnect() {
    let port = free_port();
    let key = CryptosignKey::generate();
    let users = format!(
        r#"
[[realm.user]]
authid = "joe"
role = "app"
ticket = "secret1"

[[realm.user]]
authid = "peter"
role = "app"
wampcra = {{ secret = "secret2", salt = "salt123", iterations = 100, keylen = 32 }}

[[realm.user]]
authid = "dev"
role = "app"
cryptosign_keys = ["{}"]
"#,
        key.public_key_hex()
    );
    // RawSocket too: the dialer keeps the transport of the URL.
    let rs_port = free_port();
    let config = format!(
        "[[transport]]\ntype = \"rawsocket\"\nbind = \"127.0.0.1:{rs_port}\"\n{}",
        config(port, &users)
    );
    let router = TestRouter::with_config(&config).await;
    let [rs, ws] = router.server().urls() else {
        panic!("two transports: {:?}", router.server().urls())
    };
    assert!(
        rs.starts_with("rs://") && ws.starts_with("ws://"),
        "{rs} {ws}"
    );
    let (rs, url) = (rs.clone(), ws.clone());
    let b = |url: &str| Client::builder(url).realm(REALM).reconnect(quick());
    let clients = [
        (
            "joe",
            "ticket",
            join(b(&url).authid("joe").ticket("secret1")).await,
        ),
        (
            "peter",
            "wampcra",
            join(b(&url).authid("peter").wampcra("secret2")).await,
        ),
        ("dev", "cryptosign", join(b(&rs).cryptosign(key)).await),
    ];
    let mut regs = Vec::new();
    for (authid, _, c) in &clients {
        let procedure = format!("com.auth.{authid}");
        let who = authid.to_string();
        let reg = c.register(&procedure, move |_inv: Invocation| {
            let who = who.clone();
            async move { Ok::<_, CallError>(Value::from(who)) }
        });
        regs.push(within("register", reg).await.expect("register"));
    }
    let sessions: Vec<Id> = clients.iter().map(|(_, _, c)| c.session_id()).collect();
    within("shutdown", router.shutdown()).await;
    let router = TestRouter::with_config(&config).await;

    let caller = other(&url).await;
    for ((authid, method, c), old) in clients.iter().zip(sessions) {
        reconnected(c, old).await;
        let r = within("call", caller.call(&format!("com.auth.{authid}")))
            .await
            .expect("the restored registration answers");
        assert_eq!(r.args, vec![Value::from(*authid)]);
        // The router tells who registered it: the same user, authenticated again.
        let callee = within(
            "session get",
            caller.call("wamp.session.get").arg(c.session_id().get()),
        )
        .await
        .expect("session get");
        let details = callee.args[0].as_dict().expect("session details");
        assert_eq!(details["authid"].as_str(), Some(*authid));
        assert_eq!(details["authmethod"].as_str(), Some(*method));
    }
    drop(regs);
    leave(caller).await;
    for (_, _, c) in clients {
        leave(c).await;
    }
    router.shutdown().await;
}

#[tokio::test]
async fn reconnect_attempts_back_off_and_end_when_exhausted() {
    let port = free_port();
    let router = TestRouter::with_config(&config(port, "")).await;
    // Without jitter: waits of 100, 200 and 400 ms before attempts 1 to 3.
    let policy = ReconnectPolicy::default()
        .initial_delay(Duration::from_millis(100))
        .multiplier(2.0)
        .jitter(0.0)
        .max_attempts(3);
    let client = join(Client::builder(router.url()).realm(REALM).reconnect(policy)).await;
    // Every state seen, with when it was seen, until the client closes.
    let mut w = client.state_watcher();
    let seen = tokio::spawn(async move {
        let mut seen = Vec::new();
        loop {
            let s = w.changed().await;
            seen.push((Instant::now(), s.clone()));
            if s == ConnectionState::Closed {
                return seen;
            }
        }
    });
    within("shutdown", router.shutdown()).await;
    let closed = within("give up", client.closed()).await;
    let seen = within("states", seen).await.expect("watcher task");
    let (lost, first) = &seen[0];
    assert!(
        matches!(
            first,
            ConnectionState::Disconnected {
                next_attempt: 1,
                ..
            }
        ),
        "{seen:?}"
    );
    let attempts: Vec<u32> = seen
        .iter()
        .filter_map(|(_, s)| match s {
            ConnectionState::Reconnecting { attempt } => Some(*attempt),
            _ => None,
        })
        .collect();
    assert!(attempts.windows(2).all(|w| w[0] < w[1]), "{attempts:?}");
    assert!(attempts.iter().all(|a| (1..=3).contains(a)), "{attempts:?}");
    let waited = seen[seen.len() - 1].0 - *lost;
    assert!(
        waited >= Duration::from_millis(700),
        "three attempts take at least 700 ms of backoff, took {waited:?}"
    );
    assert!(waited < Duration::from_secs(5), "took {waited:?}");
    assert_eq!(closed.kind, CloseKind::TransportLost, "{closed}");
    let message = closed.message.unwrap_or_default();
    assert!(
        message.contains("connection failed"),
        "the last failure: {message}"
    );
    assert_eq!(client.state(), ConnectionState::Closed);
    let e = within("call", client.call("com.svc.echo")).await;
    assert_eq!(e, Err(CallError::ConnectionClosed));
}

#[tokio::test]
async fn a_client_that_opts_out_closes_at_the_first_loss() {
    let port = free_port();
    let config = config(port, "");
    let router = TestRouter::with_config(&config).await;
    let client = join(
        Client::builder(router.url())
            .realm(REALM)
            .reconnect(ReconnectPolicy::never()),
    )
    .await;
    let mut events = within("subscribe", client.subscribe("com.t"))
        .await
        .expect("subscribe");
    within("shutdown", router.shutdown()).await;
    let closed = within("closed", client.closed()).await;
    assert_eq!(closed.kind, CloseKind::RouterGoodbye);
    assert_eq!(closed.reason, uris::CLOSE_SYSTEM_SHUTDOWN);
    assert_eq!(client.state(), ConnectionState::Closed);
    assert!(within("stream end", events.next()).await.is_none());

    // A router on the same port again changes nothing: the client stays closed.
    let router = TestRouter::with_config(&config).await;
    let e = within("call", client.call("com.t")).await;
    assert_eq!(e, Err(CallError::ConnectionClosed));
    assert_eq!(client.state(), ConnectionState::Closed);
    router.shutdown().await;
}
