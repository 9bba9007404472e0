//! `recovery`: N executions are started on an engine whose participants are
//! slow, so they are mid-saga with calls in flight; then that engine
//! "crashes": its tokio runtime is shut down in the background, dropping
//! every task wherever it was (the database file survives; the store's lock
//! is released once its last handle is gone). A new store and engine open
//! the same database, `Engine::start` resumes what was unfinished, and we
//! measure until every execution is terminal.
//!
//! Not a real SIGKILL: the store's writer thread finishes the writes already
//! queued before it closes, as it would not after a kill. What was in flight
//! at the participants is lost either way and is invoked again.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use sagaflow_core::{Request, Status};
use sagaflow_runtime::{handler_fn, Engine, Handler};
use sagaflow_store::sqlite::SqliteStore;
use sagaflow_store::Executor;
use serde_json::json;
use tokio::task::JoinSet;

use super::report::{self, GroupCommit, Report};
use super::sys::Cpu;
use super::{count_histories, noop, sagas, Bench, Measured, Sample, WAIT};

const NAME: &str = "bench-recovery";

/// How long the crashed engine's store may take to be released.
const REOPEN_LIMIT: Duration = Duration::from_secs(30);

/// The crashing engine's participant: answers after `delay`.
fn slow(delay: Duration) -> impl Handler {
    handler_fn(move |req: Request| async move {
        tokio::time::sleep(delay).await;
        Ok(json!({ "step": req.step.as_str() }))
    })
}

pub async fn run(b: &Bench) -> anyhow::Result<Report> {
    let args = &b.args;
    let n = args.sagas.unwrap_or(b.default_sagas());
    let delay = Duration::from_millis(args.step_delay_ms);
    let yaml = sagas::travel_in_process(NAME)?;

    // The engine that crashes, on a runtime of its own.
    let doomed = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench-doomed")
        .enable_all()
        .build()
        .context("starting the first engine's runtime")?;
    let store = super::open_store(&b.db)?;
    let engine = Engine::builder(store.clone())
        .config(super::engine_config())
        .handler(sagas::NOOP, slow(delay))
        .build();
    b.progress.phase("starting", Some(n), None);
    let ids = doomed
        .spawn({
            let (engine, concurrency, progress) =
                (engine.clone(), args.concurrency(), b.progress.clone());
            async move {
                engine.start().await?;
                engine.deploy(None, &yaml).await?;
                let next = Arc::new(AtomicUsize::new(0));
                let mut starters = JoinSet::new();
                for _ in 0..concurrency {
                    let (engine, next, progress) = (engine.clone(), next.clone(), progress.clone());
                    starters.spawn(async move {
                        let mut ids = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed) as u64;
                            if i >= n {
                                return Ok::<_, anyhow::Error>(ids);
                            }
                            let (rec, _) = engine
                                .start_execution(NAME, json!({ "n": i }), None)
                                .await?;
                            progress.tick();
                            ids.push(rec.id);
                        }
                    });
                }
                let mut ids = Vec::with_capacity(n as usize);
                while let Some(done) = starters.join_next().await {
                    ids.extend(done.context("a starter failed")??);
                }
                Ok::<_, anyhow::Error>(ids)
            }
        })
        .await
        .context("the first engine's starter failed")??;
    // Let them get going: the first ones are a few steps in, all are unfinished.
    tokio::time::sleep(delay * 3 / 2).await;
    let in_flight_at_crash = engine.in_flight();
    let group_commit_before_crash = GroupCommit::of(store.group_commit_stats());
    drop(engine);
    drop(store);
    let crashed = Instant::now();
    doomed.shutdown_background();

    // Reopen: the lock file is released once the dropped tasks let go of the store.
    b.progress.phase("reopening", None, None);
    let store = loop {
        match SqliteStore::open(&b.db) {
            Ok(s) => break Arc::new(s),
            Err(e) if crashed.elapsed() < REOPEN_LIMIT => {
                tracing::debug!(error = %e, "the crashed engine's store is not released yet");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err(e) => bail!(
                "the crashed engine's database was not released within {} s: {e}",
                REOPEN_LIMIT.as_secs()
            ),
        }
    };
    let reopen = crashed.elapsed();

    // Restart and wait until everything is terminal.
    let cpu_before = Cpu::now();
    let restart_ms = now_ms();
    let restarted = Instant::now();
    let engine = Engine::builder(store.clone())
        .config(super::engine_config())
        .handler(sagas::NOOP, noop(None))
        .build();
    let resumed = engine.start().await?;
    let engine_start = restarted.elapsed();
    b.progress.phase("recovering", Some(n), None);
    let ids = Arc::new(ids);
    let next = Arc::new(AtomicUsize::new(0));
    let mut waiters = JoinSet::new();
    for _ in 0..args.concurrency() {
        let (engine, next, ids, progress) = (
            engine.clone(),
            next.clone(),
            ids.clone(),
            b.progress.clone(),
        );
        waiters.spawn(async move {
            let mut samples = Vec::new();
            loop {
                let Some(id) = ids.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    return Ok::<_, anyhow::Error>(samples);
                };
                let rec = engine.wait(id, WAIT).await?;
                progress.tick();
                samples.push(Sample {
                    id: rec.id,
                    latency: restarted.elapsed(),
                    status: rec.status,
                    expected: Status::Succeeded,
                    handler: Duration::ZERO,
                });
            }
        });
    }
    let mut samples = Vec::with_capacity(ids.len());
    while let Some(done) = waiters.join_next().await {
        samples.extend(done.context("a waiting worker failed")??);
    }
    // Anything else the database holds unfinished must end too.
    let mut left = store.unfinished().await?.len();
    while left > 0 && restarted.elapsed() < WAIT {
        tokio::time::sleep(Duration::from_millis(10)).await;
        left = store.unfinished().await?.len();
    }
    let recovered = restarted.elapsed();
    let cpu = Cpu::now().since(cpu_before);
    let group_commit = store.group_commit_stats();
    let peak = report::peak_rss_mib();

    b.progress.phase("reading histories", None, None);
    let counted = count_histories(
        &store,
        samples.iter().map(|s| s.id.clone()).collect(),
        Some(restart_ms),
    )
    .await?;
    let mut report = b.report(
        format!(
            "the travel saga (7 steps), in-process participants taking {} ms until the crash, none after",
            delay.as_millis()
        ),
        None,
        Measured {
            samples: &mut samples,
            counted: &counted,
            wall: recovered,
            cpu,
            group_commit,
            overhead: false,
        },
    );
    if left > 0 {
        report.problems.push(format!(
            "{left} executions were still unfinished {} s after the restart",
            WAIT.as_secs()
        ));
    }
    report.peak_rss_mib = peak;
    report.recovery = Some(report::Recovery {
        started: ids.len() as u64,
        step_delay_ms: args.step_delay_ms,
        in_flight_at_crash,
        resumed,
        reopen_ms: reopen.as_secs_f64() * 1e3,
        engine_start_ms: engine_start.as_secs_f64() * 1e3,
        recovered_s: recovered.as_secs_f64(),
        recovered_per_s: ids.len() as f64 / recovered.as_secs_f64().max(1e-9),
        group_commit_before_crash,
    });
    engine.shutdown(Duration::from_secs(5)).await;
    Ok(report)
}

/// Wall-clock milliseconds, as event timestamps are written.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
