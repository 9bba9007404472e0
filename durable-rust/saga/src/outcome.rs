//! How a saga ended: Sagaflow's saga statuses ([`Status`]), the [`Report`]
//! of a saga that did not succeed, and the errors: [`StepFailed`] (an
//! action failed, inside the body) and [`SagaError`] (the saga's end).

use aws_durable_execution_sdk::{BoxError, TypedError};
use serde::{Deserialize, Serialize};

/// Sagaflow's saga statuses, as a saga ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Every action succeeded.
    Succeeded,
    /// An action before the pivot failed and every registered undo ran.
    Compensated,
    /// A compensation could not finish within its attempts, or the saga
    /// failed after its pivot: what is done stays done.
    Failed,
}

impl Status {
    /// The `ErrorType` of the durable execution a saga with this status
    /// fails (`None` for [`Status::Succeeded`]).
    #[must_use]
    pub fn error_type(self) -> Option<&'static str> {
        match self {
            Status::Succeeded => None,
            Status::Compensated => Some("SagaCompensated"),
            Status::Failed => Some("SagaFailed"),
        }
    }
}

/// The compensation that could not finish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unfinished {
    /// The undo's name.
    pub name: String,
    /// How many times it was attempted.
    pub attempts: u32,
    /// Its last attempt's error.
    pub error: String,
}

/// What happened to a saga that did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// `compensated` or `failed`.
    pub status: Status,
    /// The action whose failure ended the saga (`(saga body)` when the
    /// body failed outside an action).
    pub failed_step: String,
    /// That failure, `ErrorType: ErrorMessage` as recorded.
    pub error: String,
    /// Whether the pivot had succeeded (then nothing was compensated).
    pub after_pivot: bool,
    /// The undos that ran, in the order they ran (newest registration
    /// first).
    pub compensated: Vec<String>,
    /// The compensation that could not finish, if one did not.
    pub unfinished: Option<Unfinished>,
    /// The undos left unrun behind the unfinished one, in the order they
    /// would have run.
    pub not_run: Vec<String>,
}

impl Report {
    /// Reads the report back from the `ErrorMessage` of a saga's failed
    /// execution (`SagaCompensated: {…}` or `SagaFailed: {…}`).
    #[must_use]
    pub fn from_error_message(message: &str) -> Option<Report> {
        let json = &message[message.find('{')?..];
        serde_json::from_str(json).ok()
    }
}

/// An action of the saga failed (for good: after its retries, if any).
/// Returned by awaiting an [`Action`](crate::Action); `?` hands it to
/// [`Saga::run`](crate::Saga::run), which compensates or fails the saga.
#[derive(Debug, Clone, thiserror::Error)]
#[error("saga action {step} failed: {error}")]
pub struct StepFailed {
    /// The action's name.
    pub step: String,
    /// Its failure, `ErrorType: ErrorMessage` as recorded.
    pub error: String,
}

/// A saga that did not succeed: its [`Report`].
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", summary(.report))]
pub struct SagaError {
    /// What happened.
    pub report: Report,
}

fn summary(r: &Report) -> String {
    let undone = if r.compensated.is_empty() {
        "nothing".to_owned()
    } else {
        r.compensated.join(", ")
    };
    match (&r.status, &r.unfinished) {
        (_, Some(u)) => format!(
            "saga failed: {} failed ({}); compensation {} could not finish after {} attempts ({}); undone: {undone}",
            r.failed_step, r.error, u.name, u.attempts, u.error
        ),
        (Status::Compensated, None) => format!(
            "saga compensated: {} failed ({}); undone: {undone}",
            r.failed_step, r.error
        ),
        _ => format!(
            "saga failed after its pivot: {} failed ({}); nothing compensated",
            r.failed_step, r.error
        ),
    }
}

impl SagaError {
    /// The saga's status: `compensated` or `failed`.
    #[must_use]
    pub fn status(&self) -> Status {
        self.report.status
    }

    /// The error a durable handler returns for this outcome: `ErrorType`
    /// `SagaCompensated` or `SagaFailed`, `ErrorMessage` `TYPE: {report}`.
    #[must_use]
    pub fn into_durable(self) -> BoxError {
        let error_type = self.status().error_type().unwrap_or("SagaFailed");
        Box::new(TypedError::with_type(error_type, ReportJson(self.report)))
    }
}

/// A report whose `Display` is its JSON: the wire `ErrorMessage` after
/// the type.
#[derive(Debug)]
struct ReportJson(Report);

impl std::fmt::Display for ReportJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match serde_json::to_string(&self.0) {
            Ok(json) => f.write_str(&json),
            Err(_) => f.write_str(&summary(&self.0)),
        }
    }
}

impl std::error::Error for ReportJson {}
