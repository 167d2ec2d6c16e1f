//! The WAMP HTTP long-poll transport (WAMP spec, "Long-Poll Transport"), under a path of a
//! WebSocket transport's port.
//!
//! `POST <base>/open` with `{"protocols": [...]}` negotiates a protocol and answers
//! `{"transport": ID, "protocol": P}`; then `POST <base>/ID/send` (the body: message(s), 204),
//! `POST <base>/ID/receive` (held until the session wrote something or the request timeout:
//! 200 with the message(s), or 204 empty) and `POST <base>/ID/close` (204). Every session
//! runs the normal connection driver over an in-memory pipe ([`pipe`]), so every feature
//! works here as on WebSocket. Answers carry CORS headers as Crossbar's do (autobahn-js sends
//! its XHRs with credentials).

mod codec;
mod pipe;

use std::collections::HashMap;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body as _, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, StatusCode};
use rand::distr::{Alphanumeric, SampleString};
use serde::Deserialize;
use tokio::io::DuplexStream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info};
use wamp_proto::Serializer;

use self::codec::Codec;
use self::pipe::{Pipe, PIPE_BUFFER};
use super::http::{reply, Client, Refused, Reply};
use super::websocket::origin_allowed;
use crate::config::LongPollConfig;

/// Characters of a transport id: 24 alphanumerics, about 143 bits (the id is the session's
/// only credential on the wire).
const ID_LEN: usize = 24;

/// A session driver future for a new transport.
pub(crate) type SessionTask = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Starts a session on the far end of a pipe: `None` when the transport holds as many
/// connections as it may.
pub(crate) type Starter =
    Box<dyn Fn(DuplexStream, Serializer, &Client) -> Option<SessionTask> + Send + Sync>;

/// What the long-poll transport of one WebSocket port needs.
pub(crate) struct Options {
    pub(crate) config: LongPollConfig,
    pub(crate) serializers: Vec<Serializer>,
    /// The largest request body (and message) accepted.
    pub(crate) max_message: usize,
    pub(crate) allowed_origins: Vec<String>,
    pub(crate) tracker: TaskTracker,
    pub(crate) shutdown: CancellationToken,
}

/// The long-poll transports of one WebSocket port.
pub(crate) struct LongPoll {
    options: Options,
    /// `config.path` without a trailing slash.
    base: String,
    start: Starter,
    transports: Registry,
    /// Sessions running on these transports.
    live: Arc<watch::Sender<usize>>,
}

/// The open transports by id.
type Registry = Arc<Mutex<HashMap<String, Arc<Pipe>>>>;

impl std::fmt::Debug for LongPoll {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LongPoll")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct OpenRequest {
    protocols: Vec<String>,
}

impl LongPoll {
    pub(crate) fn new(options: Options, start: Starter) -> LongPoll {
        LongPoll {
            base: options.config.path.trim_end_matches('/').to_owned(),
            options,
            start,
            transports: Registry::default(),
            live: Arc::new(watch::Sender::new(0)),
        }
    }

    /// The part of `path` after the base path (`open`, `ID/send`, ...), if it is under it.
    pub(crate) fn route<'p>(&self, path: &'p str) -> Option<&'p str> {
        let rest = path.strip_prefix(self.base.as_str())?;
        if rest.is_empty() {
            return Some(rest);
        }
        rest.strip_prefix('/')
    }

    /// Resolves once no session runs on these transports.
    pub(crate) async fn drained(&self) {
        let _ = self.live.subscribe().wait_for(|n| *n == 0).await;
    }

    fn pipe(&self, id: &str) -> Option<Arc<Pipe>> {
        self.transports.lock().ok()?.get(id).cloned()
    }

    fn remove(&self, id: &str) -> Option<Arc<Pipe>> {
        self.transports.lock().ok()?.remove(id)
    }

    /// Answers one request under the base path (`rest` is what follows it).
    pub(crate) async fn handle(
        &self,
        rest: &str,
        req: Request<Incoming>,
        client: &Client,
    ) -> Reply {
        // Logged without the transport id: it is the session's credential.
        let path = match rest.split_once('/') {
            Some((_, op)) => format!("{}/<id>/{op}", self.base),
            None => req.uri().path().to_owned(),
        };
        let cors = match self.cors(req.headers()) {
            Ok(cors) => cors,
            Err(refused) => return refused.reply(client, &path),
        };
        let mut answer = match self.answer(rest, req, client, &path).await {
            Ok(r) => r,
            Err(refused) => refused.reply(client, &path),
        };
        let h = answer.headers_mut();
        h.extend(cors);
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store, no-cache, must-revalidate, max-age=0"),
        );
        answer
    }

    async fn answer(
        &self,
        rest: &str,
        req: Request<Incoming>,
        client: &Client,
        path: &str,
    ) -> Result<Reply, Refused> {
        if req.method() == Method::OPTIONS {
            // A CORS preflight (autobahn-js posts application/json with credentials).
            let mut r = reply(StatusCode::NO_CONTENT, Bytes::new());
            let h = r.headers_mut();
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("POST, OPTIONS"),
            );
            let asked = req.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS);
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                asked
                    .cloned()
                    .unwrap_or(HeaderValue::from_static("content-type")),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("86400"),
            );
            return Ok(r);
        }
        let (pipe, op) = match rest.split_once('/') {
            None if rest == "open" => (None, "open"),
            Some((id, op @ ("send" | "receive" | "close"))) => {
                let pipe = self.pipe(id).ok_or_else(|| {
                    Refused::new(
                        StatusCode::NOT_FOUND,
                        "no such long-poll transport (never opened, closed or expired)",
                    )
                })?;
                (Some((id, pipe)), op)
            }
            _ => {
                return Err(Refused::new(
                    StatusCode::NOT_FOUND,
                    "no such long-poll resource (open, ID/send, ID/receive, ID/close)",
                ))
            }
        };
        if req.method() != Method::POST {
            let mut r = Refused::new(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("long-poll `{op}` takes POST"),
            )
            .reply(client, path);
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST, OPTIONS"));
            return Ok(r);
        }
        let timeout = Duration::from_millis(self.options.config.request_timeout_ms);
        let Some((id, pipe)) = pipe else {
            let body = self.body(req).await?;
            return self.open(&body, client);
        };
        match op {
            "send" => {
                let body = self.body(req).await?;
                let messages = pipe
                    .codec
                    .split(&body)
                    .map_err(|why| Refused::new(StatusCode::BAD_REQUEST, why))?;
                pipe.send(&messages, timeout).await?;
                Ok(reply(StatusCode::NO_CONTENT, Bytes::new()))
            }
            "receive" => match pipe.receive(timeout).await? {
                Some(body) => {
                    let mut r = reply(StatusCode::OK, body);
                    r.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static(pipe.codec.content_type()),
                    );
                    Ok(r)
                }
                None => Ok(reply(StatusCode::NO_CONTENT, Bytes::new())),
            },
            _ => {
                if let Some(pipe) = self.remove(id) {
                    pipe.close().await;
                    debug!(peer = %client.label, "long-poll transport closed by the client");
                }
                Ok(reply(StatusCode::NO_CONTENT, Bytes::new()))
            }
        }
    }

    /// The request body, at most `max_message` bytes (413 beyond).
    async fn body(&self, req: Request<Incoming>) -> Result<Bytes, Refused> {
        let max = self.options.max_message;
        let too_large = || {
            Refused::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is longer than {max} bytes"),
            )
        };
        let body = req.into_body();
        if body.size_hint().lower() > max as u64 {
            return Err(too_large());
        }
        match Limited::new(body, max).collect().await {
            Ok(b) => Ok(b.to_bytes()),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
            Err(e) => Err(Refused::new(
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {e}"),
            )),
        }
    }

    /// `open`: negotiates the protocol, starts the session and its expiry watch.
    fn open(&self, body: &[u8], client: &Client) -> Result<Reply, Refused> {
        let bad = |why: String| Refused::new(StatusCode::BAD_REQUEST, why);
        let text =
            std::str::from_utf8(body).map_err(|e| bad(format!("the body is not UTF-8: {e}")))?;
        let request: OpenRequest = serde_json::from_str(text).map_err(|e| {
            bad(format!(
                "the body is not a JSON object with `protocols` (a list of strings): {e}"
            ))
        })?;
        let codec =
            Codec::negotiate(&request.protocols, &self.options.serializers).ok_or_else(|| {
                let offered: Vec<&String> = request.protocols.iter().take(8).collect();
                bad(format!(
                    "no common protocol (offered: {offered:?}; spoken here: {:?})",
                    Codec::names(&self.options.serializers)
                ))
            })?;
        if self.options.shutdown.is_cancelled() {
            return Err(Refused::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the router is shutting down",
            ));
        }
        let (near, far) = tokio::io::duplex(PIPE_BUFFER);
        let session = (self.start)(far, codec.serializer, client)
            .ok_or_else(|| Refused::new(StatusCode::SERVICE_UNAVAILABLE, "too many connections"))?;
        let pipe = Arc::new(Pipe::new(codec, near));
        let id = Alphanumeric.sample_string(&mut rand::rng(), ID_LEN);
        if let Ok(mut t) = self.transports.lock() {
            t.insert(id.clone(), pipe.clone());
        }
        info!(peer = %client.label, protocol = %codec.name(), "long-poll transport opened");
        self.live.send_modify(|n| *n += 1);
        let live = self.live.clone();
        let session = Box::pin(session.map(move |()| live.send_modify(|n| *n -= 1)));
        self.options.tracker.spawn(watch(
            session,
            pipe,
            id.clone(),
            Duration::from_millis(self.options.config.session_timeout_ms),
            self.options.shutdown.clone(),
            self.transports.clone(),
        ));
        let answer = serde_json::json!({ "transport": id, "protocol": codec.name() });
        let mut r = reply(StatusCode::OK, Bytes::from(answer.to_string()));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        Ok(r)
    }

    /// CORS answer headers for a request's `Origin` (none without one); 403 for an origin
    /// `allowed_origins` does not allow.
    fn cors(&self, h: &HeaderMap) -> Result<HeaderMap, Refused> {
        let mut out = HeaderMap::new();
        let Some(origin) = h.get(header::ORIGIN) else {
            return Ok(out);
        };
        let text = origin.to_str().unwrap_or("");
        if text != "null" && !origin_allowed(text, &self.options.allowed_origins) {
            return Err(Refused::new(
                StatusCode::FORBIDDEN,
                format!("origin `{text}` is not allowed"),
            ));
        }
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        out.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        out.insert(header::VARY, HeaderValue::from_static("Origin"));
        Ok(out)
    }
}

/// Runs a transport's session; drops the transport when it goes unpolled for `idle` (the
/// session then reads the end of its stream and leaves). After the session ended, the id
/// keeps answering (`receive` 410, `close` 204) until the client closes it or it expires.
async fn watch(
    session: SessionTask,
    pipe: Arc<Pipe>,
    id: String,
    idle: Duration,
    shutdown: CancellationToken,
    registry: Registry,
) {
    let forget = || {
        if let Ok(mut t) = registry.lock() {
            t.remove(&id);
        }
    };
    let mut session = pin!(session);
    tokio::select! {
        () = session.as_mut() => {}
        () = pipe.expired(idle) => {
            if !pipe.is_closed() {
                info!(idle_ms = idle.as_millis(), "long-poll transport not polled in time; its session is closed");
                forget();
                pipe.close().await;
            }
            session.await;
        }
    }
    tokio::select! {
        () = pipe.expired(idle) => {}
        () = shutdown.cancelled() => {}
    }
    forget();
}
