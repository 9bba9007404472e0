//! The envelope of an execution: what every kind of program shares (who it
//! is, its input, status, deadline, whether it was told to stop, its end),
//! and the one way events are decided and folded in whatever the program.
//!
//! An interpreter (a saga, an ASL machine, and the next kind) plugs in
//! through `Interpreter`: it folds the events of its own kind into its own
//! state and decides the inputs the envelope does not settle itself. The
//! envelope decides what is common once — a start, a cancel or a redrive that
//! the status does not allow, stale inputs after the end, the history quota —
//! and records the common facts of every event (started, stopping, redriven,
//! finished). `apply` is the one fold, live and during recovery; a
//! `Decider` emits each event through it, so a decision sees its own
//! earlier events.

use serde::Serialize;
use serde_json::Value;

use crate::event::{ErrorInfo, Event, EventKind, Millis, Status, TaskKind};
use crate::exchange::{Applied, CallbackRefused, Ctx, Effect, Input, Request, TaskToken};
use crate::Error;

/// Why an execution was told to stop before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    Cancelled,
    TimedOut,
}

/// The fields of an execution that do not depend on its program.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Envelope {
    pub id: String,
    pub definition: String,
    pub version: u32,
    pub input: Value,
    pub status: Status,
    pub started_at: Millis,
    pub updated_at: Millis,
    pub error: Option<ErrorInfo>,
    pub output: Option<Value>,
    /// Number of events applied: the version used for optimistic appends.
    pub events: u64,
    /// The definition's time limit for the whole execution.
    pub timeout_ms: Option<u64>,
    /// Where that limit counts from: the start, or the last redrive (which
    /// resets it, as in AWS).
    pub(crate) timeout_from: Millis,
    pub(crate) started: bool,
    pub(crate) finished: bool,
    pub(crate) stop: Option<Stop>,
}

impl Envelope {
    /// The envelope of an execution before its first event.
    pub(crate) fn new(definition: &str, timeout_ms: Option<u64>) -> Self {
        Envelope {
            id: String::new(),
            definition: definition.to_string(),
            version: 0,
            input: Value::Null,
            status: Status::Running,
            started_at: 0,
            updated_at: 0,
            error: None,
            output: None,
            events: 0,
            timeout_ms,
            timeout_from: 0,
            started: false,
            finished: false,
            stop: None,
        }
    }

    /// When the execution's time limit passes, once it has started: its
    /// timeout after the start, or after the last redrive.
    pub fn deadline(&self) -> Option<Millis> {
        let t = self.timeout_ms?;
        self.started.then(|| self.timeout_from.saturating_add(t))
    }

    /// Whether a cancel or the deadline told the execution to stop.
    pub fn stopping(&self) -> Option<Stop> {
        self.stop
    }

    /// Checks every program shares, before the program folds the event in.
    /// `redrives`: whether the program redrives an execution of a status.
    fn admit(&self, kind: &EventKind, redrives: impl Fn(Status) -> bool) -> Result<(), Error> {
        if !self.started && !matches!(kind, EventKind::ExecutionStarted { .. }) {
            return Err(illegal(kind, "not started"));
        }
        if self.finished && !matches!(kind, EventKind::ExecutionRedriven {}) {
            return Err(illegal(
                kind,
                format!("finished ({})", self.status.as_str()),
            ));
        }
        match kind {
            EventKind::ExecutionStarted { .. } if self.started => {
                Err(illegal(kind, "already started"))
            }
            EventKind::ExecutionRedriven {} if !self.finished || !redrives(self.status) => {
                Err(illegal(kind, format!("status {}", self.status.as_str())))
            }
            EventKind::ExecutionFinished { status, .. } if !status.is_terminal() => {
                Err(illegal(kind, "a finish needs a terminal status"))
            }
            EventKind::CancelRequested { .. } | EventKind::ExecutionTimedOut {}
                if self.stop.is_some() =>
            {
                Err(illegal(kind, "already stopping"))
            }
            _ => Ok(()),
        }
    }

    /// Records the common facts of an event the program has folded in.
    fn record(&mut self, event: &Event, fx: &mut Vec<Effect>) {
        match &event.kind {
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
                self.timeout_from = event.at;
            }
            EventKind::CancelRequested { .. } => self.stop = Some(Stop::Cancelled),
            EventKind::ExecutionTimedOut {} => self.stop = Some(Stop::TimedOut),
            EventKind::ExecutionRedriven {} => {
                self.finished = false;
                self.error = None;
                self.timeout_from = event.at;
                self.stop = None;
                // A program that resumes elsewhere than forward (a saga
                // still rolling back) has set its status already.
                if matches!(
                    self.status,
                    Status::Failed | Status::Cancelled | Status::TimedOut
                ) {
                    self.status = Status::Running;
                }
            }
            EventKind::ExecutionFinished {
                status,
                error,
                output,
            } => {
                self.finished = true;
                self.status = *status;
                self.error = error.clone();
                self.output = output.clone();
                fx.push(Effect::Finished { status: *status });
            }
            _ => {}
        }
        self.events += 1;
        self.updated_at = event.at;
    }
}

/// An interpreter of one kind of program, plugged into the envelope.
///
/// `apply` must check everything before it changes anything: an illegal
/// event leaves the state as it was (the transition tests check it).
pub(crate) trait Interpreter: Sized {
    /// The interpreter's part of an execution's state.
    type State;

    /// Folds one event into the program's state. Called once the envelope
    /// admitted the event and before it records the common facts, so `env`
    /// is the envelope as it was before the event.
    fn apply(
        &self,
        state: &mut Self::State,
        env: &mut Envelope,
        event: &Event,
        fx: &mut Vec<Effect>,
    ) -> Result<(), Error>;

    /// Decides an input the envelope did not settle: it is not a start, the
    /// execution has not finished (but for a redrive of a failed one), and a
    /// cancel or deadline does not find it stopping already.
    fn decide(&self, d: &mut Decider<'_, Self>, input: Input) -> Result<(), Error>;

    /// Moves a just-started execution on as far as it can go.
    fn proceed(&self, d: &mut Decider<'_, Self>) -> Result<(), Error>;

    /// The most events one history may hold, if the program has a quota.
    fn history_limit(&self) -> Option<u64>;

    /// How many of the stored events count against [`Interpreter::history_limit`]:
    /// all of them, unless the program keeps other executions' events in
    /// the same log (a distributed Map's child executions, each with a
    /// history of its own on AWS).
    fn history_size(&self, _state: &Self::State, env: &Envelope) -> u64 {
        env.events
    }

    /// Whether a finished execution of `status` may be redriven: a failed
    /// one, unless the program says more (Step Functions also redrives
    /// aborted and timed-out executions).
    fn redrives(&self, status: Status) -> bool {
        status == Status::Failed
    }

    /// Says which executions [`Interpreter::redrives`], for a refusal.
    fn redrivable_statuses(&self) -> &'static str {
        "only a failed execution can be redriven"
    }

    /// Whether the execution's deadline still matters (a saga past its
    /// turning back, for one, no longer times out).
    fn watches_deadline(&self, state: &Self::State) -> bool;

    /// Effects in flight, for a state just rebuilt from history (the
    /// envelope adds the deadline).
    fn outstanding(&self, state: &Self::State, env: &Envelope) -> Vec<Effect>;

    /// Whether the execution only waits for callbacks (and their durable
    /// deadline timers), so it may leave memory.
    fn is_parked(&self, state: &Self::State) -> bool;

    /// The participant call for a running task.
    fn request(
        &self,
        state: &Self::State,
        env: &Envelope,
        step: &str,
        task: TaskKind,
    ) -> Result<Request, ErrorInfo>;

    /// Where a callback token's task stands: `(attempts, nonce, running,
    /// takes callbacks)`, or `None` if there is no such task.
    fn callback_slot(
        &self,
        state: &Self::State,
        token: &TaskToken,
    ) -> Option<(u32, Option<String>, bool, bool)>;

    /// The number of the last attempt of a task (0 = never tried).
    fn attempts(&self, state: &Self::State, step: &str, task: TaskKind) -> u32;
}

/// Folds one event into an execution: the envelope's checks, the program's
/// fold, the envelope's record. The only way an event changes a state.
pub(crate) fn apply<I: Interpreter>(
    program: &I,
    env: &mut Envelope,
    state: &mut I::State,
    event: &Event,
) -> Result<Vec<Effect>, Error> {
    env.admit(&event.kind, |s| program.redrives(s))?;
    let mut fx = Vec::new();
    if let (EventKind::ExecutionStarted { .. }, Some(t)) = (&event.kind, env.timeout_ms) {
        fx.push(Effect::Deadline {
            at: event.at.saturating_add(t),
        });
    }
    program.apply(state, env, event, &mut fx)?;
    env.record(event, &mut fx);
    // A redrive restarts the time limit (the deadline armed at the start
    // may have passed while the execution was failed).
    if let (EventKind::ExecutionRedriven {}, Some(at)) = (&event.kind, env.deadline()) {
        if env.stop.is_none() && program.watches_deadline(state) {
            fx.push(Effect::Deadline { at });
        }
    }
    Ok(fx)
}

/// Decides `input` and applies the events to the state at once.
pub(crate) fn decide<I: Interpreter>(
    program: &I,
    env: &mut Envelope,
    state: &mut I::State,
    input: Input,
    ctx: Ctx,
) -> Result<Applied, Error> {
    let mut d = Decider {
        program,
        env,
        state,
        ctx,
        out: Vec::new(),
        effects: Vec::new(),
        limited: false,
    };
    if let Err(e) = d.input(input) {
        if !d.limited {
            return Err(e);
        }
    }
    Ok(Applied {
        events: d.out,
        effects: d.effects,
    })
}

/// Effects in flight after a replay: the program's, and the deadline.
pub(crate) fn outstanding<I: Interpreter>(
    program: &I,
    env: &Envelope,
    state: &I::State,
) -> Vec<Effect> {
    if env.finished || !env.started {
        return Vec::new();
    }
    let mut out = Vec::new();
    if let (Some(at), None, true) = (env.deadline(), env.stop, program.watches_deadline(state)) {
        out.push(Effect::Deadline { at });
    }
    out.extend(program.outstanding(state, env));
    out
}

/// Whether the execution can leave memory: it only waits for callbacks,
/// and no deadline of its own is watched in memory.
pub(crate) fn is_parked<I: Interpreter>(program: &I, env: &Envelope, state: &I::State) -> bool {
    if env.finished || !env.started {
        return false;
    }
    if env.timeout_ms.is_some() && program.watches_deadline(state) {
        return false;
    }
    program.is_parked(state)
}

/// Checks that a callback token may complete its task now: the task takes
/// callbacks, runs that attempt, and the nonce is the recorded one.
pub(crate) fn check_callback<I: Interpreter>(
    program: &I,
    env: &Envelope,
    state: &I::State,
    token: &TaskToken,
) -> Result<(), CallbackRefused> {
    if env.status.is_terminal() {
        return Err(CallbackRefused::NotWaiting);
    }
    let (attempts, nonce, running, callback) = program
        .callback_slot(state, token)
        .ok_or(CallbackRefused::NotWaiting)?;
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

/// Builds a decision: emits events and applies each at once, so later
/// parts of the same decision see the earlier ones.
pub(crate) struct Decider<'a, I: Interpreter> {
    pub(crate) program: &'a I,
    pub(crate) env: &'a mut Envelope,
    pub(crate) state: &'a mut I::State,
    pub(crate) ctx: Ctx,
    out: Vec<Event>,
    effects: Vec<Effect>,
    /// The decision ended the execution at the history limit.
    limited: bool,
}

impl<I: Interpreter> Decider<'_, I> {
    /// What is common to every program; the rest goes to the program.
    fn input(&mut self, input: Input) -> Result<(), Error> {
        let env = &*self.env;
        match input {
            Input::Start {
                execution_id,
                definition,
                version,
                input,
            } => {
                if env.started {
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
                })?;
                let program = self.program;
                program.proceed(self)
            }
            Input::Cancel { .. } if env.finished => Err(self.already_finished()),
            // Cancelling again, or after the deadline, changes nothing.
            Input::Cancel { .. } | Input::DeadlinePassed if env.stop.is_some() => Ok(()),
            // A deadline armed before the last redrive (which restarted the
            // time limit) is stale, and so is one without a time limit.
            Input::DeadlinePassed if env.deadline().is_none_or(|at| self.ctx.now < at) => Ok(()),
            Input::Redrive if !env.finished || !self.program.redrives(env.status) => {
                Err(Error::NotAllowed {
                    code: "not_redrivable",
                    message: format!(
                        "{}; `{}` is {}",
                        self.program.redrivable_statuses(),
                        env.id,
                        env.status.as_str()
                    ),
                })
            }
            Input::Redrive => {
                let program = self.program;
                program.decide(self, Input::Redrive)
            }
            // A durable function's callers are answered, not ignored: a
            // callback or checkpoint that comes after the end is refused.
            Input::Durable(d) if env.finished => match d.refusal_after_end() {
                Some(refusal) => Err(refusal),
                None => Ok(()),
            },
            // A user's update is answered too: the program says why not.
            Input::UpdateMapRun(_) if env.finished => {
                let program = self.program;
                program.decide(self, input)
            }
            // Late or duplicate answers, timers of a finished execution.
            _ if env.finished => Ok(()),
            input => {
                let program = self.program;
                program.decide(self, input)
            }
        }
    }

    /// Records one event: applies it, keeps its effects. At the history
    /// quota the execution fails instead (see [`Decider::fail_at_history_limit`]).
    pub(crate) fn emit(&mut self, kind: EventKind) -> Result<(), Error> {
        if let Some(limit) = self.program.history_limit() {
            let finishing = matches!(kind, EventKind::ExecutionFinished { .. });
            let size = self.program.history_size(self.state, self.env);
            if size.saturating_add(1) >= limit && !finishing && !self.env.finished {
                return self.fail_at_history_limit(limit);
            }
        }
        let e = Event {
            at: self.ctx.now,
            kind,
        };
        let effects = apply(self.program, self.env, self.state, &e)?;
        self.effects.extend(effects);
        self.out.push(e);
        Ok(())
    }

    /// Ends the execution.
    pub(crate) fn finish(
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

    pub(crate) fn already_finished(&self) -> Error {
        Error::NotAllowed {
            code: "execution_finished",
            message: format!(
                "execution `{}` already finished ({})",
                self.env.id,
                self.env.status.as_str()
            ),
        }
    }

    /// The next event would leave no room for the end: the execution fails
    /// instead, as AWS fails one whose history reaches its quota. The
    /// decision stops here (the error unwinds it; [`decide`] keeps what was
    /// decided so far), and nothing it started is performed: the finish
    /// aborted it.
    fn fail_at_history_limit(&mut self, limit: u64) -> Result<(), Error> {
        let error = ErrorInfo::new(
            crate::error_name::RUNTIME,
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
}

/// An event the state does not allow.
pub(crate) fn illegal(event: &EventKind, state: impl Into<String>) -> Error {
    Error::IllegalTransition {
        event: format!("{} {}", event.name(), event.step().unwrap_or(""))
            .trim()
            .to_string(),
        state: state.into(),
    }
}
