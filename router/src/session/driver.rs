//! The connection driver: one task per connection, for any byte stream and framing.
//!
//! The task reads frames, hands each to the session core, which routes it inline against the
//! realm's shared tables (replies and routed messages go, already encoded, into the target
//! sessions' bounded outboxes), and writes its own session's outbox to the stream.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Sleep;
use tokio_util::sync::WaitForCancellationFutureOwned;
use tracing::{debug, warn};

use crate::broker::batch;
use wamp_proto::Serializer;

use super::core::{Deadline, Flow, KeepAlive, SessionCore, TransportInfo};
use super::CloseReason;
use crate::peer::STALL_LOOKS;
use crate::shared::RouterShared;
use crate::transport::connection::{Connection, ReadEnd};
use crate::transport::framing::Framing;

/// Read/write rounds per poll before the task yields to others.
const ROUNDS: usize = 32;

/// How the connection ends.
#[derive(Debug)]
enum End {
    /// Close for `reason` (after what is queued, unless killed), then, if `wait`, wait for
    /// the client to close too (bounded): a peer that let a deadline pass or stopped reading
    /// is not waited for.
    Close { reason: CloseReason, wait: bool },
    /// The client sent its close frame: answer it.
    ClientClosed,
    /// The stream is gone: nothing more to send.
    Gone,
}

/// What the driver's timer is armed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Armed {
    /// The core's deadline (HELLO, GOODBYE), or none.
    Core(Deadline),
    /// An established session on a transport with keep-alive: ping a silent peer.
    KeepAlive,
    /// The socket is full and the backlog over its soft bound: it must keep draining.
    Stalled,
}

/// The driver's timer: the deadline the core asked for (or keep-alive, or the stall
/// watch), and its sleep.
struct Timer {
    armed: Armed,
    /// Keep-alive: a ping went out and nothing has arrived since.
    pinged: bool,
    /// The connection waits for a full socket with its backlog over the soft bound.
    stalled: bool,
    /// Stall watch: looks in a row that saw nothing written.
    idle_looks: u8,
    /// The shutdown future was polled once, so it holds this task's waker: from then on a
    /// flag is checked instead (a task's waker does not change).
    shutdown_watched: bool,
    sleep: Option<Pin<Box<Sleep>>>,
}

/// What the timer says.
enum Fired {
    /// The core's deadline ran out.
    Deadline,
    /// The peer answered nothing to a keep-alive ping in time.
    Silent,
    /// The peer read nothing of its backlog for the stall timeout.
    Stalled,
}

/// Runs a connection whose transport handshake is done, until it closes.
///
/// Built as plain values moved into one small future: an idle connection's whole task is
/// this future, so nothing is held twice in it.
pub(crate) fn run<S, F>(
    mut conn: Connection<S, F>,
    serializer: Serializer,
    transport: TransportInfo,
    router: Arc<RouterShared>,
) -> impl Future<Output = ()> + Send
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Framing,
{
    let mut shutdown = Box::pin(router.shutdown.clone().cancelled_owned());
    let mut timer = Timer {
        armed: Armed::Core(Deadline::None),
        pinged: false,
        stalled: false,
        idle_looks: 0,
        shutdown_watched: false,
        sleep: None,
    };
    let mut core = SessionCore::new(serializer, Arc::new(transport), router);
    async move {
        let end = std::future::poll_fn(|cx| {
            poll_run(&mut core, cx, &mut conn, shutdown.as_mut(), &mut timer)
        })
        .await;
        drop(shutdown);
        drop(timer);
        core.leave();
        let (reason, wait) = match end {
            End::Gone => return,
            End::Close { reason, wait } => (reason, wait),
            End::ClientClosed => (CloseReason::Normal, false),
        };
        let close_timeout = Duration::from_millis(core.router.options.goodbye_timeout_ms);
        let outbox = core.outbox().clone();
        let delay = core.close_delay();
        drop(core);
        if !delay.is_zero() {
            // A failed login's answer waits: no fast password guessing from one address.
            // Boxed: a timer inline would enlarge every connection's task.
            Box::pin(tokio::time::sleep(delay)).await;
        }
        // Boxed: the closing steps' state would otherwise enlarge every connection's task.
        Box::pin(conn.close(&outbox, reason, wait, close_timeout)).await;
    }
}

impl Timer {
    /// What the timer should be armed for now.
    fn wanted(&self, core: &SessionCore) -> Armed {
        match core.deadline() {
            Deadline::None if self.stalled => Armed::Stalled,
            Deadline::None if !core.transport.keepalive.interval.is_zero() => Armed::KeepAlive,
            d => Armed::Core(d),
        }
    }

    /// Whether the timer must be re-armed (the core's state changed).
    fn stale(&self, core: &SessionCore) -> bool {
        self.armed != self.wanted(core)
    }

    /// Arms the timer the core's state needs, if it changed, and runs keep-alive rounds;
    /// `Ready` once a deadline ran out or a pinged peer stayed silent.
    fn poll<S, F>(
        &mut self,
        core: &SessionCore,
        conn: &mut Connection<S, F>,
        cx: &mut Context<'_>,
    ) -> Poll<Fired>
    where
        S: AsyncRead + AsyncWrite + Unpin,
        F: Framing,
    {
        let armed = self.wanted(core);
        let keepalive = core.transport.keepalive;
        let stall_look = core.router.outbound.stall_look;
        if armed != self.armed {
            let options = &core.router.options;
            self.armed = armed;
            self.pinged = false;
            self.idle_looks = 0;
            conn.take_write_progress();
            self.sleep = match armed {
                Armed::Core(Deadline::None) => None,
                Armed::Core(Deadline::Hello) => {
                    Some(Duration::from_millis(options.handshake_timeout_ms))
                }
                Armed::Core(Deadline::Goodbye) => {
                    Some(Duration::from_millis(options.goodbye_timeout_ms))
                }
                Armed::KeepAlive => Some(keepalive.interval),
                Armed::Stalled => Some(stall_look),
            }
            .map(|d| Box::pin(tokio::time::sleep(d)));
        }
        let Some(sleep) = &mut self.sleep else {
            return Poll::Pending;
        };
        loop {
            ready!(sleep.as_mut().poll(cx));
            let next = match armed {
                Armed::Core(_) => return Poll::Ready(Fired::Deadline),
                Armed::Stalled => {
                    if conn.take_write_progress() {
                        self.idle_looks = 0;
                    } else {
                        self.idle_looks += 1;
                        if self.idle_looks >= STALL_LOOKS {
                            return Poll::Ready(Fired::Stalled);
                        }
                    }
                    Some(stall_look)
                }
                // A paused publisher's replies wait unread: it is not silent.
                Armed::KeepAlive if core.is_paused() => {
                    self.pinged = false;
                    Some(keepalive.interval)
                }
                Armed::KeepAlive => keepalive_look(&mut self.pinged, conn, keepalive),
            };
            let Some(next) = next else {
                return Poll::Ready(Fired::Silent);
            };
            sleep.as_mut().reset(tokio::time::Instant::now() + next);
        }
    }
}

/// Keep-alive: when to look next, or `None` for a pinged peer that stayed silent.
fn keepalive_look<S, F>(
    pinged: &mut bool,
    conn: &mut Connection<S, F>,
    keepalive: KeepAlive,
) -> Option<Duration>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: Framing,
{
    Some(if conn.take_activity() {
        *pinged = false;
        keepalive.interval
    } else if *pinged {
        return None;
    } else {
        conn.ping();
        *pinged = true;
        keepalive.timeout
    })
}

/// Reads and handles messages and writes the outbox until the connection should end.
fn poll_run<S, F>(
    core: &mut SessionCore,
    cx: &mut Context<'_>,
    conn: &mut Connection<S, F>,
    mut shutdown: Pin<&mut WaitForCancellationFutureOwned>,
    timer: &mut Timer,
) -> Poll<End>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: Framing,
{
    let stopping = if timer.shutdown_watched {
        core.router.is_stopping()
    } else {
        timer.shutdown_watched = true;
        shutdown.as_mut().poll(cx).is_ready()
    };
    if core.deadline() != Deadline::Goodbye && stopping {
        if let Flow::Close(reason) = core.on_shutdown() {
            return Poll::Ready(End::Close {
                reason,
                wait: false,
            });
        }
    }
    match timer.poll(core, conn, cx) {
        Poll::Ready(Fired::Deadline) => {
            if let Flow::Close(reason) = core.on_deadline() {
                return Poll::Ready(End::Close {
                    reason,
                    wait: false,
                });
            }
        }
        Poll::Ready(Fired::Silent) => {
            warn!(peer = %core.transport.peer, transport = F::NAME, session = ?core.session_id(), "no answer to keep-alive ping; closing connection");
            return Poll::Ready(End::Gone);
        }
        Poll::Ready(Fired::Stalled) => {
            let backlog = core.outbox().backlog();
            if core
                .outbox()
                .kill("slow consumer: read nothing of its backlog in time")
            {
                core.router
                    .metrics
                    .slow_close(crate::counters::SlowClose::Stalled);
                warn!(peer = %core.transport.peer, transport = F::NAME, session = ?core.session_id(), messages = backlog.messages, bytes = backlog.bytes, stall_timeout_ms = core.router.options.outbound.stall_timeout_ms, "slow consumer: read nothing of its backlog in time; closing session");
            }
            return Poll::Ready(End::Close {
                reason: CloseReason::SlowConsumer,
                wait: false,
            });
        }
        Poll::Pending => {}
    }
    for _ in 0..ROUNDS {
        if let Poll::Ready(Flow::Close(reason)) = core.poll_authentication(cx) {
            return Poll::Ready(End::Close {
                reason,
                wait: false,
            });
        }
        core.poll_deferred(cx);
        if core.outbox().take_ending() {
            core.on_ended();
        }
        if core.outbox().is_killed() {
            return Poll::Ready(End::Close {
                reason: CloseReason::SlowConsumer,
                wait: false,
            });
        }
        let flushed = match conn.poll_flush(cx, core.outbox()) {
            Poll::Ready(Ok(())) => true,
            Poll::Ready(Err(e)) => {
                debug!(peer = %core.transport.peer, cause = %e, "write failed");
                return Poll::Ready(End::Gone);
            }
            Poll::Pending => false,
        };
        let outbox = Arc::as_ptr(core.outbox());
        let mut flow = Flow::Continue;
        // A publisher paused for a subscriber's backlog (realm `pause_publishers`) reads
        // nothing until it drains; its own outbox is still written.
        let read = if core.publisher_paused(cx.waker()) {
            Poll::Pending
        } else {
            // What this read publishes is fanned out in batches, flushed by its end.
            let reading = batch::Reading::begin();
            let read = conn.poll_read(cx, |bytes| {
                flow = core.on_frame(&bytes);
                flow == Flow::Continue
            });
            core.fanned_out(reading.finish());
            read
        };
        match read {
            Poll::Ready(None) => {}
            Poll::Ready(Some(ReadEnd::Stopped)) => {
                let reason = match flow {
                    Flow::Close(reason) => reason,
                    Flow::Continue => CloseReason::Normal,
                };
                return Poll::Ready(End::Close { reason, wait: true });
            }
            Poll::Ready(Some(ReadEnd::Close)) => return Poll::Ready(End::ClientClosed),
            Poll::Ready(Some(ReadEnd::Gone)) => return Poll::Ready(End::Gone),
            Poll::Ready(Some(ReadEnd::Frame(e))) => {
                if matches!(e, crate::transport::framing::FramingError::TooLarge) {
                    core.router.metrics.limit_hit("max_message_size");
                }
                warn!(peer = %core.transport.peer, transport = F::NAME, session = ?core.session_id(), cause = %e, "framing error; closing connection");
                return Poll::Ready(End::Close {
                    reason: e.close_reason(),
                    wait: true,
                });
            }
            // Nothing to read: wait once the outbox is written or the stream is full.
            Poll::Pending => {
                // A new session on this transport has a new outbox: write the old one's
                // frames first, then wait on the new one.
                if !std::ptr::eq(outbox, Arc::as_ptr(core.outbox())) {
                    continue;
                }
                // A full socket with a backlog over the soft bound starts the stall watch.
                timer.stalled = !flushed && core.outbox().over_soft_bound();
                // A state change (a new session after GOODBYE, a stall) may need its timer
                // armed.
                if timer.stale(core) && timer.poll(core, conn, cx).is_ready() {
                    continue;
                }
                let waiting = if flushed {
                    conn.park(cx, core.outbox())
                } else {
                    core.outbox().watch(cx.waker())
                };
                if waiting {
                    return Poll::Pending;
                }
            }
        }
    }
    cx.waker().wake_by_ref();
    Poll::Pending
}
