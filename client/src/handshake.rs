//! The opening handshake (HELLO, CHALLENGE/AUTHENTICATE, WELCOME), shared by the first
//! connect and every reconnect.

use std::time::Duration;

use wamp_proto::message::{Abort, Authenticate, Hello};
use wamp_proto::options::dict;
use wamp_proto::{uris, Dict, Id, Message, Serializer, Uri, Value};

use crate::auth::{self, Auth, Unanswered};
use crate::call::CALLER_FEATURES;
use crate::client::{detail_message, encode, AGENT};
use crate::error::{ConnectError, TransportError};
use crate::publish::PUBLISHER_FEATURES;
use crate::register::CALLEE_FEATURES;
use crate::subscribe::SUBSCRIBER_FEATURES;
use crate::tls::TlsOptions;
use crate::transport::{self, BoxTransport, Incoming};

/// Everything needed to open a connection and join: kept by the connection task to
/// reconnect with the same URL, realm, serializers, TLS options and credentials.
#[derive(Debug, Clone)]
pub(crate) struct Dialer {
    pub(crate) url: String,
    pub(crate) realm: String,
    pub(crate) serializers: Vec<Serializer>,
    pub(crate) tls: TlsOptions,
    pub(crate) auth: Auth,
    pub(crate) timeout: Duration,
}

/// A joined session's connection and WELCOME.
pub(crate) struct Joined {
    pub(crate) transport: BoxTransport,
    pub(crate) serializer: Serializer,
    pub(crate) session: Id,
    pub(crate) welcome: Dict,
}

impl Dialer {
    /// Connects and joins, within the connect timeout.
    pub(crate) async fn dial(&self) -> Result<Joined, ConnectError> {
        let timeout = self.timeout;
        tokio::time::timeout(timeout, self.handshake())
            .await
            .map_err(|_| ConnectError::Timeout(timeout))?
    }

    async fn handshake(&self) -> Result<Joined, ConnectError> {
        let realm = self.realm.as_str();
        let (mut transport, serializer) =
            transport::open(&self.url, &self.serializers, &self.tls).await?;
        let mut details = hello_details();
        self.auth.add_to_hello(&mut details);
        let hello = Message::from(Hello {
            realm: Uri::new(realm),
            details,
        });
        send_handshake(&mut transport, serializer, &hello, "HELLO").await?;

        // HELLO → WELCOME | ABORT | CHALLENGE → AUTHENTICATE → WELCOME | ABORT.
        let mut challenged = false;
        loop {
            let msg = match transport.recv().await {
                Some(Ok(Incoming::Message(m))) => {
                    m.map_err(|e| ConnectError::Protocol(e.to_string()))?
                }
                Some(Ok(Incoming::Closed(_))) | None => return Err(ConnectError::Closed),
                Some(Err(e)) => return Err(ConnectError::Transport(e)),
            };
            let c = match msg {
                Message::Welcome(w) => {
                    return Ok(Joined {
                        transport,
                        serializer,
                        session: w.session,
                        welcome: w.details,
                    })
                }
                Message::Abort(a) => return Err(refused(&a)),
                Message::Challenge(c) => c,
                other => {
                    return Err(ConnectError::Protocol(format!(
                        "expected WELCOME, got {}",
                        other.name()
                    )))
                }
            };
            if challenged {
                let why = "a second CHALLENGE (this client answers one)".to_owned();
                abort(&mut transport, serializer, uris::PROTOCOL_VIOLATION, &why).await;
                return Err(ConnectError::Protocol(why));
            }
            challenged = true;
            let signature = match self.auth.answer(&c).await {
                Ok(s) => s,
                Err(Unanswered::NotOffered(why)) => {
                    abort(&mut transport, serializer, uris::PROTOCOL_VIOLATION, &why).await;
                    return Err(ConnectError::Protocol(why));
                }
                Err(Unanswered::Refused(reason)) => {
                    abort(&mut transport, serializer, CANNOT_AUTHENTICATE, &reason).await;
                    return Err(ConnectError::ChallengeRefused {
                        method: c.auth_method,
                        reason,
                    });
                }
            };
            let authenticate = Message::from(Authenticate {
                signature,
                extra: Dict::new(),
            });
            tracing::debug!(authmethod = %c.auth_method, "answering CHALLENGE");
            send_handshake(&mut transport, serializer, &authenticate, "AUTHENTICATE").await?;
        }
    }
}

/// The ABORT reason this client sends when it will not answer a CHALLENGE (autobahn's).
const CANNOT_AUTHENTICATE: &str = "wamp.error.cannot_authenticate";

/// Sends a handshake message (HELLO, AUTHENTICATE), checking the router's length limit.
async fn send_handshake(
    transport: &mut BoxTransport,
    serializer: Serializer,
    msg: &Message,
    what: &str,
) -> Result<(), ConnectError> {
    let frame = encode(serializer, msg).map_err(ConnectError::Protocol)?;
    let max = transport.max_message_len();
    if frame.as_bytes().len() > max {
        return Err(ConnectError::Transport(TransportError::new(format!(
            "{what} is {} octets, over the router's maximum of {max}",
            frame.as_bytes().len()
        ))));
    }
    transport.send(frame).await.map_err(ConnectError::Transport)
}

/// Ends a handshake this client gives up: ABORT `reason` (best effort), then close.
async fn abort(transport: &mut BoxTransport, serializer: Serializer, reason: &str, message: &str) {
    let abort = Message::from(Abort {
        details: dict([("message", message.into())]),
        reason: Uri::new(reason),
        payload: Default::default(),
    });
    if let Ok(frame) = encode(serializer, &abort) {
        let _ = transport.send(frame).await;
    }
    let _ = transport.close().await;
}

/// The error for the router's ABORT during the handshake.
fn refused(a: &Abort) -> ConnectError {
    let reason = a.reason.to_string();
    let message = detail_message(&a.details);
    if auth::is_auth_failure(&reason) {
        ConnectError::AuthenticationFailed { reason, message }
    } else {
        ConnectError::Aborted { reason, message }
    }
}

/// HELLO.Details: the agent and the four client roles with the features this client
/// implements (`true` flags under `roles.<role>.features`).
pub(crate) fn hello_details() -> Dict {
    let role = |features: &[&str]| {
        let f = features
            .iter()
            .map(|f| ((*f).to_owned(), Value::Bool(true)));
        Value::Dict(dict([("features", Value::Dict(f.collect()))]))
    };
    dict([
        ("agent", AGENT.into()),
        (
            "roles",
            Value::Dict(dict([
                ("caller", role(CALLER_FEATURES)),
                ("callee", role(CALLEE_FEATURES)),
                ("publisher", role(PUBLISHER_FEATURES)),
                ("subscriber", role(SUBSCRIBER_FEATURES)),
            ])),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_announces_roles_features_and_agent() {
        let d = hello_details();
        assert_eq!(d["agent"].as_str(), Some(AGENT));
        assert!(AGENT.starts_with("wamp-client-rs/"));
        let roles = d["roles"].as_dict().unwrap();
        let features = |r: &str| roles[r].as_dict().unwrap()["features"].clone();
        let flags = |names: &[&str]| {
            Value::Dict(names.iter().map(|n| ((*n).into(), true.into())).collect())
        };
        assert_eq!(
            features("caller"),
            flags(&[
                "progressive_call_results",
                "call_canceling",
                "call_timeout",
                "caller_identification",
                "progressive_call_invocations"
            ])
        );
        assert_eq!(
            features("callee"),
            flags(&[
                "progressive_call_results",
                "call_canceling",
                "pattern_based_registration",
                "shared_registration",
                "caller_identification",
                "registration_revocation",
                "progressive_call_invocations"
            ])
        );
        assert_eq!(
            features("publisher"),
            flags(&[
                "publisher_exclusion",
                "publisher_identification",
                "subscriber_blackwhite_listing"
            ])
        );
        assert_eq!(
            features("subscriber"),
            flags(&[
                "publisher_identification",
                "pattern_based_subscription",
                "event_retention",
                "event_history",
                "subscription_revocation"
            ])
        );
        assert_eq!(roles.len(), 4);
    }
}
