//! A connection after its transport handshake, generic over the byte stream (TCP, Unix
//! socket, TLS) and the framing (WebSocket, RawSocket): reads frames straight from the
//! stream and writes a session's queued frames with vectored writes.
//!
//! Nothing is buffered while the connection is idle: reads go through the worker thread's
//! read buffer (only an incomplete frame is kept, see [`super::reader`]), and outgoing
//! frames are written from the queue as they are (most come framed already; a bare payload
//! gets a header the framing formats on the stack).

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};

use super::framing::{FrameKind, Framing, FramingError, Inbound};
use super::reader::Decoder;
use crate::close::CloseReason;
use crate::peer::{Out, Outbox};

/// Pongs owed at most (RawSocket answers every PING); more is abuse and closes.
const MAX_PONGS: usize = 256;
/// Frames handed to one vectored write (one or two slices each).
const WRITE_FRAMES: usize = 64;

/// What ended reading.
#[derive(Debug)]
pub(crate) enum ReadEnd {
    /// The handler asked to stop.
    Stopped,
    /// The client sent a close frame.
    Close,
    /// The client broke the framing rules.
    Frame(FramingError),
    /// The stream ended or failed.
    Gone,
}

/// A frame waiting to be written: either from the session's queue or a control frame.
#[derive(Debug)]
struct Control {
    kind: FrameKind,
    payload: Bytes,
}

/// The server end of a connection.
#[derive(Debug)]
pub(crate) struct Connection<S, F> {
    io: S,
    /// The framing, with the incomplete frame it is in the middle of.
    decoder: Decoder<F>,
    /// Bytes the handshake read past its end (frames sent before its answer): decoded first.
    early: Box<[u8]>,
    /// Frames taken from the outbox, oldest first.
    writing: VecDeque<Out>,
    /// The payload of the latest ping, to answer at the next frame boundary.
    pongs: Vec<Bytes>,
    /// A pong or close frame being written before the queued frames.
    control: Option<Box<Control>>,
    /// Bytes of the first frame (control first, if any) already written.
    offset: usize,
    /// Bytes arrived since the keep-alive timer last looked.
    activity: bool,
    /// Bytes were written since the stall timer last looked.
    wrote: bool,
    /// A keep-alive ping is to be written.
    ping_due: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin, F: Framing> Connection<S, F> {
    /// A connection over `io` whose handshake is done; `early` holds any bytes the handshake
    /// read beyond its end.
    pub(crate) fn new(io: S, framing: F, early: Vec<u8>) -> Connection<S, F> {
        Connection {
            io,
            decoder: Decoder::new(framing),
            early: early.into_boxed_slice(),
            writing: VecDeque::new(),
            pongs: Vec::new(),
            control: None,
            offset: 0,
            activity: false,
            wrote: false,
            ping_due: false,
        }
    }

    /// Whether anything arrived since the last call (keep-alive).
    pub(crate) fn take_activity(&mut self) -> bool {
        std::mem::take(&mut self.activity)
    }

    /// Whether anything was written since the last call (a backlog is draining).
    pub(crate) fn take_write_progress(&mut self) -> bool {
        std::mem::take(&mut self.wrote)
    }

    /// Queues a keep-alive ping (written before the next queued frames).
    pub(crate) fn ping(&mut self) {
        self.ping_due = true;
    }

    /// Reads what the socket has and hands each message to `on` (false stops). `Ready(None)`
    /// after a read that made progress; `Pending` once the socket has nothing more.
    pub(crate) fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        mut on: impl FnMut(Bytes) -> bool,
    ) -> Poll<Option<ReadEnd>> {
        let mut end = None;
        let pongs = &mut self.pongs;
        let on_event = |event| match event {
            Inbound::Message(m) => {
                let more = on(m);
                if !more {
                    end = Some(ReadEnd::Stopped);
                }
                more
            }
            Inbound::Ping(p) => {
                if !F::PONG_EACH_PING {
                    // Only the latest ping needs an answer (RFC 6455, 5.5.3).
                    pongs.clear();
                } else if pongs.len() >= MAX_PONGS {
                    end = Some(ReadEnd::Frame(FramingError::Protocol(
                        "too many pings left unanswered",
                    )));
                    return false;
                }
                pongs.push(p);
                true
            }
            Inbound::Close => {
                end = Some(ReadEnd::Close);
                false
            }
        };
        let early = std::mem::take(&mut self.early);
        let fed = if early.is_empty() {
            match ready!(self.decoder.poll_read(&mut self.io, cx, on_event)) {
                Some(fed) => fed,
                None => return Poll::Ready(Some(ReadEnd::Gone)),
            }
        } else {
            self.decoder.feed(&early, on_event)
        };
        self.activity = true;
        Poll::Ready(match fed {
            Err(e) => Some(ReadEnd::Frame(e)),
            Ok(_) => end,
        })
    }

    /// Writes queued frames until everything is written (`Ready(Ok)`, the outbox was empty
    /// when looked at) or the socket is full (`Pending`).
    pub(crate) fn poll_flush(
        &mut self,
        cx: &mut Context<'_>,
        outbox: &Outbox,
    ) -> Poll<io::Result<()>> {
        loop {
            if self.writing.is_empty() {
                outbox.take(&mut self.writing);
                if self.writing.is_empty() && self.idle_control() {
                    return Poll::Ready(Ok(()));
                }
            }
            ready!(self.poll_write_some(cx))?;
        }
    }

    /// Parks the connection's waker on `outbox` if nothing is left to write (see
    /// [`Outbox::park`]), giving the write queue's buffer back (`peer::spare`).
    pub(crate) fn park(&mut self, cx: &Context<'_>, outbox: &Outbox) -> bool {
        if !self.writing.is_empty() || !self.idle_control() {
            return false;
        }
        if self.writing.capacity() > 0 {
            crate::peer::spare::give_back(std::mem::take(&mut self.writing));
        }
        if self.pongs.capacity() > 0 {
            self.pongs = Vec::new();
        }
        outbox.park(cx.waker())
    }

    fn idle_control(&self) -> bool {
        self.control.is_none() && self.pongs.is_empty() && !self.ping_due
    }

    /// Writes until the frames already taken and any control frame are written.
    fn poll_write_taken(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.writing.is_empty() || !self.idle_control() {
            ready!(self.poll_write_some(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    /// One vectored write of the control frame (if any) and the taken frames.
    fn poll_write_some(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.offset == 0 && self.control.is_none() {
            if !self.pongs.is_empty() {
                let payload = self.pongs.remove(0);
                self.control = Some(Box::new(Control {
                    kind: FrameKind::Pong,
                    payload,
                }));
            } else if std::mem::take(&mut self.ping_due) {
                self.control = Some(Box::new(Control {
                    kind: FrameKind::Ping,
                    payload: Bytes::from_static(b"keep-alive"),
                }));
            }
        }
        let mut heads = [([0u8; 10], 0usize); WRITE_FRAMES];
        let mut slices = [IoSlice::new(&[]); 2 * WRITE_FRAMES];
        let control = self
            .control
            .as_deref()
            .map(|c| (c.kind, &c.payload))
            .into_iter();
        // A framed entry (a fan-out batch) is written as it is: no header.
        let queued = self
            .writing
            .iter()
            .map(|o| ((o.framed == 0).then_some(FrameKind::Message), &o.bytes));
        let control = control.map(|(kind, payload)| (Some(kind), payload));
        let frames = control.chain(queued).take(WRITE_FRAMES);
        for (head, (kind, payload)) in heads.iter_mut().zip(frames.clone()) {
            *head = match kind {
                Some(kind) => self.decoder.framing().header(kind, payload.len()),
                None => ([0; 10], 0),
            };
        }
        let mut n = 0;
        let mut skip = self.offset;
        for ((h, hl), (_, payload)) in heads.iter().zip(frames) {
            let head = &h[(*hl).min(skip)..*hl];
            skip = skip.saturating_sub(*hl);
            let body = &payload[skip.min(payload.len())..];
            skip = 0;
            for part in [head, body] {
                if !part.is_empty() {
                    slices[n] = IoSlice::new(part);
                    n += 1;
                }
            }
        }
        let mut done = ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..n]))?;
        if done == 0 {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        self.wrote = true;
        // Retire what was written, frame by frame.
        loop {
            let len = match (&self.control, self.writing.front()) {
                (Some(c), _) => {
                    self.decoder.framing().header(c.kind, c.payload.len()).1 + c.payload.len()
                }
                (None, Some(o)) if o.framed > 0 => o.bytes.len(),
                (None, Some(o)) => {
                    self.decoder
                        .framing()
                        .header(FrameKind::Message, o.bytes.len())
                        .1
                        + o.bytes.len()
                }
                (None, None) => break,
            };
            let left = len - self.offset;
            if done < left {
                self.offset += done;
                break;
            }
            done -= left;
            self.offset = 0;
            if self.control.take().is_none() {
                self.writing.pop_front();
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Ends the connection: writes what is queued (for a killed session only the frame
    /// already begun), the framing's close frame for `reason` (if it has one), then
    /// half-closes and, if `wait`, reads until the client closes too. All bounded by `timeout`.
    pub(crate) async fn close(
        mut self,
        outbox: &Outbox,
        reason: CloseReason,
        wait: bool,
        timeout: Duration,
    ) {
        outbox.close();
        let killed = outbox.is_killed();
        let _ = tokio::time::timeout(timeout, async {
            if killed {
                self.drop_unstarted();
                std::future::poll_fn(|cx| self.poll_write_taken(cx)).await?;
            } else {
                std::future::poll_fn(|cx| self.poll_flush(cx, outbox)).await?;
            }
            self.pongs.clear();
            if let Some(payload) = self.decoder.framing().close_payload(reason) {
                self.control = Some(Box::new(Control {
                    kind: FrameKind::Close,
                    payload,
                }));
                std::future::poll_fn(|cx| self.poll_write_taken(cx)).await?;
            }
            tokio::io::AsyncWriteExt::shutdown(&mut self.io).await?;
            if wait {
                // So the socket is not reset with the client's last bytes unread.
                std::future::poll_fn(|cx| loop {
                    match ready!(self.poll_read(cx, |_| true)) {
                        None | Some(ReadEnd::Stopped) => continue,
                        Some(_) => return Poll::Ready(()),
                    }
                })
                .await;
            }
            io::Result::Ok(())
        })
        .await;
    }

    /// Forgets every frame not begun yet (the one being written must still end cleanly).
    fn drop_unstarted(&mut self) {
        self.pongs.clear();
        if self.offset == 0 {
            self.control = None;
            self.writing.clear();
        } else if self.control.is_some() {
            self.writing.clear();
        } else {
            self.writing.truncate(1);
        }
    }
}
