//! Activities: CreateActivity, DescribeActivity, ListActivities,
//! DeleteActivity and GetActivityTask. An activity is a store row (name,
//! creation date, tags); its tasks are the parked activity Tasks of running
//! executions, offered in the store by the engine
//! ([`Engine::poll_activity`](sagaflow_runtime::Engine::poll_activity)) and
//! answered with the task-token actions like any callback task. In a
//! cluster a worker may poll any node: the hand-out's heartbeat goes to the
//! node that owns the execution ([`OwnerRelay`]).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use axum::http::{header, StatusCode};
use sagaflow_core::asl::run::{ACCOUNT, REGION};
use sagaflow_runtime::Relay;
use sagaflow_store::{ActivityRecord, Tags};
use serde_json::{json, Value};

use super::versions::page;
use super::{epoch, from_engine, invalid_arn, now_ms, tags, AwsError, Input};
use crate::AppState;

/// How long GetActivityTask waits for a task, as AWS (at most the server's
/// `max_wait_secs`).
const POLL_SECS: u64 = 60;

pub(super) fn activity_arn(name: &str) -> String {
    format!("arn:aws:states:{REGION}:{ACCOUNT}:activity:{name}")
}

/// The name in `arn:aws:states:REGION:ACCOUNT:activity:NAME`.
pub(super) fn activity_of(arn: &str) -> Result<String, AwsError> {
    sagaflow_core::activity_name(arn)
        .map(str::to_string)
        .ok_or_else(|| {
            invalid_arn(
                arn,
                "an activity ARN (arn:aws:states:REGION:ACCOUNT:activity:NAME)",
            )
        })
}

fn missing(arn: &str) -> AwsError {
    AwsError::new(
        "ActivityDoesNotExist",
        format!("Activity Does Not Exist: '{arn}'"),
    )
}

async fn get(st: &AppState, arn: &str) -> Result<ActivityRecord, AwsError> {
    let name = activity_of(arn)?;
    match st.engine.store().get_activity(&name).await {
        Ok(Some(a)) => Ok(a),
        Ok(None) => Err(missing(arn)),
        Err(e) => Err(from_engine(e.into())),
    }
}

fn item(a: &ActivityRecord) -> Value {
    json!({
        "activityArn": activity_arn(&a.name),
        "name": a.name,
        "creationDate": epoch(a.created_at),
    })
}

pub(super) async fn create_activity(st: &AppState, input: &Input) -> Result<Value, AwsError> {
    let name = input.required("name")?;
    if !sagaflow_core::activity_name_ok(name) {
        return Err(AwsError::new(
            "InvalidName",
            format!("Invalid Name: '{name}' (1 to 80 characters, no white space, brackets, wildcards, control characters or any of \"#%\\^|~`$&,;:/)"),
        ));
    }
    let tags = match input.0.get("tags") {
        None | Some(Value::Null) => Tags::new(),
        Some(_) => tags::tag_list(input)?,
    };
    if tags.len() > tags::MAX_TAGS {
        return Err(AwsError::new(
            "TooManyTags",
            format!(
                "Too many tags: '{}' would have more than {} tags",
                activity_arn(name),
                tags::MAX_TAGS
            ),
        ));
    }
    // Idempotent, as on AWS: the existing activity is answered as it is.
    let (activity, _) = st
        .engine
        .store()
        .create_activity(name, &tags, now_ms())
        .await
        .map_err(|e| from_engine(e.into()))?;
    Ok(json!({
        "activityArn": activity_arn(&activity.name),
        "creationDate": epoch(activity.created_at),
    }))
}

pub(super) async fn describe_activity(st: &AppState, input: &Input) -> Result<Value, AwsError> {
    let activity = get(st, input.required("activityArn")?).await?;
    Ok(item(&activity))
}

pub(super) async fn list_activities(st: &AppState, input: &Input) -> Result<Value, AwsError> {
    let max = input.max_results()?;
    let all = st
        .engine
        .store()
        .list_activities()
        .await
        .map_err(|e| from_engine(e.into()))?;
    let (items, next) = page(&all, |a| a.name.clone(), input.string("nextToken")?, max)?;
    let mut out = json!({ "activities": items.iter().map(item).collect::<Vec<_>>() });
    if let Some(next) = next {
        out["nextToken"] = json!(next);
    }
    Ok(out)
}

/// Idempotent. Tasks already waiting on it are not answered: they end by
/// their timeouts, or go to the workers of an activity of the same name
/// created again.
pub(super) async fn delete_activity(st: &AppState, input: &Input) -> Result<Value, AwsError> {
    let name = activity_of(input.required("activityArn")?)?;
    st.engine
        .store()
        .delete_activity(&name)
        .await
        .map_err(|e| from_engine(e.into()))?;
    Ok(json!({}))
}

/// A long poll: answers at once when a task waits, else waits up to 60 s
/// (or the server's `max_wait_secs`) and answers `{}` if none came.
pub(super) async fn get_activity_task(st: &AppState, input: &Input) -> Result<Value, AwsError> {
    let arn = input.required("activityArn")?;
    let worker = input.string("workerName")?.unwrap_or_default();
    if worker.chars().count() > 80 {
        return Err(AwsError::validation(format!(
            "1 validation error detected: Value '{worker}' at 'workerName' failed to satisfy constraint: Member must have length less than or equal to 80"
        )));
    }
    let activity = get(st, arn).await?;
    let wait = Duration::from_secs(POLL_SECS.min(st.config.max_wait_secs));
    let mut stopping = st.stopping.subscribe();
    let stopped = async move {
        if stopping.wait_for(|s| *s).await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let task = st
        .engine
        .poll_activity(&activity.name, worker, wait, stopped, &OwnerRelay(st))
        .await
        .map_err(from_engine)?;
    Ok(match task {
        Some(task) => json!({ "taskToken": task.token, "input": task.input.to_string() }),
        None => json!({}),
    })
}

/// Several nodes: records the hand-out of an activity task at the node
/// that owns its execution, as a SendTaskHeartbeat sent there (marked
/// forwarded, so that node never passes it on; with the server's first
/// token when authentication is on, which every node shares).
struct OwnerRelay<'a>(&'a AppState);

/// How long the owner may take to answer a relayed heartbeat.
const RELAY_TIMEOUT: Duration = Duration::from_secs(10);

impl Relay for OwnerRelay<'_> {
    fn heartbeat<'a>(
        &'a self,
        address: &'a str,
        token: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<bool, String>> + Send + 'a>> {
        Box::pin(async move {
            let st = self.0;
            let mut request = st
                .forwarder
                .post(format!("{}/", address.trim_end_matches('/')))
                .timeout(RELAY_TIMEOUT)
                .header(header::CONTENT_TYPE, "application/x-amz-json-1.0")
                .header(super::TARGET, "AWSStepFunctions.SendTaskHeartbeat")
                .header(crate::forward::FORWARDED, "1")
                .body(json!({ "taskToken": token }).to_string());
            if let Some(t) = st.config.auth_tokens.iter().next() {
                request = request.bearer_auth(t);
            }
            let answer = request.send().await.map_err(|e| e.to_string())?;
            let status = answer.status();
            if status == StatusCode::OK {
                return Ok(true);
            }
            let body: Value = answer.json().await.unwrap_or(Value::Null);
            let kind = body["__type"].as_str().unwrap_or_default();
            // The task no longer waits: answered, timed out, or gone.
            if status == StatusCode::BAD_REQUEST
                && ["#TaskTimedOut", "#InvalidToken", "#TaskDoesNotExist"]
                    .iter()
                    .any(|k| kind.ends_with(k))
            {
                return Ok(false);
            }
            Err(format!("{status}: {body}"))
        })
    }
}
