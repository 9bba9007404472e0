//! `travel-services`: runs the travel reference application's participants
//! (hotel, flight, car, payment) as one HTTP server.
//!
//! Once the database is open and the socket bound, it prints exactly one line,
//! `listening on http://ADDR`, to stdout (so a parent process started with
//! `--listen 127.0.0.1:0` can read the port); logs go to stderr. It stops
//! gracefully on SIGTERM or ctrl-c.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use travel_services::Config;

/// The travel reference application: hotel, flight, car and payment over HTTP.
#[derive(Debug, Parser)]
#[command(name = "travel-services", version)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: String,
    /// The services' own SQLite database file (created if missing).
    #[arg(long, default_value = "travel.db")]
    db: PathBuf,
    /// Probability (0 to 1) that a cancel or refund call fails with a 503.
    #[arg(long, default_value_t = 0.0)]
    cancel_failure_rate: f64,
    /// How many times a confirmation fails per trip under
    /// failHotelConfirmation / failFlightsConfirmation before succeeding.
    #[arg(long, default_value_t = 2)]
    confirm_failures: u32,
    /// Seed of the random failures of the samples' compensating functions
    /// under /lambda/ (drawn at random and logged when not given): the same
    /// seed fails the same calls again.
    #[arg(long)]
    lambda_failure_seed: Option<u64>,
    /// Probability (0 to 1) that a compensating function under /lambda/
    /// fails; by default each sample's own (0.6 for humank's cancel
    /// functions, 0.4 for cdk-patterns' compensators).
    #[arg(long)]
    lambda_cancel_failure_rate: Option<f64>,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("travel-services: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let config = Config {
        db_path: args.db,
        cancel_failure_rate: args.cancel_failure_rate,
        confirm_failures: args.confirm_failures,
        lambda_failure_seed: args.lambda_failure_seed.unwrap_or_else(rand::random),
        lambda_cancel_failure_rate: args.lambda_cancel_failure_rate,
    };
    let app = travel_services::router(&config)?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on http://{addr}")?;
        stdout.flush()?;
    }
    tracing::info!(
        %addr,
        db = %config.db_path.display(),
        lambda_failure_seed = config.lambda_failure_seed,
        "travel services started"
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving the travel services")?;
    tracing::info!("travel services stopped");
    Ok(())
}

/// Completes on ctrl-c or, on Unix, SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
