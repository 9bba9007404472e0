//! The failure explorer's dry run: what a definition does when a step
//! fails, computed by the same `decide`/`apply` that runs live, with the
//! participants' answers injected instead of called.
//!
//! [`dry_run`] starts an execution of a saga definition or an ASL machine
//! on a simulated clock and answers every task itself: a success (output
//! `null`) unless a [`Faults`] names it. An injected action fault repeats
//! on every attempt (that is the question: *if this step fails, what
//! happens?*); `States.Timeout` answers at the attempt's deadline, any other
//! error at once. Timers fire when they are due, in order; retry jitter is
//! taken at its longest, so the clock's end is the longest the path can
//! take. A task retried without end (a compensation that keeps failing, a
//! step after the pivot retried forward) stops the run after
//! [`MAX_ATTEMPTS`] attempts: the [`End`] says so.
//!
//! [`Path`] summarizes the events: the steps that succeeded, the retries,
//! the compensations in the order they ran and where it ends. Nothing here
//! calls anyone; durable functions (whose code runs elsewhere) are refused.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;
use serde_json::Value;

use crate::error_name::{TASK_FAILED, TIMEOUT};
use crate::event::{ErrorInfo, Event, EventKind, Millis, Status, TaskKind};
use crate::exchange::{Ctx, Effect, Input};
use crate::execution::Execution;
use crate::keys::{escape_state_name, KeyScheme};
use crate::plan::{Plan, Program};
use crate::Error;

/// Attempts of one task after which a dry run stops: the task is retried
/// without end (or longer than anyone should wait for).
pub const MAX_ATTEMPTS: u32 = 25;
/// Events after which a dry run stops (a machine that loops).
pub const MAX_EVENTS: usize = 20_000;

/// The cause written into injected failures.
const INJECTED: &str = "injected by the failure explorer (no participant was called)";

/// What goes wrong in a dry run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Faults {
    /// A step (or ASL state) whose action fails on every attempt, and the
    /// error it fails with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<ActionFault>,
    /// A step whose compensation fails on every attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compensation: Option<String>,
}

/// An action that fails on every attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionFault {
    pub step: String,
    /// `States.Timeout` (no answer before the deadline),
    /// `Sagaflow.ResponseLost`, `States.TaskFailed` (a server error), or a
    /// business error's name.
    pub error: String,
}

impl ActionFault {
    /// Reads `STEP` or `STEP:ERROR` (`--fail`); without an error the step
    /// fails with `States.TaskFailed`, a server error that is retried until
    /// its attempts run out.
    pub fn parse(spec: &str) -> Result<ActionFault, String> {
        let (step, error) = match spec.rsplit_once(':') {
            Some((step, error)) if !error.is_empty() && !error.contains(' ') => (step, error),
            _ => (spec, TASK_FAILED),
        };
        if step.is_empty() {
            return Err(format!("`{spec}`: expected STEP or STEP:ERROR"));
        }
        Ok(ActionFault {
            step: step.to_string(),
            error: error.to_string(),
        })
    }
}

/// Where a dry run stopped.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum End {
    /// The execution finished.
    Finished {
        status: Status,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<ErrorInfo>,
    },
    /// A task was still being retried after [`MAX_ATTEMPTS`] attempts.
    RetriedWithoutEnd { step: String, task: TaskKind },
    /// Nothing was left to happen, yet it had not finished (a callback
    /// task waiting for its token).
    Waiting,
    /// [`MAX_EVENTS`] events and still going.
    TooLong,
}

/// A dry run: the events the execution would record, its end, and the
/// simulated time it took.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DryRun {
    pub faults: Faults,
    pub events: Vec<Event>,
    pub end: End,
    /// From the start to the end (or to where it stopped), retry delays
    /// at their longest.
    pub elapsed_ms: Millis,
}

/// A task's answer, due at a time (a timeout answers at the deadline).
struct Due {
    at: Millis,
    input: Input,
}

/// Runs `plan` on `input` with `faults` injected.
///
/// # Errors
///
/// [`Error::NotAllowed`] (`explain_unsupported`) for a durable function;
/// any error the decisions raise (none for a valid plan).
pub fn dry_run(plan: &Plan, input: Value, faults: &Faults) -> Result<DryRun, Error> {
    if let Program::Durable(_) = plan.program {
        return Err(Error::NotAllowed {
            code: "explain_unsupported",
            message:
                "a durable function's path is decided by its code, which a dry run does not run"
                    .into(),
        });
    }
    let mut ex = Execution::empty(plan);
    let mut sim = Sim {
        now: 0,
        seq: 0,
        events: Vec::new(),
        calls: VecDeque::new(),
        timers: BTreeMap::new(),
        attempts: BTreeMap::new(),
        end: None,
    };
    let start = Input::Start {
        execution_id: "dry-run".into(),
        definition: plan.name.clone(),
        version: 1,
        input,
    };
    sim.decide(&mut ex, plan, start)?;
    while sim.end.is_none() {
        if sim.events.len() > MAX_EVENTS {
            sim.end = Some(End::TooLong);
            break;
        }
        let next = if let Some(call) = sim.calls.pop_front() {
            match sim.answer(&call, faults) {
                Some(input) => input,
                None => continue,
            }
        } else if let Some((_, due)) = sim.timers.pop_first() {
            sim.now = sim.now.max(due.at);
            due.input
        } else {
            sim.end = Some(End::Waiting);
            break;
        };
        sim.decide(&mut ex, plan, next)?;
    }
    Ok(DryRun {
        faults: faults.clone(),
        end: sim.end.unwrap_or(End::Waiting),
        elapsed_ms: sim.now,
        events: sim.events,
    })
}

/// A task call to answer: `(step, task, attempt, deadline)`.
type Call = (String, TaskKind, u32, Millis);

/// The simulated world around one execution.
struct Sim {
    now: Millis,
    seq: u64,
    events: Vec<Event>,
    calls: VecDeque<Call>,
    timers: BTreeMap<(Millis, u64), Due>,
    attempts: BTreeMap<(String, &'static str), u32>,
    end: Option<End>,
}

impl Sim {
    fn decide(&mut self, ex: &mut Execution, plan: &Plan, input: Input) -> Result<(), Error> {
        // Jitter only ever shortens a delay: 0 takes every delay whole.
        let ctx = Ctx {
            now: self.now,
            random: 0.0,
            entropy: 0x5eed,
        };
        let applied = ex.decide_in_place(plan, input, ctx)?;
        self.events.extend(applied.events);
        for effect in applied.effects {
            match effect {
                Effect::Invoke {
                    step,
                    task,
                    attempt,
                    deadline,
                } => self.calls.push_back((step, task, attempt, deadline)),
                Effect::StartTimer {
                    step,
                    task,
                    attempt,
                    fire_at,
                } => self.at(
                    fire_at,
                    Input::TimerFired {
                        step,
                        task,
                        attempt,
                    },
                ),
                Effect::Deadline { at } => self.at(at, Input::DeadlinePassed),
                Effect::Finished { status } => {
                    let error = ex.error.clone();
                    self.end = Some(End::Finished { status, error });
                }
                Effect::Durable(_) => {}
            }
        }
        Ok(())
    }

    fn at(&mut self, at: Millis, input: Input) {
        self.seq += 1;
        let seq = self.seq;
        self.timers.insert((at, seq), Due { at, input });
    }

    /// The answer to a call: now, or (a timeout) at its deadline; `None`
    /// once the task has been tried [`MAX_ATTEMPTS`] times (the run ends).
    fn answer(&mut self, call: &Call, faults: &Faults) -> Option<Input> {
        let (step, task, attempt, deadline) = call.clone();
        let tried = self
            .attempts
            .entry((step.clone(), task.as_str()))
            .or_insert(0);
        *tried += 1;
        if *tried > MAX_ATTEMPTS {
            self.end = Some(End::RetriedWithoutEnd { step, task });
            return None;
        }
        let failure = match task {
            TaskKind::Action => faults
                .action
                .as_ref()
                .filter(|f| names_state(&step, &f.step))
                .map(|f| f.error.clone()),
            TaskKind::Compensation => faults
                .compensation
                .as_ref()
                .filter(|s| names_state(&step, s))
                .map(|_| TASK_FAILED.to_string()),
        };
        let Some(error) = failure else {
            return Some(Input::TaskSucceeded {
                step,
                task,
                attempt,
                output: Value::Null,
            });
        };
        let failed = Input::TaskFailed {
            step,
            task,
            attempt,
            error: ErrorInfo::new(error.clone(), INJECTED),
        };
        if error == TIMEOUT {
            // No answer: the attempt ends at its deadline.
            self.at(deadline, failed);
            return None;
        }
        Some(failed)
    }
}

/// Whether the task key `key` (a saga step's name, or an ASL slot key such
/// as `Map[3]/Charge#2`) is the step or state `name`.
pub fn names_state(key: &str, name: &str) -> bool {
    let last = key.rsplit('/').next().unwrap_or(key);
    let state = match last.rsplit_once('#') {
        Some((state, n)) if n.chars().all(|c| c.is_ascii_digit()) => state,
        _ => last,
    };
    key == name || state == name || state == escape_state_name(name, KeyScheme::CURRENT)
}

/// Where a saga turned back and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rollback {
    pub step: String,
    pub error: ErrorInfo,
}

/// What a dry run's events say, step by step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Path {
    /// Actions that succeeded, in the order they did.
    pub succeeded: Vec<String>,
    /// Attempts of each action that was tried more than once.
    pub retried: BTreeMap<String, u32>,
    /// Where the execution turned back, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback: Option<Rollback>,
    /// Compensations that succeeded, in the order they ran.
    pub compensated: Vec<String>,
    /// Compensations that failed at least once (each with its attempts).
    pub compensation_retries: BTreeMap<String, u32>,
    /// Actions that succeeded after the first failure, in order: an ASL
    /// machine's `Catch` path (its cancellations), or forward recovery.
    pub after_failure: Vec<String>,
}

impl Path {
    /// Reads a dry run's (or a real execution's) events.
    pub fn of(events: &[Event]) -> Path {
        let mut path = Path {
            succeeded: Vec::new(),
            retried: BTreeMap::new(),
            rollback: None,
            compensated: Vec::new(),
            compensation_retries: BTreeMap::new(),
            after_failure: Vec::new(),
        };
        let mut failed = false;
        for e in events {
            match &e.kind {
                EventKind::StepScheduled { step, attempt, .. } if *attempt > 1 => {
                    path.retried.insert(step.clone(), *attempt);
                }
                EventKind::StepSucceeded { step, .. } => {
                    if failed {
                        path.after_failure.push(step.clone());
                    }
                    path.succeeded.push(step.clone());
                }
                EventKind::StepFailed { .. } => failed = true,
                EventKind::RollbackStarted { step, error } => {
                    path.rollback = Some(Rollback {
                        step: step.clone(),
                        error: error.clone(),
                    });
                }
                EventKind::CompensationSucceeded { step, .. } => {
                    path.compensated.push(step.clone())
                }
                EventKind::CompensationFailed { step, attempt, .. } => {
                    path.compensation_retries.insert(step.clone(), *attempt);
                }
                _ => {}
            }
        }
        path
    }
}

/// A resource map that binds every Task resource (up to a dozen `:`
/// segments) to a placeholder handler: a dry run calls no participant, so
/// a machine can be explained without the server's resource map.
pub fn any_resource() -> crate::asl::ResourceMap {
    crate::asl::ResourceMap {
        rules: (0..=12)
            .map(|colons| crate::asl::ResourceRule {
                pattern: vec!["*"; colons + 1].join(":"),
                target: "handler:dry-run".into(),
            })
            .collect(),
    }
}

/// How an ASL Task state handles an error: the first retrier and the first
/// catcher whose `ErrorEquals` matches it (as Step Functions picks them).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Handling {
    /// The matching retrier (`ErrorEquals`, `MaxAttempts`, …) as written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<Value>,
    /// The matching catcher as written; its `Next` is where the machine goes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catch: Option<Value>,
}

/// The [`Handling`] of `error` by the state named `state` anywhere in the
/// machine `doc` (branches and item processors included); `None` if there
/// is no such state.
pub fn asl_handling(doc: &Value, state: &str, error: &str) -> Option<Handling> {
    let found = find_state(doc, state)?;
    let first = |key: &str| {
        found
            .get(key)
            .and_then(Value::as_array)
            .and_then(|list| list.iter().find(|h| handles(h, error)).cloned())
    };
    Some(Handling {
        retry: first("Retry"),
        catch: first("Catch"),
    })
}

/// Whether a retrier or catcher's `ErrorEquals` names `error`:
/// `States.ALL` names every error, `States.TaskFailed` every one but
/// `States.Timeout`.
fn handles(handler: &Value, error: &str) -> bool {
    handler
        .get("ErrorEquals")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|name| {
            name == error
                || name == "States.ALL"
                || (name == "States.TaskFailed" && error != crate::error_name::TIMEOUT)
        })
}

fn find_state<'v>(machine: &'v Value, name: &str) -> Option<&'v Value> {
    let states = machine.get("States")?.as_object()?;
    if let Some(found) = states.get(name) {
        return Some(found);
    }
    states.values().find_map(|s| {
        let nested = s
            .get("Branches")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .chain(s.get("ItemProcessor"))
            .chain(s.get("Iterator"));
        nested.into_iter().find_map(|m| find_state(m, name))
    })
}

/// A dry run explained: its summary, the failing state's handling (for a
/// machine), and the events.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    pub faults: Faults,
    pub end: End,
    pub elapsed_ms: Millis,
    #[serde(flatten)]
    pub path: Path,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handling: Option<Handling>,
    pub events: Vec<Event>,
}

/// Why faults cannot be explained: a step name that no execution runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownStep {
    /// `--fail NAME` / `--fail-compensation NAME`, or the API field.
    pub names: Vec<String>,
    /// The steps that do run, in order.
    pub steps: Vec<String>,
}

/// The action steps (ASL: task state keys) a run schedules, in order,
/// each once.
pub fn steps(events: &[Event]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for e in events {
        if let EventKind::StepScheduled { step, .. } = &e.kind {
            if !out.contains(step) {
                out.push(step.clone());
            }
        }
    }
    out
}

/// Dry-runs `plan` with `faults` and explains it; `machine` is the ASL
/// document, for the failing state's Retry and Catch. Faults naming a step
/// that no execution (with every step succeeding) runs are refused.
///
/// # Errors
///
/// `Ok(Err(UnknownStep))` for a name no step has; `Err` as [`dry_run`].
pub fn explain(
    plan: &Plan,
    machine: Option<&Value>,
    input: Value,
    faults: &Faults,
) -> Result<Result<Explanation, UnknownStep>, Error> {
    let clean = dry_run(plan, input.clone(), &Faults::default())?;
    let known = steps(&clean.events);
    let runs = |name: &str| known.iter().any(|s| names_state(s, name));
    let mut names = Vec::new();
    if let Some(a) = faults.action.as_ref().filter(|a| !runs(&a.step)) {
        names.push(a.step.clone());
    }
    if let Some(c) = faults.compensation.as_ref().filter(|c| !runs(c)) {
        names.push(c.clone());
    }
    if !names.is_empty() {
        return Ok(Err(UnknownStep {
            names,
            steps: known,
        }));
    }
    let run = if *faults == Faults::default() {
        clean
    } else {
        dry_run(plan, input, faults)?
    };
    Ok(Ok(explained(run, machine)))
}

/// A dry run with its path and, for a machine, the failing state's handling.
fn explained(run: DryRun, machine: Option<&Value>) -> Explanation {
    let handling = run
        .faults
        .action
        .as_ref()
        .zip(machine)
        .and_then(|(f, m)| asl_handling(m, &f.step, &f.error));
    Explanation {
        path: Path::of(&run.events),
        faults: run.faults,
        end: run.end,
        elapsed_ms: run.elapsed_ms,
        handling,
        events: run.events,
    }
}

/// Every step's path when it fails with `States.TaskFailed` on every
/// attempt, in the order the steps run.
///
/// # Errors
///
/// As [`dry_run`].
pub fn explain_every_step(
    plan: &Plan,
    machine: Option<&Value>,
    input: &Value,
) -> Result<Vec<(String, Explanation)>, Error> {
    let clean = dry_run(plan, input.clone(), &Faults::default())?;
    let mut out = Vec::new();
    // The steps come from the clean run: each is known to run.
    for step in steps(&clean.events) {
        let faults = Faults {
            action: Some(ActionFault {
                step: step.clone(),
                error: TASK_FAILED.to_string(),
            }),
            compensation: None,
        };
        let run = dry_run(plan, input.clone(), &faults)?;
        out.push((step, explained(run, machine)));
    }
    Ok(out)
}
