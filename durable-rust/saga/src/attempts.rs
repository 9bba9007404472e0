//! Attempting an operation until it succeeds or a limit is reached, with a
//! durable wait between attempts: the loop of compensations and of forward
//! actions after the pivot.
//!
//! Every attempt is its own durable operation, named after the action
//! (`cancel_hotel`, then `cancel_hotel (attempt 2)`, …, with waits named
//! `cancel_hotel (backoff 1)`, …), so a replay reads every attempt's
//! recorded outcome and takes the same path.

use std::future::Future;

use aws_durable_execution_sdk::{DurableContext, OperationError};

use crate::policy::Backoff;

/// Why the attempts stopped without a success.
#[derive(Debug, Clone)]
pub(crate) struct GaveUp {
    pub attempts: u32,
    pub error: String,
}

/// The name of attempt `attempt` of the operation `name`.
pub(crate) fn attempt_name(name: &str, attempt: u32) -> String {
    if attempt <= 1 {
        name.to_owned()
    } else {
        format!("{name} (attempt {attempt})")
    }
}

/// Runs `op(attempt name)` until it succeeds, waiting `backoff` between
/// attempts, at most `limit` attempts (`None`: no limit).
pub(crate) async fn attempt<O, Op, Fut>(
    ctx: &DurableContext,
    name: &str,
    backoff: &Backoff,
    limit: Option<u32>,
    op: Op,
) -> Result<O, GaveUp>
where
    Op: Fn(String) -> Fut,
    Fut: Future<Output = Result<O, OperationError>>,
{
    let mut attempt = 1;
    loop {
        let error = match op(attempt_name(name, attempt)).await {
            Ok(value) => return Ok(value),
            Err(err) => describe(&err),
        };
        if limit.is_some_and(|limit| attempt >= limit) {
            return Err(GaveUp {
                attempts: attempt,
                error,
            });
        }
        let waited = ctx
            .wait(backoff.delay(attempt))
            .name(format!("{name} (backoff {attempt})"))
            .await;
        match waited {
            Ok(()) => {}
            // Sagaflow's cancel ends what the code waits on (the wait is
            // CANCELLED): an undo, or an action after the pivot, must still
            // finish, so the next attempt just comes sooner.
            Err(err) if is_cancelled(&err) => {}
            Err(err) => {
                return Err(GaveUp {
                    attempts: attempt,
                    error: describe(&err),
                });
            }
        }
        attempt += 1;
    }
}

/// `ErrorType: ErrorMessage` of a failed operation, as recorded (so the
/// same text live and on replay).
pub(crate) fn describe(err: &OperationError) -> String {
    match err.wire() {
        Some(wire) => match (wire.error_type(), wire.error_message()) {
            (Some(t), Some(m)) => format!("{t}: {m}"),
            (Some(t), None) => t.to_owned(),
            (None, Some(m)) => m.to_owned(),
            (None, None) => err.to_string(),
        },
        None => err.to_string(),
    }
}

/// Whether an operation ended because the execution was cancelled: a
/// `CANCELLED` wait, or an operation failed with `Sagaflow.Cancelled`.
pub(crate) fn is_cancelled(err: &OperationError) -> bool {
    err.status() == Some("CANCELLED")
        || err
            .wire()
            .and_then(|w| w.error_type())
            .is_some_and(|t| t == CANCELLED)
}

/// The error type of what Sagaflow's cancel ended.
pub(crate) const CANCELLED: &str = "Sagaflow.Cancelled";
