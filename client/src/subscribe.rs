//! Subscribing to topics: [`SubscribeBuilder`], [`Subscription`] (a `Stream` of [`Event`]s).

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use futures_util::Stream;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot};
use wamp_proto::{message, Dict, Id, MatchPolicy, Uri, Value};

use crate::client::Client;
use crate::connection::{Command, EventSink, IdCell};
use crate::error::{CallError, SubscribeError};
use crate::payload;

/// One event received on a subscription.
///
/// The accessors read the WAMP `EVENT.Details` the router sets: [`Event::topic`] (the
/// concrete topic of a pattern subscription), [`Event::publisher`] and friends (when the
/// publisher disclosed itself), [`Event::retained`] (a replayed retained event).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The subscription it arrived on.
    pub subscription: Id,
    /// The router's publication ID.
    pub publication: Id,
    /// Positional arguments.
    pub args: Vec<Value>,
    /// Keyword arguments.
    pub kwargs: Dict,
    /// EVENT.Details (e.g. `topic` for pattern subscriptions, `publisher` when disclosed).
    pub details: Dict,
    /// The topic (or pattern) of the subscription it arrived on; set by the [`Subscription`].
    subscribed: Option<Arc<str>>,
}

impl Event {
    /// The topic the event was published to: `Details.topic` for a prefix or wildcard
    /// subscription (e.g. `com.app.user.update` on the subscription `com.app.`), else the
    /// subscribed topic.
    pub fn topic(&self) -> &str {
        self.details
            .get("topic")
            .and_then(Value::as_str)
            .or(self.subscribed.as_deref())
            .unwrap_or_default()
    }

    /// The publishing session's ID, when the publisher asked to be disclosed
    /// ([`PublishBuilder::disclose_me`](crate::PublishBuilder::disclose_me)).
    pub fn publisher(&self) -> Option<Id> {
        self.details
            .get("publisher")
            .and_then(Value::as_u64)
            .and_then(Id::new)
    }

    /// The publisher's authid, when disclosed (see [`Event::publisher`]).
    pub fn publisher_authid(&self) -> Option<&str> {
        self.details.get("publisher_authid").and_then(Value::as_str)
    }

    /// The publisher's authrole, when disclosed (see [`Event::publisher`]).
    pub fn publisher_authrole(&self) -> Option<&str> {
        self.details
            .get("publisher_authrole")
            .and_then(Value::as_str)
    }

    /// Whether this is a retained event replayed at subscribe time
    /// ([`SubscribeBuilder::get_retained`]) rather than a new publication.
    pub fn retained(&self) -> bool {
        self.details.get("retained").and_then(Value::as_bool) == Some(true)
    }

    /// Deserializes the first positional argument, else the keyword arguments as a map, else
    /// `null` (the rule of [`CallResult::decode`](crate::CallResult::decode)).
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, CallError> {
        payload::decode(&self.args, &self.kwargs).map_err(CallError::InvalidPayload)
    }

    /// Deserializes the whole positional list.
    pub fn decode_args<T: DeserializeOwned>(&self) -> Result<T, CallError> {
        payload::decode_args(&self.args).map_err(CallError::InvalidPayload)
    }

    /// Deserializes the keyword arguments.
    pub fn decode_kwargs<T: DeserializeOwned>(&self) -> Result<T, CallError> {
        payload::decode_kwargs(&self.kwargs).map_err(CallError::InvalidPayload)
    }

    pub(crate) fn from_message(m: message::Event) -> Event {
        Event {
            subscription: m.subscription,
            publication: m.publication,
            args: m.payload.args.unwrap_or_default(),
            kwargs: m.payload.kwargs.unwrap_or_default(),
            details: m.details,
            subscribed: None,
        }
    }

    /// Tags the event with the subscription's topic (for [`Event::topic`]).
    fn on(mut self, topic: &Arc<str>) -> Event {
        self.subscribed = Some(topic.clone());
        self
    }
}

/// A subscription being prepared; `.await` it to send SUBSCRIBE and get a [`Subscription`].
#[derive(Debug)]
#[must_use = "nothing is subscribed until awaited"]
pub struct SubscribeBuilder {
    client: Client,
    topic: Uri,
    options: Dict,
    buffer: usize,
}

impl SubscribeBuilder {
    pub(crate) fn new(client: Client, topic: Uri, buffer: usize) -> SubscribeBuilder {
        SubscribeBuilder {
            client,
            topic,
            options: Dict::new(),
            buffer,
        }
    }

    /// Subscribes to a pattern: `Prefix` or `Wildcard` (`Exact`, the default, is a plain
    /// topic). Each event's concrete topic is then [`Event::topic`]. A publication matching
    /// several of a session's subscriptions arrives once on each.
    pub fn match_policy(mut self, policy: MatchPolicy) -> Self {
        match policy {
            MatchPolicy::Exact => self.options.remove("match"),
            p => self.options.insert("match".into(), p.as_str().into()),
        };
        self
    }

    /// Prefix subscription: the topic is a string prefix of the topics to receive, e.g.
    /// `com.app.` receives `com.app.user.update` (`match_policy(MatchPolicy::Prefix)`).
    pub fn prefix(self) -> Self {
        self.match_policy(MatchPolicy::Prefix)
    }

    /// Wildcard subscription: empty URI components match any one component, e.g.
    /// `com.app..update` receives `com.app.user.update` but not `com.app.a.b.update`
    /// (`match_policy(MatchPolicy::Wildcard)`).
    pub fn wildcard(self) -> Self {
        self.match_policy(MatchPolicy::Wildcard)
    }

    /// Asks the router for the topic's last retained event (see
    /// [`PublishBuilder::retain`](crate::PublishBuilder::retain)): if there is one this
    /// subscriber may receive, it arrives first on the stream, with [`Event::retained`]
    /// `true`. With a pattern, the last retained event of each matching topic arrives.
    ///
    /// Local subscriptions to the same topic and policy share one router subscription, so
    /// the replayed event also reaches the others already open on this client.
    pub fn get_retained(self) -> Self {
        self.option("get_retained", true)
    }

    /// Sets a raw SUBSCRIBE option.
    pub fn option(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.options.insert(key.into(), value.into());
        self
    }

    /// The capacity of this subscription's event queue (default from
    /// [`ClientBuilder::event_buffer`](crate::ClientBuilder::event_buffer); at least 1).
    pub fn buffer(mut self, capacity: usize) -> Self {
        self.buffer = capacity.max(1);
        self
    }

    async fn run(self) -> Result<Subscription, SubscribeError> {
        let (tx, rx) = mpsc::channel(self.buffer);
        let dropped = Arc::new(AtomicU64::new(0));
        let local = self.client.next_local_id();
        let id = IdCell::default();
        let sink = EventSink {
            local,
            tx,
            dropped: dropped.clone(),
            id: id.clone(),
        };
        let (reply, reply_rx) = oneshot::channel();
        let cmd = Command::Subscribe {
            topic: self.topic.clone(),
            options: self.options,
            sink,
            reply,
        };
        self.client
            .send(cmd)
            .await
            .map_err(|()| SubscribeError::ConnectionClosed)?;
        reply_rx
            .await
            .unwrap_or(Err(SubscribeError::ConnectionClosed))?;
        Ok(Subscription {
            handle: SubscriptionHandle {
                id,
                local,
                topic: Arc::from(self.topic.as_str()),
                cmd: self.client.command_sender(),
            },
            rx,
            dropped,
            unsubscribe_on_drop: true,
        })
    }
}

impl IntoFuture for SubscribeBuilder {
    type Output = Result<Subscription, SubscribeError>;
    type IntoFuture = BoxFuture<'static, Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

/// An active subscription: a [`Stream`] of [`Event`]s that ends when the client closes (or
/// the router revokes the subscription, or a reconnect cannot restore it). Across a
/// reconnect the stream goes on: the client subscribes again, and events published while it
/// was away are missed.
///
/// Events wait in a bounded queue (see [`ClientBuilder::event_buffer`]). **Slow subscriber
/// policy:** when the queue is full, the connection task drops the new event rather than
/// wait, so one unread subscription never stalls the session; drops are counted
/// ([`Subscription::dropped_events`]) and logged at `warn` (at the 1st, 2nd, 4th, 8th, ...
/// drop).
///
/// Dropping a `Subscription` unsubscribes (UNSUBSCRIBE goes out once no other local
/// subscription shares the router's subscription). While it exists it keeps the session
/// open.
///
/// [`ClientBuilder::event_buffer`]: crate::ClientBuilder::event_buffer
#[derive(Debug)]
pub struct Subscription {
    handle: SubscriptionHandle,
    rx: mpsc::Receiver<Event>,
    dropped: Arc<AtomicU64>,
    unsubscribe_on_drop: bool,
}

impl Subscription {
    /// The router's subscription ID (a new one after a reconnect restored it).
    pub fn id(&self) -> Id {
        self.handle.id.get()
    }

    /// The subscribed topic (or pattern).
    pub fn topic(&self) -> &str {
        &self.handle.topic
    }

    /// How many events were dropped because this subscription's queue was full.
    pub fn dropped_events(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Unsubscribes and waits for the router's UNSUBSCRIBED (when this was the last local
    /// subscription to the topic; otherwise resolves at once).
    pub async fn unsubscribe(mut self) -> Result<(), SubscribeError> {
        self.unsubscribe_on_drop = false;
        self.handle.unsubscribe_ref().await
    }

    /// Hands every event, in order, to `handler` on a spawned task and returns a handle to
    /// unsubscribe. Dropping the handle keeps the subscription; the task ends with the
    /// session or at unsubscribe.
    pub fn spawn_handler<F, Fut>(mut self, mut handler: F) -> SubscriptionHandle
    where
        F: FnMut(Event) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.unsubscribe_on_drop = false;
        let (_, rx) = mpsc::channel(1);
        let mut rx = std::mem::replace(&mut self.rx, rx);
        let topic = self.handle.topic.clone();
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                handler(event.on(&topic)).await;
            }
        });
        self.handle.clone()
    }
}

impl Stream for Subscription {
    type Item = Event;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        let this = self.get_mut();
        this.rx
            .poll_recv(cx)
            .map(|e| e.map(|e| e.on(&this.handle.topic)))
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if self.unsubscribe_on_drop {
            // Best effort: if the queue is full, the connection task notices the closed
            // event queue at the next event and unsubscribes then.
            let _ = self.handle.cmd.try_send(Command::Unsubscribe {
                local: self.handle.local,
                reply: None,
            });
        }
    }
}

/// A subscription whose events go to a handler ([`Subscription::spawn_handler`]).
#[derive(Debug, Clone)]
pub struct SubscriptionHandle {
    id: IdCell,
    local: u64,
    topic: Arc<str>,
    cmd: mpsc::Sender<Command>,
}

impl SubscriptionHandle {
    /// The router's subscription ID (a new one after a reconnect restored it).
    pub fn id(&self) -> Id {
        self.id.get()
    }

    /// The subscribed topic (or pattern).
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Unsubscribes (the handler task then ends) and waits for UNSUBSCRIBED.
    pub async fn unsubscribe(self) -> Result<(), SubscribeError> {
        self.unsubscribe_ref().await
    }

    async fn unsubscribe_ref(&self) -> Result<(), SubscribeError> {
        let (reply, rx) = oneshot::channel();
        let cmd = Command::Unsubscribe {
            local: self.local,
            reply: Some(reply),
        };
        self.cmd
            .send(cmd)
            .await
            .map_err(|_| SubscribeError::ConnectionClosed)?;
        rx.await.unwrap_or(Err(SubscribeError::ConnectionClosed))
    }
}

/// The subscriber features this client implements (HELLO `roles.subscriber.features`):
/// it reads the publisher's identity and the concrete topic from EVENT.Details, subscribes
/// with `match`, asks for retained events, reads history (`wamp.subscription.get_events`),
/// and ends a subscription's stream when the router revokes it.
pub(crate) const SUBSCRIBER_FEATURES: &[&str] = &[
    "publisher_identification",
    "pattern_based_subscription",
    "event_retention",
    "event_history",
    "subscription_revocation",
];
