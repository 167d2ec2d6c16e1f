//! The `wamp-router` binary: load the configuration, serve, reload it on SIGHUP, shut down
//! on SIGINT/SIGTERM; `check-config FILE` checks a file without serving.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;
use wamp_router::config::{LogFormat, LogOptions};
use wamp_router::{Config, Server};

/// A fast WAMP v2 router.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// TOML configuration file; without it the embedded default is used
    /// (WebSocket on 127.0.0.1:8080/ws, json + msgpack, realm `realm1`, anonymous).
    /// SIGHUP re-reads it (and the TLS files).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Log lines as `text` or `json` (one object per line); overrides `[log] format`.
    #[arg(long, value_enum)]
    log_format: Option<LogFormatArg>,
    /// Print the embedded default configuration and exit.
    #[arg(long)]
    print_default_config: bool,
    /// Read a ticket from standard input (one line) and print its argon2id hash, for a
    /// user's `ticket = "..."` in the configuration; then exit.
    #[arg(long)]
    hash_ticket: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a configuration file as starting would (without listening): exit 0 if it is
    /// good, else print the file:line: key error and exit 1.
    CheckConfig {
        /// The TOML file.
        file: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.print_default_config {
        print!("{}", wamp_router::config::DEFAULT_CONFIG);
        return ExitCode::SUCCESS;
    }
    if cli.hash_ticket {
        return hash_ticket();
    }
    if let Some(Command::CheckConfig { file }) = &cli.command {
        return check_config(file);
    }
    let config = match &cli.config {
        Some(path) => match Config::from_file(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("wamp-router: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => Config::embedded(),
    };
    init_logging(&config.log, cli.log_format);
    match run(config, cli.config.as_deref()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Through the log, so a JSON log stays all JSON.
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to standard error in the configured format; `RUST_LOG` overrides the level,
/// `--log-format` the format.
fn init_logging(log: &LogOptions, format: Option<LogFormatArg>) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        let level = log.level.as_deref().unwrap_or("info");
        EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"))
    });
    let format = match format {
        Some(LogFormatArg::Text) => LogFormat::Text,
        Some(LogFormatArg::Json) => LogFormat::Json,
        None => log.format,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().with_current_span(false).init(),
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

fn check_config(file: &Path) -> ExitCode {
    match wamp_router::check_config_file(file) {
        Ok(c) => {
            println!(
                "{}: ok ({} transports, {} realms)",
                file.display(),
                c.transports.len(),
                c.realms.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn hash_ticket() -> ExitCode {
    let mut line = String::new();
    if let Err(e) = std::io::stdin().read_line(&mut line) {
        eprintln!("wamp-router: cannot read the ticket from standard input: {e}");
        return ExitCode::FAILURE;
    }
    let ticket = line.trim_end_matches(['\r', '\n']);
    if ticket.is_empty() {
        eprintln!("wamp-router: the ticket is empty");
        return ExitCode::FAILURE;
    }
    match wamp_router::hash_ticket(ticket) {
        Some(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        None => {
            eprintln!("wamp-router: the ticket cannot be hashed");
            ExitCode::FAILURE
        }
    }
}

fn run(config: Config, path: Option<&Path>) -> anyhow::Result<()> {
    // Each session is a socket: raise the soft open-files limit to the hard limit, so the
    // router is not stopped at ~1,000 sessions by a default soft limit of 1024.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::info!(limit = n, "open files limit"),
        Err(e) => tracing::warn!(cause = %e, "cannot raise the open files limit"),
    }
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if config.router.worker_threads > 0 {
        runtime.worker_threads(config.router.worker_threads);
    }
    let runtime = runtime
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        // Before listening: once a client can connect, a SIGHUP must not kill the router.
        let signals = Signals::install()?;
        let server = Server::start(config).await?;
        signals.wait(&server, path).await?;
        server.shutdown().await;
        Ok(())
    })
}

/// The signals the router handles.
struct Signals {
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            hup: signal(SignalKind::hangup()).context("installing the SIGHUP handler")?,
        })
    }

    /// Waits for SIGINT or SIGTERM; SIGHUP meanwhile re-reads the configuration file (if
    /// the router was started with one) and the TLS files.
    async fn wait(mut self, server: &Server, path: Option<&Path>) -> anyhow::Result<()> {
        loop {
            tokio::select! {
                r = tokio::signal::ctrl_c() => return r.context("waiting for SIGINT"),
                _ = self.term.recv() => return Ok(()),
                _ = self.hup.recv() => {
                    tracing::info!("SIGHUP: reloading");
                    // Failures are logged by both; the router keeps serving either way, and
                    // a refused file leaves the TLS files alone too.
                    // Off this worker's other tasks: new WAMP-CRA keys take PBKDF2 rounds.
                    let refused = path.is_some_and(|p| {
                        tokio::task::block_in_place(|| server.reload_file(p).is_err())
                    });
                    if !refused {
                        let _ = server.reload_tls();
                    }
                }
            }
        }
    }
}
