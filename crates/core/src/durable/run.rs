//! The durable-function interpreter: a durable execution as the third kind
//! of program behind the envelope.
//!
//! The function's own logic runs in its code (the SDK replays it in every
//! invocation); the service keeps the operations and runs the invocation
//! loop. This module decides that loop from the inputs the runtime brings
//! (a checkpoint, an invocation's end, a chained invoke's end, a timer, a
//! callback, a stop) and records every decision as [`EventKind::DurableOperation`]
//! and [`EventKind::DurableInvocation`] facts:
//!
//! - the start records the EXECUTION operation and invocation 1;
//! - an invocation that ends `PENDING` has its new chained invokes called
//!   ([`Effect::Call`], after the invocation's end, so the history shows
//!   `InvocationCompleted` before their outcomes) and, if something it
//!   waits on changed meanwhile, the next invocation starts at once;
//! - whatever changes while no invocation is open (a chained invoke ends,
//!   a wait or a retry is due, a callback completes) starts the next one;
//! - an invocation that fails (the worker crashed, timed out, or the SDK
//!   gave up on a retryable error) is retried after a capped backoff; the
//!   execution ends only by its own answer, its `ExecutionTimeout` or a stop;
//! - after a crash, an invocation recorded as open is closed as lost
//!   ([`Effect::Recover`]) and the execution is invoked again.
//!
//! Never two invocations of one execution at once: [`Invocations`] refuses
//! to start one while another is open.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::event::{CallbackOutcome, InvokeDispatch, InvokeOutcome, OperationEvent, Timer};
use super::function::DurableFunction;
use super::model::{Details, ErrorObject, OperationStatus, OperationUpdate};
use super::operations::{Operations, Outcome, Refusal};
use super::token::{Checkpoint, InvocationEvent, InvocationOutcome, Invocations};
use crate::envelope::{Decider, Envelope, Interpreter};
use crate::event::{ErrorInfo, Event, EventKind, Millis, Status, TaskKind};
use crate::exchange::{Effect as AnyEffect, Input as AnyInput, Request, TaskToken};
use crate::Error;

/// The timer "step" of an invocation's retry (operation ids cannot hold `$`).
pub const INVOCATION_RETRY: &str = "$invocation";

/// The first delay before a failed invocation is tried again; it doubles
/// with every failure in a row, up to [`MAX_RETRY_DELAY_MS`].
pub const FIRST_RETRY_DELAY_MS: u64 = 1_000;
/// The longest delay between two tries of a failing invocation.
pub const MAX_RETRY_DELAY_MS: u64 = 30_000;

/// What a durable execution takes besides the inputs every program takes.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// `CheckpointDurableExecution`. `unresolvable`: the chained invokes
    /// this batch starts whose target cannot be called, by operation id,
    /// with the error they fail with (the runtime resolves targets, which
    /// needs its configuration, before asking for the decision);
    /// `dispatched`: where the others go, by operation id, recorded in
    /// their `ChainedInvokeStarted` facts.
    Checkpoint {
        token: String,
        client_token: String,
        updates: Vec<OperationUpdate>,
        unresolvable: BTreeMap<String, ErrorObject>,
        dispatched: BTreeMap<String, InvokeDispatch>,
    },
    /// Invocation `number` ended with `answer`.
    InvocationEnded { number: u32, answer: Answer },
    /// A chained invoke's target answered.
    InvokeEnded { op: String, outcome: InvokeOutcome },
    /// `SendDurableExecutionCallbackSuccess`/`…Failure`.
    CallbackCompleted {
        callback_id: String,
        outcome: CallbackOutcome,
    },
    /// `SendDurableExecutionCallbackHeartbeat`.
    CallbackHeartbeat { callback_id: String },
    /// `StopDurableExecution`, with its body's error.
    Stop { error: Option<ErrorObject> },
    /// After a restart: close the invocation that was open when the
    /// process died (see [`Effect::Recover`]): invocation `number`, so a
    /// second signal cannot close the next, live invocation.
    Recover { number: u32 },
}

impl Input {
    /// Why this input is refused once the execution has ended, if its
    /// sender must hear it (an API caller); `None`: ignored (a late answer
    /// of an invocation or a target).
    pub(crate) fn refusal_after_end(&self) -> Option<Error> {
        let (code, message) = match self {
            Input::Checkpoint { .. } => (
                "invalid_checkpoint_token",
                format!("{}: the execution has ended.", super::INVALID_TOKEN),
            ),
            Input::CallbackCompleted { callback_id, .. }
            | Input::CallbackHeartbeat { callback_id } => (
                "callback_closed",
                format!("Callback {callback_id} has timed out or already completed."),
            ),
            Input::Stop { .. } => (
                "execution_finished",
                "The durable execution has already ended.".to_string(),
            ),
            Input::InvocationEnded { .. } | Input::InvokeEnded { .. } | Input::Recover { .. } => {
                return None
            }
        };
        Some(Error::NotAllowed { code, message })
    }
}

/// What an invocation's function answered (or that it did not).
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// `{"Status": "PENDING"}`: it waits for an operation.
    Pending,
    /// `{"Status": "SUCCEEDED", "Result": …}`.
    Succeeded(Option<String>),
    /// `{"Status": "FAILED", "Error": …}`.
    Failed(Option<ErrorObject>),
    /// No answer the SDK gave: the worker crashed or timed out, the SDK
    /// raised a retryable error, or the output was not the SDK's. The
    /// invocation is retried.
    Error {
        error_type: String,
        error_message: String,
    },
}

/// What a durable execution asks the runtime to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Hand invocation `number` to the function (its event is built from
    /// the state: the token, the first page of operations).
    Invoke { number: u32 },
    /// Call chained invoke `op`'s target (its stored target and payload).
    Call { op: String },
    /// An invocation was open when the state was rebuilt from history: it
    /// is lost with its process; send [`Input::Recover`] with its number.
    Recover { number: u32 },
}

/// The interpreter's part of a durable execution's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Run {
    #[serde(skip)]
    operations: Operations,
    #[serde(skip)]
    invocations: Invocations,
    /// Chained invokes started in the open invocation: called when it ends.
    #[serde(skip)]
    undispatched: BTreeSet<String>,
    /// Something the function waits on changed since the open invocation
    /// began: the next starts as soon as it ends.
    changed: bool,
    /// Invocations that failed in a row (0 after one that answered).
    failures: u32,
    /// When the last invocation ended.
    last_ended: Millis,
    /// Where Sagaflow's cancel is, if one was asked for.
    cancel: Cancel,
}

/// Sagaflow's cancel of a durable execution (AWS's stop ends it at once).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
enum Cancel {
    #[default]
    None,
    /// Asked for (with its reason), not yet delivered: it ends what the
    /// code waits on as soon as no invocation is open and there is such an
    /// operation.
    Requested(String),
    /// Delivered: the code was invoked to handle it. If it then suspends
    /// with nothing left that could wake it (an SDK that suspends on a
    /// cancelled wait again), it is stopped with this reason.
    Delivered(String),
}

impl Run {
    /// The execution's operations.
    pub fn operations(&self) -> &Operations {
        &self.operations
    }

    /// The execution's invocation loop.
    pub fn invocations(&self) -> &Invocations {
        &self.invocations
    }

    /// When the last failed invocation is tried again, if it failed.
    fn retry_at(&self) -> Option<Millis> {
        if self.failures == 0 || self.invocations.current().is_some() {
            return None;
        }
        let doubling = 1u64 << self.failures.saturating_sub(1).min(16);
        let delay = FIRST_RETRY_DELAY_MS
            .saturating_mul(doubling)
            .min(MAX_RETRY_DELAY_MS);
        Some(self.last_ended.saturating_add(delay))
    }

    /// The timers of the open operations (after a replay).
    fn pending_timers(&self) -> Vec<Timer> {
        let ops = &self.operations;
        ops.iter()
            .flat_map(|op| {
                let id = op.id.clone();
                match (&op.details, op.status) {
                    (Details::Wait(w), OperationStatus::Started) => w
                        .scheduled_end_timestamp
                        .map(|at| Timer::WaitEnd { id, at })
                        .into_iter()
                        .collect(),
                    (Details::Step(s), OperationStatus::Pending) => s
                        .next_attempt_timestamp
                        .map(|at| Timer::RetryDue { id, at })
                        .into_iter()
                        .collect(),
                    (Details::Callback(_), OperationStatus::Started) => ops
                        .callback_watch(&op.id)
                        .map(|w| w.timers(&op.id))
                        .unwrap_or_default(),
                    _ => Vec::new(),
                }
            })
            .collect()
    }
}

/// The effect that arms an operation's timer: the store's timer rows and
/// the in-memory timers carry the operation id as their step.
fn timer_effect(timer: &Timer) -> AnyEffect {
    AnyEffect::StartTimer {
        step: timer.op_id().to_string(),
        task: TaskKind::Action,
        attempt: 0,
        fire_at: timer.at(),
    }
}

/// Whether a fact changes something a suspended function waits on.
fn wakes(fact: &OperationEvent) -> bool {
    matches!(
        fact,
        OperationEvent::ChainedInvokeEnded { .. }
            | OperationEvent::WaitSucceeded { .. }
            | OperationEvent::StepReady { .. }
            | OperationEvent::CallbackEnded { .. }
    )
}

/// A refusal of the durable model, as the core's error: its stable code
/// and AWS's message.
fn refused(r: Refusal) -> Error {
    Error::NotAllowed {
        code: r.code,
        message: r.message,
    }
}

/// The envelope's error for an SDK `ErrorObject`.
fn error_info(error: Option<&ErrorObject>, default_type: &str) -> ErrorInfo {
    let error_type = error
        .and_then(|e| e.error_type.clone())
        .unwrap_or_else(|| default_type.to_string());
    let message = error
        .and_then(|e| e.error_message.clone())
        .unwrap_or_default();
    ErrorInfo::new(error_type, message)
}

/// The error type with which a code saga (durable-rust's `sagaflow-saga`)
/// fails once every compensation has run: the execution ends `compensated`.
pub const SAGA_COMPENSATED: &str = "SagaCompensated";

/// The envelope's output for a `Result` string: its JSON, or the text.
fn output_of(result: Option<&String>) -> serde_json::Value {
    match result {
        None => serde_json::Value::Null,
        Some(text) => {
            serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.clone()))
        }
    }
}

impl Interpreter for DurableFunction {
    type State = Run;

    fn apply(
        &self,
        state: &mut Run,
        env: &mut Envelope,
        event: &Event,
        fx: &mut Vec<AnyEffect>,
    ) -> Result<(), Error> {
        match &event.kind {
            EventKind::ExecutionStarted { execution_id, .. } => {
                state.invocations = Invocations::new(execution_id.clone());
            }
            EventKind::DurableOperation { fact } => {
                state.operations.apply(fact)?;
                match fact {
                    OperationEvent::ChainedInvokeStarted { op, .. }
                        if state.invocations.current().is_some() =>
                    {
                        state.undispatched.insert(op.id.clone());
                    }
                    OperationEvent::ChainedInvokeEnded { id, .. } => {
                        state.undispatched.remove(id);
                    }
                    _ => {}
                }
                if wakes(fact) && state.invocations.current().is_some() {
                    state.changed = true;
                }
                let timers = match fact {
                    OperationEvent::CallbackHeartbeat { id, .. } => state
                        .operations
                        .callback_watch(id)
                        .map(|w| w.timers(id))
                        .unwrap_or_default(),
                    fact => state.operations.timers_of(fact),
                };
                fx.extend(timers.iter().map(timer_effect));
            }
            EventKind::DurableInvocation { fact } => {
                state.invocations.apply(fact)?;
                match fact {
                    InvocationEvent::InvocationStarted { number, .. } => {
                        state.changed = false;
                        fx.push(AnyEffect::Durable(Effect::Invoke { number: *number }));
                    }
                    InvocationEvent::InvocationCompleted { outcome, at, .. } => {
                        state.last_ended = *at;
                        state.failures = match outcome {
                            InvocationOutcome::Error { .. } => state.failures.saturating_add(1),
                            _ => 0,
                        };
                        for op in std::mem::take(&mut state.undispatched) {
                            fx.push(AnyEffect::Durable(Effect::Call { op }));
                        }
                        if let Some(at) = state.retry_at() {
                            fx.push(AnyEffect::StartTimer {
                                step: INVOCATION_RETRY.into(),
                                task: TaskKind::Action,
                                attempt: state.invocations.last(),
                                fire_at: at,
                            });
                        }
                    }
                    InvocationEvent::CancelRequested { reason, .. } => {
                        state.cancel = Cancel::Requested(reason.clone());
                    }
                    InvocationEvent::CancelDelivered { .. } => {
                        if let Cancel::Requested(reason) = &state.cancel {
                            state.cancel = Cancel::Delivered(reason.clone());
                        }
                    }
                    InvocationEvent::CheckpointAccepted { .. }
                    | InvocationEvent::TokensRevoked { .. } => {}
                }
            }
            EventKind::ExecutionFinished { .. } => {}
            other => return Err(crate::envelope::illegal(other, "a durable execution")),
        }
        let _ = env;
        Ok(())
    }

    fn decide(&self, d: &mut Decider<'_, Self>, input: AnyInput) -> Result<(), Error> {
        let now = d.ctx.now;
        match input {
            AnyInput::Durable(input) => decide_durable(d, input),
            AnyInput::TimerFired { step, attempt, .. } if step == INVOCATION_RETRY => {
                let run = &*d.state;
                let due = run.invocations.current().is_none()
                    && run.invocations.last() == attempt
                    && run.failures > 0;
                if due {
                    start_invocation(d)?;
                }
                Ok(())
            }
            AnyInput::TimerFired { step, .. } => {
                if let Some(fact) = d.state.operations.fire_timer(&step, now) {
                    record_op(d, fact)?;
                    wake(d)?;
                }
                Ok(())
            }
            // Sagaflow's cancel asks the code to compensate (as a saga
            // definition's does); AWS's StopDurableExecution ends it at once.
            AnyInput::Cancel { reason } => {
                if d.state.cancel != Cancel::None || d.state.operations.is_ended() {
                    return Ok(()); // asked already (or ended: nothing to do)
                }
                let fact = InvocationEvent::CancelRequested { reason, at: now };
                d.emit(EventKind::DurableInvocation { fact })?;
                deliver_cancel(d).map(|_| ())
            }
            AnyInput::DeadlinePassed => {
                let message = format!(
                    "the execution ran longer than its ExecutionTimeout of {} s",
                    self.execution_timeout_seconds
                );
                // The fact carries the error GetDurableExecution reports, so
                // that the history's ExecutionTimedOut has it too (as
                // ExecutionStopped has the stop's): without it the event's
                // Error was an empty structure, no Payload.
                let object = ErrorObject {
                    error_type: Some(crate::error_name::TIMEOUT.into()),
                    error_message: Some(message.clone()),
                    ..Default::default()
                };
                let Some(fact) = d.state.operations.time_out(Some(object), now) else {
                    return Ok(());
                };
                record_op(d, fact)?;
                revoke(d)?;
                let error = ErrorInfo::new(crate::error_name::TIMEOUT, message);
                d.finish(Status::TimedOut, Some(error), None)
            }
            AnyInput::Redrive => Err(Error::NotAllowed {
                code: "not_redrivable",
                message: "a durable execution cannot be redriven: invoke the function again".into(),
            }),
            AnyInput::UpdateMapRun(u) => Err(crate::asl::run::no_map_runs(&u)),
            // Participant answers and parked tasks are the other programs'.
            _ => Ok(()),
        }
    }

    fn proceed(&self, d: &mut Decider<'_, Self>) -> Result<(), Error> {
        let env = &*d.env;
        let payload = env
            .input
            .get("InputPayload")
            .and_then(|p| p.as_str())
            .map(str::to_string);
        let fact = OperationEvent::ExecutionStarted {
            id: env.id.clone(),
            input_payload: payload,
            at: d.ctx.now,
        };
        record_op(d, fact)?;
        start_invocation(d)
    }

    fn history_limit(&self) -> Option<u64> {
        None
    }

    fn watches_deadline(&self, _: &Run) -> bool {
        true
    }

    fn outstanding(&self, state: &Run, _: &Envelope) -> Vec<AnyEffect> {
        let mut out: Vec<AnyEffect> = state.pending_timers().iter().map(timer_effect).collect();
        if let Some(number) = state.invocations.current() {
            out.push(AnyEffect::Durable(Effect::Recover { number }));
        }
        for (op, _) in state.operations.invokes_to_dispatch() {
            if !state.undispatched.contains(op) {
                out.push(AnyEffect::Durable(Effect::Call { op: op.to_string() }));
            }
        }
        if let Some(at) = state.retry_at() {
            out.push(AnyEffect::StartTimer {
                step: INVOCATION_RETRY.into(),
                task: TaskKind::Action,
                attempt: state.invocations.last(),
                fire_at: at,
            });
        }
        out
    }

    fn is_parked(&self, state: &Run) -> bool {
        state.invocations.current().is_none()
            && state.operations.invokes_to_dispatch().is_empty()
            && !state.changed
    }

    fn request(
        &self,
        _: &Run,
        _: &Envelope,
        step: &str,
        _: TaskKind,
    ) -> Result<Request, ErrorInfo> {
        Err(ErrorInfo::new(
            crate::error_name::RUNTIME,
            format!("a durable execution has no participant task `{step}`"),
        ))
    }

    fn callback_slot(&self, _: &Run, _: &TaskToken) -> Option<(u32, Option<String>, bool, bool)> {
        None
    }

    fn attempts(&self, _: &Run, _: &str, _: TaskKind) -> u32 {
        0
    }
}

/// Decides an input only durable executions take.
fn decide_durable(d: &mut Decider<'_, DurableFunction>, input: Input) -> Result<(), Error> {
    let now = d.ctx.now;
    match input {
        Input::Checkpoint {
            token,
            client_token,
            updates,
            unresolvable,
            mut dispatched,
        } => {
            let run = &*d.state;
            let decided = run
                .invocations
                .checkpoint_resolving(
                    &run.operations,
                    &token,
                    Some(&client_token),
                    &updates,
                    now,
                    d.ctx.entropy,
                    &|id, _| unresolvable.get(id).cloned(),
                )
                .map_err(refused)?;
            match decided {
                // Answered before: the caller reads the answer again.
                Checkpoint::Replayed(_) => Ok(()),
                Checkpoint::Decided {
                    applied, accepted, ..
                } => {
                    for mut fact in applied.events {
                        if let OperationEvent::ChainedInvokeStarted { op, dispatch, .. } = &mut fact
                        {
                            *dispatch = dispatched.remove(&op.id).unwrap_or_default();
                        }
                        record_op(d, fact)?;
                    }
                    d.emit(EventKind::DurableInvocation { fact: *accepted })
                }
            }
        }
        Input::InvocationEnded { number, answer } => invocation_ended(d, number, answer),
        Input::InvokeEnded { op, outcome } => {
            if let Some(fact) = d.state.operations.end_chained_invoke(&op, outcome, now) {
                record_op(d, fact)?;
                wake(d)?;
            }
            Ok(())
        }
        Input::CallbackCompleted {
            callback_id,
            outcome,
        } => {
            let fact = d
                .state
                .operations
                .complete_callback(&callback_id, outcome, now)
                .map_err(refused)?;
            record_op(d, fact)?;
            wake(d)
        }
        Input::CallbackHeartbeat { callback_id } => {
            let (fact, _) = d
                .state
                .operations
                .heartbeat_callback(&callback_id, now)
                .map_err(refused)?;
            record_op(d, fact)
        }
        Input::Stop { error } => stop(d, error),
        Input::Recover { number } => {
            if d.state.invocations.current() != Some(number) {
                return Ok(()); // that invocation is closed already
            }
            if let Some(fact) = d.state.invocations.recover(now) {
                d.emit(EventKind::DurableInvocation { fact })?;
                // A checkpoint of the lost invocation may have ended the
                // execution (an EXECUTION update): it ends now, as its
                // answer would have ended it; no invocation starts any
                // more, so nothing else would. Otherwise lost with its
                // process: invoked again at once (the backoff is for
                // invocations that keep failing).
                if !finish_if_ended(d)? {
                    start_invocation(d)?;
                }
            }
            Ok(())
        }
    }
}

/// Invocation `number` answered (or failed): recorded, then the execution
/// ends, waits, or is invoked again.
fn invocation_ended(
    d: &mut Decider<'_, DurableFunction>,
    number: u32,
    answer: Answer,
) -> Result<(), Error> {
    let now = d.ctx.now;
    if d.state.invocations.current() != Some(number) {
        return Ok(()); // a late answer of an invocation closed meanwhile
    }
    let answer_is_pending = answer == Answer::Pending;
    let outcome = match &answer {
        Answer::Pending => InvocationOutcome::Pending,
        Answer::Succeeded(_) => InvocationOutcome::Succeeded,
        Answer::Failed(_) => InvocationOutcome::Failed,
        Answer::Error {
            error_type,
            error_message,
        } => InvocationOutcome::Error {
            error_type: error_type.clone(),
            error_message: error_message.clone(),
        },
    };
    let fact = d
        .state
        .invocations
        .complete(outcome, now)
        .map_err(refused)?;
    d.emit(EventKind::DurableInvocation { fact })?;
    // An EXECUTION update in a checkpoint ended it already (a large
    // result); otherwise the answer does.
    let exec_id = d.env.id.clone();
    if d.state.operations.outcome().is_none() {
        let fact = match answer {
            Answer::Succeeded(result) => Some(OperationEvent::ExecutionSucceeded {
                id: exec_id,
                result,
                at: now,
            }),
            Answer::Failed(error) => Some(OperationEvent::ExecutionFailed {
                id: exec_id,
                error,
                at: now,
            }),
            Answer::Pending | Answer::Error { .. } => None,
        };
        if let Some(fact) = fact {
            record_op(d, fact)?;
        }
    }
    if finish_if_ended(d)? || deliver_cancel(d)? {
        return Ok(());
    }
    // Cancelled, and suspended with nothing that could ever wake it: the
    // cancel ends it as a stop would (rather than leave it running until
    // its ExecutionTimeout).
    if let Cancel::Delivered(reason) = &d.state.cancel {
        let stuck = answer_is_pending && !d.state.changed && !d.state.operations.can_wake();
        if stuck {
            let error = cancelled(reason.clone());
            return stop(d, Some(error));
        }
    }
    if d.state.changed {
        start_invocation(d)?;
    }
    Ok(())
}

/// The error of what Sagaflow's cancel ends.
fn cancelled(reason: String) -> ErrorObject {
    ErrorObject {
        error_type: Some(crate::error_name::CANCELLED.into()),
        error_message: Some(reason),
        ..Default::default()
    }
}

/// Delivers a requested cancel if it can be now (no invocation open, an
/// operation the code waits on that the service ends): those operations
/// fail with `Sagaflow.Cancelled` and the code is invoked again to handle
/// it. Whether it did.
fn deliver_cancel(d: &mut Decider<'_, DurableFunction>) -> Result<bool, Error> {
    let run = &*d.state;
    let Cancel::Requested(reason) = &run.cancel else {
        return Ok(false);
    };
    if run.invocations.current().is_some() {
        return Ok(false); // the code runs: at its next suspension
    }
    let error = cancelled(reason.clone());
    let facts = run.operations.cancel_waiting(&error, d.ctx.now);
    if facts.is_empty() {
        return Ok(false); // it waits on a chained invoke: when that ends
    }
    for fact in facts {
        record_op(d, fact)?;
    }
    let fact = InvocationEvent::CancelDelivered { at: d.ctx.now };
    d.emit(EventKind::DurableInvocation { fact })?;
    start_invocation(d)?;
    Ok(true)
}

/// Finishes the execution if its operations say it ended (by the answer,
/// or by an EXECUTION update in a checkpoint); whether they do.
fn finish_if_ended(d: &mut Decider<'_, DurableFunction>) -> Result<bool, Error> {
    match d.state.operations.outcome().cloned() {
        Some(Outcome::Succeeded(result)) => {
            let output = output_of(result.as_ref());
            d.finish(Status::Succeeded, None, Some(output))?;
        }
        Some(Outcome::Failed(error)) => {
            let error = error_info(error.as_ref(), "Error");
            // A saga written with sagaflow-saga that undid everything it
            // did ends as a saga does: `compensated` (FAILED on the Lambda
            // API, which has no such status).
            let status = if error.error == SAGA_COMPENSATED {
                Status::Compensated
            } else {
                Status::Failed
            };
            d.finish(status, Some(error), None)?;
        }
        // Timed out or stopped: finished by that decision already.
        Some(_) => {}
        None => return Ok(false),
    }
    Ok(true)
}

/// Records one operation fact.
fn record_op(d: &mut Decider<'_, DurableFunction>, fact: OperationEvent) -> Result<(), Error> {
    d.emit(EventKind::DurableOperation { fact })
}

/// Something the function waits on changed: with no invocation open, the
/// next one starts (with one open, it starts when that one ends).
fn wake(d: &mut Decider<'_, DurableFunction>) -> Result<(), Error> {
    if d.state.invocations.current().is_none() {
        start_invocation(d)?;
    }
    Ok(())
}

/// Starts the next invocation, unless one is open or the execution ended.
fn start_invocation(d: &mut Decider<'_, DurableFunction>) -> Result<(), Error> {
    let run = &*d.state;
    if run.operations.is_ended() || run.invocations.is_revoked() {
        return Ok(());
    }
    match run.invocations.start(d.ctx.entropy, d.ctx.now) {
        Ok(fact) => d.emit(EventKind::DurableInvocation { fact }),
        Err(_) => Ok(()), // one is open: it picks the change up when it ends
    }
}

/// Revokes every token (the running invocation's checkpoints fail).
fn revoke(d: &mut Decider<'_, DurableFunction>) -> Result<(), Error> {
    let fact = d.state.invocations.revoke(d.ctx.now);
    d.emit(EventKind::DurableInvocation { fact })
}

/// `StopDurableExecution`: `STOPPED` at once, tokens revoked.
fn stop(d: &mut Decider<'_, DurableFunction>, error: Option<ErrorObject>) -> Result<(), Error> {
    let Some(fact) = d.state.operations.stop(error.clone(), d.ctx.now) else {
        return Err(d.already_finished());
    };
    record_op(d, fact)?;
    revoke(d)?;
    let info = error_info(error.as_ref(), crate::error_name::CANCELLED);
    d.finish(Status::Cancelled, Some(info), None)
}
