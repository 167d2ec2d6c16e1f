//! `wamp call`, `wamp register --echo | --exec`, and the error exit codes.

use serde_json::json;
use tokio::net::TcpListener;
use wamp_client::{CallError, Client, Dict, Value};

use crate::callee;
use crate::harness::{run, wamp, wamp_at, Router, Running};

/// JSON and string arguments, keyword arguments and binary values, over WebSocket (each
/// serializer), RawSocket/TCP (each serializer) and RawSocket/Unix.
#[tokio::test]
async fn call_prints_the_result_over_every_transport() {
    let r = Router::start().await;
    let (_callee, _regs) = callee(r.ws()).await;
    let mut targets = Vec::new();
    for url in r.urls() {
        for ser in [None, Some("json"), Some("msgpack")] {
            targets.push((url, ser));
        }
    }
    for (url, ser) in targets {
        let call = |args: &[&str]| {
            let mut cmd = wamp_at(url, &[]);
            if let Some(s) = ser {
                cmd.args(["--serializer", s]);
            }
            cmd.arg("call").args(args);
            run(cmd)
        };
        let at = format!("{url} {ser:?}");

        let out = call(&["com.add", "2", "3"]).await.expect(0);
        assert_eq!(out.stdout, "{\"args\":[5],\"kwargs\":{}}\n", "{at}");
        let out = call(&["com.add", "-1", "--", "-2"]).await.expect(0);
        assert_eq!(out.line(), json!({"args": [-3], "kwargs": {}}), "{at}");

        let out = call(&["com.echo", "hello"]).await.expect(0);
        assert_eq!(out.line(), json!({"args": ["hello"], "kwargs": {}}), "{at}");

        let out = call(&[
            "com.echo",
            "hello world",
            r#"{"a": [1, true, null], "b": 2.5}"#,
            "\"5\"",
            r#"{"$bytes": "00ff"}"#,
            "--kw",
            "name=joe",
            "--kw",
            "n=5",
            "--kw",
            "list=[1,2]",
        ])
        .await
        .expect(0);
        assert_eq!(
            out.line(),
            json!({
                "args": ["hello world", {"a": [1, true, null], "b": 2.5}, "5", {"$bytes": "00ff"}],
                "kwargs": {"name": "joe", "n": 5, "list": [1, 2]},
            }),
            "{at}"
        );
    }
}

/// What the callee receives: the values typed as JSON says, binary as binary.
#[tokio::test]
async fn call_sends_typed_values() {
    let r = Router::start().await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let client = Client::connect(r.rs(), "realm1").await.expect("join");
    let _reg = client
        .register("com.record", move |inv: wamp_client::Invocation| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((inv.args, inv.kwargs));
                Ok::<_, CallError>(())
            }
        })
        .await
        .expect("register");
    let out = run(wamp_at(
        r.ws(),
        &[
            "call",
            "com.record",
            "7",
            "-7",
            "x",
            r#"{"$bytes":"0001"}"#,
            "--kw",
            "f=1.5",
        ],
    ))
    .await
    .expect(0);
    assert_eq!(out.line(), json!({"args": [], "kwargs": {}}));
    let (args, kwargs) = rx.recv().await.expect("invoked");
    assert_eq!(
        args,
        vec![
            Value::UInt(7),
            Value::Int(-7),
            Value::from("x"),
            Value::Bytes(vec![0, 1])
        ]
    );
    assert_eq!(kwargs, Dict::from([("f".into(), Value::Float(1.5))]));
}

#[tokio::test]
async fn wamp_errors_exit_4_with_the_uri_on_stderr() {
    let r = Router::start().await;
    let (_callee, _regs) = callee(r.ws()).await;
    for url in [r.ws(), r.rs()] {
        let out = run(wamp_at(url, &["call", "com.nobody.home", "1"]))
            .await
            .expect(4);
        assert_eq!(out.stdout, "");
        let first = out.stderr.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("wamp.error.no_such_procedure: ") && first.len() > 32,
            "{out:#?}"
        );

        let out = run(wamp_at(url, &["call", "com.fail"])).await.expect(4);
        assert_eq!(out.stderr, crate::FAILED_STDERR);
    }
}

#[tokio::test]
async fn router_down_exits_2() {
    // A port nobody listens on (bound, then released).
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        l.local_addr().expect("addr").port()
    };
    for url in [
        format!("ws://127.0.0.1:{port}/ws"),
        format!("rs://127.0.0.1:{port}"),
        "unix:///nonexistent/wamp-cli.sock".to_owned(),
    ] {
        let out = run(wamp_at(&url, &["call", "com.add", "1"]))
            .await
            .expect(2);
        assert!(
            out.stderr.starts_with("wamp: connection failed"),
            "{out:#?}"
        );
        assert_eq!(out.stdout, "");
    }
    // A router that is there but has no such realm refuses the session: also 2.
    let r = Router::start().await;
    let out = run(wamp_at(r.ws(), &["--realm", "nope", "call", "com.add"]))
        .await
        .expect(2);
    assert!(out.stderr.contains("wamp.error.no_such_realm"), "{out:#?}");
}

#[tokio::test]
async fn usage_errors_exit_1_and_help_exits_0() {
    for args in [
        &["call"][..],
        &["frobnicate"],
        &["call", "p", "--kw", "novalue"],
        &["register", "p"],
        &["register", "p", "--echo", "--exec", "true"],
        &["subscribe", "t", "--count", "0"],
        &["--url", "ftp://x", "call", "p"],
        &["--url", "rs://127.0.0.1", "call", "p"],
        &["--serializer", "xml", "call", "p"],
        &["call", "p", "--timeout", "-1"],
        &["kill", "not-a-number"],
        &["--ticket", "t", "call", "p"],
    ] {
        let out = run(wamp(args)).await;
        assert_eq!(out.code, Some(1), "{args:?}: {out:#?}");
        assert!(
            !out.stderr.is_empty() && out.stdout.is_empty(),
            "{args:?}: {out:#?}"
        );
        assert!(!out.stderr.contains("panicked"), "{out:#?}");
    }
    let out = run(wamp(&["--help"])).await.expect(0);
    for text in ["Exit codes:", "3  authentication refused", "{\"$bytes\""] {
        assert!(out.stdout.contains(text), "{text}: {}", out.stdout);
    }
    for cmd in [
        "call",
        "publish",
        "subscribe",
        "register",
        "sessions",
        "registrations",
        "subscriptions",
        "kill",
    ] {
        assert!(out.stdout.contains(cmd), "{cmd}");
        run(wamp(&[cmd, "--help"])).await.expect(0);
    }
    run(wamp(&["--version"])).await.expect(0);
}

/// `wamp register --echo` serves until SIGINT, then leaves (exit 0) and the procedure is
/// gone.
#[tokio::test]
async fn register_echo_serves_until_interrupted() {
    let r = Router::start().await;
    for url in [r.ws(), r.rs()] {
        let mut server = Running::spawn(wamp_at(url, &["register", "com.cli.echo", "--echo"]));
        let status = server.stderr_line("registered com.cli.echo").await;
        assert!(status.contains("registration"), "{status}");

        let client = Client::connect(r.ws(), "realm1").await.expect("join");
        let res = client
            .call("com.cli.echo")
            .args([Value::from("a"), Value::UInt(1), Value::Bytes(vec![7])])
            .kwarg("k", "v")
            .await
            .expect("echoed");
        assert_eq!(
            res.args,
            vec![Value::from("a"), Value::UInt(1), Value::Bytes(vec![7])]
        );
        assert_eq!(res.kwargs, Dict::from([("k".into(), Value::from("v"))]));
        // And a `wamp call` through the router to the `wamp register`.
        let out = run(wamp_at(url, &["call", "com.cli.echo", "x", "--kw", "n=1"]))
            .await
            .expect(0);
        assert_eq!(out.line(), json!({"args": ["x"], "kwargs": {"n": 1}}));

        server.interrupt();
        let done = server.finish().await.expect(0);
        assert_eq!(done.stdout, "");
        let gone = client.call("com.cli.echo").await.expect_err("unregistered");
        assert_eq!(gone.uri(), Some("wamp.error.no_such_procedure"));
        client.leave().await.expect("leave");
    }
}

/// `wamp register --exec CMD`: the arguments as JSON on stdin, kwargs and procedure in the
/// environment, stdout (JSON, else text) as the result, a failure as runtime_error.
#[tokio::test]
async fn register_exec_runs_a_shell_command_per_call() {
    let r = Router::start().await;
    let script = r#"read -r args
case "$args" in
  '["fail"]') echo "it failed" >&2; exit 3 ;;
  '["text"]') echo "plain text" ;;
  '["quiet"]') ;;
  *) printf '{"got": %s, "kw": %s, "proc": "%s"}\n' "$args" "$WAMP_KWARGS" "$WAMP_PROCEDURE" ;;
esac"#;
    let mut server = Running::spawn(wamp_at(
        r.rs(),
        &[
            "register", "com.cli.", "--match", "prefix", "--exec", script,
        ],
    ));
    server.stderr_line("registered com.cli.").await;
    let client = Client::connect(r.ws(), "realm1").await.expect("join");

    let res = client
        .call("com.cli.sum")
        .args([Value::UInt(1), Value::from("two"), Value::Null])
        .kwarg("k", Value::Int(-1))
        .await
        .expect("result");
    assert_eq!(res.kwargs, Dict::new());
    let got: serde_json::Value = res.decode().expect("one value");
    assert_eq!(
        got,
        json!({"got": [1, "two", null], "kw": {"k": -1}, "proc": "com.cli.sum"})
    );

    let res = client.call("com.cli.x").arg("text").await.expect("text");
    assert_eq!(res.args, vec![Value::from("plain text")]);
    let res = client.call("com.cli.x").arg("quiet").await.expect("empty");
    assert!(res.args.is_empty() && res.kwargs.is_empty(), "{res:?}");

    let err = client
        .call("com.cli.x")
        .arg("fail")
        .await
        .expect_err("fails");
    match err {
        CallError::Application { uri, args, kwargs } => {
            assert_eq!(uri, "wamp.error.runtime_error");
            assert_eq!(args, vec![Value::from("it failed")]);
            assert_eq!(kwargs, Dict::from([("exit_code".into(), Value::UInt(3))]));
        }
        other => panic!("{other:?}"),
    }
    // The same, seen from `wamp call`: exit 4 and the message on stderr.
    let out = run(wamp_at(r.ws(), &["call", "com.cli.x", "fail"]))
        .await
        .expect(4);
    assert!(
        out.stderr.starts_with(
            "wamp.error.runtime_error: it failed\n{\"args\":[],\"kwargs\":{\"exit_code\":3}}"
        ),
        "{out:#?}"
    );

    server.interrupt();
    server.finish().await.expect(0);
    client.leave().await.expect("leave");
}

/// SIGINT while a call waits for its result: exit 5, and the call is canceled.
#[tokio::test]
async fn interrupted_call_exits_5() {
    let r = Router::start().await;
    let client = Client::connect(r.ws(), "realm1").await.expect("join");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let _reg = client
        .register("com.slow", move |inv: wamp_client::Invocation| {
            let tx = tx.clone();
            async move {
                let _ = tx.send("invoked");
                inv.cancelled().await;
                let _ = tx.send("canceled");
                Err::<(), _>(CallError::canceled())
            }
        })
        .await
        .expect("register");
    let caller = Running::spawn(wamp_at(r.rs(), &["call", "com.slow"]));
    assert_eq!(rx.recv().await, Some("invoked"));
    caller.interrupt();
    let done = caller.finish().await.expect(5);
    assert!(done.stderr.contains("interrupted"), "{done:#?}");
    assert_eq!(done.stdout, "");
    assert_eq!(rx.recv().await, Some("canceled"));
}

/// The router shutting down ends `wamp register` and `wamp subscribe`: the session was
/// lost, exit 2 with the router's reason.
#[tokio::test]
async fn router_shutdown_ends_servers_with_2() {
    let r = Router::start().await;
    let mut server = Running::spawn(wamp_at(r.ws(), &["register", "com.srv", "--echo"]));
    server.stderr_line("registered com.srv").await;
    let mut sub = Running::spawn(wamp_at(r.rs(), &["subscribe", "com.srv"]));
    sub.stderr_line("subscribed to com.srv").await;
    r.shutdown().await;
    for running in [server, sub] {
        let done = running.finish().await.expect(2);
        assert!(
            done.stderr.contains("the session ended")
                && done.stderr.contains("wamp.close.system_shutdown"),
            "{done:#?}"
        );
    }
}
