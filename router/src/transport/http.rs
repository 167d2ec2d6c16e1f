//! Plain-HTTP routes on the WebSocket port, served by hyper (HTTP/1.1 with keep-alive).
//!
//! The WebSocket handshake reads a connection's first request head; when it is not for the
//! WebSocket path, the connection comes here with the bytes already read put back in front
//! ([`Rewind`]). [`dispatch`] is the route table: the long-poll transport under its path,
//! 426 on the WebSocket path (an upgrade needs a connection of its own), 404 elsewhere.

use std::convert::Infallible;
use std::io;
use std::net::IpAddr;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE, UPGRADE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::longpoll::LongPoll;

/// An answer's body.
pub(crate) type Body = Full<Bytes>;
/// An answer.
pub(crate) type Reply = Response<Body>;

/// Who sent a request (the connection's peer).
#[derive(Debug)]
pub(crate) struct Client {
    /// `tcp:ADDR`, as in the logs and the session's meta description.
    pub(crate) label: Arc<str>,
    pub(crate) ip: Option<IpAddr>,
    /// The verified TLS client certificate's common name.
    pub(crate) client_cn: Option<String>,
}

/// The plain routes of one WebSocket transport.
#[derive(Debug)]
pub(crate) struct Routes {
    /// The WebSocket endpoint's path (426 here).
    pub(crate) ws_path: String,
    /// The long-poll transport, if enabled.
    pub(crate) longpoll: Option<Arc<LongPoll>>,
    /// `GET /metrics`, if enabled.
    pub(crate) metrics: Option<Probe>,
    /// `GET /health`, if enabled.
    pub(crate) health: Option<Probe>,
}

/// A read-only route's answer, made when it is asked for: status, content type, body.
pub(crate) struct Probe(
    pub(crate) Box<dyn Fn() -> (StatusCode, &'static str, String) + Send + Sync>,
);

impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Probe")
    }
}

/// A request refused with `status`: the reason is logged and sent as a text body.
#[derive(Debug)]
pub(crate) struct Refused {
    pub(crate) status: StatusCode,
    pub(crate) why: String,
}

impl Refused {
    pub(crate) fn new(status: StatusCode, why: impl Into<String>) -> Refused {
        Refused {
            status,
            why: why.into(),
        }
    }

    /// Logs the refusal and turns it into its answer.
    pub(crate) fn reply(self, client: &Client, path: &str) -> Reply {
        warn!(peer = %client.label, path, status = self.status.as_u16(), reason = %self.why, "HTTP request refused");
        let mut r = reply(self.status, Bytes::from(self.why));
        r.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r
    }
}

/// An answer with `status` and `body`.
pub(crate) fn reply(status: StatusCode, body: Bytes) -> Reply {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r
}

/// Timeouts of a plain-HTTP connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    /// For a request head to arrive.
    pub(crate) header: Duration,
    /// At shutdown: how long long-poll sessions may take to answer GOODBYE (over these
    /// connections) before the connection stops serving.
    pub(crate) goodbye: Duration,
}

/// Serves plain-HTTP requests on `io` until the client closes, a request head is not read
/// in time, or shutdown (once the long-poll sessions have left or `goodbye` passed;
/// requests in flight are answered first). `head` holds the bytes the WebSocket handshake
/// already read.
pub(crate) async fn serve<S>(
    io: S,
    head: Vec<u8>,
    routes: Arc<Routes>,
    client: Arc<Client>,
    shutdown: CancellationToken,
    timeouts: Timeouts,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer = client.label.clone();
    let longpoll = routes.longpoll.clone();
    let stop = async {
        shutdown.cancelled().await;
        if let Some(lp) = &longpoll {
            let _ = tokio::time::timeout(timeouts.goodbye, lp.drained()).await;
        }
    };
    let service = service_fn(move |req| {
        let (routes, client) = (routes.clone(), client.clone());
        async move { Ok::<_, Infallible>(dispatch(req, &routes, &client).await) }
    });
    let mut conn = pin!(http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.header)
        .serve_connection(TokioIo::new(Rewind::new(head, io)), service));
    let done = tokio::select! {
        r = conn.as_mut() => r,
        () = stop => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = done {
        debug!(%peer, cause = %e, "HTTP connection ended with an error");
    }
}

/// The route table.
async fn dispatch(req: Request<Incoming>, routes: &Routes, client: &Client) -> Reply {
    let path = req.uri().path().to_owned();
    if let Some(lp) = &routes.longpoll {
        if let Some(rest) = lp.route(&path) {
            let rest = rest.to_owned();
            return lp.handle(&rest, req, client).await;
        }
    }
    let probe = match path.as_str() {
        "/metrics" => routes.metrics.as_ref(),
        "/health" => routes.health.as_ref(),
        _ => None,
    };
    if let Some(Probe(answer)) = probe {
        if req.method() != hyper::Method::GET && req.method() != hyper::Method::HEAD {
            let mut r = Refused::new(StatusCode::METHOD_NOT_ALLOWED, "only GET is served here")
                .reply(client, &path);
            r.headers_mut()
                .insert(hyper::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        let (status, content_type, body) = answer();
        let mut r = reply(status, Bytes::from(body));
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        return r;
    }
    if path == routes.ws_path {
        let mut r = Refused::new(
            StatusCode::UPGRADE_REQUIRED,
            "this is a WebSocket endpoint (Upgrade: websocket is required)",
        )
        .reply(client, &path);
        r.headers_mut()
            .insert(UPGRADE, HeaderValue::from_static("websocket"));
        return r;
    }
    Refused::new(
        StatusCode::NOT_FOUND,
        format!("no WAMP endpoint at `{path}`"),
    )
    .reply(client, &path)
}

/// A stream with bytes already read from it put back in front.
#[derive(Debug)]
pub(crate) struct Rewind<S> {
    head: Vec<u8>,
    /// How much of `head` was read again.
    pos: usize,
    io: S,
}

impl<S> Rewind<S> {
    pub(crate) fn new(head: Vec<u8>, io: S) -> Rewind<S> {
        Rewind { head, pos: 0, io }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.pos < this.head.len() {
            let n = buf.remaining().min(this.head.len() - this.pos);
            buf.put_slice(&this.head[this.pos..this.pos + n]);
            this.pos += n;
            if this.pos == this.head.len() {
                this.head = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn rewind_reads_the_head_first() {
        let (mut a, b) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut a, b" world")
            .await
            .unwrap();
        drop(a);
        let mut r = Rewind::new(b"hello".to_vec(), b);
        let mut out = String::new();
        r.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "hello world");
    }
}
