//! The router's own caller: a session without a transport whose CALLs go through the dealer
//! like anyone's (the dynamic authenticator uses it), and whose RESULTs and ERRORs a small
//! task reads back from its outbox.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use wamp_proto::message::{Call, Cancel};
use wamp_proto::options::dict;
use wamp_proto::{uris, Dict, Id, Message, Payload, Serializer, Uri, UriCheck, Value};

use crate::dealer::{self, Dealer};
use crate::error::Refusal;
use crate::peer::{OutboundBudget, Outbox, PeerFeatures, SessionHandle, SessionInfo};

/// The router's internal caller.
#[derive(Debug)]
pub(crate) struct InternalCaller {
    handle: SessionHandle,
    next_request: AtomicU64,
    waiting: Arc<DashMap<u64, oneshot::Sender<Message>>>,
}

impl InternalCaller {
    /// A caller with session id `id` (authrole `trusted`), and the task reading its answers
    /// until `shutdown`.
    pub(crate) fn start(
        id: Id,
        budget: Arc<OutboundBudget>,
        shutdown: CancellationToken,
    ) -> Arc<InternalCaller> {
        let outbox = Arc::new(Outbox::new(budget));
        let handle = SessionHandle::new(
            id,
            Serializer::MsgPack,
            (Arc::from("router"), Arc::from(crate::config::TRUSTED_ROLE)),
            outbox.clone(),
            PeerFeatures::default(),
            (
                crate::peer::Wire::Unframed,
                usize::MAX,
                SessionInfo {
                    authmethod: "trusted",
                    authprovider: "router",
                    transport: "internal",
                    ..SessionInfo::default()
                },
            ),
        );
        let waiting: Arc<DashMap<u64, oneshot::Sender<Message>>> = Arc::default();
        tokio::spawn(read_answers(outbox, waiting.clone(), shutdown));
        Arc::new(InternalCaller {
            handle,
            next_request: AtomicU64::new(1),
            waiting,
        })
    }

    /// Calls `procedure` with `args`; the RESULT's payload, or the ERROR as a refusal (its
    /// URI and first argument), or a refusal when nobody answers within `timeout`.
    pub(crate) async fn call(
        &self,
        dealer: &Dealer,
        procedure: &str,
        args: Vec<Value>,
        timeout: Duration,
    ) -> Result<Payload, Refusal> {
        let n = self.next_request.fetch_add(1, Ordering::Relaxed);
        let request =
            Id::new(n).ok_or_else(|| Refusal::new(uris::RUNTIME_ERROR, "request ids exhausted"))?;
        let (tx, rx) = oneshot::channel();
        self.waiting.insert(n, tx);
        let call = Call {
            request,
            options: Dict::new(),
            procedure: Uri::new(procedure),
            payload: Payload::args(args),
        };
        if let Err(r) = dealer::call::call(&self.handle, dealer, UriCheck::Loose, call, false) {
            self.waiting.remove(&n);
            return Err(r);
        }
        let answer = tokio::time::timeout(timeout, rx).await;
        self.waiting.remove(&n);
        match answer {
            Ok(Ok(Message::Result(r))) => Ok(r.payload),
            Ok(Ok(Message::Error(mut e))) => {
                let text = e
                    .payload
                    .materialize()
                    .ok()
                    .and_then(|()| {
                        e.payload
                            .args
                            .as_ref()?
                            .first()?
                            .as_str()
                            .map(str::to_owned)
                    })
                    .unwrap_or_else(|| format!("`{procedure}` answered {}", e.error));
                Err(Refusal::new(static_uri(e.error.as_str()), text))
            }
            Ok(_) => Err(Refusal::new(
                uris::RUNTIME_ERROR,
                format!("`{procedure}` gave no answer"),
            )),
            Err(_) => {
                // Ends the call (INTERRUPT to a callee that supports it); its late answer is
                // ignored.
                let cancel = Cancel {
                    request,
                    options: dict([("mode", "killnowait".into())]),
                };
                let _ = dealer::answer::cancel(&self.handle, cancel);
                Err(Refusal::new(
                    uris::TIMEOUT,
                    format!(
                        "`{procedure}` did not answer within {} ms",
                        timeout.as_millis()
                    ),
                ))
            }
        }
    }
}

/// An ERROR URI from a callee as one of the refusal URIs a client can act on (refusals carry
/// `&'static str`): the authentication and authorization ones pass, others become
/// `authentication_failed`.
fn static_uri(uri: &str) -> &'static str {
    [
        uris::NOT_AUTHORIZED,
        uris::NO_SUCH_PRINCIPAL,
        uris::NO_SUCH_ROLE,
        uris::AUTHENTICATION_FAILED,
        uris::NO_AUTH_METHOD,
    ]
    .into_iter()
    .find(|u| *u == uri)
    .unwrap_or(uris::AUTHENTICATION_FAILED)
}

/// Reads the internal caller's outbox: each RESULT or ERROR goes to whoever waits for it.
async fn read_answers(
    outbox: Arc<Outbox>,
    waiting: Arc<DashMap<u64, oneshot::Sender<Message>>>,
    shutdown: CancellationToken,
) {
    let mut frames = VecDeque::new();
    loop {
        let more = std::future::poll_fn(|cx| {
            outbox.take(&mut frames);
            if !frames.is_empty() || !outbox.park(cx.waker()) {
                return std::task::Poll::Ready(());
            }
            std::task::Poll::Pending
        });
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = more => {}
        }
        for frame in frames.drain(..) {
            let request = match Serializer::MsgPack.decode(&frame.bytes) {
                Ok(m @ Message::Result(_)) | Ok(m @ Message::Error(_)) => m,
                _ => continue,
            };
            let id = match &request {
                Message::Result(r) => r.request.get(),
                Message::Error(e) => e.request.get(),
                _ => continue,
            };
            if let Some((_, tx)) = waiting.remove(&id) {
                let _ = tx.send(request);
            }
        }
    }
}
