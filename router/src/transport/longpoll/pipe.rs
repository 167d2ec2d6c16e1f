//! The HTTP side of one long-poll transport: an in-memory duplex to a session driver that
//! runs as on any other connection (RawSocket framing inside the pipe). `send` writes the
//! request's messages into it, `receive` waits for what the session wrote, `close` (or
//! expiry) shuts the pipe, so the session leaves as if its connection had closed.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use hyper::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::codec::Codec;
use crate::transport::framing::{FrameKind, Framing, Inbound};
use crate::transport::http::Refused;
use crate::transport::rawsocket::RawSocketFraming;
use crate::transport::reader::Decoder;

/// Bytes buffered in each direction of the pipe; a client that does not poll holds the
/// session's writes back, so its outbox fills and the slow-consumer rule applies.
pub(crate) const PIPE_BUFFER: usize = 64 * 1024;
/// The most bytes of messages in one batched `receive` answer.
const MAX_BATCH: usize = 1024 * 1024;
/// Bytes read from the pipe at once.
const READ_CHUNK: usize = 16 * 1024;

/// What the session wrote and nobody received yet.
#[derive(Debug)]
struct Output {
    reader: ReadHalf<DuplexStream>,
    framing: Decoder<RawSocketFraming>,
    queued: VecDeque<Bytes>,
    /// The session closed its end.
    ended: bool,
}

/// One open long-poll transport.
#[derive(Debug)]
pub(crate) struct Pipe {
    pub(crate) codec: Codec,
    input: tokio::sync::Mutex<WriteHalf<DuplexStream>>,
    output: tokio::sync::Mutex<Output>,
    /// When a request last ended (or began) on this transport.
    last_seen: Mutex<Instant>,
    /// `receive` requests in progress (a held poll keeps the transport alive).
    receiving: AtomicUsize,
    /// Cancelled by `close`.
    closed: CancellationToken,
    /// The session closed its end (seen by a `receive`).
    ended: AtomicBool,
}

/// Counts a `receive` in progress; refreshes `last_seen` when it ends, however it ends.
struct Receiving<'a>(&'a Pipe);

impl Drop for Receiving<'_> {
    fn drop(&mut self) {
        self.0.touch();
        self.0.receiving.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Pipe {
    /// The HTTP side of a pipe whose other end runs the session.
    pub(crate) fn new(codec: Codec, end: DuplexStream) -> Pipe {
        let (reader, writer) = tokio::io::split(end);
        Pipe {
            codec,
            input: tokio::sync::Mutex::new(writer),
            output: tokio::sync::Mutex::new(Output {
                reader,
                framing: Decoder::new(RawSocketFraming::new(usize::MAX)),
                queued: VecDeque::new(),
                ended: false,
            }),
            last_seen: Mutex::new(Instant::now()),
            receiving: AtomicUsize::new(0),
            closed: CancellationToken::new(),
            ended: AtomicBool::new(false),
        }
    }

    fn touch(&self) {
        if let Ok(mut t) = self.last_seen.lock() {
            *t = Instant::now();
        }
    }

    fn last_seen(&self) -> Instant {
        self.last_seen
            .lock()
            .map_or_else(|_| Instant::now(), |t| *t)
    }

    /// Hands `messages` to the session, bounded by `timeout` (a session that reads nothing
    /// for that long is refused with 503).
    pub(crate) async fn send(&self, messages: &[Bytes], timeout: Duration) -> Result<(), Refused> {
        self.touch();
        if self.ended.load(Ordering::Relaxed) {
            return Err(gone());
        }
        let framing = RawSocketFraming::new(usize::MAX);
        let write = async {
            let mut input = self.input.lock().await;
            for m in messages {
                let (head, n) = framing.header(FrameKind::Message, m.len());
                input.write_all(&head[..n]).await?;
                input.write_all(m).await?;
            }
            input.flush().await
        };
        let written = tokio::select! {
            () = self.closed.cancelled() => return Err(gone()),
            r = tokio::time::timeout(timeout, write) => r,
        };
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(gone()),
            Err(_) => Err(Refused::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the session is not reading; try again",
            )),
        }
    }

    /// Waits until the session wrote at least one message, or `timeout` (`Ok(None)`), and
    /// returns the answer's body. After the session ended and everything was received:
    /// 410 Gone.
    pub(crate) async fn receive(&self, timeout: Duration) -> Result<Option<Bytes>, Refused> {
        self.receiving.fetch_add(1, Ordering::Relaxed);
        let _receiving = Receiving(self);
        let deadline = Instant::now() + timeout;
        let Ok(mut out) = tokio::time::timeout_at(deadline, self.output.lock()).await else {
            return Ok(None);
        };
        let mut chunk = vec![0u8; READ_CHUNK];
        loop {
            if !out.queued.is_empty() {
                let lens: Vec<usize> = out.queued.iter().map(Bytes::len).collect();
                let n = self.codec.take(&lens, MAX_BATCH);
                return Ok(Some(self.codec.join(out.queued.drain(..n))));
            }
            if out.ended {
                return Err(gone());
            }
            let read = tokio::select! {
                () = self.closed.cancelled() => return Err(gone()),
                r = tokio::time::timeout_at(deadline, out.reader.read(&mut chunk)) => r,
            };
            let n = match read {
                Err(_) => return Ok(None),
                Ok(Ok(n)) => n,
                Ok(Err(_)) => 0,
            };
            if n == 0 {
                out.ended = true;
                // The router closed the connection: close ours too, as a client would (the
                // driver waits for that).
                self.ended.store(true, Ordering::Relaxed);
                let _ = self.input.lock().await.shutdown().await;
                continue;
            }
            let Output {
                framing, queued, ..
            } = &mut *out;
            // The session's own framing: a broken frame cannot come from it.
            let fed = framing.feed(&chunk[..n], |event| {
                if let Inbound::Message(m) = event {
                    // Copied out of the read buffer: it waits for the client's next poll.
                    queued.push_back(Bytes::copy_from_slice(&m));
                }
                true
            });
            if fed.is_err() {
                out.ended = true;
            }
        }
    }

    /// Whether `close` was called.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    /// Closes the transport: the session reads the end of its stream and leaves.
    pub(crate) async fn close(&self) {
        self.closed.cancel();
        let mut input = self.input.lock().await;
        let _ = input.shutdown().await;
    }

    /// Resolves once the transport went `idle` without a request (a held `receive` counts as
    /// one), or was closed.
    pub(crate) async fn expired(&self, idle: Duration) {
        loop {
            let at = self.last_seen() + idle;
            tokio::select! {
                () = self.closed.cancelled() => return,
                () = tokio::time::sleep_until(at) => {}
            }
            if self.receiving.load(Ordering::Relaxed) == 0
                && self.last_seen() + idle <= Instant::now()
            {
                return;
            }
            if self.receiving.load(Ordering::Relaxed) > 0 {
                self.touch();
            }
        }
    }
}

/// The answer for a transport whose session has ended.
fn gone() -> Refused {
    Refused::new(StatusCode::GONE, "the transport's session has ended")
}
