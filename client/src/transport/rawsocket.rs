//! The RawSocket transport (WAMP spec "RawSocket Transport") over any byte stream: TCP for
//! `rs://` and `tcp://`, a Unix domain socket for `unix://`.
//!
//! Handshake: we send `0x7F, (L << 4) | S, 0, 0` (we accept messages of up to `2^(9 + L)`
//! octets; `S` is the serializer); the router echoes it with its own `L`, or answers an error
//! code in the high nibble and closes. Then every frame is a 4-octet header (`RRRR XTTT`:
//! reserved bits, the 25th length bit, the frame type; then a 24-bit big-endian length)
//! followed by the payload.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use wamp_proto::{Encoded, Serializer};

use super::{Incoming, Transport};
use crate::error::{ConnectError, TransportError};

/// The first octet of both handshake halves.
const MAGIC: u8 = 0x7F;
/// Our maximum length exponent: we accept messages of up to `2^(9 + 15)` octets (16 MiB).
const MAX_LEN_EXP: u8 = 15;
/// The longest frame payload we accept.
pub(crate) const MAX_IN: usize = 1 << (9 + MAX_LEN_EXP as usize);
/// Frame header length.
const HEADER: usize = 4;
/// Frame types.
const MESSAGE: u8 = 0;
const PING: u8 = 1;
const PONG: u8 = 2;
/// Free space the read buffer offers each read.
const READ_CHUNK: usize = 16 * 1024;
/// Read buffers larger than this are released once empty (after a large message).
const KEEP_READ_BUFFER: usize = 1024 * 1024;
/// Buffered unwritten octets above which `poll_ready` (and reading, for pongs) waits.
const WRITE_HIGH_WATER: usize = 64 * 1024;

/// What a handshake error code means.
fn refusal_reason(code: u8) -> &'static str {
    match code {
        1 => "serializer unsupported",
        2 => "maximum message length unacceptable",
        3 => "use of reserved bits (unsupported feature)",
        4 => "maximum connection count reached",
        _ => "unknown error code",
    }
}

/// Checks a frame header; returns the frame type and payload length.
fn parse_header(h: [u8; HEADER]) -> Result<(u8, usize), TransportError> {
    if h[0] >> 4 != 0 {
        return Err(TransportError::new(format!(
            "RawSocket frame header with reserved bits set (0x{:02x})",
            h[0]
        )));
    }
    let kind = h[0] & 0x07;
    if kind > PONG {
        return Err(TransportError::new(format!(
            "RawSocket frame of unknown type {kind}"
        )));
    }
    // The X bit (0x08) is the 25th length bit.
    let len = (usize::from(h[0] & 0x08) << 21)
        | (usize::from(h[1]) << 16)
        | (usize::from(h[2]) << 8)
        | usize::from(h[3]);
    if len > MAX_IN {
        return Err(TransportError::new(format!(
            "RawSocket frame of {len} octets, over our maximum of {MAX_IN}"
        )));
    }
    Ok((kind, len))
}

/// Appends one frame (`payload.len() <= 2^24`) to `buf`.
fn push_frame(buf: &mut Vec<u8>, kind: u8, payload: &[u8]) {
    let len = payload.len();
    let x = (((len >> 24) & 1) as u8) << 3;
    buf.extend_from_slice(&[kind | x, (len >> 16) as u8, (len >> 8) as u8, len as u8]);
    buf.extend_from_slice(payload);
}

/// A RawSocket connection after a successful handshake.
pub(crate) struct RawSocket<S> {
    stream: S,
    serializer: Serializer,
    /// The longest message the router accepts.
    max_out: usize,
    /// Received octets are `rbuf[rstart..rend]`; all of `rbuf` is initialized.
    rbuf: Vec<u8>,
    rstart: usize,
    rend: usize,
    /// Octets to write are `wbuf[wpos..]`.
    wbuf: Vec<u8>,
    wpos: usize,
    /// Octets arrived since [`Transport::take_activity`] last looked.
    active: bool,
}

impl<S> RawSocket<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    /// Does the client side of the handshake, offering `serializer`.
    pub(crate) async fn connect(
        mut stream: S,
        serializer: Serializer,
    ) -> Result<RawSocket<S>, ConnectError> {
        let code = serializer.rawsocket_id();
        let io_error = |e: io::Error| match e.kind() {
            io::ErrorKind::UnexpectedEof => ConnectError::Closed,
            _ => ConnectError::Transport(e.into()),
        };
        stream
            .write_all(&[MAGIC, (MAX_LEN_EXP << 4) | code, 0, 0])
            .await
            .map_err(io_error)?;
        stream.flush().await.map_err(io_error)?;
        let mut reply = [0u8; 4];
        stream.read_exact(&mut reply).await.map_err(io_error)?;
        let max_out = check_reply(reply, serializer)?;
        Ok(RawSocket {
            stream,
            serializer,
            max_out,
            rbuf: Vec::new(),
            rstart: 0,
            rend: 0,
            wbuf: Vec::new(),
            wpos: 0,
            active: false,
        })
    }

    /// Writes out `wbuf` as far as the socket takes it.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        while self.wpos < self.wbuf.len() {
            match Pin::new(&mut self.stream).poll_write(cx, &self.wbuf[self.wpos..]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(io::Error::from(io::ErrorKind::WriteZero).into()))
                }
                Poll::Ready(Ok(n)) => self.wpos += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
                Poll::Pending => return Poll::Pending,
            }
        }
        self.wbuf.clear();
        self.wpos = 0;
        Poll::Ready(Ok(()))
    }

    /// Octets buffered but not written yet.
    fn unwritten(&self) -> usize {
        self.wbuf.len() - self.wpos
    }

    /// Makes room for a frame of `total` octets (header included) starting at `rstart`, and
    /// for a read of at least [`READ_CHUNK`] octets if that is more.
    fn reserve(&mut self, total: usize) {
        let buffered = self.rend - self.rstart;
        let want = total.max(buffered + READ_CHUNK);
        if self.rstart + want <= self.rbuf.len() {
            return;
        }
        self.rbuf.copy_within(self.rstart..self.rend, 0);
        self.rstart = 0;
        self.rend = buffered;
        if want > self.rbuf.len() {
            self.rbuf.resize(want, 0);
        }
    }

    /// The header of the next frame, once buffered.
    fn next_header(&self) -> Result<Option<(u8, usize)>, TransportError> {
        match self.rbuf.get(self.rstart..self.rstart + HEADER) {
            Some(&[a, b, c, d]) if self.rend - self.rstart >= HEADER => {
                parse_header([a, b, c, d]).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// Marks `n` buffered octets as consumed.
    fn consume(&mut self, n: usize) {
        self.rstart += n;
        if self.rstart == self.rend {
            self.rstart = 0;
            self.rend = 0;
            if self.rbuf.len() > KEEP_READ_BUFFER {
                self.rbuf = Vec::new();
            }
        }
    }
}

/// Checks the router's handshake reply; returns the longest message it accepts.
fn check_reply(reply: [u8; 4], serializer: Serializer) -> Result<usize, ConnectError> {
    if reply[0] != MAGIC {
        return Err(ConnectError::Protocol(format!(
            "not a RawSocket router: the handshake reply starts with 0x{:02x}, not 0x7f",
            reply[0]
        )));
    }
    let (high, low) = (reply[1] >> 4, reply[1] & 0x0F);
    if low == 0 {
        return Err(match high {
            0 => ConnectError::Protocol("RawSocket handshake reply without a serializer".into()),
            1 => ConnectError::NoSerializer {
                offered: vec![serializer.subprotocol()],
            },
            code => ConnectError::RawSocketRefused {
                code,
                reason: refusal_reason(code),
            },
        });
    }
    if low != serializer.rawsocket_id() {
        return Err(ConnectError::Protocol(format!(
            "the RawSocket handshake reply names serializer {low}, not the {} (code {}) offered",
            serializer.name(),
            serializer.rawsocket_id()
        )));
    }
    if reply[2] != 0 || reply[3] != 0 {
        return Err(ConnectError::Protocol(format!(
            "the RawSocket handshake reply uses reserved octets (0x{:02x}{:02x})",
            reply[2], reply[3]
        )));
    }
    Ok(1 << (9 + usize::from(high)))
}

impl<S> Transport for RawSocket<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Incoming, TransportError>>> {
        loop {
            // Pongs first; a router that pings but does not read gets no more reading.
            if self.unwritten() > 0 {
                match self.poll_drain(cx) {
                    Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e))),
                    Poll::Pending if self.unwritten() >= WRITE_HIGH_WATER => return Poll::Pending,
                    _ => {}
                }
            }
            let (kind, len) = match self.next_header() {
                Err(e) => return Poll::Ready(Some(Err(e))),
                Ok(Some((kind, len))) if self.rend - self.rstart >= HEADER + len => (kind, len),
                Ok(header) => {
                    // Read more: the rest of this frame, or at least its header.
                    self.reserve(header.map_or(HEADER, |(_, len)| HEADER + len));
                    let mut buf = ReadBuf::new(&mut self.rbuf[self.rend..]);
                    match Pin::new(&mut self.stream).poll_read(cx, &mut buf) {
                        Poll::Ready(Ok(())) => {
                            let n = buf.filled().len();
                            if n == 0 {
                                return Poll::Ready(if self.rend == self.rstart {
                                    None
                                } else {
                                    Some(Err(TransportError::new(
                                        "the connection closed in the middle of a RawSocket frame",
                                    )))
                                });
                            }
                            self.rend += n;
                            self.active = true;
                            continue;
                        }
                        Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                        Poll::Pending => return Poll::Pending,
                    }
                }
            };
            let payload = self.rstart + HEADER..self.rstart + HEADER + len;
            match kind {
                MESSAGE => {
                    let m = self.serializer.decode(&self.rbuf[payload]);
                    self.consume(HEADER + len);
                    return Poll::Ready(Some(Ok(Incoming::Message(m))));
                }
                PING if len > self.max_out => {
                    return Poll::Ready(Some(Err(TransportError::new(format!(
                        "RawSocket PING of {len} octets, over the router's own maximum of {}",
                        self.max_out
                    )))))
                }
                PING => {
                    push_frame(&mut self.wbuf, PONG, &self.rbuf[payload]);
                    self.consume(HEADER + len);
                }
                // PONG: the answer to a keep-alive PING; that it arrived is all that counts.
                _ => self.consume(HEADER + len),
            }
        }
    }

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        if self.unwritten() >= WRITE_HIGH_WATER {
            if let Poll::Ready(Err(e)) = self.poll_drain(cx) {
                return Poll::Ready(Err(e));
            }
            if self.unwritten() >= WRITE_HIGH_WATER {
                return Poll::Pending;
            }
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(&mut self, frame: Encoded) -> Result<(), TransportError> {
        let payload = frame.as_bytes();
        if payload.len() > self.max_out {
            return Err(TransportError::new(format!(
                "a message of {} octets is over the router's RawSocket maximum of {}",
                payload.len(),
                self.max_out
            )));
        }
        if self.wpos > 0 && self.wpos >= self.wbuf.len() / 2 {
            self.wbuf.drain(..self.wpos);
            self.wpos = 0;
        }
        push_frame(&mut self.wbuf, MESSAGE, payload);
        Ok(())
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        match self.poll_drain(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut self.stream)
                .poll_flush(cx)
                .map_err(Into::into),
            other => other,
        }
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        match self.poll_flush(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut self.stream)
                .poll_shutdown(cx)
                .map_err(Into::into),
            other => other,
        }
    }

    fn max_message_len(&self) -> usize {
        self.max_out
    }

    fn start_ping(&mut self) -> Result<(), TransportError> {
        push_frame(&mut self.wbuf, PING, b"");
        Ok(())
    }

    fn take_activity(&mut self) -> bool {
        std::mem::take(&mut self.active)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::BoxTransport;
    use tokio::io::DuplexStream;
    use wamp_proto::message::Hello;
    use wamp_proto::{Dict, Message, Uri};

    #[test]
    fn headers_round_trip_including_the_25th_bit() {
        for len in [0, 1, 255, 256, 65_536, (1 << 24) - 1, 1 << 24] {
            let mut buf = Vec::new();
            push_frame(&mut buf, PING, &vec![0; len]);
            let h = [buf[0], buf[1], buf[2], buf[3]];
            assert_eq!(parse_header(h).ok(), Some((PING, len)), "{len}");
        }
        let mut buf = Vec::new();
        push_frame(&mut buf, MESSAGE, &vec![0; 1 << 24]);
        assert_eq!(buf[..4], [0x08, 0, 0, 0]);
        // Over 2^24, reserved bits, unknown types.
        for h in [
            [0x08, 0, 0, 1],
            [0x10, 0, 0, 0],
            [0x80, 0, 0, 1],
            [0x03, 0, 0, 0],
        ] {
            assert!(parse_header(h).is_err(), "{h:?}");
        }
    }

    #[test]
    fn handshake_replies() {
        let ok = check_reply([0x7F, 0x22, 0, 0], Serializer::MsgPack);
        assert_eq!(ok.ok(), Some(2048));
        let ok = check_reply([0x7F, 0xF1, 0, 0], Serializer::Json);
        assert_eq!(ok.ok(), Some(1 << 24));
        for (reply, ser) in [
            ([0x48, 0x54, 0x54, 0x50], Serializer::Json), // "HTTP"
            ([0x7F, 0xF1, 0, 0], Serializer::MsgPack),    // not our serializer
            ([0x7F, 0xF2, 0, 1], Serializer::MsgPack),    // reserved octets
            ([0x7F, 0x00, 0, 0], Serializer::MsgPack),    // error 0
        ] {
            let e = check_reply(reply, ser);
            assert!(
                matches!(e, Err(ConnectError::Protocol(_))),
                "{reply:?}: {e:?}"
            );
        }
    }

    /// A client over an in-memory pipe that passes one octet at a time each way.
    async fn pair(serializer: Serializer) -> (BoxTransport, DuplexStream) {
        let (client, mut router) = tokio::io::duplex(1);
        let router_side = async move {
            let mut hs = [0; 4];
            router.read_exact(&mut hs).await.unwrap();
            assert_eq!(hs, [0x7F, 0xF0 | serializer.rawsocket_id(), 0, 0]);
            router
                .write_all(&[0x7F, 0x10 | serializer.rawsocket_id(), 0, 0])
                .await
                .unwrap();
            router
        };
        let (rs, router) = tokio::join!(RawSocket::connect(client, serializer), router_side);
        let rs: BoxTransport = Box::new(rs.unwrap());
        assert_eq!(rs.max_message_len(), 1024);
        (rs, router)
    }

    #[tokio::test]
    async fn frames_trickling_in_octet_by_octet_are_reassembled() {
        let (mut rs, mut router) = pair(Serializer::Json).await;
        let hello = Message::from(Hello {
            realm: Uri::new("realm1"),
            details: Dict::new(),
        });
        let json = Serializer::Json.encode(&hello).unwrap();
        let mut frames = Vec::new();
        push_frame(&mut frames, PING, b"p1");
        push_frame(&mut frames, MESSAGE, json.as_bytes());
        push_frame(&mut frames, PONG, b"ignored");
        push_frame(&mut frames, MESSAGE, json.as_bytes());
        let router_side = async move {
            router.write_all(&frames).await.unwrap();
            let mut pong = [0; 6];
            router.read_exact(&mut pong).await.unwrap();
            assert_eq!(pong, [PONG, 0, 0, 2, b'p', b'1']);
            router
        };
        let client_side = async {
            for _ in 0..2 {
                match rs.recv().await {
                    Some(Ok(Incoming::Message(Ok(Message::Hello(h))))) => {
                        assert_eq!(h.realm.as_str(), "realm1")
                    }
                    other => panic!("{other:?}"),
                }
            }
            // The pong may still be on its way out.
            std::future::poll_fn(|cx| rs.poll_flush(cx)).await.unwrap();
        };
        let (mut router, ()) = tokio::join!(router_side, client_side);
        // Our own message goes out framed; then EOF ends the stream cleanly.
        let client_side = async {
            rs.send(json.clone()).await.unwrap();
            rs.close().await.unwrap();
            assert!(rs.recv().await.is_none());
        };
        let router_side = async {
            let mut got = Vec::new();
            router.read_to_end(&mut got).await.unwrap();
            drop(router);
            got
        };
        let ((), got) = tokio::join!(client_side, router_side);
        let mut want = Vec::new();
        push_frame(&mut want, MESSAGE, json.as_bytes());
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn keepalive_pings_go_out_and_anything_received_is_activity() {
        let (mut rs, mut router) = pair(Serializer::Json).await;
        assert!(!rs.take_activity());
        rs.start_ping().unwrap();
        let mut ping = [0; 4];
        let (flushed, read) = tokio::join!(
            std::future::poll_fn(|cx| rs.poll_flush(cx)),
            router.read_exact(&mut ping)
        );
        flushed.unwrap();
        read.unwrap();
        assert_eq!(ping, [PING, 0, 0, 0]);
        let json = Serializer::Json
            .encode(&Message::from(Hello {
                realm: Uri::new("realm1"),
                details: Dict::new(),
            }))
            .unwrap();
        let mut frames = Vec::new();
        push_frame(&mut frames, PONG, b"");
        push_frame(&mut frames, MESSAGE, json.as_bytes());
        let (_, got) = tokio::join!(router.write_all(&frames), rs.recv());
        assert!(matches!(got, Some(Ok(Incoming::Message(Ok(_))))), "{got:?}");
        assert!(rs.take_activity(), "the PONG and the message arrived");
        assert!(!rs.take_activity(), "taken");
    }

    #[tokio::test]
    async fn oversize_messages_are_refused_and_eof_mid_frame_is_an_error() {
        let (mut rs, mut router) = pair(Serializer::MsgPack).await;
        let router_side = async move {
            router.write_all(&[0, 0, 0, 9, 1, 2]).await.unwrap();
        };
        let (_, r) = tokio::join!(router_side, rs.recv());
        match r {
            Some(Err(e)) => assert!(e.message().contains("middle"), "{e}"),
            other => panic!("{other:?}"),
        }
        assert!(rs.start_send(Encoded::Binary(vec![0; 1025])).is_err());
        assert!(rs.start_send(Encoded::Binary(vec![0; 1024])).is_ok());
    }
}
