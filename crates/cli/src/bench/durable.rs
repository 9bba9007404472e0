//! `durable`: the travel saga as a Lambda durable function
//! (`examples/durable/saga/index.py`) hosted by a Sagaflow server in this
//! process, its six `saga-*` services answered by the travel services (in
//! process too, over loopback HTTP). `--concurrency` clients each invoke the
//! function synchronously (the Lambda API's `Invoke`, `RequestResponse`),
//! wait for its answer, and invoke again. The function code runs in Python
//! worker processes (`workers` = concurrency), which call the server back to
//! checkpoint.
//!
//! With `--function PATH` the function is that custom-runtime executable
//! instead (durable-rust's `bench-saga`: the travel saga's seven steps in
//! Rust, with in-process participants), invoked with `{"tripId": …}`: the
//! durable path's cost per step, to hold against the `inprocess` workload's
//! native saga of the same shape.
//!
//! Invocations and the server-side checkpoint latency come from the
//! process's Prometheus recorder (`sagaflow_durable_invocations_total`,
//! `sagaflow_durable_checkpoint_seconds`), read before and after the
//! measurement.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use sagaflow_core::Status;
use serde_json::Value;
use tokio::task::JoinSet;

use super::report::{self, CpuReport, DurableReport, GroupCommit, Report};
use super::sys::{self, Machine};
use super::{outcomes, Bench, Limit, Meter, Sample};

/// The function's name, as `examples/durable/sagaflow.toml` hosts it.
const FUNCTION: &str = "saga-durable-function";
/// The orchestrator's code, embedded so the bench runs from any directory.
const INDEX_PY: &str = include_str!("../../../../examples/durable/saga/index.py");
const SUCCESS: &str = include_str!("../../../../examples/durable/inputs/success.json");
const FAIL_CAR: &str = include_str!("../../../../examples/durable/inputs/fail-car-booking.json");
/// The interpreter when neither `--python` nor `SAGAFLOW_PYTHON` names one.
const DEFAULT_PYTHON: &str = ".fnenv/bin/python";

/// The interpreter of the function's workers: `--python`, `SAGAFLOW_PYTHON`,
/// or `.fnenv/bin/python`; checked to import what the workers need.
fn python(flag: Option<&Path>) -> anyhow::Result<PathBuf> {
    let chosen = flag
        .map(Path::to_path_buf)
        .or_else(|| {
            std::env::var_os("SAGAFLOW_PYTHON")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PYTHON));
    let how = "create one with `python3 -m venv .fnenv && .fnenv/bin/pip install \
               aws-durable-execution-sdk-python awslambdaric` (Python >= 3.11), \
               or name one with --python or SAGAFLOW_PYTHON";
    // Workers run in their code directory: a relative path must not move.
    let python = if chosen.components().count() > 1 && chosen.is_relative() {
        std::env::current_dir()?.join(&chosen)
    } else {
        chosen.clone()
    };
    let out = std::process::Command::new(&python)
        .args([
            "-c",
            "import awslambdaric, aws_durable_execution_sdk_python",
        ])
        .output();
    match out {
        Err(e) => bail!(
            "the durable workload needs a Python interpreter: {} cannot run ({e}); {how}",
            chosen.display()
        ),
        Ok(o) if !o.status.success() => bail!(
            "{} cannot import awslambdaric and aws_durable_execution_sdk_python ({}); {how}",
            chosen.display(),
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("")
                .trim()
        ),
        Ok(_) => Ok(python),
    }
}

/// TOML string literal.
fn toml_str(p: &Path) -> String {
    toml::Value::String(p.display().to_string()).to_string()
}

/// What `/metrics` says of the durable functions at one moment.
#[derive(Default, Clone)]
struct Scrape {
    invocations: f64,
    /// Cumulative `le` buckets of the checkpoint histogram, by bound.
    buckets: Vec<(f64, f64)>,
    count: f64,
    sum: f64,
}

impl Scrape {
    fn now() -> Scrape {
        Scrape::parse(&sagaflow_api::prometheus().render())
    }

    fn parse(text: &str) -> Scrape {
        let mut s = Scrape::default();
        for line in text.lines() {
            if line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            if key.starts_with("sagaflow_durable_invocations_total") {
                s.invocations += value;
            } else if let Some(labels) =
                key.strip_prefix("sagaflow_durable_checkpoint_seconds_bucket")
            {
                let le = labels
                    .split("le=\"")
                    .nth(1)
                    .and_then(|r| r.split('"').next())
                    .unwrap_or("");
                let bound = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap_or(f64::NAN)
                };
                if !bound.is_nan() {
                    s.buckets.push((bound, value));
                }
            } else if key.starts_with("sagaflow_durable_checkpoint_seconds_count") {
                s.count = value;
            } else if key.starts_with("sagaflow_durable_checkpoint_seconds_sum") {
                s.sum = value;
            }
        }
        s.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        s
    }

    /// What happened between `before` and `self`.
    fn since(&self, before: &Scrape) -> Scrape {
        let earlier = |bound: f64| {
            before
                .buckets
                .iter()
                .find(|(b, _)| *b == bound)
                .map_or(0.0, |(_, v)| *v)
        };
        Scrape {
            invocations: self.invocations - before.invocations,
            buckets: self
                .buckets
                .iter()
                .map(|(b, v)| (*b, v - earlier(*b)))
                .collect(),
            count: self.count - before.count,
            sum: self.sum - before.sum,
        }
    }

    /// The `q` quantile in seconds, interpolated linearly inside its bucket
    /// (as Prometheus' `histogram_quantile` does).
    fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.buckets.last()?.1;
        if total <= 0.0 {
            return None;
        }
        let rank = q * total;
        let (mut lower, mut below) = (0.0, 0.0);
        for &(bound, cumulative) in &self.buckets {
            if cumulative >= rank {
                if bound.is_infinite() {
                    return Some(lower);
                }
                let inside = cumulative - below;
                let share = if inside > 0.0 {
                    (rank - below) / inside
                } else {
                    1.0
                };
                return Some(lower + (bound - lower) * share);
            }
            lower = bound;
            below = cumulative;
        }
        None
    }
}

/// One synchronous Invoke: the execution's ARN and how it ended.
async fn invoke(
    client: &reqwest::Client,
    url: &str,
    payload: &str,
) -> anyhow::Result<(String, Status)> {
    let resp = client
        .post(url)
        .header("content-type", "application/json")
        .body(payload.to_string())
        .send()
        .await
        .context("invoking the durable function")?;
    let status = resp.status();
    let arn = resp
        .headers()
        .get("x-amz-durable-execution-arn")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let failed = resp.headers().contains_key("x-amz-function-error");
    let body = resp.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!("Invoke answered {status}: {body}");
    }
    Ok((
        arn,
        if failed {
            Status::Failed
        } else {
            Status::Succeeded
        },
    ))
}

/// What the function's workers run.
enum Worker {
    /// The travel saga (`examples/durable/saga/index.py`) on this interpreter.
    Python(PathBuf),
    /// A custom-runtime executable (`--function`) with seven steps.
    Executable(PathBuf),
}

/// Steps of `bench-saga`, one checkpointed operation each.
const EXECUTABLE_STEPS: u64 = 7;

impl Worker {
    fn choose(args: &super::BenchArgs) -> anyhow::Result<Worker> {
        let Some(path) = &args.function else {
            return Ok(Worker::Python(python(args.python.as_deref())?));
        };
        let path = std::path::absolute(path)?;
        if !path.is_file() {
            bail!(
                "--function {}: no such file; build it with `cd durable-rust && cargo build \
                 --release -p sagaflow-bench-function` (durable-rust/target/release/bench-saga)",
                path.display()
            );
        }
        Ok(Worker::Executable(path))
    }

    /// The `[[lambda.functions]]` lines that host it.
    fn hosting(&self, scratch: &Path) -> anyhow::Result<String> {
        Ok(match self {
            Worker::Python(_) => {
                let code = scratch.join("saga");
                std::fs::create_dir_all(&code)?;
                std::fs::write(code.join("index.py"), INDEX_PY)?;
                format!(
                    "runtime = \"python\"\ncode = {}\nhandler = \"index.lambda_handler\"",
                    toml_str(&code)
                )
            }
            Worker::Executable(path) => {
                let (Some(dir), Some(file)) = (path.parent(), path.file_name()) else {
                    bail!("--function {}: not a file path", path.display());
                };
                format!(
                    "runtime = \"provided\"\ncode = {}\nhandler = {}",
                    toml_str(dir),
                    toml_str(Path::new(file))
                )
            }
        })
    }

    fn describe(&self) -> String {
        match self {
            Worker::Python(p) => format!("python {}", p.display()),
            Worker::Executable(p) => p.display().to_string(),
        }
    }
}

pub(crate) async fn run(b: &Bench) -> anyhow::Result<Report> {
    let args = &b.args;
    let worker = Worker::choose(args)?;
    let interpreter = match &worker {
        Worker::Python(p) => format!("python = {}", toml_str(p)),
        Worker::Executable(_) => String::new(),
    };
    let workers = args.concurrency();
    let fail_rate = args.rollback_rate.unwrap_or(0.0);

    // The services first: the server's resource rules name their address.
    let mut cfg = travel_services::Config::new(b.scratch.join("travel.db"));
    cfg.cancel_failure_rate = 0.0;
    cfg.lambda_cancel_failure_rate = Some(0.0);
    let services = travel_services::start(cfg, "127.0.0.1:0".parse()?)
        .await
        .context("starting the travel services")?;

    let hosting = worker.hosting(&b.scratch)?;
    let config = b.scratch.join("sagaflow.toml");
    let database = std::path::absolute(&b.db)?;
    std::fs::write(
        &config,
        format!(
            r#"listen = "127.0.0.1:0"
database_url = {db}
# Chained invokes of every execution go to one address (the travel services).
participant_concurrency = {pc}

[lambda]
{interpreter}
log_dir = {logs}

[[lambda.functions]]
name = "{FUNCTION}"
{hosting}
timeout_seconds = 60
workers = {workers}
[lambda.functions.durable]
execution_timeout_seconds = 3600
retention_days = 1

[[resources]]
pattern = "arn:aws:lambda:*:*:function:saga-{{name}}"
target = "{base}/lambda/saga-{{name}}"
"#,
            db = toml::Value::String(format!("sqlite:{}", database.display())),
            pc = (2 * workers).max(64),
            logs = toml_str(&b.scratch.join("logs")),
            base = services.base_url(),
        ),
    )?;
    let settings = crate::server::resolve(crate::server::ServerArgs {
        config: Some(config),
        ..Default::default()
    })?;
    let server = crate::server::start(settings)
        .await
        .context("starting the Sagaflow server")?;
    let url = format!(
        "http://{}/2015-03-31/functions/{FUNCTION}/invocations",
        server.addr
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(workers)
        .timeout(Duration::from_secs(120))
        .build()?;

    let success: Value = serde_json::from_str(SUCCESS)?;
    let fail_car: Value = serde_json::from_str(FAIL_CAR)?;
    let seed = args.seed;
    let rust = matches!(worker, Worker::Executable(_));
    let job = move |i: u64| -> (String, Status) {
        if rust {
            return (
                serde_json::json!({ "tripId": format!("t-{i}") }).to_string(),
                Status::Succeeded,
            );
        }
        let r = super::mix(seed, i);
        let fails = fail_rate > 0.0 && (r >> 11) as f64 / (1u64 << 53) as f64 <= fail_rate;
        if fails {
            (fail_car.to_string(), Status::Failed)
        } else {
            (success.to_string(), Status::Succeeded)
        }
    };
    let job = Arc::new(job);

    // Warm-up: every worker started (the interpreter and the SDK imported)
    // and every connection open before the clock starts.
    b.progress.phase("warming up", None, None);
    let warm = closed_loop(
        &client,
        &url,
        Limit::Count((2 * workers as u64).max(10)),
        workers,
        {
            let job = job.clone();
            Arc::new(move |i| job(u64::MAX - i))
        },
        None,
    )
    .await?;
    if let Some(bad) = warm.iter().find(|s| s.status != s.expected) {
        bail!(
            "a warm-up execution {} ended {} instead of {} (see the function log in {})",
            bad.id,
            bad.status.as_str(),
            bad.expected.as_str(),
            b.scratch.join("logs").display()
        );
    }

    let (limit, total, until) = b.limit();
    b.progress.phase("durable", total, until);
    let before = Scrape::now();
    let workers_before = sys::children_cpu();
    let meter = Meter::start();
    let mut samples = closed_loop(
        &client,
        &url,
        limit,
        workers,
        Arc::new(move |i| job(i)),
        Some(&b.progress),
    )
    .await?;
    let (wall, cpu) = meter.stop();
    let workers_cpu = sys::children_cpu().saturating_sub(workers_before);
    let delta = Scrape::now().since(&before);
    let peak = report::peak_rss_mib();

    let _ = server.stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), server.done).await;
    services.stop().await?;

    let sagas = samples.len() as u64;
    let secs = wall.as_secs_f64().max(1e-9);
    let (by_status, problems) = outcomes(&samples);
    let mut latencies: Vec<Duration> = samples.iter_mut().map(|s| s.latency).collect();
    let us = |v: Option<f64>| v.map(|s| s * 1e6);
    let steps = if rust { sagas * EXECUTABLE_STEPS } else { 0 };
    let durable = DurableReport {
        worker: worker.describe(),
        workers_cpu_s: workers_cpu.as_secs_f64(),
        cpu_per_execution_us: (cpu.total() + workers_cpu).as_secs_f64() * 1e6 / sagas.max(1) as f64,
        workers,
        invocations: delta.invocations as u64,
        invocations_per_s: delta.invocations / secs,
        invocations_per_execution: delta.invocations / sagas.max(1) as f64,
        checkpoints: delta.count as u64,
        checkpoints_per_s: delta.count / secs,
        checkpoint_p50_us: us(delta.quantile(0.50)),
        checkpoint_p99_us: us(delta.quantile(0.99)),
        checkpoint_mean_us: (delta.count > 0.0).then(|| delta.sum / delta.count * 1e6),
        fail_car_rate: fail_rate,
    };
    Ok(Report {
        workload: args.workload,
        saga: if rust {
            "a 7-step durable function in Rust (durable-rust's bench-saga, AWS's Rust SDK) \
             with in-process participants, on a server in this process, synchronous Invokes"
                .to_string()
        } else {
            format!(
                "the travel saga as a Lambda durable function (examples/durable/saga, Python \
                 workers) on a server in this process, synchronous Invokes; its services: the \
                 travel services over loopback HTTP{}",
                if fail_rate > 0.0 {
                    format!(
                        "; a seeded {fail_rate} of the executions fail at the car and compensate"
                    )
                } else {
                    String::new()
                }
            )
        },
        machine: Machine::this(),
        settings: b.settings(None),
        sagas,
        wall_s: wall.as_secs_f64(),
        sagas_per_s: sagas as f64 / secs,
        // The Python saga's operations are its own (see `durable`); the
        // Rust function has seven steps, one checkpointed operation each.
        steps,
        steps_per_s: steps as f64 / secs,
        events: 0,
        outcomes: by_status,
        latency_ms: report::percentiles(&mut latencies, 1e3),
        overhead_per_step_us: None,
        // This process only: the Python workers' CPU is not counted.
        cpu: CpuReport::of(cpu, wall, sagas),
        peak_rss_mib: peak,
        group_commit: GroupCommit::default(),
        parked: None,
        recovery: None,
        asl_map: None,
        durable: Some(durable),
        problems,
    })
}

type Jobs = Arc<dyn Fn(u64) -> (String, Status) + Send + Sync>;

/// `concurrency` clients each invoke, wait for the answer, and invoke again.
async fn closed_loop(
    client: &reqwest::Client,
    url: &str,
    limit: Limit,
    concurrency: usize,
    jobs: Jobs,
    progress: Option<&Arc<super::progress::Progress>>,
) -> anyhow::Result<Vec<Sample>> {
    let next = Arc::new(AtomicU64::new(0));
    let mut clients = JoinSet::new();
    for _ in 0..concurrency {
        let (client, url, next, jobs, progress) = (
            client.clone(),
            url.to_string(),
            next.clone(),
            jobs.clone(),
            progress.cloned(),
        );
        clients.spawn(async move {
            let mut samples = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                match limit {
                    Limit::Count(n) if i >= n => break,
                    Limit::Until(t) if Instant::now() >= t => break,
                    _ => {}
                }
                let (payload, expected) = jobs(i);
                let started = Instant::now();
                let (id, status) = invoke(&client, &url, &payload).await?;
                let latency = started.elapsed();
                if let Some(p) = &progress {
                    p.tick();
                }
                samples.push(Sample {
                    id,
                    latency,
                    status,
                    expected,
                    handler: Duration::ZERO,
                });
            }
            Ok::<_, anyhow::Error>(samples)
        });
    }
    let mut samples = Vec::new();
    while let Some(done) = clients.join_next().await {
        samples.extend(done.context("a benchmark client failed")??);
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_the_difference_of_two_scrapes() {
        let before = Scrape::parse(
            "sagaflow_durable_checkpoint_seconds_bucket{le=\"0.0001\"} 5\n\
             sagaflow_durable_checkpoint_seconds_bucket{le=\"0.0002\"} 5\n\
             sagaflow_durable_checkpoint_seconds_bucket{le=\"+Inf\"} 5\n\
             sagaflow_durable_checkpoint_seconds_count 5\n\
             sagaflow_durable_invocations_total{outcome=\"pending\"} 3\n",
        );
        let after = Scrape::parse(
            "# TYPE x histogram\n\
             sagaflow_durable_checkpoint_seconds_bucket{le=\"0.0001\"} 5\n\
             sagaflow_durable_checkpoint_seconds_bucket{le=\"0.0002\"} 105\n\
             sagaflow_durable_checkpoint_seconds_bucket{le=\"+Inf\"} 105\n\
             sagaflow_durable_checkpoint_seconds_sum 0.015\n\
             sagaflow_durable_checkpoint_seconds_count 105\n\
             sagaflow_durable_invocations_total{outcome=\"pending\"} 10\n\
             sagaflow_durable_invocations_total{outcome=\"succeeded\"} 4\n",
        );
        let d = after.since(&before);
        assert_eq!(d.invocations, 11.0);
        assert_eq!(d.count, 100.0);
        let p50 = d.quantile(0.5).unwrap();
        assert!((p50 - 0.00015).abs() < 1e-9, "{p50}");
        assert_eq!(Scrape::default().quantile(0.5), None);
    }
}
