//! Every scenario, briefly, against an in-process wamp-router on a free loopback port.

use std::time::Duration;

use wamp_proto::Serializer;
use wamp_router::{Config, Server};

use crate::conn::Target;
use crate::procfs::Watched;
use crate::pubsub::{FanoutArgs, PubsubArgs, Rate};
use crate::rawsocket::{
    frame_header, handshake_reply, handshake_request, parse_frame, Parsed, RawSocket, MAGIC,
    MAX_FRAME, MESSAGE, PING, PONG,
};
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
    ctx_at(&server.url(), ser)
}

fn ctx_at(url: &str, ser: Serializer) -> Ctx {
    Ctx {
        target: Target::new(url, "realm1", ser).expect("loopback target"),
        remote: Vec::new(),
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
        subscribe: None,
        await_event: 0.0,
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
    assert!(Target::new("rs://127.0.0.1:1", "r", Serializer::Json).is_ok());
    assert!(Target::new("tcp://[::1]:1/", "r", Serializer::Json).is_ok());
    assert!(Target::new("rs://10.0.0.1:1", "r", Serializer::Json).is_err());
    assert!(Target::new("rs://127.0.0.1", "r", Serializer::Json).is_err());
    assert!(Target::new("rs://127.0.0.1:1/ws", "r", Serializer::Json).is_err());
    assert!(Target::new("unix:///tmp/x.sock", "r", Serializer::Json).is_ok());
    assert!(Target::new("unix://", "r", Serializer::Json).is_err());
}

fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = frame_header(kind, payload.len()).to_vec();
    v.extend_from_slice(payload);
    v
}

#[test]
fn rawsocket_frames_encode_and_decode() {
    assert_eq!(frame_header(MESSAGE, 0), [0, 0, 0, 0]);
    assert_eq!(frame_header(PONG, 0x01_02_03), [2, 1, 2, 3]);
    assert_eq!(frame_header(MESSAGE, MAX_FRAME - 1), [0, 0xFF, 0xFF, 0xFF]);
    // The 25th length bit, for exactly 2^24 only.
    assert_eq!(frame_header(PING, MAX_FRAME), [0x09, 0, 0, 0]);
    let end_of = |h: [u8; 4]| match parse_frame(&h, MAX_FRAME).unwrap() {
        Parsed::Incomplete { wanted } => wanted,
        Parsed::Frame { end, .. } => end,
    };
    assert_eq!(end_of(frame_header(PING, MAX_FRAME)), 4 + MAX_FRAME);
    assert_eq!(end_of(frame_header(MESSAGE, 0x01_02_03)), 4 + 0x01_02_03);
    // Three frames, cut at every byte: each parses once whole, never before.
    let mut wire = frame(MESSAGE, b"[1,\"realm1\",{}]");
    wire.extend(frame(PING, b"ping!"));
    wire.extend(frame(MESSAGE, &[7u8; 300]));
    let mut starts = vec![0];
    let mut pos = 0;
    while pos < wire.len() {
        let Parsed::Frame { end, .. } = parse_frame(&wire[pos..], 1024).unwrap() else {
            panic!("whole frame at {pos}");
        };
        pos += end;
        starts.push(pos);
    }
    assert_eq!(starts, [0, 19, 28, 332]);
    for w in starts.windows(2) {
        for cut in w[0]..w[1] {
            assert_eq!(
                parse_frame(&wire[w[0]..cut], 1024).unwrap(),
                Parsed::Incomplete {
                    wanted: if cut - w[0] < 4 { 4 } else { w[1] - w[0] }
                }
            );
        }
    }
    assert_eq!(
        parse_frame(&wire[19..], 1024).unwrap(),
        Parsed::Frame { kind: PING, end: 9 }
    );
    // Reserved bits and types, a bad 25th bit, and a frame over the limit are errors.
    for bad in [[0x10, 0, 0, 1], [0x03, 0, 0, 0], [0x08, 0, 0, 1]] {
        assert!(parse_frame(&bad, MAX_FRAME).is_err(), "{bad:?}");
    }
    assert!(parse_frame(&frame_header(MESSAGE, 600), 512).is_err());
    // Handshake: 16 MiB (L = 15) and the serializer code; replies and refusals.
    assert_eq!(handshake_request(Serializer::Json), [MAGIC, 0xF1, 0, 0]);
    assert_eq!(handshake_request(Serializer::MsgPack), [MAGIC, 0xF2, 0, 0]);
    let reply = |r| handshake_reply(r, Serializer::MsgPack);
    assert_eq!(reply([MAGIC, 0xF2, 0, 0]).unwrap(), 1 << 24);
    assert_eq!(reply([MAGIC, 0x02, 0, 0]).unwrap(), 512);
    let refused = reply([MAGIC, 0x10, 0, 0]).unwrap_err().to_string();
    assert!(refused.contains("serializer unsupported"), "{refused}");
    assert!(reply([MAGIC, 0xF1, 0, 0]).is_err());
    assert!(reply([0x7E, 0xF2, 0, 0]).is_err());
    assert!(reply([MAGIC, 0xF2, 0, 1]).is_err());
}

/// Against a scripted router on an in-memory pipe: the handshake, a PING answered with
/// its payload, messages split across writes, and one write per flushed batch.
#[tokio::test]
async fn rawsocket_stream_pings_and_batches() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (client, mut router) = tokio::io::duplex(1 << 16);
    let script = tokio::spawn(async move {
        let mut hs = [0u8; 4];
        router.read_exact(&mut hs).await.unwrap();
        assert_eq!(hs, [MAGIC, 0xF1, 0, 0]);
        router.write_all(&[MAGIC, 0xB1, 0, 0]).await.unwrap();
        let mut wire = frame(PING, b"are you there");
        wire.extend(frame(MESSAGE, b"[2,1,{}]"));
        wire.extend(frame(MESSAGE, &[b' '; 5000]));
        for chunk in wire.chunks(7) {
            router.write_all(chunk).await.unwrap();
            router.flush().await.unwrap();
        }
        let mut pong = vec![0u8; 4 + 13];
        router.read_exact(&mut pong).await.unwrap();
        assert_eq!(pong, frame(PONG, b"are you there"));
        let mut both = vec![0u8; 2 * (4 + 3)];
        router.read_exact(&mut both).await.unwrap();
        assert_eq!(
            both,
            [frame(MESSAGE, b"[6]"), frame(MESSAGE, b"[7]")].concat()
        );
        // Closed between frames: the client sees the end.
    });
    let mut rs = RawSocket::handshake(client, Serializer::Json, 64)
        .await
        .expect("handshake");
    assert_eq!(rs.next().await.unwrap().as_deref(), Some(&b"[2,1,{}]"[..]));
    assert_eq!(rs.next().await.unwrap().map(|b| b.len()), Some(5000));
    // The router accepts 2^(9+11) = 1 MiB.
    assert!(rs.feed(&vec![b' '; (1 << 20) + 1]).await.is_err());
    rs.feed(b"[6]").await.unwrap();
    rs.feed(b"[7]").await.unwrap();
    rs.flush().await.unwrap();
    assert!(rs.next().await.unwrap().is_none());
    script.await.unwrap();
}

/// Every scenario over RawSocket, on TCP and on a Unix socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenarios_over_rawsocket() {
    let sock = std::env::temp_dir().join(format!("wamp-bench-test-{}.sock", std::process::id()));
    let toml = format!(
        "[[transport]]\ntype = \"rawsocket\"\nbind = \"127.0.0.1:0\"\n\n\
         [[transport]]\ntype = \"rawsocket\"\nunix_socket = \"{}\"\n\n\
         [[realm]]\nname = \"realm1\"\n",
        sock.display()
    );
    let config = Config::from_toml(&toml, "<bench test>").expect("valid config");
    let server = Server::start(config).await.expect("router starts");
    let urls = server.urls().to_vec();
    assert!(
        urls[0].starts_with("rs://") && urls[1].starts_with("unix://"),
        "{urls:?}"
    );
    for (url, ser) in urls.iter().zip(Serializer::ALL) {
        let c = ctx_at(url, ser);
        let rpc = RpcArgs {
            callers: 2,
            in_flight: 8,
            callees: 2,
            duration: 0.3,
            payload: 50,
        };
        crate::rpc::run(&c, &rpc).await.expect("rpc runs");
        let fanout = FanoutArgs {
            subscribers: 20,
            payload: 10,
            window: 4,
            duration: 0.3,
            concurrency: 8,
        };
        crate::pubsub::run(&c, &fanout.to_pubsub(), "fanout")
            .await
            .expect("fanout runs");
        let sessions = SessionsArgs {
            count: 50,
            concurrency: 8,
            settle: 0.1,
            hold: 0.0,
            subscribe: None,
            await_event: 0.0,
        };
        crate::sessions::run(&c, &sessions)
            .await
            .expect("sessions runs");
    }
    server.shutdown().await;
    let _ = std::fs::remove_file(&sock);
}
