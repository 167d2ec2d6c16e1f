//! Advanced RPC over real sockets: feature announcement, pattern-based and shared
//! registrations, registration revocation, caller identification, and many concurrent calls.
//! Progressive calls, canceling and timeouts are in `rpc_streaming.rs`.

use std::collections::HashMap;

use crate::rpc_common::*;
use wamp_proto::message::*;
use wamp_proto::{uris, Dict, Message, Payload, Serializer, Value};
use wamp_tests::{RawPeer, TestRouter};

#[tokio::test]
async fn welcome_announces_dealer_features() {
    let router = TestRouter::start().await;
    let (_p, w) = RawPeer::join(router.url(), "realm1", Serializer::Json).await;
    let f = w.details["roles"].as_dict().unwrap()["dealer"]
        .as_dict()
        .unwrap()["features"]
        .as_dict()
        .unwrap()
        .clone();
    for name in [
        "pattern_based_registration",
        "shared_registration",
        "registration_revocation",
        "caller_identification",
        "progressive_call_results",
        "progressive_call_invocations",
        "call_canceling",
        "call_timeout",
    ] {
        assert_eq!(f.get(name), Some(&Value::Bool(true)), "{name}");
    }
    assert!(!f.contains_key("call_trustlevels"));
}

#[tokio::test]
async fn pattern_precedence_exact_then_longest_prefix_then_best_wildcard() {
    let router = TestRouter::start().await;
    let mut callee = join(&router, Serializer::Json).await;
    let mut caller = join(&router, Serializer::MsgPack).await;
    let prefix = |s: &str| opts([("match", s.into())]);
    let exact = register(&mut callee, "com.app.obj.get", Dict::new()).await;
    let short = register(&mut callee, "com.app.", prefix("prefix")).await;
    let long = register(&mut callee, "com.app.obj", prefix("prefix")).await;
    let wild = register(&mut callee, "com..obj.get", prefix("wildcard")).await;
    // The spec's two wildcard examples (ADV-07).
    let w1 = register(&mut callee, "a1.b2..d4.e5", prefix("wildcard")).await;
    let w2 = register(&mut callee, "a1.b2.c33..e5", prefix("wildcard")).await;
    let w3 = register(&mut callee, "a1.b2..d4.e5..g7", prefix("wildcard")).await;
    let w4 = register(&mut callee, "a1.b2..d4..f6.g7", prefix("wildcard")).await;
    for (procedure, reg, pattern) in [
        ("com.app.obj.get", exact, false),
        ("com.app.obj-sub.get", long, true),
        ("com.app.obj", long, true),
        ("com.app.other", short, true),
        ("com.other.obj.get", wild, true),
        ("a1.b2.c33.d4.e5", w2, true),
        ("a1.b2.c44.d4.e5", w1, true),
        ("a1.b2.c88.d4.e5.f6.g7", w3, true),
        ("a1.b2.c88.d4.e6.f6.g7", w4, true),
    ] {
        let r = call(&mut caller, procedure, Dict::new(), n(7)).await;
        let inv = invocation(&mut callee).await;
        assert_eq!(inv.registration, reg, "{procedure}");
        let detail = inv.details.get("procedure").and_then(Value::as_str);
        assert_eq!(detail, pattern.then_some(procedure), "{procedure}");
        yield_(&mut callee, inv.request, Dict::new(), inv.payload).await;
        let res = result(&mut caller).await;
        assert_eq!((res.request, arg0(&res.payload)), (r, 7));
    }
    let r = call(&mut caller, "org.nothing", Dict::new(), Payload::default()).await;
    call_error(&mut caller, r, uris::NO_SUCH_PROCEDURE).await;
    // Unregistering the long prefix hands its calls to the shorter one.
    let u = callee.request();
    callee
        .send(
            &Unregister {
                request: u,
                registration: long,
                options: None,
            }
            .into(),
        )
        .await;
    assert!(matches!(callee.recv().await, Message::Unregistered(x) if x.request == u.get()));
    call(&mut caller, "com.app.obj-sub.get", Dict::new(), n(1)).await;
    assert_eq!(invocation(&mut callee).await.registration, short);
}

#[tokio::test]
async fn pattern_uri_validation_and_bad_options() {
    let router = TestRouter::start().await;
    let mut p = join(&router, Serializer::Json).await;
    let with = |m: &str| opts([("match", m.into())]);
    // Prefix: only the last component may be empty; wildcard: any; exact: none.
    register(&mut p, "com.pre.", with("prefix")).await;
    register(&mut p, "..x.", with("wildcard")).await;
    register_fails(&mut p, "com..pre", with("prefix"), uris::INVALID_URI).await;
    register_fails(&mut p, "com.x.", Dict::new(), uris::INVALID_URI).await;
    register_fails(&mut p, "wamp.", with("prefix"), uris::INVALID_URI).await;
    register_fails(&mut p, "com.x", with("fuzzy"), uris::INVALID_ARGUMENT).await;
    register_fails(
        &mut p,
        "com.x",
        opts([("match", 1.into())]),
        uris::INVALID_ARGUMENT,
    )
    .await;
    let bad = opts([("invoke", "sometimes".into())]);
    register_fails(&mut p, "com.x", bad, uris::INVALID_ARGUMENT).await;
    let bad = opts([("force_reregister", "yes".into())]);
    register_fails(&mut p, "com.x", bad, uris::INVALID_ARGUMENT).await;
    let deep = ".".repeat(64); // 65 components: more than the router accepts
    register_fails(&mut p, &deep, with("wildcard"), uris::INVALID_URI).await;
    register(&mut p, &deep[1..], with("wildcard")).await;
    // The same pattern with another match policy is another registration.
    register(&mut p, "com.pre.", with("wildcard")).await;
}

/// Sends calls numbered `0..count`, then waits until the router has routed all of them.
async fn numbered_calls(caller: &mut RawPeer, procedure: &str, count: u64) {
    for i in 0..count {
        call(caller, procedure, Dict::new(), n(i)).await;
    }
    sync(caller).await;
}

/// Answers the INVOCATIONs queued to `p` so far and returns their numbers.
async fn drain(p: &mut RawPeer) -> Vec<u64> {
    let r = call(p, "com.sync.nobody", Dict::new(), Payload::default()).await;
    let mut got = Vec::new();
    loop {
        match p.recv().await {
            Message::Invocation(i) => {
                got.push(arg0(&i.payload));
                yield_(p, i.request, Dict::new(), i.payload).await;
            }
            Message::Error(e) if e.request == r => return got,
            other => panic!("expected INVOCATION, got {other:?}"),
        }
    }
}

async fn results(caller: &mut RawPeer, count: u64) {
    for _ in 0..count {
        result(caller).await;
    }
}

#[tokio::test]
async fn shared_registration_invoke_policies() {
    let router = TestRouter::start().await;
    let mut caller = join(&router, Serializer::Json).await;
    for policy in ["roundrobin", "random", "first", "last"] {
        let mut cs = Vec::new();
        for ser in [Serializer::Json, Serializer::MsgPack, Serializer::Json] {
            cs.push(join(&router, ser).await);
        }
        let procedure = format!("com.shared.{policy}");
        let mut ids = Vec::new();
        for c in &mut cs {
            ids.push(register(c, &procedure, opts([("invoke", policy.into())])).await);
        }
        assert!(ids.iter().all(|i| *i == ids[0]), "one registration id");
        numbered_calls(&mut caller, &procedure, 30).await;
        let mut got = Vec::new();
        for c in &mut cs {
            got.push(drain(c).await);
        }
        let all: Vec<u64> = (0..30).collect();
        match policy {
            "roundrobin" => {
                for (i, g) in got.iter().enumerate() {
                    let want: Vec<u64> = (i as u64..30).step_by(3).collect();
                    assert_eq!(g, &want, "callee {i}");
                }
            }
            "first" => assert_eq!(got, [all, vec![], vec![]]),
            "last" => assert_eq!(got, [vec![], vec![], all]),
            _ => {
                assert!(got.iter().all(|g| !g.is_empty()), "{got:?}");
                assert_eq!(got.iter().map(Vec::len).sum::<usize>(), 30);
            }
        }
        results(&mut caller, 30).await;
    }
}

#[tokio::test]
async fn shared_registration_outlives_callees_until_the_last() {
    let router = TestRouter::start().await;
    let mut caller = join(&router, Serializer::Json).await;
    let mut a = join(&router, Serializer::Json).await;
    let mut b = join(&router, Serializer::MsgPack).await;
    let first = || opts([("invoke", "first".into())]);
    let reg = register(&mut a, "com.standby", first()).await;
    assert_eq!(register(&mut b, "com.standby", first()).await, reg);
    // A call in flight to the leaving callee fails at once; the next goes to the standby.
    let r = call(&mut caller, "com.standby", Dict::new(), n(1)).await;
    invocation(&mut a).await;
    drop(a);
    call_error(&mut caller, r, uris::CANCELED).await;
    numbered_calls(&mut caller, "com.standby", 2).await;
    assert_eq!(drain(&mut b).await, [0, 1]);
    results(&mut caller, 2).await;
    // The last callee leaving deletes the registration: any policy may register it anew.
    let u = b.request();
    b.send(
        &Unregister {
            request: u,
            registration: reg,
            options: None,
        }
        .into(),
    )
    .await;
    assert!(matches!(b.recv().await, Message::Unregistered(x) if x.request == u.get()));
    let r = call(&mut caller, "com.standby", Dict::new(), n(1)).await;
    call_error(&mut caller, r, uris::NO_SUCH_PROCEDURE).await;
    assert_ne!(register(&mut b, "com.standby", Dict::new()).await, reg);
}

#[tokio::test]
async fn shared_registration_conflicts_are_refused() {
    let router = TestRouter::start().await;
    let mut a = join(&router, Serializer::Json).await;
    let mut b = join(&router, Serializer::MsgPack).await;
    let inv = |p: &str| opts([("invoke", p.into())]);
    register(&mut a, "com.single", Dict::new()).await;
    register_fails(
        &mut b,
        "com.single",
        Dict::new(),
        uris::PROCEDURE_ALREADY_EXISTS,
    )
    .await;
    let exists = uris::PROCEDURE_ALREADY_EXISTS;
    register_fails(&mut b, "com.single", inv("roundrobin"), exists).await;
    register(&mut a, "com.rr", inv("roundrobin")).await;
    register_fails(&mut b, "com.rr", inv("random"), exists).await;
    register_fails(&mut b, "com.rr", inv("single"), exists).await;
    register_fails(&mut b, "com.rr", Dict::new(), exists).await;
    register_fails(&mut a, "com.rr", inv("roundrobin"), exists).await;
    register(&mut b, "com.rr", inv("roundrobin")).await;
}

#[tokio::test]
async fn force_reregister_revokes_announcing_callees_only() {
    let router = TestRouter::start().await;
    let revocation = &[("callee", "registration_revocation")];
    let mut a = join_with(&router, Serializer::Json, revocation).await;
    let mut b = join(&router, Serializer::MsgPack).await;
    let mut c = join(&router, Serializer::Json).await;
    let mut caller = join(&router, Serializer::MsgPack).await;
    let rr = || opts([("invoke", "roundrobin".into())]);
    let old = register(&mut a, "com.rev", rr()).await;
    register(&mut b, "com.rev", rr()).await;
    let force = opts([("force_reregister", true.into())]);
    let new = register(&mut c, "com.rev", force.clone()).await;
    assert_ne!(new, old);
    match a.recv().await {
        Message::Unregistered(u) => {
            assert_eq!(u.request, 0);
            let d = u.details.expect("revocation details");
            assert_eq!(d["registration"], Value::from(old.get()));
            assert_eq!(d["reason"], Value::from("wamp.error.unregistered"));
        }
        other => panic!("expected UNREGISTERED, got {other:?}"),
    }
    sync(&mut b).await; // B did not announce revocation: it is told nothing.
    call(&mut caller, "com.rev", Dict::new(), n(3)).await;
    assert_eq!(invocation(&mut c).await.registration, new);
    let u = a.request();
    a.send(
        &Unregister {
            request: u,
            registration: old,
            options: None,
        }
        .into(),
    )
    .await;
    match a.recv().await {
        Message::Error(e) => assert_eq!(e.error.as_str(), uris::NO_SUCH_REGISTRATION),
        other => panic!("expected ERROR, got {other:?}"),
    }
    // The evicted callees leaving later must not disturb the new registration.
    drop((a, b));
    let newer = register(&mut caller, "com.rev", force).await;
    sync(&mut c).await;
    call(&mut caller, "com.rev", Dict::new(), n(4)).await;
    assert_eq!(invocation(&mut caller).await.registration, newer);
}

#[tokio::test]
async fn caller_identification_on_request_or_by_registration() {
    let router = TestRouter::start().await;
    let mut callee = join(&router, Serializer::Json).await;
    let mut caller = join(&router, Serializer::MsgPack).await;
    register(&mut callee, "com.anon", Dict::new()).await;
    let disclose = opts([("disclose_caller", true.into())]);
    register(&mut callee, "com.disclosed", disclose).await;
    let me = caller.session.unwrap().get();
    for (procedure, disclose_me, disclosed) in [
        ("com.anon", false, false),
        ("com.anon", true, true),
        ("com.disclosed", false, true),
    ] {
        let o = opts([("disclose_me", disclose_me.into())]);
        call(&mut caller, procedure, o, Payload::default()).await;
        let d = invocation(&mut callee).await.details;
        if disclosed {
            assert_eq!(d["caller"], Value::from(me));
            assert_eq!(d["caller_authrole"], Value::from("anonymous"));
            let authid = d["caller_authid"].as_str().unwrap();
            assert!(authid.contains(&me.to_string()), "{authid}");
        } else {
            assert!(
                !d.contains_key("caller") && !d.contains_key("caller_authid"),
                "{d:?}"
            );
        }
    }
}

#[tokio::test]
async fn ten_thousand_concurrent_calls_over_a_shared_registration() {
    const CALLEES: u64 = 4;
    const CALLERS: u64 = 20;
    const PER_CALLER: u64 = 500;
    const PER_CALLEE: u64 = CALLERS * PER_CALLER / CALLEES;
    let router = TestRouter::start().await;
    let mut callees = Vec::new();
    for k in 0..CALLEES {
        let ser = if k % 2 == 0 {
            Serializer::MsgPack
        } else {
            Serializer::Json
        };
        let mut c = join(&router, ser).await;
        register(
            &mut c,
            "com.double",
            opts([("invoke", "roundrobin".into())]),
        )
        .await;
        callees.push(tokio::spawn(async move {
            for _ in 0..PER_CALLEE {
                let inv = invocation(&mut c).await;
                let x = arg0(&inv.payload);
                let answer = Payload::args(vec![(x * 2).into(), k.into()]);
                yield_(&mut c, inv.request, Dict::new(), answer).await;
            }
            c
        }));
    }
    let mut callers = Vec::new();
    for k in 0..CALLERS {
        let url = router.url().to_owned();
        callers.push(tokio::spawn(async move {
            let ser = if k % 2 == 0 {
                Serializer::Json
            } else {
                Serializer::MsgPack
            };
            let (mut c, _) = RawPeer::join(&url, "realm1", ser).await;
            let mut expected = HashMap::new();
            for i in 0..PER_CALLER {
                let x = k * 1_000_000 + i;
                expected.insert(call(&mut c, "com.double", Dict::new(), n(x)).await, x * 2);
            }
            let mut per_callee = [0u64; CALLEES as usize];
            for _ in 0..PER_CALLER {
                let res = result(&mut c).await;
                let want = expected.remove(&res.request).expect("one result per call");
                let args = res.payload.args.expect("args");
                assert_eq!(args[0], Value::from(want));
                per_callee[args[1].as_u64().unwrap() as usize] += 1;
            }
            assert!(expected.is_empty());
            per_callee
        }));
    }
    let mut per_callee = [0u64; CALLEES as usize];
    for c in callers {
        for (t, n) in per_callee.iter_mut().zip(c.await.unwrap()) {
            *t += n;
        }
    }
    assert_eq!(
        per_callee, [PER_CALLEE; CALLEES as usize],
        "round robin is exact"
    );
    for c in callees {
        c.await.unwrap();
    }
}
