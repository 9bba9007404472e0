//! The facts a durable execution's operations record ([`OperationEvent`]),
//! in the past tense, and the timers a decision arms ([`Timer`]).
//!
//! A checkpoint is decided into these facts
//! ([`super::Operations::apply_checkpoint`]); folding them
//! ([`super::Operations::apply`]) is the only way the operations change,
//! live and in replay alike. They carry everything the fold needs (times,
//! minted callback ids), so replaying them needs no clock and no entropy.

use serde::{Deserialize, Serialize};

use super::model::{ErrorObject, OperationStatus, OperationType};
use crate::event::Millis;

/// What identifies a new operation: its id and the fields the SDK checks
/// on replay (type aside, which the event's kind gives).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpHeader {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_type: Option<String>,
}

/// A step's retry: when the next attempt is due and the delay asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRetry {
    pub delay_seconds: u64,
    pub next_attempt_at: Millis,
    /// The retry's `Payload`: the state a condition (`wait_for_condition`)
    /// carries to its next attempt, kept as the step's `Result`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
}

/// What a chained invoke's target resolved to when it started, as AWS's
/// `ChainedInvokeStartedDetails` show it: the version the hosted function
/// runs (`ExecutedVersion`) and, for a durable function, the ARN of the
/// child execution the call starts (`DurableExecutionArn`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct InvokeDispatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executed_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub durable_execution_arn: Option<String>,
}

/// One recorded fact about one operation. `at` is when it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OperationEvent {
    /// The execution began: its EXECUTION operation, `STARTED`.
    ExecutionStarted {
        id: String,
        input_payload: Option<String>,
        at: Millis,
    },
    ExecutionSucceeded {
        id: String,
        result: Option<String>,
        at: Millis,
    },
    ExecutionFailed {
        id: String,
        error: Option<ErrorObject>,
        at: Millis,
    },
    /// The execution's `ExecutionTimeout` passed: EXECUTION `TIMED_OUT`.
    /// Its open operations are left as they are; nothing changes after.
    ExecutionTimedOut {
        id: String,
        error: Option<ErrorObject>,
        at: Millis,
    },
    /// `StopDurableExecution` (its body's `Error`): EXECUTION `STOPPED`.
    /// Its open operations are left as they are; nothing changes after.
    ExecutionStopped {
        id: String,
        error: Option<ErrorObject>,
        at: Millis,
    },
    /// A step (new, or again after a retry) is `STARTED`.
    StepStarted {
        op: OpHeader,
        at: Millis,
    },
    StepSucceeded {
        id: String,
        result: Option<String>,
        at: Millis,
    },
    /// A step failed: for good (`retry: None`, `FAILED`) or to be retried
    /// (`PENDING` until `next_attempt_at`, then `READY`).
    StepFailed {
        id: String,
        error: Option<ErrorObject>,
        retry: Option<StepRetry>,
        at: Millis,
    },
    /// A retried step's next attempt is due.
    StepReady {
        id: String,
        at: Millis,
    },
    WaitStarted {
        op: OpHeader,
        duration_seconds: u64,
        scheduled_end: Millis,
        at: Millis,
    },
    WaitSucceeded {
        id: String,
        at: Millis,
    },
    WaitCancelled {
        id: String,
        at: Millis,
    },
    CallbackStarted {
        op: OpHeader,
        callback_id: String,
        timeout_seconds: Option<u64>,
        heartbeat_timeout_seconds: Option<u64>,
        at: Millis,
    },
    /// A chained invoke was asked for; the target is called after the
    /// invocation that asked for it ends.
    ChainedInvokeStarted {
        op: OpHeader,
        function_name: String,
        tenant_id: Option<String>,
        payload: Option<String>,
        /// Where the runtime resolved the target when the invoke started
        /// (AWS's `ChainedInvokeStartedDetails` show it); default for a
        /// participant and for facts recorded before it was kept.
        #[serde(flatten)]
        dispatch: InvokeDispatch,
        at: Millis,
    },
    /// A callback's heartbeat came (its heartbeat timeout starts again).
    CallbackHeartbeat {
        id: String,
        at: Millis,
    },
    /// A callback ended: completed through the API, or timed out.
    CallbackEnded {
        id: String,
        outcome: CallbackOutcome,
        at: Millis,
    },
    /// A chained invoke's call ended: its target answered, failed, timed
    /// out or was stopped.
    ChainedInvokeEnded {
        id: String,
        outcome: InvokeOutcome,
        at: Millis,
    },
    ContextStarted {
        op: OpHeader,
        at: Millis,
    },
    ContextSucceeded {
        id: String,
        result: Option<String>,
        replay_children: Option<bool>,
        at: Millis,
    },
    ContextFailed {
        id: String,
        error: Option<ErrorObject>,
        at: Millis,
    },
    /// A replay sent an operation again with another `field` than was
    /// recorded (a chained invoke's `Payload` or `FunctionName`): the code
    /// is not deterministic (a value made outside a step). Recorded as a
    /// warning; the operation keeps what was recorded first. The two values
    /// are kept as SHA-256 digests.
    ReplayDiverged {
        id: String,
        field: String,
        recorded: String,
        sent: String,
        at: Millis,
    },
}

impl OperationEvent {
    /// The id of the operation the fact is about.
    pub fn op_id(&self) -> &str {
        use OperationEvent as E;
        match self {
            E::StepStarted { op, .. }
            | E::WaitStarted { op, .. }
            | E::CallbackStarted { op, .. }
            | E::ChainedInvokeStarted { op, .. }
            | E::ContextStarted { op, .. } => &op.id,
            E::ExecutionStarted { id, .. }
            | E::ExecutionSucceeded { id, .. }
            | E::ExecutionFailed { id, .. }
            | E::ExecutionTimedOut { id, .. }
            | E::ExecutionStopped { id, .. }
            | E::StepSucceeded { id, .. }
            | E::StepFailed { id, .. }
            | E::StepReady { id, .. }
            | E::WaitSucceeded { id, .. }
            | E::WaitCancelled { id, .. }
            | E::ContextSucceeded { id, .. }
            | E::ContextFailed { id, .. }
            | E::ChainedInvokeEnded { id, .. }
            | E::CallbackHeartbeat { id, .. }
            | E::CallbackEnded { id, .. }
            | E::ReplayDiverged { id, .. } => id,
        }
    }

    /// The type of operation the fact is about.
    pub fn op_type(&self) -> OperationType {
        use OperationEvent as E;
        match self {
            E::ExecutionStarted { .. }
            | E::ExecutionSucceeded { .. }
            | E::ExecutionFailed { .. }
            | E::ExecutionTimedOut { .. }
            | E::ExecutionStopped { .. } => OperationType::Execution,
            E::StepStarted { .. }
            | E::StepSucceeded { .. }
            | E::StepFailed { .. }
            | E::StepReady { .. } => OperationType::Step,
            E::WaitStarted { .. } | E::WaitSucceeded { .. } | E::WaitCancelled { .. } => {
                OperationType::Wait
            }
            E::CallbackStarted { .. } | E::CallbackHeartbeat { .. } | E::CallbackEnded { .. } => {
                OperationType::Callback
            }
            E::ChainedInvokeStarted { .. }
            | E::ChainedInvokeEnded { .. }
            | E::ReplayDiverged { .. } => OperationType::ChainedInvoke,
            E::ContextStarted { .. } | E::ContextSucceeded { .. } | E::ContextFailed { .. } => {
                OperationType::Context
            }
        }
    }
}

/// How a chained invoke's call ended (what its target's answer maps to:
/// a function's response is `Succeeded` with the body, its error `Failed`
/// with the error verbatim, a durable child's TIMED_OUT/STOPPED the same).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InvokeOutcome {
    Succeeded { result: Option<String> },
    Failed { error: ErrorObject },
    TimedOut { error: ErrorObject },
    Stopped { error: ErrorObject },
}

impl InvokeOutcome {
    /// The operation status it leaves.
    pub fn status(&self) -> OperationStatus {
        match self {
            InvokeOutcome::Succeeded { .. } => OperationStatus::Succeeded,
            InvokeOutcome::Failed { .. } => OperationStatus::Failed,
            InvokeOutcome::TimedOut { .. } => OperationStatus::TimedOut,
            InvokeOutcome::Stopped { .. } => OperationStatus::Stopped,
        }
    }
}

/// How a callback ended: `SendDurableExecutionCallbackSuccess` (the raw
/// body is the result), `…Failure` (the error verbatim), or a timeout
/// (`Callback.Timeout` / `Callback.Heartbeat`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CallbackOutcome {
    Succeeded { result: Option<String> },
    Failed { error: ErrorObject },
    TimedOut { error: ErrorObject },
}

impl CallbackOutcome {
    /// The operation status it leaves.
    pub fn status(&self) -> OperationStatus {
        match self {
            CallbackOutcome::Succeeded { .. } => OperationStatus::Succeeded,
            CallbackOutcome::Failed { .. } => OperationStatus::Failed,
            CallbackOutcome::TimedOut { .. } => OperationStatus::TimedOut,
        }
    }
}

/// What a chained invoke calls: the target as named in the update and the
/// input (the update's `Payload`, JSON text as sent; `{}` when absent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvokeTarget {
    pub function_name: String,
    pub tenant_id: Option<String>,
    pub payload: Option<String>,
}

/// A durable timer a decision arms. When it fires, the runtime asks
/// [`super::Operations::fire_timer`] for the fact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Timer {
    /// A WAIT's scheduled end.
    WaitEnd { id: String, at: Millis },
    /// A retried STEP's next attempt.
    RetryDue { id: String, at: Millis },
    /// A CALLBACK's `TimeoutSeconds` after its start.
    CallbackTimeout { id: String, at: Millis },
    /// A CALLBACK's `HeartbeatTimeoutSeconds` after its start or last
    /// heartbeat (armed again by each heartbeat; an older one is stale).
    CallbackHeartbeat { id: String, at: Millis },
}

impl Timer {
    /// The operation the timer is for.
    pub fn op_id(&self) -> &str {
        match self {
            Timer::WaitEnd { id, .. }
            | Timer::RetryDue { id, .. }
            | Timer::CallbackTimeout { id, .. }
            | Timer::CallbackHeartbeat { id, .. } => id,
        }
    }

    /// When it fires.
    pub fn at(&self) -> Millis {
        match self {
            Timer::WaitEnd { at, .. }
            | Timer::RetryDue { at, .. }
            | Timer::CallbackTimeout { at, .. }
            | Timer::CallbackHeartbeat { at, .. } => *at,
        }
    }
}
