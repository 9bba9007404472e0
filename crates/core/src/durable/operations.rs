//! [`Operations`]: the operations of one durable execution, in creation
//! order (EXECUTION first), with the checkpoint decision
//! ([`Operations::apply_checkpoint`], the rules of the table below), the
//! fold of one recorded fact ([`Operations::apply`]) and timers firing
//! ([`Operations::fire_timer`]).
//!
//! The transitions (AWS Lambda durable functions, `CheckpointDurableExecution`;
//! an illegal update is an `InvalidParameterValueException` and the whole
//! batch is refused):
//!
//! | Type           | Action  | new state                                                        | fact                  |
//! |----------------|---------|------------------------------------------------------------------|-----------------------|
//! | STEP           | START   | `STARTED`, keeps `Attempt` (0 at first)                           | StepStarted           |
//! | STEP           | SUCCEED | `SUCCEEDED`, `Result = Payload`, `EndTimestamp`                   | StepSucceeded         |
//! | STEP           | FAIL    | `FAILED`, `Error`                                                 | StepFailed (no retry) |
//! | STEP           | RETRY   | `PENDING`, `Attempt += 1`, `Error`, `NextAttemptTimestamp = now + NextAttemptDelaySeconds`; a timer sets `READY` | StepFailed (retry), later StepReady |
//! | WAIT           | START   | `STARTED`, `ScheduledEndTimestamp = now + WaitSeconds`; a timer sets `SUCCEEDED` | WaitStarted, later WaitSucceeded |
//! | WAIT           | CANCEL  | `CANCELLED`                                                       | WaitCancelled         |
//! | CALLBACK       | START   | `STARTED`, a `CallbackId` minted from the caller's entropy        | CallbackStarted       |
//! | CHAINED_INVOKE | START   | `STARTED` (the target is called after the invocation ends)        | ChainedInvokeStarted  |
//! | CHAINED_INVOKE | other   | refused: "Invalid action for CHAINED_INVOKE operation."          |                       |
//! | CONTEXT        | START / SUCCEED / FAIL | `STARTED` / `SUCCEEDED` (`Result`, `ReplayChildren`) / `FAILED` | ContextStarted/Succeeded/Failed |
//! | EXECUTION      | SUCCEED / FAIL | ends the execution (the checkpoint answer then carries no token) | ExecutionSucceeded/Failed |
//!
//! From outside a checkpoint, the execution times out
//! ([`Operations::time_out`], `TIMED_OUT`) or is stopped
//! ([`Operations::stop`], `STOPPED`); operations still open stay as they
//! are (no fact closes them), and nothing is accepted afterwards.
//!
//! Also refused: SUCCEED/FAIL/RETRY/CANCEL of an unknown operation, any
//! update of an existing operation with another type, name or parent, any
//! update of a finished operation or under a finished (or unknown) parent,
//! and anything once the EXECUTION operation has ended. A START of an
//! operation that exists and is not finished is accepted: a STEP starts
//! again (after a retry, or replayed after a lost invocation); any other
//! type is left as it is (the SDK re-sends START when an answer lacked it).

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;

use super::callback::CallbackWatch;
use super::event::{
    CallbackOutcome, InvokeOutcome, InvokeTarget, OpHeader, OperationEvent, StepRetry, Timer,
};
use super::model::{
    CallbackDetails, ContextDetails, Details, ErrorObject, ExecutionDetails, Operation,
    OperationAction, OperationStatus, OperationType, OperationUpdate, StepDetails, WaitDetails,
};
use crate::event::Millis;

/// The longest wait or retry delay the model allows (366 days).
pub const MAX_DURATION_SECONDS: u64 = 31_622_400;

/// The largest `Payload` of one update the model allows (6 MiB).
pub const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;

/// Why a checkpoint (or one of its updates) was refused. Every refusal is
/// answered as `InvalidParameterValueException` with `message`; `code` is
/// stable for tests and logs; `update` is the index of the offending
/// update in the batch, if one is to blame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
    pub update: Option<usize>,
}

impl Refusal {
    pub(crate) fn new(code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            message: message.into(),
            update: None,
        }
    }

    fn at(mut self, index: usize) -> Refusal {
        self.update = Some(index);
        self
    }
}

/// How the execution ended: as its EXECUTION update said, or timed out or
/// stopped from outside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Succeeded(Option<String>),
    Failed(Option<ErrorObject>),
    /// Its `ExecutionTimeout` passed.
    TimedOut(Option<ErrorObject>),
    /// `StopDurableExecution` stopped it.
    Stopped(Option<ErrorObject>),
}

/// What an accepted checkpoint decided: the facts to record (in order),
/// every operation it touched in its new state (creation order; the
/// response's `NewExecutionState.Operations` must hold all of them), the
/// timers to arm, and whether it ended the execution.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub events: Vec<OperationEvent>,
    pub operations: Vec<Operation>,
    pub timers: Vec<Timer>,
    pub execution_ended: bool,
}

/// Why a chained invoke's target cannot be called, given its operation id
/// and target: the error it fails with, or `None` when it resolves
/// ([`Operations::apply_checkpoint_resolving`]).
pub type Unresolvable<'a> = dyn Fn(&str, &InvokeTarget) -> Option<ErrorObject> + 'a;

/// The operations of one durable execution.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Operations {
    ops: Vec<Operation>,
    index: BTreeMap<String, usize>,
    outcome: Option<Outcome>,
    /// What each chained invoke calls (not part of AWS's `Operation`).
    targets: BTreeMap<String, InvokeTarget>,
    /// Callback id → operation id.
    callback_ids: BTreeMap<String, String>,
    /// Each callback's clocks, by operation id.
    watches: BTreeMap<String, CallbackWatch>,
}

impl Operations {
    /// Every operation in creation order, EXECUTION first.
    pub fn iter(&self) -> impl Iterator<Item = &Operation> {
        self.ops.iter()
    }

    /// The number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether there is none (not started).
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// One operation by id.
    pub fn get(&self, id: &str) -> Option<&Operation> {
        self.index.get(id).map(|&i| &self.ops[i])
    }

    /// The EXECUTION operation, once started.
    pub fn execution(&self) -> Option<&Operation> {
        self.ops.first()
    }

    /// Whether the EXECUTION operation has ended.
    pub fn is_ended(&self) -> bool {
        self.execution().is_some_and(|e| e.status.is_terminal())
    }

    /// How the execution ended, if it did.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    /// The operation a callback id names.
    pub fn callback_op(&self, callback_id: &str) -> Option<&str> {
        self.callback_ids.get(callback_id).map(String::as_str)
    }

    /// A callback's clocks.
    pub fn callback_watch(&self, id: &str) -> Option<&CallbackWatch> {
        self.watches.get(id)
    }

    /// What a chained invoke calls.
    pub fn invoke_target(&self, id: &str) -> Option<&InvokeTarget> {
        self.targets.get(id)
    }

    /// The chained invokes started and not ended, in creation order: the
    /// calls to make when the invocation that started them ends, and again
    /// after a restart (at least once; the idempotency key is the same).
    pub fn invokes_to_dispatch(&self) -> Vec<(&str, &InvokeTarget)> {
        if self.is_ended() {
            return Vec::new();
        }
        self.ops
            .iter()
            .filter(|op| {
                op.op_type() == OperationType::ChainedInvoke
                    && op.status == OperationStatus::Started
            })
            .filter_map(|op| Some((op.id.as_str(), self.targets.get(&op.id)?)))
            .collect()
    }

    /// A chained invoke's call ended: the fact, or `None` if it does not
    /// fit (no such chained invoke, already ended — a call made again after
    /// a restart answers twice —, or the execution is over).
    pub fn end_chained_invoke(
        &self,
        id: &str,
        outcome: InvokeOutcome,
        now: Millis,
    ) -> Option<OperationEvent> {
        let op = self.get(id)?;
        let open = op.op_type() == OperationType::ChainedInvoke
            && op.status == OperationStatus::Started
            && !self.is_ended();
        open.then(|| OperationEvent::ChainedInvokeEnded {
            id: op.id.clone(),
            outcome,
            at: now,
        })
    }

    /// Decides one checkpoint's `Updates`: validates every update in order
    /// (each sees the ones before it, so `START` then `SUCCEED` of one step
    /// in one batch is fine) and changes nothing: on success the caller
    /// records [`Applied::events`] and folds each with [`Self::apply`]; on
    /// the first illegal update the whole batch is refused. `entropy` mints
    /// callback ids.
    pub fn apply_checkpoint(
        &self,
        updates: &[OperationUpdate],
        now: Millis,
        entropy: u64,
    ) -> Result<Applied, Refusal> {
        self.decide_batch(updates, now, entropy, None)
    }

    /// [`Self::apply_checkpoint`], resolving each chained invoke it starts
    /// at once: when `unresolvable(operation id, target)` gives an error
    /// (e.g. `|id, t| super::resolve_target(t, exec, id, hosted, map).err()`),
    /// the same batch records the invoke ended `FAILED` with it, so the
    /// checkpoint's answer already shows it failed (as the spec allows) and
    /// it is never dispatched.
    pub fn apply_checkpoint_resolving(
        &self,
        updates: &[OperationUpdate],
        now: Millis,
        entropy: u64,
        unresolvable: &Unresolvable<'_>,
    ) -> Result<Applied, Refusal> {
        self.decide_batch(updates, now, entropy, Some(unresolvable))
    }

    fn decide_batch(
        &self,
        updates: &[OperationUpdate],
        now: Millis,
        entropy: u64,
        unresolvable: Option<&Unresolvable<'_>>,
    ) -> Result<Applied, Refusal> {
        let mut work = self.clone();
        let mut events = Vec::new();
        let mut touched = BTreeSet::new();
        for (i, update) in updates.iter().enumerate() {
            let nonce = mix(entropy.wrapping_add((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)));
            let (id, event) = work.decide(update, now, nonce).map_err(|r| r.at(i))?;
            if let Some(event) = event {
                work.apply(&event)
                    .map_err(|e| Refusal::new("illegal_transition", e.to_string()).at(i))?;
                let failed = match (&event, unresolvable) {
                    (OperationEvent::ChainedInvokeStarted { op, .. }, Some(check)) => work
                        .invoke_target(&op.id)
                        .and_then(|t| check(&op.id, t))
                        .and_then(|error| {
                            work.end_chained_invoke(&op.id, InvokeOutcome::Failed { error }, now)
                        }),
                    _ => None,
                };
                events.push(event);
                if let Some(failed) = failed {
                    work.apply(&failed)
                        .map_err(|e| Refusal::new("illegal_transition", e.to_string()).at(i))?;
                    events.push(failed);
                }
            }
            touched.insert(id);
        }
        let timers = events.iter().flat_map(|e| work.timers_of(e)).collect();
        let operations = work
            .ops
            .iter()
            .filter(|op| touched.contains(&op.id))
            .cloned()
            .collect();
        Ok(Applied {
            events,
            operations,
            timers,
            execution_ended: work.is_ended(),
        })
    }

    /// The execution's `ExecutionTimeout` passed at `now`: the
    /// `ExecutionTimedOut` fact, or `None` if it has already ended (or not
    /// started). The operations still open are left as they are (the
    /// history has no fact closing them); once it is folded nothing
    /// changes any more: checkpoints are refused, timers are stale,
    /// callbacks closed, chained invokes neither called nor ended. The
    /// host also revokes the running invocation's token
    /// ([`super::Invocations::revoke`]).
    pub fn time_out(&self, error: Option<ErrorObject>, now: Millis) -> Option<OperationEvent> {
        let id = self.execution().filter(|_| !self.is_ended())?.id.clone();
        Some(OperationEvent::ExecutionTimedOut { id, error, at: now })
    }

    /// `StopDurableExecution` with its body's `error`: the
    /// `ExecutionStopped` fact, or `None` if the execution has already
    /// ended (or not started). As with [`Self::time_out`], open operations
    /// stay as they are and nothing changes afterwards.
    pub fn stop(&self, error: Option<ErrorObject>, now: Millis) -> Option<OperationEvent> {
        let id = self.execution().filter(|_| !self.is_ended())?.id.clone();
        Some(OperationEvent::ExecutionStopped { id, error, at: now })
    }

    /// A cancel reaches the code (Sagaflow's cancel, not AWS's stop): the
    /// facts that end, with `error`, every open operation the code waits on
    /// and that only the service would end — a wait, a step waiting for its
    /// next attempt (a `wait_for_condition` too), a callback — so that the
    /// code, invoked again, sees them fail and compensates. Chained invokes
    /// are left to end: their target may have acted, and its answer is what
    /// an undo is built from. Empty if there is none (or it has ended).
    pub fn cancel_waiting(&self, error: &ErrorObject, now: Millis) -> Vec<OperationEvent> {
        if self.is_ended() {
            return Vec::new();
        }
        self.iter()
            .filter_map(|op| {
                let id = op.id.clone();
                match (&op.details, op.status) {
                    (Details::Wait(_), OperationStatus::Started) => {
                        Some(OperationEvent::WaitCancelled { id, at: now })
                    }
                    (Details::Step(_), OperationStatus::Pending) => {
                        Some(OperationEvent::StepFailed {
                            id,
                            error: Some(error.clone()),
                            retry: None,
                            at: now,
                        })
                    }
                    (Details::Callback(_), OperationStatus::Started) => {
                        Some(OperationEvent::CallbackEnded {
                            id,
                            outcome: CallbackOutcome::Failed {
                                error: error.clone(),
                            },
                            at: now,
                        })
                    }
                    _ => None,
                }
            })
            .collect()
    }

    /// Whether something the service ends is open, so that a suspended
    /// code will be invoked again: a wait, a step waiting for (or due for)
    /// its next attempt, a callback, a chained invoke.
    pub fn can_wake(&self) -> bool {
        self.iter().any(|op| {
            matches!(
                (&op.details, op.status),
                (Details::Wait(_), OperationStatus::Started)
                    | (
                        Details::Step(_),
                        OperationStatus::Pending | OperationStatus::Ready
                    )
                    | (Details::Callback(_), OperationStatus::Started)
                    | (Details::ChainedInvoke(_), OperationStatus::Started)
            )
        })
    }

    /// A timer fired at `now`: the fact it brings, or `None` if it is stale
    /// (the wait was cancelled, the step started again, the execution
    /// ended) or early.
    pub fn fire_timer(&self, op_id: &str, now: Millis) -> Option<OperationEvent> {
        if self.is_ended() {
            return None;
        }
        let op = self.get(op_id)?;
        let id = op.id.clone();
        match (&op.details, op.status) {
            (Details::Wait(w), OperationStatus::Started)
                if w.scheduled_end_timestamp.is_some_and(|end| end <= now) =>
            {
                Some(OperationEvent::WaitSucceeded { id, at: now })
            }
            (Details::Step(s), OperationStatus::Pending)
                if s.next_attempt_timestamp.is_some_and(|due| due <= now) =>
            {
                Some(OperationEvent::StepReady { id, at: now })
            }
            (Details::Callback(_), OperationStatus::Started) => self.fire_callback_timer(&id, now),
            _ => None,
        }
    }

    /// Decides one update against the state so far: the id of the
    /// operation it touches and the fact it records (`None`: a START of an
    /// operation that is already there, which changes nothing).
    fn decide(
        &self,
        u: &OperationUpdate,
        now: Millis,
        nonce: u64,
    ) -> Result<(String, Option<OperationEvent>), Refusal> {
        let Some(execution) = self.execution() else {
            return Err(Refusal::new(
                "not_started",
                "The durable execution has not started.",
            ));
        };
        if execution.status.is_terminal() {
            return Err(Refusal::new(
                "execution_ended",
                "The durable execution has already completed.",
            ));
        }
        check_id(&u.id)?;
        if u.payload
            .as_ref()
            .is_some_and(|p| p.len() > MAX_PAYLOAD_BYTES)
        {
            return Err(Refusal::new(
                "payload_too_large",
                format!("Payload must be at most {MAX_PAYLOAD_BYTES} bytes."),
            ));
        }
        if u.op_type == OperationType::Execution {
            return decide_execution(&execution.id, u, now);
        }
        if !action_allowed(u.op_type, u.action) {
            return Err(Refusal::new(
                "invalid_action",
                format!("Invalid action for {} operation.", u.op_type),
            ));
        }
        match self.get(&u.id) {
            Some(op) => self.decide_existing(op, u, now),
            None => self.decide_new(u, now, nonce),
        }
    }

    /// A chained invoke started again: the warning fact if the replay sent
    /// another function or payload than was recorded.
    fn diverged(&self, id: &str, u: &OperationUpdate, now: Millis) -> Option<OperationEvent> {
        let target = self.targets.get(id)?;
        let sent_function = u.chained_invoke_options.as_ref().map(|o| &o.function_name);
        let (field, recorded, sent) = if sent_function.is_some_and(|f| *f != target.function_name) {
            ("FunctionName", Some(&target.function_name), sent_function)
        } else if u.payload != target.payload {
            ("Payload", target.payload.as_ref(), u.payload.as_ref())
        } else {
            return None;
        };
        let digest = |v: Option<&String>| {
            crate::document::digest(&v.map_or(serde_json::Value::Null, |s| s.as_str().into()))
        };
        Some(OperationEvent::ReplayDiverged {
            id: id.to_string(),
            field: field.to_string(),
            recorded: digest(recorded),
            sent: digest(sent),
            at: now,
        })
    }

    /// An update of an operation that exists.
    fn decide_existing(
        &self,
        op: &Operation,
        u: &OperationUpdate,
        now: Millis,
    ) -> Result<(String, Option<OperationEvent>), Refusal> {
        let id = op.id.clone();
        if op.op_type() != u.op_type {
            return Err(Refusal::new(
                "type_mismatch",
                format!(
                    "Operation {id} is a {} operation, not {}.",
                    op.op_type(),
                    u.op_type
                ),
            ));
        }
        if u.name.is_some() && u.name != op.name {
            return Err(Refusal::new(
                "name_mismatch",
                format!("Operation {id} was started with another name."),
            ));
        }
        if u.parent_id.is_some() && u.parent_id != op.parent_id {
            return Err(Refusal::new(
                "parent_mismatch",
                format!("Operation {id} was started under another parent."),
            ));
        }
        self.check_parent(op.parent_id.as_deref())?;
        if op.status.is_terminal() {
            return Err(Refusal::new(
                "operation_ended",
                format!("Operation {id} has already completed."),
            ));
        }
        let event = match (u.op_type, u.action) {
            (OperationType::Step, OperationAction::Start) => Some(OperationEvent::StepStarted {
                op: header(op),
                at: now,
            }),
            (OperationType::ChainedInvoke, OperationAction::Start) => self.diverged(&id, u, now),
            (_, OperationAction::Start) => None,
            (OperationType::Step, _) => Some(decide_step_end(id.clone(), u, now)?),
            (OperationType::Wait, OperationAction::Cancel) => Some(OperationEvent::WaitCancelled {
                id: id.clone(),
                at: now,
            }),
            (OperationType::Context, OperationAction::Succeed) => {
                Some(OperationEvent::ContextSucceeded {
                    id: id.clone(),
                    result: u.payload.clone(),
                    replay_children: u.context_options.as_ref().and_then(|o| o.replay_children),
                    at: now,
                })
            }
            (OperationType::Context, OperationAction::Fail) => {
                Some(OperationEvent::ContextFailed {
                    id: id.clone(),
                    error: u.error.clone(),
                    at: now,
                })
            }
            (t, _) => {
                return Err(Refusal::new(
                    "invalid_action",
                    format!("Invalid action for {t} operation."),
                ))
            }
        };
        Ok((id, event))
    }

    /// An update of an operation that does not exist yet: only a START.
    fn decide_new(
        &self,
        u: &OperationUpdate,
        now: Millis,
        nonce: u64,
    ) -> Result<(String, Option<OperationEvent>), Refusal> {
        if u.action != OperationAction::Start {
            return Err(Refusal::new(
                "unknown_operation",
                format!("Operation {} does not exist.", u.id),
            ));
        }
        self.check_parent(u.parent_id.as_deref())?;
        let op = OpHeader {
            id: u.id.clone(),
            parent_id: u.parent_id.clone(),
            name: u.name.clone(),
            sub_type: u.sub_type.clone(),
        };
        let event = match u.op_type {
            OperationType::Step => OperationEvent::StepStarted { op, at: now },
            OperationType::Context => OperationEvent::ContextStarted { op, at: now },
            OperationType::Wait => {
                let seconds = u.wait_options.as_ref().and_then(|w| w.wait_seconds);
                let seconds = check_duration(seconds, "WaitOptions.WaitSeconds")?;
                OperationEvent::WaitStarted {
                    op,
                    duration_seconds: seconds,
                    scheduled_end: now.saturating_add(seconds.saturating_mul(1000)),
                    at: now,
                }
            }
            OperationType::Callback => {
                let options = u.callback_options.clone().unwrap_or_default();
                OperationEvent::CallbackStarted {
                    callback_id: self.callback_id(&op.id, nonce),
                    op,
                    timeout_seconds: options.timeout_seconds,
                    heartbeat_timeout_seconds: options.heartbeat_timeout_seconds,
                    at: now,
                }
            }
            OperationType::ChainedInvoke => {
                let options = u.chained_invoke_options.clone().unwrap_or_default();
                if options.function_name.is_empty() {
                    return Err(Refusal::new(
                        "missing_function_name",
                        "ChainedInvokeOptions.FunctionName is required.",
                    ));
                }
                OperationEvent::ChainedInvokeStarted {
                    op,
                    function_name: options.function_name,
                    tenant_id: options.tenant_id,
                    payload: u.payload.clone(),
                    // The runtime fills it in (see `run::Input::Checkpoint`).
                    dispatch: Default::default(),
                    at: now,
                }
            }
            OperationType::Execution => {
                return Err(Refusal::new(
                    "invalid_action",
                    "Invalid action for EXECUTION operation.",
                ))
            }
        };
        Ok((u.id.clone(), Some(event)))
    }

    /// A parent, if named, must exist and not be finished.
    fn check_parent(&self, parent: Option<&str>) -> Result<(), Refusal> {
        let Some(parent) = parent else { return Ok(()) };
        match self.get(parent) {
            None => Err(Refusal::new(
                "unknown_parent",
                format!("Parent operation {parent} does not exist."),
            )),
            Some(p) if p.status.is_terminal() => Err(Refusal::new(
                "parent_ended",
                format!("Parent operation {parent} has already completed."),
            )),
            Some(_) => Ok(()),
        }
    }

    /// A callback id: names the execution and the operation, plus a nonce
    /// so it cannot be guessed. Fits AWS's `[A-Za-z0-9+/]+={0,2}`.
    fn callback_id(&self, op_id: &str, nonce: u64) -> String {
        let execution = self.execution().map(|e| e.id.as_str()).unwrap_or_default();
        let route = base64::engine::general_purpose::STANDARD_NO_PAD
            .encode(format!("{execution}\n{op_id}"));
        format!("{route}/{nonce:016x}")
    }
}

impl Operations {
    /// Folds one recorded fact in: the only way operations change, live
    /// and in replay. A fact the state does not allow (a corrupt or foreign
    /// history) is an `IllegalTransition` and changes nothing.
    pub fn apply(&mut self, event: &OperationEvent) -> Result<(), crate::Error> {
        let done = self.fold(event);
        done.ok_or_else(|| crate::Error::IllegalTransition {
            event: format!("{:?} of operation {}", event.op_type(), event.op_id()),
            state: self.describe(event.op_id()),
        })
    }

    /// [`Self::apply`], `None` (and nothing changed) when not allowed.
    fn fold(&mut self, event: &OperationEvent) -> Option<()> {
        use OperationEvent as E;
        if let E::ExecutionStarted {
            id,
            input_payload,
            at,
        } = event
        {
            if !self.ops.is_empty() {
                return None;
            }
            let details = Details::Execution(ExecutionDetails {
                input_payload: input_payload.clone(),
            });
            self.push(header_of(id), details, *at);
            return Some(());
        }
        if self.execution().is_none() || self.is_ended() {
            return None;
        }
        match event {
            // A warning: nothing changes (the operation must exist).
            E::ReplayDiverged { id, .. } => self.get(id).map(|_| ()),
            E::StepStarted { op, at } => self.start_step(op, *at),
            E::WaitStarted {
                op,
                scheduled_end,
                at,
                ..
            } => {
                let details = Details::Wait(WaitDetails {
                    scheduled_end_timestamp: Some(*scheduled_end),
                });
                self.create(op, details, *at)
            }
            E::CallbackStarted {
                op,
                callback_id,
                timeout_seconds,
                heartbeat_timeout_seconds,
                at,
            } => {
                if self.callback_ids.contains_key(callback_id) {
                    return None;
                }
                let details = Details::Callback(CallbackDetails {
                    callback_id: Some(callback_id.clone()),
                    ..Default::default()
                });
                self.create(op, details, *at)?;
                self.callback_ids.insert(callback_id.clone(), op.id.clone());
                let watch = CallbackWatch {
                    timeout_seconds: timeout_seconds.unwrap_or(0),
                    heartbeat_timeout_seconds: heartbeat_timeout_seconds.unwrap_or(0),
                    started_at: *at,
                    last_heartbeat: *at,
                };
                self.watches.insert(op.id.clone(), watch);
                Some(())
            }
            E::ChainedInvokeStarted {
                op,
                function_name,
                tenant_id,
                payload,
                at,
                ..
            } => {
                self.create(op, Details::empty(OperationType::ChainedInvoke), *at)?;
                let target = InvokeTarget {
                    function_name: function_name.clone(),
                    tenant_id: tenant_id.clone(),
                    payload: payload.clone(),
                };
                self.targets.insert(op.id.clone(), target);
                Some(())
            }
            E::ContextStarted { op, at } => {
                self.create(op, Details::empty(OperationType::Context), *at)
            }
            _ => self.change(event),
        }
    }

    /// Folds a fact about an operation that exists.
    fn change(&mut self, event: &OperationEvent) -> Option<()> {
        use OperationEvent as E;
        let &i = self.index.get(event.op_id())?;
        let op = &mut self.ops[i];
        if op.op_type() != event.op_type() || op.status.is_terminal() {
            return None;
        }
        match event {
            E::ExecutionSucceeded { result, at, .. } => {
                end(op, OperationStatus::Succeeded, *at);
                self.outcome = Some(Outcome::Succeeded(result.clone()));
                Some(())
            }
            E::ExecutionFailed { error, at, .. } => {
                end(op, OperationStatus::Failed, *at);
                self.outcome = Some(Outcome::Failed(error.clone()));
                Some(())
            }
            E::ExecutionTimedOut { error, at, .. } => {
                end(op, OperationStatus::TimedOut, *at);
                self.outcome = Some(Outcome::TimedOut(error.clone()));
                Some(())
            }
            E::ExecutionStopped { error, at, .. } => {
                end(op, OperationStatus::Stopped, *at);
                self.outcome = Some(Outcome::Stopped(error.clone()));
                Some(())
            }
            E::CallbackHeartbeat { id, at } => {
                self.watches.get_mut(id)?.last_heartbeat = *at;
                Some(())
            }
            _ => change_op(op, event),
        }
    }

    /// A step starts: a new one, or an existing unfinished one again.
    fn start_step(&mut self, op: &OpHeader, at: Millis) -> Option<()> {
        match self.index.get(&op.id) {
            Some(&i) => {
                let existing = &mut self.ops[i];
                if existing.op_type() != OperationType::Step || existing.status.is_terminal() {
                    return None;
                }
                existing.status = OperationStatus::Started;
                Some(())
            }
            None => self.create(op, Details::Step(StepDetails::default()), at),
        }
    }

    /// A new operation under a live parent (or none).
    fn create(&mut self, op: &OpHeader, details: Details, at: Millis) -> Option<()> {
        if self.index.contains_key(&op.id) {
            return None;
        }
        if let Some(parent) = &op.parent_id {
            if self.get(parent)?.status.is_terminal() {
                return None;
            }
        }
        self.push(op.clone(), details, at);
        Some(())
    }

    fn push(&mut self, op: OpHeader, details: Details, at: Millis) {
        self.index.insert(op.id.clone(), self.ops.len());
        self.ops.push(Operation {
            id: op.id,
            parent_id: op.parent_id,
            name: op.name,
            sub_type: op.sub_type,
            status: OperationStatus::Started,
            start_timestamp: at,
            end_timestamp: None,
            details,
        });
    }

    /// The timers a fact arms (read after it was folded in).
    pub(crate) fn timers_of(&self, event: &OperationEvent) -> Vec<Timer> {
        match event {
            OperationEvent::WaitStarted {
                op, scheduled_end, ..
            } => vec![Timer::WaitEnd {
                id: op.id.clone(),
                at: *scheduled_end,
            }],
            OperationEvent::StepFailed {
                id, retry: Some(r), ..
            } => vec![Timer::RetryDue {
                id: id.clone(),
                at: r.next_attempt_at,
            }],
            OperationEvent::CallbackStarted { op, .. } => self
                .callback_watch(&op.id)
                .map(|w| w.timers(&op.id))
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    fn describe(&self, id: &str) -> String {
        match self.get(id) {
            Some(op) => format!("{} {:?}", op.op_type(), op.status),
            None if self.is_ended() => "execution ended".into(),
            None => "no such operation".into(),
        }
    }
}

/// EXECUTION accepts SUCCEED and FAIL only, and always means the
/// execution's own operation: the SDK may send another `Id` (a large
/// result goes out as `execution-result-<ms>`).
fn decide_execution(
    execution_id: &str,
    u: &OperationUpdate,
    now: Millis,
) -> Result<(String, Option<OperationEvent>), Refusal> {
    let id = execution_id.to_string();
    let event = match u.action {
        OperationAction::Succeed => OperationEvent::ExecutionSucceeded {
            id: id.clone(),
            result: u.payload.clone(),
            at: now,
        },
        OperationAction::Fail => OperationEvent::ExecutionFailed {
            id: id.clone(),
            error: u.error.clone(),
            at: now,
        },
        _ => {
            return Err(Refusal::new(
                "invalid_action",
                "Invalid action for EXECUTION operation.",
            ))
        }
    };
    Ok((id, Some(event)))
}

/// SUCCEED, FAIL or RETRY of a step.
fn decide_step_end(
    id: String,
    u: &OperationUpdate,
    now: Millis,
) -> Result<OperationEvent, Refusal> {
    Ok(match u.action {
        OperationAction::Succeed => OperationEvent::StepSucceeded {
            id,
            result: u.payload.clone(),
            at: now,
        },
        OperationAction::Fail => OperationEvent::StepFailed {
            id,
            error: u.error.clone(),
            retry: None,
            at: now,
        },
        _ => {
            let delay = u
                .step_options
                .as_ref()
                .and_then(|s| s.next_attempt_delay_seconds);
            // The SDK always sends a delay; without one the next attempt is due at once.
            let delay = match delay {
                Some(d) => check_duration(Some(d), "StepOptions.NextAttemptDelaySeconds")?,
                None => 0,
            };
            OperationEvent::StepFailed {
                id,
                error: u.error.clone(),
                retry: Some(StepRetry {
                    delay_seconds: delay,
                    next_attempt_at: now.saturating_add(delay.saturating_mul(1000)),
                    result: u.payload.clone(),
                }),
                at: now,
            }
        }
    })
}

/// Which actions a type accepts at all (EXECUTION is decided apart).
fn action_allowed(t: OperationType, a: OperationAction) -> bool {
    use OperationAction as A;
    match t {
        OperationType::Step => matches!(a, A::Start | A::Succeed | A::Fail | A::Retry),
        OperationType::Wait => matches!(a, A::Start | A::Cancel),
        OperationType::Callback | OperationType::ChainedInvoke => a == A::Start,
        OperationType::Context => matches!(a, A::Start | A::Succeed | A::Fail),
        OperationType::Execution => matches!(a, A::Succeed | A::Fail),
    }
}

/// An operation id: 1 to 64 of `[a-zA-Z0-9-_]`.
fn check_id(id: &str) -> Result<(), Refusal> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Refusal::new(
            "invalid_operation_id",
            "Operation Id must be 1 to 64 characters of [a-zA-Z0-9-_].",
        ))
    }
}

/// A duration in seconds, 1 to [`MAX_DURATION_SECONDS`].
fn check_duration(seconds: Option<u64>, field: &str) -> Result<u64, Refusal> {
    match seconds {
        Some(s) if (1..=MAX_DURATION_SECONDS).contains(&s) => Ok(s),
        _ => Err(Refusal::new(
            "invalid_duration",
            format!("{field} must be between 1 and {MAX_DURATION_SECONDS}."),
        )),
    }
}

/// Folds a fact into the unfinished operation it is about (of its type):
/// `None`, and nothing changed, if the fact does not fit its status.
fn change_op(op: &mut Operation, event: &OperationEvent) -> Option<()> {
    use OperationEvent as E;
    use OperationStatus as S;
    match (event, &mut op.details) {
        (E::StepSucceeded { result, at, .. }, Details::Step(s)) => {
            s.result = result.clone();
            end(op, S::Succeeded, *at);
        }
        (
            E::StepFailed {
                error,
                retry: None,
                at,
                ..
            },
            Details::Step(s),
        ) => {
            s.error = error.clone();
            end(op, S::Failed, *at);
        }
        (
            E::StepFailed {
                error,
                retry: Some(r),
                ..
            },
            Details::Step(s),
        ) => {
            s.error = error.clone();
            if r.result.is_some() {
                s.result = r.result.clone();
            }
            s.attempt = s.attempt.saturating_add(1);
            s.next_attempt_timestamp = Some(r.next_attempt_at);
            op.status = S::Pending;
        }
        (E::StepReady { .. }, Details::Step(_)) if op.status == S::Pending => {
            op.status = S::Ready;
        }
        (E::WaitSucceeded { at, .. }, Details::Wait(_)) if op.status == S::Started => {
            end(op, S::Succeeded, *at);
        }
        (E::WaitCancelled { at, .. }, Details::Wait(_)) if op.status == S::Started => {
            end(op, S::Cancelled, *at);
        }
        (
            E::ContextSucceeded {
                result,
                replay_children,
                at,
                ..
            },
            Details::Context(c),
        ) => {
            *c = ContextDetails {
                result: result.clone(),
                error: None,
                replay_children: *replay_children,
            };
            end(op, S::Succeeded, *at);
        }
        (E::CallbackEnded { outcome, at, .. }, Details::Callback(d)) => {
            match outcome {
                CallbackOutcome::Succeeded { result } => d.result = result.clone(),
                CallbackOutcome::Failed { error } | CallbackOutcome::TimedOut { error } => {
                    d.error = Some(error.clone())
                }
            }
            end(op, outcome.status(), *at);
        }
        (E::ChainedInvokeEnded { outcome, at, .. }, Details::ChainedInvoke(d)) => {
            match outcome {
                InvokeOutcome::Succeeded { result } => d.result = result.clone(),
                InvokeOutcome::Failed { error }
                | InvokeOutcome::TimedOut { error }
                | InvokeOutcome::Stopped { error } => d.error = Some(error.clone()),
            }
            end(op, outcome.status(), *at);
        }
        (E::ContextFailed { error, at, .. }, Details::Context(c)) => {
            c.error = error.clone();
            end(op, S::Failed, *at);
        }
        _ => return None,
    }
    Some(())
}

fn header(op: &Operation) -> OpHeader {
    OpHeader {
        id: op.id.clone(),
        parent_id: op.parent_id.clone(),
        name: op.name.clone(),
        sub_type: op.sub_type.clone(),
    }
}

fn header_of(id: &str) -> OpHeader {
    OpHeader {
        id: id.to_string(),
        parent_id: None,
        name: None,
        sub_type: None,
    }
}

fn end(op: &mut Operation, status: OperationStatus, at: Millis) {
    op.status = status;
    op.end_timestamp = Some(at);
}

/// splitmix64: spreads one caller-supplied number over several nonces.
pub(crate) fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
