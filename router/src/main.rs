//! The `wamp-router` binary: load the configuration, serve, shut down on SIGINT/SIGTERM.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

use std::io::IsTerminal as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use tracing_subscriber::EnvFilter;
use wamp_router::{Config, Server};

/// A fast WAMP v2 router.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// TOML configuration file; without it the embedded default is used
    /// (WebSocket on 127.0.0.1:8080/ws, json + msgpack, realm `realm1`, anonymous).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Print the embedded default configuration and exit.
    #[arg(long)]
    print_default_config: bool,
    /// Read a ticket from standard input (one line) and print its argon2id hash, for a
    /// user's `ticket = "..."` in the configuration; then exit.
    #[arg(long)]
    hash_ticket: bool,
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    if cli.print_default_config {
        print!("{}", wamp_router::config::DEFAULT_CONFIG);
        return std::process::ExitCode::SUCCESS;
    }
    if cli.hash_ticket {
        let mut line = String::new();
        if let Err(e) = std::io::stdin().read_line(&mut line) {
            eprintln!("wamp-router: cannot read the ticket from standard input: {e}");
            return std::process::ExitCode::FAILURE;
        }
        let ticket = line.trim_end_matches(['\r', '\n']);
        if ticket.is_empty() {
            eprintln!("wamp-router: the ticket is empty");
            return std::process::ExitCode::FAILURE;
        }
        return match wamp_router::hash_ticket(ticket) {
            Some(hash) => {
                println!("{hash}");
                std::process::ExitCode::SUCCESS
            }
            None => {
                eprintln!("wamp-router: the ticket cannot be hashed");
                std::process::ExitCode::FAILURE
            }
        };
    }
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wamp-router: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let config = match &cli.config {
        Some(path) => Config::from_file(path)?,
        None => Config::embedded(),
    };
    // Each session is a socket: raise the soft open-files limit to the hard limit, so the
    // router is not stopped at ~1,000 sessions by a default soft limit of 1024.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::info!(limit = n, "open files limit"),
        Err(e) => tracing::warn!(cause = %e, "cannot raise the open files limit"),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let server = Server::start(config).await?;
        wait_for_signal(&server).await?;
        server.shutdown().await;
        Ok(())
    })
}

/// Waits for SIGINT or SIGTERM; SIGHUP re-reads the TLS files meanwhile.
async fn wait_for_signal(server: &Server) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    loop {
        tokio::select! {
            r = tokio::signal::ctrl_c() => return r.context("waiting for SIGINT"),
            _ = term.recv() => return Ok(()),
            _ = hup.recv() => {
                // Failures are logged by reload_tls; the router keeps serving either way.
                let _ = server.reload_tls();
            }
        }
    }
}
