//! `wamp sessions`, `registrations`, `subscriptions` and `kill`: the WAMP meta API with
//! Crossbar's shapes (`wamp.session.list` → IDs, `wamp.session.get(id)` → a dictionary,
//! `wamp.registration.list` → `{"exact": [..], "prefix": [..], "wildcard": [..]}`, ...).

use std::io::{self, Write};

use anyhow::anyhow;
use clap::Args;
use futures_util::{stream, StreamExt};
use wamp_client::{CallError, Client, Dict, Value};

use crate::fail::{Code, Fail, Outcome};
use crate::{emit, json, leave, Ctx, Output};

/// The error of `*.get` for an ID that has gone meanwhile starts with this.
const NO_SUCH: &str = "wamp.error.no_such_";
/// Lookups in flight at once.
const CONCURRENT: usize = 16;

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Print one JSON object per line (the meta API's dictionaries) instead of a table
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct KillArgs {
    /// The session ID
    session: u64,

    /// The reason URI the killed session gets in its GOODBYE
    #[arg(long, value_name = "URI")]
    reason: Option<String>,

    /// A message for the killed session
    #[arg(long, value_name = "TEXT")]
    message: Option<String>,
}

/// A joined session that calls the meta procedures.
struct Meta<'a> {
    ctx: &'a Ctx,
    client: &'a Client,
}

impl Meta<'_> {
    async fn call(&self, name: &str, args: Vec<Value>, kwargs: Dict) -> Result<Value, CallError> {
        let uri = self.ctx.meta_uri(name);
        let r = self.client.call(&uri).args(args).kwargs(kwargs).await?;
        Ok(r.args.into_iter().next().unwrap_or_default())
    }

    /// The IDs `NAME` answers: a list, or Crossbar's `{"exact": [..], "prefix": [..], ...}`.
    async fn ids(&self, name: &str, args: Vec<Value>) -> Outcome<Vec<u64>> {
        let v = self.call(name, args, Dict::new()).await?;
        let ids = match &v {
            Value::List(_) => id_list(&v),
            Value::Dict(d) => ["exact", "prefix", "wildcard"]
                .iter()
                .filter_map(|k| d.get(*k))
                .map(id_list)
                .collect::<Option<Vec<_>>>()
                .map(|lists| lists.concat()),
            _ => None,
        };
        ids.ok_or_else(|| self.unexpected(name, &v))
    }

    /// The dictionary `NAME(id)` answers; `None` when the object has gone meanwhile.
    async fn get(&self, name: &str, id: u64) -> Outcome<Option<Dict>> {
        match self.call(name, vec![Value::UInt(id)], Dict::new()).await {
            Ok(Value::Dict(d)) => Ok(Some(d)),
            Ok(other) => Err(self.unexpected(name, &other)),
            Err(e) if gone(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// `get` of each ID, with the IDs `list(id)` answers (callees, subscribers) added under
    /// `key` when `members` is `Some((list, key))`. IDs that have gone meanwhile are left out.
    async fn details(
        &self,
        ids: Vec<u64>,
        get: &str,
        members: Option<(&str, &str)>,
    ) -> Outcome<Vec<Dict>> {
        let one = |id| async move {
            let Some(mut d) = self.get(get, id).await? else {
                return Ok(None);
            };
            if let Some((list, key)) = members {
                let v = match self.call(list, vec![Value::UInt(id)], Dict::new()).await {
                    Ok(v) => v,
                    Err(e) if gone(&e) => return Ok(None),
                    Err(e) => return Err(e.into()),
                };
                let ids = id_list(&v).ok_or_else(|| self.unexpected(list, &v))?;
                d.insert(
                    key.into(),
                    ids.into_iter().map(Value::UInt).collect::<Vec<_>>().into(),
                );
            }
            Ok(Some(d))
        };
        let found: Vec<Outcome<Option<Dict>>> = stream::iter(ids)
            .map(one)
            .buffered(CONCURRENT)
            .collect()
            .await;
        found.into_iter().filter_map(Result::transpose).collect()
    }

    fn unexpected(&self, name: &str, v: &Value) -> Fail {
        let uri = self.ctx.meta_uri(name);
        Fail::new(
            Code::Wamp,
            anyhow!("unexpected answer from {uri}: {}", json::to_json(v)),
        )
    }
}

/// Whether `e` says the object asked about does not exist (any more).
fn gone(e: &CallError) -> bool {
    e.uri().is_some_and(|uri| uri.starts_with(NO_SUCH))
}

/// A list of IDs (non-negative integers), or `None`.
fn id_list(v: &Value) -> Option<Vec<u64>> {
    v.as_list()?.iter().map(Value::as_u64).collect()
}

/// Connects, runs `body` (unless interrupted: exit 5), leaves.
async fn with_meta<T>(ctx: &Ctx, body: impl AsyncFnOnce(&Meta<'_>) -> Outcome<T>) -> Outcome<T> {
    let client = ctx.connect().await?;
    let meta = Meta {
        ctx,
        client: &client,
    };
    let r = ctx
        .unless_interrupted("before the router answered", body(&meta))
        .await;
    leave(&client).await;
    r?
}

pub(crate) async fn sessions(ctx: &Ctx, a: ListArgs) -> Outcome {
    let rows = with_meta(ctx, async |m| {
        let ids = m.ids("session.list", Vec::new()).await?;
        m.details(ids, "session.get", None).await
    })
    .await?;
    let columns = [
        "SESSION",
        "AUTHID",
        "AUTHROLE",
        "AUTHMETHOD",
        "AUTHPROVIDER",
        "TRANSPORT",
        "PEER",
    ];
    print_rows(a.json, &columns, &rows, |d| {
        let transport = d.get("transport").and_then(Value::as_dict);
        let t = |k| transport.map_or_else(|| "-".to_owned(), |t| cell(t, k));
        vec![
            cell(d, "session"),
            cell(d, "authid"),
            cell(d, "authrole"),
            cell(d, "authmethod"),
            cell(d, "authprovider"),
            t("type"),
            t("peer"),
        ]
    })
}

pub(crate) async fn registrations(ctx: &Ctx, a: ListArgs) -> Outcome {
    let rows = with_meta(ctx, async |m| {
        let ids = m.ids("registration.list", Vec::new()).await?;
        let callees = ("registration.list_callees", "callees");
        m.details(ids, "registration.get", Some(callees)).await
    })
    .await?;
    let columns = ["ID", "URI", "MATCH", "INVOKE", "CALLEES"];
    print_rows(a.json, &columns, &rows, |d| {
        ["id", "uri", "match", "invoke", "callees"]
            .map(|k| cell(d, k))
            .to_vec()
    })
}

pub(crate) async fn subscriptions(ctx: &Ctx, a: ListArgs) -> Outcome {
    let rows = with_meta(ctx, async |m| {
        let ids = m.ids("subscription.list", Vec::new()).await?;
        let subscribers = ("subscription.list_subscribers", "subscribers");
        m.details(ids, "subscription.get", Some(subscribers)).await
    })
    .await?;
    let columns = ["ID", "URI", "MATCH", "SUBSCRIBERS"];
    print_rows(a.json, &columns, &rows, |d| {
        ["id", "uri", "match", "subscribers"]
            .map(|k| cell(d, k))
            .to_vec()
    })
}

pub(crate) async fn kill(ctx: &Ctx, a: KillArgs) -> Outcome {
    let mut kwargs = Dict::new();
    if let Some(r) = a.reason {
        kwargs.insert("reason".into(), r.into());
    }
    if let Some(m) = a.message {
        kwargs.insert("message".into(), m.into());
    }
    with_meta(ctx, async |m| {
        let args = vec![Value::UInt(a.session)];
        m.call("session.kill", args, kwargs)
            .await
            .map_err(Fail::from)
    })
    .await
    .map(drop)
}

/// One table cell: a string as is, a list of IDs comma-separated, nothing as `-`, anything
/// else as JSON.
fn cell(d: &Dict, key: &str) -> String {
    match d.get(key) {
        None | Some(Value::Null) => "-".into(),
        Some(Value::Str(s)) => s.clone(),
        Some(v) => match id_list(v) {
            Some(ids) if !ids.is_empty() => {
                ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
            }
            Some(_) => "-".into(),
            None => json::to_json(v).to_string(),
        },
    }
}

/// Prints `rows` as JSON lines, or as a table with `columns` and the cells `row` makes.
fn print_rows(
    as_json: bool,
    columns: &[&str],
    rows: &[Dict],
    row: impl Fn(&Dict) -> Vec<String>,
) -> Outcome {
    let printed = if as_json {
        rows.iter().try_for_each(|d| emit(&json::dict_json(d)))
    } else {
        let mut table = vec![columns.iter().map(|c| (*c).to_owned()).collect()];
        table.extend(rows.iter().map(row));
        print_table(&table).map_err(|e| match e.kind() {
            io::ErrorKind::BrokenPipe => Output::Closed,
            _ => Output::Failed(Fail::connection(anyhow!("writing to stdout: {e}"))),
        })
    };
    match printed {
        Ok(()) | Err(Output::Closed) => Ok(()),
        Err(Output::Failed(f)) => Err(f),
    }
}

/// Left-aligned columns two spaces apart; the last column is not padded.
fn print_table(table: &[Vec<String>]) -> io::Result<()> {
    let text = format_table(table);
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

fn format_table(table: &[Vec<String>]) -> String {
    let columns = table.first().map_or(0, Vec::len);
    let width = |i: usize| {
        table
            .iter()
            .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..columns).map(width).collect();
    let mut text = String::new();
    for r in table {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 < r.len() {
                line.push_str(&format!("{c:<w$}  ", w = widths[i]));
            } else {
                line.push_str(c);
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_columns_line_up() {
        let t = vec![
            vec!["ID".into(), "URI".into(), "CALLEES".into()],
            vec!["12345".into(), "com.a".into(), "1,2".into()],
            vec!["7".into(), "com.example.long".into(), "-".into()],
        ];
        assert_eq!(
            format_table(&t),
            "ID     URI               CALLEES\n\
             12345  com.a             1,2\n\
             7      com.example.long  -\n"
        );
    }

    #[test]
    fn cells() {
        let d = Dict::from([
            ("s".into(), Value::from("x")),
            (
                "ids".into(),
                Value::List(vec![Value::UInt(1), Value::UInt(2)]),
            ),
            ("none".into(), Value::List(vec![])),
            ("n".into(), Value::Null),
            (
                "obj".into(),
                Value::Dict(Dict::from([("a".into(), Value::UInt(1))])),
            ),
        ]);
        assert_eq!(cell(&d, "s"), "x");
        assert_eq!(cell(&d, "ids"), "1,2");
        assert_eq!(cell(&d, "none"), "-");
        assert_eq!(cell(&d, "n"), "-");
        assert_eq!(cell(&d, "missing"), "-");
        assert_eq!(cell(&d, "obj"), r#"{"a":1}"#);
    }
}
