//! A RawSocket peer over a real socket (TCP or Unix), octet by octet: the 4-octet handshake,
//! then length-prefixed frames (WAMP spec "RawSocket Transport"), so tests can send exactly
//! the (bad) input they mean and see exactly what comes back.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio::time::timeout;
use wamp_proto::message::{Register, Subscribe, Welcome};
use wamp_proto::{Dict, Encoded, Id, Message, Serializer, Uri};

use crate::{hello, WAIT};

/// The first octet of every handshake.
pub const MAGIC: u8 = 0x7F;
/// Frame type (`TTT`) of a WAMP message.
pub const MESSAGE: u8 = 0;
/// Frame type of a PING.
pub const PING: u8 = 1;
/// Frame type of a PONG.
pub const PONG: u8 = 2;
/// The largest frame payload: 2^24 octets (the X bit set, the 24 length bits zero).
pub const MAX_FRAME: usize = 1 << 24;

/// The handshake's serializer code (`SSSS`).
pub fn code(s: Serializer) -> u8 {
    s.rawsocket_id()
}

/// A client handshake: we accept 2^(9+`exp`) octets, speaking serializer `code`.
pub fn handshake(exp: u8, code: u8) -> [u8; 4] {
    [MAGIC, (exp << 4) | code, 0, 0]
}

/// A frame: the header `0000 XTTT` + 24-bit length, then `payload`.
pub fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = header(kind, payload.len()).to_vec();
    v.extend_from_slice(payload);
    v
}

/// The 4-octet header of a frame of `kind` carrying `len` octets (up to 2^24).
pub fn header(kind: u8, len: usize) -> [u8; 4] {
    assert!(len <= MAX_FRAME, "{len} octets do not fit a frame");
    if len == MAX_FRAME {
        return [0x08 | kind, 0, 0, 0];
    }
    [kind, (len >> 16) as u8, (len >> 8) as u8, len as u8]
}

/// How a connection ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// An orderly close (FIN).
    Eof,
    /// A reset or another error (e.g. the router closed with our bytes still unread).
    Reset(io::ErrorKind),
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug> Stream for T {}

/// A RawSocket connection to the router.
#[derive(Debug)]
pub struct RsPeer {
    io: Box<dyn Stream>,
    /// The serializer of the handshake.
    pub serializer: Serializer,
    /// The longest message the router said it accepts (from its handshake reply).
    pub router_max: usize,
    /// The session id, once joined.
    pub session: Option<Id>,
    next_request: u64,
}

impl RsPeer {
    /// Opens the socket of `url` (`rs://ADDR`, `tcp://ADDR` or `unix:///PATH`), no handshake.
    pub async fn connect(url: &str) -> RsPeer {
        let io: Box<dyn Stream> = if let Some(path) = url.strip_prefix("unix://") {
            Box::new(
                UnixStream::connect(path)
                    .await
                    .expect("unix socket connects"),
            )
        } else {
            let addr = url
                .strip_prefix("rs://")
                .or_else(|| url.strip_prefix("tcp://"))
                .unwrap_or_else(|| panic!("not a RawSocket URL: {url}"));
            let s = TcpStream::connect(addr).await.expect("tcp connects");
            s.set_nodelay(true).expect("nodelay");
            Box::new(s)
        };
        RsPeer {
            io,
            serializer: Serializer::Json,
            router_max: 0,
            session: None,
            next_request: 0,
        }
    }

    /// A peer over an already connected stream (e.g. a TLS client stream), no handshake.
    pub fn over(
        io: impl AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug + 'static,
    ) -> RsPeer {
        RsPeer {
            io: Box::new(io),
            serializer: Serializer::Json,
            router_max: 0,
            session: None,
            next_request: 0,
        }
    }

    /// Completes a handshake announcing 16 MiB in `serializer`; panics unless accepted.
    pub async fn accept_handshake(&mut self, serializer: Serializer) {
        let reply = self.handshake(handshake(15, code(serializer))).await;
        assert_eq!(
            reply[1] & 0x0F,
            code(serializer),
            "handshake refused: {reply:02x?}"
        );
        self.serializer = serializer;
        self.router_max = 1 << (9 + (reply[1] >> 4));
    }

    /// Sends the 4 handshake octets and returns the router's 4-octet reply.
    pub async fn handshake(&mut self, octets: [u8; 4]) -> [u8; 4] {
        self.write(&octets).await;
        let reply = self.read(4).await;
        reply.try_into().expect("4 octets")
    }

    /// Connects and completes a handshake announcing 16 MiB in `serializer`; panics unless
    /// the router accepts it (echoing the serializer).
    pub async fn open(url: &str, serializer: Serializer) -> RsPeer {
        RsPeer::open_with(url, serializer, 15).await
    }

    /// [`RsPeer::open`] announcing that we accept at most 2^(9+`exp`) octets.
    pub async fn open_with(url: &str, serializer: Serializer, exp: u8) -> RsPeer {
        let mut p = RsPeer::connect(url).await;
        let reply = p.handshake(handshake(exp, code(serializer))).await;
        assert_eq!(
            (reply[0], reply[1] & 0x0F, reply[2], reply[3]),
            (MAGIC, code(serializer), 0, 0),
            "handshake refused: {reply:02x?}"
        );
        p.serializer = serializer;
        p.router_max = 1 << (9 + (reply[1] >> 4));
        p
    }

    /// Opens and joins `realm` with all four client roles; panics unless WELCOME comes.
    pub async fn join(url: &str, realm: &str, serializer: Serializer) -> (RsPeer, Welcome) {
        let mut p = RsPeer::open(url, serializer).await;
        let w = p.hello(realm).await;
        (p, w)
    }

    /// Sends HELLO for `realm` and expects WELCOME (also after a GOODBYE on this connection).
    pub async fn hello(&mut self, realm: &str) -> Welcome {
        self.send(&hello(realm)).await;
        match self.recv().await {
            Message::Welcome(w) => {
                self.session = Some(w.session);
                w
            }
            other => panic!("expected WELCOME, got {other:?}"),
        }
    }

    /// Writes raw octets.
    pub async fn write(&mut self, bytes: &[u8]) {
        timeout(WAIT, async {
            self.io.write_all(bytes).await?;
            self.io.flush().await
        })
        .await
        .expect("write in time")
        .expect("write");
    }

    /// Half-closes: the router sees EOF.
    pub async fn shutdown(&mut self) {
        timeout(WAIT, self.io.shutdown())
            .await
            .expect("shutdown in time")
            .expect("shutdown");
    }

    /// Reads exactly `n` octets; panics if the connection ends first.
    pub async fn read(&mut self, n: usize) -> Vec<u8> {
        match self.try_read(n).await {
            Ok(b) => b,
            Err((got, end)) => panic!("connection ended ({end:?}) after {got:02x?} of {n} octets"),
        }
    }

    /// Reads exactly `n` octets, or what came before the connection ended, and how.
    async fn try_read(&mut self, n: usize) -> Result<Vec<u8>, (Vec<u8>, Ended)> {
        let mut buf = vec![0u8; n];
        let mut got = 0;
        while got < n {
            let r = timeout(WAIT, self.io.read(&mut buf[got..]))
                .await
                .unwrap_or_else(|_| {
                    panic!("nothing from the router in {WAIT:?}: {got} of {n} octets")
                });
            match r {
                Ok(0) => return Err((buf[..got].to_vec(), Ended::Eof)),
                Ok(k) => got += k,
                Err(e) => return Err((buf[..got].to_vec(), Ended::Reset(e.kind()))),
            }
        }
        Ok(buf)
    }

    /// Expects the connection to end with nothing more from the router; returns how.
    pub async fn expect_end(&mut self) -> Ended {
        match self.try_read(1).await {
            Ok(b) => panic!("expected the connection to end, got octet {b:02x?}"),
            Err((_, end)) => end,
        }
    }

    /// Expects an orderly close (FIN) with nothing more from the router.
    pub async fn expect_eof(&mut self) {
        assert_eq!(self.expect_end().await, Ended::Eof);
    }

    /// Sends one frame.
    pub async fn send_frame(&mut self, kind: u8, payload: &[u8]) {
        self.write(&frame(kind, payload)).await;
    }

    /// Sends one frame; false if the connection is gone (the router may close at any time).
    pub async fn try_send_frame(&mut self, kind: u8, payload: &[u8]) -> bool {
        let bytes = frame(kind, payload);
        let sent = timeout(WAIT, async {
            self.io.write_all(&bytes).await?;
            self.io.flush().await
        })
        .await
        .expect("write in time");
        sent.is_ok()
    }

    /// Sends a message with the handshake's serializer.
    pub async fn send(&mut self, msg: &Message) {
        let bytes = encode(self.serializer, msg);
        self.send_frame(MESSAGE, &bytes).await;
    }

    /// Receives the next frame: (type, payload); panics if the connection ends.
    pub async fn recv_frame(&mut self) -> (u8, Vec<u8>) {
        match self.try_recv_frame().await {
            Ok(f) => f,
            Err(end) => panic!("expected a frame, connection ended: {end:?}"),
        }
    }

    /// Receives the next frame, or how the connection ended (at a frame boundary).
    pub async fn try_recv_frame(&mut self) -> Result<(u8, Vec<u8>), Ended> {
        let h = match self.try_read(4).await {
            Ok(h) => h,
            Err((got, end)) if got.is_empty() => return Err(end),
            Err((got, end)) => panic!("connection ended ({end:?}) inside a header: {got:02x?}"),
        };
        assert_eq!(h[0] & 0xF0, 0, "router set reserved header bits: {h:02x?}");
        let kind = h[0] & 0x07;
        assert!(kind <= PONG, "router sent reserved frame type: {h:02x?}");
        let low = (usize::from(h[1]) << 16) | (usize::from(h[2]) << 8) | usize::from(h[3]);
        let len = if h[0] & 0x08 != 0 {
            assert_eq!(low, 0, "X bit with a non-zero length: {h:02x?}");
            MAX_FRAME
        } else {
            low
        };
        let payload = self.read(len).await;
        Ok((kind, payload))
    }

    /// Receives the bytes of the next WAMP message; panics on another frame type.
    pub async fn recv_bytes(&mut self) -> Vec<u8> {
        match self.recv_frame().await {
            (MESSAGE, p) => p,
            (kind, p) => panic!(
                "expected a message frame, got type {kind} ({} octets)",
                p.len()
            ),
        }
    }

    /// Receives the next WAMP message; panics on close, timeout or another frame type.
    pub async fn recv(&mut self) -> Message {
        let bytes = self.recv_bytes().await;
        decode(self.serializer, &bytes)
    }

    /// Receives messages until the connection ends; returns them and how it ended.
    pub async fn until_closed(&mut self) -> (Vec<Message>, Ended) {
        let mut msgs = Vec::new();
        loop {
            match self.try_recv_frame().await {
                Ok((MESSAGE, b)) => msgs.push(decode(self.serializer, &b)),
                Ok((kind, p)) => panic!("unexpected frame type {kind} ({} octets)", p.len()),
                Err(end) => return (msgs, end),
            }
        }
    }

    /// Expects exactly one ABORT with `reason`, then an orderly close.
    pub async fn expect_abort(&mut self, reason: &str) {
        let (msgs, end) = self.until_closed().await;
        match msgs.as_slice() {
            [Message::Abort(a)] => assert_eq!(a.reason.as_str(), reason, "{a:?}"),
            other => panic!("expected exactly one ABORT {reason}, got {other:?}"),
        }
        assert_eq!(end, Ended::Eof, "after ABORT {reason}");
    }

    /// A fresh sequential request id.
    pub fn request(&mut self) -> Id {
        self.next_request += 1;
        Id::new(self.next_request).expect("in range")
    }

    /// REGISTERs and returns the registration id; panics unless REGISTERED comes.
    pub async fn register(&mut self, procedure: &str) -> Id {
        let request = self.request();
        let procedure = Uri::new(procedure);
        let options = Dict::new();
        self.send(
            &Register {
                request,
                options,
                procedure,
            }
            .into(),
        )
        .await;
        match self.recv().await {
            Message::Registered(m) if m.request == request => m.registration,
            other => panic!("expected REGISTERED, got {other:?}"),
        }
    }

    /// SUBSCRIBEs and returns the subscription id; panics unless SUBSCRIBED comes.
    pub async fn subscribe(&mut self, topic: &str) -> Id {
        self.subscribe_with(topic, Dict::new()).await
    }

    /// [`RsPeer::subscribe`] with options (`match`, ...).
    pub async fn subscribe_with(&mut self, topic: &str, options: Dict) -> Id {
        let request = self.request();
        let topic = Uri::new(topic);
        self.send(
            &Subscribe {
                request,
                options,
                topic,
            }
            .into(),
        )
        .await;
        match self.recv().await {
            Message::Subscribed(s) if s.request == request => s.subscription,
            other => panic!("expected SUBSCRIBED, got {other:?}"),
        }
    }
}

/// `msg` in `serializer`'s wire form.
pub fn encode(serializer: Serializer, msg: &Message) -> Vec<u8> {
    match serializer.encode(msg).expect("encodes") {
        Encoded::Text(s) => s.into_bytes(),
        Encoded::Binary(b) => b,
    }
}

fn decode(serializer: Serializer, bytes: &[u8]) -> Message {
    serializer
        .decode(bytes)
        .unwrap_or_else(|e| panic!("router sent an invalid message ({e}): {bytes:02x?}"))
}

/// A fresh directory under the system temp dir, removed (with what is in it) on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `wamp-tests-PID-N` (unique per process and call).
    pub fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("wamp-tests-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path).expect("create temp dir");
        TempDir(path)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Default for TempDir {
    fn default() -> TempDir {
        TempDir::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Waits (bounded by [`WAIT`]) until `cond` holds, checking every few milliseconds.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let waited = timeout(WAIT, async {
        while !cond() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "timed out waiting until {what}");
}
