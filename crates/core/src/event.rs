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
            EventKind::ExecutionFinished { .. } => "execution_finished",
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
