//! The socket as the WebSocket handshake sees it: reads stop at the end of the HTTP request.
//!
//! Whatever the client sends after its request (it may send frames before our response)
//! stays in the socket for the connection to read, so the handshake leaves no buffer behind.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// How much of the socket is looked at per read.
const PEEK: usize = 4096;

/// A borrowed socket that reads no further than the blank line ending the request head.
#[derive(Debug)]
pub(crate) struct RequestHead<'a> {
    io: &'a mut TcpStream,
    /// How much of `\r\n\r\n` the bytes read so far end with; 4 once the head is complete.
    matched: u8,
}

impl<'a> RequestHead<'a> {
    pub(crate) fn new(io: &'a mut TcpStream) -> RequestHead<'a> {
        RequestHead { io, matched: 0 }
    }
}

/// Advances the `\r\n\r\n` matcher by one byte.
fn step(matched: u8, b: u8) -> u8 {
    match (matched, b) {
        (0 | 2, b'\r') => matched + 1,
        (1 | 3, b'\n') => matched + 1,
        (_, b'\r') => 1,
        _ => 0,
    }
}

impl AsyncRead for RequestHead<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.matched == 4 || buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let mut peek = [const { MaybeUninit::<u8>::uninit() }; PEEK];
        let mut peeked = ReadBuf::uninit(&mut peek);
        ready!(this.io.poll_peek(cx, &mut peeked))?;
        let avail = peeked.filled();
        // Take up to the end of the head, at most what the caller has room for.
        let mut m = this.matched;
        let mut take = 0;
        for &b in avail.iter().take(buf.remaining()) {
            m = step(m, b);
            take += 1;
            if m == 4 {
                break;
            }
        }
        if take == 0 {
            return Poll::Ready(Ok(()));
        }
        let n = match this.io.try_read(buf.initialize_unfilled_to(take)) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Err(e) => return Poll::Ready(Err(e)),
        };
        for &b in &buf.initialized()[buf.filled().len()..buf.filled().len() + n] {
            this.matched = step(this.matched, b);
        }
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for RequestHead<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn stops_at_the_end_of_the_head() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let mut c = TcpStream::connect(addr).await.unwrap();
            c.write_all(b"GET / HTTP/1.1\r\nA: \r\r\n\r\nFRAMES")
                .await
                .unwrap();
            c
        });
        let (mut s, _) = listener.accept().await.unwrap();
        let _client = client.await.unwrap();
        let mut head = Vec::new();
        RequestHead::new(&mut s)
            .read_to_end(&mut head)
            .await
            .unwrap();
        assert_eq!(head, b"GET / HTTP/1.1\r\nA: \r\r\n\r\n");
        let mut rest = [0u8; 6];
        s.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"FRAMES");
    }
}
