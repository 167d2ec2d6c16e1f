//! Publishing events: [`PublishBuilder`], [`AcknowledgedPublish`].

use std::future::IntoFuture;

use futures_util::future::BoxFuture;
use tokio::sync::oneshot;
use wamp_proto::{Dict, Id, Uri, Value};

use crate::client::Client;
use crate::connection::Command;
use crate::error::PublishError;
use crate::payload::{payload_methods, PayloadBuf};
use crate::reconnect::ConnectionState;

/// A publication being prepared.
///
/// `.await` it to queue the PUBLISH (fire-and-forget: it resolves once the connection task
/// has accepted it, and waits only while that queue is full); or `.acknowledge().await` it
/// to wait for the router's PUBLISHED and get the publication ID.
///
/// By WAMP's default the publisher's own subscriptions do not receive the event; see
/// [`PublishBuilder::exclude_me`].
///
/// # Choosing the receivers
/// [`exclude`](Self::exclude), [`eligible`](Self::eligible) and their `_authid` /
/// `_authrole` variants narrow who receives the event. They combine as WAMP says: a subscriber
/// receives it only if it is in **every** `eligible*` list given and in **no** `exclude*` list
/// (and is not the publisher itself, unless `exclude_me(false)`). Naming a session that is not
/// subscribed does not subscribe it. The router refuses a malformed list with
/// `wamp.error.invalid_argument` (seen only when acknowledged).
///
/// ```no_run
/// # async fn f(client: wamp_client::Client, ops: wamp_client::Id) -> Result<(), wamp_client::PublishError> {
/// client
///     .publish("com.example.alert")
///     .arg("disk full")
///     .eligible_authrole(["admin", "ops"]) // only these roles...
///     .exclude([ops])                      // ...but not this session
///     .disclose_me()                       // subscribers see who published
///     .retain()                            // late subscribers can ask for it
///     .acknowledge()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "nothing is published until awaited"]
pub struct PublishBuilder {
    client: Client,
    topic: Uri,
    options: Dict,
    payload: PayloadBuf,
}

impl PublishBuilder {
    pub(crate) fn new(client: Client, topic: Uri) -> PublishBuilder {
        PublishBuilder {
            client,
            topic,
            options: Dict::new(),
            payload: PayloadBuf::default(),
        }
    }

    payload_methods!();

    /// Whether this session's own subscriptions are skipped (router default: `true`).
    /// `exclude_me(false)` lets a service hear its own events.
    pub fn exclude_me(self, exclude: bool) -> Self {
        self.option("exclude_me", exclude)
    }

    /// Asks the router to tell subscribers who published: the event's
    /// [`Event::publisher`], [`Event::publisher_authid`] and [`Event::publisher_authrole`]
    /// are then set (WAMP publisher identification; off unless asked).
    ///
    /// [`Event::publisher`]: crate::Event::publisher
    /// [`Event::publisher_authid`]: crate::Event::publisher_authid
    /// [`Event::publisher_authrole`]: crate::Event::publisher_authrole
    pub fn disclose_me(self) -> Self {
        self.option("disclose_me", true)
    }

    /// Never delivers the event to these sessions (by session ID, e.g. another client's
    /// [`Client::session_id`]). Replaces an earlier `exclude` list.
    pub fn exclude(self, sessions: impl IntoIterator<Item = Id>) -> Self {
        self.option("exclude", id_list(sessions))
    }

    /// Delivers the event only to these sessions (white list by session ID). Replaces an
    /// earlier `eligible` list; an empty list reaches nobody.
    pub fn eligible(self, sessions: impl IntoIterator<Item = Id>) -> Self {
        self.option("eligible", id_list(sessions))
    }

    /// Never delivers the event to sessions authenticated as one of these authids.
    pub fn exclude_authid<S: Into<String>>(self, authids: impl IntoIterator<Item = S>) -> Self {
        self.option("exclude_authid", str_list(authids))
    }

    /// Delivers the event only to sessions authenticated as one of these authids.
    pub fn eligible_authid<S: Into<String>>(self, authids: impl IntoIterator<Item = S>) -> Self {
        self.option("eligible_authid", str_list(authids))
    }

    /// Never delivers the event to sessions with one of these authroles.
    pub fn exclude_authrole<S: Into<String>>(self, authroles: impl IntoIterator<Item = S>) -> Self {
        self.option("exclude_authrole", str_list(authroles))
    }

    /// Delivers the event only to sessions with one of these authroles.
    pub fn eligible_authrole<S: Into<String>>(
        self,
        authroles: impl IntoIterator<Item = S>,
    ) -> Self {
        self.option("eligible_authrole", str_list(authroles))
    }

    /// Asks the router to keep this event as the topic's retained event: a later subscriber
    /// that asks for it ([`SubscribeBuilder::get_retained`]) receives the last retained event
    /// at once, so "current state" topics need no separate query. The event is also delivered
    /// normally. The router's configuration may disable retention for some topics.
    ///
    /// [`SubscribeBuilder::get_retained`]: crate::SubscribeBuilder::get_retained
    pub fn retain(self) -> Self {
        self.option("retain", true)
    }

    /// Sets a raw PUBLISH option (for options without a typed setter).
    pub fn option(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.options.insert(key.into(), value.into());
        self
    }

    /// Asks the router to acknowledge the publication; the result is the publication ID, or
    /// the router's refusal (e.g. an invalid topic or option) as [`PublishError::Rejected`].
    pub fn acknowledge(self) -> AcknowledgedPublish {
        AcknowledgedPublish(self.option("acknowledge", true))
    }

    async fn run(
        self,
        ack: Option<oneshot::Sender<Result<Id, PublishError>>>,
    ) -> Result<(), PublishError> {
        let payload = self.payload.build().map_err(PublishError::InvalidPayload)?;
        if matches!(
            self.client.state(),
            ConnectionState::Disconnected { .. } | ConnectionState::Reconnecting { .. }
        ) {
            // Fire-and-forget would otherwise vanish silently.
            return Err(PublishError::NotConnected);
        }
        let cmd = Command::Publish {
            topic: self.topic,
            options: self.options,
            payload,
            ack,
        };
        self.client
            .send(cmd)
            .await
            .map_err(|()| PublishError::ConnectionClosed)
    }
}

impl IntoFuture for PublishBuilder {
    type Output = Result<(), PublishError>;
    type IntoFuture = BoxFuture<'static, Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run(None))
    }
}

/// An acknowledged publication; made by [`PublishBuilder::acknowledge`].
#[derive(Debug)]
#[must_use = "nothing is published until awaited"]
pub struct AcknowledgedPublish(PublishBuilder);

impl IntoFuture for AcknowledgedPublish {
    type Output = Result<Id, PublishError>;
    type IntoFuture = BoxFuture<'static, Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let (tx, rx) = oneshot::channel();
            self.0.run(Some(tx)).await?;
            rx.await.unwrap_or(Err(PublishError::ConnectionClosed))
        })
    }
}

/// A list of session IDs as an option value.
fn id_list(ids: impl IntoIterator<Item = Id>) -> Value {
    Value::List(ids.into_iter().map(|id| Value::UInt(id.get())).collect())
}

/// A list of strings as an option value.
fn str_list<S: Into<String>>(items: impl IntoIterator<Item = S>) -> Value {
    Value::List(items.into_iter().map(|s| Value::from(s.into())).collect())
}

/// The publisher features this client implements (HELLO `roles.publisher.features`).
pub(crate) const PUBLISHER_FEATURES: &[&str] = &[
    "publisher_exclusion",
    "publisher_identification",
    "subscriber_blackwhite_listing",
];
