//! The history of a durable execution as `GetDurableExecutionHistory`
//! answers it: [`history`] folds the recorded facts ([`Fact`]: the
//! [`OperationEvent`]s and [`InvocationEvent`]s, in the order they were
//! stored) into AWS `Event`s ([`HistoryEvent`]), and [`history_page`]
//! serves them a page at a time behind opaque markers.
//!
//! The vocabulary is AWS's (botocore's `Event` shape and the conformance
//! histories in `shared/durable-conformance`):
//!
//! - `EventId` is 1-based and contiguous; `EventTimestamp` and every
//!   timestamp in the details are epoch **seconds** (JSON numbers,
//!   fractions allowed), where the facts carry milliseconds;
//! - `Id`, `Name`, `SubType` and `ParentId` are the operation's, as its
//!   start recorded them (later facts carry only the id, so the fold keeps
//!   each operation's header); `InvocationCompleted` belongs to no
//!   operation and has none of them;
//! - each event has exactly one `<EventType>Details` object (`{}` when the
//!   type has nothing to say, as `StepStartedDetails: {}` in AWS's);
//! - facts AWS has no event for produce none: `StepReady` (a retry's timer),
//!   `CallbackHeartbeat`, `InvocationStarted` (its time becomes the
//!   `StartTimestamp` of the matching `InvocationCompleted`),
//!   `CheckpointAccepted` and `TokensRevoked`;
//! - a step `RETRY` is `StepFailed` with `RetryDetails{CurrentAttempt,
//!   NextAttemptDelaySeconds}`, unless it carried no error: that is the
//!   SDK's `wait_for_condition` asking to check again, which AWS records as
//!   `StepSucceeded` with `RetryDetails` (the fact does not keep the
//!   retry's payload, so its `Result` is absent). `CurrentAttempt` is
//!   1-based: the attempt that ended (retries so far plus one);
//! - `InvocationCompleted{StartTimestamp, EndTimestamp, RequestId, Error}`:
//!   `RequestId` is [`request_id`] of the invocation (the runtime sends
//!   the same as `Lambda-Runtime-Aws-Request-Id`), `Error` only when the
//!   invocation itself failed (a crash, a timeout, a lost invocation).
//!
//! Execution data: with `include_data` the payloads come in
//! `{"Payload": …, "Truncated": false}` wrappers (`Input`, `Result`) and
//! errors as `{"Payload": ErrorObject, "Truncated": false}`. Without it
//! (AWS's default, `IncludeExecutionData=false`) the `Input`/`Result`
//! wrappers are left out, and an error keeps only its `ErrorType`: the
//! type says what went wrong and is chosen by code, while the message,
//! data and stack trace may carry the user's data. Configuration
//! (`ExecutionTimeout`, `FunctionName`, `TenantId`, durations, callback
//! timeouts) is not execution data and always stays. A payload the fact
//! does not have (a step that returned nothing) has no wrapper either way.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Serialize;

use super::event::{CallbackOutcome, InvokeOutcome, OpHeader, OperationEvent};
use super::invocation::{INVALID_MARKER, INVALID_MAX_ITEMS};
use super::model::ErrorObject;
use super::operations::{mix, Refusal};
use super::token::{InvocationEvent, InvocationOutcome};
use crate::event::Millis;

/// The most events one history page holds, and the default.
pub const MAX_HISTORY_ITEMS: u32 = 1000;

/// One recorded durable fact, as the history stores it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fact<'a> {
    Operation(&'a OperationEvent),
    Invocation(&'a InvocationEvent),
}

impl<'a> From<&'a OperationEvent> for Fact<'a> {
    fn from(event: &'a OperationEvent) -> Self {
        Fact::Operation(event)
    }
}

impl<'a> From<&'a InvocationEvent> for Fact<'a> {
    fn from(event: &'a InvocationEvent) -> Self {
        Fact::Invocation(event)
    }
}

/// AWS's `EventType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum EventType {
    ExecutionStarted,
    ExecutionSucceeded,
    ExecutionFailed,
    ExecutionTimedOut,
    ExecutionStopped,
    ContextStarted,
    ContextSucceeded,
    ContextFailed,
    WaitStarted,
    WaitSucceeded,
    WaitCancelled,
    StepStarted,
    StepSucceeded,
    StepFailed,
    ChainedInvokeStarted,
    ChainedInvokeSucceeded,
    ChainedInvokeFailed,
    ChainedInvokeTimedOut,
    ChainedInvokeStopped,
    CallbackStarted,
    CallbackSucceeded,
    CallbackFailed,
    CallbackTimedOut,
    InvocationCompleted,
}

/// `EventInput` / `EventResult`: a payload as the SDK sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct EventPayload {
    pub payload: String,
    /// Never truncated: the model's payloads fit AWS's limits.
    pub truncated: bool,
}

/// `EventError`: the error verbatim (or only its type, without data);
/// empty when the fact has none.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct EventError {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<ErrorObject>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncated: Option<bool>,
}

/// `RetryDetails` of a step's end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RetryDetails {
    pub current_attempt: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_delay_seconds: Option<u64>,
}

/// The `<EventType>Details` member of an event: every field any type has,
/// each type filling its own (`None` fields are left out).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct EventDetails {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<EventPayload>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_timeout: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<EventPayload>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<EventError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_details: Option<RetryDetails>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduled_end_timestamp: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heartbeat_timeout: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub executed_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub durable_execution_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_timestamp: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_timestamp: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// One AWS `Event` of `GetDurableExecutionHistory`. Serialized with AWS's
/// names; the details go out under `<EventType>Details`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HistoryEvent {
    pub event_type: EventType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_type: Option<String>,
    pub event_id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Epoch seconds.
    pub event_timestamp: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    /// Keyed by the event type (see [`HistoryDetails`]).
    #[serde(flatten)]
    pub details: HistoryDetails,
}

/// [`EventDetails`] under its AWS key: `{"StepSucceededDetails": {…}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryDetails {
    pub event_type: EventType,
    pub details: EventDetails,
}

impl Serialize for HistoryDetails {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(&format!("{:?}Details", self.event_type), &self.details)?;
        map.end()
    }
}

/// Epoch milliseconds as AWS's epoch seconds.
fn seconds(at: Millis) -> f64 {
    at as f64 / 1000.0
}

/// The id of invocation `number` of the invocation whose tokens carry
/// `nonce`: UUID-shaped (8-4-4-4-12 lowercase hex, version 4, RFC 4122
/// variant) and deterministic, so the runtime's
/// `Lambda-Runtime-Aws-Request-Id` and the history agree without storing it.
pub fn request_id(nonce: u64, number: u32) -> String {
    let hi = mix(nonce ^ u64::from(number).rotate_left(32));
    let lo = mix(hi ^ u64::from(number));
    // Version 4 and the RFC 4122 variant, as a random UUID has.
    let hi = (hi & !0xF000) | 0x4000;
    let lo = (lo & !(0xC000 << 48)) | (0x8000 << 48);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xFFFF,
        hi & 0xFFFF,
        lo >> 48,
        lo & 0xFFFF_FFFF_FFFF
    )
}

/// Folds the recorded facts, in stored order, into the history's events:
/// `execution_timeout_seconds` is the execution's `ExecutionTimeout` (shown
/// in `ExecutionStarted`), `include_data` is `IncludeExecutionData` (see
/// the module header for what it leaves out).
pub fn history<'a>(
    facts: impl IntoIterator<Item = Fact<'a>>,
    execution_timeout_seconds: Option<u64>,
    include_data: bool,
) -> Vec<HistoryEvent> {
    let mut fold = Fold {
        include_data,
        execution_timeout_seconds,
        ..Fold::default()
    };
    for fact in facts {
        match fact {
            Fact::Operation(event) => fold.operation(event),
            Fact::Invocation(event) => fold.invocation(event),
        }
    }
    fold.events
}

/// The state [`history`] keeps while folding.
#[derive(Default)]
struct Fold {
    include_data: bool,
    execution_timeout_seconds: Option<u64>,
    events: Vec<HistoryEvent>,
    /// Each operation's header: later facts carry only its id.
    headers: BTreeMap<String, OpHeader>,
    /// Each step's retries so far (its `CurrentAttempt` is one more).
    retries: BTreeMap<String, u32>,
    /// Each wait's duration, for `WaitSucceeded`.
    durations: BTreeMap<String, u64>,
    /// Each open invocation's start and nonce, by number.
    invocations: BTreeMap<u32, (Millis, u64)>,
}

impl Fold {
    fn payload(&self, payload: &Option<String>) -> Option<EventPayload> {
        payload
            .as_ref()
            .filter(|_| self.include_data)
            .map(|p| EventPayload {
                payload: p.clone(),
                truncated: false,
            })
    }

    fn error(&self, error: Option<&ErrorObject>) -> EventError {
        let Some(error) = error else {
            return EventError::default();
        };
        let payload = if self.include_data {
            error.clone()
        } else {
            ErrorObject {
                error_type: error.error_type.clone(),
                ..ErrorObject::default()
            }
        };
        EventError {
            payload: Some(payload),
            truncated: Some(false),
        }
    }

    fn push(&mut self, event_type: EventType, id: Option<&str>, at: Millis, details: EventDetails) {
        let header = id.and_then(|id| self.headers.get(id));
        let event = HistoryEvent {
            event_type,
            sub_type: header.and_then(|h| h.sub_type.clone()),
            event_id: self.events.len() as u64 + 1,
            id: id.map(str::to_string),
            name: header.and_then(|h| h.name.clone()),
            event_timestamp: seconds(at),
            parent_id: header.and_then(|h| h.parent_id.clone()),
            details: HistoryDetails {
                event_type,
                details,
            },
        };
        self.events.push(event);
    }

    fn started(&mut self, op: &OpHeader) {
        self.headers.insert(op.id.clone(), op.clone());
    }

    fn operation(&mut self, event: &OperationEvent) {
        use EventType as T;
        use OperationEvent as E;
        let none = EventDetails::default();
        let (event_type, at, details) = match event {
            E::ExecutionStarted {
                id,
                input_payload,
                at,
            } => {
                // The EXECUTION operation has no name or parent of its own.
                self.started(&OpHeader {
                    id: id.clone(),
                    parent_id: None,
                    name: None,
                    sub_type: None,
                });
                let details = EventDetails {
                    input: self.payload(input_payload),
                    execution_timeout: self.execution_timeout_seconds,
                    ..none
                };
                (T::ExecutionStarted, at, details)
            }
            E::ExecutionSucceeded { result, at, .. } => {
                let details = EventDetails {
                    result: self.payload(result),
                    ..none
                };
                (T::ExecutionSucceeded, at, details)
            }
            E::ExecutionFailed { error, at, .. } => (T::ExecutionFailed, at, self.failed(error)),
            E::ExecutionTimedOut { error, at, .. } => {
                (T::ExecutionTimedOut, at, self.failed(error))
            }
            E::ExecutionStopped { error, at, .. } => (T::ExecutionStopped, at, self.failed(error)),
            E::StepStarted { op, at } => {
                // A step started again after a retry keeps its first header.
                if !self.headers.contains_key(&op.id) {
                    self.started(op);
                }
                (T::StepStarted, at, none)
            }
            E::StepSucceeded { id, result, at } => {
                let details = EventDetails {
                    result: self.payload(result),
                    retry_details: Some(RetryDetails {
                        current_attempt: self.attempt(id),
                        next_attempt_delay_seconds: None,
                    }),
                    ..none
                };
                (T::StepSucceeded, at, details)
            }
            E::StepFailed {
                id,
                error,
                retry,
                at,
            } => {
                let retry_details = Some(RetryDetails {
                    current_attempt: self.attempt(id),
                    next_attempt_delay_seconds: retry.as_ref().map(|r| r.delay_seconds),
                });
                if retry.is_some() {
                    *self.retries.entry(id.clone()).or_default() += 1;
                }
                // A retry without an error is a condition checked again
                // (wait_for_condition): AWS records it as succeeded.
                let event_type = if retry.is_some() && error.is_none() {
                    T::StepSucceeded
                } else {
                    T::StepFailed
                };
                let error = (event_type == T::StepFailed).then(|| self.error(error.as_ref()));
                let result = retry.as_ref().and_then(|r| self.payload(&r.result));
                let details = EventDetails {
                    error,
                    result,
                    retry_details,
                    ..none
                };
                (event_type, at, details)
            }
            E::StepReady { .. } | E::CallbackHeartbeat { .. } | E::ReplayDiverged { .. } => return,
            E::WaitStarted {
                op,
                duration_seconds,
                scheduled_end,
                at,
            } => {
                self.started(op);
                self.durations.insert(op.id.clone(), *duration_seconds);
                let details = EventDetails {
                    duration: Some(*duration_seconds),
                    scheduled_end_timestamp: Some(seconds(*scheduled_end)),
                    ..none
                };
                (T::WaitStarted, at, details)
            }
            E::WaitSucceeded { id, at } => {
                let details = EventDetails {
                    duration: self.durations.get(id).copied(),
                    ..none
                };
                (T::WaitSucceeded, at, details)
            }
            E::WaitCancelled { at, .. } => (T::WaitCancelled, at, self.failed(&None)),
            E::CallbackStarted {
                op,
                callback_id,
                timeout_seconds,
                heartbeat_timeout_seconds,
                at,
            } => {
                self.started(op);
                let details = EventDetails {
                    callback_id: Some(callback_id.clone()),
                    // 0 is "no timeout", which AWS shows by leaving it out.
                    timeout: timeout_seconds.filter(|&s| s > 0),
                    heartbeat_timeout: heartbeat_timeout_seconds.filter(|&s| s > 0),
                    ..none
                };
                (T::CallbackStarted, at, details)
            }
            E::CallbackEnded { outcome, at, .. } => match outcome {
                CallbackOutcome::Succeeded { result } => {
                    let details = EventDetails {
                        result: self.payload(result),
                        ..none
                    };
                    (T::CallbackSucceeded, at, details)
                }
                CallbackOutcome::Failed { error } => {
                    (T::CallbackFailed, at, self.failed(&Some(error.clone())))
                }
                CallbackOutcome::TimedOut { error } => {
                    (T::CallbackTimedOut, at, self.failed(&Some(error.clone())))
                }
            },
            E::ChainedInvokeStarted {
                op,
                function_name,
                tenant_id,
                payload,
                dispatch,
                at,
            } => {
                self.started(op);
                let details = EventDetails {
                    function_name: Some(function_name.clone()),
                    tenant_id: tenant_id.clone(),
                    input: self.payload(payload),
                    executed_version: dispatch.executed_version.clone(),
                    durable_execution_arn: dispatch.durable_execution_arn.clone(),
                    ..none
                };
                (T::ChainedInvokeStarted, at, details)
            }
            E::ChainedInvokeEnded { outcome, at, .. } => match outcome {
                InvokeOutcome::Succeeded { result } => {
                    let details = EventDetails {
                        result: self.payload(result),
                        ..none
                    };
                    (T::ChainedInvokeSucceeded, at, details)
                }
                InvokeOutcome::Failed { error } => (
                    T::ChainedInvokeFailed,
                    at,
                    self.failed(&Some(error.clone())),
                ),
                InvokeOutcome::TimedOut { error } => (
                    T::ChainedInvokeTimedOut,
                    at,
                    self.failed(&Some(error.clone())),
                ),
                InvokeOutcome::Stopped { error } => (
                    T::ChainedInvokeStopped,
                    at,
                    self.failed(&Some(error.clone())),
                ),
            },
            E::ContextStarted { op, at } => {
                self.started(op);
                (T::ContextStarted, at, none)
            }
            E::ContextSucceeded { result, at, .. } => {
                let details = EventDetails {
                    result: self.payload(result),
                    ..none
                };
                (T::ContextSucceeded, at, details)
            }
            E::ContextFailed { error, at, .. } => (T::ContextFailed, at, self.failed(error)),
        };
        self.push(event_type, Some(event.op_id()), *at, details);
    }

    /// Details with only an `Error` (`{}` inside when the fact has none).
    fn failed(&self, error: &Option<ErrorObject>) -> EventDetails {
        EventDetails {
            error: Some(self.error(error.as_ref())),
            ..EventDetails::default()
        }
    }

    /// The 1-based attempt of a step now ending.
    fn attempt(&self, id: &str) -> u32 {
        self.retries.get(id).copied().unwrap_or(0).saturating_add(1)
    }

    fn invocation(&mut self, event: &InvocationEvent) {
        match event {
            InvocationEvent::InvocationStarted { number, nonce, at } => {
                self.invocations.insert(*number, (*at, *nonce));
            }
            InvocationEvent::InvocationCompleted {
                number,
                outcome,
                at,
            } => {
                // A completion without its start (a foreign history) still
                // shows, starting when it ended.
                let (start, nonce) = self.invocations.remove(number).unwrap_or((*at, 0));
                let error = match outcome {
                    InvocationOutcome::Error {
                        error_type,
                        error_message,
                    } => Some(self.error(Some(&ErrorObject {
                        error_type: Some(error_type.clone()),
                        error_message: Some(error_message.clone()),
                        ..ErrorObject::default()
                    }))),
                    _ => None,
                };
                let details = EventDetails {
                    start_timestamp: Some(seconds(start)),
                    end_timestamp: Some(seconds(*at)),
                    request_id: Some(request_id(nonce, *number)),
                    error,
                    ..EventDetails::default()
                };
                self.push(EventType::InvocationCompleted, None, *at, details);
            }
            // AWS's history has no such events: the cancel shows in the
            // operations it ended.
            InvocationEvent::CheckpointAccepted { .. }
            | InvocationEvent::TokensRevoked { .. }
            | InvocationEvent::CancelRequested { .. }
            | InvocationEvent::CancelDelivered { .. } => {}
        }
    }
}

/// The marker of the page starting at event `index` (0-based) in the
/// given direction: opaque (URL-safe base64), distinct from the state's.
fn marker(index: usize, reverse: bool) -> String {
    let direction = if reverse { "rev" } else { "fwd" };
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("history:{direction}:{index}"))
}

/// The index a marker points at, if it is exactly one [`marker`] gives
/// for this direction.
fn marker_index(text: &str, reverse: bool) -> Option<usize> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let direction = if reverse { "rev" } else { "fwd" };
    let index: usize = raw
        .strip_prefix("history:")?
        .strip_prefix(direction)?
        .strip_prefix(':')?
        .parse()
        .ok()?;
    (marker(index, reverse) == text).then_some(index)
}

/// One page of `GetDurableExecutionHistory`: from `marker` (a `NextMarker`
/// an earlier page gave; `None` for the first page), at most `max_items`
/// events (`None`: [`MAX_HISTORY_ITEMS`]; 0 or more is refused), oldest
/// first or, with `reverse` (`ReverseOrder`), newest first; with the next
/// marker while events are left. A marker that is not ours, given for the
/// other direction, or pointing past the events is refused
/// ([`INVALID_MARKER`]); both refusals are `InvalidParameterValueException`.
/// Markers count from the oldest event, so a page boundary stays put while
/// the history grows.
pub fn history_page(
    events: &[HistoryEvent],
    marker_text: Option<&str>,
    max_items: Option<u32>,
    reverse: bool,
) -> Result<(Vec<HistoryEvent>, Option<String>), Refusal> {
    let max = max_items.unwrap_or(MAX_HISTORY_ITEMS);
    if max == 0 || max > MAX_HISTORY_ITEMS {
        return Err(Refusal::new(
            INVALID_MAX_ITEMS,
            format!(
                "1 validation error detected: Value '{max}' at 'maxItems' failed to satisfy constraint: Member must have value between 1 and {MAX_HISTORY_ITEMS}"
            ),
        ));
    }
    let max = max as usize;
    let invalid = |text: &str| {
        Refusal::new(
            INVALID_MARKER,
            format!("Invalid marker: '{text}' is not a marker of this execution's history."),
        )
    };
    if reverse {
        // Here the marker is one past the next event to give (so the
        // first page, from the newest, needs none).
        let end = match marker_text {
            None => events.len(),
            Some(text) => marker_index(text, true)
                .filter(|&i| i > 0 && i <= events.len())
                .ok_or_else(|| invalid(text))?,
        };
        let start = end.saturating_sub(max);
        let page = events[start..end].iter().rev().cloned().collect();
        Ok((page, (start > 0).then(|| marker(start, true))))
    } else {
        let start = match marker_text {
            None => 0,
            Some(text) => marker_index(text, false)
                .filter(|&i| i > 0 && i < events.len())
                .ok_or_else(|| invalid(text))?,
        };
        let end = start.saturating_add(max).min(events.len());
        let page = events[start..end].to_vec();
        Ok((page, (end < events.len()).then(|| marker(end, false))))
    }
}
