//! `wamp publish` and `wamp subscribe`.

use futures_util::StreamExt;
use serde_json::json;
use tokio::time::timeout;
use wamp_client::{Client, Dict, Value};
use wamp_tests::WAIT;

use crate::harness::{run, wamp_at, Router, Running};

/// `wamp subscribe --count 2` prints the two events our client publishes, then leaves.
#[tokio::test]
async fn subscribe_count_prints_events_and_exits() {
    let r = Router::start().await;
    let publisher = Client::connect(r.ws(), "realm1").await.expect("join");
    for url in [r.ws(), r.rs()] {
        let mut sub = Running::spawn(wamp_at(url, &["subscribe", "com.news", "--count", "2"]));
        sub.stderr_line("subscribed to com.news").await;
        publisher
            .publish("com.news")
            .args([Value::from("first"), Value::Bytes(vec![1, 2])])
            .kwarg("n", 1)
            .acknowledge()
            .await
            .expect("published");
        publisher
            .publish("com.news")
            .acknowledge()
            .await
            .expect("published");
        let done = sub.finish().await.expect(0);
        let lines = done.json();
        assert_eq!(lines.len(), 2, "{done:#?}");
        assert_eq!(lines[0]["args"], json!(["first", {"$bytes": "0102"}]));
        assert_eq!(lines[0]["kwargs"], json!({"n": 1}));
        assert_eq!(lines[0]["details"]["topic"], "com.news");
        assert_eq!(lines[1]["args"], json!([]));
        assert_eq!(lines[1]["kwargs"], json!({}));
    }
    publisher.leave().await.expect("leave");
}

/// A prefix subscription shows each event's concrete topic; SIGINT ends it with exit 0, or
/// with 5 when `--count` events had not all come.
#[tokio::test]
async fn subscribe_pattern_until_interrupted() {
    let r = Router::start().await;
    let publisher = Client::connect(r.rs(), "realm1").await.expect("join");
    let mut sub = Running::spawn(wamp_at(
        r.ws(),
        &["subscribe", "com.app.", "--match", "prefix"],
    ));
    sub.stderr_line("subscribed to com.app.").await;
    for topic in ["com.app.user.created", "com.app.ping"] {
        publisher
            .publish(topic)
            .arg(topic)
            .acknowledge()
            .await
            .expect("published");
        let line = sub.json_line().await;
        assert_eq!(line["details"]["topic"], topic, "{line}");
        assert_eq!(line["args"], json!([topic]));
    }
    sub.interrupt();
    let done = sub.finish().await.expect(0);
    assert_eq!(done.stdout, "");

    let mut sub = Running::spawn(wamp_at(
        r.rs(),
        &[
            "subscribe",
            "com..ping",
            "--match",
            "wildcard",
            "--count",
            "3",
        ],
    ));
    sub.stderr_line("subscribed to com..ping").await;
    publisher
        .publish("com.app.ping")
        .acknowledge()
        .await
        .expect("published");
    assert_eq!(sub.json_line().await["details"]["topic"], "com.app.ping");
    sub.interrupt();
    let done = sub.finish().await.expect(5);
    assert!(done.stderr.contains("after 1 of 3 events"), "{done:#?}");
}

/// `wamp publish` reaches our subscriber; `--acknowledge` prints the publication ID.
#[tokio::test]
async fn publish_reaches_subscribers() {
    let r = Router::start().await;
    let client = Client::connect(r.ws(), "realm1").await.expect("join");
    let mut events = client.subscribe("com.t").await.expect("subscribe");
    for url in r.urls() {
        let out = run(wamp_at(
            url,
            &["publish", "com.t", "hi", "2", "--kw", "who=cli"],
        ))
        .await
        .expect(0);
        assert_eq!(out.stdout, "");
        let ev = timeout(WAIT, events.next())
            .await
            .expect("in time")
            .expect("event");
        assert_eq!(ev.args, vec![Value::from("hi"), Value::UInt(2)]);
        assert_eq!(ev.kwargs, Dict::from([("who".into(), Value::from("cli"))]));

        let out = run(wamp_at(url, &["publish", "com.t", "--acknowledge"]))
            .await
            .expect(0);
        let id = out.line()["publication"].as_u64();
        assert!(id.is_some_and(|id| id > 0), "{out:#?}");
        let ev = timeout(WAIT, events.next())
            .await
            .expect("in time")
            .expect("event");
        assert_eq!(Some(ev.publication.get()), id);
    }
    // A refused publication (invalid topic) is a WAMP error when acknowledged.
    let out = run(wamp_at(r.ws(), &["publish", "com..bad", "--acknowledge"]))
        .await
        .expect(4);
    assert!(out.stderr.starts_with("wamp.error.invalid_uri"), "{out:#?}");
    client.leave().await.expect("leave");
}

/// `wamp subscribe ... | head -1`: the reader going away ends the subscriber quietly.
#[tokio::test]
async fn subscriber_stops_when_its_reader_goes() {
    let r = Router::start().await;
    let publisher = Client::connect(r.ws(), "realm1").await.expect("join");
    let mut sh = tokio::process::Command::new("sh");
    sh.arg("-c")
        .arg(format!(
            "{{ '{}' --url '{}' subscribe com.pipe; echo \"wamp exited $?\" >&2; }} | head -n 1",
            crate::harness::WAMP,
            r.ws()
        ))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut pipeline = Running::spawn(sh);
    pipeline.stderr_line("subscribed to com.pipe").await;
    // Events until wamp notices that head has gone (at its first write after that).
    let feeder = tokio::spawn(async move {
        for i in 0u64.. {
            if publisher
                .publish("com.pipe")
                .arg(i)
                .acknowledge()
                .await
                .is_err()
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    });
    let line = pipeline.stderr_line("wamp exited").await;
    feeder.abort();
    assert_eq!(line, "wamp exited 0");
    let done = pipeline.finish().await.expect(0);
    assert_eq!(
        done.json(),
        [json!({"args": [0], "kwargs": {}, "details": {"topic": "com.pipe"}})]
    );
}
