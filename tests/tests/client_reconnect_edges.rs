//! `wamp-client` reconnecting, the corner cases: a connection gone silent (keep-alive),
//! leaving or dropping the client while disconnected, and restoring many registrations and
//! subscriptions at once.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use wamp_client::{
    uris, CallError, Client, ConnectionState, Invocation, LeaveError, StateWatcher, Value,
};
use wamp_tests::proxy::SilentProxy;
use wamp_tests::reconnect::{config, free_port, join, leave, other, quick, reconnected, REALM};
use wamp_tests::{within, TestRouter};

/// A connection gone silent (the router host died, say) is noticed by the keep-alive and
/// reconnected. The router still holds the silent session, so a registration of a single
/// callee cannot be restored yet: that is reported on its handle, not lost silently.
#[tokio::test]
async fn a_silent_connection_is_noticed_by_the_keepalive_and_reconnected() {
    let router = TestRouter::with_config(&config(0, "")).await;
    let target = router.server().local_addrs()[0].to_string();
    let proxy = SilentProxy::start(target.clone()).await;
    let via_proxy = router
        .url()
        .replace(&target, &format!("127.0.0.1:{}", proxy.port()));
    let service = join(
        Client::builder(&via_proxy)
            .realm(REALM)
            .keepalive(Duration::from_millis(100))
            .reconnect(quick()),
    )
    .await;
    let single = within(
        "register",
        service.register("com.ka.single", |_: Invocation| async {
            Ok::<_, CallError>(())
        }),
    )
    .await
    .expect("register");
    let mut events = within("subscribe", service.subscribe("com.ka.tick"))
        .await
        .expect("subscribe");
    let old = service.session_id();

    proxy.silence_open();
    reconnected(&service, old).await;
    let why = within("revoked", single.revoked()).await;
    assert_eq!(why.as_deref(), Some(uris::PROCEDURE_ALREADY_EXISTS));
    let publisher = other(router.url()).await;
    within(
        "publish",
        publisher.publish("com.ka.tick").arg(1).acknowledge(),
    )
    .await
    .expect("publish");
    let e = within("event", events.next())
        .await
        .expect("the stream goes on");
    assert_eq!(e.args, vec![Value::from(1)]);
    let me = within(
        "call",
        service
            .call("wamp.session.get")
            .arg(service.session_id().get()),
    )
    .await
    .expect("calls work on the new session");
    assert!(me.args[0].as_dict().is_some(), "{me:?}");
    leave(publisher).await;
    leave(service).await;
}

/// A client whose router on `port` went away, and a watcher of its state.
async fn lost_router(port: u16) -> (Client, StateWatcher) {
    let router = TestRouter::with_config(&config(port, "")).await;
    let client = join(
        Client::builder(router.url())
            .realm(REALM)
            .reconnect(quick()),
    )
    .await;
    let mut w = client.state_watcher();
    within("shutdown", router.shutdown()).await;
    within(
        "disconnected",
        w.wait_for(|s| !matches!(s, ConnectionState::Connected { .. })),
    )
    .await;
    (client, w)
}

#[tokio::test]
async fn leaving_while_disconnected_stops_reconnecting() {
    let port = free_port();
    let (client, _) = lost_router(port).await;
    match within("leave", client.leave()).await {
        // With the last failure: the session had ended already.
        Err(LeaveError::Closed(r)) => assert_eq!(Some(r), client.close_reason()),
        other => panic!("{other:?}"),
    }
    assert_eq!(client.state(), ConnectionState::Closed);
    assert!(client.is_closed());

    // Dropping every handle while disconnected ends the task too (the watcher sees it).
    let (client, mut w) = lost_router(port).await;
    drop(client);
    assert_eq!(
        within("closed", w.wait_for(|s| *s == ConnectionState::Closed)).await,
        ConnectionState::Closed
    );
}

/// Restores many registrations and subscriptions at once; prints how long it took.
#[tokio::test]
async fn many_registrations_and_subscriptions_are_restored() {
    const N: usize = 1000;
    let port = free_port();
    let config = config(port, "");
    let router = TestRouter::with_config(&config).await;
    let url = router.url().to_owned();
    let service = join(Client::builder(&url).realm(REALM).reconnect(quick())).await;
    let mut regs = Vec::new();
    let mut subs = Vec::new();
    for i in 0..N {
        let reg = service.register(
            &format!("com.many.p{i}"),
            move |_inv: Invocation| async move { Ok::<_, CallError>(Value::from(i as u64)) },
        );
        regs.push(within("register", reg).await.expect("register"));
        let sub = within("subscribe", service.subscribe(&format!("com.many.t{i}")))
            .await
            .expect("subscribe");
        subs.push(sub);
    }
    let old = service.session_id();
    within("shutdown", router.shutdown()).await;
    // When the last attempt started, and when everything was back.
    let mut w = service.state_watcher();
    let timing = tokio::spawn(async move {
        let mut attempt_started = Instant::now();
        loop {
            match w.changed().await {
                ConnectionState::Reconnecting { .. } => attempt_started = Instant::now(),
                ConnectionState::Connected { .. } => return attempt_started.elapsed(),
                ConnectionState::Closed => panic!("closed"),
                _ => {}
            }
        }
    });
    let router = TestRouter::with_config(&config).await;
    reconnected(&service, old).await;
    let took = within("timing", timing).await.expect("watcher task");
    eprintln!("rejoined and restored {N} registrations and {N} subscriptions in {took:?}");

    let caller = other(&url).await;
    for i in [0, N / 2, N - 1] {
        let r = within("call", caller.call(&format!("com.many.p{i}")))
            .await
            .expect("call");
        assert_eq!(r.args, vec![Value::from(i as u64)]);
        within(
            "publish",
            caller
                .publish(&format!("com.many.t{i}"))
                .arg(i as u64)
                .acknowledge(),
        )
        .await
        .expect("publish");
        let e = within("event", subs[i].next()).await.expect("event");
        assert_eq!(e.args, vec![Value::from(i as u64)]);
    }
    leave(caller).await;
    leave(service).await;
    router.shutdown().await;
}
