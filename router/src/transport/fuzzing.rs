//! What the cargo-fuzz targets (`router/fuzz`) and their seed-replay test run: the RawSocket
//! handshake and the RawSocket and WebSocket framings on arbitrary bytes. Each function
//! panics only when a property is broken; none may panic otherwise, whatever the input.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::FutureExt as _;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use wamp_proto::Serializer;

use super::framing::{Framing, FramingError, Inbound};
use super::rawsocket::{self, Limits, RawSocketFraming, Refusal};
use super::reader::Decoder;
use super::websocket::frames::WebSocketFraming;

/// A connection in memory: reads `input`, collects what is written.
struct Memory<'a> {
    input: &'a [u8],
    output: Vec<u8>,
}

impl AsyncRead for Memory<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = self.input.len().min(buf.remaining());
        let (now, rest) = self.input.split_at(n);
        buf.put_slice(now);
        self.input = rest;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Memory<'_> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.output.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The RawSocket handshake: `data[0]` picks the transport's limits (serializers, maximum,
/// smallest peer maximum, over the connection limit), the rest is what the client sends.
/// The reply is the documented one for the outcome, and an accepted handshake is within the
/// limits.
pub fn rawsocket_handshake(data: &[u8]) {
    let Some((&pick, client)) = data.split_first() else {
        return;
    };
    let serializers: Vec<Serializer> = Serializer::ALL
        .into_iter()
        .filter(|s| pick & (1 << s.index()) != 0)
        .collect();
    let limits = Limits {
        serializers,
        max_message: 1 << (9 + (pick >> 4)),
        min_peer_max: 1 << (9 + ((pick >> 3) & 1) * 4),
    };
    let over = pick & 0x80 != 0 && pick & 0x40 != 0;
    let mut io = Memory {
        input: client,
        output: Vec::new(),
    };
    let Some(outcome) = rawsocket::accept(&mut io, &limits, over).now_or_never() else {
        panic!("the handshake waited on memory that is always ready");
    };
    match outcome {
        Ok(a) => {
            assert!(limits.serializers.contains(&a.serializer));
            assert!(a.peer_max >= limits.min_peer_max && !over);
            assert!(a.own_max <= limits.max_message.max(512));
            assert_eq!(io.output.len(), 4);
            assert_eq!(io.output[0], 0x7F);
            assert_eq!(io.output[1] & 0x0F, a.serializer.rawsocket_id());
            assert_eq!(1usize << (9 + (io.output[1] >> 4)), a.own_max);
        }
        Err(Refusal::Refused(e)) => assert_eq!(io.output, e.reply()),
        Err(Refusal::NotRawSocket(b)) => assert!(b != 0x7F && io.output.is_empty()),
        Err(Refusal::Io(_)) => assert!(client.len() < 4 && io.output.is_empty()),
    }
}

/// What a framing made of a byte stream: events, then how it ended.
type Run = (Vec<Inbound>, Result<bool, FramingError>);

/// Feeds `bytes` in pieces of `chunk` bytes (all at once if 0).
fn run<F: Framing>(f: F, bytes: &[u8], chunk: usize) -> Run {
    let mut f = Decoder::new(f);
    let mut events = Vec::new();
    let step = if chunk == 0 {
        bytes.len().max(1)
    } else {
        chunk
    };
    for piece in bytes.chunks(step) {
        let fed = f.feed(piece, |e| {
            let more = e != Inbound::Close;
            events.push(e);
            more
        });
        match fed {
            Ok(true) => {}
            end => return (events, end),
        }
    }
    (events, Ok(true))
}

/// Checks that feeding `bytes` whole or in pieces gives the same events and end, and that no
/// message exceeds `max`.
fn same_in_pieces<F: Framing>(make: impl Fn() -> F, bytes: &[u8], chunk: usize, max: usize) {
    let whole = run(make(), bytes, 0);
    let pieces = run(make(), bytes, chunk);
    assert_eq!(whole, pieces, "fed whole vs in pieces of {chunk}");
    let (events, _) = whole;
    for e in events {
        if let Inbound::Message(m) = e {
            assert!(m.len() <= max, "a message of {} over {max}", m.len());
        }
    }
}

/// RawSocket framing: `data[0]` picks the limit and the piece size, the rest is the stream.
pub fn rawsocket_frames(data: &[u8]) {
    let Some((&pick, stream)) = data.split_first() else {
        return;
    };
    let max = 1usize << (4 + (pick & 0x0F));
    let chunk = usize::from(pick >> 4);
    same_in_pieces(|| RawSocketFraming::new(max), stream, chunk, max);
}

/// WebSocket framing (client frames): `data[0]` picks the limit and the piece size, the rest
/// is the stream.
pub fn websocket_frames(data: &[u8]) {
    let Some((&pick, stream)) = data.split_first() else {
        return;
    };
    let max = 1usize << (4 + (pick & 0x0F));
    let chunk = usize::from(pick >> 4);
    same_in_pieces(|| WebSocketFraming::new(max, true), stream, chunk, max);
}
