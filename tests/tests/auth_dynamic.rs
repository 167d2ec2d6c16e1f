//! The dynamic authenticator: a procedure registered by a `trusted` session decides the
//! tickets of authids that are not static users; the joining session waits for its answer
//! without holding anyone else up.

use std::time::Duration;

use wamp_proto::message::{code, Authenticate, Error, Hello, Invocation, Register, Yield};
use wamp_proto::options::dict;
use wamp_proto::{uris, Dict, Message, Payload, Serializer, Uri, Value};
use wamp_tests::{RawPeer, TestRouter};

const CONFIG: &str = r#"
[[transport]]
bind = "127.0.0.1:0"

[[realm]]
name = "dyn"
  [realm.authenticator]
  procedure = "com.example.authenticate"
  timeout_ms = 1000

  [[realm.user]]
  authid = "auth-service"
  role = "trusted"
  ticket = "service-ticket"

  [[realm.user]]
  authid = "intruder"
  role = "app"
  ticket = "intruder-ticket"

  [[realm.role]]
  name = "app"
    [[realm.role.permission]]
    uri = "com.example."
    match = "prefix"
    register = true
    call = true
"#;

fn hello(authid: &str) -> Message {
    let role = || Value::Dict(dict([("features", Value::Dict(Dict::new()))]));
    Hello {
        realm: Uri::new("dyn"),
        details: dict([
            (
                "roles",
                Value::Dict(dict([("caller", role()), ("callee", role())])),
            ),
            ("authmethods", Value::List(vec!["ticket".into()])),
            ("authid", authid.into()),
        ]),
    }
    .into()
}

/// Sends HELLO with `authid` and AUTHENTICATE with `ticket`; the router's answer to it.
async fn login(url: &str, authid: &str, ticket: &str) -> (RawPeer, Message) {
    let mut p = RawPeer::connect(url, Serializer::Json).await;
    p.send(&hello(authid)).await;
    match p.recv().await {
        Message::Challenge(c) => assert_eq!(c.auth_method, "ticket"),
        other => panic!("expected CHALLENGE, got {other:?}"),
    }
    p.send(
        &Authenticate {
            signature: ticket.into(),
            extra: Dict::new(),
        }
        .into(),
    )
    .await;
    let answer = p.recv().await;
    (p, answer)
}

/// Registers the authenticator procedure from a session that logged in as `authid`.
async fn register_authenticator(router: &TestRouter, authid: &str, ticket: &str) -> RawPeer {
    let (mut service, welcome) = login(router.url(), authid, ticket).await;
    assert!(matches!(welcome, Message::Welcome(_)), "{welcome:?}");
    let request = service.request();
    service
        .send(
            &Register {
                request,
                options: Dict::new(),
                procedure: Uri::new("com.example.authenticate"),
            }
            .into(),
        )
        .await;
    assert!(matches!(service.recv().await, Message::Registered(_)));
    service
}

/// Answers the next INVOCATION: `role` for ticket "letmein", ERROR not_authorized otherwise.
async fn serve_one(service: &mut RawPeer) -> Invocation {
    let Message::Invocation(mut inv) = service.recv().await else {
        panic!("expected INVOCATION");
    };
    inv.payload.materialize().unwrap();
    let args = inv.payload.args.clone().unwrap_or_default();
    let ticket = args
        .get(2)
        .and_then(Value::as_dict)
        .and_then(|d| d.get("ticket"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let reply: Message = if ticket == "letmein" {
        Yield {
            request: inv.request,
            options: Dict::new(),
            payload: Payload::args(vec![Value::Dict(dict([
                ("role", "app".into()),
                ("extra", Value::Dict(dict([("tier", "gold".into())]))),
            ]))]),
        }
        .into()
    } else {
        Error {
            request_type: code::INVOCATION,
            request: inv.request,
            details: Dict::new(),
            error: Uri::new(uris::NOT_AUTHORIZED),
            payload: Payload::args(vec!["unknown ticket".into()]),
        }
        .into()
    };
    service.send(&reply).await;
    inv
}

#[tokio::test]
async fn the_authenticator_decides_and_its_error_refuses() {
    let router = TestRouter::with_config(CONFIG).await;
    let mut service = register_authenticator(&router, "auth-service", "service-ticket").await;

    let joining = tokio::spawn({
        let url = router.url().to_owned();
        async move { login(&url, "dyn-joe", "letmein").await }
    });
    let inv = serve_one(&mut service).await;
    let args = inv.payload.args.unwrap_or_default();
    assert_eq!(args.first().and_then(Value::as_str), Some("dyn"), "realm");
    assert_eq!(
        args.get(1).and_then(Value::as_str),
        Some("dyn-joe"),
        "authid"
    );
    let details = args
        .get(2)
        .and_then(Value::as_dict)
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        details.get("authmethod").and_then(Value::as_str),
        Some("ticket")
    );
    assert!(
        details.get("session").and_then(Value::as_u64).is_some(),
        "{details:?}"
    );
    let (_joe, answer) = joining.await.unwrap();
    let Message::Welcome(w) = answer else {
        panic!("expected WELCOME, got {answer:?}");
    };
    let d = &w.details;
    assert_eq!(d.get("authid").and_then(Value::as_str), Some("dyn-joe"));
    assert_eq!(d.get("authrole").and_then(Value::as_str), Some("app"));
    assert_eq!(
        d.get("authprovider").and_then(Value::as_str),
        Some("dynamic")
    );
    assert_eq!(
        d.get("authextra")
            .and_then(Value::as_dict)
            .and_then(|x| x.get("tier")),
        Some(&Value::from("gold"))
    );

    let refused = tokio::spawn({
        let url = router.url().to_owned();
        async move { login(&url, "dyn-eve", "guess").await }
    });
    serve_one(&mut service).await;
    let (_, answer) = refused.await.unwrap();
    match answer {
        Message::Abort(a) => assert_eq!(a.reason.as_str(), uris::NOT_AUTHORIZED, "{a:?}"),
        other => panic!("expected ABORT, got {other:?}"),
    }
}

#[tokio::test]
async fn an_authenticator_not_registered_by_a_trusted_session_is_not_asked() {
    let router = TestRouter::with_config(CONFIG).await;
    let _fake = register_authenticator(&router, "intruder", "intruder-ticket").await;
    let (_, answer) = login(router.url(), "dyn-joe", "letmein").await;
    match answer {
        Message::Abort(a) => {
            assert_eq!(a.reason.as_str(), uris::AUTHENTICATION_FAILED, "{a:?}")
        }
        other => panic!("expected ABORT, got {other:?}"),
    }
}

#[tokio::test]
async fn a_silent_authenticator_times_out_and_others_keep_working() {
    let router = TestRouter::with_config(CONFIG).await;
    let mut service = register_authenticator(&router, "auth-service", "service-ticket").await;
    let started = std::time::Instant::now();
    let waiting = tokio::spawn({
        let url = router.url().to_owned();
        async move { login(&url, "dyn-slow", "letmein").await }
    });
    // The service sees the INVOCATION but never answers it; meanwhile a static user joins.
    assert!(matches!(service.recv().await, Message::Invocation(_)));
    let (_other, welcome) = login(router.url(), "auth-service", "service-ticket").await;
    assert!(matches!(welcome, Message::Welcome(_)), "{welcome:?}");
    let (_, answer) = waiting.await.unwrap();
    match answer {
        Message::Abort(a) => {
            assert_eq!(a.reason.as_str(), uris::AUTHENTICATION_FAILED, "{a:?}")
        }
        other => panic!("expected ABORT, got {other:?}"),
    }
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "the 1 s timeout"
    );
}
