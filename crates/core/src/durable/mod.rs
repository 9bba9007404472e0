//! AWS Lambda durable functions: the operation model, as pure code.
//!
//! A durable function's code (the Python SDK's `@durable_execution`) runs in
//! invocations; each replays the operations recorded so far and reports new
//! ones through `CheckpointDurableExecution` calls, each a batch of
//! [`OperationUpdate`]s. This module is the service's side of that
//! exchange, with no I/O:
//!
//! - [`model`]: `Operation`, `OperationUpdate` and their parts, with AWS's
//!   field names so they round-trip what the SDK sends and reads;
//! - [`Operations`]: one execution's operations, the checkpoint decision
//!   ([`Operations::apply_checkpoint`]: every update validated before
//!   anything changes), the fold of one recorded fact
//!   ([`Operations::apply`], the same live and in replay) and timers
//!   firing ([`Operations::fire_timer`]); chained invokes to call and
//!   their outcomes ([`Operations::invokes_to_dispatch`],
//!   [`Operations::end_chained_invoke`]); the execution timed out or
//!   stopped ([`Operations::time_out`], [`Operations::stop`]); callbacks completed, kept alive
//!   or timed out ([`Operations::complete_callback`],
//!   [`Operations::heartbeat_callback`]);
//! - [`OperationEvent`]/[`Timer`]: the facts recorded and the timers armed;
//! - [`Invocations`]/[`InvocationEvent`]: the invocation loop as a fold
//!   of recorded facts: invocations started and completed (never two at
//!   once; one lost in a crash closed with `Sagaflow.InvocationLost`),
//!   checkpoint tokens (only the latest of the current invocation is
//!   valid, by the recorded history) and `ClientToken` replay.
//!
//! The execution also ends from outside: timed out or stopped
//! ([`Operations::time_out`], [`Operations::stop`]; open operations stay
//! as they are, the running invocation's token is revoked).
//!
//! [`Run`] hosts the model as the third kind of program behind the
//! envelope (`Program::Durable`, a [`DurableFunction`] definition): its
//! facts are recorded as `DurableOperation`/`DurableInvocation` events and
//! it asks the runtime for invocations and calls through [`Effect`]s. A chained invoke's
//! target is resolved by [`resolve_target`] (hosted durable or plain
//! function, then the resource map, else `ResourceNotFoundException`);
//! [`Operations::apply_checkpoint_resolving`] fails an unresolvable one in
//! the checkpoint's own answer. The `ExecutionTimeout` is the envelope's
//! deadline.
//!
//! [`DurableExecutionArn`] builds and reads an execution's ARN;
//! [`first_page`]/[`invocation_event`] build the event a function's
//! invocation receives (operations in creation order, as far as a byte
//! budget allows) and [`state_page`] serves the rest
//! (`GetDurableExecutionState`).
//!
//! [`history`] folds the recorded facts ([`Fact`]: operation and
//! invocation facts in stored order) into `GetDurableExecutionHistory`'s
//! events ([`HistoryEvent`], AWS's vocabulary: 1-based contiguous
//! `EventId`s, epoch-second timestamps, one `<EventType>Details` each,
//! payloads only with `IncludeExecutionData`); [`history_page`] pages them
//! behind opaque markers, either way round; [`request_id`] is an
//! invocation's request id, the same in the history and the runtime.

mod callback;
pub mod event;
mod function;
mod history;
mod invocation;
pub mod model;
mod operations;
mod run;
mod target;
mod token;

pub use crate::function_name::FunctionName;
pub use callback::{callback_execution, CallbackWatch};
pub use event::{
    CallbackOutcome, InvokeDispatch, InvokeOutcome, InvokeTarget, OpHeader, OperationEvent,
    StepRetry, Timer,
};
pub use function::{
    compile as compile_function, is_durable, DurableFunction, MAX_EXECUTION_TIMEOUT_SECONDS,
};
pub use history::{
    history, history_page, request_id, EventDetails, EventError, EventPayload, EventType, Fact,
    HistoryDetails, HistoryEvent, RetryDetails, MAX_HISTORY_ITEMS,
};
pub use invocation::{
    first_page, invocation_event, state_page, ArnError, DurableExecutionArn,
    DurableInvocationEvent, INVALID_MARKER, INVALID_MAX_ITEMS, MAX_STATE_ITEMS,
    SYNC_INVOCATION_LIMIT_BYTES,
};
pub use model::{
    CallbackDetails, CallbackOptions, ChainedInvokeDetails, ChainedInvokeOptions, ContextDetails,
    ContextOptions, Details, ErrorObject, ExecutionDetails, Operation, OperationAction,
    OperationStatus, OperationType, OperationUpdate, StepDetails, StepOptions, WaitDetails,
    WaitOptions,
};
pub use operations::{
    Applied, Operations, Outcome, Refusal, Unresolvable, MAX_DURATION_SECONDS, MAX_PAYLOAD_BYTES,
};
pub use run::{
    Answer, Effect, Input, Run, FIRST_RETRY_DELAY_MS, INVOCATION_RETRY, MAX_RETRY_DELAY_MS,
    SAGA_COMPENSATED,
};
pub use target::{
    function_not_found, invalid_function_name, resolve_target, HostedFunctions, Hosting,
    NoHostedFunctions, Resolved, RESOURCE_NOT_FOUND,
};
pub use token::{
    Checkpoint, CheckpointReply, CheckpointToken, InvocationEvent, InvocationOutcome, Invocations,
    NewExecutionState, INVALID_TOKEN,
};
