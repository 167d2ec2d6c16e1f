//! Reading a connection: bytes go into one read buffer per worker thread, and each message
//! is handed on as a slice of it.
//!
//! A read fills the thread's arena, a [`BytesMut`] chunk of [`ARENA`] bytes. The framing
//! unmasks each complete message in place and splits it off, frozen: no copy, and no
//! allocation per message (the chunk's shared header is allocated once per chunk). Once every
//! message of the chunk has been dropped, the next read starts again at its front; a chunk
//! still pinned is left to its messages and, when too little of it is left, a new one taken.
//! Between reads a connection keeps only its incomplete frame: a short one copied out (an
//! idle connection pins no chunk), a long one in a buffer of exactly its length that the
//! next reads fill directly (no copy either).
//!
//! What pins a chunk: the messages handed on, and the slices a decode keeps of them (the
//! payloads of `decode_shared`) until they are dropped, normally before the read returns.
//! Whatever keeps a payload longer copies it out (`Payload::detached`: retained events and
//! event history); the framings copy ping payloads (a pong may wait for a full socket).

use std::cell::Cell;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{BufMut, BytesMut};
use tokio::io::AsyncRead;

use super::framing::{Framing, FramingError, Inbound, Parsed};

/// The size of a worker thread's read buffer.
const ARENA: usize = 64 * 1024;
/// The most one read takes into the arena, and the least room it gets there (an arena
/// still pinned with less left is replaced).
const READ: usize = 16 * 1024;
/// An incomplete frame longer than this waits in a buffer of its own.
const OWN_BUFFER: usize = 16 * 1024;

thread_local! {
    /// This thread's read buffer between reads (a read takes it and puts it back).
    static ARENA_BUF: Cell<Option<BytesMut>> = const { Cell::new(None) };
}

/// A framing and the incomplete frame it is in the middle of.
#[derive(Debug)]
pub(crate) struct Decoder<F> {
    framing: F,
    /// The incomplete frame: empty and unallocated between frames. A frame longer than
    /// [`OWN_BUFFER`] has room for all of it here (reads go straight in); a shorter one keeps
    /// only its bytes, which the next read copies into the arena.
    kept: BytesMut,
}

impl<F: Framing> Decoder<F> {
    /// A decoder with nothing kept.
    pub(crate) fn new(framing: F) -> Decoder<F> {
        Decoder {
            framing,
            kept: BytesMut::new(),
        }
    }

    /// The framing (for the frame headers the connection writes).
    pub(crate) fn framing(&self) -> &F {
        &self.framing
    }

    /// Reads once from `io` and decodes what came, handing each event to `on` until it
    /// returns false: whether it wants more, or the framing's error; `None` when the stream
    /// ended or failed.
    pub(crate) fn poll_read<S: AsyncRead + Unpin>(
        &mut self,
        io: &mut S,
        cx: &mut Context<'_>,
        on: impl FnMut(Inbound) -> bool,
    ) -> Poll<Option<Result<bool, FramingError>>> {
        let own = self.reads_into_kept();
        let mut buf = self.begin(own);
        // At most READ bytes into the arena: what one read may hand on (a poll's reads
        // together, for fairness) stays as before. A long frame's own buffer takes its rest.
        let read = if own {
            tokio_util::io::poll_read_buf(Pin::new(io), cx, &mut buf)
        } else {
            tokio_util::io::poll_read_buf(Pin::new(io), cx, &mut (&mut buf).limit(READ))
        };
        match read {
            Poll::Ready(Ok(n)) if n > 0 => {
                if !own {
                    self.kept = BytesMut::new();
                }
                Poll::Ready(Some(self.decode(buf, own, on)))
            }
            read => {
                // Nothing came: the kept frame stays as it was.
                if own {
                    self.kept = buf;
                } else {
                    buf.clear();
                    put_arena(buf);
                }
                match read {
                    Poll::Pending => Poll::Pending,
                    _ => Poll::Ready(None),
                }
            }
        }
    }

    /// Decodes `data` as if read (bytes the handshake read beyond its end; tests).
    pub(crate) fn feed(
        &mut self,
        data: &[u8],
        on: impl FnMut(Inbound) -> bool,
    ) -> Result<bool, FramingError> {
        let own = self.reads_into_kept();
        let mut buf = self.begin(own);
        buf.extend_from_slice(data);
        if !own {
            self.kept = BytesMut::new();
        }
        self.decode(buf, own, on)
    }

    /// Whether the next read goes straight into the kept frame's own buffer.
    fn reads_into_kept(&self) -> bool {
        self.kept.capacity() > OWN_BUFFER && self.kept.capacity() > self.kept.len()
    }

    /// The buffer to read into: the kept frame's own, or the arena with the kept bytes
    /// copied in (`self.kept` is left as it is, for a read that brings nothing).
    fn begin(&mut self, own: bool) -> BytesMut {
        if own {
            return std::mem::take(&mut self.kept);
        }
        let need = self.kept.len() + READ;
        let mut buf = ARENA_BUF.take().unwrap_or_default();
        // Back to the chunk's start when none of its messages is alive any more.
        let _unpinned = buf.try_reclaim(ARENA);
        if buf.capacity() < need {
            buf = BytesMut::with_capacity(need.max(ARENA));
        }
        buf.extend_from_slice(&self.kept);
        buf
    }

    /// Hands the complete frames at the start of `buf` to the framing, keeps what is left
    /// of an incomplete one (after a stop or an error, nothing) and puts the arena back.
    fn decode(
        &mut self,
        mut buf: BytesMut,
        own: bool,
        mut on: impl FnMut(Inbound) -> bool,
    ) -> Result<bool, FramingError> {
        let mut wanted = 0;
        let fed = loop {
            if buf.is_empty() {
                break Ok(true);
            }
            match self.framing.frame(&mut buf, &mut on) {
                Ok(Parsed::Frame { more: true }) => {}
                Ok(Parsed::Frame { more: false }) => break Ok(false),
                Ok(Parsed::Incomplete { wanted: w }) => {
                    wanted = w;
                    break Ok(true);
                }
                Err(e) => break Err(e),
            }
        };
        if fed != Ok(true) {
            buf.clear();
        }
        if !buf.is_empty() {
            if own && buf.capacity() >= wanted && wanted > OWN_BUFFER {
                self.kept = buf;
                return fed;
            }
            self.kept = if wanted > OWN_BUFFER {
                let mut k = BytesMut::with_capacity(wanted);
                k.extend_from_slice(&buf);
                k
            } else {
                BytesMut::from(&buf[..])
            };
            buf.clear();
        }
        if !own {
            put_arena(buf);
        }
        fed
    }

    /// Whether no incomplete frame is kept, and no buffer.
    #[cfg(test)]
    pub(crate) fn is_unallocated(&self) -> bool {
        self.kept.is_empty() && self.kept.capacity() == 0
    }
}

fn put_arena(buf: BytesMut) {
    ARENA_BUF.set(Some(buf));
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::io;
    use std::task::Waker;

    use bytes::Bytes;
    use tokio::io::ReadBuf;

    use super::*;
    use crate::transport::rawsocket::RawSocketFraming;
    use crate::transport::websocket::frames::WebSocketFraming;

    /// A stream whose reads return `reads` in turn (each at most what the buffer has room
    /// for), then nothing yet (`Pending`), or the end of the stream if `eof`.
    struct Reads {
        reads: VecDeque<Vec<u8>>,
        eof: bool,
    }

    impl Reads {
        fn new(reads: impl IntoIterator<Item = Vec<u8>>) -> Reads {
            Reads {
                // An empty read is the end of a stream.
                reads: reads.into_iter().filter(|r| !r.is_empty()).collect(),
                eof: false,
            }
        }
    }

    impl AsyncRead for Reads {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let eof = self.eof;
            let Some(next) = self.reads.front_mut() else {
                return if eof {
                    Poll::Ready(Ok(()))
                } else {
                    Poll::Pending
                };
            };
            let n = next.len().min(buf.remaining());
            buf.put_slice(&next[..n]);
            next.drain(..n);
            if next.is_empty() {
                self.reads.pop_front();
            }
            Poll::Ready(Ok(()))
        }
    }

    /// Reads until the stream has nothing more: the messages, in order.
    fn read_all<F: Framing>(d: &mut Decoder<F>, io: &mut Reads) -> Vec<Bytes> {
        let mut cx = Context::from_waker(Waker::noop());
        let mut got = Vec::new();
        loop {
            let read = d.poll_read(io, &mut cx, |e| {
                if let Inbound::Message(m) = e {
                    got.push(m);
                }
                true
            });
            match read {
                Poll::Ready(Some(Ok(true))) => {}
                Poll::Pending => return got,
                other => panic!("read ended: {other:?}"),
            }
        }
    }

    /// A RawSocket message frame.
    fn raw(payload: &[u8]) -> Vec<u8> {
        let n = payload.len();
        let mut f = vec![0, (n >> 16) as u8, (n >> 8) as u8, n as u8];
        f.extend_from_slice(payload);
        f
    }

    /// A masked WebSocket binary frame.
    fn ws(payload: &[u8]) -> Vec<u8> {
        crate::transport::websocket::frames::tests::frame(true, 0x2, payload)
    }

    fn messages() -> Vec<Vec<u8>> {
        vec![
            b"[1,\"realm1\",{}]".to_vec(),
            (0..300u32).map(|i| (i * 7) as u8).collect(),
            b"x".to_vec(),
        ]
    }

    fn websocket() -> Decoder<WebSocketFraming> {
        Decoder::new(WebSocketFraming::new(1 << 20, true))
    }

    fn rawsocket() -> Decoder<RawSocketFraming> {
        Decoder::new(RawSocketFraming::new(1 << 20))
    }

    #[test]
    fn messages_split_across_two_reads_at_every_byte() {
        let want = messages();
        let ws_wire: Vec<u8> = want.iter().flat_map(|m| ws(m)).collect();
        let raw_wire: Vec<u8> = want.iter().flat_map(|m| raw(m)).collect();
        for cut in 0..ws_wire.len() {
            let mut d = websocket();
            let mut io = Reads::new([ws_wire[..cut].to_vec(), ws_wire[cut..].to_vec()]);
            assert_eq!(read_all(&mut d, &mut io), want, "websocket, cut at {cut}");
            assert!(d.is_unallocated());
        }
        for cut in 0..raw_wire.len() {
            let mut d = rawsocket();
            let mut io = Reads::new([raw_wire[..cut].to_vec(), raw_wire[cut..].to_vec()]);
            assert_eq!(read_all(&mut d, &mut io), want, "rawsocket, cut at {cut}");
            assert!(d.is_unallocated());
        }
    }

    #[test]
    fn messages_arriving_a_byte_per_read() {
        let want = messages();
        let wire: Vec<u8> = want.iter().flat_map(|m| ws(m)).collect();
        let mut d = websocket();
        let mut io = Reads::new(wire.iter().map(|b| vec![*b]));
        assert_eq!(read_all(&mut d, &mut io), want);
        assert!(d.is_unallocated());
    }

    #[test]
    fn several_messages_of_one_read_are_slices_of_one_buffer() {
        let want = messages();
        let wire: Vec<u8> = want.iter().flat_map(|m| ws(m)).collect();
        let mut d = websocket();
        let got = read_all(&mut d, &mut Reads::new([wire]));
        assert_eq!(got, want);
        // Unmasked in place: each message starts where the previous one's frame ended.
        let end = got[0].as_ptr() as usize + got[0].len();
        assert_eq!(got[1].as_ptr() as usize, end + 2 + 2 + 4, "a 16-bit length");
        let end = got[1].as_ptr() as usize + got[1].len();
        assert_eq!(got[2].as_ptr() as usize, end + 2 + 4);
    }

    #[test]
    fn a_message_kept_after_its_read_is_not_overwritten() {
        let mut d = rawsocket();
        let first = read_all(&mut d, &mut Reads::new([raw(b"first message")]));
        let second = read_all(&mut d, &mut Reads::new([raw(b"second message")]));
        assert_eq!(first, [b"first message".to_vec()]);
        assert_eq!(second, [b"second message".to_vec()]);
        let reused = first[0].as_ptr();
        drop((first, second));
        // Nothing holds the buffer any more: the next read starts at its front again.
        let third = read_all(&mut d, &mut Reads::new([raw(b"third")]));
        assert_eq!(third, [b"third".to_vec()]);
        assert_eq!(third[0].as_ptr(), reused);
    }

    #[test]
    fn a_pinned_buffer_is_left_to_its_messages() {
        let mut d = rawsocket();
        let big = vec![5u8; OWN_BUFFER];
        let mut kept = Vec::new();
        // Four reads of 16 KiB fill a 64 KiB chunk; the messages are all still alive.
        for _ in 0..8 {
            kept.extend(read_all(&mut d, &mut Reads::new([raw(&big)])));
        }
        assert_eq!(kept.len(), 8);
        assert!(kept.iter().all(|m| m[..] == big[..]));
    }

    #[test]
    fn a_long_message_is_read_into_a_buffer_of_its_own() {
        let long: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let wire = ws(&long);
        let mut d = websocket();
        let mut cx = Context::from_waker(Waker::noop());
        let mut io = Reads::new(wire.chunks(10_000).map(<[u8]>::to_vec));
        let mut got = Vec::new();
        let mut on = |e| {
            if let Inbound::Message(m) = e {
                got.push(m);
            }
            true
        };
        // The first read has the header: the frame gets a buffer of exactly its length.
        assert_eq!(
            d.poll_read(&mut io, &mut cx, &mut on),
            Poll::Ready(Some(Ok(true)))
        );
        assert_eq!((d.kept.len(), d.kept.capacity()), (10_000, wire.len()));
        let own = d.kept.as_ptr() as usize;
        while d.poll_read(&mut io, &mut cx, &mut on).is_ready() {}
        assert_eq!(got, [long]);
        // The message is the frame's own buffer, past the header: not copied.
        assert_eq!(got[0].as_ptr() as usize, own + 14);
        assert!(d.is_unallocated());
    }

    #[test]
    fn one_read_takes_at_most_16_kib_of_messages() {
        let wire: Vec<u8> = (0..100).flat_map(|_| raw(&[3u8; 400])).collect();
        let mut d = rawsocket();
        let mut io = Reads::new([wire]);
        let mut cx = Context::from_waker(Waker::noop());
        let mut n = 0;
        let read = d.poll_read(&mut io, &mut cx, |_| {
            n += 1;
            true
        });
        assert_eq!(read, Poll::Ready(Some(Ok(true))));
        assert_eq!(n, READ / 404);
        assert_eq!(read_all(&mut d, &mut io).len(), 100 - n);
    }

    #[test]
    fn an_incomplete_frame_keeps_only_its_own_bytes() {
        let wire = raw(&[9u8; 200]);
        let mut d = rawsocket();
        assert!(read_all(&mut d, &mut Reads::new([wire[..50].to_vec()])).is_empty());
        assert_eq!((d.kept.len(), d.kept.capacity()), (50, 50));
        // A read that brings nothing leaves it as it was; the end of the stream ends reading.
        let mut io = Reads::new([]);
        let mut cx = Context::from_waker(Waker::noop());
        assert!(d.poll_read(&mut io, &mut cx, |_| true).is_pending());
        assert_eq!(d.kept.len(), 50);
        io.eof = true;
        assert_eq!(d.poll_read(&mut io, &mut cx, |_| true), Poll::Ready(None));
        assert_eq!(d.kept.len(), 50);
        let got = read_all(&mut d, &mut Reads::new([wire[50..].to_vec()]));
        assert_eq!(got, [vec![9u8; 200]]);
    }

    #[test]
    fn nothing_is_kept_after_a_stop() {
        let wire: Vec<u8> = [raw(b"a"), raw(b"b"), raw(b"cc")[..3].to_vec()].concat();
        let mut d = rawsocket();
        let mut seen = 0;
        let fed = d.feed(&wire, |_| {
            seen += 1;
            false
        });
        assert_eq!((fed, seen), (Ok(false), 1));
        assert!(d.is_unallocated());
    }
}
