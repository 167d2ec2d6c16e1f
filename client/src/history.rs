//! Reading a subscription's event history: [`Client::subscription_events`], [`HistoryEvent`].

use serde::de::DeserializeOwned;
use wamp_proto::{Dict, Id, Value};

use crate::call::CallResult;
use crate::client::Client;
use crate::error::CallError;
use crate::payload;

/// The meta procedure the router answers with the kept events of a subscription.
pub(crate) const GET_EVENTS: &str = "wamp.subscription.get_events";

/// One past event, as kept by the router's event history.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEvent {
    /// When the router received the publication (RFC 3339, UTC, e.g.
    /// `2026-01-02T03:04:05.678Z`).
    pub timestamp: String,
    /// The subscription it was read through.
    pub subscription: Id,
    /// The router's publication ID (the one its subscribers saw).
    pub publication: Id,
    /// The topic it was published to.
    pub topic: String,
    /// The EVENT.Details subscribers received (e.g. `publisher` when disclosed).
    pub details: Dict,
    /// Positional arguments.
    pub args: Vec<Value>,
    /// Keyword arguments.
    pub kwargs: Dict,
}

impl HistoryEvent {
    /// Deserializes the first positional argument, else the keyword arguments as a map, else
    /// `null` (the rule of [`CallResult::decode`]).
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, CallError> {
        payload::decode(&self.args, &self.kwargs).map_err(CallError::InvalidPayload)
    }

    /// Reads one entry of `wamp.subscription.get_events`' result list.
    fn from_value(v: &Value) -> Result<HistoryEvent, String> {
        let d = v
            .as_dict()
            .ok_or_else(|| format!("a history entry is not a map: {v:?}"))?;
        let field = |k: &str| {
            d.get(k)
                .ok_or_else(|| format!("history entry without `{k}`"))
        };
        let id = |k: &str| {
            field(k)?
                .as_u64()
                .and_then(Id::new)
                .ok_or_else(|| format!("history entry `{k}` is not an ID"))
        };
        let text = |k: &str| {
            field(k)?
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("history entry `{k}` is not a string"))
        };
        let map = |k: &str| match d.get(k) {
            None => Ok(Dict::new()),
            Some(Value::Dict(m)) => Ok(m.clone()),
            Some(_) => Err(format!("history entry `{k}` is not a map")),
        };
        Ok(HistoryEvent {
            timestamp: text("timestamp")?,
            subscription: id("subscription")?,
            publication: id("publication")?,
            topic: text("topic")?,
            details: map("details")?,
            args: match d.get("args") {
                None => Vec::new(),
                Some(Value::List(l)) => l.clone(),
                Some(_) => return Err("history entry `args` is not a list".into()),
            },
            kwargs: map("kwargs")?,
        })
    }

    /// Reads the whole result: the list of entries in `Arguments[0]`.
    fn list_from(r: &CallResult) -> Result<Vec<HistoryEvent>, String> {
        let list = r
            .args
            .first()
            .and_then(Value::as_list)
            .ok_or("wamp.subscription.get_events did not return a list")?;
        list.iter().map(HistoryEvent::from_value).collect()
    }
}

impl Client {
    /// The router's kept events for one of this client's subscriptions, oldest first; with
    /// `limit`, only the newest `limit` of them.
    ///
    /// The router keeps history only for topics its configuration names
    /// (`[[realm.topic]] history = N`); for others this fails with the application error
    /// `wamp.error.history_unavailable`, and for an unknown subscription with
    /// `wamp.error.no_such_subscription`. Events published with `exclude`/`eligible`
    /// session lists are never kept. This calls the meta procedure
    /// `wamp.subscription.get_events`; call it directly (`client.call(..)`) for its other
    /// options, e.g. `reverse`.
    ///
    /// ```no_run
    /// # async fn f(client: wamp_client::Client) -> Result<(), wamp_client::Error> {
    /// let sub = client.subscribe("com.example.log").await?;
    /// for e in client.subscription_events(sub.id(), Some(10)).await? {
    ///     println!("{} {}: {:?}", e.timestamp, e.topic, e.args);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn subscription_events(
        &self,
        subscription: Id,
        limit: Option<usize>,
    ) -> Result<Vec<HistoryEvent>, CallError> {
        let mut call = self.call(GET_EVENTS).arg(subscription.get());
        if let Some(limit) = limit {
            call = call.kwarg("limit", limit);
        }
        let r = call.await?;
        HistoryEvent::list_from(&r).map_err(CallError::InvalidPayload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wamp_proto::options::dict;

    #[test]
    fn reads_the_routers_entries() {
        let entry = |args: Option<Value>| {
            let mut d = dict([
                ("timestamp", "2026-01-02T03:04:05.678Z".into()),
                ("subscription", 7u64.into()),
                ("publication", 9u64.into()),
                ("topic", "com.t".into()),
                ("details", Value::Dict(dict([("publisher", 3u64.into())]))),
            ]);
            if let Some(a) = args {
                d.insert("args".into(), a);
            }
            Value::Dict(d)
        };
        let r = CallResult::new().with_args([Value::List(vec![
            entry(Some(Value::List(vec![1u64.into()]))),
            entry(None),
        ])]);
        let evs = HistoryEvent::list_from(&r).unwrap();
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[0].subscription, Id::new(7).unwrap());
        assert_eq!(evs[0].publication, Id::new(9).unwrap());
        assert_eq!(evs[0].topic, "com.t");
        assert_eq!(evs[0].details["publisher"], Value::UInt(3));
        assert_eq!(evs[0].decode::<u64>().unwrap(), 1);
        assert_eq!((evs[1].args.len(), evs[1].kwargs.len()), (0, 0));

        let bad = CallResult::new().with_args([Value::List(vec![Value::from("x")])]);
        assert!(HistoryEvent::list_from(&bad).is_err());
        assert!(HistoryEvent::list_from(&CallResult::new()).is_err());
        let no_topic = CallResult::new().with_args([Value::List(vec![Value::Dict(dict([(
            "timestamp",
            "t".into(),
        )]))])]);
        assert!(HistoryEvent::list_from(&no_topic).is_err());
    }
}
