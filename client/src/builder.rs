//! [`ClientBuilder`]: the connection options, and [`ClientBuilder::connect`].

use std::time::Duration;

use wamp_proto::Serializer;

use crate::auth::{Auth, CryptosignKey, Method};
use crate::client::{Client, DEFAULT_EVENT_BUFFER};
use crate::connection::Settings;
use crate::error::ConnectError;
use crate::handshake::Dialer;
use crate::reconnect::ReconnectPolicy;
use crate::tls::TlsOptions;

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_LEAVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Options for [`Client`]; finish with [`ClientBuilder::connect`].
///
/// Authentication: [`ClientBuilder::ticket`], [`ClientBuilder::wampcra`] and
/// [`ClientBuilder::cryptosign`] each offer a method with its credential, in the order
/// called ([`ClientBuilder::anonymous`] adds anonymous as a fallback); the router uses the
/// first one it allows. With none of them the client joins anonymously. `Debug` never shows
/// a ticket, a secret or a private key.
///
/// TLS (`wss://`, `rss://`): [`ClientBuilder::tls_root_certificates_pem`],
/// [`ClientBuilder::tls_default_roots`] and [`ClientBuilder::tls_client_certificate`] (which
/// also offers the `tls` method).
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    url: String,
    realm: Option<String>,
    serializers: Vec<Serializer>,
    connect_timeout: Duration,
    leave_timeout: Duration,
    event_buffer: usize,
    pub(crate) auth: Auth,
    pub(crate) tls: TlsOptions,
    keepalive: Option<Duration>,
    reconnect: ReconnectPolicy,
}

impl ClientBuilder {
    /// The realm to join (required).
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Some(realm.into());
        self
    }

    /// Offers only this serializer (default: msgpack, then json, as [`Serializer::DEFAULT`];
    /// [`Serializer::Cbor`] only when asked for; RawSocket offers only the first).
    pub fn serializer(mut self, serializer: Serializer) -> Self {
        self.serializers = vec![serializer];
        self
    }

    /// Offers these serializers, in order of preference (an empty list means the default).
    /// RawSocket negotiates exactly one: it offers the first.
    pub fn serializers(mut self, serializers: impl IntoIterator<Item = Serializer>) -> Self {
        let mut list: Vec<Serializer> = Vec::new();
        for s in serializers {
            if !list.contains(&s) {
                list.push(s);
            }
        }
        self.serializers = if list.is_empty() {
            Serializer::DEFAULT.to_vec()
        } else {
            list
        };
        self
    }

    /// Time allowed for connecting and the transport and WAMP handshakes together (default
    /// 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Time [`Client::leave`] waits for the router's GOODBYE reply (default 5 s).
    pub fn leave_timeout(mut self, timeout: Duration) -> Self {
        self.leave_timeout = timeout;
        self
    }

    /// Default capacity of each subscription's event queue (default
    /// [`DEFAULT_EVENT_BUFFER`]; at least 1). See [`Subscription`](crate::Subscription) for
    /// what happens when it is full.
    pub fn event_buffer(mut self, capacity: usize) -> Self {
        self.event_buffer = capacity.max(1);
        self
    }

    /// Pings a quiet router every `interval` (a WebSocket ping, a RawSocket PING) and ends
    /// the connection when the router sends nothing at all for `interval` after a ping, as
    /// lost ([`CloseKind::TransportLost`](crate::CloseKind::TransportLost),
    /// `wamp.close.transport_lost`): pending requests fail as on any disconnect, and the
    /// client reconnects as [`ClientBuilder::reconnect`] says. Anything the router sends counts as a
    /// sign of life, so a busy session is never pinged; a dead router is noticed within
    /// about three intervals. Choose `interval` well above the round trip under load.
    /// Default: off (the client still answers the router's pings either way). A zero
    /// interval turns it off.
    pub fn keepalive(mut self, interval: Duration) -> Self {
        self.keepalive = Some(interval).filter(|i| !i.is_zero());
        self
    }

    /// The authid to authenticate as (HELLO `authid`). Required for ticket and WAMP-CRA;
    /// optional for cryptosign (the router finds the user by the public key); ignored by
    /// routers for anonymous.
    pub fn authid(mut self, authid: impl Into<String>) -> Self {
        self.auth.authid = Some(authid.into());
        self
    }

    /// The role asked for (HELLO `authrole`). Routers that assign the role from the user's
    /// configuration, as wamp-router does, ignore it.
    pub fn authrole(mut self, authrole: impl Into<String>) -> Self {
        self.auth.authrole = Some(authrole.into());
        self
    }

    /// Offers `ticket` authentication: the CHALLENGE is answered with `ticket` as is (send
    /// it over a trusted network or TLS only). Needs [`ClientBuilder::authid`].
    pub fn ticket(mut self, ticket: impl Into<String>) -> Self {
        self.auth.offer(Method::Ticket(ticket.into()));
        self
    }

    /// Offers `wampcra` (challenge-response) authentication with the shared `secret`: the
    /// CHALLENGE is answered with its HMAC-SHA256, keyed with the secret, or, when the router
    /// salts it, with the PBKDF2-derived key (at most
    /// [`MAX_WAMPCRA_ITERATIONS`](crate::MAX_WAMPCRA_ITERATIONS)). Needs
    /// [`ClientBuilder::authid`].
    pub fn wampcra(mut self, secret: impl Into<String>) -> Self {
        self.auth.offer(Method::WampCra(secret.into()));
        self
    }

    /// Offers `cryptosign` (Ed25519) authentication with `key`: a [`CryptosignKey`], or its
    /// 32-byte seed. HELLO carries the public key (`authextra.pubkey`); the CHALLENGE is
    /// answered with its signature. [`ClientBuilder::authid`] is optional.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// use wamp_client::{Client, CryptosignKey};
    /// let key: CryptosignKey = std::env::var("WAMP_PRIVATE_KEY")?.parse()?; // 64 hex
    /// let client = Client::builder("rs://127.0.0.1:8081")
    ///     .realm("realm1")
    ///     .cryptosign(key)
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn cryptosign(mut self, key: impl Into<CryptosignKey>) -> Self {
        self.auth.offer(Method::Cryptosign(key.into()));
        self
    }

    /// Also offers `anonymous`, after the methods configured so far (and before those
    /// configured later): the router lets the client in anonymously when none of the
    /// earlier methods fits (e.g. an unknown authid), if the realm allows anonymous.
    /// Without credentials the client offers anonymous alone anyway.
    pub fn anonymous(mut self) -> Self {
        self.auth.offer(Method::Anonymous);
        self
    }

    /// What to do when the connection is lost: reconnect with this policy (the default,
    /// [`ReconnectPolicy::default`]: exponential backoff from 200 ms to 30 s with jitter,
    /// without end), or not at all ([`ReconnectPolicy::never`]).
    ///
    /// After a reconnect the client joins the same realm with the same credentials (a new
    /// CHALLENGE is answered), registers every [`Registration`](crate::Registration) again
    /// with its handler and subscribes every [`Subscription`](crate::Subscription) again, so
    /// handles and event streams keep working (their router IDs may change). Requests in
    /// flight when the connection drops fail with `ConnectionLost` (never retried: calls
    /// need not be idempotent); requests made while disconnected fail at once with
    /// `NotConnected`. Only [`Client::leave`], dropping every handle, or running out of
    /// attempts closes the client. The first connect is not retried:
    /// [`ClientBuilder::connect`] reports its failure at once.
    pub fn reconnect(mut self, policy: ReconnectPolicy) -> Self {
        self.reconnect = policy;
        self
    }

    /// Opens the connection, joins the realm, and starts the connection task. A failure is
    /// returned at once, whatever the [`ClientBuilder::reconnect`] policy.
    pub async fn connect(self) -> Result<Client, ConnectError> {
        let realm = self.realm.clone().ok_or(ConnectError::NoRealm)?;
        let dialer = Dialer {
            url: self.url,
            realm,
            serializers: self.serializers,
            tls: self.tls,
            auth: self.auth,
            timeout: self.connect_timeout,
        };
        let joined = dialer.dial().await?;
        let settings = Settings {
            leave_timeout: self.leave_timeout,
            keepalive: self.keepalive,
            reconnect: self.reconnect,
        };
        Ok(Client::start(joined, dialer, settings, self.event_buffer))
    }
}

impl ClientBuilder {
    pub(crate) fn new(url: String) -> ClientBuilder {
        ClientBuilder {
            url,
            realm: None,
            serializers: Serializer::DEFAULT.to_vec(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            leave_timeout: DEFAULT_LEAVE_TIMEOUT,
            event_buffer: DEFAULT_EVENT_BUFFER,
            auth: Auth::default(),
            tls: TlsOptions::default(),
            keepalive: None,
            reconnect: ReconnectPolicy::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_serializer_choice() {
        let b = Client::builder("ws://x/ws");
        assert_eq!(b.serializers, vec![Serializer::MsgPack, Serializer::Json]);
        let b = b.serializer(Serializer::Json);
        assert_eq!(b.serializers, vec![Serializer::Json]);
        let b = b.serializers([Serializer::Json, Serializer::Json, Serializer::MsgPack]);
        assert_eq!(b.serializers, vec![Serializer::Json, Serializer::MsgPack]);
        let b = b.serializers([]);
        assert_eq!(b.serializers, Serializer::DEFAULT.to_vec());
        let b = b.serializer(Serializer::Cbor);
        assert_eq!(b.serializers, vec![Serializer::Cbor]);
    }

    #[tokio::test]
    async fn missing_realm_and_bad_url_fail_clearly() {
        let e = Client::builder("ws://127.0.0.1:1/ws").connect().await;
        assert!(matches!(e, Err(ConnectError::NoRealm)));
        for url in [
            "ftp://127.0.0.1:1/ws",
            "rss://127.0.0.1",
            "not a url",
            "ws://",
            "rs://127.0.0.1",
            "unix://relative/path",
        ] {
            let e = Client::connect(url, "realm1").await;
            assert!(matches!(e, Err(ConnectError::InvalidUrl { .. })), "{e:?}");
        }
    }
}
