//! The `wamp-client` RPC API against the real router over real sockets: calls, errors,
//! registrations, and a callee leaving with calls pending (Basic Profile, from a service's
//! point of view). Helpers are `client.rs`'s.

use std::future::pending;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::timeout;
use wamp_client::{
    uris, CallError, CallResult, CloseKind, Dict, Invocation, RegisterError, Serializer, Value,
};
use wamp_tests::TestRouter;

use crate::client::{
    app_uri, connect, leave, pending_call, register_echo, register_hanging, within, AT_ONCE,
};

// --- RPC --------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Options {
    discount_pct: u8,
    gift: bool,
    note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Quote {
    item: String,
    qty: u32,
    total: u64,
    delta: i64,
    gift: bool,
    note: Option<String>,
    lines: Vec<(String, f64)>,
}

/// A price beyond 2^53, which a float-based JSON path would round.
const BIG: u64 = 9_007_199_254_740_993;

fn quote(item: String, qty: u32, o: &Options) -> Quote {
    Quote {
        total: BIG - u64::from(o.discount_pct),
        delta: -i64::from(qty) * 1_000_000_000_000,
        lines: vec![(item.clone(), 0.5), ("tax".into(), -1.25)],
        item,
        qty,
        gift: o.gift,
        note: o.note.clone(),
    }
}

#[tokio::test]
async fn typed_call_and_register_via_serde() {
    let router = TestRouter::start().await;
    for (caller_ser, callee_ser) in [
        (Serializer::Json, Serializer::MsgPack),
        (Serializer::MsgPack, Serializer::Json),
        (Serializer::Json, Serializer::Json),
    ] {
        let callee = connect(router.url(), callee_ser).await;
        let caller = connect(router.url(), caller_ser).await;
        let invoked = Arc::new(AtomicU64::new(0));
        let n = invoked.clone();
        let _quote = within(
            "register",
            callee.register("com.example.shop.quote", move |inv: Invocation| {
                n.fetch_add(1, Ordering::SeqCst);
                async move {
                    // `?` answers wamp.error.invalid_argument on a bad payload.
                    let (item, qty): (String, u32) = inv.decode_args()?;
                    let o: Options = inv.decode_kwargs()?;
                    CallResult::from_ser(&quote(item, qty, &o))
                }
            }),
        )
        .await
        .expect("register quote");
        // Keyword results only: `decode` reads them as a struct.
        let _kw = within(
            "register",
            callee.register("com.example.shop.options", |inv: Invocation| async move {
                let o: Options = inv.decode()?;
                let mut out = Dict::new();
                out.insert("discount_pct".into(), Value::from(o.discount_pct * 2));
                out.insert("gift".into(), Value::from(!o.gift));
                out.insert("note".into(), Value::Null);
                Ok::<_, CallError>(CallResult::new().with_kwargs(out))
            }),
        )
        .await
        .expect("register options");
        let _unit = within(
            "register",
            callee.register("com.example.shop.nothing", |_inv: Invocation| async move {
                Ok::<_, CallError>(())
            }),
        )
        .await
        .expect("register nothing");

        let o = Options {
            discount_pct: 7,
            gift: true,
            note: Some("für dich ✓".into()),
        };
        let got: Quote = within(
            "call",
            caller
                .call("com.example.shop.quote")
                .args_ser(&("apple", 3u32))
                .kwargs_ser(&o)
                .result::<Quote>(),
        )
        .await
        .unwrap_or_else(|e| panic!("{caller_ser:?} -> {callee_ser:?}: {e:?}"));
        assert_eq!(
            got,
            quote("apple".into(), 3, &o),
            "{caller_ser:?} -> {callee_ser:?}"
        );

        // The raw result is one positional value: the struct as a dict.
        let raw = within(
            "call",
            caller
                .call("com.example.shop.quote")
                .args_ser(&("pear", 1u32))
                .kwargs_ser(&o),
        )
        .await
        .expect("raw quote");
        assert_eq!(raw.args.len(), 1, "{raw:?}");
        assert!(raw.kwargs.is_empty(), "{raw:?}");
        assert_eq!(
            raw.args[0].as_dict().unwrap()["total"],
            Value::UInt(BIG - 7)
        );
        assert_eq!(raw.decode::<Quote>().unwrap(), quote("pear".into(), 1, &o));

        let back: Options = within(
            "call",
            caller
                .call("com.example.shop.options")
                .kwargs_ser(&o)
                .result::<Options>(),
        )
        .await
        .expect("options");
        assert_eq!(
            back,
            Options {
                discount_pct: 14,
                gift: false,
                note: None
            }
        );
        within(
            "call",
            caller.call("com.example.shop.nothing").result::<()>(),
        )
        .await
        .expect("unit result");
        let none: Option<u32> = within(
            "call",
            caller
                .call("com.example.shop.nothing")
                .result::<Option<u32>>(),
        )
        .await
        .expect("empty result as None");
        assert_eq!(none, None);

        // The callee's decode error reaches the caller as invalid_argument.
        let before = invoked.load(Ordering::SeqCst);
        let e = within(
            "call",
            caller
                .call("com.example.shop.quote")
                .args_ser(&("apple", "three"))
                .kwargs_ser(&o),
        )
        .await
        .expect_err("wrong argument type");
        assert_eq!(app_uri(&e), uris::INVALID_ARGUMENT, "{e:?}");
        assert_eq!(invoked.load(Ordering::SeqCst), before + 1);

        // Arguments that do not serialize to a list fail locally: nothing is sent.
        let e = within("call", caller.call("com.example.shop.quote").args_ser(&5))
            .await
            .expect_err("args_ser of a number");
        assert!(matches!(e, CallError::InvalidPayload(_)), "{e:?}");
        let e = within(
            "call",
            caller.call("com.example.shop.quote").kwargs_ser(&(1, 2)),
        )
        .await
        .expect_err("kwargs_ser of a tuple");
        assert!(matches!(e, CallError::InvalidPayload(_)), "{e:?}");
        // A result of the wrong type fails at the caller, after a successful call.
        let e = within(
            "call",
            caller
                .call("com.example.shop.quote")
                .args_ser(&("apple", 3u32))
                .kwargs_ser(&o)
                .result::<String>(),
        )
        .await
        .expect_err("a Quote is not a String");
        assert!(matches!(e, CallError::InvalidPayload(_)), "{e:?}");
        assert_eq!(invoked.load(Ordering::SeqCst), before + 2);

        leave(caller).await;
        leave(callee).await;
    }
}

#[tokio::test]
async fn application_errors_carry_uri_args_and_kwargs() {
    let router = TestRouter::start().await;
    let callee = connect(router.url(), Serializer::MsgPack).await;
    let _fail = within(
        "register",
        callee.register("com.example.fail", |inv: Invocation| async move {
            Err::<(), _>(
                CallError::new("com.example.error.failed")
                    .with_args([Value::from("boom"), Value::from(42)])
                    .with_kwargs([
                        ("detail", Value::from("x")),
                        ("got", Value::List(inv.args)),
                        ("bin", Value::Bytes(vec![0, 1, 255])),
                    ]),
            )
        }),
    )
    .await
    .expect("register");
    let _bare = within(
        "register",
        callee.register("com.example.fail.bare", |_inv: Invocation| async move {
            Err::<(), _>(CallError::new("com.example.error.bare"))
        }),
    )
    .await
    .expect("register");
    let _panics = within(
        "register",
        callee.register("com.example.panics", |_inv: Invocation| async move {
            if true {
                panic!("handler bug");
            }
            Ok::<_, CallError>(())
        }),
    )
    .await
    .expect("register");

    for ser in [Serializer::Json, Serializer::MsgPack] {
        let caller = connect(router.url(), ser).await;
        let e = within("call", caller.call("com.example.fail").args([-1, 2]))
            .await
            .expect_err("fails");
        let want = CallError::Application {
            uri: "com.example.error.failed".into(),
            args: vec![Value::from("boom"), Value::UInt(42)],
            kwargs: Dict::from([
                ("detail".into(), Value::from("x")),
                (
                    "got".into(),
                    Value::List(vec![Value::Int(-1), Value::UInt(2)]),
                ),
                ("bin".into(), Value::Bytes(vec![0, 1, 255])),
            ]),
        };
        assert_eq!(e, want, "over {ser:?}");
        assert_eq!(e.uri(), Some("com.example.error.failed"));
        assert_eq!(e.to_string(), "com.example.error.failed: boom");

        let e = within("call", caller.call("com.example.fail.bare"))
            .await
            .expect_err("fails");
        assert_eq!(e, CallError::new("com.example.error.bare"), "over {ser:?}");

        let e = within("call", caller.call("com.example.panics"))
            .await
            .expect_err("a panicking handler answers an error");
        assert_eq!(app_uri(&e), uris::RUNTIME_ERROR, "{e:?}");
        // The callee survives its handler's panic.
        let e = within("call", caller.call("com.example.fail.bare"))
            .await
            .expect_err("fails");
        assert_eq!(app_uri(&e), "com.example.error.bare");
        leave(caller).await;
    }
    assert!(!callee.is_closed());
    leave(callee).await;
}

#[tokio::test]
async fn call_to_missing_procedure_is_no_such_procedure() {
    let router = TestRouter::start().await;
    for ser in [Serializer::Json, Serializer::MsgPack] {
        let c = connect(router.url(), ser).await;
        let e = within("call", c.call("com.example.nobody.home").arg(1))
            .await
            .expect_err("nobody registered it");
        assert_eq!(app_uri(&e), uris::NO_SUCH_PROCEDURE, "{e:?}");
        // The session is still fine.
        let _echo = register_echo(&c, "com.example.self").await;
        let r = within("call", c.call("com.example.self").arg(2))
            .await
            .expect("own procedure");
        assert_eq!(r.args, vec![Value::UInt(2)]);
        leave(c).await;
    }
}

#[tokio::test]
async fn registering_twice_is_procedure_already_exists() {
    let router = TestRouter::start().await;
    let a = connect(router.url(), Serializer::Json).await;
    let b = connect(router.url(), Serializer::MsgPack).await;
    let reg = within(
        "register",
        a.register("com.example.owned", |_inv: Invocation| async move {
            Ok::<_, CallError>(Value::from("a"))
        }),
    )
    .await
    .expect("first registration");
    assert_eq!(reg.procedure(), "com.example.owned");

    for (who, c) in [("another session", &b), ("the same session", &a)] {
        let e = within(
            "register",
            c.register("com.example.owned", |_inv: Invocation| async move {
                Ok::<_, CallError>(Value::from("b"))
            }),
        )
        .await
        .expect_err("already registered");
        match e {
            RegisterError::Rejected(r) => {
                assert_eq!(r.uri, uris::PROCEDURE_ALREADY_EXISTS, "{who}: {r:?}")
            }
            other => panic!("{who}: expected Rejected, got {other:?}"),
        }
    }
    // The first registration still answers.
    let r = within("call", b.call("com.example.owned"))
        .await
        .expect("call");
    assert_eq!(r.args, vec![Value::from("a")]);
    leave(a).await;
    leave(b).await;
}

#[tokio::test]
async fn unregister_then_call_is_no_such_procedure() {
    let router = TestRouter::start().await;
    let callee = connect(router.url(), Serializer::Json).await;
    let caller = connect(router.url(), Serializer::MsgPack).await;
    let reg = register_echo(&callee, "com.example.temp").await;
    let r = within("call", caller.call("com.example.temp").arg(1))
        .await
        .expect("registered");
    assert_eq!(r.args, vec![Value::UInt(1)]);

    within("unregister", reg.unregister())
        .await
        .expect("unregister");
    let e = within("call", caller.call("com.example.temp").arg(1))
        .await
        .expect_err("unregistered");
    assert_eq!(app_uri(&e), uris::NO_SUCH_PROCEDURE, "{e:?}");

    // The procedure is free again: another session can register it.
    let again = register_echo(&caller, "com.example.temp").await;
    let r = within("call", callee.call("com.example.temp").arg(3))
        .await
        .expect("registered again");
    assert_eq!(r.args, vec![Value::UInt(3)]);
    drop(again);
    leave(caller).await;
    leave(callee).await;
}

// --- a callee leaving with a call pending ------------------------------------------------

/// The pending call fails at once with `wamp.error.canceled`.
async fn assert_canceled(call: tokio::task::JoinHandle<Result<CallResult, CallError>>) {
    let r = timeout(AT_ONCE, call)
        .await
        .unwrap_or_else(|_| panic!("the pending call was not failed within {AT_ONCE:?}"))
        .expect("call task");
    let e = r.expect_err("the callee left without answering");
    assert_eq!(app_uri(&e), uris::CANCELED, "{e:?}");
}

#[tokio::test]
async fn callee_leave_cancels_pending_call() {
    let router = TestRouter::start().await;
    let callee = connect(router.url(), Serializer::Json).await;
    let caller = connect(router.url(), Serializer::MsgPack).await;
    let (_reg, mut invoked) = register_hanging(&callee, "com.example.hang").await;
    let call = pending_call(&caller, "com.example.hang", &mut invoked).await;

    let r = within("leave", callee.leave()).await.expect("leave");
    assert_eq!(r.kind, CloseKind::Left);
    assert_canceled(call).await;
    // The procedure went with its callee.
    let e = within("call", caller.call("com.example.hang"))
        .await
        .expect_err("gone");
    assert_eq!(app_uri(&e), uris::NO_SUCH_PROCEDURE, "{e:?}");
    leave(caller).await;
}

#[tokio::test]
async fn callee_dropped_cancels_pending_call() {
    let router = TestRouter::start().await;
    let callee = connect(router.url(), Serializer::MsgPack).await;
    let caller = connect(router.url(), Serializer::Json).await;
    let (reg, mut invoked) = register_hanging(&callee, "com.example.hang").await;
    let call = pending_call(&caller, "com.example.hang", &mut invoked).await;

    // Dropping every handle ends the session (GOODBYE from the connection task).
    drop(reg);
    drop(callee);
    assert_canceled(call).await;
    let e = within("call", caller.call("com.example.hang"))
        .await
        .expect_err("gone");
    assert_eq!(app_uri(&e), uris::NO_SUCH_PROCEDURE, "{e:?}");
    leave(caller).await;
}

#[tokio::test]
async fn callee_aborted_cancels_pending_call() {
    let router = TestRouter::start().await;
    let caller = connect(router.url(), Serializer::Json).await;

    // The callee runs on its own runtime, which is then dropped mid-session: its socket
    // closes without GOODBYE, as when a service process dies.
    let url = router.url().to_owned();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (inv_tx, mut invoked) = mpsc::unbounded_channel();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let kept = rt.block_on(async move {
            let callee = connect(&url, Serializer::MsgPack).await;
            let reg = within(
                "register",
                callee.register("com.example.hang", move |inv: Invocation| {
                    let _ = inv_tx.send(inv);
                    async move {
                        pending::<()>().await;
                        Ok::<_, CallError>(())
                    }
                }),
            )
            .await
            .expect("register");
            let _ = ready_tx.send(());
            let _ = stop_rx.await;
            (callee, reg)
        });
        // Every task of the callee (its connection task included) dies here, mid-session.
        drop(rt);
        drop(kept);
    });
    within("callee ready", ready_rx)
        .await
        .expect("callee thread registered");
    let call = pending_call(&caller, "com.example.hang", &mut invoked).await;

    stop_tx.send(()).expect("callee thread waits");
    assert_canceled(call).await;
    thread.join().expect("callee thread");
    let e = within("call", caller.call("com.example.hang"))
        .await
        .expect_err("gone");
    assert_eq!(app_uri(&e), uris::NO_SUCH_PROCEDURE, "{e:?}");
    leave(caller).await;
}

#[tokio::test]
async fn caller_leave_fails_its_pending_calls() {
    let router = TestRouter::start().await;
    let callee = connect(router.url(), Serializer::MsgPack).await;
    let caller = connect(router.url(), Serializer::Json).await;
    let (_reg, mut invoked) = register_hanging(&callee, "com.example.hang").await;
    let call = pending_call(&caller, "com.example.hang", &mut invoked).await;

    let r = within("leave", caller.leave()).await.expect("leave");
    assert_eq!(r.kind, CloseKind::Left);
    let r = timeout(AT_ONCE, call)
        .await
        .expect("the pending call was failed at once")
        .expect("call task");
    assert_eq!(r, Err(CallError::ConnectionClosed));
    let e = within("call", caller.call("com.example.hang"))
        .await
        .expect_err("closed");
    assert_eq!(e, CallError::ConnectionClosed);

    // The callee is unaffected and still serves others.
    let other = connect(router.url(), Serializer::MsgPack).await;
    let call = pending_call(&other, "com.example.hang", &mut invoked).await;
    assert!(!callee.is_closed());
    leave(other).await;
    let r = within("call task", call).await.expect("call task");
    assert_eq!(r, Err(CallError::ConnectionClosed));
    leave(callee).await;
}

#[tokio::test]
async fn leave_concurrent_and_repeated() {
    let router = TestRouter::start().await;
    let c = connect(router.url(), Serializer::Json).await;
    let (a, b) = tokio::join!(c.leave(), c.leave());
    for r in [a, b] {
        let r = r.expect("concurrent leave succeeds");
        assert_eq!(r.kind, CloseKind::Left, "{r:?}");
        assert_eq!(r.reason, uris::CLOSE_GOODBYE_AND_OUT, "{r:?}");
    }
    let again = within("leave", c.leave())
        .await
        .expect("repeated leave succeeds");
    assert_eq!(again.kind, CloseKind::Left);
    let closed = within("closed", c.closed()).await;
    assert_eq!(closed, again);
    assert_eq!(c.close_reason(), Some(again));
}
