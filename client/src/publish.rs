//! Publishing events: [`PublishBuilder`], [`AcknowledgedPublish`].

use std::future::IntoFuture;

use futures_util::future::BoxFuture;
use tokio::sync::oneshot;
use wamp_proto::{Dict, Id, Uri, Value};

use crate::client::Client;
use crate::connection::Command;
use crate::error::PublishError;
use crate::payload::{payload_methods, PayloadBuf};

/// A publication being prepared.
///
/// `.await` it to queue the PUBLISH (fire-and-forget: it resolves once the connection task
/// has accepted it, and waits only while that queue is full); or `.acknowledge().await` it
/// to wait for the router's PUBLISHED and get the publication ID.
///
/// By WAMP's default the publisher's own subscriptions do not receive the event; see
/// [`PublishBuilder::exclude_me`].
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
    pub fn exclude_me(self, exclude: bool) -> Self {
        self.option("exclude_me", exclude)
    }

    /// Sets a raw PUBLISH option (e.g. `"eligible"`, `"exclude"`, where supported).
    pub fn option(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.options.insert(key.into(), value.into());
        self
    }

    /// Asks the router to acknowledge the publication; the result is the publication ID.
    pub fn acknowledge(self) -> AcknowledgedPublish {
        AcknowledgedPublish(self.option("acknowledge", true))
    }

    async fn run(
        self,
        ack: Option<oneshot::Sender<Result<Id, PublishError>>>,
    ) -> Result<(), PublishError> {
        let payload = self.payload.build().map_err(PublishError::InvalidPayload)?;
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
