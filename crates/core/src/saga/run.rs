//! The saga interpreter: steps run stage by stage; when one fails for good
//! (or the saga is cancelled, or times out before its pivot), the
//! compensations of what completed run in reverse order, retried until they
//! succeed. A pivot that ended without a usable answer stops the saga for a
//! human instead (a pivot cannot be undone).
//!
//! [`Progress`] is a saga execution's part of the state; `Saga`'s
//! `Interpreter` impl folds saga events into it and decides saga inputs.
//! What every program shares (start, stop, redrive, end) is the envelope's.

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::envelope::{illegal, Decider, Envelope, Interpreter, Stop};
use crate::error_name::{CANCELLED, RUNTIME, TIMEOUT};
use crate::event::{ErrorInfo, Event, EventKind, Millis, Status, TaskKind};
use crate::exchange::{nonce, task_token, Effect, Input, Request, TaskToken};
use crate::path::render;
use crate::retry::{is_ambiguous, RetryPolicy};
use crate::saga::{Role, Saga};
use crate::Error;

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
    pub(crate) fn new() -> Self {
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
    pub(crate) fn is_running(&self, attempt: u32) -> bool {
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

/// Which way a saga moves: forward through its stages, or back through
/// the compensations of what it did. (Its end is the envelope's.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Phase {
    Forward,
    RollingBack,
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

/// A stuck compensation (see [`Progress::stuck_compensation`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Stuck {
    pub step: String,
    pub failures: u32,
    /// Its last error, while it waits to be retried.
    pub error: Option<ErrorInfo>,
}

/// A saga execution's own state: each step's progress, and what to undo.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Progress {
    pub steps: Vec<StepProgress>,
    /// Steps to undo, in the order they completed; compensated from the top.
    pub stack: Vec<usize>,
    phase: Phase,
    /// What the rollback is for (the failure, the cancel, the timeout): the
    /// error the saga ends with once it is undone.
    rollback_error: Option<ErrorInfo>,
}

/// An attempt a scheduling event starts.
struct Attempt {
    attempt: u32,
    deadline: Millis,
    nonce: Option<String>,
}

impl Progress {
    /// A saga execution before its first event.
    pub(crate) fn new(saga: &Saga) -> Self {
        Progress {
            steps: saga
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
            phase: Phase::Forward,
            rollback_error: None,
        }
    }

    pub fn task(&self, i: usize, task: TaskKind) -> &TaskProgress {
        match task {
            TaskKind::Action => &self.steps[i].action,
            TaskKind::Compensation => &self.steps[i].compensation,
        }
    }

    fn task_mut(&mut self, i: usize, task: TaskKind) -> &mut TaskProgress {
        match task {
            TaskKind::Action => &mut self.steps[i].action,
            TaskKind::Compensation => &mut self.steps[i].compensation,
        }
    }

    fn index(saga: &Saga, event: &EventKind, step: &str) -> Result<usize, Error> {
        saga.step_index(step)
            .ok_or_else(|| illegal(event, format!("definition has no step `{step}`")))
    }

    /// The step and task kind of a success/failure event, checked to be running that attempt.
    fn running(
        &self,
        saga: &Saga,
        kind: &EventKind,
        step: &str,
        attempt: u32,
    ) -> Result<(usize, TaskKind), Error> {
        let i = Self::index(saga, kind, step)?;
        let task = kind
            .task()
            .ok_or_else(|| illegal(kind, "not a task event"))?;
        let t = self.task(i, task);
        if !t.is_running(attempt) {
            return Err(illegal(kind, format!("{:?}", t.state)));
        }
        Ok((i, task))
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
    fn begin_rollback(&mut self, saga: &Saga, env: &mut Envelope, failing: Option<usize>) {
        self.phase = Phase::RollingBack;
        env.status = Status::Compensating;
        for i in 0..self.steps.len() {
            if matches!(self.steps[i].action.state, TaskState::WaitingRetry { .. }) {
                self.steps[i].action.state = TaskState::Abandoned;
            }
            if saga.steps[i].action.callback
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

    /// Starts an attempt of a task (a `*_scheduled` event), once every
    /// check passed: forward only while moving forward and after the earlier
    /// stages, a compensation only while rolling back and of a step that ran,
    /// attempts in order.
    fn schedule(
        &mut self,
        saga: &Saga,
        kind: &EventKind,
        step: &str,
        task: TaskKind,
        next: Attempt,
    ) -> Result<(), Error> {
        let i = Self::index(saga, kind, step)?;
        if task == TaskKind::Action && self.phase != Phase::Forward {
            return Err(illegal(kind, "rolling back"));
        }
        if task == TaskKind::Compensation
            && (self.phase != Phase::RollingBack || saga.steps[i].compensation.is_none())
        {
            return Err(illegal(kind, "not rolling back, or no compensation"));
        }
        if task == TaskKind::Compensation && !self.steps[i].on_stack {
            return Err(illegal(kind, "the step never ran, nothing to compensate"));
        }
        let earlier_done = || {
            saga.stages[..saga.steps[i].stage].iter().all(|st| {
                st.steps
                    .iter()
                    .all(|&j| matches!(self.steps[j].action.state, TaskState::Succeeded { .. }))
            })
        };
        if task == TaskKind::Action && !earlier_done() {
            return Err(illegal(kind, "an earlier stage has not succeeded"));
        }
        let t = self.task_mut(i, task);
        let ok = next.attempt == t.attempts + 1
            && match t.state {
                TaskState::Idle => true,
                TaskState::WaitingRetry { attempt: a, .. } => a == next.attempt,
                _ => false,
            };
        if !ok {
            return Err(illegal(
                kind,
                format!("{:?} after {} attempts", t.state, t.attempts),
            ));
        }
        t.attempts = next.attempt;
        t.nonce = next.nonce;
        t.parked = false;
        t.state = TaskState::Running {
            attempt: next.attempt,
            deadline: next.deadline,
        };
        Ok(())
    }

    /// Marks a running callback attempt as acknowledged (it waits for its
    /// token); returns its deadline.
    fn park(
        &mut self,
        saga: &Saga,
        kind: &EventKind,
        step: &str,
        task: TaskKind,
        attempt: u32,
    ) -> Result<Millis, Error> {
        let i = Self::index(saga, kind, step)?;
        let callback = match task {
            TaskKind::Action => saga.steps[i].action.callback,
            TaskKind::Compensation => saga.steps[i]
                .compensation
                .as_ref()
                .is_some_and(|c| c.callback),
        };
        let t = self.task_mut(i, task);
        match t.state {
            TaskState::Running {
                attempt: a,
                deadline,
            } if a == attempt && callback && !t.parked => {
                t.parked = true;
                Ok(deadline)
            }
            _ => Err(illegal(
                kind,
                format!("{:?} (callback: {callback})", t.state),
            )),
        }
    }

    /// The compensation that is stuck under `policy`, if any: it has failed
    /// `policy.attempts` times in a row, or kept failing for
    /// `policy.after_ms` (from its first failure to its last), and the
    /// execution is still rolling back (retrying it). A pure function of
    /// the history, so the crossing is seen once, by the decision that
    /// records the failure that crosses it, live or after a replay.
    pub fn stuck_compensation(&self, saga: &Saga, policy: &StuckPolicy) -> Option<Stuck> {
        self.steps.iter().enumerate().find_map(|(i, p)| {
            let c = &p.compensation;
            let since = c.failing_since?;
            let stuck = !matches!(c.state, TaskState::Succeeded { .. })
                && (c.failures >= policy.attempts
                    || c.last_failure_at.saturating_sub(since) >= policy.after_ms);
            stuck.then(|| Stuck {
                step: saga.steps[i].name.clone(),
                failures: c.failures,
                error: match &c.state {
                    TaskState::Failed { error, .. } => Some(error.clone()),
                    _ => None,
                },
            })
        })
    }

    /// The document input templates are rendered against.
    pub fn template_context(&self, saga: &Saga, env: &Envelope) -> Value {
        let mut steps = Map::new();
        for (i, s) in self.steps.iter().enumerate() {
            if let Some(out) = &s.output {
                steps.insert(saga.steps[i].name.clone(), json!({ "output": out }));
            }
        }
        json!({
            "input": env.input,
            "steps": steps,
            "execution": { "id": env.id, "definition": env.definition, "version": env.version },
        })
    }

    /// Whether the pivot (or any later step) has been attempted: cancelling is no longer possible.
    fn past_pivot(&self, saga: &Saga) -> bool {
        saga.steps
            .iter()
            .zip(&self.steps)
            .any(|(d, s)| d.role != Role::Compensatable && s.action.attempts > 0)
    }
}

impl Interpreter for Saga {
    type State = Progress;

    fn apply(
        &self,
        p: &mut Progress,
        env: &mut Envelope,
        event: &Event,
        fx: &mut Vec<Effect>,
    ) -> Result<(), Error> {
        let kind = &event.kind;
        match kind {
            EventKind::ExecutionStarted { .. } | EventKind::ExecutionFinished { .. } => {}
            EventKind::MapRunUpdated { .. } => {
                return Err(crate::envelope::illegal(kind, "not an ASL execution"));
            }
            EventKind::DurableOperation { .. } | EventKind::DurableInvocation { .. } => {
                return Err(crate::envelope::illegal(kind, "not a durable execution"));
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
                let next = Attempt {
                    attempt: *attempt,
                    deadline: *deadline,
                    nonce: nonce.clone(),
                };
                p.schedule(self, kind, step, task, next)?;
                fx.push(Effect::Invoke {
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
                let (i, task) = p.running(self, kind, step, *attempt)?;
                let t = p.task_mut(i, task);
                t.state = TaskState::Succeeded { attempt: *attempt };
                if task == TaskKind::Action {
                    p.steps[i].output = Some(output.clone());
                    if !p.steps[i].on_stack {
                        p.steps[i].on_stack = true;
                        p.stack.push(i);
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
                let (i, task) = p.running(self, kind, step, *attempt)?;
                let t = p.task_mut(i, task);
                t.state = TaskState::Failed {
                    attempt: *attempt,
                    error: error.clone(),
                };
                t.failures += 1;
                t.failing_since.get_or_insert(event.at);
                t.last_failure_at = event.at;
                if task == TaskKind::Action {
                    if is_ambiguous(&error.error) {
                        p.steps[i].ambiguous = true;
                    }
                    if p.phase == Phase::RollingBack {
                        p.push_ambiguous(i);
                    }
                }
            }
            EventKind::TaskParked {
                step,
                task,
                attempt,
            } => {
                let deadline = p.park(self, kind, step, *task, *attempt)?;
                // The deadline becomes a durable timer: a parked execution may
                // leave memory and is woken by the timer or its callback.
                fx.push(Effect::StartTimer {
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
                let i = Progress::index(self, kind, step)?;
                let rolling_back = p.phase == Phase::RollingBack;
                let t = p.task_mut(i, *task);
                let ok = matches!(t.state, TaskState::Failed { attempt: a, .. } if a + 1 == *attempt)
                    && !(rolling_back && *task == TaskKind::Action);
                if !ok {
                    return Err(illegal(kind, format!("{:?}", t.state)));
                }
                t.state = TaskState::WaitingRetry {
                    attempt: *attempt,
                    fire_at: *fire_at,
                };
                fx.push(Effect::StartTimer {
                    step: step.clone(),
                    task: *task,
                    attempt: *attempt,
                    fire_at: *fire_at,
                });
            }
            EventKind::RollbackStarted { step, error } => {
                let i = Progress::index(self, kind, step)?;
                if p.phase != Phase::Forward {
                    return Err(illegal(kind, "not moving forward"));
                }
                p.rollback_error = Some(error.clone());
                p.begin_rollback(self, env, Some(i));
            }
            EventKind::CancelRequested { reason } => {
                if p.phase != Phase::Forward {
                    return Err(illegal(kind, "not moving forward"));
                }
                p.rollback_error = Some(ErrorInfo::new(CANCELLED, reason.clone()));
                p.begin_rollback(self, env, None);
            }
            EventKind::ExecutionTimedOut {} => {
                if p.phase != Phase::Forward {
                    return Err(illegal(kind, "not moving forward"));
                }
                let limit = env.timeout_ms.unwrap_or_default();
                p.rollback_error = Some(ErrorInfo::new(
                    TIMEOUT,
                    format!("the execution did not finish within its timeout of {limit} ms"),
                ));
                p.begin_rollback(self, env, None);
            }
            EventKind::ExecutionRedriven {} => {
                for s in &mut p.steps {
                    for t in [&mut s.action, &mut s.compensation] {
                        if matches!(t.state, TaskState::Failed { .. }) {
                            t.state = TaskState::Idle;
                            t.budget_base = t.attempts;
                        }
                    }
                }
                if p.rollback_error.is_some() {
                    p.phase = Phase::RollingBack;
                    env.status = Status::Compensating;
                } else {
                    p.phase = Phase::Forward;
                }
            }
            EventKind::TimerFired { .. } => {
                return Err(illegal(kind, "not an event of a saga execution"))
            }
        }
        Ok(())
    }

    fn decide(&self, d: &mut Decider<'_, Saga>, input: Input) -> Result<(), Error> {
        match input {
            // The envelope decides a start; durable inputs are not ours.
            Input::Start { .. } | Input::Durable(_) => return Ok(()),
            Input::UpdateMapRun(u) => return Err(crate::asl::run::no_map_runs(&u)),
            Input::TaskSucceeded {
                step,
                task,
                attempt,
                output,
            } => {
                let Some(_) = running(self, d.state, &step, task, attempt) else {
                    return Ok(()); // stale: a late or duplicate answer
                };
                d.emit(match task {
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
                let Some(i) = running(self, d.state, &step, task, attempt) else {
                    return Ok(());
                };
                failed(d, i, step, task, attempt, error)?;
            }
            Input::HeartbeatStopped {
                step,
                task,
                attempt,
                silence_ms,
            } => {
                let Some(i) = running(self, d.state, &step, task, attempt) else {
                    return Ok(());
                };
                // A saga's callback task times out on a silent heartbeat:
                // like any timeout, its effect may have happened.
                let error = ErrorInfo::new(
                    TIMEOUT,
                    format!("`{step}`: no heartbeat for {silence_ms} ms"),
                );
                failed(d, i, step, task, attempt, error)?;
            }
            Input::TimerFired {
                step,
                task,
                attempt,
            } => {
                if !timer_fired(d, step, task, attempt)? {
                    return Ok(());
                }
            }
            Input::TaskParked {
                step,
                task,
                attempt,
            } => {
                let Some(i) = self.step_index(&step) else {
                    return Ok(());
                };
                let t = d.state.task(i, task);
                if !t.is_running(attempt) || t.parked {
                    return Ok(());
                }
                d.emit(EventKind::TaskParked {
                    step,
                    task,
                    attempt,
                })?;
            }
            Input::Cancel { reason } => {
                if d.state.phase == Phase::RollingBack {
                    return Ok(()); // already undoing: cancelling again changes nothing
                }
                if d.state.past_pivot(self) {
                    return Err(Error::NotAllowed {
                        code: "past_pivot",
                        message: format!(
                            "execution `{}` has passed its pivot and can only move forward",
                            d.env.id
                        ),
                    });
                }
                d.emit(EventKind::CancelRequested { reason })?;
            }
            Input::DeadlinePassed => {
                // Past the pivot there is no way back: forward recovery goes on.
                if d.state.phase == Phase::Forward && !d.state.past_pivot(self) {
                    d.emit(EventKind::ExecutionTimedOut {})?;
                }
            }
            Input::Redrive => d.emit(EventKind::ExecutionRedriven {})?,
        }
        advance(d)
    }

    fn proceed(&self, d: &mut Decider<'_, Saga>) -> Result<(), Error> {
        advance(d)
    }

    /// Sagas have no history quota: their histories are bounded by their
    /// steps and retry policies.
    fn history_limit(&self) -> Option<u64> {
        None
    }

    fn watches_deadline(&self, p: &Progress) -> bool {
        p.phase == Phase::Forward
    }

    fn outstanding(&self, p: &Progress, _env: &Envelope) -> Vec<Effect> {
        let mut out = Vec::new();
        for (i, s) in p.steps.iter().enumerate() {
            for (task, t) in [
                (TaskKind::Action, &s.action),
                (TaskKind::Compensation, &s.compensation),
            ] {
                let step = self.steps[i].name.clone();
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

    /// A task with a heartbeat is watched in memory and keeps the
    /// execution resident.
    fn is_parked(&self, p: &Progress) -> bool {
        let mut waiting = false;
        for (i, s) in p.steps.iter().enumerate() {
            for (task, t) in [
                (TaskKind::Action, &s.action),
                (TaskKind::Compensation, &s.compensation),
            ] {
                match t.state {
                    TaskState::Running { .. } => {
                        let spec = match task {
                            TaskKind::Action => Some(&self.steps[i].action),
                            TaskKind::Compensation => self.steps[i].compensation.as_ref(),
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

    /// An input template that references something missing is a
    /// `States.Runtime` error for that task.
    fn request(
        &self,
        p: &Progress,
        env: &Envelope,
        step: &str,
        task: TaskKind,
    ) -> Result<Request, ErrorInfo> {
        let i = self
            .step_index(step)
            .ok_or_else(|| ErrorInfo::new(RUNTIME, format!("no step `{step}`")))?;
        let (attempt, deadline) = match p.task(i, task).state {
            TaskState::Running { attempt, deadline } => (attempt, deadline),
            ref other => {
                return Err(ErrorInfo::new(
                    RUNTIME,
                    format!("task is not running: {other:?}"),
                ))
            }
        };
        let def = &self.steps[i];
        // Built only for a step with an input template: most steps pass the
        // execution's input as it is, and this copies every step's output.
        let ctx = std::cell::OnceCell::new();
        let ctx = || ctx.get_or_init(|| p.template_context(self, env));
        let render_err = |e: String| ErrorInfo::new(RUNTIME, format!("input of `{step}`: {e}"));
        let action_input = || match &def.action.input {
            Some(t) => render(t, ctx()).map_err(render_err),
            None => Ok(env.input.clone()),
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
            execution_id: env.id.clone(),
            step: step.to_string(),
            task,
            attempt,
            participant: spec.participant.clone(),
            input,
            idempotency_key: crate::keys::idempotency_key(&env.id, step, task),
            deadline,
            task_token: match (&p.task(i, task).nonce, spec.callback) {
                (Some(nonce), true) => Some(task_token(&env.id, step, task, attempt, nonce)),
                _ => None,
            },
            heartbeat_ms: spec.heartbeat_ms.filter(|_| spec.callback),
        })
    }

    fn callback_slot(
        &self,
        p: &Progress,
        token: &TaskToken,
    ) -> Option<(u32, Option<String>, bool, bool)> {
        let i = self.step_index(&token.step)?;
        let def = &self.steps[i];
        let callback = match token.task {
            TaskKind::Action => def.action.callback,
            TaskKind::Compensation => def.compensation.as_ref().is_some_and(|c| c.callback),
        };
        let t = p.task(i, token.task);
        Some((
            t.attempts,
            t.nonce.clone(),
            t.is_running(token.attempt),
            callback,
        ))
    }

    fn attempts(&self, p: &Progress, step: &str, task: TaskKind) -> u32 {
        self.step_index(step)
            .map_or(0, |i| p.task(i, task).attempts)
    }
}

/// The index of `step` if its `task` runs `attempt` (an answer for it is
/// not stale).
fn running(saga: &Saga, p: &Progress, step: &str, task: TaskKind, attempt: u32) -> Option<usize> {
    saga.step_index(step)
        .filter(|&i| p.task(i, task).is_running(attempt))
}

/// A task's timer: its retry is due, or (for a parked attempt) its deadline
/// has come. `false`: stale (the task moved on), nothing to decide.
fn timer_fired(
    d: &mut Decider<'_, Saga>,
    step: String,
    task: TaskKind,
    attempt: u32,
) -> Result<bool, Error> {
    let Some(i) = d.program.step_index(&step) else {
        return Ok(false);
    };
    match d.state.task(i, task).state {
        TaskState::WaitingRetry { attempt: a, .. } if a == attempt => schedule(d, i, task)?,
        TaskState::Running {
            attempt: a,
            deadline,
        } if a == attempt && d.ctx.now >= deadline => {
            let error = ErrorInfo::new(
                TIMEOUT,
                format!("`{step}` got no answer before its deadline"),
            );
            failed(d, i, step, task, attempt, error)?;
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// Schedules the next attempt of a task.
fn schedule(d: &mut Decider<'_, Saga>, i: usize, task: TaskKind) -> Result<(), Error> {
    let def = &d.program.steps[i];
    let spec = match task {
        TaskKind::Action => Some(&def.action),
        TaskKind::Compensation => def.compensation.as_ref(),
    };
    let timeout = spec.map(|t| t.timeout_ms).unwrap_or_default();
    let step = def.name.clone();
    let attempt = d.state.task(i, task).attempts + 1;
    let deadline = d.ctx.now + timeout;
    // Distinct per task and attempt even when one decision schedules several.
    let nonce = spec.filter(|t| t.callback).map(|_| {
        let salt =
            ((i as u64) << 33) ^ ((attempt as u64) << 1) ^ (task == TaskKind::Compensation) as u64;
        nonce(d.ctx.entropy, salt)
    });
    d.emit(match task {
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

/// Records a failed attempt and what follows: a retry, a rollback, forward
/// recovery, or the end.
fn failed(
    d: &mut Decider<'_, Saga>,
    i: usize,
    step: String,
    task: TaskKind,
    attempt: u32,
    error: ErrorInfo,
) -> Result<(), Error> {
    let def = &d.program.steps[i];
    let policy = match task {
        TaskKind::Action => def.action.retry.clone(),
        TaskKind::Compensation => def
            .compensation
            .as_ref()
            .map(|c| c.retry.clone())
            .unwrap_or_else(RetryPolicy::until_success_default),
    };
    let role = def.role;
    d.emit(match task {
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
    if task == TaskKind::Action && d.state.phase != Phase::Forward {
        return Ok(()); // a branch that was still running when the saga turned back
    }
    let t = d.state.task(i, task);
    let used = t.attempts - t.budget_base;
    if policy.retries(&error.error) && policy.has_attempts_left(used) {
        let fire_at = d.ctx.now + policy.delay_ms(used, d.ctx.random);
        return d.emit(EventKind::RetryScheduled {
            step,
            task,
            attempt: attempt + 1,
            fire_at,
        });
    }
    match (task, role) {
        (TaskKind::Compensation, _) => {
            let cause = format!(
                "compensation of `{step}` gave up after {used} attempt(s): {}",
                error.cause
            );
            fail(d, error.error, cause)
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
            fail(d, error.error, cause)
        }
        (TaskKind::Action, _) => d.emit(EventKind::RollbackStarted { step, error }),
    }
}

/// Ends the saga `failed` with the error that gave up and why: it needs a
/// human (a redrive resumes it).
fn fail(d: &mut Decider<'_, Saga>, error: String, cause: String) -> Result<(), Error> {
    d.finish(Status::Failed, Some(ErrorInfo::new(error, cause)), None)
}

/// Moves the saga on as far as the current state allows.
fn advance(d: &mut Decider<'_, Saga>) -> Result<(), Error> {
    if d.env.finished {
        return Ok(());
    }
    match d.state.phase {
        Phase::Forward => advance_forward(d),
        Phase::RollingBack => advance_back(d),
    }
}

fn advance_forward(d: &mut Decider<'_, Saga>) -> Result<(), Error> {
    let saga = d.program;
    let current = saga.stages.iter().position(|st| {
        st.steps
            .iter()
            .any(|&i| !matches!(d.state.steps[i].action.state, TaskState::Succeeded { .. }))
    });
    let Some(stage) = current else {
        let mut out = Map::new();
        for (i, s) in d.state.steps.iter().enumerate() {
            out.insert(
                saga.steps[i].name.clone(),
                s.output.clone().unwrap_or(Value::Null),
            );
        }
        return d.finish(Status::Succeeded, None, Some(Value::Object(out)));
    };
    let members = &saga.stages[stage].steps;
    let exhausted = members
        .iter()
        .find_map(|&i| match &d.state.steps[i].action.state {
            TaskState::Failed { error, .. } => Some((i, error.clone())),
            _ => None,
        });
    if let Some((i, error)) = exhausted {
        if members.iter().all(|&m| !d.state.steps[m].action.busy()) {
            let t = &d.state.steps[i].action;
            let cause = format!(
                "retriable step `{}` gave up after {} attempt(s): {}",
                saga.steps[i].name,
                t.attempts - t.budget_base,
                error.cause
            );
            return fail(d, error.error, cause);
        }
        return Ok(());
    }
    for &i in members {
        if d.state.steps[i].action.state == TaskState::Idle {
            schedule(d, i, TaskKind::Action)?;
        }
    }
    Ok(())
}

fn advance_back(d: &mut Decider<'_, Saga>) -> Result<(), Error> {
    let busy = d
        .state
        .steps
        .iter()
        .any(|s| matches!(s.action.state, TaskState::Running { .. }) || s.compensation.busy());
    if busy {
        return Ok(());
    }
    let next = d.state.stack.iter().rev().copied().find(|&i| {
        d.program.steps[i].compensation.is_some()
            && d.state.steps[i].compensation.state == TaskState::Idle
    });
    match next {
        Some(i) => schedule(d, i, TaskKind::Compensation),
        None => {
            let status = match d.env.stopping() {
                Some(Stop::Cancelled) => Status::Cancelled,
                Some(Stop::TimedOut) => Status::TimedOut,
                None => Status::Compensated,
            };
            let error = d.state.rollback_error.clone();
            d.finish(status, error, None)
        }
    }
}
