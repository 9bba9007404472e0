//! `parked`: N executions wait on a callback task at once (what a parked
//! execution costs in memory, how fast they park), then every token comes
//! back through `Engine::callback` (how fast they complete).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use sagaflow_core::{ErrorInfo, Request, Status};
use sagaflow_runtime::{handler_fn, Engine};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::report::{self, Report};
use super::sys::{self, mib};
use super::{count_histories, noop, open_store, sagas, Bench, Measured, Meter, Sample, WAIT};

const NAME: &str = "bench-parked";

/// Longest wait for the next execution to park before giving up.
const STALL: Duration = Duration::from_secs(60);

pub async fn run(b: &Bench) -> anyhow::Result<Report> {
    let args = &b.args;
    let n = args.sagas.unwrap_or(b.default_sagas());
    let store = open_store(&b.db)?;
    // Unbounded: the bench keeps every parked execution's token (n of
    // them) until it answers them, and a participant waiting for room would
    // hold a call slot and stall the parking it measures.
    let (tx, mut tokens) = mpsc::unbounded_channel::<String>();
    let engine = Engine::builder(store.clone())
        .config(super::engine_config())
        .handler(sagas::NOOP, noop(None))
        .handler(
            "park",
            handler_fn(move |req: Request| {
                let tx = tx.clone();
                async move {
                    let token = req.task_token.ok_or_else(|| {
                        ErrorInfo::new("NoToken", "a callback task must carry a token")
                    })?;
                    let _ = tx.send(token);
                    Ok(Value::Null)
                }
            }),
        )
        .build();
    engine.start().await?;
    engine.deploy(None, &sagas::parked(NAME)).await?;

    // Park them all.
    let rss_before = sys::rss();
    b.progress.phase("parking", Some(n), None);
    let meter = Meter::start();
    let next = Arc::new(AtomicUsize::new(0));
    let mut starters = JoinSet::new();
    for _ in 0..args.concurrency() {
        let (engine, next) = (engine.clone(), next.clone());
        starters.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as u64;
                if i >= n {
                    return Ok::<_, anyhow::Error>(());
                }
                engine
                    .start_execution(NAME, json!({ "n": i }), None)
                    .await?;
            }
        });
    }
    let mut parked = Tokens::with_capacity(n as usize);
    while (parked.len() as u64) < n {
        tokio::select! {
            token = tokens.recv() => match token {
                Some(t) => {
                    parked.push(&t);
                    b.progress.tick();
                }
                None => bail!("the engine stopped handing out task tokens"),
            },
            Some(done) = starters.join_next(), if !starters.is_empty() => {
                done.context("a starter failed")??;
            }
            _ = tokio::time::sleep(STALL) => {
                bail!("only {} of {n} executions parked; none for {} s", parked.len(), STALL.as_secs())
            }
        }
    }
    while let Some(done) = starters.join_next().await {
        done.context("a starter failed")??;
    }
    // The handler has answered; wait until every call has moved on to
    // waiting for its token (nothing is in flight any more).
    let settle = Instant::now();
    while engine.in_flight() > 0 && settle.elapsed() < STALL {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let park_time = meter.stop().0;
    let rss_parked = sys::rss();
    let bookkeeping = parked.bytes();

    // Complete them all.
    b.progress.phase("completing", Some(n), None);
    let completing = Instant::now();
    let parked = Arc::new(parked);
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = JoinSet::new();
    for _ in 0..args.concurrency() {
        let (engine, next, parked, progress) = (
            engine.clone(),
            next.clone(),
            parked.clone(),
            b.progress.clone(),
        );
        workers.spawn(async move {
            let mut samples = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(token) = parked.get(i) else {
                    return Ok::<_, anyhow::Error>(samples);
                };
                let id = sagaflow_core::parse_task_token(token)
                    .context("a task token the engine handed out does not parse")?
                    .execution_id;
                let started = Instant::now();
                engine
                    .callback(token, Some(Ok(json!({ "approved": true }))))
                    .await?;
                let rec = engine.wait(&id, WAIT).await?;
                progress.tick();
                samples.push(Sample {
                    id: rec.id,
                    latency: started.elapsed(),
                    status: rec.status,
                    expected: Status::Succeeded,
                    handler: Duration::ZERO,
                });
            }
        });
    }
    let mut samples = Vec::with_capacity(n as usize);
    while let Some(done) = workers.join_next().await {
        samples.extend(done.context("a completing worker failed")??);
    }
    let complete_time = completing.elapsed();
    let (wall, cpu) = meter.stop();
    let group_commit = store.group_commit_stats();
    let peak = report::peak_rss_mib();

    b.progress.phase("reading histories", None, None);
    let counted =
        count_histories(&store, samples.iter().map(|s| s.id.clone()).collect(), None).await?;
    let mut report = b.report(
        "3 steps (reserve, approve: a callback task, book), in-process participants".into(),
        None,
        Measured {
            samples: &mut samples,
            counted: &counted,
            wall,
            cpu,
            group_commit,
            overhead: false,
        },
    );
    report.peak_rss_mib = peak;
    report.parked = Some(report::Parked {
        parked: n,
        park_s: park_time.as_secs_f64(),
        parked_per_s: n as f64 / park_time.as_secs_f64().max(1e-9),
        rss_before_mib: mib(rss_before),
        rss_parked_mib: mib(rss_parked),
        rss_per_parked_bytes: rss_parked.saturating_sub(rss_before) as f64 / n as f64,
        bench_tokens_mib: mib(bookkeeping as u64),
        engine_per_parked_bytes: rss_parked
            .saturating_sub(rss_before)
            .saturating_sub(bookkeeping as u64) as f64
            / n as f64,
        complete_s: complete_time.as_secs_f64(),
        completed_per_s: n as f64 / complete_time.as_secs_f64().max(1e-9),
    });
    engine.shutdown(Duration::from_secs(5)).await;
    Ok(report)
}

/// The task tokens of the parked executions, as the benchmark keeps them
/// (as an outside system would): one buffer and their ends, not a string
/// each, so that the benchmark's own memory is small, known, and apart from
/// the engine's.
struct Tokens {
    text: String,
    ends: Vec<usize>,
}

impl Tokens {
    fn with_capacity(n: usize) -> Tokens {
        Tokens {
            // About 150 bytes a token: hex of the route, a dot, the nonce.
            text: String::with_capacity(n * 150),
            ends: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, token: &str) {
        self.text.push_str(token);
        self.ends.push(self.text.len());
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    fn get(&self, i: usize) -> Option<&str> {
        let end = *self.ends.get(i)?;
        let start = i.checked_sub(1).map_or(0, |p| self.ends[p]);
        self.text.get(start..end)
    }

    /// What they take in memory.
    fn bytes(&self) -> usize {
        self.text.capacity() + self.ends.capacity() * std::mem::size_of::<usize>()
    }
}
