//! Map runs: what a distributed Map (`ProcessorConfig.Mode: DISTRIBUTED`)
//! is in Step Functions' API — a run with an ARN, counts of its child
//! executions (one per item or batch), settings that `UpdateMapRun` may
//! change while it runs, and its own history events (`MapRunStarted`,
//! `MapRunSucceeded`, `MapRunFailed`, `MapRunAborted`, `MapRunRedriven`).
//!
//! The items run as the threads of the Map state, as an inline Map's do, in
//! the parent execution's log: a child execution here is an item's thread,
//! named and counted like AWS's. Every [`MapRun`] is derived from recorded
//! events (an update is the recorded `map_run_updated`), so a replay
//! rebuilds them. Each child keeps its input, output or error, and the
//! trace labels its thread's entries (see `Trace::child`) and its own
//! lifecycle, so that a child is described and has a history of its own,
//! as AWS's child executions do.

use serde::Serialize;
use serde_json::Value;

use super::{Child, Run, TraceKind, ACCOUNT, REGION};
use crate::event::{ErrorInfo, Millis};

/// Where a map run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum MapRunStatus {
    Running,
    Succeeded,
    Failed,
    Aborted,
}

/// Where one child execution (an item or a batch) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ItemStatus {
    Pending,
    Running,
    Succeeded,
    Failed,
    Aborted,
}

/// One child execution of a map run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemRun {
    pub status: ItemStatus,
    /// When it first started (a redrive keeps it, as AWS's `startDate`).
    pub started_at: Option<Millis>,
    pub stopped_at: Option<Millis>,
    /// What it got: its item (after `ItemSelector`) or its batch.
    pub input: Option<Value>,
    /// Its result, while it stands succeeded.
    pub output: Option<Value>,
    /// Why it failed, while it stands failed.
    pub error: Option<ErrorInfo>,
    /// How often a redrive of its map run ran it again.
    pub redrive_count: u32,
    pub redriven_at: Option<Millis>,
    /// Events of its own history so far (its `States.Runtime` causes name
    /// the ids of its events, not its parent's).
    pub events: u64,
}

impl ItemRun {
    fn pending() -> ItemRun {
        ItemRun {
            status: ItemStatus::Pending,
            started_at: None,
            stopped_at: None,
            events: 0,
            input: None,
            output: None,
            error: None,
            redrive_count: 0,
            redriven_at: None,
        }
    }
}

/// What happens to a child execution (see [`Run::map_item`]).
pub(super) enum ItemChange {
    /// It starts (or, after a redrive, runs again) with this input.
    Started(Value),
    Succeeded(Value),
    Failed(ErrorInfo),
}

/// One run of a distributed Map state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MapRun {
    /// `arn:aws:states:…:mapRun:{machine}/{label}:{execution id}_{n}`.
    pub arn: String,
    /// The Map state's name, and its `Label` (the name when it has none).
    pub state: String,
    pub label: String,
    /// `STANDARD` or `EXPRESS`, as the processor says.
    pub execution_type: String,
    pub status: MapRunStatus,
    pub started_at: Millis,
    pub stopped_at: Option<Millis>,
    /// 0: no limit.
    pub max_concurrency: usize,
    pub tolerated_failure_count: Option<u64>,
    pub tolerated_failure_percentage: Option<f64>,
    pub items: Vec<ItemRun>,
    pub redrive_count: u32,
    pub redriven_at: Option<Millis>,
    /// How many children's results its `ResultWriter` wrote (all, once the
    /// writer's call succeeded).
    pub results_written: usize,
    /// The child execution whose thread runs the Map state (a distributed
    /// Map inside another's item): its history shows the `MapRun…` events.
    #[serde(skip)]
    pub within: Child,
}

/// What `UpdateMapRun` changes in a running map run (`None`: unchanged).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct MapRunUpdate {
    pub map_run: String,
    pub max_concurrency: Option<u32>,
    pub tolerated_failure_count: Option<u64>,
    #[serde(deserialize_with = "percentage")]
    pub tolerated_failure_percentage: Option<f64>,
}

/// Reads a percentage through a JSON value: inside an event (an internally
/// tagged enum, buffered by serde), an `f64` does not decode directly with
/// serde_json's `arbitrary_precision`, which the workspace turns on.
fn percentage<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    use serde::Deserialize;
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_f64().map(Some).ok_or_else(|| {
            serde::de::Error::custom(format!("a percentage must be a number, not {v}"))
        }),
    }
}

/// The refusal of an update sent to an execution that has no map runs.
pub(crate) fn no_map_runs(update: &MapRunUpdate) -> crate::Error {
    crate::Error::NotAllowed {
        code: "map_run_not_found",
        message: format!(
            "`{}` names an execution that runs no Amazon States Language: it has no map runs",
            update.map_run
        ),
    }
}

impl MapRun {
    /// How many children are in `status`.
    pub fn count(&self, status: ItemStatus) -> usize {
        self.items.iter().filter(|i| i.status == status).count()
    }

    /// The ARN of child execution `i`:
    /// `…:execution:{machine}/{label}:{execution id}_{n}_{i}`.
    pub fn child_arn(&self, i: usize) -> String {
        let (_, tail) = self.arn.split_once(":mapRun:").unwrap_or_default();
        format!("arn:aws:states:{REGION}:{ACCOUNT}:execution:{tail}_{i}")
    }
}

/// The map run ARN and the item index a child execution ARN names
/// (`…:execution:{machine}/{label}:{execution id}_{n}_{i}`, see
/// [`MapRun::child_arn`]): `None` if `arn` is not one.
pub fn child_owner(arn: &str) -> Option<(String, usize)> {
    let (head, tail) = arn.split_once(":execution:")?;
    let (run, i) = tail.rsplit_once('_')?;
    let i = i
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| i.parse().ok())??;
    let map_run = format!("{head}:mapRun:{run}");
    map_run_owner(&map_run)?;
    Some((map_run, i))
}

/// The execution id a map run ARN names (see [`MapRun::arn`]), and its
/// machine: `None` if `arn` is not a map run ARN.
pub fn map_run_owner(arn: &str) -> Option<(&str, &str)> {
    let (_, tail) = arn.split_once(":mapRun:")?;
    let (machine, rest) = tail.split_once('/')?;
    let (_label, run) = rest.split_once(':')?;
    let (execution, n) = run.rsplit_once('_')?;
    (!execution.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .then_some((machine, execution))
}

impl Run {
    /// The execution's map runs, oldest first.
    pub fn map_runs(&self) -> &[MapRun] {
        &self.map_runs
    }

    /// Opens the map run of a distributed Map state `name` that starts
    /// now with `n` children; returns its index.
    pub(super) fn open_map_run(
        &mut self,
        at: Millis,
        (name, label, execution_type): (&str, &str, &str),
        n: usize,
        limit: usize,
        tolerance: (Option<u64>, Option<f64>),
        within: Child,
    ) -> usize {
        let index = self.map_runs.len();
        let arn = format!(
            "arn:aws:states:{REGION}:{ACCOUNT}:mapRun:{}/{label}:{}_{index}",
            self.head.name, self.head.id
        );
        if self.traced(within) {
            self.record(at, within, TraceKind::MapRunStarted { arn: arn.clone() });
        }
        self.map_runs.push(MapRun {
            arn,
            state: name.to_string(),
            label: label.to_string(),
            execution_type: execution_type.to_string(),
            status: MapRunStatus::Running,
            started_at: at,
            stopped_at: None,
            max_concurrency: limit,
            tolerated_failure_count: tolerance.0,
            tolerated_failure_percentage: tolerance.1,
            items: vec![ItemRun::pending(); n],
            redrive_count: 0,
            redriven_at: None,
            results_written: 0,
            within,
        });
        index
    }

    /// A redrive continues map run `r`: what did not succeed is pending again.
    pub(super) fn redrive_map_run(&mut self, at: Millis, r: usize, kept: &[Option<Value>]) {
        let Some(run) = self.map_runs.get_mut(r) else {
            return;
        };
        run.status = MapRunStatus::Running;
        run.stopped_at = None;
        run.redrive_count += 1;
        run.redriven_at = Some(at);
        for (item, kept) in run.items.iter_mut().zip(kept) {
            if kept.is_none() {
                // One that ran is the same child run again (its history
                // goes on); one that never started starts afresh.
                *item = match item.started_at {
                    Some(_) => ItemRun {
                        status: ItemStatus::Pending,
                        stopped_at: None,
                        output: None,
                        error: None,
                        redrive_count: item.redrive_count + 1,
                        ..item.clone()
                    },
                    None => ItemRun::pending(),
                };
            }
        }
        let (arn, redrive_count, within) = (run.arn.clone(), run.redrive_count, run.within);
        if self.traced(within) {
            self.record(at, within, TraceKind::MapRunRedriven { arn, redrive_count });
        }
    }

    /// Child `i` of map run `r` starts, succeeds or fails at `at`.
    pub(super) fn map_item(&mut self, r: usize, i: usize, change: ItemChange, at: Millis) {
        let Some(item) = self.map_runs.get_mut(r).and_then(|m| m.items.get_mut(i)) else {
            return;
        };
        let tracing = self.trace.is_some();
        // Counted whether traced or not: the child's later events know
        // their ids (a `States.Runtime` cause names one).
        item.events += 1;
        let kind = match change {
            ItemChange::Started(input) => {
                item.status = ItemStatus::Running;
                if item.started_at.is_some() {
                    item.redriven_at = Some(at);
                    TraceKind::ExecutionRedriven {}
                } else {
                    item.started_at = Some(at);
                    let kind = tracing.then(|| TraceKind::ExecutionStarted {
                        input: input.clone(),
                    });
                    item.input = Some(input);
                    match kind {
                        Some(kind) => kind,
                        None => return,
                    }
                }
            }
            ItemChange::Succeeded(output) => {
                item.status = ItemStatus::Succeeded;
                item.stopped_at = Some(at);
                let kind = tracing.then(|| TraceKind::ExecutionSucceeded {
                    output: output.clone(),
                });
                item.output = Some(output);
                match kind {
                    Some(kind) => kind,
                    None => return,
                }
            }
            ItemChange::Failed(error) => {
                item.status = ItemStatus::Failed;
                item.stopped_at = Some(at);
                item.error = Some(error.clone());
                TraceKind::ExecutionFailed { error }
            }
        };
        self.record(at, Some((r, i)), kind);
    }

    /// An entry of child `child`'s own lifecycle, in its history only (see
    /// [`Trace::is_own`]).
    fn child_lifecycle(&mut self, at: Millis, child: (usize, usize), kind: TraceKind) {
        if self.traced(Some(child)) {
            self.record(at, Some(child), kind);
        }
    }

    /// Map run `r` ends: its running children are aborted.
    pub(super) fn close_map_run(
        &mut self,
        r: usize,
        at: Millis,
        status: MapRunStatus,
        error: Option<&ErrorInfo>,
    ) {
        let Some(run) = self.map_runs.get_mut(r) else {
            return;
        };
        if run.status != MapRunStatus::Running {
            return;
        }
        run.status = status;
        run.stopped_at = Some(at);
        let mut aborted = Vec::new();
        for (i, item) in run.items.iter_mut().enumerate() {
            if item.status == ItemStatus::Running {
                item.status = ItemStatus::Aborted;
                item.stopped_at = Some(at);
                aborted.push(i);
            }
        }
        let within = run.within;
        for i in aborted {
            let reason = "its map run ended".to_string();
            self.child_lifecycle(at, (r, i), TraceKind::ExecutionAborted { reason });
        }
        if self.traced(within) {
            let kind = match (status, error) {
                (MapRunStatus::Succeeded, _) => TraceKind::MapRunSucceeded {},
                (MapRunStatus::Failed, Some(e)) => TraceKind::MapRunFailed { error: e.clone() },
                (MapRunStatus::Failed, None) => TraceKind::MapRunFailed {
                    error: ErrorInfo::new("States.Runtime", ""),
                },
                _ => TraceKind::MapRunAborted {},
            };
            self.record(at, within, kind);
        }
    }

    /// Every running map run is aborted (the execution was cancelled or
    /// timed out).
    pub(super) fn abort_map_runs(&mut self, at: Millis) {
        for r in 0..self.map_runs.len() {
            self.close_map_run(r, at, MapRunStatus::Aborted, None);
        }
    }

    /// Why `update` cannot be applied now, if it cannot.
    pub(crate) fn refuse_map_run_update(&self, update: &MapRunUpdate) -> Option<crate::Error> {
        let Some(run) = self.map_runs.iter().find(|r| r.arn == update.map_run) else {
            return Some(crate::Error::NotAllowed {
                code: "map_run_not_found",
                message: format!("this execution has no map run `{}`", update.map_run),
            });
        };
        if run.status != MapRunStatus::Running {
            return Some(crate::Error::NotAllowed {
                code: "map_run_not_running",
                message: format!(
                    "map run `{}` is not running: it can no longer be updated",
                    run.arn
                ),
            });
        }
        if update
            .tolerated_failure_percentage
            .is_some_and(|p| !(0.0..=100.0).contains(&p))
        {
            return Some(crate::Error::NotAllowed {
                code: "invalid_map_run_update",
                message: "toleratedFailurePercentage must be between 0 and 100".to_string(),
            });
        }
        None
    }

    /// Folds a recorded update into the map run and the fan-out running it;
    /// `None` if there is no such running map run (nothing changes).
    pub(super) fn update_map_run(&mut self, update: &MapRunUpdate) -> Option<String> {
        let r = self
            .map_runs
            .iter()
            .position(|r| r.arn == update.map_run && r.status == MapRunStatus::Running)?;
        let key = self
            .slots
            .iter()
            .find(|(_, s)| s.fan.as_ref().is_some_and(|f| f.map_run == Some(r)))
            .map(|(k, _)| k.clone())?;
        let run = &mut self.map_runs[r];
        if let Some(c) = update.max_concurrency {
            run.max_concurrency = c as usize;
        }
        if let Some(c) = update.tolerated_failure_count {
            run.tolerated_failure_count = Some(c);
        }
        if let Some(p) = update.tolerated_failure_percentage {
            run.tolerated_failure_percentage = Some(p);
        }
        let (limit, tolerance) = (
            run.max_concurrency,
            (
                run.tolerated_failure_count,
                run.tolerated_failure_percentage,
            ),
        );
        let fan = self.slots.get_mut(&key)?.fan.as_mut()?;
        fan.limit = limit;
        fan.tolerance = tolerance;
        Some(key)
    }
}
