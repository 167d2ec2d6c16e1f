//! Every scenario, briefly, against an in-process wamp-router on a free loopback port.

use std::time::Duration;

use wamp_proto::Serializer;
use wamp_router::{Config, Server};

use crate::conn::Target;
use crate::procfs::Watched;
use crate::pubsub::{FanoutArgs, PubsubArgs, Rate};
use crate::rpc::RpcArgs;
use crate::sessions::SessionsArgs;
use crate::stats::Ctx;

const CONFIG: &str = r#"
[[transport]]
bind = "127.0.0.1:0"
path = "/ws"
serializers = ["json", "msgpack", "cbor"]

[[realm]]
name = "realm1"
"#;

async fn router() -> Server {
    let config = Config::from_toml(CONFIG, "<bench test>").expect("valid config");
    Server::start(config).await.expect("router starts")
}

fn ctx(server: &Server, ser: Serializer) -> Ctx {
    Ctx {
        target: Target::new(&server.url(), "realm1", ser).expect("loopback target"),
        // The router runs in this process: its CPU time is this process's.
        watched: Watched::new(vec![std::process::id()]),
        label: Some("test".into()),
        tag: None,
        warmup: Duration::from_millis(100),
        connect_timeout: Duration::from_secs(10),
        threads: 2,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_every_serializer() {
    let server = router().await;
    for ser in Serializer::ALL {
        let args = RpcArgs {
            callers: 2,
            in_flight: 8,
            callees: 2,
            duration: 0.3,
            payload: 50,
        };
        crate::rpc::run(&ctx(&server, ser), &args)
            .await
            .expect("rpc runs");
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_fanout_and_sessions() {
    let server = router().await;
    let c = ctx(&server, Serializer::Json);
    let fixed = PubsubArgs {
        publishers: 2,
        subscribers: 3,
        payload: 10,
        rate: Rate::PerSec(500.0),
        window: 8,
        duration: 0.3,
        concurrency: 4,
    };
    crate::pubsub::run(&c, &fixed, "pubsub")
        .await
        .expect("pubsub runs");
    let fanout = FanoutArgs {
        subscribers: 20,
        payload: 10,
        window: 4,
        duration: 0.3,
        concurrency: 8,
    };
    crate::pubsub::run(
        &ctx(&server, Serializer::MsgPack),
        &fanout.to_pubsub(),
        "fanout",
    )
    .await
    .expect("fanout runs");
    let sessions = SessionsArgs {
        count: 50,
        concurrency: 8,
        settle: 0.1,
        hold: 0.0,
    };
    crate::sessions::run(&c, &sessions)
        .await
        .expect("sessions runs");
    server.shutdown().await;
}

#[test]
fn only_loopback_targets() {
    assert!(Target::new("ws://127.0.0.1:1/ws", "r", Serializer::Json).is_ok());
    assert!(Target::new("ws://localhost:1/ws", "r", Serializer::Json).is_ok());
    assert!(Target::new("ws://[::1]:1/ws", "r", Serializer::Json).is_ok());
    assert!(Target::new("ws://10.0.0.1:1/ws", "r", Serializer::Json).is_err());
    assert!(Target::new("wss://127.0.0.1:1/ws", "r", Serializer::Json).is_err());
}
