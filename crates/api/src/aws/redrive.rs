//! RedriveExecution, and what DescribeExecution says about redrives:
//! `redriveCount`, `redriveDate`, and `redriveStatus` with its reason.
//!
//! Whether an execution can be redriven is asked of the core itself: the
//! history is replayed and a redrive decided without being recorded, so the
//! answer is the one `RedriveExecution` would give (a failure in a `Fail`
//! state, a history at its quota, a status Step Functions does not redrive).

use sagaflow_core::event::{EventKind, Millis};
use sagaflow_core::{Ctx, Execution, Input as CoreInput, Status};
use serde_json::{json, Value};

use super::{epoch, execution, from_engine, history_of, now_ms, plan_of, AwsError, Input};
use crate::AppState;
use sagaflow_store::ExecutionRecord;

pub(super) async fn redrive_execution(st: &AppState, input: &Input) -> Result<Value, AwsError> {
    input.string("clientToken")?;
    let rec = execution(st, input).await?;
    st.engine.redrive(&rec.id).await.map_err(from_engine)?;
    Ok(json!({ "redriveDate": epoch(now_ms()) }))
}

/// The redrive members of DescribeExecution's answer, added to `v`.
pub(super) async fn describe(
    st: &AppState,
    rec: &ExecutionRecord,
    v: &mut Value,
) -> Result<(), AwsError> {
    // Only the times of the redrives: a poller's DescribeExecution of a
    // running execution does not read (or decode) its history.
    let redrives: Vec<Millis> = st
        .engine
        .store()
        .event_times(&rec.id, EventKind::ExecutionRedriven {}.name())
        .await
        .map_err(|e| from_engine(e.into()))?;
    v["redriveCount"] = json!(redrives.len());
    if let Some(last) = redrives.last() {
        v["redriveDate"] = epoch(*last);
    }
    let refusal = match rec.status {
        Status::Running | Status::Compensating => {
            Some("Execution is RUNNING and cannot be redriven.".to_string())
        }
        Status::Succeeded => Some("Execution is SUCCEEDED and cannot be redriven.".to_string()),
        _ => {
            let plan = plan_of(st, rec).await?;
            let events = history_of(st, rec).await?;
            // A replay is CPU work proportional to the history: off the
            // workers that answer requests.
            tokio::task::spawn_blocking(move || refusal(&plan, &events))
                .await
                .map_err(|_| AwsError::unavailable("the server is shutting down"))?
        }
    };
    match refusal {
        None => v["redriveStatus"] = json!("REDRIVABLE"),
        Some(reason) => {
            v["redriveStatus"] = json!("NOT_REDRIVABLE");
            v["redriveStatusReason"] = json!(reason);
        }
    }
    Ok(())
}

/// Why a redrive of the execution `events` record would be refused, if it
/// would: the core decides one (and records nothing).
fn refusal(plan: &sagaflow_core::Plan, events: &[sagaflow_core::Event]) -> Option<String> {
    let ex = match Execution::replay(plan, events) {
        Ok(ex) => ex,
        Err(e) => return Some(format!("the history does not replay: {e}")),
    };
    let ctx = Ctx {
        now: now_ms(),
        random: 0.5,
        entropy: 0,
    };
    ex.decide(plan, CoreInput::Redrive, ctx)
        .err()
        .map(|e| e.to_string())
}
