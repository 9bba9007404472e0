//! The execution state machine.
//!
//! Two pure functions drive an execution:
//! - [`Execution::decide`] turns an [`Input`] (a participant answered, a timer
//!   fired, a user cancelled …) into the events that record the decision;
//! - [`Execution::apply`] folds one event into the state and returns the
//!   [`Effect`]s it calls for (invoke a participant, arm a timer …).
//!
//! The runtime makes the events durable, then applies them and performs the
//! effects. Recovery applies the stored history and asks [`Execution::outstanding`]
//! what was in flight. Nothing here reads a clock or a random source: both
//! arrive in [`Ctx`] and end up recorded in events.

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::asl::run::{Run, TimerMeaning, Todo};
use crate::asl::Machine;
use crate::definition::{Participant, Plan, Role};
use crate::event::{ErrorInfo, Event, EventKind, Millis, Status, TaskKind};
use crate::path::render;
use crate::retry::{is_ambiguous, RUNTIME, TIMEOUT};
use crate::Error;

/// What the outside world supplies to a decision: the time and one random number.
#[derive(Debug, Clone, Copy)]
pub struct Ctx {
    pub now: Millis,
    /// Uniform in [0, 1); used for retry jitter and recorded through `fire_at`.
    pub random: f64,
    /// Random bits for callback token nonces, recorded in the scheduling event.
    pub entropy: u64,
}

/// Something that happened outside the state machine and needs a decision.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Start {
        execution_id: String,
        definition: String,
        version: u32,
        input: Value,
    },
    TaskSucceeded {
        step: String,
        task: TaskKind,
        attempt: u32,
        output: Value,
    },
    TaskFailed {
        step: String,
        task: TaskKind,
        attempt: u32,
        error: ErrorInfo,
    },
    /// A retry is due, or (for a running attempt) its deadline has come.
    TimerFired {
        step: String,
        task: TaskKind,
        attempt: u32,
    },
    /// A callback task's participant acknowledged the attempt.
    TaskParked {
        step: String,
        task: TaskKind,
        attempt: u32,
    },
    Cancel {
        reason: String,
    },
    Redrive,
    /// The execution's deadline (start + the definition's `timeout`) passed.
    DeadlinePassed,
}

/// What applying an event asks the runtime to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Call the participant of `step`'s `task`; give up at `deadline`.
    Invoke {
        step: String,
        task: TaskKind,
        attempt: u32,
        deadline: Millis,
    },
    /// Deliver [`Input::TimerFired`] at `fire_at`.
    StartTimer {
        step: String,
        task: TaskKind,
        attempt: u32,
        fire_at: Millis,
    },
    /// Deliver [`Input::DeadlinePassed`] at `at`.
    Deadline { at: Millis },
    /// The execution reached a terminal status.
    Finished { status: Status },
}

/// Everything an invoker needs for one participant call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Request {
    pub execution_id: String,
    pub step: String,
    pub task: TaskKind,
    pub attempt: u32,
    pub participant: Participant,
    pub input: Value,
    /// Stable per execution, step and task kind: not per attempt, not per process.
    pub idempotency_key: String,
    pub deadline: Millis,
    /// For a callback task: the token that completes it (see [`task_token`]).
    pub task_token: Option<String>,
    /// For a callback task: the longest silence allowed between heartbeats.
    pub heartbeat_ms: Option<u64>,
}

/// The token of a callback task attempt: the hex of
/// `{execution}\n{step}\n{task}\n{attempt}` (which routes it, URL-safe)
/// and, after a dot, the nonce recorded when the attempt was scheduled (which
/// makes it unguessable). The same token is handed out after a restart.
pub fn task_token(
    execution_id: &str,
    step: &str,
    task: TaskKind,
    attempt: u32,
    nonce: &str,
) -> String {
    let route: String = format!("{execution_id}\n{step}\n{}\n{attempt}", task.as_str())
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{route}.{nonce}")
}

/// A token made by [`task_token`], taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskToken {
    pub execution_id: String,
    pub step: String,
    pub task: TaskKind,
    pub attempt: u32,
    pub nonce: String,
}

/// Why a callback token cannot complete its task now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackRefused {
    /// The task is not waiting for this attempt's callback (any more).
    NotWaiting,
    /// The token's nonce is not the one recorded for the attempt.
    WrongNonce,
}

/// Reads a token made by [`task_token`]; `None` if it is not one.
pub fn parse_task_token(token: &str) -> Option<TaskToken> {
    let (route, nonce) = token.split_once('.')?;
    if !route.len().is_multiple_of(2) || route.len() > 2048 || nonce.is_empty() {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..route.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(route.get(i..i + 2)?, 16).ok())
        .collect();
    let text = String::from_utf8(bytes?).ok()?;
    let mut parts = text.split('\n');
    let (ex, step, task, attempt) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let task = match task {
        "action" => TaskKind::Action,
        "compensation" => TaskKind::Compensation,
        _ => return None,
    };
    Some(TaskToken {
        execution_id: ex.to_string(),
        step: step.to_string(),
        task,
        attempt: attempt.parse().ok()?,
        nonce: nonce.to_string(),
    })
}

/// Progress of one task (an action or a compensation).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TaskState {
    Idle,
    Running {
        attempt: u32,
        deadline: Millis,
    },
    WaitingRetry {
        attempt: u32,
        fire_at: Millis,
    },
    Succeeded {
        attempt: u32,
    },
    Failed {
        attempt: u32,
        error: ErrorInfo,
    },
    /// A pending retry dropped because the execution turned back.
    Abandoned,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskProgress {
    pub state: TaskState,
    /// Number of the last attempt made (0 = never tried).
    pub attempts: u32,
    /// Attempts made before the last redrive; the retry budget counts from here.
    pub budget_base: u32,
    /// The recorded nonce of the running callback attempt, if any.
    pub nonce: Option<String>,
    /// The running attempt was acknowledged and waits for its callback.
    pub parked: bool,
    /// Failures since the task last started to fail (it has not succeeded).
    pub failures: u32,
    /// When the first of those failures happened.
    pub failing_since: Option<Millis>,
    /// When the last of them happened.
    pub last_failure_at: Millis,
}

impl TaskProgress {
    fn new() -> Self {
        TaskProgress {
            state: TaskState::Idle,
            attempts: 0,
            budget_base: 0,
            nonce: None,
            parked: false,
            failures: 0,
            failing_since: None,
            last_failure_at: 0,
        }
    }
    fn is_running(&self, attempt: u32) -> bool {
        matches!(self.state, TaskState::Running { attempt: a, .. } if a == attempt)
    }
    fn busy(&self) -> bool {
        matches!(
            self.state,
            TaskState::Running { .. } | TaskState::WaitingRetry { .. }
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepProgress {
    pub action: TaskProgress,
    pub compensation: TaskProgress,
    pub output: Option<Value>,
    /// An attempt timed out: the effect may have happened, so it is compensated.
    pub ambiguous: bool,
    pub on_stack: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Phase {
    Forward,
    RollingBack,
    Finished,
}

/// When a compensation that keeps failing counts as stuck (it needs a
/// human): after this many failures in a row, or after failing for this
/// long. Set by the runtime's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StuckPolicy {
    pub attempts: u32,
    pub after_ms: u64,
}

impl Default for StuckPolicy {
    fn default() -> Self {
        StuckPolicy {
            attempts: 10,
            after_ms: 15 * 60 * 1000,
        }
    }
}

/// A stuck compensation (see [`Execution::stuck_compensation`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Stuck {
    pub step: String,
    pub failures: u32,
    /// Its last error, while it waits to be retried.
    pub error: Option<ErrorInfo>,
}

/// The in-memory state of one execution: the fold of its history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Execution {
    pub id: String,
    pub definition: String,
    pub version: u32,
    pub input: Value,
    pub status: Status,
    pub started_at: Millis,
    pub updated_at: Millis,
    pub steps: Vec<StepProgress>,
    /// Steps to undo, in the order they completed; compensated from the top.
    pub stack: Vec<usize>,
    pub error: Option<ErrorInfo>,
    pub output: Option<Value>,
    /// Number of events applied: the version used for optimistic appends.
    pub events: u64,
    phase: Phase,
    started: bool,
    cancelled: bool,
    timed_out: bool,
    rollback_error: Option<ErrorInfo>,
    /// The ASL interpreter's state, for an execution of an ASL definition.
    pub asl: Option<Box<Run>>,
}

fn illegal(event: &EventKind, state: impl Into<String>) -> Error {
    Error::IllegalTransition {
        event: format!("{} {}", event.name(), event.step().unwrap_or(""))
            .trim()
            .to_string(),
        state: state.into(),
    }
}

impl Execution {
    /// An execution before its first event.
    pub fn empty(plan: &Plan) -> Self {
        Execution {
            id: String::new(),
            definition: plan.name.clone(),
            version: 0,
            input: Value::Null,
            status: Status::Running,
            started_at: 0,
            updated_at: 0,
            steps: plan
                .steps
                .iter()
                .map(|_| StepProgress {
                    action: TaskProgress::new(),
                    compensation: TaskProgress::new(),
                    output: None,
                    ambiguous: false,
                    on_stack: false,
                })
                .collect(),
            stack: Vec::new(),
            error: None,
            output: None,
            events: 0,
            phase: Phase::Forward,
            started: false,
            cancelled: false,
            timed_out: false,
            rollback_error: None,
            asl: plan.asl.as_ref().map(|_| Box::default()),
        }
    }

    /// Rebuilds an execution from its history (recovery).
    pub fn replay<'a>(
        plan: &Plan,
        history: impl IntoIterator<Item = &'a Event>,
    ) -> Result<Self, Error> {
        let mut ex = Execution::empty(plan);
        for e in history {
            ex.apply(plan, e)?;
        }
        Ok(ex)
    }

    fn index(&self, plan: &Plan, event: &EventKind, step: &str) -> Result<usize, Error> {
        plan.step_index(step)
            .ok_or_else(|| illegal(event, format!("definition has no step `{step}`")))
    }

    /// The step and task kind of a success/failure event, checked to be running that attempt.
    fn running(
        &self,
        plan: &Plan,
        kind: &EventKind,
        step: &str,
        attempt: u32,
    ) -> Result<(usize, TaskKind), Error> {
        let i = self.index(plan, kind, step)?;
        let task = kind
            .task()
            .ok_or_else(|| illegal(kind, "not a task event"))?;
        let t = self.task(i, task);
        if !t.is_running(attempt) {
            return Err(illegal(kind, format!("{:?}", t.state)));
        }
        Ok((i, task))
    }

    fn task_mut(&mut self, i: usize, task: TaskKind) -> &mut TaskProgress {
        match task {
            TaskKind::Action => &mut self.steps[i].action,
            TaskKind::Compensation => &mut self.steps[i].compensation,
        }
    }

    pub fn task(&self, i: usize, task: TaskKind) -> &TaskProgress {
        match task {
            TaskKind::Action => &self.steps[i].action,
            TaskKind::Compensation => &self.steps[i].compensation,
        }
    }

    fn push_ambiguous(&mut self, i: usize) {
        if self.steps[i].ambiguous && !self.steps[i].on_stack {
            self.steps[i].on_stack = true;
            self.stack.push(i);
        }
    }

    /// Turns back: drops pending retries, and puts steps whose outcome is
    /// unknown on the stack (the failing step last, so it is undone first).
    ///
    /// A callback task that is still waiting is not waited for (its answer
    /// may be hours away): it is abandoned as ambiguous and compensated, and
    /// a late token is refused.
    fn begin_rollback(&mut self, plan: &Plan, failing: Option<usize>) {
        self.phase = Phase::RollingBack;
        self.status = Status::Compensating;
        for i in 0..self.steps.len() {
            if matches!(self.steps[i].action.state, TaskState::WaitingRetry { .. }) {
                self.steps[i].action.state = TaskState::Abandoned;
            }
            if plan.steps[i].action.callback
                && matches!(self.steps[i].action.state, TaskState::Running { .. })
            {
                self.steps[i].action.state = TaskState::Abandoned;
                self.steps[i].ambiguous = true;
            }
            if Some(i) != failing && !self.steps[i].action.busy() {
                self.push_ambiguous(i);
            }
        }
        if let Some(f) = failing {
            self.push_ambiguous(f);
        }
    }

    /// Folds one event into the state. An event the state does not allow is an
    /// [`Error::IllegalTransition`]; the state is then left unchanged.
    ///
    /// No copy is made to get that guarantee: every arm checks everything it
    /// needs before it changes anything (keep it so; the transition tests
    /// check the state is unchanged after each kind of illegal event).
    pub fn apply(&mut self, plan: &Plan, event: &Event) -> Result<Vec<Effect>, Error> {
        let kind = &event.kind;
        if !self.started && !matches!(kind, EventKind::ExecutionStarted { .. }) {
            return Err(illegal(kind, "not started"));
        }
        if self.phase == Phase::Finished && !matches!(kind, EventKind::ExecutionRedriven {}) {
            return Err(illegal(
                kind,
                format!("finished ({})", self.status.as_str()),
            ));
        }
        if let Some(m) = plan.asl.as_deref() {
            return self.apply_asl(m, event);
        }
        let mut effects = Vec::new();
        match kind {
            EventKind::ExecutionStarted {
                execution_id,
                definition,
                version,
                input,
                ..
            } => {
                if self.started {
                    return Err(illegal(kind, "already started"));
                }
                self.started = true;
                self.id = execution_id.clone();
                self.definition = definition.clone();
                self.version = *version;
                self.input = input.clone();
                self.started_at = event.at;
                if let Some(t) = plan.timeout_ms {
                    effects.push(Effect::Deadline { at: event.at + t });
                }
            }
            EventKind::StepScheduled {
                step,
                attempt,
                deadline,
                nonce,
            }
            | EventKind::CompensationScheduled {
                step,
                attempt,
                deadline,
                nonce,
            } => {
                let task = if matches!(kind, EventKind::StepScheduled { .. }) {
                    TaskKind::Action
                } else {
                    TaskKind::Compensation
                };
                let i = self.index(plan, kind, step)?;
                if task == TaskKind::Action && self.phase != Phase::Forward {
                    return Err(illegal(kind, "rolling back"));
                }
                if task == TaskKind::Compensation
                    && (self.phase != Phase::RollingBack || plan.steps[i].compensation.is_none())
                {
                    return Err(illegal(kind, "not rolling back, or no compensation"));
                }
                if task == TaskKind::Compensation && !self.steps[i].on_stack {
                    return Err(illegal(kind, "the step never ran, nothing to compensate"));
                }
                let earlier_done = || {
                    plan.stages[..plan.steps[i].stage].iter().all(|st| {
                        st.steps.iter().all(|&j| {
                            matches!(self.steps[j].action.state, TaskState::Succeeded { .. })
                        })
                    })
                };
                if task == TaskKind::Action && !earlier_done() {
                    return Err(illegal(kind, "an earlier stage has not succeeded"));
                }
                let t = self.task_mut(i, task);
                let ok = *attempt == t.attempts + 1
                    && match t.state {
                        TaskState::Idle => true,
                        TaskState::WaitingRetry { attempt: a, .. } => a == *attempt,
                        _ => false,
                    };
                if !ok {
                    return Err(illegal(
                        kind,
                        format!("{:?} after {} attempts", t.state, t.attempts),
                    ));
                }
                t.attempts = *attempt;
                t.nonce = nonce.clone();
                t.parked = false;
                t.state = TaskState::Running {
                    attempt: *attempt,
                    deadline: *deadline,
                };
                effects.push(Effect::Invoke {
                    step: step.clone(),
                    task,
                    attempt: *attempt,
                    deadline: *deadline,
                });
            }
            EventKind::StepSucceeded {
                step,
                attempt,
                output,
            }
            | EventKind::CompensationSucceeded {
                step,
                attempt,
                output,
            } => {
                let (i, task) = self.running(plan, kind, step, *attempt)?;
                let t = self.task_mut(i, task);
                t.state = TaskState::Succeeded { attempt: *attempt };
                if task == TaskKind::Action {
                    self.steps[i].output = Some(output.clone());
                    if !self.steps[i].on_stack {
                        self.steps[i].on_stack = true;
                        self.stack.push(i);
                    }
                }
            }
            EventKind::StepFailed {
                step,
                attempt,
                error,
            }
            | EventKind::CompensationFailed {
                step,
                attempt,
                error,
            } => {
                let (i, task) = self.running(plan, kind, step, *attempt)?;
                let t = self.task_mut(i, task);
                t.state = TaskState::Failed {
                    attempt: *attempt,
                    error: error.clone(),
                };
                t.failures += 1;
                t.failing_since.get_or_insert(event.at);
                t.last_failure_at = event.at;
                if task == TaskKind::Action {
                    if is_ambiguous(&error.error) {
                        self.steps[i].ambiguous = true;
                    }
                    if self.phase == Phase::RollingBack {
                        self.push_ambiguous(i);
                    }
                }
            }
            EventKind::TaskParked {
                step,
                task,
                attempt,
            } => {
                let i = self.index(plan, kind, step)?;
                let callback = match task {
                    TaskKind::Action => plan.steps[i].action.callback,
                    TaskKind::Compensation => plan.steps[i]
                        .compensation
                        .as_ref()
                        .is_some_and(|c| c.callback),
                };
                let t = self.task_mut(i, *task);
                let deadline = match t.state {
                    TaskState::Running {
                        attempt: a,
                        deadline,
                    } if a == *attempt && callback && !t.parked => deadline,
                    _ => {
                        return Err(illegal(
                            kind,
                            format!("{:?} (callback: {callback})", t.state),
                        ))
                    }
                };
                t.parked = true;
                // The deadline becomes a durable timer: a parked execution may
                // leave memory and is woken by the timer or its callback.
                effects.push(Effect::StartTimer {
                    step: step.clone(),
                    task: *task,
                    attempt: *attempt,
                    fire_at: deadline,
                });
            }
            EventKind::RetryScheduled {
                step,
                task,
                attempt,
                fire_at,
            } => {
                let i = self.index(plan, kind, step)?;
                let rolling_back = self.phase == Phase::RollingBack;
                let t = self.task_mut(i, *task);
                let ok = matches!(t.state, TaskState::Failed { attempt: a, .. } if a + 1 == *attempt)
                    && !(rolling_back && *task == TaskKind::Action);
                if !ok {
                    return Err(illegal(kind, format!("{:?}", t.state)));
                }
                t.state = TaskState::WaitingRetry {
                    attempt: *attempt,
                    fire_at: *fire_at,
                };
                effects.push(Effect::StartTimer {
                    step: step.clone(),
                    task: *task,
                    attempt: *attempt,
                    fire_at: *fire_at,
                });
            }
            EventKind::RollbackStarted { step, error } => {
                let i = self.index(plan, kind, step)?;
                if self.phase != Phase::Forward {
                    return Err(illegal(kind, "not moving forward"));
                }
                self.rollback_error = Some(error.clone());
                self.begin_rollback(plan, Some(i));
            }
            EventKind::CancelRequested { reason } => {
                if self.phase != Phase::Forward {
                    return Err(illegal(kind, "not moving forward"));
                }
                self.cancelled = true;
                self.rollback_error = Some(ErrorInfo::new("Sagaflow.Cancelled", reason.clone()));
                self.begin_rollback(plan, None);
            }
            EventKind::ExecutionTimedOut {} => {
                if self.phase != Phase::Forward {
                    return Err(illegal(kind, "not moving forward"));
                }
                self.timed_out = true;
                let limit = plan.timeout_ms.unwrap_or_default();
                self.rollback_error = Some(ErrorInfo::new(
                    TIMEOUT,
                    format!("the execution did not finish within its timeout of {limit} ms"),
                ));
                self.begin_rollback(plan, None);
            }
            EventKind::ExecutionRedriven {} => {
                if self.status != Status::Failed {
                    return Err(illegal(kind, format!("status {}", self.status.as_str())));
                }
                for s in &mut self.steps {
                    for t in [&mut s.action, &mut s.compensation] {
                        if matches!(t.state, TaskState::Failed { .. }) {
                            t.state = TaskState::Idle;
                            t.budget_base = t.attempts;
                        }
                    }
                }
                self.error = None;
                if self.rollback_error.is_some() {
                    self.phase = Phase::RollingBack;
                    self.status = Status::Compensating;
                } else {
                    self.phase = Phase::Forward;
                    self.status = Status::Running;
                }
            }
            EventKind::TimerFired { .. } => {
                return Err(illegal(kind, "not an event of a saga execution"))
            }
            EventKind::ExecutionFinished {
                status,
                error,
                output,
            } => {
                if !status.is_terminal() {
                    return Err(illegal(kind, "a finish needs a terminal status"));
                }
                self.phase = Phase::Finished;
                self.status = *status;
                self.error = error.clone();
                self.output = output.clone();
                effects.push(Effect::Finished { status: *status });
            }
        }
        self.events += 1;
        self.updated_at = event.at;
        Ok(effects)
    }

    /// [`Execution::apply`] for an ASL execution: the interpreter folds the
    /// event in; the fields shared with sagas (status, output …) follow it.
    fn apply_asl(&mut self, m: &Machine, event: &Event) -> Result<Vec<Effect>, Error> {
        let kind = &event.kind;
        match kind {
            EventKind::ExecutionStarted { .. } if self.started => {
                return Err(illegal(kind, "already started"))
            }
            EventKind::ExecutionRedriven {} if self.status != Status::Failed => {
                return Err(illegal(kind, format!("status {}", self.status.as_str())))
            }
            EventKind::ExecutionFinished { status, .. } if !status.is_terminal() => {
                return Err(illegal(kind, "a finish needs a terminal status"))
            }
            EventKind::CancelRequested { .. } | EventKind::ExecutionTimedOut {}
                if self.cancelled || self.timed_out =>
            {
                return Err(illegal(kind, "already stopping"))
            }
            _ => {}
        }
        let Some(run) = self.asl.as_mut() else {
            return Err(illegal(kind, "not an ASL execution"));
        };
        let mut effects = Vec::new();
        run.apply(m, event, &mut effects)?;
        match kind {
            EventKind::ExecutionStarted {
                execution_id,
                definition,
                version,
                input,
                ..
            } => {
                self.started = true;
                self.id = execution_id.clone();
                self.definition = definition.clone();
                self.version = *version;
                self.input = input.clone();
                self.started_at = event.at;
            }
            EventKind::CancelRequested { reason } => {
                self.cancelled = true;
                self.rollback_error = Some(ErrorInfo::new("Sagaflow.Cancelled", reason.clone()));
            }
            EventKind::ExecutionTimedOut {} => {
                self.timed_out = true;
            }
            EventKind::ExecutionRedriven {} => {
                self.phase = Phase::Forward;
                self.status = Status::Running;
                self.error = None;
            }
            EventKind::ExecutionFinished {
                status,
                error,
                output,
            } => {
                self.phase = Phase::Finished;
                self.status = *status;
                self.error = error.clone();
                self.output = output.clone();
                effects.push(Effect::Finished { status: *status });
            }
            _ => {}
        }
        self.events += 1;
        self.updated_at = event.at;
        Ok(effects)
    }

    /// Decides what `input` means for this execution and returns the events
    /// that record the decision (possibly none, for a stale or duplicate input).
    /// The state itself is not changed: apply the returned events once they are durable.
    pub fn decide(&self, plan: &Plan, input: Input, ctx: Ctx) -> Result<Vec<Event>, Error> {
        Ok(self.decide_and_preview(plan, input, ctx)?.events)
    }

    /// [`Execution::decide`], also returning the state and the effects that
    /// applying the events will give — computed anyway while deciding, so a
    /// runtime need not apply them a second time. Commit the preview only
    /// once the events are durable.
    pub fn decide_and_preview(
        &self,
        plan: &Plan,
        input: Input,
        ctx: Ctx,
    ) -> Result<Decision, Error> {
        let mut state = self.clone();
        let Applied { events, effects } = state.decide_in_place(plan, input, ctx)?;
        Ok(Decision {
            events,
            state,
            effects,
        })
    }

    /// Decides what `input` means and applies the events to this state at
    /// once: [`Execution::decide_and_preview`] without copying the state,
    /// whose size grows with the execution (an ASL Map holds a slot per
    /// item; a copy per decision would make N items cost O(N²)).
    ///
    /// The caller must store the returned events before acting on the
    /// effects. If it cannot, or if this returns an error after the state
    /// changed (`self.events` differs from before the call), the state is
    /// ahead of the stored history and must be rebuilt from it.
    pub fn decide_in_place(
        &mut self,
        plan: &Plan,
        input: Input,
        ctx: Ctx,
    ) -> Result<Applied, Error> {
        let mut d = Decider {
            ex: self,
            plan,
            ctx,
            out: Vec::new(),
            effects: Vec::new(),
            limited: false,
        };
        let decided = match plan.asl.as_deref() {
            Some(m) => d.asl_input(m, input),
            None => d.input(input),
        };
        if let Err(e) = decided {
            if !d.limited {
                return Err(e);
            }
        }
        Ok(Applied {
            events: d.out,
            effects: d.effects,
        })
    }

    /// Effects still in flight, for a runtime that just rebuilt this state from history.
    pub fn outstanding(&self, plan: &Plan) -> Vec<Effect> {
        if let (Some(m), Some(run)) = (plan.asl.as_deref(), self.asl.as_deref()) {
            return run.outstanding(m, self.phase == Phase::Finished);
        }
        let mut out = Vec::new();
        if self.phase == Phase::Finished {
            return out;
        }
        if let (Some(t), Phase::Forward) = (plan.timeout_ms, self.phase) {
            out.push(Effect::Deadline {
                at: self.started_at + t,
            });
        }
        for (i, s) in self.steps.iter().enumerate() {
            for (task, t) in [
                (TaskKind::Action, &s.action),
                (TaskKind::Compensation, &s.compensation),
            ] {
                let step = plan.steps[i].name.clone();
                match t.state {
                    TaskState::Running { attempt, deadline } if t.parked => {
                        out.push(Effect::StartTimer {
                            step,
                            task,
                            attempt,
                            fire_at: deadline,
                        })
                    }
                    TaskState::Running { attempt, deadline } => out.push(Effect::Invoke {
                        step,
                        task,
                        attempt,
                        deadline,
                    }),
                    TaskState::WaitingRetry { attempt, fire_at } => out.push(Effect::StartTimer {
                        step,
                        task,
                        attempt,
                        fire_at,
                    }),
                    _ => {}
                }
            }
        }
        out
    }

    /// The compensation that is stuck under `policy`, if any: it has failed
    /// `policy.attempts` times in a row, or kept failing for
    /// `policy.after_ms` (from its first failure to its last), and the
    /// execution is still rolling back (retrying it). A pure function of
    /// the history, so the crossing is seen once, by the decision that
    /// records the failure that crosses it, live or after a replay.
    pub fn stuck_compensation(&self, plan: &Plan, policy: &StuckPolicy) -> Option<Stuck> {
        if self.status.is_terminal() || plan.asl.is_some() {
            return None;
        }
        self.steps.iter().enumerate().find_map(|(i, p)| {
            let c = &p.compensation;
            let since = c.failing_since?;
            let stuck = !matches!(c.state, TaskState::Succeeded { .. })
                && (c.failures >= policy.attempts
                    || c.last_failure_at.saturating_sub(since) >= policy.after_ms);
            stuck.then(|| Stuck {
                step: plan.steps[i].name.clone(),
                failures: c.failures,
                error: match &c.state {
                    TaskState::Failed { error, .. } => Some(error.clone()),
                    _ => None,
                },
            })
        })
    }

    /// Whether the execution only waits for callbacks (and their durable
    /// deadline timers): it can leave memory and be reloaded from history when
    /// a callback or a timer arrives. A task with a heartbeat, or an execution
    /// with a `timeout` still ahead, is watched in memory and stays resident.
    pub fn is_parked(&self, plan: &Plan) -> bool {
        if self.phase == Phase::Finished || !self.started {
            return false;
        }
        if let (Some(m), Some(run)) = (plan.asl.as_deref(), self.asl.as_deref()) {
            return run.is_parked(m);
        }
        // The execution's own deadline is watched in memory.
        if plan.timeout_ms.is_some() && self.phase == Phase::Forward {
            return false;
        }
        let mut waiting = false;
        for (i, s) in self.steps.iter().enumerate() {
            for (task, t) in [
                (TaskKind::Action, &s.action),
                (TaskKind::Compensation, &s.compensation),
            ] {
                match t.state {
                    TaskState::Running { .. } => {
                        let spec = match task {
                            TaskKind::Action => Some(&plan.steps[i].action),
                            TaskKind::Compensation => plan.steps[i].compensation.as_ref(),
                        };
                        if !t.parked || spec.is_none_or(|s| s.heartbeat_ms.is_some()) {
                            return false;
                        }
                        waiting = true;
                    }
                    TaskState::WaitingRetry { .. } => return false,
                    _ => {}
                }
            }
        }
        waiting
    }

    /// The document input templates are rendered against.
    pub fn template_context(&self, plan: &Plan) -> Value {
        let mut steps = Map::new();
        for (i, s) in self.steps.iter().enumerate() {
            if let Some(out) = &s.output {
                steps.insert(plan.steps[i].name.clone(), json!({ "output": out }));
            }
        }
        json!({
            "input": self.input,
            "steps": steps,
            "execution": { "id": self.id, "definition": self.definition, "version": self.version },
        })
    }

    /// Builds the participant call for a running task. An input template that
    /// references something missing is a `States.Runtime` error for that task.
    pub fn request(&self, plan: &Plan, step: &str, task: TaskKind) -> Result<Request, ErrorInfo> {
        if let (Some(m), Some(run)) = (plan.asl.as_deref(), self.asl.as_deref()) {
            return run.request(m, step);
        }
        let i = plan
            .step_index(step)
            .ok_or_else(|| ErrorInfo::new(RUNTIME, format!("no step `{step}`")))?;
        let (attempt, deadline) = match self.task(i, task).state {
            TaskState::Running { attempt, deadline } => (attempt, deadline),
            ref other => {
                return Err(ErrorInfo::new(
                    RUNTIME,
                    format!("task is not running: {other:?}"),
                ))
            }
        };
        let def = &plan.steps[i];
        // Built only for a step with an input template: most steps pass the
        // execution's input as it is, and this copies every step's output.
        let ctx = std::cell::OnceCell::new();
        let ctx = || ctx.get_or_init(|| self.template_context(plan));
        let render_err = |e: String| ErrorInfo::new(RUNTIME, format!("input of `{step}`: {e}"));
        let action_input = || match &def.action.input {
            Some(t) => render(t, ctx()).map_err(render_err),
            None => Ok(self.input.clone()),
        };
        let (spec, input) = match task {
            TaskKind::Action => (&def.action, action_input()?),
            TaskKind::Compensation => {
                let c = def.compensation.as_ref().ok_or_else(|| {
                    ErrorInfo::new(RUNTIME, format!("`{step}` has no compensation"))
                })?;
                let input = match &c.input {
                    Some(t) => render(t, ctx()).map_err(render_err)?,
                    None => action_input()?,
                };
                (c, input)
            }
        };
        Ok(Request {
            execution_id: self.id.clone(),
            step: step.to_string(),
            task,
            attempt,
            participant: spec.participant.clone(),
            input,
            idempotency_key: crate::keys::idempotency_key(&self.id, step, task),
            deadline,
            task_token: match (&self.task(i, task).nonce, spec.callback) {
                (Some(nonce), true) => Some(task_token(&self.id, step, task, attempt, nonce)),
                _ => None,
            },
            heartbeat_ms: spec.heartbeat_ms.filter(|_| spec.callback),
        })
    }

    /// Checks that a callback token may complete its task now: the task
    /// takes callbacks, runs that attempt, and the nonce is the recorded one.
    pub fn check_callback(&self, plan: &Plan, token: &TaskToken) -> Result<(), CallbackRefused> {
        if self.status.is_terminal() {
            return Err(CallbackRefused::NotWaiting);
        }
        let (attempts, nonce, running, callback) = match self.asl.as_deref() {
            Some(run) => {
                let Some((attempt, nonce, running)) =
                    crate::asl::run::callback_slot(run, &token.step)
                else {
                    return Err(CallbackRefused::NotWaiting);
                };
                (attempt, nonce.map(str::to_string), running, nonce.is_some())
            }
            None => {
                let i = plan
                    .step_index(&token.step)
                    .ok_or(CallbackRefused::NotWaiting)?;
                let def = &plan.steps[i];
                let callback = match token.task {
                    TaskKind::Action => def.action.callback,
                    TaskKind::Compensation => def.compensation.as_ref().is_some_and(|c| c.callback),
                };
                let t = self.task(i, token.task);
                (
                    t.attempts,
                    t.nonce.clone(),
                    t.is_running(token.attempt),
                    callback,
                )
            }
        };
        if !callback || attempts != token.attempt {
            return Err(CallbackRefused::NotWaiting);
        }
        if nonce.as_deref() != Some(token.nonce.as_str()) {
            return Err(CallbackRefused::WrongNonce);
        }
        if running {
            Ok(())
        } else {
            Err(CallbackRefused::NotWaiting)
        }
    }

    /// The number of the last attempt of a task (0 = never tried).
    pub fn attempts(&self, plan: &Plan, step: &str, task: TaskKind) -> u32 {
        if let Some(run) = self.asl.as_deref() {
            return crate::asl::run::callback_slot(run, step).map_or(0, |(a, _, _)| a);
        }
        plan.step_index(step)
            .map_or(0, |i| self.task(i, task).attempts)
    }

    /// Whether the pivot (or any later step) has been attempted: cancelling is no longer possible.
    fn past_pivot(&self, plan: &Plan) -> bool {
        plan.steps
            .iter()
            .zip(&self.steps)
            .any(|(d, s)| d.role != Role::Compensatable && s.action.attempts > 0)
    }
}

/// Builds a decision: emits events and applies each to a scratch copy of the
/// state, so later parts of the same decision see the earlier ones.
/// The outcome of [`Execution::decide_and_preview`].
#[derive(Debug, Clone)]
pub struct Decision {
    /// The events to make durable.
    pub events: Vec<Event>,
    /// The state once they are applied.
    pub state: Execution,
    /// The effects applying them calls for.
    pub effects: Vec<Effect>,
}

/// The outcome of [`Execution::decide_in_place`]: the events now applied
/// to the state, and the effects they call for.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub events: Vec<Event>,
    pub effects: Vec<Effect>,
}

struct Decider<'a> {
    ex: &'a mut Execution,
    plan: &'a Plan,
    ctx: Ctx,
    out: Vec<Event>,
    effects: Vec<Effect>,
    /// The decision ended the execution at the history limit.
    limited: bool,
}

impl Decider<'_> {
    fn emit(&mut self, kind: EventKind) -> Result<(), Error> {
        if let Some(limit) = self.history_limit() {
            let finishing = matches!(kind, EventKind::ExecutionFinished { .. });
            if self.ex.events.saturating_add(1) >= limit
                && !finishing
                && self.ex.phase != Phase::Finished
            {
                return self.fail_at_history_limit(limit);
            }
        }
        let e = Event {
            at: self.ctx.now,
            kind,
        };
        let effects = self.ex.apply(self.plan, &e)?;
        self.effects.extend(effects);
        self.out.push(e);
        Ok(())
    }

    /// The most events the history may hold (ASL executions: AWS's quota).
    fn history_limit(&self) -> Option<u64> {
        self.plan.asl.as_deref().map(|m| m.max_history_events)
    }

    /// The next event would leave no room for the end: the execution fails
    /// instead, as AWS fails one whose history reaches its quota. The
    /// decision stops here (the error unwinds it; `decide_in_place` keeps
    /// what was decided so far), and nothing it started is performed: the
    /// finish aborted it.
    fn fail_at_history_limit(&mut self, limit: u64) -> Result<(), Error> {
        let error = ErrorInfo::new(
            crate::retry::RUNTIME,
            format!(
                "the execution's history reached the limit of {limit} events; it stops here and cannot be redriven (continue in a new execution)"
            ),
        );
        self.finish(Status::Failed, Some(error), None)?;
        self.effects
            .retain(|e| matches!(e, Effect::Finished { .. }));
        self.limited = true;
        Err(Error::NotAllowed {
            code: "history_limit",
            message: format!("the history reached {limit} events"),
        })
    }

    fn input(&mut self, input: Input) -> Result<(), Error> {
        match input {
            Input::Start {
                execution_id,
                definition,
                version,
                input,
            } => self.start(execution_id, definition, version, input)?,
            Input::TaskSucceeded {
                step,
                task,
                attempt,
                output,
            } => {
                let Some(i) = self.plan.step_index(&step) else {
                    return Ok(());
                };
                if self.ex.phase == Phase::Finished || !self.ex.task(i, task).is_running(attempt) {
                    return Ok(()); // stale: a late or duplicate answer
                }
                self.emit(match task {
                    TaskKind::Action => EventKind::StepSucceeded {
                        step,
                        attempt,
                        output,
                    },
                    TaskKind::Compensation => EventKind::CompensationSucceeded {
                        step,
                        attempt,
                        output,
                    },
                })?;
            }
            Input::TaskFailed {
                step,
                task,
                attempt,
                error,
            } => {
                let Some(i) = self.plan.step_index(&step) else {
                    return Ok(());
                };
                if self.ex.phase == Phase::Finished || !self.ex.task(i, task).is_running(attempt) {
                    return Ok(());
                }
                self.failed(i, step, task, attempt, error)?;
            }
            Input::TimerFired {
                step,
                task,
                attempt,
            } => {
                let Some(i) = self.plan.step_index(&step) else {
                    return Ok(());
                };
                if self.ex.phase == Phase::Finished {
                    return Ok(());
                }
                match self.ex.task(i, task).state {
                    TaskState::WaitingRetry { attempt: a, .. } if a == attempt => {
                        self.schedule(i, task)?
                    }
                    // The deadline of a running (parked) attempt has come.
                    TaskState::Running {
                        attempt: a,
                        deadline,
                    } if a == attempt && self.ctx.now >= deadline => {
                        let error = ErrorInfo::new(
                            TIMEOUT,
                            format!("`{step}` got no answer before its deadline"),
                        );
                        self.failed(i, step, task, attempt, error)?;
                    }
                    _ => return Ok(()),
                }
            }
            Input::TaskParked {
                step,
                task,
                attempt,
            } => {
                let Some(i) = self.plan.step_index(&step) else {
                    return Ok(());
                };
                let t = self.ex.task(i, task);
                if self.ex.phase == Phase::Finished || !t.is_running(attempt) || t.parked {
                    return Ok(());
                }
                self.emit(EventKind::TaskParked {
                    step,
                    task,
                    attempt,
                })?;
            }
            Input::Cancel { reason } => {
                match self.ex.phase {
                    Phase::Finished => return Err(self.already_finished()),
                    Phase::RollingBack => return Ok(()), // already undoing: cancelling again changes nothing
                    Phase::Forward => {}
                }
                if self.ex.past_pivot(self.plan) {
                    return Err(Error::NotAllowed {
                        code: "past_pivot",
                        message: format!(
                            "execution `{}` has passed its pivot and can only move forward",
                            self.ex.id
                        ),
                    });
                }
                self.emit(EventKind::CancelRequested { reason })?;
            }
            Input::DeadlinePassed => {
                // Past the pivot there is no way back: forward recovery goes on.
                if self.ex.phase == Phase::Forward && !self.ex.past_pivot(self.plan) {
                    self.emit(EventKind::ExecutionTimedOut {})?;
                }
            }
            Input::Redrive => {
                if self.ex.status != Status::Failed {
                    return Err(Error::NotAllowed {
                        code: "not_redrivable",
                        message: format!(
                            "only a failed execution can be redriven; `{}` is {}",
                            self.ex.id,
                            self.ex.status.as_str()
                        ),
                    });
                }
                self.emit(EventKind::ExecutionRedriven {})?;
            }
        }
        self.advance()
    }

    fn start(
        &mut self,
        execution_id: String,
        definition: String,
        version: u32,
        input: Value,
    ) -> Result<(), Error> {
        if self.ex.started {
            return Err(Error::NotAllowed {
                code: "already_started",
                message: "execution already started".into(),
            });
        }
        self.emit(EventKind::ExecutionStarted {
            execution_id,
            definition,
            version,
            input,
            keys: crate::keys::KeyScheme::CURRENT,
        })
    }

    fn already_finished(&self) -> Error {
        Error::NotAllowed {
            code: "execution_finished",
            message: format!(
                "execution `{}` already finished ({})",
                self.ex.id,
                self.ex.status.as_str()
            ),
        }
    }

    /// The decider of an ASL execution: records the input, then whatever
    /// the interpreter asks to be recorded (attempts to schedule, retry due
    /// times with their jitter, the end).
    fn asl_input(&mut self, m: &Machine, input: Input) -> Result<(), Error> {
        let finished = self.ex.phase == Phase::Finished;
        match input {
            Input::Start {
                execution_id,
                definition,
                version,
                input,
            } => self.start(execution_id, definition, version, input)?,
            Input::TaskSucceeded {
                step,
                attempt,
                output,
                ..
            } => {
                if finished
                    || !self
                        .ex
                        .asl
                        .as_deref()
                        .is_some_and(|r| r.is_running(&step, attempt))
                {
                    return Ok(()); // stale: a late or duplicate answer
                }
                self.emit(EventKind::StepSucceeded {
                    step,
                    attempt,
                    output,
                })?;
            }
            Input::TaskFailed {
                step,
                attempt,
                error,
                ..
            } => {
                if finished
                    || !self
                        .ex
                        .asl
                        .as_deref()
                        .is_some_and(|r| r.is_running(&step, attempt))
                {
                    return Ok(());
                }
                self.emit(EventKind::StepFailed {
                    step,
                    attempt,
                    error,
                })?;
            }
            Input::TaskParked { step, attempt, .. } => {
                let ok = self.ex.asl.as_deref().is_some_and(|r| {
                    r.is_running(&step, attempt) && !r.is_parked_task(&step, attempt)
                });
                if finished || !ok {
                    return Ok(());
                }
                self.emit(EventKind::TaskParked {
                    step,
                    task: TaskKind::Action,
                    attempt,
                })?;
            }
            Input::TimerFired { step, attempt, .. } => {
                if finished {
                    return Ok(());
                }
                let meaning = self.ex.asl.as_deref().map_or(TimerMeaning::Stale, |r| {
                    r.timer(m, &step, attempt, self.ctx.now)
                });
                match meaning {
                    TimerMeaning::Fire => self.emit(EventKind::TimerFired { step, attempt })?,
                    // The due retry is scheduled by the drain below.
                    TimerMeaning::Reschedule => self.asl_schedule(m, &step, attempt)?,
                    TimerMeaning::Deadline => {
                        let error = ErrorInfo::new(
                            TIMEOUT,
                            format!("`{step}` got no answer before its deadline"),
                        );
                        self.emit(EventKind::StepFailed {
                            step,
                            attempt,
                            error,
                        })?;
                    }
                    TimerMeaning::Stale => return Ok(()),
                }
            }
            Input::Cancel { reason } => {
                if finished {
                    return Err(self.already_finished());
                }
                if self.ex.cancelled || self.ex.timed_out {
                    return Ok(());
                }
                self.emit(EventKind::CancelRequested {
                    reason: reason.clone(),
                })?;
                self.finish(
                    Status::Cancelled,
                    Some(ErrorInfo::new("Sagaflow.Cancelled", reason)),
                    None,
                )?;
            }
            Input::DeadlinePassed => {
                // A deadline armed before the last redrive is stale: the
                // redrive reset the timeout and armed a later one.
                let due = self.ex.asl.as_deref().and_then(|r| r.deadline(m));
                if finished
                    || self.ex.cancelled
                    || self.ex.timed_out
                    || due.is_some_and(|d| self.ctx.now < d)
                {
                    return Ok(());
                }
                let limit = m.timeout_seconds.unwrap_or_default();
                self.emit(EventKind::ExecutionTimedOut {})?;
                self.finish(
                    Status::TimedOut,
                    Some(ErrorInfo::new(
                        TIMEOUT,
                        format!(
                            "the execution did not finish within its TimeoutSeconds of {limit}"
                        ),
                    )),
                    None,
                )?;
            }
            Input::Redrive => {
                // As AWS: no redrive of a history at (or next to) its quota.
                if self.ex.events.saturating_add(2) >= m.max_history_events {
                    return Err(Error::NotAllowed {
                        code: "not_redrivable",
                        message: format!(
                            "`{}` has {} history events, the limit is {}: it cannot be redriven",
                            self.ex.id, self.ex.events, m.max_history_events
                        ),
                    });
                }
                if self.ex.status != Status::Failed
                    || !self.ex.asl.as_deref().is_some_and(Run::can_redrive)
                {
                    return Err(Error::NotAllowed {
                        code: "not_redrivable",
                        message: format!(
                            "only an execution that failed in a state other than Fail can be redriven; `{}` is {}",
                            self.ex.id,
                            self.ex.status.as_str()
                        ),
                    });
                }
                self.emit(EventKind::ExecutionRedriven {})?;
            }
        }
        self.asl_drain(m)
    }

    fn asl_schedule(&mut self, m: &Machine, step: &str, attempt: u32) -> Result<(), Error> {
        let Some((timeout_ms, callback)) = self
            .ex
            .asl
            .as_deref()
            .and_then(|r| r.schedule_spec(m, step))
        else {
            return Ok(());
        };
        self.asl_record(Todo::Schedule {
            step: step.to_string(),
            attempt,
            timeout_ms,
            callback,
        })
    }

    fn asl_drain(&mut self, m: &Machine) -> Result<(), Error> {
        // Each todo is consumed by the event that records it; the bound only
        // guards against a bug turning into an endless loop.
        for _ in 0..1_000_000 {
            let Some(todo) = self.ex.asl.as_deref().and_then(|r| r.next_todo(m)) else {
                return Ok(());
            };
            self.asl_record(todo)?;
        }
        Err(Error::IllegalTransition {
            event: "decision".into(),
            state: "the ASL interpreter keeps asking for the same event".into(),
        })
    }

    fn asl_record(&mut self, todo: Todo) -> Result<(), Error> {
        match todo {
            Todo::Schedule {
                step,
                attempt,
                timeout_ms,
                callback,
            } => {
                let nonce = callback.then(|| {
                    let salt = step.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
                    }) ^ u64::from(attempt);
                    format!("{:016x}", splitmix64(self.ctx.entropy ^ salt))
                });
                self.emit(EventKind::StepScheduled {
                    step,
                    attempt,
                    deadline: self.ctx.now.saturating_add(timeout_ms),
                    nonce,
                })
            }
            Todo::Retry {
                step,
                attempt,
                delay_ms,
                jitter,
            } => {
                let delay = if jitter {
                    (delay_ms as f64 * self.ctx.random) as u64
                } else {
                    delay_ms
                };
                self.emit(EventKind::RetryScheduled {
                    step,
                    task: TaskKind::Action,
                    attempt,
                    fire_at: self.ctx.now.saturating_add(delay),
                })
            }
            Todo::Finish {
                status,
                output,
                error,
            } => self.finish(status, error, output),
        }
    }

    fn schedule(&mut self, i: usize, task: TaskKind) -> Result<(), Error> {
        let def = &self.plan.steps[i];
        let spec = match task {
            TaskKind::Action => Some(&def.action),
            TaskKind::Compensation => def.compensation.as_ref(),
        };
        let timeout = spec.map(|t| t.timeout_ms).unwrap_or_default();
        let step = def.name.clone();
        let attempt = self.ex.task(i, task).attempts + 1;
        let deadline = self.ctx.now + timeout;
        // Distinct per task and attempt even when one decision schedules several.
        let nonce = spec.filter(|t| t.callback).map(|_| {
            let salt = ((i as u64) << 33)
                ^ ((attempt as u64) << 1)
                ^ (task == TaskKind::Compensation) as u64;
            format!("{:016x}", splitmix64(self.ctx.entropy ^ salt))
        });
        self.emit(match task {
            TaskKind::Action => EventKind::StepScheduled {
                step,
                attempt,
                deadline,
                nonce,
            },
            TaskKind::Compensation => EventKind::CompensationScheduled {
                step,
                attempt,
                deadline,
                nonce,
            },
        })
    }

    fn failed(
        &mut self,
        i: usize,
        step: String,
        task: TaskKind,
        attempt: u32,
        error: ErrorInfo,
    ) -> Result<(), Error> {
        let def = &self.plan.steps[i];
        let policy = match task {
            TaskKind::Action => def.action.retry.clone(),
            TaskKind::Compensation => def
                .compensation
                .as_ref()
                .map(|c| c.retry.clone())
                .unwrap_or_else(crate::RetryPolicy::until_success_default),
        };
        self.emit(match task {
            TaskKind::Action => EventKind::StepFailed {
                step: step.clone(),
                attempt,
                error: error.clone(),
            },
            TaskKind::Compensation => EventKind::CompensationFailed {
                step: step.clone(),
                attempt,
                error: error.clone(),
            },
        })?;
        if task == TaskKind::Action && self.ex.phase != Phase::Forward {
            return Ok(()); // a branch that was still running when the saga turned back
        }
        let t = self.ex.task(i, task);
        let used = t.attempts - t.budget_base;
        if policy.retries(&error.error) && policy.has_attempts_left(used) {
            let fire_at = self.ctx.now + policy.delay_ms(used, self.ctx.random);
            return self.emit(EventKind::RetryScheduled {
                step,
                task,
                attempt: attempt + 1,
                fire_at,
            });
        }
        match (task, def.role) {
            (TaskKind::Compensation, _) => {
                let cause = format!(
                    "compensation of `{step}` gave up after {used} attempt(s): {}",
                    error.cause
                );
                self.finish(
                    Status::Failed,
                    Some(ErrorInfo::new(error.error, cause)),
                    None,
                )
            }
            // Forward recovery exhausted: needs attention once the stage is quiet (see advance).
            (TaskKind::Action, Role::Retriable) => Ok(()),
            // A pivot that timed out (or whose answer was lost or could not be
            // kept) may have taken effect, and a pivot cannot be undone: rolling
            // back could leave e.g. a charge without a booking. Stop and ask a
            // human; a redrive retries the pivot with the same key.
            (TaskKind::Action, Role::Pivot) if is_ambiguous(&error.error) => {
                let cause = format!(
                    "pivot `{step}` ended without a usable answer and may have taken effect; redrive to retry it: {}",
                    error.cause
                );
                self.finish(
                    Status::Failed,
                    Some(ErrorInfo::new(error.error, cause)),
                    None,
                )
            }
            (TaskKind::Action, _) => self.emit(EventKind::RollbackStarted { step, error }),
        }
    }

    fn finish(
        &mut self,
        status: Status,
        error: Option<ErrorInfo>,
        output: Option<Value>,
    ) -> Result<(), Error> {
        self.emit(EventKind::ExecutionFinished {
            status,
            error,
            output,
        })
    }

    /// Moves the execution on as far as the current state allows.
    fn advance(&mut self) -> Result<(), Error> {
        match self.ex.phase {
            Phase::Finished => Ok(()),
            Phase::Forward => {
                let current = self.plan.stages.iter().position(|st| {
                    st.steps.iter().any(|&i| {
                        !matches!(self.ex.steps[i].action.state, TaskState::Succeeded { .. })
                    })
                });
                let Some(stage) = current else {
                    let mut out = Map::new();
                    for (i, s) in self.ex.steps.iter().enumerate() {
                        out.insert(
                            self.plan.steps[i].name.clone(),
                            s.output.clone().unwrap_or(Value::Null),
                        );
                    }
                    return self.finish(Status::Succeeded, None, Some(Value::Object(out)));
                };
                let members = self.plan.stages[stage].steps.clone();
                let exhausted =
                    members
                        .iter()
                        .find_map(|&i| match &self.ex.steps[i].action.state {
                            TaskState::Failed { error, .. } => Some((i, error.clone())),
                            _ => None,
                        });
                if let Some((i, error)) = exhausted {
                    if members.iter().all(|&m| !self.ex.steps[m].action.busy()) {
                        let t = &self.ex.steps[i].action;
                        let cause = format!(
                            "retriable step `{}` gave up after {} attempt(s): {}",
                            self.plan.steps[i].name,
                            t.attempts - t.budget_base,
                            error.cause
                        );
                        return self.finish(
                            Status::Failed,
                            Some(ErrorInfo::new(error.error, cause)),
                            None,
                        );
                    }
                    return Ok(());
                }
                for i in members {
                    if self.ex.steps[i].action.state == TaskState::Idle {
                        self.schedule(i, TaskKind::Action)?;
                    }
                }
                Ok(())
            }
            Phase::RollingBack => {
                let busy = self.ex.steps.iter().any(|s| {
                    matches!(s.action.state, TaskState::Running { .. }) || s.compensation.busy()
                });
                if busy {
                    return Ok(());
                }
                let next = self.ex.stack.iter().rev().copied().find(|&i| {
                    self.plan.steps[i].compensation.is_some()
                        && self.ex.steps[i].compensation.state == TaskState::Idle
                });
                match next {
                    Some(i) => self.schedule(i, TaskKind::Compensation),
                    None => {
                        let status = if self.ex.cancelled {
                            Status::Cancelled
                        } else if self.ex.timed_out {
                            Status::TimedOut
                        } else {
                            Status::Compensated
                        };
                        let error = self.ex.rollback_error.clone();
                        self.finish(status, error, None)
                    }
                }
            }
        }
    }
}

/// A bijective mixer: turns the runtime's entropy into well-spread nonce bits.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
