//! The benchmark's report: printed as aligned lines, or as one JSON document
//! with `--json`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::sys::{mib, Cpu, Machine};
use super::Workload;

#[derive(Debug, Serialize)]
pub struct Report {
    pub workload: Workload,
    /// What the workload ran, in words.
    pub saga: String,
    pub machine: Machine,
    pub settings: Settings,
    /// Sagas measured (finished, or for `recovery`: recovered).
    pub sagas: u64,
    pub wall_s: f64,
    pub sagas_per_s: f64,
    /// `step_scheduled` + `compensation_scheduled` events of those sagas
    /// (for `recovery`: those written after the restart).
    pub steps: u64,
    pub steps_per_s: f64,
    /// History events of those sagas.
    pub events: u64,
    /// Final statuses.
    pub outcomes: BTreeMap<String, u64>,
    /// Per saga: start to terminal (`parked`: callback to terminal;
    /// `recovery`: restart to terminal).
    pub latency_ms: Option<Percentiles>,
    /// Per saga: (wall time − time inside the participant handlers) / steps.
    pub overhead_per_step_us: Option<Overhead>,
    pub cpu: CpuReport,
    /// The process's largest resident memory (`VmHWM`).
    pub peak_rss_mib: f64,
    pub group_commit: GroupCommit,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parked: Option<Parked>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery: Option<Recovery>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asl_map: Option<AslMap>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub durable: Option<DurableReport>,
    /// Anything that did not end as the workload expects (the exit code is 1 then).
    pub problems: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Settings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sagas: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    pub concurrency: usize,
    pub database: String,
    pub durability: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

#[derive(Debug, Serialize)]
pub struct Overhead {
    pub p50: f64,
    pub p99: f64,
}

#[derive(Debug, Serialize)]
pub struct CpuReport {
    pub user_s: f64,
    pub system_s: f64,
    /// CPU time / wall time: how many cores were busy on average.
    pub cores_busy: f64,
    pub per_saga_us: f64,
    /// Of the CPU time, the SQLite store's own thread's (its writer, which
    /// runs every commit and the WAL checkpoints).
    pub store_threads_s: f64,
    /// Bytes the process wrote (`wchar`: mostly the database's WAL), per saga.
    pub written_per_saga_kib: f64,
}

impl CpuReport {
    pub fn of(cpu: Cpu, wall: Duration, sagas: u64) -> CpuReport {
        let total = cpu.total().as_secs_f64();
        CpuReport {
            user_s: cpu.user.as_secs_f64(),
            system_s: cpu.system.as_secs_f64(),
            cores_busy: total / wall.as_secs_f64().max(1e-9),
            per_saga_us: total * 1e6 / sagas.max(1) as f64,
            store_threads_s: cpu.store_threads.as_secs_f64(),
            written_per_saga_kib: cpu.written as f64 / 1024.0 / sagas.max(1) as f64,
        }
    }
}

#[derive(Debug, Serialize, Default, Clone, Copy)]
pub struct GroupCommit {
    pub commits: u64,
    pub writes: u64,
    pub writes_per_commit: f64,
}

impl GroupCommit {
    pub fn of((commits, writes): (u64, u64)) -> GroupCommit {
        GroupCommit {
            commits,
            writes,
            writes_per_commit: writes as f64 / commits.max(1) as f64,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Parked {
    pub parked: u64,
    /// From the first start until every callback task was parked.
    pub park_s: f64,
    pub parked_per_s: f64,
    pub rss_before_mib: f64,
    pub rss_parked_mib: f64,
    /// (RSS with every execution parked − RSS before) / parked executions.
    pub rss_per_parked_bytes: f64,
    /// What the benchmark itself holds meanwhile: every task token.
    pub bench_tokens_mib: f64,
    /// The growth without the benchmark's tokens, per parked execution:
    /// what the engine keeps (plus memory the allocator retains after the
    /// burst of starts).
    pub engine_per_parked_bytes: f64,
    /// From the first callback until every execution finished.
    pub complete_s: f64,
    pub completed_per_s: f64,
}

#[derive(Debug, Serialize)]
pub struct Recovery {
    pub started: u64,
    /// The first engine's per-call delay, so executions are mid-flight at the crash.
    pub step_delay_ms: u64,
    /// Participant calls in flight when the first runtime was shut down.
    pub in_flight_at_crash: usize,
    /// Unfinished executions the restarted engine resumed.
    pub resumed: usize,
    /// From the crash until the database could be opened again (its lock released).
    pub reopen_ms: f64,
    /// `Engine::start`: loading and replaying every unfinished execution.
    pub engine_start_ms: f64,
    /// From the restart until every execution was terminal.
    pub recovered_s: f64,
    pub recovered_per_s: f64,
    /// The first (crashed) engine's store.
    pub group_commit_before_crash: GroupCommit,
}

#[derive(Debug, Serialize)]
pub struct AslMap {
    /// Items (one Task each) of every execution's Map state.
    pub items: usize,
    /// Its MaxConcurrency (0: every item at once).
    pub map_concurrency: usize,
    /// CPU time of the whole process / items run: flat if the cost is
    /// linear in the number of items.
    pub cpu_per_item_us: f64,
    pub wall_per_item_us: f64,
}

#[derive(Debug, Serialize)]
pub struct DurableReport {
    /// What the function's workers run: `python PATH` or the executable.
    pub worker: String,
    /// CPU time of the worker processes during the measurement.
    pub workers_cpu_s: f64,
    /// This process's and the workers' CPU time per execution.
    pub cpu_per_execution_us: f64,
    /// The function's `workers` (its worker processes at most): the concurrency.
    pub workers: usize,
    /// Invocations of the function during the measurement
    /// (`sagaflow_durable_invocations_total`: one per start or resumption).
    pub invocations: u64,
    pub invocations_per_s: f64,
    pub invocations_per_execution: f64,
    /// Checkpoint calls of the workers (`sagaflow_durable_checkpoint_seconds`).
    pub checkpoints: u64,
    pub checkpoints_per_s: f64,
    /// Server-side time of one checkpoint (the engine's append, durable
    /// before it answers), interpolated inside the histogram's buckets.
    pub checkpoint_p50_us: Option<f64>,
    pub checkpoint_p99_us: Option<f64>,
    /// The histogram's exact sum / count.
    pub checkpoint_mean_us: Option<f64>,
    /// The share of executions that run `fail-car-booking.json`.
    pub fail_car_rate: f64,
}

/// Nearest-rank percentiles of `samples` (sorted here), in the unit `scale` gives.
pub fn percentiles(samples: &mut [Duration], scale: f64) -> Option<Percentiles> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let at = |p: f64| pick(samples, p).as_secs_f64() * scale;
    Some(Percentiles {
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        max: at(1.0),
    })
}

/// Nearest-rank percentile of a sorted, non-empty slice.
pub fn pick<T: Copy>(sorted: &[T], p: f64) -> T {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.2} s", v / 1000.0)
    } else if v >= 10.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.2} ms")
    }
}

fn us(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.2} ms", v / 1000.0)
    } else {
        format!("{v:.0} µs")
    }
}

impl Report {
    pub fn print(&self) {
        let line = |k: &str, v: String| println!("{k:<22}{v}");
        line("workload", format!("{} — {}", self.workload, self.saga));
        let mut run = match (self.settings.sagas, self.settings.duration_s) {
            (_, Some(d)) => format!("{d} s"),
            (Some(n), None) => format!("{n} sagas"),
            _ => String::new(),
        };
        run.push_str(&format!(", concurrency {}", self.settings.concurrency));
        if let Some(r) = self.settings.rollback_rate {
            run.push_str(&format!(
                ", rollback rate {r} (seed {})",
                self.settings.seed.unwrap_or(0)
            ));
        }
        line("run", run);
        line(
            "database",
            format!("{} ({})", self.settings.database, self.settings.durability),
        );
        line(
            "machine",
            format!("{} × {}", self.machine.cpus, self.machine.cpu_model),
        );
        if let Some(p) = &self.parked {
            line(
                "parked",
                format!(
                    "{} executions in {:.2} s ({:.0}/s)",
                    p.parked, p.park_s, p.parked_per_s
                ),
            );
            line(
                "RSS while parked",
                format!(
                    "{:.1} MiB → {:.1} MiB: {:.1} KiB per parked execution",
                    p.rss_before_mib,
                    p.rss_parked_mib,
                    p.rss_per_parked_bytes / 1024.0
                ),
            );
            line(
                "  of which",
                format!(
                    "{:.1} MiB the benchmark's own task tokens; the rest {:.0} bytes per parked execution",
                    p.bench_tokens_mib, p.engine_per_parked_bytes
                ),
            );
            line(
                "completed",
                format!(
                    "{} executions in {:.2} s ({:.0}/s) after their callbacks",
                    self.sagas, p.complete_s, p.completed_per_s
                ),
            );
        }
        if let Some(r) = &self.recovery {
            line(
                "crashed",
                format!(
                    "{} executions started ({} ms per call), {} calls in flight at the crash",
                    r.started, r.step_delay_ms, r.in_flight_at_crash
                ),
            );
            line(
                "reopened",
                format!("after {:.1} ms (the lock file was released)", r.reopen_ms),
            );
            line(
                "engine start",
                format!(
                    "{} unfinished executions resumed in {:.1} ms",
                    r.resumed, r.engine_start_ms
                ),
            );
            line(
                "recovered",
                format!(
                    "every execution terminal {:.2} s after the restart ({:.0}/s)",
                    r.recovered_s, r.recovered_per_s
                ),
            );
        }
        if let Some(a) = &self.asl_map {
            line(
                "per item",
                format!(
                    "cpu {}  wall {}  ({} items per execution)",
                    us(a.cpu_per_item_us),
                    us(a.wall_per_item_us),
                    a.items
                ),
            );
        }
        line("wall time", format!("{:.2} s", self.wall_s));
        if let Some(d) = &self.durable {
            line("executions/s", format!("{:.1}", self.sagas_per_s));
            line(
                "invocations/s",
                format!(
                    "{:.1} ({} invocations, {:.1} per execution; {} workers, {})",
                    d.invocations_per_s,
                    d.invocations,
                    d.invocations_per_execution,
                    d.workers,
                    d.worker
                ),
            );
            line(
                "cpu with workers",
                format!(
                    "{} per execution (workers {:.2} s){}",
                    us(d.cpu_per_execution_us),
                    d.workers_cpu_s,
                    if self.steps > 0 {
                        format!(
                            ", {} per step",
                            us(d.cpu_per_execution_us * self.sagas as f64 / self.steps as f64)
                        )
                    } else {
                        String::new()
                    }
                ),
            );
            let opt = |v: Option<f64>| v.map(us).unwrap_or_else(|| "—".into());
            line(
                "checkpoints",
                format!(
                    "{:.0}/s ({}); server-side p50 {}  p99 {}  mean {}",
                    d.checkpoints_per_s,
                    d.checkpoints,
                    opt(d.checkpoint_p50_us),
                    opt(d.checkpoint_p99_us),
                    opt(d.checkpoint_mean_us)
                ),
            );
        } else {
            line("sagas/s", format!("{:.0}", self.sagas_per_s));
        }
        if self.durable.is_none() || self.steps > 0 {
            line(
                "steps/s",
                format!(
                    "{:.0} ({} steps scheduled, {} events)",
                    self.steps_per_s, self.steps, self.events
                ),
            );
        }
        line(
            "outcomes",
            self.outcomes
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", "),
        );
        if let Some(l) = &self.latency_ms {
            line(
                "latency",
                format!(
                    "p50 {}  p90 {}  p99 {}  max {}",
                    ms(l.p50),
                    ms(l.p90),
                    ms(l.p99),
                    ms(l.max)
                ),
            );
        }
        if let Some(o) = &self.overhead_per_step_us {
            line(
                "overhead per step",
                format!(
                    "p50 {}  p99 {}  (saga wall time − handler time, per step)",
                    us(o.p50),
                    us(o.p99)
                ),
            );
        }
        line(
            "cpu",
            format!(
                "user {:.2} s  system {:.2} s  ({:.2} cores busy, {} per saga; store threads {:.2} s)",
                self.cpu.user_s,
                self.cpu.system_s,
                self.cpu.cores_busy,
                us(self.cpu.per_saga_us),
                self.cpu.store_threads_s
            ),
        );
        line(
            "written",
            format!(
                "{:.1} KiB per saga (write syscalls: mostly the database's WAL)",
                self.cpu.written_per_saga_kib
            ),
        );
        line("peak RSS", format!("{:.1} MiB", self.peak_rss_mib));
        let gc = |g: &GroupCommit| {
            format!(
                "{} commits (fsyncs) for {} writes ({:.1} writes per commit)",
                g.commits, g.writes, g.writes_per_commit
            )
        };
        if self.durable.is_some() {
            line(
                "note",
                "cpu and RSS are this process's (server and travel services); `cpu with workers` adds the workers'".into(),
            );
        } else if let Some(r) = &self.recovery {
            line("group commit (crash)", gc(&r.group_commit_before_crash));
            line("group commit (after)", gc(&self.group_commit));
        } else {
            line("group commit", gc(&self.group_commit));
        }
        for p in &self.problems {
            line("PROBLEM", p.clone());
        }
    }
}

pub fn peak_rss_mib() -> f64 {
    mib(super::sys::peak_rss())
}
