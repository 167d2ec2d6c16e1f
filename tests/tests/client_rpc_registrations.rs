//! Registrations through the `wamp-client` API against the real router, over real sockets:
//! pattern-based registrations and their precedence, shared registrations with each invoke
//! policy, and revocation by `force_reregister`. Helpers are `client_rpc_advanced.rs`'s.

use wamp_client::{
    uris, CallError, CallResult, Client, Invocation, InvokePolicy, RegisterError, Registration,
    Serializer, Value,
};
use wamp_tests::TestRouter;

use crate::client_rpc_advanced::{app_uri, connect, leave, within};

// --- pattern-based registrations ------------------------------------------------------------

/// Registers a handler answering `[label, procedure-detail-or-null]`.
async fn register_labelled(
    callee: &Client,
    procedure: &str,
    policy: wamp_client::MatchPolicy,
    label: &'static str,
) -> Registration {
    within(
        "register",
        callee
            .register(procedure, move |inv: Invocation| async move {
                let called = inv.procedure().map_or(Value::Null, Value::from);
                Ok::<_, CallError>(CallResult::new().with_args([Value::from(label), called]))
            })
            .match_policy(policy),
    )
    .await
    .unwrap_or_else(|e| panic!("register {procedure}: {e:?}"))
}

#[tokio::test]
async fn pattern_registrations_follow_precedence_and_tell_the_procedure() {
    use wamp_client::MatchPolicy::{Exact, Prefix, Wildcard};
    let router = TestRouter::start().await;
    let callee = connect(router.url(), Serializer::MsgPack).await;
    let other = connect(router.url(), Serializer::Json).await;
    let caller = connect(router.url(), Serializer::Json).await;
    let _regs = [
        register_labelled(&callee, "com.app.user.get", Exact, "exact").await,
        register_labelled(&callee, "com.app.", Prefix, "short prefix").await,
        register_labelled(&other, "com.app.user.", Prefix, "long prefix").await,
        register_labelled(&callee, "com.app..get", Wildcard, "app wildcard").await,
        register_labelled(&callee, "a1.b2..d4.e5", Wildcard, "wildcard 3").await,
        register_labelled(&other, "a1.b2.c33..e5", Wildcard, "wildcard 4").await,
        register_labelled(&callee, "a1.b2..d4.e5..g7", Wildcard, "first later").await,
        register_labelled(&other, "a1.b2..d4..f6.g7", Wildcard, "second later").await,
    ];
    // The builder shortcuts are the same registrations.
    let _prefix = within(
        "register",
        callee
            .register("com.short.", |_inv: Invocation| async move {
                Ok::<_, CallError>(Value::from("shortcut prefix"))
            })
            .prefix(),
    )
    .await
    .expect("prefix()");
    let _wild = within(
        "register",
        callee
            .register("com.wild..x", |_inv: Invocation| async move {
                Ok::<_, CallError>(Value::from("shortcut wildcard"))
            })
            .wildcard(),
    )
    .await
    .expect("wildcard()");

    let cases = [
        ("com.app.user.get", "exact", None),
        (
            "com.app.user.delete",
            "long prefix",
            Some("com.app.user.delete"),
        ),
        (
            "com.app.user.x.get",
            "long prefix",
            Some("com.app.user.x.get"),
        ),
        ("com.app.item.get", "short prefix", Some("com.app.item.get")),
        ("com.app.userx", "short prefix", Some("com.app.userx")),
        ("a1.b2.c33.d4.e5", "wildcard 4", Some("a1.b2.c33.d4.e5")),
        ("a1.b2.c9.d4.e5", "wildcard 3", Some("a1.b2.c9.d4.e5")),
        (
            "a1.b2.c88.d4.e5.f6.g7",
            "first later",
            Some("a1.b2.c88.d4.e5.f6.g7"),
        ),
    ];
    for (uri, label, called) in cases {
        let r = within("call", caller.call(uri))
            .await
            .unwrap_or_else(|e| panic!("{uri}: {e:?}"));
        let want = vec![Value::from(label), called.map_or(Value::Null, Value::from)];
        assert_eq!(r.args, want, "{uri}");
    }
    let r = within("call", caller.call("com.short.y"))
        .await
        .expect("call");
    assert_eq!(r.args, vec![Value::from("shortcut prefix")]);
    let r = within("call", caller.call("com.wild.any.x"))
        .await
        .expect("call");
    assert_eq!(r.args, vec![Value::from("shortcut wildcard")]);
    let e = within("call", caller.call("com.other.get"))
        .await
        .expect_err("no match");
    assert_eq!(app_uri(&e), uris::NO_SUCH_PROCEDURE);
    leave(caller).await;
    leave(other).await;
    leave(callee).await;
}

// --- shared registrations -------------------------------------------------------------------

/// Registers `procedure` on `callee` answering `index`.
async fn register_indexed(
    callee: &Client,
    procedure: &str,
    policy: InvokePolicy,
    index: u64,
) -> Result<Registration, RegisterError> {
    within(
        "register",
        callee
            .register(procedure, move |_inv: Invocation| async move {
                Ok::<_, CallError>(Value::from(index))
            })
            .invoke(policy),
    )
    .await
}

#[tokio::test]
async fn shared_roundrobin_registration_takes_turns_across_three_callees() {
    const ROUNDS: u64 = 10;
    let router = TestRouter::start().await;
    let mut callees = Vec::new();
    let mut regs = Vec::new();
    for i in 0..3u64 {
        let ser = if i % 2 == 0 {
            Serializer::Json
        } else {
            Serializer::MsgPack
        };
        let c = connect(router.url(), ser).await;
        let reg = register_indexed(&c, "com.example.shared", InvokePolicy::RoundRobin, i)
            .await
            .expect("join the shared registration");
        regs.push(reg);
        callees.push(c);
    }
    assert!(
        regs.iter().all(|r| r.id() == regs[0].id()),
        "one registration ID for all callees"
    );
    let caller = connect(router.url(), Serializer::MsgPack).await;
    let mut counts = [0u64; 3];
    let mut order = Vec::new();
    for _ in 0..3 * ROUNDS {
        let i: u64 = within("call", caller.call("com.example.shared").result())
            .await
            .expect("call");
        counts[i as usize] += 1;
        order.push(i);
    }
    assert_eq!(counts, [ROUNDS; 3], "each callee in turn: {order:?}");
    for w in order.windows(2) {
        assert_eq!((w[0] + 1) % 3, w[1], "registration order: {order:?}");
    }

    // A different policy, or none, cannot join.
    for policy in [InvokePolicy::Random, InvokePolicy::Single] {
        match register_indexed(&caller, "com.example.shared", policy, 9).await {
            Err(RegisterError::Rejected(r)) => {
                assert_eq!(r.uri, uris::PROCEDURE_ALREADY_EXISTS, "{policy:?}")
            }
            other => panic!("{policy:?}: expected a rejection, got {other:?}"),
        }
    }
    // A callee that leaves is skipped from then on.
    let gone = callees.remove(1);
    leave(gone).await;
    let mut seen = Vec::new();
    for _ in 0..4 {
        let i: u64 = within("call", caller.call("com.example.shared").result())
            .await
            .expect("call");
        seen.push(i);
    }
    assert!(!seen.contains(&1), "{seen:?}");
    assert!(seen.contains(&0) && seen.contains(&2), "{seen:?}");
    leave(caller).await;
    for c in callees {
        leave(c).await;
    }
}

#[tokio::test]
async fn shared_first_and_last_registrations() {
    let router = TestRouter::start().await;
    let a = connect(router.url(), Serializer::Json).await;
    let b = connect(router.url(), Serializer::MsgPack).await;
    let caller = connect(router.url(), Serializer::Json).await;
    for (proc_, policy, want) in [
        ("com.example.first", InvokePolicy::First, 0),
        ("com.example.last", InvokePolicy::Last, 1),
    ] {
        let _ra = register_indexed(&a, proc_, policy, 0).await.expect("a");
        let _rb = register_indexed(&b, proc_, policy, 1).await.expect("b");
        for _ in 0..3 {
            let i: u64 = within("call", caller.call(proc_).result())
                .await
                .expect("call");
            assert_eq!(i, want, "{policy:?}");
        }
    }
    // Random picks among the callees (which ones is up to chance: just that it works).
    let _ra = register_indexed(&a, "com.example.random", InvokePolicy::Random, 0)
        .await
        .expect("a");
    let _rb = register_indexed(&b, "com.example.random", InvokePolicy::Random, 1)
        .await
        .expect("b");
    for _ in 0..5 {
        let i: u64 = within("call", caller.call("com.example.random").result())
            .await
            .expect("call");
        assert!(i < 2);
    }
    leave(caller).await;
    leave(b).await;
    leave(a).await;
}

// --- registration revocation ----------------------------------------------------------------

#[tokio::test]
async fn force_reregister_revokes_the_old_callee() {
    let router = TestRouter::start().await;
    let old = connect(router.url(), Serializer::Json).await;
    let new = connect(router.url(), Serializer::MsgPack).await;
    let caller = connect(router.url(), Serializer::Json).await;
    let old_reg = register_indexed(&old, "com.example.owned", InvokePolicy::Single, 1)
        .await
        .expect("old registers");
    assert!(!old_reg.is_revoked());

    // Without force, taken; with force, taken over.
    match register_indexed(&new, "com.example.owned", InvokePolicy::Single, 2).await {
        Err(RegisterError::Rejected(r)) => assert_eq!(r.uri, uris::PROCEDURE_ALREADY_EXISTS),
        other => panic!("expected a rejection, got {other:?}"),
    }
    let new_reg = within(
        "register",
        new.register("com.example.owned", |_inv: Invocation| async move {
            Ok::<_, CallError>(Value::from(2))
        })
        .force_reregister(),
    )
    .await
    .expect("force_reregister");

    let reason = within("revocation", old_reg.revoked())
        .await
        .expect("revoked, not closed");
    assert_eq!(reason, "wamp.error.unregistered");
    assert!(old_reg.is_revoked());
    assert_eq!(
        old_reg.revocation().as_deref(),
        Some("wamp.error.unregistered")
    );
    let i: u64 = within("call", caller.call("com.example.owned").result())
        .await
        .expect("call");
    assert_eq!(i, 2, "the new callee serves it");
    assert!(!new_reg.is_revoked());

    // A registration that is never revoked: `revoked()` ends with the session.
    leave(new).await;
    assert_eq!(within("session end", new_reg.revoked()).await, None);
    leave(caller).await;
    leave(old).await;
}
