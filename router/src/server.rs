//! The server: listeners (TCP, Unix sockets), accept loops, transport handshakes, and
//! graceful shutdown.

mod handshake;
mod longpoll;

use handshake::spawn;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, UnixListener};
use tracing::{info, warn};

use crate::config::{AuthMethod, Config, ConfigError, Listen, TransportConfig};
use crate::realm::Realm;
use crate::reload::{self, ReloadReport};
use crate::session::KeepAlive;
use crate::shared::RouterShared;
use crate::transport::http::Routes;
use crate::transport::tls::Tls;

/// A running router: bound listeners and their connections.
///
/// Embeddable: bind port 0 in tests and read [`Server::urls`] or [`Server::local_addrs`].
#[derive(Debug)]
pub struct Server {
    shared: Arc<RouterShared>,
    addrs: Vec<SocketAddr>,
    urls: Vec<String>,
    /// Unix socket files to remove at shutdown.
    socket_files: Vec<PathBuf>,
    endpoints: Vec<Arc<Endpoint>>,
    /// The configuration in force (a reload replaces what it can of it).
    config: Mutex<Config>,
}

/// One transport, ready to serve connections.
#[derive(Debug)]
struct Endpoint {
    config: TransportConfig,
    /// Connections currently open on this transport.
    open: AtomicUsize,
    /// The authentication methods allowed here, shared by its sessions.
    auth_methods: Option<Arc<[AuthMethod]>>,
    /// TLS, when the transport has it.
    tls: Option<Tls>,
    /// The plain-HTTP routes of a WebSocket transport.
    http: Option<Arc<Routes>>,
}

impl Endpoint {
    fn keepalive(&self) -> KeepAlive {
        let (interval, timeout) = self.config.keepalive_ms();
        KeepAlive {
            interval: Duration::from_millis(interval),
            timeout: Duration::from_millis(timeout),
        }
    }

    /// The endpoint of `config`, with its TLS files loaded (an error names the file).
    fn new(config: TransportConfig, shared: &Arc<RouterShared>) -> io::Result<Arc<Endpoint>> {
        let tls = config.tls().map(Tls::load).transpose()?;
        Ok(Arc::new_cyclic(|me| Endpoint {
            auth_methods: config.auth_methods().map(Arc::from),
            http: longpoll::routes(&config, me, shared),
            config,
            open: AtomicUsize::new(0),
            tls,
        }))
    }
}

/// Who is on the other end of a connection.
#[derive(Debug)]
struct Peer {
    /// `tcp:ADDR` or `unix`.
    label: String,
    ip: Option<IpAddr>,
    /// The verified TLS client certificate's common name.
    client_cn: Option<String>,
}

/// A connection counted against its transport's `max_connections` while it lives.
#[derive(Debug)]
struct Slot {
    endpoint: Arc<Endpoint>,
    /// More connections than the transport allows: the handshake refuses this one.
    over: bool,
}

impl Slot {
    fn take(endpoint: &Arc<Endpoint>) -> Slot {
        let n = endpoint.open.fetch_add(1, Ordering::Relaxed) + 1;
        Slot {
            over: n > endpoint.config.max_connections(),
            endpoint: endpoint.clone(),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.endpoint.open.fetch_sub(1, Ordering::Relaxed);
    }
}

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Server {
    /// Binds every transport of `config` and starts accepting connections.
    pub async fn start(config: Config) -> io::Result<Server> {
        let realms = config
            .realms
            .iter()
            .map(|r| {
                (
                    r.name.clone(),
                    Arc::new(Realm::new(r, config.cluster.is_some())),
                )
            })
            .collect();
        let shared = Arc::new(RouterShared::new(realms, config.router.clone()));
        shared.tracker.spawn(crate::shed::run(shared.clone()));
        #[cfg(feature = "cluster-nats")]
        if let Some(c) = &config.cluster {
            let cluster = crate::cluster::Cluster::start(c, &config.realms, &shared).await?;
            let _ = shared.cluster.set(cluster);
        }
        let mut server = Server {
            shared,
            addrs: Vec::new(),
            urls: Vec::new(),
            socket_files: Vec::new(),
            endpoints: Vec::new(),
            config: Mutex::new(config.clone()),
        };
        for t in config.transports {
            // TLS files first: a bad one stops the start before anything listens.
            let endpoint = Endpoint::new(t, &server.shared)?;
            let t = &endpoint.config;
            let (listener, url) = match t.listen() {
                Listen::Tcp(bind) => {
                    let l = TcpListener::bind(bind).await.map_err(|e| {
                        io::Error::new(e.kind(), format!("cannot listen on {bind}: {e}"))
                    })?;
                    let addr = l.local_addr()?;
                    server.addrs.push(addr);
                    let s = if endpoint.tls.is_some() { "s" } else { "" };
                    let url = match t {
                        TransportConfig::WebSocket(w) => format!("ws{s}://{addr}{}", w.path),
                        TransportConfig::RawSocket(_) => format!("rs{s}://{addr}"),
                    };
                    (Listener::Tcp(l), url)
                }
                Listen::Unix { path, mode } => {
                    let l = bind_unix(path, *mode)?;
                    server.socket_files.push(path.clone());
                    (Listener::Unix(l), format!("unix://{}", path.display()))
                }
            };
            let kind = match t {
                TransportConfig::WebSocket(_) => "websocket",
                TransportConfig::RawSocket(_) => "rawsocket",
            };
            match (t.listen(), server.addrs.last()) {
                (Listen::Tcp(_), Some(addr)) => {
                    info!(%url, %addr, transport = kind, "listening");
                }
                _ => info!(%url, transport = kind, "listening"),
            }
            server.urls.push(url);
            server.endpoints.push(endpoint.clone());
            let shared = server.shared.clone();
            server
                .shared
                .tracker
                .spawn(accept_loop(listener, endpoint, shared));
        }
        Ok(server)
    }

    /// Every metric, in the Prometheus / OpenMetrics text format (what `GET /metrics`
    /// answers): sessions by realm and transport, messages and bytes in and out by type,
    /// outbound queues, slow-consumer closes, refusals by URI (limits hit), authentication
    /// failures, and a call latency histogram.
    pub fn metrics(&self) -> String {
        crate::metrics::render(&self.shared)
    }

    /// Re-reads every TLS transport's certificate, key and CA files (on SIGHUP). Open
    /// connections keep theirs; a transport whose files fail to load keeps the old ones (the
    /// first such error is returned, each is logged).
    pub fn reload_tls(&self) -> io::Result<()> {
        let mut first = None;
        for (e, url) in self.endpoints.iter().zip(&self.urls) {
            let Some(tls) = &e.tls else { continue };
            match tls.reload() {
                Ok(()) => {
                    info!(%url, certificate = %tls.certificate_file().display(), "TLS files reloaded")
                }
                Err(err) => {
                    warn!(%url, cause = %err, "TLS reload failed; keeping the current files");
                    first.get_or_insert(err);
                }
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Puts `config` in force where a running router can: realms added and removed (the
    /// sessions of a removed realm get GOODBYE `wamp.close.close_realm`), users, roles and
    /// permissions replaced (the next authentication and every session's next action use
    /// the new ones; sessions whose role was removed get GOODBYE `wamp.close.killed`). Other
    /// sessions keep running. Changes that need a restart are reported and logged; the old
    /// values stay in force. TLS files are reloaded by [`Server::reload_tls`].
    pub fn reload(&self, config: Config) -> ReloadReport {
        let mut current = self.config.lock().unwrap_or_else(|e| e.into_inner());
        let (report, effective) = reload::apply(&self.shared, &current, &config);
        *current = effective;
        reload::log(&report);
        report
    }

    /// Checks the file at `path` like [`crate::check_config_file`] and, if it is good, puts
    /// it in force with [`Server::reload`]. A bad file is refused (and logged): the current
    /// configuration stays in force.
    pub fn reload_file(&self, path: &Path) -> Result<ReloadReport, ConfigError> {
        match crate::check_config_file(path) {
            Ok(config) => Ok(self.reload(config)),
            Err(e) => {
                warn!(error = %e, "configuration reload refused; the current configuration stays in force");
                Err(e)
            }
        }
    }

    /// The bound address of each TCP transport, in configuration order.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// One URL per transport, in configuration order: `ws://ADDR/PATH`, `rs://ADDR`, or
    /// `unix:///PATH` (RawSocket on a Unix socket).
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// The URL of the first transport (see [`Server::urls`]).
    pub fn url(&self) -> String {
        self.urls.first().cloned().unwrap_or_default()
    }

    /// How many sessions are joined, over all realms.
    pub fn session_count(&self) -> usize {
        self.shared.realms().iter().map(|r| r.sessions.len()).sum()
    }

    /// How many entries the router's tables hold now (sessions, subscriptions,
    /// registrations, calls in flight, timers, connections): all back to zero once every
    /// client has left.
    pub fn table_sizes(&self) -> crate::TableSizes {
        crate::stats::table_sizes(&self.shared)
    }

    /// A handle on this router's routing table, for the tests' harness (not an API).
    #[doc(hidden)]
    pub fn route_probe(&self) -> crate::__testing::RouteProbe {
        crate::probe::RouteProbe(self.shared.clone())
    }

    /// Stops accepting, sends every session GOODBYE `wamp.close.system_shutdown`, waits for
    /// the replies (bounded by `goodbye_timeout_ms`) and for every connection to close.
    pub async fn shutdown(self) {
        info!(sessions = self.session_count(), "shutting down");
        self.shared.stop();
        self.shared.tracker.close();
        // Bounded twice over: sessions end by themselves after the GOODBYE timeout.
        let limit = Duration::from_millis(self.shared.options.goodbye_timeout_ms * 2 + 1000);
        if tokio::time::timeout(limit, self.shared.tracker.wait())
            .await
            .is_err()
        {
            warn!("some connections did not close in time");
        }
        for path in &self.socket_files {
            let _ = std::fs::remove_file(path);
        }
        info!("shutdown complete");
    }
}

/// Binds a Unix socket at `path` (replacing a stale socket file, never another kind of
/// file) and sets its mode.
fn bind_unix(path: &std::path::Path, mode: Option<u32>) -> io::Result<UnixListener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let named = |e: io::Error| {
        io::Error::new(
            e.kind(),
            format!("cannot listen on {}: {e}", path.display()),
        )
    };
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(named(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "a file that is not a socket is in the way",
            )));
        }
        // A socket nobody listens on any more: a previous run's.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(named(io::Error::new(
                io::ErrorKind::AddrInUse,
                "another process is listening there",
            )));
        }
        std::fs::remove_file(path).map_err(named)?;
    }
    let listener = UnixListener::bind(path).map_err(named)?;
    if let Some(mode) = mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(named)?;
    }
    Ok(listener)
}

async fn accept_loop(listener: Listener, endpoint: Arc<Endpoint>, shared: Arc<RouterShared>) {
    loop {
        let accepted = tokio::select! {
            () = shared.shutdown.cancelled() => return,
            a = accept(&listener) => a,
        };
        match accepted {
            Ok(Accepted::Tcp(stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let peer = Peer {
                    label: format!("tcp:{peer}"),
                    ip: Some(peer.ip()),
                    client_cn: None,
                };
                spawn(stream, peer, &endpoint, &shared);
            }
            Ok(Accepted::Unix(stream)) => {
                let peer = Peer {
                    label: "unix".to_owned(),
                    ip: None,
                    client_cn: None,
                };
                spawn(stream, peer, &endpoint, &shared);
            }
            Err(e) => {
                // E.g. out of file descriptors: back off instead of spinning.
                warn!(cause = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

enum Accepted {
    Tcp(tokio::net::TcpStream, SocketAddr),
    Unix(tokio::net::UnixStream),
}

async fn accept(listener: &Listener) -> io::Result<Accepted> {
    match listener {
        Listener::Tcp(l) => l.accept().await.map(|(s, p)| Accepted::Tcp(s, p)),
        Listener::Unix(l) => l.accept().await.map(|(s, _)| Accepted::Unix(s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpStream;

    /// An idle connection costs its task's allocation: keep the future small (it was 1.5 KiB
    /// with the handshake and close states inline; 448 bytes before authentication added the
    /// pending-HELLO box and the failure delay, keep-alive its two flags and timer state,
    /// the meta API the testaments' box, `pause_publishers` the handle a publisher waits on).
    #[tokio::test]
    async fn connection_task_stays_small() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let config = Config::embedded();
        let shared = Arc::new(RouterShared::new(Default::default(), config.router.clone()));
        assert_eq!(config.transports.len(), 2, "websocket and rawsocket");
        for t in config.transports {
            let _client = TcpStream::connect(listener.local_addr().unwrap())
                .await
                .unwrap();
            let (stream, peer) = listener.accept().await.unwrap();
            let endpoint = Endpoint::new(t, &shared).unwrap();
            let peer = Peer {
                label: peer.to_string(),
                ip: Some(peer.ip()),
                client_cn: None,
            };
            let task = handshake::connection(stream, peer, &endpoint, &shared);
            let size = std::mem::size_of_val(&task);
            assert!(size <= 480, "connection future is {size} bytes");
        }
    }
}
