//! GetExecutionHistory: an execution's Step Functions history, rendered
//! from the core's trace (see `sagaflow_core::trace`), or a map run child
//! execution's own (see `map_runs::child_trace`), paged as AWS pages it.
//!
//! Both histories go through the same rendering ([`event_shape`],
//! [`history_events`]) and paging, so a child's events look like its
//! parent's.

use sagaflow_core::asl::run::{child_owner, Trace, TraceKind, REGION};
use sagaflow_core::ErrorInfo;
use serde_json::{json, Value};

use super::{epoch, execution, history_of, map_runs, plan_of, text, AwsError, Input, ROLE_ARN};
use crate::AppState;

pub(super) async fn get_execution_history(st: &AppState, input: &Input) -> Result<Value, AwsError> {
    let max = input.max_results()?;
    let reverse = input.boolean("reverseOrder")?.unwrap_or(false);
    let include_data = input.boolean("includeExecutionData")?.unwrap_or(true);
    let token = input.string("nextToken")?;
    let arn = input.required("executionArn")?;
    let traces = match child_owner(arn) {
        Some(child) => map_runs::child_trace(st, arn, child).await?,
        None => execution_trace(st, input).await?,
    };
    let mut events = history_events(&traces, include_data);
    let total = events.len();
    let offset = match token {
        None => 0,
        Some(t) => t
            .parse::<usize>()
            .ok()
            .filter(|o| *o <= total)
            .ok_or_else(|| AwsError::new("InvalidToken", format!("Invalid Token: '{t}'")))?,
    };
    if reverse {
        events.reverse();
    }
    let page: Vec<Value> = events.into_iter().skip(offset).take(max).collect();
    let next = offset + page.len();
    let mut out = json!({ "events": page });
    if next < total {
        out["nextToken"] = json!(next.to_string());
    }
    Ok(out)
}

/// The trace of the execution `executionArn` names.
async fn execution_trace(st: &AppState, input: &Input) -> Result<Vec<Trace>, AwsError> {
    let rec = execution(st, input).await?;
    let plan = plan_of(st, &rec).await?;
    let events = history_of(st, &rec).await?;
    match sagaflow_core::trace(&plan, &events) {
        Ok(t) => Ok(t),
        Err(e) if e.code() == "not_asl" => Err(AwsError::validation(format!(
            "execution '{}' runs the saga-format definition `{}`: GetExecutionHistory renders Amazon States Language executions only; its history is at GET /v1/executions/{}/history",
            rec.id, rec.definition, rec.id
        ))),
        Err(e) => Err(AwsError::internal(format!(
            "the history of execution '{}' does not replay: {e}",
            rec.id
        ))),
    }
}

/// AWS's `resourceType` and `resource` of a task: for
/// `arn:aws:states:::lambda:invoke.waitForTaskToken`, `lambda` and
/// `invoke.waitForTaskToken`; for another ARN, its service and the rest.
fn resource_parts(arn: &str) -> (String, String) {
    if let Some(rest) = arn.strip_prefix("arn:aws:states:::") {
        let (service, resource) = rest.split_once(':').unwrap_or((rest, ""));
        return (service.to_string(), resource.to_string());
    }
    match arn.splitn(6, ':').collect::<Vec<_>>().as_slice() {
        ["arn", _, service, _, _, rest] => (service.to_string(), rest.to_string()),
        _ => ("sagaflow".to_string(), arn.to_string()),
    }
}

/// A Lambda function ARN given directly as a Task's `Resource`: AWS shows
/// its calls as `LambdaFunction…` events rather than `Task…` ones.
/// An activity's ARN: its Task's events are `Activity…` ones, as in AWS.
fn is_activity(resource: &str) -> bool {
    sagaflow_core::exchange::activity_name(resource).is_some()
}

fn is_lambda_function(resource: &str) -> bool {
    resource.starts_with("arn:aws:lambda:") && resource.contains(":function:")
}

fn error_details(e: &ErrorInfo) -> Value {
    json!({ "error": e.error, "cause": e.cause })
}

/// The type and details (member name, value) of one history event.
fn event_shape(kind: &TraceKind) -> (String, Option<(&'static str, Value)>) {
    fn task(resource: &str, mut details: Value) -> Value {
        let (resource_type, resource) = resource_parts(resource);
        details["resourceType"] = json!(resource_type);
        details["resource"] = json!(resource);
        details
    }
    let simple = |t: &str| (t.to_string(), None);
    let with = |t: &str, key: &'static str, v: Value| (t.to_string(), Some((key, v)));
    match kind {
        TraceKind::ExecutionStarted { input } => with(
            "ExecutionStarted",
            "executionStartedEventDetails",
            json!({ "input": text(input), "inputDetails": { "truncated": false }, "roleArn": ROLE_ARN }),
        ),
        TraceKind::ExecutionSucceeded { output } => with(
            "ExecutionSucceeded",
            "executionSucceededEventDetails",
            json!({ "output": text(output), "outputDetails": { "truncated": false } }),
        ),
        TraceKind::ExecutionFailed { error } => with(
            "ExecutionFailed",
            "executionFailedEventDetails",
            error_details(error),
        ),
        TraceKind::ExecutionAborted { reason } => with(
            "ExecutionAborted",
            "executionAbortedEventDetails",
            json!({ "cause": reason }),
        ),
        TraceKind::ExecutionTimedOut { error } => with(
            "ExecutionTimedOut",
            "executionTimedOutEventDetails",
            error_details(error),
        ),
        // `redriveCount` is filled in by [`history_events`].
        TraceKind::ExecutionRedriven {} => with(
            "ExecutionRedriven",
            "executionRedrivenEventDetails",
            json!({}),
        ),
        TraceKind::StateEntered {
            name,
            type_name,
            input,
        } => with(
            &format!("{type_name}StateEntered"),
            "stateEnteredEventDetails",
            json!({ "name": name, "input": text(input), "inputDetails": { "truncated": false } }),
        ),
        TraceKind::StateExited {
            name,
            type_name,
            output,
            assigned,
        } => {
            let mut details = json!({ "name": name, "output": text(output), "outputDetails": { "truncated": false } });
            // A state with an `Assign`: what it set, each value as JSON text.
            if let Some(assigned) = assigned {
                details["assignedVariables"] = json!(assigned);
                details["assignedVariablesDetails"] = json!({ "truncated": false });
            }
            with(
                &format!("{type_name}StateExited"),
                "stateExitedEventDetails",
                details,
            )
        }
        TraceKind::TaskScheduled {
            resource,
            parameters,
            ..
        } if is_activity(resource) => with(
            "ActivityScheduled",
            "activityScheduledEventDetails",
            json!({ "resource": resource, "input": text(parameters), "inputDetails": { "truncated": false } }),
        ),
        TraceKind::TaskStarted { resource, .. } if is_activity(resource) => {
            with("ActivityStarted", "activityStartedEventDetails", json!({}))
        }
        TraceKind::TaskSucceeded {
            resource, output, ..
        } if is_activity(resource) => with(
            "ActivitySucceeded",
            "activitySucceededEventDetails",
            json!({ "output": text(output), "outputDetails": { "truncated": false } }),
        ),
        TraceKind::TaskFailed {
            resource, error, ..
        } if is_activity(resource) => with(
            "ActivityFailed",
            "activityFailedEventDetails",
            error_details(error),
        ),
        TraceKind::TaskTimedOut {
            resource, error, ..
        } if is_activity(resource) => with(
            "ActivityTimedOut",
            "activityTimedOutEventDetails",
            error_details(error),
        ),
        TraceKind::TaskScheduled {
            resource,
            parameters,
            ..
        } if is_lambda_function(resource) => with(
            "LambdaFunctionScheduled",
            "lambdaFunctionScheduledEventDetails",
            json!({ "resource": resource, "input": text(parameters), "inputDetails": { "truncated": false } }),
        ),
        TraceKind::TaskScheduled {
            resource,
            parameters,
            ..
        } => with(
            "TaskScheduled",
            "taskScheduledEventDetails",
            task(
                resource,
                json!({ "region": REGION, "parameters": text(parameters) }),
            ),
        ),
        TraceKind::TaskStarted { resource, .. } if is_lambda_function(resource) => {
            simple("LambdaFunctionStarted")
        }
        TraceKind::TaskStarted { resource, .. } => with(
            "TaskStarted",
            "taskStartedEventDetails",
            task(resource, json!({})),
        ),
        TraceKind::TaskSubmitted { resource, .. } => with(
            "TaskSubmitted",
            "taskSubmittedEventDetails",
            task(resource, json!({})),
        ),
        TraceKind::TaskSucceeded {
            resource, output, ..
        } if is_lambda_function(resource) => with(
            "LambdaFunctionSucceeded",
            "lambdaFunctionSucceededEventDetails",
            json!({ "output": text(output), "outputDetails": { "truncated": false } }),
        ),
        TraceKind::TaskSucceeded {
            resource, output, ..
        } => with(
            "TaskSucceeded",
            "taskSucceededEventDetails",
            task(
                resource,
                json!({ "output": text(output), "outputDetails": { "truncated": false } }),
            ),
        ),
        TraceKind::TaskFailed {
            resource, error, ..
        } if is_lambda_function(resource) => with(
            "LambdaFunctionFailed",
            "lambdaFunctionFailedEventDetails",
            error_details(error),
        ),
        TraceKind::TaskFailed {
            resource, error, ..
        } => with(
            "TaskFailed",
            "taskFailedEventDetails",
            task(resource, error_details(error)),
        ),
        TraceKind::TaskTimedOut {
            resource, error, ..
        } if is_lambda_function(resource) => with(
            "LambdaFunctionTimedOut",
            "lambdaFunctionTimedOutEventDetails",
            error_details(error),
        ),
        TraceKind::TaskTimedOut {
            resource, error, ..
        } => with(
            "TaskTimedOut",
            "taskTimedOutEventDetails",
            task(resource, error_details(error)),
        ),
        TraceKind::WaitStateAborted { .. } => simple("WaitStateAborted"),
        TraceKind::ParallelStateStarted { .. } => simple("ParallelStateStarted"),
        TraceKind::ParallelStateSucceeded { .. } => simple("ParallelStateSucceeded"),
        TraceKind::ParallelStateFailed { .. } => simple("ParallelStateFailed"),
        TraceKind::ParallelStateAborted { .. } => simple("ParallelStateAborted"),
        TraceKind::MapStateStarted { length, .. } => with(
            "MapStateStarted",
            "mapStateStartedEventDetails",
            json!({ "length": length }),
        ),
        TraceKind::MapIterationStarted { name, index } => with(
            "MapIterationStarted",
            "mapIterationStartedEventDetails",
            json!({ "name": name, "index": index }),
        ),
        TraceKind::MapIterationSucceeded { name, index } => with(
            "MapIterationSucceeded",
            "mapIterationSucceededEventDetails",
            json!({ "name": name, "index": index }),
        ),
        TraceKind::MapIterationFailed { name, index } => with(
            "MapIterationFailed",
            "mapIterationFailedEventDetails",
            json!({ "name": name, "index": index }),
        ),
        TraceKind::MapIterationAborted { name, index } => with(
            "MapIterationAborted",
            "mapIterationAbortedEventDetails",
            json!({ "name": name, "index": index }),
        ),
        TraceKind::MapStateSucceeded { .. } => simple("MapStateSucceeded"),
        TraceKind::MapStateFailed { .. } => simple("MapStateFailed"),
        TraceKind::MapStateAborted { .. } => simple("MapStateAborted"),
        TraceKind::MapRunStarted { arn } => with(
            "MapRunStarted",
            "mapRunStartedEventDetails",
            json!({ "mapRunArn": arn }),
        ),
        TraceKind::MapRunSucceeded {} => simple("MapRunSucceeded"),
        TraceKind::MapRunFailed { error } => with(
            "MapRunFailed",
            "mapRunFailedEventDetails",
            json!({ "error": error.error, "cause": error.cause }),
        ),
        TraceKind::MapRunAborted {} => simple("MapRunAborted"),
        TraceKind::MapRunRedriven { arn, redrive_count } => with(
            "MapRunRedriven",
            "mapRunRedrivenEventDetails",
            json!({ "mapRunArn": arn, "redriveCount": redrive_count }),
        ),
        TraceKind::EvaluationFailed {
            state,
            error,
            location,
        } => {
            let mut details = json!({ "state": state, "error": error.error, "cause": error.cause });
            if let Some(l) = location {
                details["location"] = json!(l);
            }
            with("EvaluationFailed", "evaluationFailedEventDetails", details)
        }
    }
}

/// The history events, oldest first, numbered from 1. `previousEventId` is
/// the event before (0 for the first): Sagaflow records no causal links, and
/// in a sequential machine the previous event is the cause.
fn history_events(traces: &[Trace], include_data: bool) -> Vec<Value> {
    let mut redrives = 0;
    traces
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let (kind, details) = event_shape(&t.kind);
            let mut v = json!({
                "timestamp": epoch(t.at),
                "type": kind,
                "id": i + 1,
                "previousEventId": i,
            });
            if let Some((key, mut details)) = details {
                if matches!(t.kind, TraceKind::ExecutionRedriven {}) {
                    redrives += 1;
                    details["redriveCount"] = json!(redrives);
                }
                if !include_data {
                    if let Some(d) = details.as_object_mut() {
                        for data in ["input", "output", "parameters"] {
                            d.remove(data);
                        }
                    }
                }
                v[key] = details;
            }
            v
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_split_into_their_type_and_resource_as_aws_shows_them() {
        assert_eq!(
            resource_parts("arn:aws:states:::lambda:invoke.waitForTaskToken"),
            ("lambda".into(), "invoke.waitForTaskToken".into())
        );
        assert_eq!(
            resource_parts("arn:aws:sqs:us-east-1:1:queue"),
            ("sqs".into(), "queue".into())
        );
        assert!(is_lambda_function(
            "arn:aws:lambda:us-east-1:1:function:reserve"
        ));
        assert!(!is_lambda_function("arn:aws:states:::lambda:invoke"));
    }
}
