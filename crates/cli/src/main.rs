//! `sagaflow`: one binary for the server, the client commands and the demo.
//!
//! Client commands talk to a running server over its HTTP API (`--server`);
//! data goes to stdout (a table, or JSON with `--json`), messages to stderr,
//! and a failure gives a non-zero exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

mod bench;
mod client;
mod demo;
mod explain;
mod functions;
mod server;

#[derive(Parser)]
#[command(
    name = "sagaflow",
    version,
    about = "Durable saga orchestrator: run steps, undo them in reverse when one fails, survive crashes."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Options shared by the commands that talk to a server.
#[derive(Args, Clone)]
pub struct Remote {
    /// Base URL of the Sagaflow server.
    #[arg(
        long,
        env = "SAGAFLOW_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub server: String,
    /// Bearer token, when the server requires one.
    #[arg(long, env = "SAGAFLOW_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand)]
enum DeadLetterAction {
    /// Put a dead letter back in the outbox: the hook delivers it again.
    Replay {
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (API, engine, embedded SQLite database).
    Server(Box<server::ServerArgs>),
    /// Check a saga definition file locally; every problem is listed with its location.
    Validate {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Show, without calling anyone, what an execution of a definition file
    /// does when a step fails: the retries, the compensations in order, where
    /// it ends and how long it can take. Without --fail: every step's path.
    Explain {
        file: PathBuf,
        /// The step (or ASL state) that fails on every attempt, and how:
        /// STEP (a server error, States.TaskFailed), STEP:States.Timeout,
        /// STEP:Sagaflow.ResponseLost or STEP:ErrorName (a business error).
        #[arg(long)]
        fail: Option<String>,
        /// A step whose compensation fails on every attempt.
        #[arg(long)]
        fail_compensation: Option<String>,
        /// The execution input (a JSON file); `{}` by default.
        #[arg(long)]
        input: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Register a saga definition file with the server (a changed file becomes a new version).
    Deploy {
        file: PathBuf,
        /// The name to register under, for a document that has no `name` of its own
        /// (an ASL state machine); a document's own `name` must match it.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Start an execution of a definition.
    Start {
        definition: String,
        /// The input: a JSON document, or the path of a file holding one.
        #[arg(long, default_value = "{}")]
        input: String,
        /// Execution id (makes the start idempotent).
        #[arg(long)]
        id: Option<String>,
        /// Wait up to this many seconds for the execution to finish. The exit
        /// code then tells the outcome: 0 succeeded, 3 finished without
        /// succeeding (compensated, cancelled, failed), 4 still running.
        #[arg(long)]
        wait: Option<f64>,
        #[command(flatten)]
        remote: Remote,
    },
    /// List executions, newest first.
    List {
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        definition: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        cursor: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Show one execution.
    Show {
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Show an execution's history; `--follow` keeps printing until it finishes.
    History {
        id: String,
        #[arg(long, short)]
        follow: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Cancel a running execution: what was done is compensated.
    Cancel {
        id: String,
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Resume a failed execution from where it stopped.
    Redrive {
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Hook notifications whose delivery gave up (kept, never dropped).
    DeadLetters {
        #[command(subcommand)]
        action: Option<DeadLetterAction>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        remote: Remote,
    },
    /// Start the travel services and a server on free ports, run every scenario, and explain each.
    Demo(demo::DemoArgs),
    /// Measure throughput, latency, overhead, memory and crash recovery (workloads: see README).
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let quiet = !matches!(cli.command, Command::Server(_));
    let filter =
        std::env::var("RUST_LOG")
            .unwrap_or_else(|_| if quiet { "warn".into() } else { "info".into() });
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        match cli.command {
            Command::Server(args) => server::run(*args).await,
            // Reading a definition is CPU work (bounded: see sagaflow_core::document).
            Command::Validate { file, json } => {
                tokio::task::spawn_blocking(move || client::validate(&file, json)).await?
            }
            Command::Explain {
                file,
                fail,
                fail_compensation,
                input,
                json,
            } => {
                tokio::task::spawn_blocking(move || {
                    explain::run(&explain::Ask {
                        file: &file,
                        fail: fail.as_deref(),
                        fail_compensation: fail_compensation.as_deref(),
                        input: input.as_deref(),
                        json,
                    })
                })
                .await?
            }
            Command::Deploy { file, name, remote } => client::deploy(&remote, &file, name).await,
            Command::Start {
                definition,
                input,
                id,
                wait,
                remote,
            } => client::start(&remote, &definition, &input, id, wait).await,
            Command::List {
                status,
                definition,
                limit,
                cursor,
                remote,
            } => client::list(&remote, status, definition, limit, cursor).await,
            Command::Show { id, remote } => client::show(&remote, &id).await,
            Command::History { id, follow, remote } => client::history(&remote, &id, follow).await,
            Command::Cancel { id, reason, remote } => client::cancel(&remote, &id, reason).await,
            Command::Redrive { id, remote } => client::redrive(&remote, &id).await,
            Command::DeadLetters {
                action: None,
                limit,
                remote,
            } => client::dead_letters(&remote, limit).await,
            Command::DeadLetters {
                action: Some(DeadLetterAction::Replay { id, remote }),
                ..
            } => client::replay_dead_letter(&remote, &id).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Bench(args) => bench::run(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
