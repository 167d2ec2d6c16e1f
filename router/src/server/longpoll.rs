//! Plain HTTP on a WebSocket port: the route table of each WebSocket transport, and the
//! sessions of its long-poll transports, started like any connection's (counted against the
//! transport's `max_connections`, the same driver over an in-memory pipe).

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::FutureExt;
use hyper::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream};
use tracing::warn;
use wamp_proto::Serializer;

use super::{Endpoint, Slot};
use crate::config::TransportConfig;
use crate::metrics;
use crate::peer::Wire;
use crate::session::{driver, KeepAlive, TransportInfo};
use crate::shared::RouterShared;
use crate::transport::connection::Connection;
use crate::transport::http::{self, Client, Probe, Routes, Timeouts};
use crate::transport::longpoll::{LongPoll, Options, SessionTask, Starter};
use crate::transport::rawsocket::RawSocketFraming;

/// The largest message a RawSocket frame (inside the pipe) carries.
const MAX_FRAME: usize = 1 << 24;

/// A connection whose first request is plain HTTP.
#[derive(Debug)]
pub(super) struct Plain<S> {
    pub(super) stream: S,
    /// The bytes the WebSocket handshake read.
    pub(super) head: Vec<u8>,
    pub(super) client: Client,
    /// The connection's place in its transport's count.
    pub(super) slot: Slot,
}

/// Serves a plain-HTTP connection until it closes.
pub(super) async fn serve_plain<S>(plain: Plain<S>, router: Arc<RouterShared>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Some(routes) = plain.slot.endpoint.http.clone() else {
        return;
    };
    http::serve(
        plain.stream,
        plain.head,
        routes,
        Arc::new(plain.client),
        router.shutdown.clone(),
        Timeouts {
            header: Duration::from_millis(router.options.handshake_timeout_ms),
            goodbye: Duration::from_millis(router.options.goodbye_timeout_ms),
        },
    )
    .await;
    drop(plain.slot);
}

/// The plain routes of `config` (a WebSocket transport), with its long-poll transport.
pub(super) fn routes(
    config: &TransportConfig,
    endpoint: &Weak<Endpoint>,
    shared: &Arc<RouterShared>,
) -> Option<Arc<Routes>> {
    let TransportConfig::WebSocket(t) = config else {
        return None;
    };
    let longpoll = t.longpoll.clone().map(|lp| {
        let max_message = t.max_message_size.min(MAX_FRAME);
        let options = Options {
            config: lp,
            serializers: t.serializers.iter().map(|s| s.0).collect(),
            max_message,
            allowed_origins: t.allowed_origins.clone(),
            tracker: shared.tracker.clone(),
            shutdown: shared.shutdown.clone(),
        };
        Arc::new(LongPoll::new(
            options,
            starter(endpoint.clone(), shared.clone(), max_message),
        ))
    });
    let router = Arc::downgrade(shared);
    let metrics = t.metrics.then(|| {
        let router = router.clone();
        Probe(Box::new(move || match router.upgrade() {
            Some(r) => (StatusCode::OK, metrics::CONTENT_TYPE, metrics::render(&r)),
            None => gone(),
        }))
    });
    let health = t.health.then(|| {
        Probe(Box::new(move || match router.upgrade() {
            Some(r) if !r.shutdown.is_cancelled() => {
                let sessions: usize = r.realms().iter().map(|r| r.sessions.len()).sum();
                let body = format!("{{\"status\":\"ok\",\"sessions\":{sessions}}}\n");
                (StatusCode::OK, "application/json", body)
            }
            _ => gone(),
        }))
    });
    Some(Arc::new(Routes {
        ws_path: t.path.clone(),
        longpoll,
        metrics,
        health,
    }))
}

/// `/health` (and `/metrics`) while the router shuts down.
fn gone() -> (StatusCode, &'static str, String) {
    let body = "{\"status\":\"shutting down\"}\n".to_owned();
    (StatusCode::SERVICE_UNAVAILABLE, "application/json", body)
}

/// Starts a long-poll transport's session, if its WebSocket transport has room for one
/// more connection.
fn starter(endpoint: Weak<Endpoint>, shared: Arc<RouterShared>, max_message: usize) -> Starter {
    Box::new(
        move |io: DuplexStream, serializer: Serializer, client: &Client| -> Option<SessionTask> {
            let endpoint = endpoint.upgrade()?;
            let slot = Slot::take(&endpoint);
            if slot.over {
                shared.metrics.limit_hit("max_connections");
                warn!(peer = %client.label, limit = endpoint.config.max_connections(), "connection limit reached; long-poll transport refused");
                return None;
            }
            let info = TransportInfo {
                kind: "longpoll",
                wire: Wire::RawSocket,
                peer: client.label.clone(),
                max_frame: max_message,
                ip: client.ip,
                auth_methods: endpoint.auth_methods.clone(),
                client_cn: client.client_cn.clone(),
                // The pipe has no pings: an unpolled transport expires instead.
                keepalive: KeepAlive::default(),
            };
            let conn = Connection::new(io, RawSocketFraming::new(max_message), Vec::new());
            let run = driver::run(conn, serializer, info, shared.clone());
            Some(Box::pin(run.map(move |()| drop(slot))))
        },
    )
}
