//! Reconnecting against a scripted fake router: what goes on the wire when the client
//! rejoins (the same HELLO and credentials, the same REGISTER and SUBSCRIBE options), and a
//! registration the new session refuses, which a real router produces only by a race.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use futures_util::StreamExt;
use wamp_client::{
    CallError, Client, ConnectionState, Invocation, ReconnectPolicy, RegisterError, Registration,
    Value,
};
use wamp_proto::message::{self as msg, code, Challenge, Welcome};
use wamp_proto::options::dict;
use wamp_proto::{uris, Dict, Id, Message, Payload, Uri};

mod fake;
use fake::{accept, listen, Peer, WAIT};

fn id(n: u64) -> Id {
    Id::new(n).unwrap()
}

/// Plays the router's side of a ticket login as joe; returns the HELLO details.
async fn ticket_join(p: &mut Peer, session: u64) -> Dict {
    let Message::Hello(h) = p.recv().await else {
        panic!("expected HELLO")
    };
    assert_eq!(h.realm.as_str(), "realm1");
    p.send(Challenge {
        auth_method: "ticket".into(),
        extra: Dict::new(),
    })
    .await;
    let Message::Authenticate(a) = p.recv().await else {
        panic!("expected AUTHENTICATE")
    };
    assert_eq!(a.signature, "secret1", "the ticket is sent again");
    p.send(Welcome {
        session: id(session),
        details: dict([("authid", "joe".into()), ("authmethod", "ticket".into())]),
    })
    .await;
    h.details
}

/// Registers `procedure` (disclosing callers), the fake router answering `registration`.
async fn register(
    client: &Client,
    p: &mut Peer,
    procedure: &str,
    registration: u64,
) -> (Registration, msg::Register) {
    let register = client
        .register(procedure, |inv: Invocation| async move {
            Ok::<_, CallError>(inv.args)
        })
        .disclose_caller();
    let router = async {
        let Message::Register(r) = p.recv().await else {
            panic!("expected REGISTER")
        };
        let answer = msg::Registered {
            request: r.request,
            registration: id(registration),
        };
        p.send(answer).await;
        r
    };
    let (reg, r) = tokio::join!(register, router);
    let reg = reg.unwrap();
    assert_eq!(reg.id(), id(registration));
    (reg, r)
}

#[tokio::test]
async fn the_new_session_gets_the_same_requests_and_refusals_are_reported() {
    let (l, url) = listen().await;
    let policy = ReconnectPolicy::default()
        .initial_delay(Duration::from_millis(10))
        .jitter(0.0);
    let connect = Client::builder(&url)
        .realm("realm1")
        .authid("joe")
        .ticket("secret1")
        .reconnect(policy)
        .connect();
    let first = async {
        let mut p = accept(&l, Some("wamp.2.json")).await;
        let hello = ticket_join(&mut p, 77).await;
        (p, hello)
    };
    let ((mut p, hello), client) = tokio::join!(first, connect);
    let client = client.unwrap();

    // Session 77: two registrations and a prefix subscription.
    let (x, reg_x) = register(&client, &mut p, "com.x", 5).await;
    let (y, reg_y) = register(&client, &mut p, "com.y", 6).await;
    let subscribe = client.subscribe("com.t.").prefix();
    let router = async {
        let Message::Subscribe(s) = p.recv().await else {
            panic!("expected SUBSCRIBE")
        };
        let answer = msg::Subscribed {
            request: s.request,
            subscription: id(9),
        };
        p.send(answer).await;
        s
    };
    let (sub, subscribed) = tokio::join!(subscribe, router);
    let mut sub = sub.unwrap();
    assert_eq!(sub.id(), id(9));

    // The connection drops; the client dials again and joins session 78 the same way.
    drop(p);
    let mut p = accept(&l, Some("wamp.2.json")).await;
    assert_eq!(ticket_join(&mut p, 78).await, hello, "the same HELLO");
    let mut again = Vec::new();
    for _ in 0..3 {
        again.push(p.recv().await);
    }
    let mut requests = again.iter().map(|m| match m {
        Message::Register(r) => r.request,
        Message::Subscribe(s) => s.request,
        other => panic!("expected REGISTER or SUBSCRIBE, got {other:?}"),
    });
    let mut ids: Vec<u64> = requests.by_ref().map(Id::get).collect();
    ids.sort_unstable();
    assert_eq!(ids, [1, 2, 3], "request IDs start over in the new session");
    assert_eq!(client.state(), ConnectionState::Reconnecting { attempt: 1 });
    for m in again {
        match m {
            Message::Register(r) if r.procedure == reg_x.procedure => {
                assert_eq!(r.options, reg_x.options);
                // Someone else took com.x while we were away.
                let refusal = msg::Error {
                    request_type: code::REGISTER,
                    request: r.request,
                    details: Dict::new(),
                    error: Uri::new(uris::PROCEDURE_ALREADY_EXISTS),
                    payload: Payload::default(),
                };
                p.send(refusal).await;
            }
            Message::Register(r) => {
                assert_eq!(
                    (&r.procedure, &r.options),
                    (&reg_y.procedure, &reg_y.options)
                );
                let answer = msg::Registered {
                    request: r.request,
                    registration: id(16),
                };
                p.send(answer).await;
            }
            Message::Subscribe(s) => {
                assert_eq!(
                    (&s.topic, &s.options),
                    (&subscribed.topic, &subscribed.options)
                );
                let answer = msg::Subscribed {
                    request: s.request,
                    subscription: id(19),
                };
                p.send(answer).await;
            }
            _ => unreachable!(),
        }
    }

    let mut w = client.state_watcher();
    let connected = tokio::time::timeout(WAIT, w.connected()).await.unwrap();
    assert_eq!(connected, Some(id(78)));
    assert_eq!(client.session_id(), id(78));
    // The refused registration is reported on its handle, and is gone.
    let why = tokio::time::timeout(WAIT, x.revoked()).await.unwrap();
    assert_eq!(why.as_deref(), Some(uris::PROCEDURE_ALREADY_EXISTS));
    match x.unregister().await {
        Err(RegisterError::Rejected(r)) => assert_eq!(r.uri, uris::NO_SUCH_REGISTRATION),
        other => panic!("{other:?}"),
    }
    // The restored ones carry the new IDs and keep working.
    assert_eq!((y.id(), sub.id()), (id(16), id(19)));
    let event = msg::Event {
        subscription: id(19),
        publication: id(1000),
        details: dict([("topic", "com.t.a".into())]),
        payload: Payload::args(vec![Value::from(1)]),
    };
    p.send(event).await;
    let e = tokio::time::timeout(WAIT, sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (e.topic(), e.args.as_slice()),
        ("com.t.a", &[Value::from(1)][..])
    );
    let invocation = msg::Invocation {
        request: id(1),
        registration: id(16),
        details: Dict::new(),
        payload: Payload::args(vec![Value::from("hi")]),
    };
    p.send(invocation).await;
    let Message::Yield(y) = p.recv().await else {
        panic!("expected YIELD")
    };
    assert_eq!(y.payload.args, Some(vec![Value::from("hi")]));
}

/// Joins a fresh connection anonymously as `session` (the default builder offers anonymous).
async fn anonymous_join(l: &tokio::net::TcpListener, session: u64) -> Peer {
    let mut p = accept(l, Some("wamp.2.json")).await;
    let Message::Hello(_) = p.recv().await else {
        panic!("expected HELLO")
    };
    p.send(Welcome {
        session: id(session),
        details: Dict::new(),
    })
    .await;
    p
}

#[tokio::test]
async fn sessions_dropped_before_they_are_restored_count_as_failed_attempts() {
    let (l, url) = listen().await;
    // Waits of 50 and 200 ms before attempts 1 and 2; no third attempt.
    let policy = ReconnectPolicy::default()
        .initial_delay(Duration::from_millis(50))
        .multiplier(4.0)
        .jitter(0.0)
        .max_attempts(2);
    let connect = Client::builder(&url)
        .realm("realm1")
        .reconnect(policy)
        .connect();
    let (mut p, client) = tokio::join!(anonymous_join(&l, 1), connect);
    let client = client.unwrap();
    let (_reg, _) = register(&client, &mut p, "com.x", 5).await;

    // The router takes each new session and drops it before answering the REGISTER.
    let mut dropped = Vec::new();
    drop(p);
    for (session, attempt) in [(2, 1), (3, 2)] {
        let mut p = anonymous_join(&l, session).await;
        let Message::Register(_) = p.recv().await else {
            panic!("expected the restoring REGISTER")
        };
        dropped.push(std::time::Instant::now());
        assert_eq!(client.state(), ConnectionState::Reconnecting { attempt });
    }
    let gap = dropped[1] - dropped[0];
    assert!(
        gap >= Duration::from_millis(200),
        "the second wait grew: {gap:?}"
    );
    let closed = tokio::time::timeout(WAIT, client.closed()).await.unwrap();
    assert_eq!(
        closed.kind,
        wamp_client::CloseKind::TransportLost,
        "{closed}"
    );
    assert_eq!(client.state(), ConnectionState::Closed);
}
