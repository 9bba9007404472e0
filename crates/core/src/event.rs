//! History events: the past-tense facts an execution's history is made of.
//!
//! The history log is the source of truth; an execution's state is the fold of
//! its events through [`crate::Execution::apply`]. Events carry every
//! non-deterministic value (ids, timestamps, timer due times after jitter), so
//! a replay never has to guess.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::keys::KeyScheme;

/// Milliseconds since the Unix epoch, as recorded in events.
pub type Millis = u64;

/// Whether a task is a step's forward action or its compensation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    Action,
    Compensation,
}

impl TaskKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Action => "action",
            TaskKind::Compensation => "compensation",
        }
    }
}

/// An error as recorded in history: a name retry policies match on, and a cause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    pub error: String,
    pub cause: String,
}

impl ErrorInfo {
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Self {
        ErrorInfo {
            error: error.into(),
            cause: cause.into(),
        }
    }
}

/// Execution status as shown to users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Running,
    Compensating,
    Succeeded,
    /// Rolled back cleanly after a failure.
    Compensated,
    /// Needs attention: a compensation or a retriable step exhausted its retries.
    Failed,
    /// Rolled back cleanly because a user cancelled it.
    Cancelled,
    TimedOut,
}

impl Status {
    pub const ALL: [Status; 7] = [
        Status::Running,
        Status::Compensating,
        Status::Succeeded,
        Status::Compensated,
        Status::Failed,
        Status::Cancelled,
        Status::TimedOut,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Compensating => "compensating",
            Status::Succeeded => "succeeded",
            Status::Compensated => "compensated",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
            Status::TimedOut => "timed_out",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether nothing more will happen without a user's redrive.
    pub fn is_terminal(self) -> bool {
        !matches!(self, Status::Running | Status::Compensating)
    }
}

/// One history event: `at` plus what happened.
///
/// Numbers in values (inputs, outputs) are kept exactly, whatever their size
/// (serde_json's `arbitrary_precision`). Decode events from JSON text, as
/// the stores do: `serde_json::from_value` cannot decode an event holding a
/// number beyond 64 bits, because serde buffers the fields of a flattened,
/// internally tagged enum in a form that has no 128-bit integers (the text
/// decoder hands such numbers over as strings instead).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub at: Millis,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened. Every variant is a fact in the past tense.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    ExecutionStarted {
        execution_id: String,
        definition: String,
        version: u32,
        input: Value,
        /// How instance and idempotency keys are built (absent: legacy).
        #[serde(default, skip_serializing_if = "KeyScheme::is_legacy")]
        keys: KeyScheme,
    },
    /// A step's action was invoked (attempt numbers start at 1). `nonce`:
    /// the secret part of a callback task's token, drawn once and recorded.
    StepScheduled {
        step: String,
        attempt: u32,
        deadline: Millis,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nonce: Option<String>,
    },
    StepSucceeded {
        step: String,
        attempt: u32,
        output: Value,
    },
    StepFailed {
        step: String,
        attempt: u32,
        error: ErrorInfo,
    },
    /// A callback task's participant acknowledged the work: the attempt now
    /// waits for its token (durably — the execution need not stay in memory).
    TaskParked {
        step: String,
        task: TaskKind,
        attempt: u32,
    },
    /// Another attempt of an action or compensation is due at `fire_at`.
    RetryScheduled {
        step: String,
        task: TaskKind,
        attempt: u32,
        fire_at: Millis,
    },
    /// The execution turned back: completed steps will be compensated.
    RollbackStarted { step: String, error: ErrorInfo },
    /// A user asked to cancel; completed steps will be compensated.
    CancelRequested { reason: String },
    CompensationScheduled {
        step: String,
        attempt: u32,
        deadline: Millis,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nonce: Option<String>,
    },
    CompensationSucceeded {
        step: String,
        attempt: u32,
        output: Value,
    },
    CompensationFailed {
        step: String,
        attempt: u32,
        error: ErrorInfo,
    },
    /// A timer of an ASL state came due: a Wait state's time passed, or a
    /// Parallel/Map state's retry is due.
    TimerFired { step: String, attempt: u32 },
    /// The execution outlived its definition's `timeout` before its pivot;
    /// completed steps will be compensated.
    ExecutionTimedOut {},
    /// A user resumed a `failed` execution; exhausted tasks get a fresh budget.
    ExecutionRedriven {},
    ExecutionFinished {
        status: Status,
        error: Option<ErrorInfo>,
        output: Option<Value>,
    },
    /// A user changed a running map run's concurrency or tolerated
    /// failures (Step Functions' `UpdateMapRun`).
    MapRunUpdated {
        update: crate::asl::run::MapRunUpdate,
    },
    /// A durable function's operation changed (see [`crate::durable`]).
    DurableOperation {
        fact: crate::durable::OperationEvent,
    },
    /// A durable function's invocation loop moved on: an invocation began
    /// or ended, a checkpoint was accepted, the tokens were revoked.
    DurableInvocation {
        fact: crate::durable::InvocationEvent,
    },
}

impl EventKind {
    /// The event's type name as it appears in history (`step_succeeded`).
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::ExecutionStarted { .. } => "execution_started",
            EventKind::StepScheduled { .. } => "step_scheduled",
            EventKind::StepSucceeded { .. } => "step_succeeded",
            EventKind::StepFailed { .. } => "step_failed",
            EventKind::TaskParked { .. } => "task_parked",
            EventKind::RetryScheduled { .. } => "retry_scheduled",
            EventKind::RollbackStarted { .. } => "rollback_started",
            EventKind::CancelRequested { .. } => "cancel_requested",
            EventKind::CompensationScheduled { .. } => "compensation_scheduled",
            EventKind::CompensationSucceeded { .. } => "compensation_succeeded",
            EventKind::CompensationFailed { .. } => "compensation_failed",
            EventKind::TimerFired { .. } => "timer_fired",
            EventKind::ExecutionTimedOut {} => "execution_timed_out",
            EventKind::ExecutionRedriven {} => "execution_redriven",
            EventKind::MapRunUpdated { .. } => "map_run_updated",
            EventKind::ExecutionFinished { .. } => "execution_finished",
            EventKind::DurableOperation { .. } => "durable_operation",
            EventKind::DurableInvocation { .. } => "durable_invocation",
        }
    }

    /// Whether a scheduled/succeeded/failed event is about an action or a compensation.
    pub fn task(&self) -> Option<TaskKind> {
        match self {
            EventKind::StepScheduled { .. }
            | EventKind::StepSucceeded { .. }
            | EventKind::StepFailed { .. } => Some(TaskKind::Action),
            EventKind::CompensationScheduled { .. }
            | EventKind::CompensationSucceeded { .. }
            | EventKind::CompensationFailed { .. } => Some(TaskKind::Compensation),
            EventKind::RetryScheduled { task, .. } | EventKind::TaskParked { task, .. } => {
                Some(*task)
            }
            _ => None,
        }
    }

    /// The step an event is about, if any.
    pub fn step(&self) -> Option<&str> {
        match self {
            EventKind::StepScheduled { step, .. }
            | EventKind::StepSucceeded { step, .. }
            | EventKind::StepFailed { step, .. }
            | EventKind::RetryScheduled { step, .. }
            | EventKind::TaskParked { step, .. }
            | EventKind::RollbackStarted { step, .. }
            | EventKind::CompensationScheduled { step, .. }
            | EventKind::CompensationSucceeded { step, .. }
            | EventKind::CompensationFailed { step, .. }
            | EventKind::TimerFired { step, .. } => Some(step),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One event of every kind, with numbers a float cannot hold exactly.
    fn every_kind() -> Vec<Event> {
        let big: Value = serde_json::from_str(
            r#"{"n": 1180591620717411303424, "d": 3.14159265358979323846264338327950288419716939937510, "neg": -9223372036854775809, "small": 7}"#,
        )
        .unwrap();
        let err = ErrorInfo::new("E", "c");
        let at = u64::MAX - 1;
        [
            EventKind::ExecutionStarted {
                execution_id: "x".into(),
                definition: "d".into(),
                version: u32::MAX,
                input: big.clone(),
                keys: KeyScheme::Escaped,
            },
            EventKind::StepScheduled {
                step: "s".into(),
                attempt: 1,
                deadline: u64::MAX,
                nonce: Some("n".into()),
            },
            EventKind::StepScheduled {
                step: "s".into(),
                attempt: 1,
                deadline: 5,
                nonce: None,
            },
            EventKind::StepSucceeded {
                step: "s".into(),
                attempt: 2,
                output: big.clone(),
            },
            EventKind::StepFailed {
                step: "s".into(),
                attempt: 3,
                error: err.clone(),
            },
            EventKind::TaskParked {
                step: "s".into(),
                task: TaskKind::Compensation,
                attempt: 4,
            },
            EventKind::RetryScheduled {
                step: "s".into(),
                task: TaskKind::Action,
                attempt: 5,
                fire_at: 6,
            },
            EventKind::RollbackStarted {
                step: "s".into(),
                error: err.clone(),
            },
            EventKind::CancelRequested { reason: "r".into() },
            EventKind::CompensationScheduled {
                step: "s".into(),
                attempt: 1,
                deadline: 9,
                nonce: None,
            },
            EventKind::CompensationSucceeded {
                step: "s".into(),
                attempt: 1,
                output: big.clone(),
            },
            EventKind::CompensationFailed {
                step: "s".into(),
                attempt: 1,
                error: err.clone(),
            },
            EventKind::TimerFired {
                step: "s".into(),
                attempt: 7,
            },
            EventKind::ExecutionTimedOut {},
            EventKind::ExecutionRedriven {},
            EventKind::MapRunUpdated {
                update: crate::asl::run::MapRunUpdate {
                    map_run: "arn:aws:states:us-east-1:123456789012:mapRun:m/M:ex_0".into(),
                    max_concurrency: Some(2),
                    tolerated_failure_count: None,
                    tolerated_failure_percentage: Some(12.5),
                },
            },
            EventKind::ExecutionFinished {
                status: Status::Succeeded,
                error: None,
                output: Some(big),
            },
            EventKind::ExecutionFinished {
                status: Status::Failed,
                error: Some(err),
                output: None,
            },
            EventKind::DurableOperation {
                fact: crate::durable::OperationEvent::StepSucceeded {
                    id: "op-1".into(),
                    result: Some("{\"t\":\"m\"}".into()),
                    at,
                },
            },
            EventKind::DurableInvocation {
                fact: crate::durable::InvocationEvent::InvocationCompleted {
                    number: 3,
                    outcome: crate::durable::InvocationOutcome::Pending,
                    at,
                },
            },
        ]
        .into_iter()
        .map(|kind| Event { at, kind })
        .collect()
    }

    #[test]
    fn every_event_kind_round_trips_through_json_text_with_its_numbers_exact() {
        for event in every_kind() {
            let text = serde_json::to_string(&event).unwrap();
            let back: Event = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} does not decode: {e}\n{text}", event.kind.name()));
            assert_eq!(back, event, "{text}");
            assert_eq!(serde_json::to_string(&back).unwrap(), text);
        }
    }

    #[test]
    fn big_numbers_in_outputs_are_written_digit_for_digit() {
        let event = &every_kind()[3];
        let text = serde_json::to_string(event).unwrap();
        assert!(text.contains("1180591620717411303424"), "{text}");
        assert!(
            text.contains("3.14159265358979323846264338327950288419716939937510"),
            "{text}"
        );
        assert!(text.contains("-9223372036854775809"), "{text}");
    }
}
