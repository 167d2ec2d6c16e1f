//! `wamp publish` and `wamp subscribe`.

use std::num::NonZeroU64;

use clap::Args;
use futures_util::StreamExt;
use serde_json::{json, Value as Json};
use wamp_client::{Event, Value};

use crate::fail::{Fail, Outcome};
use crate::rpc::PayloadArgs;
use crate::{emit, emit_once, json, leave, status, Ctx, MatchArg, Output};

#[derive(Debug, Args)]
pub(crate) struct PublishArgs {
    /// The topic URI
    topic: String,

    #[command(flatten)]
    payload: PayloadArgs,

    /// Wait for the router's acknowledgement and print {"publication": ID}
    #[arg(long)]
    acknowledge: bool,

    /// Ask the router to retain the event for later subscribers
    #[arg(long)]
    retain: bool,
}

pub(crate) async fn publish(ctx: &Ctx, a: PublishArgs) -> Outcome {
    let args = json::parse_args(&a.payload.args);
    let kwargs = json::parse_kwargs(&a.payload.kw).map_err(Fail::usage)?;
    let client = ctx.connect().await?;
    let mut publication = client.publish(&a.topic).args(args).kwargs(kwargs);
    if a.retain {
        publication = publication.retain();
    }
    let published = if a.acknowledge {
        let acked =
            ctx.unless_interrupted("before the acknowledgement came", publication.acknowledge());
        acked.await.map(|r| r.map(Some))
    } else {
        // Queued before GOODBYE, which the router reads after it.
        Ok(publication.await.map(|()| None))
    };
    leave(&client).await;
    if let Some(id) = published?? {
        emit_once(&json!({ "publication": id.get() }))?;
    }
    Ok(())
}

#[derive(Debug, Args)]
pub(crate) struct SubscribeArgs {
    /// The topic URI (or pattern, with --match)
    topic: String,

    /// How TOPIC matches published topics
    #[arg(long = "match", value_enum, default_value_t)]
    policy: MatchArg,

    /// Leave after N events (an interrupt before then exits with 5)
    #[arg(long, value_name = "N")]
    count: Option<NonZeroU64>,
}

pub(crate) async fn subscribe(ctx: &Ctx, a: SubscribeArgs) -> Outcome {
    let client = ctx.connect().await?;
    let subscribing = client.subscribe(&a.topic).match_policy(a.policy.into());
    let mut sub = ctx
        .or_leave(&client, "while subscribing", subscribing)
        .await?;
    status(format_args!(
        "subscribed to {} (subscription {}); printing events until interrupted",
        a.topic,
        sub.id()
    ));
    let want = a.count.map(NonZeroU64::get);
    let mut seen = 0u64;
    let outcome = loop {
        if want.is_some_and(|n| seen >= n) {
            break Ok(());
        }
        let event = tokio::select! {
            e = sub.next() => e,
            () = ctx.interrupt.wait() => break match want {
                Some(n) => Err(Fail::interrupted(&format!("after {seen} of {n} events"))),
                None => Ok(()),
            },
        };
        let Some(event) = event else {
            let reason = client.closed().await;
            return Err(Fail::connection(anyhow::anyhow!(
                "the session ended: {reason}"
            )));
        };
        seen += 1;
        match emit(&event_json(&event)) {
            Ok(()) => {}
            Err(Output::Closed) => break Ok(()),
            Err(Output::Failed(f)) => break Err(f),
        }
    };
    leave(&client).await;
    outcome
}

/// `{"args", "kwargs", "details"}` of an event; `details.topic` is always the concrete
/// topic (routers send it only for pattern subscriptions).
fn event_json(e: &Event) -> Json {
    let mut details = e.details.clone();
    details
        .entry("topic".into())
        .or_insert_with(|| Value::from(e.topic()));
    let mut o = json::payload_json(&e.args, &e.kwargs);
    o.insert("details".into(), json::dict_json(&details));
    Json::Object(o)
}
