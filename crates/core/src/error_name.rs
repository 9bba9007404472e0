//! Every error name the engine records or matches (`States.*`, as in the
//! Amazon States Language, and `Sagaflow.*`, the engine's own outcomes), in
//! one place. A participant may not use these namespaces (see
//! [`crate::retry::participant_error`]).

/// Matches every error name in `retry_on` / `ErrorEquals` (but `States.Runtime`).
pub const ALL: &str = "States.ALL";
/// A transient participant failure (5xx, connection refused, …).
pub const TASK_FAILED: &str = "States.TaskFailed";
/// An attempt (or an execution) that ran out of time. Its effect may have happened.
pub const TIMEOUT: &str = "States.Timeout";
/// A `.waitForTaskToken` task whose heartbeat stopped.
pub const HEARTBEAT_TIMEOUT: &str = "States.HeartbeatTimeout";
/// A failure inside the engine itself (e.g. input mapping), never retried.
pub const RUNTIME: &str = "States.Runtime";
/// A `Fail` state without an `Error`.
pub const FAIL: &str = "States.Fail";
/// A Choice state where no rule matched and there is no `Default`.
pub const NO_CHOICE_MATCHED: &str = "States.NoChoiceMatched";
/// A Map whose failed items passed its tolerated threshold.
pub const EXCEED_TOLERATED: &str = "States.ExceedToleratedFailureThreshold";
/// A `ResultPath` that cannot be applied to the state's input.
pub const RESULT_PATH_MATCH_FAILURE: &str = "States.ResultPathMatchFailure";
/// An intrinsic function (`States.Format` …) that failed.
pub const INTRINSIC_FAILURE: &str = "States.IntrinsicFailure";
/// The prefix of a Parallel or Map branch's failure names (`States.BranchFailed`).
pub const BRANCH_PREFIX: &str = "States.Branch";

/// A call whose request may have been delivered but whose answer never came
/// back (the connection dropped). Like a timeout, its effect may have happened.
pub const RESPONSE_LOST: &str = "Sagaflow.ResponseLost";
/// A 2xx answer larger than the engine accepts into history. The participant
/// did the work and said so, but its answer cannot be kept: like a timeout,
/// the effect may have happened. Not retried by default (a participant that
/// deduplicates answers the same way again).
pub const OUTPUT_TOO_LARGE: &str = "Sagaflow.OutputTooLarge";
/// A 2xx answer that cannot be stored exactly: neither JSON nor UTF-8 text.
/// Ambiguous and not retried by default, like an oversized one.
pub const OUTPUT_INVALID: &str = "Sagaflow.OutputInvalid";
/// A call never sent because its participant's bulkhead stayed full until
/// the attempt's deadline. Nothing was sent: a plain, retried failure.
pub const PARTICIPANT_SATURATED: &str = "Sagaflow.ParticipantSaturated";
/// A participant's own error recorded under a name reserved for the
/// engine's outcomes (the original name is in the cause).
pub const RESERVED_ERROR_NAME: &str = "Sagaflow.ReservedErrorName";
/// The rollback error of a cancelled execution.
pub const CANCELLED: &str = "Sagaflow.Cancelled";
/// A callback task completed with a failure that named no error.
pub const CALLBACK_FAILED: &str = "Sagaflow.CallbackFailed";
/// A durable function's invocation recorded as started but never completed:
/// the service restarted while it ran, and its answer was lost.
pub const INVOCATION_LOST: &str = "Sagaflow.InvocationLost";
/// The namespace of the Amazon States Language's names (and intrinsics).
pub const STATES_PREFIX: &str = "States.";
/// The namespace of the engine's own outcomes.
pub const SAGAFLOW_PREFIX: &str = "Sagaflow.";
/// The output asked of an execution that has not finished.
pub const STILL_RUNNING: &str = "Sagaflow.StillRunning";

/// The error names AWS reserves (`States.` prefix); any other `States.*`
/// name in `ErrorEquals` is a typo that would never match.
pub const AWS_RESERVED: &[&str] = &[
    "States.ALL",
    "States.DataLimitExceeded",
    "States.ExceedToleratedFailureThreshold",
    "States.HeartbeatTimeout",
    "States.IntrinsicFailure",
    "States.ItemReaderFailed",
    "States.NoChoiceMatched",
    "States.ParameterPathFailure",
    "States.Permissions",
    "States.QueryEvaluationError",
    "States.ResultPathMatchFailure",
    "States.ResultWriterFailed",
    "States.Runtime",
    "States.TaskFailed",
    "States.BranchFailed",
    "States.Timeout",
];
