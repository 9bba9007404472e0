//! The shapes of AWS Lambda durable functions' operation model, as the
//! Python SDK sends and reads them: [`Operation`] (one entry of
//! `InitialExecutionState.Operations` / `NewExecutionState.Operations`) and
//! [`OperationUpdate`] (one entry of a `CheckpointDurableExecution` body's
//! `Updates`).
//!
//! Field names are AWS's PascalCase ones, checked against botocore's
//! `lambda/2015-03-31/service-2.json` (shapes `Operation`,
//! `OperationUpdate`, `ErrorObject`, `StepOptions`, `WaitOptions`,
//! `CallbackOptions`, `ChainedInvokeOptions`, `ContextOptions` and the
//! `*Details`). Unknown fields are ignored, so a newer SDK's extra members
//! (e.g. `ChainedInvokeOptions.XAmznTraceId`) do not break parsing.
//!
//! Timestamps are epoch **milliseconds** (integers): that is what the
//! invocation event carries. The public API answers in epoch seconds; that
//! conversion belongs to the API layer. Payloads, results and error data are
//! opaque JSON text the SDK produced; the service never looks inside.

use serde::{Deserialize, Serialize};

use crate::event::Millis;

/// `OperationType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OperationType {
    Execution,
    Context,
    Step,
    Wait,
    Callback,
    ChainedInvoke,
}

impl OperationType {
    /// The name AWS uses (`CHAINED_INVOKE`), as it appears in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            OperationType::Execution => "EXECUTION",
            OperationType::Context => "CONTEXT",
            OperationType::Step => "STEP",
            OperationType::Wait => "WAIT",
            OperationType::Callback => "CALLBACK",
            OperationType::ChainedInvoke => "CHAINED_INVOKE",
        }
    }
}

impl std::fmt::Display for OperationType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `OperationStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OperationStatus {
    Started,
    Pending,
    Ready,
    Succeeded,
    Failed,
    Cancelled,
    TimedOut,
    Stopped,
}

impl OperationStatus {
    /// Whether the operation is over: nothing may change it any more.
    pub fn is_terminal(self) -> bool {
        !matches!(
            self,
            OperationStatus::Started | OperationStatus::Pending | OperationStatus::Ready
        )
    }
}

/// `OperationAction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OperationAction {
    Start,
    Succeed,
    Fail,
    Retry,
    Cancel,
}

/// `ErrorObject`: kept verbatim as the SDK sent it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ErrorObject {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_trace: Option<Vec<String>>,
}

/// `ExecutionDetails`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExecutionDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_payload: Option<String>,
}

/// `StepDetails`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StepDetails {
    #[serde(default)]
    pub attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_timestamp: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorObject>,
}

/// `WaitDetails`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WaitDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_end_timestamp: Option<Millis>,
}

/// `CallbackDetails`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CallbackDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorObject>,
}

/// `ChainedInvokeDetails`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ChainedInvokeDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorObject>,
}

/// `ContextDetails`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContextDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorObject>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_children: Option<bool>,
}

/// The per-type part of an [`Operation`]: exactly one kind of details, and
/// the kind *is* the operation's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Details {
    Execution(ExecutionDetails),
    Context(ContextDetails),
    Step(StepDetails),
    Wait(WaitDetails),
    Callback(CallbackDetails),
    ChainedInvoke(ChainedInvokeDetails),
}

impl Details {
    /// The operation type these details belong to.
    pub fn op_type(&self) -> OperationType {
        match self {
            Details::Execution(_) => OperationType::Execution,
            Details::Context(_) => OperationType::Context,
            Details::Step(_) => OperationType::Step,
            Details::Wait(_) => OperationType::Wait,
            Details::Callback(_) => OperationType::Callback,
            Details::ChainedInvoke(_) => OperationType::ChainedInvoke,
        }
    }

    /// Empty details of a type.
    pub fn empty(op_type: OperationType) -> Details {
        match op_type {
            OperationType::Execution => Details::Execution(Default::default()),
            OperationType::Context => Details::Context(Default::default()),
            OperationType::Step => Details::Step(Default::default()),
            OperationType::Wait => Details::Wait(Default::default()),
            OperationType::Callback => Details::Callback(Default::default()),
            OperationType::ChainedInvoke => Details::ChainedInvoke(Default::default()),
        }
    }
}

/// `Operation`: one operation of a durable execution in its current state.
/// Serialized with AWS's field names; the details appear under the member
/// named after the type (`StepDetails`, `WaitDetails`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "OperationWire", into = "OperationWire")]
pub struct Operation {
    pub id: String,
    pub parent_id: Option<String>,
    pub name: Option<String>,
    pub sub_type: Option<String>,
    pub status: OperationStatus,
    pub start_timestamp: Millis,
    pub end_timestamp: Option<Millis>,
    pub details: Details,
}

impl Operation {
    /// The operation's type (that of its details).
    pub fn op_type(&self) -> OperationType {
        self.details.op_type()
    }
}

/// `Operation` as it is on the wire: a `Type` plus optional details of
/// every kind. Only the details matching `Type` are read.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct OperationWire {
    id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(rename = "Type")]
    op_type: OperationType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sub_type: Option<String>,
    start_timestamp: Millis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    end_timestamp: Option<Millis>,
    status: OperationStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    execution_details: Option<ExecutionDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    context_details: Option<ContextDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    step_details: Option<StepDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    wait_details: Option<WaitDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    callback_details: Option<CallbackDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    chained_invoke_details: Option<ChainedInvokeDetails>,
}

impl From<OperationWire> for Operation {
    fn from(w: OperationWire) -> Operation {
        let details = match w.op_type {
            OperationType::Execution => Details::Execution(w.execution_details.unwrap_or_default()),
            OperationType::Context => Details::Context(w.context_details.unwrap_or_default()),
            OperationType::Step => Details::Step(w.step_details.unwrap_or_default()),
            OperationType::Wait => Details::Wait(w.wait_details.unwrap_or_default()),
            OperationType::Callback => Details::Callback(w.callback_details.unwrap_or_default()),
            OperationType::ChainedInvoke => {
                Details::ChainedInvoke(w.chained_invoke_details.unwrap_or_default())
            }
        };
        Operation {
            id: w.id,
            parent_id: w.parent_id,
            name: w.name,
            sub_type: w.sub_type,
            status: w.status,
            start_timestamp: w.start_timestamp,
            end_timestamp: w.end_timestamp,
            details,
        }
    }
}

impl From<Operation> for OperationWire {
    fn from(op: Operation) -> OperationWire {
        let mut w = OperationWire {
            id: op.id,
            parent_id: op.parent_id,
            name: op.name,
            op_type: op.details.op_type(),
            sub_type: op.sub_type,
            start_timestamp: op.start_timestamp,
            end_timestamp: op.end_timestamp,
            status: op.status,
            execution_details: None,
            context_details: None,
            step_details: None,
            wait_details: None,
            callback_details: None,
            chained_invoke_details: None,
        };
        match op.details {
            Details::Execution(d) => w.execution_details = Some(d),
            Details::Context(d) => w.context_details = Some(d),
            Details::Step(d) => w.step_details = Some(d),
            Details::Wait(d) => w.wait_details = Some(d),
            Details::Callback(d) => w.callback_details = Some(d),
            Details::ChainedInvoke(d) => w.chained_invoke_details = Some(d),
        }
        w
    }
}

/// `StepOptions`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StepOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_delay_seconds: Option<u64>,
}

/// `WaitOptions`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WaitOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_seconds: Option<u64>,
}

/// `CallbackOptions` (0 = no timeout).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CallbackOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_timeout_seconds: Option<u64>,
}

/// `ChainedInvokeOptions` (`FunctionName` is required by the model).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ChainedInvokeOptions {
    #[serde(default)]
    pub function_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
}

/// `ContextOptions`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContextOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_children: Option<bool>,
}

/// `OperationUpdate`: one change a checkpoint asks for. It mirrors the
/// request shape (every option optional); [`super::Operations`] checks that
/// the ones an action needs are there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OperationUpdate {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "Type")]
    pub op_type: OperationType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_type: Option<String>,
    pub action: OperationAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorObject>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_options: Option<ContextOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_options: Option<StepOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_options: Option<WaitOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_options: Option<CallbackOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chained_invoke_options: Option<ChainedInvokeOptions>,
}

impl OperationUpdate {
    /// A bare update: an id, a type and an action, nothing else.
    pub fn new(id: impl Into<String>, op_type: OperationType, action: OperationAction) -> Self {
        OperationUpdate {
            id: id.into(),
            parent_id: None,
            name: None,
            op_type,
            sub_type: None,
            action,
            payload: None,
            error: None,
            context_options: None,
            step_options: None,
            wait_options: None,
            callback_options: None,
            chained_invoke_options: None,
        }
    }
}
