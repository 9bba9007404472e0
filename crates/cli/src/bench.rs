//! `sagaflow bench`: measures the engine's hot path — decide, group-committed
//! append to SQLite, apply, invoke — with in-process participants, so the
//! numbers are the orchestrator's own and not a network's.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use sagaflow_core::ErrorInfo;
use sagaflow_runtime::{handler_fn, Config, Engine};
use sagaflow_store::sqlite::SqliteStore;
use serde_json::json;

#[derive(Args, Clone)]
pub struct BenchArgs {
    /// Executions to run.
    #[arg(long, default_value_t = 2000)]
    pub executions: usize,
    /// Executions in flight at once.
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
    /// Steps per saga (each with a compensation).
    #[arg(long, default_value_t = 4)]
    pub steps: usize,
    /// Fraction of executions whose last step fails, so the saga rolls back.
    #[arg(long, default_value_t = 0.0)]
    pub rollback_rate: f64,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    if args.executions == 0 || args.concurrency == 0 || args.steps == 0 {
        bail!("--executions, --concurrency and --steps must be at least 1");
    }
    if !(0.0..=1.0).contains(&args.rollback_rate) {
        bail!("--rollback-rate must be between 0 and 1");
    }
    let dir = tempfile::tempdir()?;
    let store = Arc::new(
        SqliteStore::open(dir.path().join("bench.db")).context("opening the benchmark database")?,
    );
    let engine = Engine::builder(store.clone())
        .config(Config {
            concurrency: 1024,
            ..Config::default()
        })
        .handler(
            "ok",
            handler_fn(|req| async move { Ok(json!({ "step": req.step })) }),
        )
        .handler(
            "last",
            handler_fn(|req| async move {
                if req.input.get("fail").and_then(|f| f.as_bool()) == Some(true) {
                    Err(ErrorInfo::new("Declined", "benchmark rollback"))
                } else {
                    Ok(json!({}))
                }
            }),
        )
        .build();
    engine.start().await?;
    let mut yaml = String::from("name: bench\nsteps:\n");
    for i in 0..args.steps {
        let handler = if i + 1 == args.steps { "last" } else { "ok" };
        yaml.push_str(&format!("  - name: s{i}\n    action: {{ handler: {handler} }}\n    compensation: {{ handler: ok }}\n"));
    }
    engine.deploy(None, &yaml).await?;

    let started = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(args.concurrency));
    let mut tasks = Vec::with_capacity(args.executions);
    for i in 0..args.executions {
        let permit = sem.clone().acquire_owned().await?;
        let engine = engine.clone();
        let fail = (i as f64 + 0.5) / args.executions as f64 <= args.rollback_rate;
        tasks.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let (rec, _) = engine
                .start_execution("bench", json!({ "n": i, "fail": fail }), None)
                .await?;
            let rec = engine.wait(&rec.id, Duration::from_secs(120)).await?;
            drop(permit);
            Ok::<_, sagaflow_runtime::Error>((t0.elapsed(), rec.status, rec.events))
        }));
    }
    let mut latencies = Vec::with_capacity(args.executions);
    let mut events = 0u64;
    let mut unfinished = 0;
    for t in tasks {
        let (lat, status, n) = t.await??;
        if !status.is_terminal() {
            unfinished += 1;
        }
        latencies.push(lat);
        events += n;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p) as usize];
    let (batches, requests) = store.group_commit_stats();
    println!("executions            {}", args.executions);
    println!(
        "steps per saga        {} (rollback rate {})",
        args.steps, args.rollback_rate
    );
    println!("concurrency           {}", args.concurrency);
    println!("wall time             {:.2?}", elapsed);
    println!(
        "executions/s          {:.0}",
        args.executions as f64 / elapsed.as_secs_f64()
    );
    println!(
        "history events/s      {:.0}",
        events as f64 / elapsed.as_secs_f64()
    );
    println!(
        "latency p50 / p99     {:.1?} / {:.1?}",
        pct(0.50),
        pct(0.99)
    );
    println!(
        "commits (fsyncs)      {batches} for {requests} writes ({:.1} writes per commit)",
        requests as f64 / batches.max(1) as f64
    );
    if unfinished > 0 {
        eprintln!("{unfinished} executions did not finish within the wait");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
