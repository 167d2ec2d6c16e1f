//! The outbound side of a connection: encoded frames, the bounded queue and the batching writer.

use futures_util::{Sink, SinkExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message as WsMessage, Utf8Bytes};
use tokio_util::sync::CancellationToken;
use tracing::debug;
use wamp_proto::{EncodeError, Encoded, Message, Serializer};

/// Frames drained per batch before one flush.
const BATCH: usize = 64;

/// What the writer task receives.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// An already-encoded WAMP message (cloning is a refcount bump).
    Frame(WsMessage),
    /// Send a close frame after everything queued before it, then stop.
    Close(CloseCode, &'static str),
}

/// Encodes a message into a WebSocket frame of the right type for `ser`.
pub(crate) fn encode_frame(ser: Serializer, msg: &Message) -> Result<WsMessage, EncodeError> {
    Ok(match ser.encode(msg)? {
        Encoded::Text(s) => WsMessage::Text(Utf8Bytes::from(s)),
        Encoded::Binary(b) => WsMessage::Binary(Bytes::from(b)),
    })
}

/// Feeds a batch into the sink and flushes once; returns a close request if one was queued.
async fn write_batch<S>(
    sink: &mut S,
    batch: &mut Vec<Outgoing>,
) -> Result<Option<(CloseCode, &'static str)>, WsError>
where
    S: Sink<WsMessage, Error = WsError> + Unpin,
{
    let mut close = None;
    for item in batch.drain(..) {
        match item {
            Outgoing::Frame(f) => sink.feed(f).await?,
            Outgoing::Close(code, reason) => {
                close = Some((code, reason));
                break;
            }
        }
    }
    sink.flush().await?;
    Ok(close)
}

/// Drains the queue into the socket: up to [`BATCH`] frames are fed, then flushed once.
///
/// Stops after a `Close`, when every sender is gone, or when `kill` fires (then queued frames
/// are dropped: the peer is not reading them anyway).
pub(crate) async fn run_writer<S>(
    mut sink: S,
    mut rx: mpsc::Receiver<Outgoing>,
    kill: CancellationToken,
    close_timeout: std::time::Duration,
) where
    S: Sink<WsMessage, Error = WsError> + Unpin,
{
    // Allocated on the first message and dropped again whenever the queue runs dry, so an
    // idle session holds no batch buffer.
    let mut batch = Vec::new();
    let slow = Some((CloseCode::Policy, "slow consumer"));
    let killed = kill.cancelled();
    tokio::pin!(killed);
    let close = loop {
        let n = tokio::select! {
            n = rx.recv_many(&mut batch, BATCH) => n,
            () = &mut killed => break slow,
        };
        if n == 0 {
            break None;
        }
        // A peer that stops reading blocks the socket: racing the kill signal keeps this
        // task (and the memory it holds) from waiting forever.
        let written = tokio::select! {
            r = write_batch(&mut sink, &mut batch) => r,
            () = &mut killed => break slow,
        };
        if rx.is_empty() {
            batch = Vec::new();
        }
        match written {
            Ok(None) => {}
            Ok(Some(close)) => break Some(close),
            Err(e) => {
                debug!(cause = %e, "write failed");
                return;
            }
        }
    };
    let frame = close.map(|(code, reason)| CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    });
    // Bounded: a peer that does not read must not keep this task alive.
    let _ = tokio::time::timeout(close_timeout, async {
        let _ = sink.send(WsMessage::Close(frame)).await;
        let _ = sink.close().await;
    })
    .await;
}
