//! The Step Functions API: Amazon's JSON 1.0 protocol on the same server as
//! the native API, so boto3, the AWS CLI and the AWS SDKs work against
//! Sagaflow with `--endpoint-url`.
//!
//! Requests are `POST /` with `X-Amz-Target: AWSStepFunctions.<Action>` and a
//! JSON body (any content type is accepted); answers are JSON with
//! `Content-Type: application/x-amz-json-1.0` and an `x-amzn-RequestId`.
//! Errors are HTTP 400 with `{"__type": "com.amazonaws.states#<Name>",
//! "message"}` and `x-amzn-ErrorType: <Name>` (503 `ServiceUnavailable`
//! while storage fails or the server stops, 500 `InternalFailure` only for a
//! history that no longer replays).
//!
//! The mapping onto Sagaflow:
//! - a state machine is a definition: its name is the definition's name, its
//!   ARN [`state_machine_arn`]; CreateStateMachine deploys the ASL document
//!   through [`Engine::deploy`](sagaflow_runtime::Engine::deploy) (every
//!   definition, saga-format ones too, is listed and described);
//! - an execution's name is its execution id, its ARN [`execution_arn`];
//!   execution ids are unique across machines, so two machines cannot have
//!   executions of the same name;
//! - statuses: running, compensating → `RUNNING`; succeeded → `SUCCEEDED`;
//!   failed, compensated → `FAILED`; cancelled → `ABORTED`; timed_out →
//!   `TIMED_OUT`;
//! - GetExecutionHistory (`history.rs`) renders ASL executions with
//!   [`sagaflow_core::trace`]; a saga-format execution is refused
//!   with `ValidationException` naming its native history route (its events,
//!   steps and compensations, have no faithful Step Functions shape);
//! - UpdateStateMachine, ValidateStateMachineDefinition and
//!   DescribeStateMachineForExecution are in `machines.rs` (a machine's
//!   `revisionId` is its latest definition version), the tag actions in
//!   `tags.rs` (stored with the definition), published versions and aliases
//!   (and starting an execution through them) in `versions.rs`, activities
//!   and GetActivityTask in `activities.rs` (their tasks are answered with
//!   the task-token actions, as every callback task);
//! - a distributed Map's map runs, and their child executions (described
//!   and with a history of their own, though they live in the parent's
//!   log), are in `map_runs.rs`;
//! - not kept: `roleArn` (a fixed role is described), `type` (accepted,
//!   described as `STANDARD`), logging and tracing;
//! - several nodes: a request about an execution another node owns (stop,
//!   redrive, task tokens) is forwarded there like a native one
//!   (`crate::forward`), or answered `ServiceUnavailable` to retry.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sagaflow_core::asl::run::{child_owner, execution_arn, state_machine_arn};
use sagaflow_core::document::type_name;
use sagaflow_core::event::{EventKind, Millis};
use sagaflow_core::{ErrorInfo, Status};
use sagaflow_runtime::Error as EngineError;
use sagaflow_store::{DefinitionRecord, ExecutionRecord, ListFilter};
use serde_json::{json, Map, Value};

use crate::AppState;

mod activities;
mod history;
mod machines;
mod map_runs;
mod redrive;
mod tags;
mod test_state;
mod versions;

/// The header that selects this protocol (and its action).
pub const TARGET: &str = "x-amz-target";
const TARGET_PREFIX: &str = "AWSStepFunctions.";
const CONTENT_TYPE: &str = "application/x-amz-json-1.0";
/// Described as every machine's role: Sagaflow calls its participants itself.
const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/sagaflow";

/// The actions served.
pub const ACTIONS: &[&str] = &[
    "CreateStateMachine",
    "DescribeStateMachine",
    "ListStateMachines",
    "DeleteStateMachine",
    "StartExecution",
    "StartSyncExecution",
    "DescribeExecution",
    "ListExecutions",
    "GetExecutionHistory",
    "StopExecution",
    "RedriveExecution",
    "SendTaskSuccess",
    "SendTaskFailure",
    "SendTaskHeartbeat",
    "ValidateStateMachineDefinition",
    "UpdateStateMachine",
    "DescribeStateMachineForExecution",
    "TagResource",
    "UntagResource",
    "ListTagsForResource",
    "PublishStateMachineVersion",
    "ListStateMachineVersions",
    "DeleteStateMachineVersion",
    "CreateStateMachineAlias",
    "DescribeStateMachineAlias",
    "UpdateStateMachineAlias",
    "DeleteStateMachineAlias",
    "ListStateMachineAliases",
    "CreateActivity",
    "DescribeActivity",
    "ListActivities",
    "DeleteActivity",
    "GetActivityTask",
    "TestState",
    "DescribeMapRun",
    "ListMapRuns",
    "UpdateMapRun",
];

// ---------------------------------------------------------------------------
// Errors

/// An error in the AWS JSON 1.0 shape.
#[derive(Debug)]
pub struct AwsError {
    status: StatusCode,
    name: &'static str,
    message: String,
    /// Several nodes: the execution's owner, where [`crate::forward`] sends
    /// the request instead (as for the native routes).
    owner: Option<String>,
}

impl AwsError {
    fn new(name: &'static str, message: impl Into<String>) -> Self {
        AwsError {
            status: StatusCode::BAD_REQUEST,
            name,
            message: message.into(),
            owner: None,
        }
    }

    fn validation(message: impl Into<String>) -> Self {
        Self::new("ValidationException", message)
    }

    fn unavailable(message: impl Into<String>) -> Self {
        AwsError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            ..Self::new("ServiceUnavailable", message)
        }
    }

    fn internal(message: impl Into<String>) -> Self {
        let message = message.into();
        tracing::error!(error = %message, "Step Functions API request failed");
        AwsError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            ..Self::new("InternalFailure", message)
        }
    }

    fn machine_missing(name: &str) -> Self {
        Self::new(
            "StateMachineDoesNotExist",
            format!(
                "State Machine Does Not Exist: '{}'",
                state_machine_arn(name)
            ),
        )
    }

    fn execution_missing(arn: &str) -> Self {
        Self::new(
            "ExecutionDoesNotExist",
            format!("Execution Does Not Exist: '{arn}'"),
        )
    }
}

impl IntoResponse for AwsError {
    fn into_response(self) -> Response {
        let body = json!({
            "__type": format!("com.amazonaws.states#{}", self.name),
            "message": self.message,
        });
        let mut resp = json_response(self.status, &body);
        resp.headers_mut().insert(
            HeaderName::from_static("x-amzn-errortype"),
            HeaderValue::from_static(self.name),
        );
        crate::forward::mark_owner(&mut resp, self.owner.as_deref());
        resp
    }
}

/// The AWS error for an engine error, by its stable code (so that a new
/// engine error falls back to a `ValidationException` with its message).
fn from_engine(e: EngineError) -> AwsError {
    if let EngineError::Invalid(sagaflow_core::Error::InvalidDefinition(violations)) = &e {
        return invalid_definition(&problems(violations));
    }
    let message = e.to_string();
    match &e {
        EngineError::Store(sagaflow_store::Error::NotFound { what, id })
            if *what == "definition" =>
        {
            return AwsError::machine_missing(id)
        }
        EngineError::Store(sagaflow_store::Error::NotFound { id, .. }) => {
            return AwsError::new(
                "ExecutionDoesNotExist",
                format!("Execution Does Not Exist: '{id}'"),
            )
        }
        EngineError::DefinitionNotFound(name) => return AwsError::machine_missing(name),
        // Another node runs it: forwarded there (a 503 to retry if that fails).
        EngineError::OwnedElsewhere { address, .. } => {
            return AwsError {
                owner: address.clone(),
                ..AwsError::unavailable(message)
            }
        }
        _ => {}
    }
    match e.code() {
        "execution_not_found" => AwsError::new("ExecutionDoesNotExist", message),
        "invalid_definition" => {
            invalid_definition(&[Problem::new("SCHEMA_VALIDATION_FAILED", "/", message)])
        }
        "execution_conflict" => AwsError::new("ExecutionAlreadyExists", message),
        "not_redrivable" => AwsError::new("ExecutionNotRedrivable", message),
        "invalid_execution_id" => AwsError::new("InvalidName", message),
        "invalid_task_token" => AwsError::new("InvalidToken", message),
        "callback_not_waiting" => AwsError::new("TaskTimedOut", message),
        "invalid_cursor" => AwsError::new("InvalidToken", message),
        "storage_corrupt" | "illegal_transition" | "history_unreplayable" => {
            AwsError::internal(message)
        }
        "shutting_down"
        | "execution_busy"
        | "storage_unavailable"
        | "owned_elsewhere"
        | "node_fenced" => AwsError::unavailable(message),
        _ => AwsError::validation(message),
    }
}

/// Locations are JSON pointers (`/States/A/Next`); a bare one is the root.
fn location(l: &str) -> &str {
    if l.is_empty() || l == "$" {
        "/"
    } else {
        l
    }
}

/// One thing wrong with a definition, as AWS names it: an upper-case code
/// (`INVALID_JSON_DESCRIPTION`, `SCHEMA_VALIDATION_FAILED`, or the
/// parser's violation code upper-cased), a JSON pointer and a message.
#[derive(Debug, Clone, PartialEq)]
struct Problem {
    code: String,
    location: String,
    message: String,
}

impl Problem {
    fn new(code: &str, location: &str, message: impl Into<String>) -> Self {
        Problem {
            code: code.to_string(),
            location: location.to_string(),
            message: message.into(),
        }
    }
}

/// The parser's violations as problems.
fn problems(violations: &[sagaflow_core::Violation]) -> Vec<Problem> {
    violations
        .iter()
        .map(|v| Problem::new(&v.code.to_uppercase(), location(&v.location), &v.message))
        .collect()
}

fn invalid_definition(problems: &[Problem]) -> AwsError {
    let listed: Vec<String> = problems
        .iter()
        .map(|p| format!("{} at {}: {}", p.code, p.location, p.message))
        .collect();
    AwsError::new(
        "InvalidDefinition",
        format!("Invalid State Machine Definition: '{}'", listed.join(", ")),
    )
}

fn invalid_arn(arn: &str, expected: &str) -> AwsError {
    AwsError::new(
        "InvalidArn",
        format!("Invalid Arn: '{arn}' is not {expected}"),
    )
}

// ---------------------------------------------------------------------------
// The handler

/// `POST /`: the Step Functions actions when `X-Amz-Target` is present;
/// without it, the route does not exist (as before this protocol).
pub(crate) async fn handle(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(target) = headers.get(TARGET) else {
        return crate::not_found().await.into_response();
    };
    let mut resp = match dispatch(&st, target, body).await {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(e) => e.into_response(),
    };
    if let Ok(id) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        resp.headers_mut()
            .insert(HeaderName::from_static("x-amzn-requestid"), id);
    }
    resp
}

/// The answer to a request body past the server's limit.
pub(crate) fn too_large() -> Response {
    AwsError::validation("the request body is larger than the server's limit").into_response()
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
        body.to_string(),
    )
        .into_response()
}

async fn dispatch(
    st: &AppState,
    target: &HeaderValue,
    body: Result<Bytes, BytesRejection>,
) -> Result<Value, AwsError> {
    let action = target
        .to_str()
        .ok()
        .and_then(|t| t.strip_prefix(TARGET_PREFIX))
        .filter(|a| ACTIONS.contains(a))
        .ok_or_else(|| {
            AwsError::new(
                "UnknownOperationException",
                format!(
                    "unknown operation `{}`; this server serves AWSStepFunctions.{{{}}}",
                    String::from_utf8_lossy(target.as_bytes()),
                    ACTIONS.join(",")
                ),
            )
        })?;
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AwsError::validation("the request body is larger than the server's limit")
        } else {
            AwsError::validation(format!(
                "the request body could not be read: {}",
                e.body_text()
            ))
        }
    })?;
    let input = Input::parse(&body)?;
    match action {
        "CreateStateMachine" => create_state_machine(st, &input).await,
        "DescribeStateMachine" => describe_state_machine(st, &input).await,
        "ListStateMachines" => list_state_machines(st, &input).await,
        "DeleteStateMachine" => delete_state_machine(st, &input).await,
        "StartExecution" => start_execution(st, &input, false).await,
        "StartSyncExecution" => start_execution(st, &input, true).await,
        "DescribeExecution" => describe_execution(st, &input).await,
        "ListExecutions" => list_executions(st, &input).await,
        "GetExecutionHistory" => history::get_execution_history(st, &input).await,
        "StopExecution" => stop_execution(st, &input).await,
        "RedriveExecution" => redrive::redrive_execution(st, &input).await,
        "SendTaskSuccess" => send_task_success(st, &input).await,
        "SendTaskFailure" => send_task_failure(st, &input).await,
        "ValidateStateMachineDefinition" => {
            machines::validate_state_machine_definition(st, &input).await
        }
        "UpdateStateMachine" => machines::update_state_machine(st, &input).await,
        "DescribeStateMachineForExecution" => {
            machines::describe_state_machine_for_execution(st, &input).await
        }
        "TagResource" => tags::tag_resource(st, &input).await,
        "UntagResource" => tags::untag_resource(st, &input).await,
        "ListTagsForResource" => tags::list_tags_for_resource(st, &input).await,
        "PublishStateMachineVersion" => versions::publish_state_machine_version(st, &input).await,
        "ListStateMachineVersions" => versions::list_state_machine_versions(st, &input).await,
        "DeleteStateMachineVersion" => versions::delete_state_machine_version(st, &input).await,
        "CreateStateMachineAlias" => versions::create_state_machine_alias(st, &input).await,
        "DescribeStateMachineAlias" => versions::describe_state_machine_alias(st, &input).await,
        "UpdateStateMachineAlias" => versions::update_state_machine_alias(st, &input).await,
        "DeleteStateMachineAlias" => versions::delete_state_machine_alias(st, &input).await,
        "ListStateMachineAliases" => versions::list_state_machine_aliases(st, &input).await,
        "CreateActivity" => activities::create_activity(st, &input).await,
        "DescribeActivity" => activities::describe_activity(st, &input).await,
        "ListActivities" => activities::list_activities(st, &input).await,
        "DeleteActivity" => activities::delete_activity(st, &input).await,
        "GetActivityTask" => activities::get_activity_task(st, &input).await,
        "TestState" => test_state::test_state(st, &input).await,
        "DescribeMapRun" => map_runs::describe_map_run(st, &input).await,
        "ListMapRuns" => map_runs::list_map_runs(st, &input).await,
        "UpdateMapRun" => map_runs::update_map_run(st, &input).await,
        _ => send_task_heartbeat(st, &input).await,
    }
}

// ---------------------------------------------------------------------------
// Request fields

/// A request body: a JSON object (an empty body is `{}`). Unknown members
/// (tags, logging configuration …) are ignored, as SDKs send them freely.
struct Input(Map<String, Value>);

impl Input {
    fn parse(body: &[u8]) -> Result<Input, AwsError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Input(Map::new()));
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(m)) => Ok(Input(m)),
            Ok(other) => Err(AwsError::new(
                "SerializationException",
                format!(
                    "the request body must be a JSON object, not {}",
                    type_name(&other)
                ),
            )),
            Err(e) => Err(AwsError::new(
                "SerializationException",
                format!("the request body is not valid JSON: {e}"),
            )),
        }
    }

    fn string(&self, field: &str) -> Result<Option<&str>, AwsError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(AwsError::validation(format!(
                "1 validation error detected: '{field}' must be a string, not {}",
                type_name(other)
            ))),
        }
    }

    fn required(&self, field: &str) -> Result<&str, AwsError> {
        self.string(field)?.ok_or_else(|| {
            AwsError::validation(format!(
                "1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null"
            ))
        })
    }

    fn boolean(&self, field: &str) -> Result<Option<bool>, AwsError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(AwsError::validation(format!(
                "1 validation error detected: '{field}' must be a boolean, not {}",
                type_name(other)
            ))),
        }
    }

    /// A string member that must be one of `allowed` when present.
    fn one_of(&self, field: &str, allowed: &[&str]) -> Result<Option<&str>, AwsError> {
        match self.string(field)? {
            Some(v) if !allowed.contains(&v) => Err(AwsError::validation(format!(
                "1 validation error detected: Value '{v}' at '{field}' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
                allowed.join(", ")
            ))),
            v => Ok(v),
        }
    }

    /// An object member (a configuration), when present.
    fn object(&self, field: &str) -> Result<Option<&Map<String, Value>>, AwsError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(other) => Err(AwsError::validation(format!(
                "1 validation error detected: '{field}' must be an object, not {}",
                type_name(other)
            ))),
        }
    }

    /// A whole-number member between `min` and `max`, when present.
    fn whole(&self, field: &str, min: i64, max: i64) -> Result<Option<i64>, AwsError> {
        let n = match self.0.get(field) {
            None | Some(Value::Null) => return Ok(None),
            Some(v) => v.as_i64().ok_or_else(|| {
                AwsError::validation(format!(
                    "1 validation error detected: '{field}' must be a whole number, not {v}"
                ))
            })?,
        };
        if (min..=max).contains(&n) {
            Ok(Some(n))
        } else {
            Err(AwsError::validation(format!(
                "1 validation error detected: Value '{n}' at '{field}' failed to satisfy constraint: Member must have value between {min} and {max}"
            )))
        }
    }

    /// `maxResults`: 0 (or absent) is the default of 100; at most 1000.
    fn max_results(&self) -> Result<usize, AwsError> {
        let n = match self.0.get("maxResults") {
            None | Some(Value::Null) => 0,
            Some(v) => v.as_i64().ok_or_else(|| {
                AwsError::validation(format!(
                    "1 validation error detected: 'maxResults' must be a whole number, not {v}"
                ))
            })?,
        };
        match n {
            0 => Ok(100),
            1..=1000 => Ok(n as usize),
            _ => Err(AwsError::validation(format!(
                "1 validation error detected: Value '{n}' at 'maxResults' failed to satisfy constraint: Member must have value between 0 and 1000"
            ))),
        }
    }
}

/// The name in `arn:aws:states:REGION:ACCOUNT:stateMachine:NAME` (any
/// region and account: Sagaflow has one of each).
fn machine_of(arn: &str) -> Result<String, AwsError> {
    match arn.split(':').collect::<Vec<_>>().as_slice() {
        ["arn", _, "states", _, _, "stateMachine", name] if !name.is_empty() => {
            Ok(name.to_string())
        }
        _ => Err(invalid_arn(
            arn,
            "a state machine ARN (arn:aws:states:REGION:ACCOUNT:stateMachine:NAME)",
        )),
    }
}

/// The machine and execution id in
/// `arn:aws:states:REGION:ACCOUNT:execution:MACHINE:NAME`.
fn execution_of(arn: &str) -> Result<(String, String), AwsError> {
    match arn.splitn(8, ':').collect::<Vec<_>>().as_slice() {
        ["arn", _, "states", _, _, "execution", machine, id]
            if !machine.is_empty() && !id.is_empty() =>
        {
            Ok((machine.to_string(), id.to_string()))
        }
        _ => Err(invalid_arn(
            arn,
            "an execution ARN (arn:aws:states:REGION:ACCOUNT:execution:MACHINE:NAME)",
        )),
    }
}

/// State machine names: what AWS allows and Sagaflow's definition names can
/// hold (letters, digits, `_`, `-`; at most 80).
fn check_machine_name(name: &str) -> Result<(), AwsError> {
    let ok = !name.is_empty()
        && name.len() <= 80
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(AwsError::new(
            "InvalidName",
            format!("Invalid Name: '{name}' (use 1 to 80 letters, digits, `_` or `-`)"),
        ))
    }
}

/// Execution names: what AWS allows and execution ids can hold (letters,
/// digits, `_`, `-`, `.`; at most 80).
fn check_execution_name(name: &str) -> Result<(), AwsError> {
    let ok = !name.is_empty()
        && name.len() <= 80
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(AwsError::new(
            "InvalidName",
            format!("Invalid Name: '{name}' (use 1 to 80 letters, digits, `_`, `-` or `.`)"),
        ))
    }
}

// ---------------------------------------------------------------------------
// Rendering

/// Epoch seconds, as the protocol's timestamps are.
fn epoch(ms: Millis) -> Value {
    json!(ms as f64 / 1000.0)
}

pub(crate) fn now_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

/// JSON values travel as strings holding JSON.
fn text(v: &Value) -> String {
    v.to_string()
}

fn aws_status(s: Status) -> &'static str {
    match s {
        Status::Running | Status::Compensating => "RUNNING",
        Status::Succeeded => "SUCCEEDED",
        Status::Failed | Status::Compensated => "FAILED",
        Status::Cancelled => "ABORTED",
        Status::TimedOut => "TIMED_OUT",
    }
}

/// Our statuses that a `statusFilter` selects.
fn statuses_of(filter: &str) -> Option<&'static [Status]> {
    Some(match filter {
        "RUNNING" => &[Status::Running, Status::Compensating],
        "SUCCEEDED" => &[Status::Succeeded],
        "FAILED" => &[Status::Failed, Status::Compensated],
        "TIMED_OUT" => &[Status::TimedOut],
        "ABORTED" => &[Status::Cancelled],
        // Redrives start at once: nothing is ever pending.
        "PENDING_REDRIVE" => &[],
        _ => return None,
    })
}

fn execution_item(r: &ExecutionRecord) -> Value {
    let mut v = json!({
        "executionArn": execution_arn(&r.definition, &r.id),
        "stateMachineArn": state_machine_arn(&r.definition),
        "name": r.id,
        "status": aws_status(r.status),
        "startDate": epoch(r.started_at),
    });
    if r.status.is_terminal() {
        v["stopDate"] = epoch(r.updated_at);
    }
    v
}

/// DescribeExecution's answer; `origin`: how it was started, as recorded
/// (see [`versions::origin_arns`]).
fn execution_description(r: &ExecutionRecord, origin: Option<&str>) -> Value {
    let mut v = execution_item(r);
    for (member, arn) in versions::origin_arns(&r.definition, r.version, origin) {
        v[member] = json!(arn);
    }
    v["input"] = json!(text(&r.input));
    v["inputDetails"] = json!({ "included": true });
    if r.status == Status::Succeeded {
        if let Some(output) = &r.output {
            v["output"] = json!(text(output));
            v["outputDetails"] = json!({ "included": true });
        }
    }
    if r.status.is_terminal() && r.status != Status::Succeeded {
        if let Some(e) = &r.error {
            v["error"] = json!(e.error);
            v["cause"] = json!(e.cause);
        }
    }
    v
}

// ---------------------------------------------------------------------------
// State machines

async fn get_machine(st: &AppState, name: &str) -> Result<DefinitionRecord, AwsError> {
    st.engine
        .store()
        .get_definition(name, None)
        .await
        .map_err(|e| from_engine(e.into()))
}

/// Reads an Amazon States Language document as strict JSON (no duplicate
/// key, bounded nesting; see `sagaflow_core::document`) on the blocking
/// pool: the document, or what makes it no ASL document (`Err` only when
/// the request cannot be answered).
async fn read_asl(definition: &str) -> Result<Result<Value, Vec<Problem>>, AwsError> {
    let text = definition.to_string();
    let read = tokio::task::spawn_blocking(move || sagaflow_core::document::parse_json_only(&text))
        .await
        .map_err(|_| AwsError::unavailable("the server is shutting down"))?;
    let doc = match read {
        Ok(doc) => doc,
        Err(sagaflow_core::Error::InvalidDefinition(vs))
            if vs.iter().all(|v| v.code == "parse_error") =>
        {
            return Ok(Err(vs
                .iter()
                .map(|v| Problem::new("INVALID_JSON_DESCRIPTION", "/", &v.message))
                .collect()))
        }
        Err(sagaflow_core::Error::InvalidDefinition(vs)) => return Ok(Err(problems(&vs))),
        Err(other) => return Err(from_engine(EngineError::Invalid(other))),
    };
    if !sagaflow_core::asl::is_asl(&doc) {
        let missing: Vec<_> = ["StartAt", "States"]
            .into_iter()
            .filter(|f| doc.get(f).is_none())
            .collect();
        return Ok(Err(vec![Problem::new(
            "SCHEMA_VALIDATION_FAILED",
            "/",
            format!(
                "an Amazon States Language document needs {}",
                missing.join(" and ")
            ),
        )]));
    }
    Ok(Ok(doc))
}

/// [`read_asl`] for an action that refuses a bad document.
async fn read_definition(definition: &str) -> Result<Value, AwsError> {
    read_asl(definition)
        .await?
        .map_err(|problems| invalid_definition(&problems))
}

async fn create_state_machine(st: &AppState, input: &Input) -> Result<Value, AwsError> {
    let name = input.required("name")?;
    let definition = input.required("definition")?;
    input.string("roleArn")?;
    if let Some(t) = input.string("type")? {
        if t != "STANDARD" && t != "EXPRESS" {
            return Err(AwsError::validation(format!(
                "1 validation error detected: Value '{t}' at 'type' failed to satisfy constraint: Member must satisfy enum value set: [STANDARD, EXPRESS]"
            )));
        }
    }
    let tags = match input.0.get("tags") {
        None | Some(Value::Null) => None,
        Some(_) => Some(tags::tag_list(input)?),
    };
    if tags.as_ref().is_some_and(|t| t.len() > tags::MAX_TAGS) {
        return Err(AwsError::new(
            "TooManyTags",
            format!(
                "Too many tags: a state machine has at most {} tags",
                tags::MAX_TAGS
            ),
        ));
    }
    let publish = input.boolean("publish")?.unwrap_or(false);
    let version_description = versions::description(input, "versionDescription")?;
    if version_description.is_some() && !publish {
        return Err(AwsError::validation(
            "Version description can only be set when publish is true",
        ));
    }
    check_machine_name(name)?;
    let doc = read_definition(definition).await?;
    // AWS semantics: the same name with the same definition is the existing
    // machine; with another definition it is a conflict.
    match st.engine.store().get_definition(name, None).await {
        Ok(existing) => {
            let same = existing.format == "asl"
                && serde_json::from_str::<Value>(&existing.source).is_ok_and(|v| v == doc);
            return if same {
                let mut out = json!({
                    "stateMachineArn": state_machine_arn(&existing.name),
                    "creationDate": epoch(existing.created_at),
                });
                if publish {
                    let d = version_description.unwrap_or_default();
                    let v = versions::publish(st, name, existing.version, d).await?;
                    out["stateMachineVersionArn"] = json!(machines::version_arn(name, v.version));
                }
                Ok(out)
            } else {
                Err(AwsError::new(
                    "StateMachineAlreadyExists",
                    format!(
                        "State Machine Already Exists: '{}' (with another definition)",
                        state_machine_arn(name)
                    ),
                ))
            };
        }
        Err(sagaflow_store::Error::NotFound { .. }) => {}
        Err(e) => return Err(from_engine(e.into())),
    }
    let deployed = st
        .engine
        .deploy(Some(name), definition)
        .await
        .map_err(from_engine)?;
    if let Some(tags) = tags.filter(|t| !t.is_empty()) {
        let arn = state_machine_arn(&deployed.record.name);
        tags::change(st, &arn, &deployed.record.name, &tags, &[]).await?;
    }
    let mut out = json!({
        "stateMachineArn": state_machine_arn(&deployed.record.name),
        "creationDate": epoch(deployed.record.created_at),
    });
    if publish {
        let (name, version) = (&deployed.record.name, deployed.record.version);
        let v =
            versions::publish(st, name, version, version_description.unwrap_or_default()).await?;
        out["stateMachineVersionArn"] = json!(machines::version_arn(name, v.version));
    }
    Ok(out)
}

/// DescribeStateMachine of a machine, or of one of its versions
/// (`…:stateMachine:NAME:VERSION`, see [`versions`]).
async fn describe_state_machine(st: &AppState, input: &Input) -> Result<Value, AwsError> {
    input.one_of("includedData", &["ALL_DATA", "METADATA_ONLY"])?;
    let arn = input.required("stateMachineArn")?;
    let d = match versions::qualified_of(arn)? {
        (name, None) => get_machine(st, &name).await?,
        (name, Some(versions::Qualifier::Version(v))) => {
            return versions::describe_version(st, &name, v).await
        }
        (_, Some(versions::Qualifier::Alias(_))) => return Err(invalid_arn(
            arn,
            "a state machine or version ARN (an alias is described by DescribeStateMachineAlias)",
        )),
    };
    Ok(machine_description(&d))
}

/// A definition version described as a state machine.
fn machine_description(d: &DefinitionRecord) -> Value {
    json!({
        "stateMachineArn": state_machine_arn(&d.name),
        "name": d.name,
        "status": "ACTIVE",
        "definition": d.source,
        "roleArn": ROLE_ARN,
        "type": "STANDARD",
        "creationDate": epoch(d.created_at),
        "revisionId": machines::revision_id(d.version),
        "loggingConfiguration": { "level": "OFF", "includeExecutionData": false },
        "tracingConfiguration": { "enabled": false },
    })
}

async fn list_state_machines(st: &AppState, input: &Input) -> Result<Value, AwsError> {
    let max = input.max_results()?;
    // The token is the name of the last machine of the previous page.
    let after = input.string("nextToken")?;
    let mut defs = st
        .engine
        .store()
        .list_definitions()
        .await
        .map_err(|e| from_engine(e.into()))?;
    defs.sort_by(|a, b| a.name.cmp(&b.name));
    let mut page: Vec<_> = defs
        .into_iter()
        .filter(|d| after.is_none_or(|a| d.name.as_str() > a))
        .collect();
    let more = page.len() > max;
    page.truncate(max);
    let mut out = json!({
        "stateMachines": page.iter().map(|d| json!({
            "stateMachineArn": state_machine_arn(&d.name),
            "name": d.name,
            "type": "STANDARD",
            "creationDate": epoch(d.created_at),
        })).collect::<Vec<_>>(),
    });
    if more {
        if let Some(last) = page.last() {
            out["nextToken"] = json!(last.name);
        }
    }
    Ok(out)
}

/// Idempotent, as in AWS: deleting an unknown machine succeeds.
async fn delete_state_machine(st: &AppState, input: &Input) -> Result<Value, AwsError> {
    let name = machine_of(input.required("stateMachineArn")?)?;
    st.engine
        .delete_definition(&name)
        .await
        .map_err(from_engine)?;
    Ok(json!({}))
}

// ---------------------------------------------------------------------------
// Executions

/// The execution an ARN names; it must belong to the machine the ARN says.
async fn execution(st: &AppState, input: &Input) -> Result<ExecutionRecord, AwsError> {
    let arn = input.required("executionArn")?;
    let (machine, id) = execution_of(arn)?;
    match st.engine.get(&id).await {
        Ok(rec) if rec.definition == machine => Ok(rec),
        Ok(_) | Err(EngineError::ExecutionNotFound(_)) => Err(AwsError::execution_missing(arn)),
        Err(e) => Err(from_engine(e)),
    }
}

/// [`Engine::wait`](sagaflow_runtime::Engine::wait), cut short when the server
/// starts shutting down.
async fn wait_for(st: &AppState, id: &str, wait: Duration) -> Result<ExecutionRecord, AwsError> {
    let mut stopping = st.stopping.subscribe();
    let stopped = async move {
        if stopping.wait_for(|s| *s).await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        rec = st.engine.wait(id, wait) => rec.map_err(from_engine),
        () = stopped => st.engine.get(id).await.map_err(from_engine),
    }
}

async fn start_execution(st: &AppState, input: &Input, sync: bool) -> Result<Value, AwsError> {
    // A version or alias ARN: that version, or one the alias routes to.
    let (machine, qualifier) = versions::qualified_of(input.required("stateMachineArn")?)?;
    let name = input.string("name")?;
    if let Some(n) = name {
        check_execution_name(n)?;
    }
    let raw = input.string("input")?.unwrap_or("{}");
    let value: Value = serde_json::from_str(raw).map_err(|e| {
        AwsError::new(
            "InvalidExecutionInput",
            format!("Invalid State Machine Execution Input: '{e}'"),
        )
    })?;
    let version = match &qualifier {
        Some(q) => Some(versions::version_to_start(st, &machine, q).await?),
        None => None,
    };
    let (rec, created) = st
        .engine
        .start_execution_at(&machine, version, value, name.map(String::from))
        .await
        .map_err(|e| match e {
            EngineError::ExecutionConflict { id, what } => AwsError::new(
                "ExecutionAlreadyExists",
                format!(
                    "Execution Already Exists: '{}' (with a different {what})",
                    execution_arn(&machine, &id)
                ),
            ),
            e => from_engine(e),
        })?;
    if let (true, Some(q)) = (created, &qualifier) {
        // Only describes the execution (it runs the version it recorded):
        // a failure to record it does not undo the start.
        if let Err(e) = st
            .engine
            .store()
            .record_execution_origin(&rec.id, &q.recorded())
            .await
        {
            tracing::warn!(execution = %rec.id, error = %e, "could not record how an execution was started");
        }
    }
    let arn = execution_arn(&rec.definition, &rec.id);
    if !sync {
        return Ok(json!({ "executionArn": arn, "startDate": epoch(rec.started_at) }));
    }
    let limit = st.config.max_wait_secs;
    let rec = wait_for(st, &rec.id, Duration::from_secs(limit)).await?;
    let mut v = json!({
        "executionArn": arn,
        "stateMachineArn": state_machine_arn(&rec.definition),
        "name": rec.id,
        "startDate": epoch(rec.started_at),
        "stopDate": epoch(rec.updated_at),
        "input": text(&rec.input),
        "inputDetails": { "included": true },
        "billingDetails": { "billedMemoryUsedInMB": 0, "billedDurationInMilliseconds": 0 },
    });
    let (status, error) = match rec.status {
        Status::Succeeded => ("SUCCEEDED", None),
        Status::TimedOut => ("TIMED_OUT", rec.error.clone()),
        // The call timed out; the execution goes on.
        Status::Running | Status::Compensating => (
            "TIMED_OUT",
            Some(ErrorInfo::new(
                sagaflow_core::error_name::STILL_RUNNING,
                format!("the execution did not finish within {limit}s and is still running: DescribeExecution {arn}"),
            )),
        ),
        _ => ("FAILED", rec.error.clone()),
    };
    v["status"] = json!(status);
    if let (Status::Succeeded, Some(output)) = (rec.status, &rec.output) {
        v["output"] = json!(text(output));
        v["outputDetails"] = json!({ "included": true });
    }
    if let Some(e) = error {
        v["error"] = json!(e.error);
        v["cause"] = json!(e.cause);
    }
    Ok(v)
}

async fn describe_execution(st: &AppState, input: &Input) -> Result<Value, AwsError> {
    let arn = input.required("executionArn")?;
    if let Some(child) = child_owner(arn) {
        return map_runs::describe_child(st, arn, child).await;
    }
    let rec = execution(st, input).await?;
    let origin = st
        .engine
        .store()
        .execution_origin(&rec.id)
        .await
        .map_err(|e| from_engine(e.into()))?;
    let mut v = execution_description(&rec, origin.as_deref());
    redrive::describe(st, &rec, &mut v).await?;
    Ok(v)
}

/// How many store pages one ListExecutions reads at most when its status
/// filter covers two of our statuses (filtered here); it answers with fewer
/// items and a `nextToken` rather than scanning on.
const MAX_PAGES: usize = 20;

async fn list_executions(st: &AppState, input: &Input) -> Result<Value, AwsError> {
    if let Some(arn) = input.string("mapRunArn")? {
        if input.string("stateMachineArn")?.is_some() {
            return Err(AwsError::validation(
                "give either stateMachineArn or mapRunArn, not both",
            ));
        }
        return map_runs::list_children(st, input, arn).await;
    }
    // A version's or an alias's ARN lists the executions started through it.
    let (machine, qualifier) = versions::qualified_of(input.required("stateMachineArn")?)?;
    let statuses = match input.string("statusFilter")? {
        None => None,
        Some(f) => Some(statuses_of(f).ok_or_else(|| {
            AwsError::validation(format!(
                "1 validation error detected: Value '{f}' at 'statusFilter' failed to satisfy constraint: Member must satisfy enum value set: [RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED, PENDING_REDRIVE]"
            ))
        })?),
    };
    let redriven = match input.string("redriveFilter")? {
        None => None,
        Some("REDRIVEN") => Some(true),
        Some("NOT_REDRIVEN") => Some(false),
        Some(f) => {
            return Err(AwsError::validation(format!(
                "1 validation error detected: Value '{f}' at 'redriveFilter' failed to satisfy constraint: Member must satisfy enum value set: [REDRIVEN, NOT_REDRIVEN]"
            )))
        }
    };
    let max = input.max_results()?;
    get_machine(st, &machine).await?;
    let mut cursor = input.string("nextToken")?.map(String::from);
    let mut items: Vec<Value> = Vec::new();
    if !statuses.is_some_and(|s| s.is_empty()) {
        let store_status = match statuses {
            Some([one]) => Some(*one),
            _ => None,
        };
        for _ in 0..MAX_PAGES {
            let filter = ListFilter {
                status: store_status,
                definition: Some(machine.clone()),
                limit: max - items.len(),
                cursor: cursor.take(),
                ..ListFilter::default()
            };
            let page = st
                .engine
                .store()
                .list_executions(&filter)
                .await
                .map_err(|e| from_engine(e.into()))?;
            // Each item's two small reads, for the whole page at once.
            let listed = page
                .items
                .iter()
                .filter(|r| statuses.is_none_or(|s| s.contains(&r.status)))
                .map(|r| list_item(st, r, qualifier.as_ref(), redriven));
            items.extend(
                futures_util::future::try_join_all(listed)
                    .await?
                    .into_iter()
                    .flatten(),
            );
            cursor = page.next_cursor;
            if cursor.is_none() || items.len() >= max {
                break;
            }
        }
    } else {
        cursor = None;
    }
    let mut out = json!({ "executions": items });
    if let Some(c) = cursor {
        out["nextToken"] = json!(c);
    }
    Ok(out)
}

/// ListExecutions' item for `r` with how it was started (its version and
/// alias ARNs) and its redrives; `None` when it was not started through
/// `qualifier` or its redrives do not match `redriven`. Two small reads per
/// execution (its origin, the times of its redrives: not its history); a
/// page's run concurrently.
async fn list_item(
    st: &AppState,
    r: &ExecutionRecord,
    qualifier: Option<&versions::Qualifier>,
    redriven: Option<bool>,
) -> Result<Option<Value>, AwsError> {
    let store = st.engine.store();
    let origin = store
        .execution_origin(&r.id)
        .await
        .map_err(|e| from_engine(e.into()))?;
    if qualifier.is_some_and(|q| !versions::started_through(origin.as_deref(), r.version, q)) {
        return Ok(None);
    }
    let redrives = store
        .event_times(&r.id, EventKind::ExecutionRedriven {}.name())
        .await
        .map_err(|e| from_engine(e.into()))?;
    if redriven.is_some_and(|want| want == redrives.is_empty()) {
        return Ok(None);
    }
    let mut v = execution_item(r);
    for (member, arn) in versions::origin_arns(&r.definition, r.version, origin.as_deref()) {
        v[member] = json!(arn);
    }
    v["redriveCount"] = json!(redrives.len());
    if let Some(at) = redrives.last() {
        v["redriveDate"] = epoch(*at);
    }
    Ok(Some(v))
}

/// The plan execution `rec` runs (its definition at its version).
async fn plan_of(
    st: &AppState,
    rec: &ExecutionRecord,
) -> Result<std::sync::Arc<sagaflow_core::Plan>, AwsError> {
    let (_, plan) = st
        .engine
        .plan(&rec.definition, Some(rec.version))
        .await
        .map_err(from_engine)?;
    Ok(plan)
}

/// Execution `rec`'s stored history, whole.
async fn history_of(
    st: &AppState,
    rec: &ExecutionRecord,
) -> Result<Vec<sagaflow_core::Event>, AwsError> {
    st.engine
        .store()
        .load_history(&rec.id)
        .await
        .map_err(|e| from_engine(e.into()))
}

async fn stop_execution(st: &AppState, input: &Input) -> Result<Value, AwsError> {
    let error = input.string("error")?;
    let cause = input.string("cause")?;
    let rec = execution(st, input).await?;
    let reason = match (error, cause) {
        (Some(e), Some(c)) => format!("{e}: {c}"),
        (Some(s), None) | (None, Some(s)) => s.to_string(),
        (None, None) => "stopped through StopExecution".to_string(),
    };
    st.engine
        .cancel(&rec.id, &reason)
        .await
        .map_err(from_engine)?;
    Ok(json!({ "stopDate": epoch(now_ms()) }))
}

// ---------------------------------------------------------------------------
// Task tokens

async fn callback(
    st: &AppState,
    token: &str,
    outcome: Option<Result<Value, ErrorInfo>>,
) -> Result<Value, AwsError> {
    match st.engine.callback(token, outcome).await {
        Ok(_) => Ok(json!({})),
        // A well-formed token whose execution or task is unknown here.
        Err(EngineError::InvalidTaskToken(_)) if sagaflow_core::parse_task_token(token).is_some() => {
            Err(AwsError::new(
                "TaskDoesNotExist",
                "Task Does Not Exist: no task of this server has this token",
            ))
        }
        Err(EngineError::InvalidTaskToken(_)) => Err(AwsError::new(
            "InvalidToken",
            "Invalid Token: this is not a task token of this server",
        )),
        Err(EngineError::CallbackNotWaiting(_)) => Err(AwsError::new(
            "TaskTimedOut",
            "Task Timed Out: the task is no longer waiting for this token (it was completed, timed out, or its execution stopped)",
        )),
        Err(e) => Err(from_engine(e)),
    }
}

async fn send_task_success(st: &AppState, input: &Input) -> Result<Value, AwsError> {
    let token = input.required("taskToken")?;
    let output: Value = serde_json::from_str(input.required("output")?)
        .map_err(|e| AwsError::new("InvalidOutput", format!("Invalid Output: '{e}'")))?;
    callback(st, token, Some(Ok(output))).await
}

async fn send_task_failure(st: &AppState, input: &Input) -> Result<Value, AwsError> {
    let token = input.required("taskToken")?;
    let error = input
        .string("error")?
        .filter(|e| !e.is_empty())
        .unwrap_or(sagaflow_core::error_name::CALLBACK_FAILED);
    let cause = input.string("cause")?.unwrap_or_default();
    callback(st, token, Some(Err(ErrorInfo::new(error, cause)))).await
}

async fn send_task_heartbeat(st: &AppState, input: &Input) -> Result<Value, AwsError> {
    let token = input.required("taskToken")?;
    callback(st, token, None).await
}

// ---------------------------------------------------------------------------
// Authentication

/// The access key id of an AWS Signature V4 `Authorization` header
/// (`AWS4-HMAC-SHA256 Credential=KEY/DATE/REGION/states/aws4_request, …`).
/// With authentication on, a client sets one of the server's tokens as its
/// access key id; the signature is not checked (the key id travels in clear
/// like a bearer token, so this is as strong as the bearer scheme).
pub(crate) fn access_key(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let rest = value.trim().strip_prefix("AWS4-HMAC-SHA256")?;
    let credential = rest
        .split(',')
        .map(str::trim)
        .find_map(|part| part.strip_prefix("Credential="))?;
    credential.split('/').next().filter(|k| !k.is_empty())
}

/// The answer to an AWS request without an accepted credential.
pub(crate) fn unauthorized(headers: &HeaderMap) -> Response {
    let e = if headers.contains_key(header::AUTHORIZATION) {
        AwsError::new(
            "UnrecognizedClientException",
            "The security token included in the request is invalid: use one of the server's tokens as the access key id",
        )
    } else {
        AwsError {
            status: StatusCode::FORBIDDEN,
            ..AwsError::new(
                "MissingAuthenticationTokenException",
                "Missing Authentication Token: this server requires a token (as the access key id, or `Authorization: Bearer`)",
            )
        }
    };
    e.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_name_their_machine_and_execution() {
        assert_eq!(
            machine_of(&state_machine_arn("trip")).ok(),
            Some("trip".to_string())
        );
        assert_eq!(
            execution_of(&execution_arn("trip", "a:b")).ok(),
            Some(("trip".to_string(), "a:b".to_string()))
        );
        for bad in [
            "",
            "trip",
            "arn:aws:states:us-east-1:1:execution:trip:x",
            "arn:aws:states:us-east-1:1:stateMachine:",
            "arn:aws:states:us-east-1:1:stateMachine:trip:1",
        ] {
            assert!(machine_of(bad).is_err(), "{bad}");
        }
        for bad in [
            "arn:aws:states:us-east-1:1:stateMachine:trip",
            "arn:aws:states:us-east-1:1:execution:trip",
            "arn:aws:states:us-east-1:1:execution::x",
        ] {
            assert!(execution_of(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_execution_owned_by_another_node_is_a_503_marked_for_forwarding() {
        let e = from_engine(EngineError::OwnedElsewhere {
            id: "e1".into(),
            node: "n2".into(),
            address: Some("http://10.0.0.2:8080".into()),
        });
        let resp = e.into_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            resp.headers()
                .get("x-sagaflow-owner")
                .and_then(|v| v.to_str().ok()),
            Some("http://10.0.0.2:8080")
        );
        assert_eq!(
            resp.headers()
                .get("x-amzn-errortype")
                .and_then(|v| v.to_str().ok()),
            Some("ServiceUnavailable")
        );
    }

    #[test]
    fn a_sigv4_credential_gives_its_access_key_id() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("AWS4-HMAC-SHA256 Credential=tok/20240101/us-east-1/states/aws4_request, SignedHeaders=host, Signature=abc"),
        );
        assert_eq!(access_key(&h), Some("tok"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer tok"),
        );
        assert_eq!(access_key(&h), None);
    }
}
