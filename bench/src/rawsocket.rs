//! The client side of WAMP RawSocket (WAMP spec, "RawSocket Transport") over TCP or a Unix
//! domain socket: a 4-octet handshake, then length-prefixed frames, no masking.
//!
//! Handshake: the client sends `0x7F`, `(L << 4) | S`, `0`, `0` (it accepts messages of at
//! most 2^(9+L) octets in serializer S: 1 json, 2 msgpack); the router answers `0x7F`,
//! `(L_router << 4) | S`, `0`, `0`, or `0x7F`, `E << 4`, `0`, `0` (error E) and closes.
//! Frames: octet 0 is `0000 XTTT` (TTT: 0 message, 1 PING, 2 PONG; X is a 25th length bit,
//! set only for a length of exactly 2^24), octets 1-3 the 24-bit big-endian payload length.
//!
//! Like the WebSocket connection: writes are buffered and go out in one `write` per flush
//! (or when 128 KiB are buffered, tungstenite's default), reads fill a buffer of the
//! connection's read size, and a received frame is parsed from that buffer without a
//! syscall when it is already there. Reads and flushes are cancel-safe (`select!`).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use anyhow::{anyhow, bail, Context as _};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_tungstenite::tungstenite::Bytes;
use wamp_proto::Serializer;

/// The first octet of both handshake halves.
pub(crate) const MAGIC: u8 = 0x7F;
/// Frame types (`TTT`).
pub(crate) const MESSAGE: u8 = 0;
pub(crate) const PING: u8 = 1;
pub(crate) const PONG: u8 = 2;
/// The largest payload a frame can carry: 2^24 (X set, the 24 length bits zero).
pub(crate) const MAX_FRAME: usize = 1 << 24;
/// The length exponent this client announces: 2^(9+15) = 16 MiB.
const MAX_LEN_EXP: u8 = 15;
/// Buffered bytes that trigger a write before the flush (tungstenite's `write_buffer_size`).
const WRITE_BUFFER: usize = 128 * 1024;

/// The serializer's RawSocket code (`S`).
fn serializer_code(ser: Serializer) -> u8 {
    match ser {
        Serializer::Json => 1,
        Serializer::MsgPack => 2,
        Serializer::Cbor => 3,
    }
}

/// The client's 4 handshake octets.
pub(crate) fn handshake_request(ser: Serializer) -> [u8; 4] {
    [MAGIC, (MAX_LEN_EXP << 4) | serializer_code(ser), 0, 0]
}

/// Checks the router's handshake reply; returns the largest message the router accepts.
pub(crate) fn handshake_reply(reply: [u8; 4], ser: Serializer) -> anyhow::Result<usize> {
    if reply[0] != MAGIC {
        bail!("not a RawSocket handshake reply: {reply:02x?}");
    }
    let (high, s) = (reply[1] >> 4, reply[1] & 0x0F);
    if s == 0 {
        let why = match high {
            0 => "illegal (error 0)",
            1 => "serializer unsupported",
            2 => "maximum message length unacceptable",
            3 => "use of reserved bits (unsupported feature)",
            4 => "maximum connection count reached",
            _ => "unknown error",
        };
        bail!("the router refused the RawSocket handshake: error {high}, {why}");
    }
    if s != serializer_code(ser) {
        bail!(
            "the router answered serializer {s} to a request for {}",
            serializer_code(ser)
        );
    }
    if reply[2] != 0 || reply[3] != 0 {
        bail!("reserved handshake octets set in the reply: {reply:02x?}");
    }
    Ok(1usize << (9 + high))
}

/// The 4-octet header of a frame of type `kind` with a `len`-byte payload (`len` at most
/// [`MAX_FRAME`]).
pub(crate) fn frame_header(kind: u8, len: usize) -> [u8; 4] {
    debug_assert!(len <= MAX_FRAME);
    if len == MAX_FRAME {
        [kind | 0x08, 0, 0, 0]
    } else {
        let b = (len as u32).to_be_bytes();
        [kind, b[1], b[2], b[3]]
    }
}

/// What [`parse_frame`] found at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// Not a whole frame yet: `wanted` bytes (from the frame's start) are needed.
    Incomplete { wanted: usize },
    /// A frame of type `kind` whose payload is `buf[4..end]`; the next frame starts at `end`.
    Frame { kind: u8, end: usize },
}

/// Parses the frame at the start of `buf`; payloads longer than `max` are errors.
pub(crate) fn parse_frame(buf: &[u8], max: usize) -> anyhow::Result<Parsed> {
    let Some(h) = buf.get(..4) else {
        return Ok(Parsed::Incomplete { wanted: 4 });
    };
    if h[0] & 0xF0 != 0 || h[0] & 0x07 > PONG {
        bail!("invalid RawSocket frame header {h:02x?}");
    }
    let low = usize::from(h[1]) << 16 | usize::from(h[2]) << 8 | usize::from(h[3]);
    let len = match (h[0] & 0x08 != 0, low) {
        (false, n) => n,
        (true, 0) => MAX_FRAME,
        (true, _) => bail!("25th length bit set with a non-zero length: {h:02x?}"),
    };
    if len > max {
        bail!("RawSocket frame of {len} bytes exceeds the announced maximum {max}");
    }
    let end = 4 + len;
    Ok(if buf.len() < end {
        Parsed::Incomplete { wanted: end }
    } else {
        Parsed::Frame {
            kind: h[0] & 0x07,
            end,
        }
    })
}

/// One RawSocket connection after the handshake.
pub(crate) struct RawSocket<S> {
    io: S,
    /// Received bytes; `rbuf[rpos..]` is not parsed yet.
    rbuf: Vec<u8>,
    rpos: usize,
    /// The capacity to read into (the connection's read buffer size).
    read_size: usize,
    /// The largest message the router accepts.
    max_out: usize,
    /// Frames to write; `wbuf[wpos..]` is not written yet.
    wbuf: Vec<u8>,
    wpos: usize,
}

impl<S> std::fmt::Debug for RawSocket<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawSocket")
            .field("unparsed", &(self.rbuf.len() - self.rpos))
            .field("unwritten", &(self.wbuf.len() - self.wpos))
            .field("max_out", &self.max_out)
            .finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> RawSocket<S> {
    /// Performs the client handshake for `ser` on `io`.
    pub(crate) async fn handshake(
        mut io: S,
        ser: Serializer,
        read_size: usize,
    ) -> anyhow::Result<RawSocket<S>> {
        io.write_all(&handshake_request(ser)).await?;
        io.flush().await?;
        let mut reply = [0u8; 4];
        io.read_exact(&mut reply)
            .await
            .context("reading the router's RawSocket handshake reply")?;
        let max_out = handshake_reply(reply, ser)?;
        Ok(RawSocket {
            io,
            rbuf: Vec::with_capacity(read_size),
            rpos: 0,
            read_size: read_size.max(4),
            max_out,
            wbuf: Vec::new(),
            wpos: 0,
        })
    }

    /// Buffers one frame (written by [`RawSocket::flush`], or now when the buffer is full).
    async fn push(&mut self, kind: u8, payload: &[u8]) -> anyhow::Result<()> {
        if payload.len() > self.max_out {
            bail!(
                "message of {} bytes exceeds the router's maximum {}",
                payload.len(),
                self.max_out
            );
        }
        self.wbuf
            .extend_from_slice(&frame_header(kind, payload.len()));
        self.wbuf.extend_from_slice(payload);
        if self.wbuf.len() > WRITE_BUFFER {
            self.flush().await?;
        }
        Ok(())
    }

    /// Buffers one WAMP message.
    pub(crate) async fn feed(&mut self, payload: &[u8]) -> anyhow::Result<()> {
        self.push(MESSAGE, payload).await
    }

    /// Writes everything buffered (cancel-safe: progress is kept).
    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        while self.wpos < self.wbuf.len() {
            let n = self.io.write(&self.wbuf[self.wpos..]).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.wpos += n;
        }
        self.wbuf.clear();
        self.wpos = 0;
        self.io.flush().await
    }

    /// The next WAMP message's bytes; `None` when the router closed the connection between
    /// frames. PINGs are answered (PONG, same payload) and PONGs skipped.
    pub(crate) async fn next(&mut self) -> anyhow::Result<Option<Bytes>> {
        loop {
            match parse_frame(&self.rbuf[self.rpos..], MAX_FRAME)? {
                Parsed::Frame { kind, end } => {
                    let frame = self.rpos..self.rpos + end;
                    self.rpos = frame.end;
                    let payload = Bytes::copy_from_slice(&self.rbuf[frame.start + 4..frame.end]);
                    if self.rpos == self.rbuf.len() {
                        self.rbuf.clear();
                        self.rpos = 0;
                    }
                    match kind {
                        MESSAGE => return Ok(Some(payload)),
                        PING => {
                            self.push(PONG, &payload).await?;
                            self.flush().await?;
                        }
                        _ => {} // a PONG: this client sends no PING
                    }
                }
                Parsed::Incomplete { wanted } => {
                    if self.rpos > 0 {
                        self.rbuf.drain(..self.rpos);
                        self.rpos = 0;
                    }
                    let room = wanted.max(self.read_size);
                    if self.rbuf.capacity() < room {
                        self.rbuf.reserve(room - self.rbuf.len());
                    }
                    if self.io.read_buf(&mut self.rbuf).await? == 0 {
                        if self.rbuf.is_empty() {
                            return Ok(None);
                        }
                        return Err(anyhow!(
                            "connection closed in the middle of a RawSocket frame"
                        ));
                    }
                }
            }
        }
    }

    /// Flushes and closes the write side.
    pub(crate) async fn shutdown(&mut self) -> io::Result<()> {
        self.flush().await?;
        self.io.shutdown().await
    }
}

/// The byte stream under a RawSocket connection.
#[derive(Debug)]
pub(crate) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
