//! A connection from accept to its session: TLS first where the transport has it, then the
//! WebSocket or RawSocket handshake (bounded by `handshake_timeout_ms` and by shutdown), then
//! the session driver.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::Either;
use futures_util::FutureExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::warn;

use super::{longpoll, Endpoint, Peer, Slot};
use crate::config::{RawSocketTransport, TransportConfig, WebSocketTransport};
use crate::peer::Wire;
use crate::session::{driver, TransportInfo};
use crate::shared::RouterShared;
use crate::transport::connection::Connection;
use crate::transport::http::Client;
use crate::transport::rawsocket::{self, RawSocketFraming};
use crate::transport::websocket::frames::WebSocketFraming;
use crate::transport::websocket::{self, Handshake, Refusal};

/// Starts a connection's task: TLS first where the transport has it.
pub(super) fn spawn<S>(stream: S, peer: Peer, endpoint: &Arc<Endpoint>, shared: &Arc<RouterShared>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if endpoint.tls.is_none() {
        shared
            .tracker
            .spawn(connection(stream, peer, endpoint, shared));
        return;
    }
    let (e, sh) = (endpoint.clone(), shared.clone());
    let task = Box::pin(tls_handshake(
        stream,
        peer,
        endpoint.clone(),
        shared.clone(),
    ))
    .then(move |accepted| match accepted {
        Some((stream, peer)) => Either::Left(connection(stream, peer, &e, &sh)),
        None => Either::Right(std::future::ready(())),
    });
    shared.tracker.spawn(task);
}

/// The TLS handshake, bounded by `handshake_timeout_ms` and by shutdown; a failure (a
/// plain-text client, a bad certificate) is logged and closes only this connection.
async fn tls_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    mut peer: Peer,
    endpoint: Arc<Endpoint>,
    shared: Arc<RouterShared>,
) -> Option<(tokio_rustls::server::TlsStream<S>, Peer)> {
    let tls = endpoint.tls.as_ref()?;
    match bounded(&shared, tls.accept(stream)).await {
        Some(Ok(a)) => {
            peer.client_cn = a.client_cn;
            Some((a.stream, peer))
        }
        Some(Err(e)) => {
            warn!(peer = %peer.label, cause = %e, "TLS handshake failed; connection closed");
            None
        }
        None => {
            warn!(peer = %peer.label, "TLS handshake timed out");
            None
        }
    }
}

/// One connection's task: the transport handshake, then the session driver.
///
/// Boxed, and chained rather than awaited in one async fn: the handshake's state is freed
/// once it is done, and nothing of it stays in the task for the life of the connection.
pub(super) fn connection<S>(
    stream: S,
    peer: Peer,
    endpoint: &Arc<Endpoint>,
    shared: &Arc<RouterShared>,
) -> impl Future<Output = ()> + Send
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let slot = Slot::take(endpoint);
    let router = shared.clone();
    match &endpoint.config {
        TransportConfig::WebSocket(_) => Either::Left(
            Box::pin(websocket_handshake(stream, peer, slot, shared.clone())).then(
                move |accepted| match accepted {
                    Some(Upgrade::Session((conn, serializer, info, slot))) => {
                        Either::Left(Either::Left(
                            driver::run(conn, serializer, info, router).map(move |()| drop(slot)),
                        ))
                    }
                    // Boxed: the HTTP server's state stays out of every WebSocket task.
                    Some(Upgrade::Plain(plain)) => Either::Left(Either::Right(Box::pin(
                        longpoll::serve_plain(plain, router),
                    ))),
                    None => Either::Right(std::future::ready(())),
                },
            ),
        ),
        TransportConfig::RawSocket(_) => Either::Right(
            Box::pin(rawsocket_handshake(stream, peer, slot, shared.clone())).then(
                move |accepted| match accepted {
                    Some((conn, serializer, info, slot)) => Either::Left(
                        driver::run(conn, serializer, info, router).map(move |()| drop(slot)),
                    ),
                    None => Either::Right(std::future::ready(())),
                },
            ),
        ),
    }
}

/// What a successful handshake hands the driver.
type Handshaken<S, F> = (
    Connection<S, F>,
    wamp_proto::Serializer,
    TransportInfo,
    Slot,
);

/// What a WebSocket port's first request leads to.
enum Upgrade<S> {
    /// A WebSocket session.
    Session(Handshaken<S, WebSocketFraming>),
    /// Plain HTTP (long-poll, 426, 404).
    Plain(longpoll::Plain<S>),
}

/// Runs `handshake`, bounded by `handshake_timeout_ms` and by shutdown.
async fn bounded<T>(shared: &RouterShared, handshake: impl Future<Output = T>) -> Option<T> {
    let limit = Duration::from_millis(shared.options.handshake_timeout_ms);
    tokio::select! {
        () = shared.shutdown.cancelled() => None,
        r = tokio::time::timeout(limit, handshake) => r.ok(),
    }
}

async fn websocket_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    Peer {
        label: peer,
        ip,
        client_cn,
    }: Peer,
    slot: Slot,
    shared: Arc<RouterShared>,
) -> Option<Upgrade<S>> {
    let TransportConfig::WebSocket(t) = &slot.endpoint.config else {
        return None;
    };
    let t: &WebSocketTransport = t;
    if slot.over {
        shared.metrics.limit_hit("max_connections");
        warn!(%peer, limit = t.max_connections, "connection limit reached; refused");
        websocket::refuse_busy(&mut stream).await;
        return None;
    }
    match bounded(&shared, websocket::accept(&mut stream, t)).await {
        Some(Ok(Handshake::Plain(head))) => Some(Upgrade::Plain(longpoll::Plain {
            stream,
            head,
            client: Client {
                label: Arc::from(peer),
                ip,
                client_cn,
            },
            slot,
        })),
        Some(Ok(Handshake::Upgraded(a))) => {
            let framing = WebSocketFraming::new(t.max_message_size, a.serializer.is_binary());
            let info = TransportInfo {
                kind: "websocket",
                wire: Wire::WebSocket,
                peer: Arc::from(peer),
                max_frame: usize::MAX,
                ip,
                auth_methods: slot.endpoint.auth_methods.clone(),
                client_cn,
                keepalive: slot.endpoint.keepalive(),
            };
            Some(Upgrade::Session((
                Connection::new(stream, framing, a.early),
                a.serializer,
                info,
                slot,
            )))
        }
        Some(Err(Refusal::Http(status, why))) => {
            warn!(%peer, status, reason = %why, "connection refused");
            None
        }
        Some(Err(Refusal::Handshake(why))) => {
            warn!(%peer, reason = %why, "WebSocket handshake failed");
            None
        }
        None => {
            warn!(%peer, "WebSocket handshake timed out");
            None
        }
    }
}

async fn rawsocket_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    Peer {
        label: peer,
        ip,
        client_cn,
    }: Peer,
    slot: Slot,
    shared: Arc<RouterShared>,
) -> Option<Handshaken<S, RawSocketFraming>> {
    let TransportConfig::RawSocket(t) = &slot.endpoint.config else {
        return None;
    };
    let t: &RawSocketTransport = t;
    let limits = rawsocket::Limits {
        serializers: t.serializers.iter().map(|s| s.0).collect(),
        max_message: t.max_message_size,
        min_peer_max: t.min_client_max_message_size,
    };
    if slot.over {
        shared.metrics.limit_hit("max_connections");
    }
    match bounded(&shared, rawsocket::accept(&mut stream, &limits, slot.over)).await {
        Some(Ok(a)) => {
            let info = TransportInfo {
                kind: "rawsocket",
                wire: Wire::RawSocket,
                peer: Arc::from(peer),
                max_frame: a.peer_max,
                ip,
                auth_methods: slot.endpoint.auth_methods.clone(),
                client_cn,
                keepalive: slot.endpoint.keepalive(),
            };
            let framing = RawSocketFraming::new(a.own_max);
            Some((
                Connection::new(stream, framing, Vec::new()),
                a.serializer,
                info,
                slot,
            ))
        }
        Some(Err(e)) => {
            warn!(%peer, reason = %e, "RawSocket handshake refused");
            None
        }
        None => {
            warn!(%peer, "RawSocket handshake timed out");
            None
        }
    }
}
