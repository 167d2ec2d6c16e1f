//! `wamp`: a command-line WAMP client for developers, on top of wamp-client. Calls,
//! publishes, subscribes, serves procedures and reads the router's meta API from the shell,
//! against any WAMP router. Results and events are JSON lines on stdout; errors go to
//! stderr, and the exit code says what kind of failure it was (see [`EXIT_CODES`]).

mod fail;
mod json;
mod meta;
mod pubsub;
mod rpc;

use std::future::IntoFuture;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::anyhow;
use clap::{Args, Parser, Subcommand, ValueEnum};
use tokio::sync::watch;
use wamp_client::{Client, CryptosignKey, MatchPolicy, ReconnectPolicy, Serializer};

use crate::fail::{Code, Fail, Outcome};

/// What `wamp --help` shows after the commands (also in the README).
const EXIT_CODES: &str = "\
Values:
  ARGS and --kw values are JSON when they parse as JSON, otherwise strings:
  `wamp call com.add 2 3` sends [2, 3], `wamp call com.echo hello` sends [\"hello\"],
  '\"5\"' sends the string \"5\". Binary values are written and printed as {\"$bytes\": \"<hex>\"}.

Output:
  Results and events are JSON lines on stdout ({\"args\": [...], \"kwargs\": {...}, ...});
  errors and status lines go to stderr.

Exit codes:
  0  success
  1  usage error (bad option or argument, --kw without '=', unreadable key file, bad URL)
  2  connection or transport failure (router unreachable, session refused or lost)
  3  authentication refused by the router
  4  WAMP error reply (the error URI and message printed on stderr)
  5  interrupted (SIGINT/SIGTERM) before the command completed";

/// A command-line WAMP client: call, publish, subscribe, register, and inspect the router.
#[derive(Debug, Parser)]
#[command(name = "wamp", version, after_help = EXIT_CODES)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Where to connect and how to authenticate (valid before or after the command).
#[derive(Debug, Args)]
struct Global {
    /// Router URL: ws://HOST:PORT/PATH (WebSocket), wss://... (WebSocket over TLS, where the
    /// client supports it), rs://HOST:PORT (RawSocket over TCP), unix:///PATH (RawSocket
    /// over a Unix socket)
    #[arg(
        long,
        global = true,
        env = "WAMP_URL",
        default_value = "ws://127.0.0.1:8080/ws"
    )]
    url: String,

    /// Realm to join
    #[arg(long, global = true, env = "WAMP_REALM", default_value = "realm1")]
    realm: String,

    /// Serializer to offer (default: msgpack, then json; RawSocket offers msgpack)
    #[arg(long, global = true, value_enum)]
    serializer: Option<SerializerArg>,

    /// Authid to authenticate as (needed for --ticket and --wampcra-secret)
    #[arg(long, global = true, env = "WAMP_AUTHID")]
    authid: Option<String>,

    /// Ticket to authenticate with (prefer the environment variable: the command line is
    /// visible to other users)
    #[arg(long, global = true, env = "WAMP_TICKET", hide_env_values = true)]
    ticket: Option<String>,

    /// WAMP-CRA secret to authenticate with
    #[arg(long, global = true, env = "WAMP_SECRET", hide_env_values = true)]
    wampcra_secret: Option<String>,

    /// File holding the Ed25519 private key seed (64 hex characters) for cryptosign
    #[arg(long, global = true, value_name = "PATH")]
    cryptosign_seed_file: Option<PathBuf>,

    /// First component(s) of the meta API procedures (tests point it at a fake).
    #[arg(
        long,
        global = true,
        hide = true,
        env = "WAMP_META_PREFIX",
        default_value = "wamp"
    )]
    meta_prefix: String,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SerializerArg {
    Json,
    Msgpack,
}

/// `--match` of subscribe and register.
#[derive(Debug, Clone, Copy, Default, ValueEnum)]
enum MatchArg {
    #[default]
    Exact,
    Prefix,
    Wildcard,
}

impl From<MatchArg> for MatchPolicy {
    fn from(m: MatchArg) -> MatchPolicy {
        match m {
            MatchArg::Exact => MatchPolicy::Exact,
            MatchArg::Prefix => MatchPolicy::Prefix,
            MatchArg::Wildcard => MatchPolicy::Wildcard,
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Call PROC and print the result as one JSON line {"args": [...], "kwargs": {...}}
    Call(rpc::CallArgs),
    /// Publish an event to TOPIC
    Publish(pubsub::PublishArgs),
    /// Print each event on TOPIC as a JSON line until interrupted or --count events came
    Subscribe(pubsub::SubscribeArgs),
    /// Serve PROC (--echo or --exec CMD) until interrupted
    Register(rpc::RegisterArgs),
    /// List the sessions on the realm (meta API)
    Sessions(meta::ListArgs),
    /// List the registrations on the realm and their callees (meta API)
    Registrations(meta::ListArgs),
    /// List the subscriptions on the realm and their subscribers (meta API)
    Subscriptions(meta::ListArgs),
    /// End a session (meta API wamp.session.kill)
    Kill(meta::KillArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version print on stdout and succeed; everything else is a usage
            // error (clap's own default would be exit 2, which here means "connection").
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(Code::Usage as u8)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    init_tracing();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let outcome = match runtime {
        Ok(rt) => rt.block_on(run(cli)),
        Err(e) => Err(Fail::connection(anyhow!("cannot start the runtime: {e}"))),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(fail) => fail.report(),
    }
}

/// Logs of the client library on stderr, only when RUST_LOG asks for them.
fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(io::stderr)
            .try_init();
    }
}

async fn run(cli: Cli) -> Outcome {
    let interrupt = Interrupt::install()?;
    let ctx = Ctx {
        global: cli.global,
        interrupt,
    };
    match cli.command {
        Command::Call(a) => rpc::call(&ctx, a).await,
        Command::Register(a) => rpc::register(&ctx, a).await,
        Command::Publish(a) => pubsub::publish(&ctx, a).await,
        Command::Subscribe(a) => pubsub::subscribe(&ctx, a).await,
        Command::Sessions(a) => meta::sessions(&ctx, a).await,
        Command::Registrations(a) => meta::registrations(&ctx, a).await,
        Command::Subscriptions(a) => meta::subscriptions(&ctx, a).await,
        Command::Kill(a) => meta::kill(&ctx, a).await,
    }
}

/// What every command gets: the global options and the interrupt signal.
#[derive(Debug)]
pub(crate) struct Ctx {
    global: Global,
    pub(crate) interrupt: Interrupt,
}

impl Ctx {
    /// The meta API procedure `wamp.NAME` (under `--meta-prefix`).
    pub(crate) fn meta_uri(&self, name: &str) -> String {
        format!("{}.{name}", self.global.meta_prefix)
    }

    /// Connects and joins as the global options say; SIGINT meanwhile gives up (exit 5).
    pub(crate) async fn connect(&self) -> Outcome<Client> {
        let g = &self.global;
        // A command-line tool reports a lost router (exit 2) instead of waiting for it.
        let mut b = Client::builder(&g.url)
            .realm(&g.realm)
            .reconnect(ReconnectPolicy::never());
        if let Some(s) = g.serializer {
            b = b.serializer(match s {
                SerializerArg::Json => Serializer::Json,
                SerializerArg::Msgpack => Serializer::MsgPack,
            });
        }
        if g.authid.is_none() && (g.ticket.is_some() || g.wampcra_secret.is_some()) {
            let what = if g.ticket.is_some() {
                "--ticket (WAMP_TICKET)"
            } else {
                "--wampcra-secret (WAMP_SECRET)"
            };
            return Err(Fail::usage(anyhow!("{what} needs --authid (WAMP_AUTHID)")));
        }
        if let Some(authid) = &g.authid {
            b = b.authid(authid);
        }
        if let Some(ticket) = &g.ticket {
            b = b.ticket(ticket);
        }
        if let Some(secret) = &g.wampcra_secret {
            b = b.wampcra(secret);
        }
        if let Some(path) = &g.cryptosign_seed_file {
            b = b.cryptosign(read_seed(path).map_err(Fail::usage)?);
        }
        self.unless_interrupted("while connecting", b.connect())
            .await?
            .map_err(Fail::from)
    }

    /// Runs `fut` unless SIGINT/SIGTERM comes first (then exit 5, "interrupted {during}").
    pub(crate) async fn unless_interrupted<T>(
        &self,
        during: &str,
        fut: impl IntoFuture<Output = T>,
    ) -> Outcome<T> {
        tokio::select! {
            v = fut.into_future() => Ok(v),
            () = self.interrupt.wait() => Err(Fail::interrupted(during)),
        }
    }

    /// [`Ctx::unless_interrupted`] for a request on `client`: on its error or an interrupt,
    /// leaves the session before returning the failure.
    pub(crate) async fn or_leave<T, E: Into<Fail>>(
        &self,
        client: &Client,
        during: &str,
        fut: impl IntoFuture<Output = Result<T, E>>,
    ) -> Outcome<T> {
        let r = self.unless_interrupted(during, fut).await;
        let r = r.and_then(|r| r.map_err(Into::into));
        if r.is_err() {
            leave(client).await;
        }
        r
    }
}

/// Reads a cryptosign seed file (64 hex characters; surrounding whitespace is ignored). The
/// file's content is never part of an error message.
fn read_seed(path: &std::path::Path) -> anyhow::Result<CryptosignKey> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        anyhow!(
            "cannot read the cryptosign seed file {}: {e}",
            path.display()
        )
    })?;
    CryptosignKey::from_hex(text.trim()).map_err(|_| {
        anyhow!(
            "the cryptosign seed file {} does not hold 64 hex characters",
            path.display()
        )
    })
}

/// Leaves the session, waiting at most a few seconds; errors do not matter any more.
pub(crate) async fn leave(client: &Client) {
    let _ = tokio::time::timeout(Duration::from_secs(5), client.leave()).await;
}

/// SIGINT (Ctrl-C) or SIGTERM, installed at start so that neither kills the process while a
/// command is under way: commands end cleanly instead.
#[derive(Debug)]
pub(crate) struct Interrupt(watch::Receiver<bool>);

impl Interrupt {
    fn install() -> Outcome<Interrupt> {
        let (tx, rx) = watch::channel(false);
        let fail = |e: io::Error| Fail::connection(anyhow!("cannot handle signals: {e}"));
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let mut int = signal(SignalKind::interrupt()).map_err(fail)?;
            let mut term = signal(SignalKind::terminate()).map_err(fail)?;
            tokio::spawn(async move {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                let _ = tx.send(true);
            });
        }
        #[cfg(not(unix))]
        {
            let _ = fail;
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    let _ = tx.send(true);
                }
            });
        }
        Ok(Interrupt(rx))
    }

    /// Resolves once a signal came (at once if one already did).
    pub(crate) async fn wait(&self) {
        let mut rx = self.0.clone();
        if rx.wait_for(|&v| v).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Why output stopped.
#[derive(Debug)]
pub(crate) enum Output {
    /// The reader of stdout went away (`wamp subscribe ... | head -1`): stop quietly.
    Closed,
    /// Stdout failed otherwise.
    Failed(Fail),
}

/// Prints one JSON line on stdout (flushed: the stdout of a pipeline sees it at once).
pub(crate) fn emit(line: &serde_json::Value) -> Result<(), Output> {
    let mut out = io::stdout().lock();
    let r = writeln!(out, "{line}").and_then(|()| out.flush());
    r.map_err(|e| match e.kind() {
        io::ErrorKind::BrokenPipe => Output::Closed,
        _ => Output::Failed(Fail::connection(anyhow!("writing to stdout: {e}"))),
    })
}

/// [`emit`] for commands that print once: a closed stdout is not an error.
pub(crate) fn emit_once(line: &serde_json::Value) -> Outcome {
    match emit(line) {
        Ok(()) | Err(Output::Closed) => Ok(()),
        Err(Output::Failed(f)) => Err(f),
    }
}

/// Prints a status line for people on stderr (never for scripts to parse).
pub(crate) fn status(text: std::fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr().lock(), "{text}");
}

/// Parses `--timeout` style seconds (a non-negative number, fractions allowed).
pub(crate) fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("not a number of seconds: {s}"))?;
    Duration::try_from_secs_f64(secs).map_err(|_| format!("not a usable number of seconds: {s}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_go_before_or_after_the_command() {
        let cli =
            Cli::try_parse_from(["wamp", "--realm", "r", "call", "p", "1", "--kw", "a=b"]).unwrap();
        assert_eq!(cli.global.realm, "r");
        let cli = Cli::try_parse_from(["wamp", "call", "p", "-1", "--url", "rs://h:1"]).unwrap();
        assert_eq!(cli.global.url, "rs://h:1");
        match cli.command {
            Command::Call(c) => assert_eq!(c.payload.args, ["-1"]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn seconds() {
        assert_eq!(parse_seconds("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("x").is_err());
    }
}
