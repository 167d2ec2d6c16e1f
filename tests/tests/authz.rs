//! Authorization over real sockets: sessions log in with tickets (`wamp_tests::auth`), and
//! every CALL, REGISTER, PUBLISH and SUBSCRIBE is allowed or refused (ERROR
//! `wamp.error.not_authorized`) per their role's rules: each action per rule kind (exact,
//! prefix, wildcard; patterns are checked by their pattern string), the most specific rule
//! whatever the file order, default deny, unacknowledged PUBLISHes dropped, meta procedures,
//! forced caller and publisher disclosure, black/white lists by authenticated identity, the
//! built-in `trusted` role, and a realm without roles.

use wamp_proto::message::{Call, Event, Invocation, Publish, Register, Subscribe, Yield};
use wamp_proto::{uris, Dict, Message, Payload, Uri, Value};
use wamp_tests::auth::{assert_disclosed, assert_undisclosed, Cred};
use wamp_tests::{RawPeer, TestRouter};

const REALM: &str = "realm1";
const TICKET: &str = "t";
const GET_EVENTS: &str = "wamp.subscription.get_events";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    Call,
    Register,
    Publish,
    Subscribe,
}

use Act::{Call as C, Publish as P, Register as R, Subscribe as S};
const ACTS: [Act; 4] = [C, R, P, S];

impl Act {
    fn name(self) -> &'static str {
        match self {
            C => "call",
            R => "register",
            P => "publish",
            S => "subscribe",
        }
    }
}

/// The matrix rules: for each kind and action, a rule allowing only that action.
fn matrix_rules() -> String {
    let mut rules = String::new();
    for act in ACTS {
        let a = act.name();
        for (kind, uri) in [
            ("exact", format!("m.exact.{a}")),
            ("prefix", format!("m.prefix.{a}.")),
            ("wildcard", format!("m.wild..{a}")),
        ] {
            rules += &format!(
                "[[realm.role.permission]]\nuri = \"{uri}\"\nmatch = \"{kind}\"\n{a} = true\n"
            );
        }
    }
    rules
}

/// realm1: users app1, app2 (role `app`), ops (role `ops`), root (`trusted`), nobody (role
/// `empty`, no rules); anonymous sessions get role `guest`.
async fn router() -> TestRouter {
    let user = |authid: &str, role: &str| {
        format!("[[realm.user]]\nauthid = \"{authid}\"\nrole = \"{role}\"\nticket = \"{TICKET}\"\n")
    };
    let rule = |uri: &str, kind: &str, flags: &str| {
        format!("[[realm.role.permission]]\nuri = \"{uri}\"\nmatch = \"{kind}\"\n{flags}\n")
    };
    let all = "call = true\nregister = true\npublish = true\nsubscribe = true";
    let mut app = String::from("[[realm.role]]\nname = \"app\"\n");
    app += &matrix_rules();
    // Most specific wins. General before specific...
    app += &rule("s.", "prefix", "call = true");
    app += &rule("s.deny.", "prefix", "");
    app += &rule("s.deny.open", "exact", "call = true");
    app += &rule("w..x", "wildcard", "call = true");
    app += &rule("w.y.", "wildcard", "");
    // ...and specific before general.
    app += &rule("t.allow.", "prefix", "call = true");
    app += &rule("t.", "prefix", "");
    app += &rule("t.allow.closed", "exact", "");
    app += &rule("t.allow..w", "wildcard", "");
    app += &rule("v.y.", "wildcard", "call = true");
    app += &rule("v..x", "wildcard", "");
    // Disclosure, the feed, the black/white-listed topic, history.
    app += &rule(
        "d.call.",
        "prefix",
        "call = true\nregister = true\ndisclose_caller = true",
    );
    app += &rule("d.plain.", "prefix", "call = true\nregister = true");
    app += &rule(
        "d.pub.",
        "prefix",
        "publish = true\nsubscribe = true\ndisclose_publisher = true",
    );
    app += &rule("d.quiet.", "prefix", "publish = true\nsubscribe = true");
    app += &rule("f.feed", "exact", "subscribe = true");
    app += &rule("bw.topic", "exact", "subscribe = true");
    app += &rule("h.", "prefix", "subscribe = true");
    let mut ops = String::from("[[realm.role]]\nname = \"ops\"\n");
    ops += &rule("f.feed", "exact", "publish = true");
    ops += &rule("bw.topic", "exact", "subscribe = true");
    ops += &rule("h.", "prefix", all);
    ops += &rule(GET_EVENTS, "exact", "call = true");
    let guest = format!(
        "[[realm.role]]\nname = \"guest\"\n{}",
        rule("g.", "prefix", "subscribe = true")
    );
    TestRouter::with_config(&format!(
        "[[transport]]\nbind = \"127.0.0.1:0\"\npath = \"/ws\"\n\
         [[realm]]\nname = \"{REALM}\"\nanonymous = true\nanonymous_role = \"guest\"\n\
         [[realm.topic]]\nuri = \"h.\"\nmatch = \"prefix\"\nhistory = 10\n\
         {}{}{}{}{}{app}{ops}{guest}[[realm.role]]\nname = \"empty\"\n",
        user("app1", "app"),
        user("app2", "app"),
        user("ops", "ops"),
        user("root", "trusted"),
        user("nobody", "empty"),
    ))
    .await
}

async fn login(router: &TestRouter, authid: &str) -> RawPeer {
    RawPeer::join_as(router.url(), REALM, Some(authid), Cred::Ticket(TICKET))
        .await
        .0
}

fn opts(pairs: &[(&str, Value)]) -> Dict {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

/// Does `act` on `uri` (with `options`; a PUBLISH is acknowledged) and says whether the
/// router let it through: REGISTERED, SUBSCRIBED, PUBLISHED, or for a CALL any answer but
/// `not_authorized` (there is no callee: `no_such_procedure`). A refusal must carry a
/// message naming the URI.
async fn allowed(p: &mut RawPeer, act: Act, uri: &str, mut options: Dict) -> bool {
    let request = p.request();
    let (topic, procedure) = (Uri::new(uri), Uri::new(uri));
    let msg: Message = match act {
        C => Call {
            request,
            options,
            procedure,
            payload: Payload::default(),
        }
        .into(),
        R => Register {
            request,
            options,
            procedure,
        }
        .into(),
        P => {
            options.insert("acknowledge".into(), true.into());
            Publish {
                request,
                options,
                topic,
                payload: Payload::default(),
            }
            .into()
        }
        S => Subscribe {
            request,
            options,
            topic,
        }
        .into(),
    };
    p.send(&msg).await;
    match p.recv().await {
        Message::Error(e) if e.request == request && e.error.as_str() == uris::NOT_AUTHORIZED => {
            let text = e
                .payload
                .args
                .as_deref()
                .and_then(|a| a.first())
                .and_then(Value::as_str);
            assert!(
                text.is_some_and(|t| t.contains(uri)),
                "not_authorized without a message naming {uri}: {e:?}"
            );
            false
        }
        Message::Error(e) if act == C && e.request == request => {
            assert_eq!(e.error.as_str(), uris::NO_SUCH_PROCEDURE, "{e:?}");
            true
        }
        Message::Registered(m) if act == R && m.request == request => true,
        Message::Subscribed(m) if act == S && m.request == request => true,
        Message::Published(m) if act == P && m.request == request => true,
        other => panic!("{} {uri}: unexpected answer {other:?}", act.name()),
    }
}

/// Checks which of the four actions the session may do on `uri`.
async fn expect_only(p: &mut RawPeer, uri: &str, want: &[Act]) {
    for act in ACTS {
        let got = allowed(p, act, uri, Dict::new()).await;
        assert_eq!(got, want.contains(&act), "{} {uri}", act.name());
    }
}

async fn publish(p: &mut RawPeer, topic: &str, options: Dict, args: Vec<Value>) {
    let mut options = options;
    options.insert("acknowledge".into(), true.into());
    let request = p.request();
    let payload = Payload::args(args);
    p.send(
        &Publish {
            request,
            options,
            topic: Uri::new(topic),
            payload,
        }
        .into(),
    )
    .await;
    match p.recv().await {
        Message::Published(m) if m.request == request => {}
        other => panic!("expected PUBLISHED for {topic}, got {other:?}"),
    }
}

async fn event(p: &mut RawPeer) -> Event {
    match p.recv().await {
        Message::Event(e) => e,
        other => panic!("expected EVENT, got {other:?}"),
    }
}

/// `publisher` publishes `marker` on `topic`; it must be `p`'s next message (nothing else
/// was queued for `p` before it).
async fn next_is_marker(publisher: &mut RawPeer, p: &mut RawPeer, topic: &str, marker: &str) {
    publish(publisher, topic, Dict::new(), vec![marker.into()]).await;
    let e = event(p).await;
    assert_eq!(
        e.payload.args,
        Some(vec![marker.into()]),
        "something came first: {e:?}"
    );
}

// --- each action per rule kind ---------------------------------------------------------------

#[tokio::test]
async fn each_action_is_allowed_only_where_a_rule_of_each_kind_grants_it() {
    let router = router().await;
    let mut p = login(&router, "app1").await;
    for act in ACTS {
        let a = act.name();
        // exact: the URI itself, nothing longer.
        expect_only(&mut p, &format!("m.exact.{a}"), &[act]).await;
        expect_only(&mut p, &format!("m.exact.{a}.more"), &[]).await;
        // prefix: anything below it, not the bare word.
        expect_only(&mut p, &format!("m.prefix.{a}.x.y"), &[act]).await;
        expect_only(&mut p, &format!("m.prefix.{a}x"), &[]).await;
        // wildcard: any one component in the empty slot.
        expect_only(&mut p, &format!("m.wild.any.{a}"), &[act]).await;
        expect_only(&mut p, &format!("m.wild.a.b.{a}"), &[]).await;
    }
}

#[tokio::test]
async fn pattern_subscriptions_and_registrations_are_checked_by_their_pattern() {
    let router = router().await;
    let mut p = login(&router, "app1").await;
    let prefix = || opts(&[("match", "prefix".into())]);
    let wildcard = || opts(&[("match", "wildcard".into())]);
    assert!(allowed(&mut p, S, "m.prefix.subscribe.", prefix()).await);
    assert!(allowed(&mut p, R, "m.prefix.register.sub", prefix()).await);
    assert!(allowed(&mut p, S, "m.wild..subscribe", wildcard()).await);
    // A broader pattern than the rule would reach beyond it.
    assert!(!allowed(&mut p, S, "m.prefix.", prefix()).await);
    assert!(!allowed(&mut p, S, "m.", prefix()).await);
    assert!(!allowed(&mut p, R, "m.prefix.", prefix()).await);
    assert!(!allowed(&mut p, S, "m...subscribe", wildcard()).await);
}

#[tokio::test]
async fn the_most_specific_rule_wins_whatever_the_file_order() {
    let router = router().await;
    let mut p = login(&router, "app2").await;
    for (uri, want) in [
        ("s.a", true),             // prefix s.
        ("s.deny.x", false),       // the longer prefix s.deny., listed after s.
        ("s.deny.open", true),     // exact, listed after both
        ("s.q.x", true),           // prefix s.
        ("w.z.x", true),           // wildcard w..x
        ("w.y.x", false),          // wildcard w.y. (a literal first) beats w..x, listed first
        ("t.allow.x", true),       // prefix t.allow., listed before the shorter t.
        ("t.other", false),        // prefix t.
        ("t.allow.closed", false), // exact, listed after
        ("t.allow.q.w", true),     // a prefix beats a wildcard (t.allow..w)
        ("v.y.x", true),           // wildcard v.y., listed before v..x
        ("v.z.x", false),          // wildcard v..x
    ] {
        assert_eq!(
            allowed(&mut p, C, uri, Dict::new()).await,
            want,
            "call {uri}"
        );
    }
}

#[tokio::test]
async fn everything_no_rule_grants_is_denied() {
    let router = router().await;
    let mut p = login(&router, "app1").await;
    for uri in [
        "org.other",
        "m",
        "m.exact",
        "f.feed.sub",
        "wamp.session.count",
    ] {
        expect_only(&mut p, uri, &[]).await;
    }
    // A role without rules may do nothing at all, ...
    let mut nobody = login(&router, "nobody").await;
    expect_only(&mut nobody, "m.exact.call", &[]).await;
    expect_only(&mut nobody, "m.prefix.subscribe.x", &[]).await;
    // ... and anonymous sessions only what their anonymous_role may.
    let (mut guest, w) = RawPeer::join_as(router.url(), REALM, None, Cred::Anonymous).await;
    assert_eq!(w.details["authrole"], Value::from("guest"));
    expect_only(&mut guest, "g.news", &[S]).await;
    expect_only(&mut guest, "m.exact.call", &[]).await;
}

// --- publications that are refused -----------------------------------------------------------

#[tokio::test]
async fn an_unacknowledged_publish_that_is_not_allowed_is_dropped() {
    let router = router().await;
    let mut sub = login(&router, "app1").await;
    sub.subscribe("f.feed", Dict::new()).await;
    let mut denied = login(&router, "app2").await;
    let request = denied.request();
    let unacked = Publish {
        request,
        options: Dict::new(),
        topic: Uri::new("f.feed"),
        payload: Payload::args(vec!["must not arrive".into()]),
    };
    denied.send(&unacked.into()).await;
    // The same session's next PUBLISH, acknowledged, is refused: so the first one has been
    // handled (in order) by now, and no ERROR came for it.
    assert!(!allowed(&mut denied, P, "f.feed", Dict::new()).await);
    // The subscriber got neither: the next thing it gets is an allowed publisher's marker.
    let mut ops = login(&router, "ops").await;
    next_is_marker(&mut ops, &mut sub, "f.feed", "marker").await;
}

// --- meta procedures ---------------------------------------------------------------------------

#[tokio::test]
async fn meta_procedures_are_checked_like_any_call() {
    let router = router().await;
    let mut ops = login(&router, "ops").await;
    let sub = ops.subscribe("h.log", Dict::new()).await;
    publish(
        &mut ops,
        "h.log",
        opts(&[("exclude_me", false.into())]),
        vec![1.into()],
    )
    .await;
    let _ = event(&mut ops).await;
    let request = ops
        .send_call(GET_EVENTS, Payload::args(vec![sub.get().into()]))
        .await;
    match ops.recv().await {
        Message::Result(r) if r.request == request => {
            let events = r
                .payload
                .args
                .as_deref()
                .and_then(|a| a.first())
                .and_then(Value::as_list);
            assert_eq!(events.map(<[Value]>::len), Some(1), "{r:?}");
        }
        other => panic!("ops may call get_events: {other:?}"),
    }
    // app1 may subscribe to h. but has no rule for the meta procedure.
    let mut app = login(&router, "app1").await;
    let app_sub = app.subscribe("h.log", Dict::new()).await;
    let request = app
        .send_call(GET_EVENTS, Payload::args(vec![app_sub.get().into()]))
        .await;
    match app.recv().await {
        Message::Error(e) if e.request == request => {
            assert_eq!(e.error.as_str(), uris::NOT_AUTHORIZED, "{e:?}");
        }
        other => panic!("app may not call get_events: {other:?}"),
    }
}

// --- disclosure ------------------------------------------------------------------------------

/// `caller` calls `procedure` (no disclose_me) and `callee` answers; returns the INVOCATION.
async fn invocation(caller: &mut RawPeer, callee: &mut RawPeer, procedure: &str) -> Invocation {
    let request = caller.send_call(procedure, Payload::default()).await;
    let Message::Invocation(inv) = callee.recv().await else {
        panic!("expected INVOCATION of {procedure}");
    };
    let reply = Yield {
        request: inv.request,
        options: Dict::new(),
        payload: Payload::default(),
    };
    callee.send(&reply.into()).await;
    match caller.recv().await {
        Message::Result(r) if r.request == request => inv,
        other => panic!("expected RESULT of {procedure}, got {other:?}"),
    }
}

#[tokio::test]
async fn disclose_caller_in_a_rule_discloses_the_authenticated_caller() {
    let router = router().await;
    let mut callee = login(&router, "app1").await;
    let mut caller = login(&router, "app2").await;
    callee.register("d.call.proc", Dict::new()).await;
    callee.register("d.plain.proc", Dict::new()).await;
    let session = caller.session.unwrap().get();
    let inv = invocation(&mut caller, &mut callee, "d.call.proc").await;
    assert_disclosed(&inv.details, "caller", session, "app2", "app");
    // The same roles, a rule without disclose_caller: not disclosed.
    let inv = invocation(&mut caller, &mut callee, "d.plain.proc").await;
    assert_undisclosed(&inv.details, "caller");
}

#[tokio::test]
async fn disclose_publisher_in_a_rule_discloses_the_authenticated_publisher() {
    let router = router().await;
    let mut sub = login(&router, "app1").await;
    let mut publ = login(&router, "app2").await;
    sub.subscribe("d.pub.news", Dict::new()).await;
    sub.subscribe("d.quiet.news", Dict::new()).await;
    publish(&mut publ, "d.pub.news", Dict::new(), vec![1.into()]).await;
    let session = publ.session.unwrap().get();
    let e = event(&mut sub).await;
    assert_disclosed(&e.details, "publisher", session, "app2", "app");
    publish(&mut publ, "d.quiet.news", Dict::new(), vec![2.into()]).await;
    let e = event(&mut sub).await;
    assert_undisclosed(&e.details, "publisher");
}

// --- black and white lists ---------------------------------------------------------------------

#[tokio::test]
async fn black_and_white_lists_use_the_authenticated_authid_and_role() {
    let router = router().await;
    let mut app1 = login(&router, "app1").await;
    let mut app2 = login(&router, "app2").await;
    let mut ops = login(&router, "ops").await;
    for p in [&mut app1, &mut app2, &mut ops] {
        p.subscribe("bw.topic", Dict::new()).await;
    }
    let mut root = login(&router, "root").await;
    let list = |items: &[&str]| Value::List(items.iter().map(|s| Value::from(*s)).collect());
    for (n, (key, items, receivers)) in [
        ("eligible_authid", &["app2"][..], [false, true, false]),
        ("exclude_authrole", &["app"][..], [false, false, true]),
        ("eligible_authrole", &["app"][..], [true, true, false]),
        ("exclude_authid", &["app1", "ops"][..], [false, true, false]),
    ]
    .into_iter()
    .enumerate()
    {
        let arg = Value::from(format!("{key} {n}"));
        publish(
            &mut root,
            "bw.topic",
            opts(&[(key, list(items))]),
            vec![arg.clone()],
        )
        .await;
        for (p, gets) in [&mut app1, &mut app2, &mut ops].into_iter().zip(receivers) {
            if gets {
                let e = event(p).await;
                assert_eq!(e.payload.args, Some(vec![arg.clone()]), "{key} {items:?}");
            }
        }
    }
    // Nobody got more than the above: each one's next event is this marker.
    for p in [&mut app1, &mut app2, &mut ops] {
        next_is_marker(&mut root, p, "bw.topic", "marker").await;
    }
}

// --- trusted, and a realm without roles --------------------------------------------------------

#[tokio::test]
async fn the_trusted_role_may_do_everything_and_is_always_disclosed() {
    let router = router().await;
    let mut root = login(&router, "root").await;
    expect_only(&mut root, "anything.at.all", &ACTS).await;
    let mut callee = login(&router, "root").await;
    callee.register("org.trusted.proc", Dict::new()).await;
    let session = root.session.unwrap().get();
    let inv = invocation(&mut root, &mut callee, "org.trusted.proc").await;
    assert_disclosed(&inv.details, "caller", session, "root", "trusted");
}

#[tokio::test]
async fn a_realm_without_roles_allows_every_session_everything() {
    let router = TestRouter::with_config(&format!(
        "[[transport]]\nbind = \"127.0.0.1:0\"\npath = \"/ws\"\n\
         [[realm]]\nname = \"{REALM}\"\nanonymous = true\n\
         [[realm.user]]\nauthid = \"joe\"\nrole = \"whatever\"\nticket = \"{TICKET}\"\n"
    ))
    .await;
    let mut joe = login(&router, "joe").await;
    expect_only(&mut joe, "com.any.thing", &ACTS).await;
    let (mut anon, _) = RawPeer::join_as(router.url(), REALM, None, Cred::Anonymous).await;
    expect_only(&mut anon, "org.other.thing", &ACTS).await;
    // Nothing is disclosed unless asked for.
    let inv = invocation(&mut anon, &mut joe, "com.any.thing").await;
    assert_undisclosed(&inv.details, "caller");
}
