//! `sagaflow bench`: measures the orchestrator on an embedded SQLite database
//! with the durability it ships with (`synchronous=FULL`: an fsync per
//! commit, shared by group commit).
//!
//! Workloads (`--workload`):
//! - `inprocess`: the travel saga of `examples/travel-saga.yaml` (7 steps)
//!   with in-process no-op participants: the engine and the store, no network;
//! - `http`: the same saga against the travel services over loopback HTTP;
//! - `rollback`: `inprocess` where a seeded 30% of the sagas fail before the
//!   pivot and compensate;
//! - `parked`: executions parked on a callback task, then completed;
//! - `recovery`: executions interrupted by a crash, then resumed;
//! - `asl-map`: an ASL Map state with one Task per item (`--items`);
//! - `durable`: the travel saga as a Lambda durable function (Python
//!   workers) on a server in this process, through the Lambda API.
//!
//! `inprocess`, `http` and `rollback` are a closed loop: `--concurrency`
//! workers each start a saga, wait for its end, and start the next.

mod asl_map;
mod durable;
mod parked;
mod progress;
mod recovery;
mod report;
mod sagas;
mod sys;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use sagaflow_core::event::Millis;
use sagaflow_core::{ErrorInfo, EventKind, Request, Status, TaskKind};
use sagaflow_runtime::{handler_fn, Config, Engine, Handler};
use sagaflow_store::sqlite::SqliteStore;
use sagaflow_store::Query;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::task::JoinSet;

use progress::Progress;
use report::{CpuReport, GroupCommit, Overhead, Report, Settings};
use sys::{Cpu, Machine};

/// How long one saga may take before the benchmark calls it unfinished.
const WAIT: Duration = Duration::from_secs(120);

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// The 7-step travel saga with in-process no-op participants.
    Inprocess,
    /// The travel saga against the travel services over loopback HTTP.
    Http,
    /// `inprocess` with a share of the sagas failing before the pivot.
    Rollback,
    /// Executions parked on a callback task, then completed.
    Parked,
    /// Executions interrupted by a simulated crash, then recovered.
    Recovery,
    /// An ASL Map state running one Task per item (`--items`).
    AslMap,
    /// The travel saga as a Lambda durable function (examples/durable) on
    /// an in-process server with Python workers, invoked through the Lambda API.
    Durable,
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Workload::Inprocess => "inprocess",
            Workload::Http => "http",
            Workload::Rollback => "rollback",
            Workload::Parked => "parked",
            Workload::Recovery => "recovery",
            Workload::AslMap => "asl-map",
            Workload::Durable => "durable",
        })
    }
}

#[derive(Args, Clone)]
pub struct BenchArgs {
    /// What to run.
    #[arg(long, value_enum, default_value_t = Workload::Inprocess)]
    pub workload: Workload,
    /// Sagas to run [default: 2000; parked: 10000; asl-map: 1; durable: 50].
    #[arg(long, alias = "executions", conflicts_with = "duration")]
    pub sagas: Option<u64>,
    /// Run for this many seconds instead of a number of sagas (inprocess, http, rollback, durable).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Sagas in flight at once (parked: starts and callbacks in flight;
    /// durable: clients, and the function's worker processes) [default: 200;
    /// durable: 4].
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// The database file [default: in a temporary directory, removed afterwards].
    #[arg(long, value_name = "PATH")]
    pub database: Option<PathBuf>,
    /// Print the report as JSON (and no progress line).
    #[arg(long)]
    pub json: bool,
    /// inprocess, rollback: run a linear saga of N steps, each with a
    /// compensation, instead of the travel saga (the former `sagaflow bench`).
    #[arg(long, value_name = "N")]
    pub steps: Option<usize>,
    /// inprocess, rollback: the share of sagas that fail at a random step
    /// before the pivot [default: 0, rollback: 0.3]; durable: the share that
    /// run `fail-car-booking.json` (and compensate) [default: 0].
    #[arg(long)]
    pub rollback_rate: Option<f64>,
    /// Seed of the choice of failing sagas and steps.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// recovery: how long each participant call of the engine that crashes
    /// takes, so that executions are mid-flight when it does.
    #[arg(long, default_value_t = 500, value_name = "MS")]
    pub step_delay_ms: u64,
    /// asl-map: items of the Map state, one Task each [default: 1000].
    #[arg(long, value_name = "N")]
    pub items: Option<usize>,
    /// asl-map: the Map state's MaxConcurrency (0: every item at once).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub map_concurrency: usize,
    /// durable: the Python interpreter of the function's workers (with
    /// aws-durable-execution-sdk-python and awslambdaric)
    /// [default: $SAGAFLOW_PYTHON, else .fnenv/bin/python].
    #[arg(long, value_name = "PATH")]
    pub python: Option<PathBuf>,
    /// durable: host this custom-runtime executable (a Lambda `bootstrap`,
    /// e.g. durable-rust's `bench-saga`, seven steps with in-process
    /// participants) instead of the Python travel saga.
    #[arg(long, value_name = "PATH", conflicts_with = "python")]
    pub function: Option<PathBuf>,
}

impl BenchArgs {
    /// `--concurrency`, or the workload's default.
    pub fn concurrency(&self) -> usize {
        self.concurrency
            .unwrap_or(if self.workload == Workload::Durable {
                4
            } else {
                200
            })
    }
}

/// What every workload gets.
pub(crate) struct Bench {
    pub args: BenchArgs,
    pub db: PathBuf,
    /// For files besides the database (the travel services' own).
    pub scratch: PathBuf,
    pub progress: Arc<Progress>,
}

/// The engine settings every workload starts from. One no-op handler (or,
/// over HTTP, four services on one address) stands for all the participants
/// of a real deployment, so its bulkhead gets every slot: the bench measures
/// the engine's hot path, not a per-participant limit.
pub(crate) fn engine_config() -> Config {
    let config = Config::default();
    Config {
        participant_concurrency: config.concurrency,
        ..config
    }
}

pub async fn run(mut args: BenchArgs) -> anyhow::Result<ExitCode> {
    args.concurrency = Some(args.concurrency());
    if args.concurrency() == 0 || args.sagas == Some(0) || args.steps == Some(0) {
        bail!("--concurrency, --sagas and --steps must be at least 1");
    }
    if let Some(d) = args.duration {
        if !(d > 0.0 && d.is_finite()) {
            bail!("--duration must be a positive number of seconds");
        }
        if matches!(
            args.workload,
            Workload::Parked | Workload::Recovery | Workload::AslMap
        ) {
            bail!(
                "--duration applies to inprocess, http, rollback and durable; {} runs --sagas executions",
                args.workload
            );
        }
    }
    let closed_in_process = matches!(args.workload, Workload::Inprocess | Workload::Rollback);
    if let Some(r) = args.rollback_rate {
        if !(0.0..=1.0).contains(&r) {
            bail!("--rollback-rate must be between 0 and 1");
        }
        if !closed_in_process && args.workload != Workload::Durable {
            bail!("--rollback-rate applies to inprocess, rollback and durable");
        }
    }
    if args.steps.is_some() && !closed_in_process {
        bail!("--steps applies to inprocess and rollback");
    }
    if (args.items.is_some() || args.map_concurrency > 0) && args.workload != Workload::AslMap {
        bail!("--items and --map-concurrency apply to asl-map");
    }
    if (args.python.is_some() || args.function.is_some()) && args.workload != Workload::Durable {
        bail!("--python and --function apply to durable");
    }
    if args.function.is_some() && args.rollback_rate.is_some() {
        bail!("--rollback-rate applies to the Python travel saga, not to --function");
    }
    if args.items == Some(0) {
        bail!("--items must be at least 1");
    }
    let tmp = tempfile::tempdir().context("creating a temporary directory")?;
    let db = args
        .database
        .clone()
        .unwrap_or_else(|| tmp.path().join("bench.db"));
    let progress = Progress::start(!args.json && std::io::stderr().is_terminal());
    let bench = Bench {
        args: args.clone(),
        db,
        scratch: tmp.path().to_path_buf(),
        progress: progress.clone(),
    };
    let result = match args.workload {
        Workload::Inprocess | Workload::Rollback | Workload::Http => closed(&bench).await,
        Workload::Parked => parked::run(&bench).await,
        Workload::Recovery => recovery::run(&bench).await,
        Workload::AslMap => asl_map::run(&bench).await,
        Workload::Durable => durable::run(&bench).await,
    };
    progress.finish();
    let report = result?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        report.print();
    }
    if !report.problems.is_empty() {
        for p in &report.problems {
            eprintln!("bench: {p}");
        }
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn open_store(path: &Path) -> anyhow::Result<Arc<SqliteStore>> {
    Ok(Arc::new(SqliteStore::open(path).with_context(|| {
        format!("opening the benchmark database {}", path.display())
    })?))
}

/// Time spent inside participant handlers, by execution id.
#[derive(Default)]
pub(crate) struct HandlerClock(Mutex<HashMap<String, Duration>>);

impl HandlerClock {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Duration>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn add(&self, id: String, spent: Duration) {
        *self.lock().entry(id).or_default() += spent;
    }

    fn take(&self, id: &str) -> Duration {
        self.lock().remove(id).unwrap_or_default()
    }
}

/// The in-process participant of every step: answers at once, except the
/// action of the step named by the input's `fail_at`, which fails with a
/// business error (not retried), so the saga compensates. With a clock it
/// records how long it ran.
pub(crate) fn noop(clock: Option<Arc<HandlerClock>>) -> impl Handler {
    handler_fn(move |req: Request| {
        let clock = clock.clone();
        async move {
            let started = Instant::now();
            let fail = req.task == TaskKind::Action
                && req.input.get("fail_at").and_then(Value::as_str) == Some(req.step.as_str());
            let result = if fail {
                Err(ErrorInfo::new(
                    "Declined",
                    "failure injected by the benchmark",
                ))
            } else {
                Ok(json!({ "step": req.step.as_str() }))
            };
            if let Some(clock) = clock {
                clock.add(req.execution_id, started.elapsed());
            }
            result
        }
    })
}

/// Wall time and CPU time from a start.
pub(crate) struct Meter {
    started: Instant,
    cpu: Cpu,
}

impl Meter {
    pub fn start() -> Meter {
        Meter {
            started: Instant::now(),
            cpu: Cpu::now(),
        }
    }

    pub fn stop(&self) -> (Duration, Cpu) {
        (self.started.elapsed(), Cpu::now().since(self.cpu))
    }
}

/// One saga to run: its input and how it must end.
pub(crate) struct Job {
    pub input: Value,
    pub expected: Status,
}

/// One saga that ran.
pub(crate) struct Sample {
    pub id: String,
    pub latency: Duration,
    pub status: Status,
    pub expected: Status,
    /// Time inside its participant handlers (when measured).
    pub handler: Duration,
}

#[derive(Clone, Copy)]
enum Limit {
    Count(u64),
    Until(Instant),
}

type Jobs = Arc<dyn Fn(u64) -> Job + Send + Sync>;

/// The closed loop: `concurrency` workers each start a saga, wait for it to
/// end, and start the next, until `limit`.
async fn drive(
    engine: &Engine,
    definition: &str,
    limit: Limit,
    concurrency: usize,
    jobs: Jobs,
    clock: Option<Arc<HandlerClock>>,
    progress: &Arc<Progress>,
) -> anyhow::Result<Vec<Sample>> {
    let next = Arc::new(AtomicU64::new(0));
    let definition: Arc<str> = definition.into();
    let mut workers = JoinSet::new();
    for _ in 0..concurrency {
        let (engine, next, jobs, clock, progress, definition) = (
            engine.clone(),
            next.clone(),
            jobs.clone(),
            clock.clone(),
            progress.clone(),
            definition.clone(),
        );
        workers.spawn(async move {
            let mut samples = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                match limit {
                    Limit::Count(n) if i >= n => break,
                    Limit::Until(t) if Instant::now() >= t => break,
                    _ => {}
                }
                let Job { input, expected } = jobs(i);
                let started = Instant::now();
                let (rec, _) = engine.start_execution(&definition, input, None).await?;
                let rec = engine.wait(&rec.id, WAIT).await?;
                let latency = started.elapsed();
                let handler = clock.as_ref().map(|c| c.take(&rec.id)).unwrap_or_default();
                progress.tick();
                samples.push(Sample {
                    id: rec.id,
                    latency,
                    status: rec.status,
                    expected,
                    handler,
                });
            }
            Ok::<_, anyhow::Error>(samples)
        });
    }
    let mut samples = Vec::new();
    while let Some(done) = workers.join_next().await {
        samples.extend(done.context("a benchmark worker failed")??);
    }
    Ok(samples)
}

/// Steps (`step_scheduled` + `compensation_scheduled`) and events of one history.
#[derive(Clone, Copy, Default)]
pub(crate) struct Counted {
    pub steps: u64,
    pub events: u64,
}

/// Reads the histories of `ids` (after the measurement) and counts their
/// steps and events, only those at or after `since` when given.
pub(crate) async fn count_histories(
    store: &Arc<SqliteStore>,
    ids: Vec<String>,
    since: Option<Millis>,
) -> anyhow::Result<Vec<Counted>> {
    const READERS: usize = 4;
    let ids = Arc::new(ids);
    let chunk = ids.len().div_ceil(READERS).max(1);
    let mut readers = JoinSet::new();
    for (n, start) in (0..ids.len()).step_by(chunk).enumerate() {
        let (store, ids) = (store.clone(), ids.clone());
        readers.spawn(async move {
            let mut out = Vec::with_capacity(chunk);
            for id in &ids[start..(start + chunk).min(ids.len())] {
                let mut c = Counted::default();
                for entry in store.history(id, 0).await? {
                    if since.is_some_and(|s| entry.event.at < s) {
                        continue;
                    }
                    c.events += 1;
                    if matches!(
                        entry.event.kind,
                        EventKind::StepScheduled { .. } | EventKind::CompensationScheduled { .. }
                    ) {
                        c.steps += 1;
                    }
                }
                out.push(c);
            }
            Ok::<_, anyhow::Error>((n, out))
        });
    }
    let mut parts = BTreeMap::new();
    while let Some(done) = readers.join_next().await {
        let (n, out) = done.context("reading histories failed")??;
        parts.insert(n, out);
    }
    Ok(parts.into_values().flatten().collect())
}

/// The statuses of `samples`, and what did not end as expected.
pub(crate) fn outcomes(samples: &[Sample]) -> (BTreeMap<String, u64>, Vec<String>) {
    let mut by_status = BTreeMap::new();
    let mut unfinished = 0;
    let mut unexpected = 0;
    let mut example = None;
    for s in samples {
        *by_status.entry(s.status.as_str().to_string()).or_insert(0) += 1;
        if !s.status.is_terminal() {
            unfinished += 1;
        } else if s.status != s.expected {
            unexpected += 1;
            example.get_or_insert_with(|| {
                format!(
                    "{} ended {} instead of {}",
                    s.id,
                    s.status.as_str(),
                    s.expected.as_str()
                )
            });
        }
    }
    let mut problems = Vec::new();
    if unfinished > 0 {
        problems.push(format!(
            "{unfinished} sagas were not finished after {} s",
            WAIT.as_secs()
        ));
    }
    if unexpected > 0 {
        problems.push(format!(
            "{unexpected} sagas did not end as expected (e.g. {})",
            example.unwrap_or_default()
        ));
    }
    (by_status, problems)
}

/// Everything of a report that is measured the same way in every workload.
pub(crate) struct Measured<'a> {
    pub samples: &'a mut [Sample],
    pub counted: &'a [Counted],
    pub wall: Duration,
    pub cpu: Cpu,
    pub group_commit: (u64, u64),
    /// Whether handler time was measured (in-process participants).
    pub overhead: bool,
}

impl Bench {
    fn settings(&self, rollback_rate: Option<f64>) -> Settings {
        let a = &self.args;
        Settings {
            sagas: if a.duration.is_some() {
                None
            } else {
                Some(a.sagas.unwrap_or(self.default_sagas()))
            },
            duration_s: a.duration,
            concurrency: a.concurrency(),
            database: match &a.database {
                Some(p) => p.display().to_string(),
                None => "a temporary directory".into(),
            },
            durability: "WAL, synchronous=FULL: an fsync per group commit",
            rollback_rate,
            seed: rollback_rate.map(|_| a.seed),
        }
    }

    /// How long the measured phase runs: `--duration` from now, or
    /// `--sagas` (the workload's default) executions; with the count to
    /// show progress against, or the moment it ends.
    fn limit(&self) -> (Limit, Option<u64>, Option<Instant>) {
        match self.args.duration {
            Some(d) => {
                let until = Instant::now() + Duration::from_secs_f64(d);
                (Limit::Until(until), None, Some(until))
            }
            None => {
                let n = self.args.sagas.unwrap_or(self.default_sagas());
                (Limit::Count(n), Some(n), None)
            }
        }
    }

    fn default_sagas(&self) -> u64 {
        match self.args.workload {
            Workload::Parked => 10_000,
            Workload::AslMap => 1,
            Workload::Durable => 50,
            _ => 2_000,
        }
    }

    pub(crate) fn report(
        &self,
        saga: String,
        rollback_rate: Option<f64>,
        m: Measured<'_>,
    ) -> Report {
        let sagas = m.samples.len() as u64;
        let steps: u64 = m.counted.iter().map(|c| c.steps).sum();
        let events: u64 = m.counted.iter().map(|c| c.events).sum();
        let secs = m.wall.as_secs_f64().max(1e-9);
        let (outcomes, problems) = outcomes(m.samples);
        let overhead = if m.overhead {
            let mut per_step: Vec<f64> = m
                .samples
                .iter()
                .zip(m.counted)
                .filter(|(_, c)| c.steps > 0)
                .map(|(s, c)| {
                    s.latency.saturating_sub(s.handler).as_secs_f64() * 1e6 / c.steps as f64
                })
                .collect();
            per_step.sort_by(f64::total_cmp);
            (!per_step.is_empty()).then(|| Overhead {
                p50: report::pick(&per_step, 0.50),
                p99: report::pick(&per_step, 0.99),
            })
        } else {
            None
        };
        let mut latencies: Vec<Duration> = m.samples.iter().map(|s| s.latency).collect();
        Report {
            workload: self.args.workload,
            saga,
            machine: Machine::this(),
            settings: self.settings(rollback_rate),
            sagas,
            wall_s: m.wall.as_secs_f64(),
            sagas_per_s: sagas as f64 / secs,
            steps,
            steps_per_s: steps as f64 / secs,
            events,
            outcomes,
            latency_ms: report::percentiles(&mut latencies, 1e3),
            overhead_per_step_us: overhead,
            cpu: CpuReport::of(m.cpu, m.wall, sagas),
            peak_rss_mib: report::peak_rss_mib(),
            group_commit: GroupCommit::of(m.group_commit),
            parked: None,
            recovery: None,
            asl_map: None,
            durable: None,
            problems,
        }
    }
}

/// SplitMix64: a seeded, stateless stream of numbers, one per saga.
fn mix(seed: u64, i: u64) -> u64 {
    let mut z = seed
        .wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `inprocess`, `rollback` and `http`: the closed loop.
async fn closed(b: &Bench) -> anyhow::Result<Report> {
    let args = &b.args;
    let store = open_store(&b.db)?;
    let clock = Arc::new(HandlerClock::default());
    let http = args.workload == Workload::Http;
    let rollback_rate = match args.workload {
        Workload::Rollback => Some(args.rollback_rate.unwrap_or(0.3)),
        Workload::Inprocess => args.rollback_rate.filter(|r| *r > 0.0),
        _ => None,
    };

    let mut config = engine_config();
    let mut travel = None;
    let (name, yaml, saga, fail_steps) = if http {
        let mut cfg = travel_services::Config::new(b.scratch.join("travel.db"));
        cfg.cancel_failure_rate = 0.0;
        let services = travel_services::start(cfg, "127.0.0.1:0".parse()?)
            .await
            .context("starting the travel services")?;
        config
            .variables
            .insert("TRAVEL_URL".into(), services.base_url());
        travel = Some(services);
        (
            "trip-booking".to_string(),
            crate::demo::TRAVEL_SAGA.to_string(),
            "the travel saga (7 steps) against the travel services over loopback HTTP".to_string(),
            Vec::new(),
        )
    } else if let Some(n) = args.steps {
        let name = format!("bench-linear-{n}");
        (
            name.clone(),
            sagas::linear(&name, n),
            format!("a linear saga of {n} steps with compensations, in-process no-op participants"),
            sagas::linear_steps(n),
        )
    } else {
        let name = "bench-travel".to_string();
        (
            name.clone(),
            sagas::travel_in_process(&name)?,
            "the travel saga (7 steps) with in-process no-op participants".to_string(),
            sagas::TRAVEL_COMPENSATABLE
                .iter()
                .map(|s| s.to_string())
                .collect(),
        )
    };
    let mut builder = Engine::builder(store.clone()).config(config);
    if !http {
        builder = builder.handler(sagas::NOOP, noop(Some(clock.clone())));
    }
    let engine = builder.build();
    engine.start().await?;
    engine.deploy(None, &yaml).await?;

    let jobs: Jobs = if http {
        let base: Value =
            serde_json::from_str(include_str!("../../../examples/trip-success.json"))?;
        // Trip ids are unique per run: the travel services remember trips.
        let run = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        Arc::new(move |i| {
            let mut input = base.clone();
            input["trip_id"] = json!(format!("bench-{run}-{i}"));
            input["run_type"] = json!("success");
            Job {
                input,
                expected: Status::Succeeded,
            }
        })
    } else {
        let (seed, rate) = (args.seed, rollback_rate.unwrap_or(0.0));
        Arc::new(move |i| {
            let r = mix(seed, i);
            let fails = (r >> 11) as f64 / (1u64 << 53) as f64 <= rate && rate > 0.0;
            if fails {
                let at = &fail_steps[(mix(seed ^ 0x5eed, i) % fail_steps.len() as u64) as usize];
                Job {
                    input: json!({ "n": i, "fail_at": at }),
                    expected: Status::Compensated,
                }
            } else {
                Job {
                    input: json!({ "n": i }),
                    expected: Status::Succeeded,
                }
            }
        })
    };

    let (limit, total, until) = b.limit();
    b.progress.phase(&args.workload.to_string(), total, until);
    let meter = Meter::start();
    let mut samples = drive(
        &engine,
        &name,
        limit,
        args.concurrency(),
        jobs,
        (!http).then(|| clock.clone()),
        &b.progress,
    )
    .await?;
    let (wall, cpu) = meter.stop();
    let group_commit = store.group_commit_stats();
    let peak = report::peak_rss_mib();
    b.progress.phase("reading histories", None, None);
    let counted =
        count_histories(&store, samples.iter().map(|s| s.id.clone()).collect(), None).await?;
    let mut report = b.report(
        saga,
        rollback_rate,
        Measured {
            samples: &mut samples,
            counted: &counted,
            wall,
            cpu,
            group_commit,
            overhead: !http,
        },
    );
    report.peak_rss_mib = peak;
    engine.shutdown(Duration::from_secs(5)).await;
    if let Some(t) = travel {
        t.stop().await?;
    }
    Ok(report)
}
