//! The server: listeners, accept loops, shared router state and graceful shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use futures_util::future::Either;
use futures_util::FutureExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};
use wamp_proto::{Id, Serializer};

use crate::config::{Config, RouterOptions, TransportConfig};
use crate::realm::Realm;
use crate::session;
use crate::transport::websocket::{self, Refusal};

/// State shared by every connection of a router.
#[derive(Debug)]
pub(crate) struct RouterShared {
    pub(crate) realms: HashMap<String, Arc<Realm>>,
    /// Every live session id, router-wide, to keep ids unique.
    pub(crate) session_ids: DashMap<Id, ()>,
    pub(crate) options: RouterOptions,
    pub(crate) shutdown: CancellationToken,
    pub(crate) tracker: TaskTracker,
}

impl RouterShared {
    /// A fresh, unique, random session id.
    pub(crate) fn new_session_id(&self) -> Id {
        loop {
            let id = Id::random();
            if let dashmap::Entry::Vacant(v) = self.session_ids.entry(id) {
                v.insert(());
                return id;
            }
        }
    }
}

/// A running router: bound listeners and their connections.
///
/// Embeddable: bind port 0 in tests and read [`Server::local_addrs`].
#[derive(Debug)]
pub struct Server {
    shared: Arc<RouterShared>,
    addrs: Vec<SocketAddr>,
    paths: Vec<String>,
}

impl Server {
    /// Binds every transport of `config` and starts accepting connections.
    pub async fn start(config: Config) -> io::Result<Server> {
        let realms = config
            .realms
            .iter()
            .map(|r| (r.name.clone(), Arc::new(Realm::new(r))))
            .collect();
        let shared = Arc::new(RouterShared {
            realms,
            session_ids: DashMap::new(),
            options: config.router.clone(),
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
        });
        let mut addrs = Vec::new();
        let mut paths = Vec::new();
        for t in &config.transports {
            let listener = TcpListener::bind(t.bind).await.map_err(|e| {
                io::Error::new(e.kind(), format!("cannot listen on {}: {e}", t.bind))
            })?;
            let addr = listener.local_addr()?;
            info!(%addr, path = %t.path, serializers = ?t.serializers.iter().map(|s| s.0.name()).collect::<Vec<_>>(), "listening (websocket)");
            addrs.push(addr);
            paths.push(t.path.clone());
            shared
                .tracker
                .spawn(accept_loop(listener, Arc::new(t.clone()), shared.clone()));
        }
        Ok(Server {
            shared,
            addrs,
            paths,
        })
    }

    /// The bound address of each transport, in configuration order.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The `ws://` URL of the first transport.
    pub fn url(&self) -> String {
        match (self.addrs.first(), self.paths.first()) {
            (Some(a), Some(p)) => format!("ws://{a}{p}"),
            _ => String::new(),
        }
    }

    /// How many sessions are joined, over all realms.
    pub fn session_count(&self) -> usize {
        self.shared.realms.values().map(|r| r.sessions.len()).sum()
    }

    /// Stops accepting, sends every session GOODBYE `wamp.close.system_shutdown`, waits for
    /// the replies (bounded by `goodbye_timeout_ms`) and for every connection to close.
    pub async fn shutdown(self) {
        info!(sessions = self.session_count(), "shutting down");
        self.shared.shutdown.cancel();
        self.shared.tracker.close();
        // Bounded twice over: sessions end by themselves after the GOODBYE timeout.
        let limit = Duration::from_millis(self.shared.options.goodbye_timeout_ms * 2 + 1000);
        if tokio::time::timeout(limit, self.shared.tracker.wait())
            .await
            .is_err()
        {
            warn!("some connections did not close in time");
        }
        info!("shutdown complete");
    }
}

async fn accept_loop(listener: TcpListener, t: Arc<TransportConfig>, shared: Arc<RouterShared>) {
    loop {
        let accepted = tokio::select! {
            () = shared.shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                shared
                    .tracker
                    .spawn(connection(stream, peer, t.clone(), shared.clone()));
            }
            Err(e) => {
                // E.g. out of file descriptors: back off instead of spinning.
                warn!(cause = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// One connection's task: the handshake, then the session.
fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    t: Arc<TransportConfig>,
    shared: Arc<RouterShared>,
) -> impl Future<Output = ()> + Send {
    let max_message = t.max_message_size;
    let session_router = shared.clone();
    // Boxed, and chained rather than awaited in one async fn: the handshake's state is freed
    // once it is done, and nothing of it stays in the task for the life of the connection.
    Box::pin(handshake(stream, peer, t, shared)).then(move |accepted| match accepted {
        Some((io, serializer)) => Either::Left(session::run(
            io,
            serializer,
            max_message,
            peer,
            session_router,
        )),
        None => Either::Right(std::future::ready(())),
    })
}

/// The WebSocket handshake, bounded by `handshake_timeout_ms` and by shutdown.
async fn handshake(
    stream: TcpStream,
    peer: SocketAddr,
    t: Arc<TransportConfig>,
    shared: Arc<RouterShared>,
) -> Option<(TcpStream, Serializer)> {
    let limit = Duration::from_millis(shared.options.handshake_timeout_ms);
    let accepted = tokio::select! {
        () = shared.shutdown.cancelled() => return None,
        r = tokio::time::timeout(limit, websocket::accept(stream, &t)) => r,
    };
    match accepted {
        Ok(Ok(accepted)) => return Some(accepted),
        Ok(Err(Refusal::Http(status, why))) => {
            warn!(%peer, status = status.as_u16(), reason = %why, "connection refused");
        }
        Ok(Err(Refusal::Handshake(why))) => {
            warn!(%peer, reason = %why, "WebSocket handshake failed");
        }
        Err(_) => warn!(%peer, "WebSocket handshake timed out"),
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An idle connection costs its task's allocation: keep the future small (it was 1.5 KiB
    /// with the handshake and close states inline).
    #[tokio::test]
    async fn connection_task_stays_small() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (stream, peer) = listener.accept().await.unwrap();
        let config = Config::embedded();
        let shared = Arc::new(RouterShared {
            realms: HashMap::new(),
            session_ids: DashMap::new(),
            options: config.router.clone(),
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
        });
        let t = Arc::new(config.transports[0].clone());
        let size = std::mem::size_of_val(&connection(stream, peer, t, shared));
        assert!(size <= 448, "connection future is {size} bytes");
    }
}
