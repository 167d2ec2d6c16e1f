//! `wamp call` and `wamp register`.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use clap::{ArgGroup, Args};
use serde_json::Value as Json;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use wamp_client::{uris, CallError, CallResult, Invocation, Value};

use crate::fail::{Fail, Outcome};
use crate::{emit_once, json, leave, parse_seconds, status, Ctx, MatchArg};

/// Positional and keyword arguments, shared by call and publish.
#[derive(Debug, Args)]
pub(crate) struct PayloadArgs {
    /// Positional arguments: JSON when they parse as JSON, otherwise strings (`--` before
    /// one that starts with `-`)
    #[arg(value_name = "ARGS", allow_negative_numbers = true)]
    pub(crate) args: Vec<String>,

    /// A keyword argument KEY=VALUE, the value read like ARGS (repeatable)
    #[arg(long = "kw", value_name = "KEY=VALUE")]
    pub(crate) kw: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct CallArgs {
    /// The procedure URI
    procedure: String,

    #[command(flatten)]
    pub(crate) payload: PayloadArgs,

    /// Ask the router to cancel the call after SECONDS (WAMP call timeout)
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    timeout: Option<Duration>,
}

pub(crate) async fn call(ctx: &Ctx, a: CallArgs) -> Outcome {
    let args = json::parse_args(&a.payload.args);
    let kwargs = json::parse_kwargs(&a.payload.kw).map_err(Fail::usage)?;
    let client = ctx.connect().await?;
    let mut call = client.call(&a.procedure).args(args).kwargs(kwargs);
    if let Some(t) = a.timeout {
        call = call.timeout(t);
    }
    // An interrupted call is dropped, which sends CANCEL (killnowait).
    let result = ctx.unless_interrupted("before the result came", call).await;
    leave(&client).await;
    let r = result??;
    emit_once(&Json::Object(json::payload_json(&r.args, &r.kwargs)))
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("handler").required(true).args(["echo", "exec"])))]
pub(crate) struct RegisterArgs {
    /// The procedure URI (or pattern, with --match)
    procedure: String,

    /// Answer every call with its own arguments (args and kwargs)
    #[arg(long)]
    echo: bool,

    /// Answer every call by running CMD with `sh -c`: the call's positional arguments as a
    /// JSON list on its stdin (keyword arguments in $WAMP_KWARGS, the procedure in
    /// $WAMP_PROCEDURE); its stdout, JSON or else text, is the result; a non-zero exit is
    /// the error wamp.error.runtime_error with its stderr as message
    #[arg(long, value_name = "CMD")]
    exec: Option<String>,

    /// How PROC matches called URIs
    #[arg(long = "match", value_enum, default_value_t)]
    policy: MatchArg,
}

/// What answers the invocations.
#[derive(Debug)]
enum Handler {
    Echo,
    /// The command and the registered procedure.
    Exec(String, String),
}

pub(crate) async fn register(ctx: &Ctx, a: RegisterArgs) -> Outcome {
    let handler = Arc::new(match a.exec {
        Some(cmd) => Handler::Exec(cmd, a.procedure.clone()),
        None => Handler::Echo,
    });
    let client = ctx.connect().await?;
    let registering = client
        .register(&a.procedure, move |inv: Invocation| {
            let handler = handler.clone();
            async move {
                match &*handler {
                    Handler::Echo => Ok(CallResult {
                        args: inv.args,
                        kwargs: inv.kwargs,
                    }),
                    Handler::Exec(cmd, registered) => exec(cmd, registered, &inv).await,
                }
            }
        })
        .match_policy(a.policy.into());
    let registration = ctx
        .or_leave(&client, "while registering", registering)
        .await?;
    status(format_args!(
        "registered {} (registration {}); serving until interrupted",
        a.procedure,
        registration.id()
    ));
    tokio::select! {
        () = ctx.interrupt.wait() => {
            leave(&client).await;
            Ok(())
        }
        // `None`: the session ended first, which the next branch reports.
        Some(why) = registration.revoked() => {
            leave(&client).await;
            let why = if why.is_empty() { String::new() } else { format!(": {why}") };
            Err(Fail::connection(anyhow::anyhow!("the router revoked the registration{why}")))
        }
        reason = client.closed() => {
            Err(Fail::connection(anyhow::anyhow!("the session ended: {reason}")))
        }
    }
}

/// Runs `cmd` for one invocation (see [`RegisterArgs::exec`]); killed if the call is
/// canceled.
async fn exec(cmd: &str, registered: &str, inv: &Invocation) -> Result<CallResult, CallError> {
    // The router names the called procedure only for pattern registrations.
    let procedure = inv.procedure().unwrap_or(registered).to_owned();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env("WAMP_PROCEDURE", &procedure)
        .env("WAMP_KWARGS", json::dict_json(&inv.kwargs).to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| CallError::runtime(format!("cannot run sh: {e}")))?;
    let input = format!("{}\n", json::list_json(&inv.args));
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its stdin closes it early: that is no error.
        tokio::spawn(async move {
            let _ = stdin.write_all(input.as_bytes()).await;
        });
    }
    let out = tokio::select! {
        out = child.wait_with_output() => out,
        () = inv.cancelled() => return Err(CallError::canceled()),
    }
    .map_err(|e| CallError::runtime(format!("running {cmd:?}: {e}")))?;
    if out.status.success() {
        let text = String::from_utf8_lossy(&out.stdout);
        let text = text.trim();
        return Ok(if text.is_empty() {
            CallResult::new()
        } else {
            CallResult::from(json::parse_arg(text))
        });
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    let message = if stderr.is_empty() {
        format!("{cmd:?} failed ({})", out.status)
    } else {
        stderr
    };
    let code = out.status.code().map_or(Value::Null, Value::from);
    Err(CallError::new(uris::RUNTIME_ERROR)
        .with_args([message])
        .with_kwargs([("exit_code", code)]))
}
