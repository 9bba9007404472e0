//! An execution: its [`Envelope`] (what every program shares) and a
//! [`Body`] per kind of program, interpreted by that program's module.
//!
//! Two pure functions drive an execution:
//! - [`Execution::decide`] turns an [`Input`] (a participant answered, a timer
//!   fired, a user cancelled …) into the events that record the decision;
//! - [`Execution::apply`] folds one event into the state and returns the
//!   [`Effect`]s it calls for (invoke a participant, arm a timer …).
//!
//! The runtime makes the events durable, then performs the effects.
//! Recovery applies the stored history and asks [`Execution::outstanding`]
//! what was in flight. Nothing here reads a clock or a random source: both
//! arrive in [`Ctx`] and end up recorded in events. Nothing outside the core
//! needs to know which kind of program an execution runs.

use std::ops::Deref;

use serde::Serialize;

use crate::asl::run::{Run, Trace};
use crate::envelope::{self, Envelope};
use crate::event::{ErrorInfo, Event, TaskKind};
use crate::exchange::{Applied, CallbackRefused, Ctx, Effect, Input, Request, TaskToken};
use crate::plan::{Plan, Program};
use crate::saga::{Progress, Stuck, StuckPolicy};
use crate::Error;

/// The in-memory state of one execution: the fold of its history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Execution {
    #[serde(flatten)]
    envelope: Envelope,
    /// Private like the envelope: only events change an execution.
    body: Body,
}

/// The part of an execution's state that its program owns.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Body {
    Saga(Progress),
    /// Boxed: an ASL run holds a slot per Map item, and moves often.
    Asl(Box<Run>),
    /// A durable function's operations and invocation loop.
    Durable(Box<crate::durable::Run>),
}

/// Reads the envelope's fields (`ex.status`, `ex.id` …) through the
/// execution; only events change them.
impl Deref for Execution {
    type Target = Envelope;

    fn deref(&self) -> &Envelope {
        &self.envelope
    }
}

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

/// Runs `$body` with `$program` bound to the plan's interpreter and `$state`
/// to the execution's matching body; a body of another kind is an
/// illegal transition (a history replayed against the wrong definition).
macro_rules! with_program {
    ($plan:expr, $body:expr, |$program:ident, $state:ident| $then:expr, $mismatch:expr) => {
        match (&$plan.program, $body) {
            (Program::Saga($program), Body::Saga($state)) => $then,
            (Program::Asl(m), Body::Asl($state)) => {
                let $program = &**m;
                $then
            }
            (Program::Durable(f), Body::Durable($state)) => {
                let $program = &**f;
                $then
            }
            _ => $mismatch,
        }
    };
}

fn mismatch(plan: &Plan) -> Error {
    Error::IllegalTransition {
        event: "any".into(),
        state: format!(
            "the execution's state is not of a {} definition",
            plan.format()
        ),
    }
}

impl Execution {
    /// An execution before its first event.
    pub fn empty(plan: &Plan) -> Self {
        Execution {
            envelope: Envelope::new(&plan.name, plan.timeout_ms),
            body: match &plan.program {
                Program::Saga(s) => Body::Saga(Progress::new(s)),
                Program::Asl(_) => Body::Asl(Box::default()),
                Program::Durable(_) => Body::Durable(Box::default()),
            },
        }
    }

    /// What every execution shares: id, status, input, output, error, times.
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
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

    /// Folds one event into the state. An event the state does not allow is an
    /// [`Error::IllegalTransition`]; the state is then left unchanged.
    ///
    /// No copy is made to get that guarantee: every check comes before any
    /// change (keep it so; the transition tests check the state is unchanged
    /// after each kind of illegal event).
    pub fn apply(&mut self, plan: &Plan, event: &Event) -> Result<Vec<Effect>, Error> {
        let env = &mut self.envelope;
        with_program!(
            plan,
            &mut self.body,
            |program, state| envelope::apply(program, env, state, event),
            Err(mismatch(plan))
        )
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
        let env = &mut self.envelope;
        with_program!(
            plan,
            &mut self.body,
            |program, state| envelope::decide(program, env, state, input, ctx),
            Err(mismatch(plan))
        )
    }

    /// Effects still in flight, for a runtime that just rebuilt this state from history.
    pub fn outstanding(&self, plan: &Plan) -> Vec<Effect> {
        let env = &self.envelope;
        with_program!(
            plan,
            &self.body,
            |program, state| envelope::outstanding(program, env, state),
            Vec::new()
        )
    }

    /// Whether the execution only waits for callbacks (and their durable
    /// deadline timers): it can leave memory and be reloaded from history when
    /// a callback or a timer arrives. A task with a heartbeat, or an execution
    /// with a `timeout` still ahead, is watched in memory and stays resident.
    pub fn is_parked(&self, plan: &Plan) -> bool {
        let env = &self.envelope;
        with_program!(
            plan,
            &self.body,
            |program, state| envelope::is_parked(program, env, state),
            false
        )
    }

    /// Builds the participant call for a running task.
    pub fn request(&self, plan: &Plan, step: &str, task: TaskKind) -> Result<Request, ErrorInfo> {
        use envelope::Interpreter;
        let env = &self.envelope;
        with_program!(
            plan,
            &self.body,
            |program, state| program.request(state, env, step, task),
            Err(ErrorInfo::new(
                crate::error_name::RUNTIME,
                mismatch(plan).to_string()
            ))
        )
    }

    /// Checks that a callback token may complete its task now: the task
    /// takes callbacks, runs that attempt, and the nonce is the recorded one.
    pub fn check_callback(&self, plan: &Plan, token: &TaskToken) -> Result<(), CallbackRefused> {
        let env = &self.envelope;
        with_program!(
            plan,
            &self.body,
            |program, state| envelope::check_callback(program, env, state, token),
            Err(CallbackRefused::NotWaiting)
        )
    }

    /// The number of the last attempt of a task (0 = never tried).
    pub fn attempts(&self, plan: &Plan, step: &str, task: TaskKind) -> u32 {
        use envelope::Interpreter;
        with_program!(
            plan,
            &self.body,
            |program, state| program.attempts(state, step, task),
            0
        )
    }

    /// The program's part of the state (for inspection and tests).
    pub fn body(&self) -> &Body {
        &self.body
    }

    /// A saga execution's own progress (for inspection and tests).
    pub fn saga(&self) -> Option<&Progress> {
        match &self.body {
            Body::Saga(p) => Some(p),
            Body::Asl(_) | Body::Durable(_) => None,
        }
    }

    /// Whether the task of `step` is a Step Functions activity task (only
    /// an ASL execution has them).
    pub fn is_activity_task(&self, plan: &Plan, step: &str) -> bool {
        match (&plan.program, &self.body) {
            (Program::Asl(m), Body::Asl(r)) => r.is_activity_task(m, step),
            _ => false,
        }
    }

    /// An ASL execution's map runs (distributed Map states), oldest first;
    /// none for the other programs.
    pub fn map_runs(&self) -> &[crate::asl::run::MapRun] {
        match &self.body {
            Body::Asl(r) => r.map_runs(),
            _ => &[],
        }
    }

    /// A durable execution's operations and invocation loop.
    pub fn durable(&self) -> Option<&crate::durable::Run> {
        match &self.body {
            Body::Durable(r) => Some(r),
            _ => None,
        }
    }

    /// The compensation that is stuck under `policy`, if any (see
    /// [`Progress::stuck_compensation`]). Only sagas compensate.
    pub fn stuck_compensation(&self, plan: &Plan, policy: &StuckPolicy) -> Option<Stuck> {
        if self.status.is_terminal() {
            return None;
        }
        match (&plan.program, &self.body) {
            (Program::Saga(saga), Body::Saga(p)) => p.stuck_compensation(saga, policy),
            _ => None,
        }
    }
}

/// Renders the Step-Functions-shaped history of an ASL execution from its
/// stored events, by replaying them with tracing on. Its distributed Maps'
/// items are its threads, but each is a child execution with a history of
/// its own ([`child_trace`]): their events are not in it, as on AWS.
pub fn trace(plan: &Plan, events: &[Event]) -> Result<Vec<Trace>, Error> {
    let (_, mut trace) = traced(plan, events)?;
    trace.retain(Trace::is_own);
    Ok(trace)
}

/// The Step-Functions-shaped history of child execution `item` of the
/// map run `map_run` (its ARN) of an ASL execution, from the execution's
/// stored events: `ExecutionStarted`, the events of the item's thread,
/// then how it ended. `None`: no such map run, item, or the item has not
/// started (a pending item is no execution yet).
pub fn child_trace(
    plan: &Plan,
    events: &[Event],
    map_run: &str,
    item: usize,
) -> Result<Option<Vec<Trace>>, Error> {
    let (run, mut trace) = traced(plan, events)?;
    let Some(r) = run.map_runs().iter().position(|r| r.arn == map_run) else {
        return Ok(None);
    };
    let started = run.map_runs()[r]
        .items
        .get(item)
        .is_some_and(|i| i.status != crate::asl::run::ItemStatus::Pending);
    if !started {
        return Ok(None);
    }
    trace.retain(|t| t.child == Some((r, item)));
    Ok(Some(trace))
}

/// The interpreter after replaying `events` with tracing on, and its trace.
fn traced(plan: &Plan, events: &[Event]) -> Result<(Run, Vec<Trace>), Error> {
    let Program::Asl(m) = &plan.program else {
        return Err(Error::NotAllowed {
            code: "not_asl",
            message: format!("`{}` is not an ASL state machine", plan.name),
        });
    };
    let mut env = Envelope::new(&plan.name, plan.timeout_ms);
    let mut run = Run::default();
    run.start_tracing();
    for e in events {
        envelope::apply(&**m, &mut env, &mut run, e)?;
    }
    let trace = run.take_trace();
    Ok((run, trace))
}
