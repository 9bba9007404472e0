//! The Lambda API for durable functions: AWS's rest-json protocol on the
//! same listener as the native API, so an unchanged durable function (its
//! SDK checkpoints through boto3) and boto3 or the AWS CLI (with
//! `AWS_ENDPOINT_URL_LAMBDA` or `--endpoint-url`) work against Sagaflow.
//!
//! Routes (botocore's model; path labels are percent-encoded as one
//! segment and decoded after routing):
//! - `POST /2015-03-31/functions/{FunctionName}/invocations`: Invoke — a
//!   durable function starts (or finds, by `X-Amz-Durable-Execution-Name`)
//!   an execution, `Event` answers 202 at once, `RequestResponse` waits for
//!   its end; a plain hosted function runs one invocation;
//! - `POST /2025-12-01/durable-executions/{arn}/checkpoint`, `GET …/state`,
//!   `GET …/{arn}`, `GET …/history`, `POST …/stop`;
//! - `GET /2025-12-01/functions/{FunctionName}/durable-executions`;
//! - `POST /2025-12-01/durable-execution-callbacks/{id}/succeed|fail|heartbeat`.
//!
//! Errors carry `X-Amzn-ErrorType` and `{"Type", "Message"}` (lowercase
//! `message` for `InvalidParameterValueException`, as AWS sends it), so
//! botocore raises the named exception. Timestamps are epoch seconds.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use sagaflow_core::durable::{self, CallbackOutcome, ErrorObject, OperationUpdate};
use sagaflow_core::event::Millis;
use sagaflow_core::Status;
use sagaflow_runtime::{DurableStart, Error as EngineError, FunctionAnswer};
use sagaflow_store::{ExecutionRecord, ListFilter};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::AppState;

/// The path prefixes of this protocol (authentication treats them as AWS
/// requests).
pub const PREFIXES: [&str; 2] = ["/2015-03-31/", "/2025-12-01/"];

/// The largest request body of this protocol: a 6 MiB payload (Invoke,
/// a checkpoint's update) with room for its JSON envelope.
pub const BODY_LIMIT: usize = 7 * 1024 * 1024;

/// The answer to a body past [`BODY_LIMIT`] (or the server's larger limit).
pub(crate) fn too_large(max: usize) -> Response {
    LambdaError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "RequestTooLargeException",
        format!("Request must be smaller than {max} bytes for the operation."),
    )
    .into_response()
}

/// How long a `RequestResponse` Invoke waits for the execution's end (AWS
/// caps synchronous invocations at 15 minutes).
const SYNC_WAIT: Duration = Duration::from_secs(15 * 60);

/// The routes of this protocol.
pub(crate) fn routes() -> Router<AppState> {
    // Inside the server's own (smaller) default limit, which applies to
    // every other route.
    let limit = axum::extract::DefaultBodyLimit::max(BODY_LIMIT);
    Router::new()
        .route("/2015-03-31/functions/{function}/invocations", post(invoke))
        .route(
            "/2025-12-01/durable-executions/{arn}/checkpoint",
            post(checkpoint),
        )
        .route("/2025-12-01/durable-executions/{arn}/state", get(state))
        .route("/2025-12-01/durable-executions/{arn}", get(describe))
        .route("/2025-12-01/durable-executions/{arn}/history", get(history))
        .route("/2025-12-01/durable-executions/{arn}/stop", post(stop))
        .route(
            "/2025-12-01/functions/{function}/durable-executions",
            get(list),
        )
        .route(
            "/2025-12-01/durable-execution-callbacks/{id}/{outcome}",
            post(callback),
        )
        .layer(limit)
}

/// An error in AWS's rest-json shape.
#[derive(Debug)]
pub(crate) struct LambdaError {
    status: StatusCode,
    code: &'static str,
    message: String,
    owner: Option<String>,
}

impl LambdaError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        LambdaError {
            status,
            code,
            message: message.into(),
            owner: None,
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValueException",
            message,
        )
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "ResourceNotFoundException", message)
    }
}

impl IntoResponse for LambdaError {
    fn into_response(self) -> Response {
        let key = if self.code == "InvalidParameterValueException" {
            "message"
        } else {
            "Message"
        };
        let body = json!({ "Type": "User", key: self.message });
        let mut resp = (self.status, body.to_string()).into_response();
        let headers = resp.headers_mut();
        headers.insert(
            HeaderName::from_static("content-type"),
            HeaderValue::from_static("application/json"),
        );
        headers.insert(
            HeaderName::from_static("x-amzn-errortype"),
            HeaderValue::from_static(self.code),
        );
        crate::forward::mark_owner(&mut resp, self.owner.as_deref());
        resp
    }
}

/// The AWS error for an engine error.
fn from_engine(e: EngineError) -> LambdaError {
    use EngineError as E;
    let message = e.to_string();
    match e {
        E::FunctionNotFound(name) => LambdaError::not_found(format!("Function not found: {name}")),
        E::ExecutionNotFound(id) => {
            LambdaError::not_found(format!("Durable execution not found: {id}"))
        }
        E::CallbackNotFound(_) => LambdaError::not_found(message),
        E::ExecutionConflict { .. } => LambdaError::new(
            StatusCode::CONFLICT,
            "DurableExecutionAlreadyStartedException",
            "A durable execution with this name is already started with a different payload.",
        ),
        E::NotAllowed(core) => match core.code() {
            "callback_not_found" => LambdaError::not_found(message),
            "callback_closed" => {
                LambdaError::new(StatusCode::BAD_REQUEST, "CallbackTimeoutException", message)
            }
            "execution_finished" | "already_started" => {
                LambdaError::new(StatusCode::CONFLICT, "ResourceConflictException", message)
            }
            _ => LambdaError::invalid(message),
        },
        E::Invalid(_) | E::InvalidId(_) | E::InvalidTaskToken(_) => LambdaError::invalid(message),
        E::Store(sagaflow_store::Error::BadCursor(_)) => {
            LambdaError::invalid(format!("Invalid marker: {message}"))
        }
        E::OwnedElsewhere { address, .. } => LambdaError {
            owner: address,
            ..LambdaError::new(StatusCode::SERVICE_UNAVAILABLE, "ServiceException", message)
        },
        E::ShuttingDown | E::Busy(_) | E::Fenced => LambdaError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequestsException",
            message,
        ),
        _ => {
            tracing::error!(error = %message, "durable API request failed");
            LambdaError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ServiceException",
                message,
            )
        }
    }
}

type Answer = Result<Response, LambdaError>;

/// A JSON answer.
fn json_ok(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(
            HeaderName::from_static("content-type"),
            HeaderValue::from_static("application/json"),
        )],
        body.to_string(),
    )
        .into_response()
}

/// Epoch seconds (AWS's JSON timestamps).
fn seconds(ms: Millis) -> Value {
    json!(ms as f64 / 1000.0)
}

/// AWS's status of an execution.
fn status_name(s: Status) -> &'static str {
    match s {
        Status::Running | Status::Compensating => "RUNNING",
        Status::Succeeded => "SUCCEEDED",
        Status::Failed | Status::Compensated => "FAILED",
        Status::TimedOut => "TIMED_OUT",
        Status::Cancelled => "STOPPED",
    }
}

/// The statuses an AWS status name covers.
fn statuses_of(name: &str) -> Option<&'static [Status]> {
    Some(match name {
        "RUNNING" => &[Status::Running, Status::Compensating],
        "SUCCEEDED" => &[Status::Succeeded],
        "FAILED" => &[Status::Failed, Status::Compensated],
        "TIMED_OUT" => &[Status::TimedOut],
        "STOPPED" => &[Status::Cancelled],
        _ => return None,
    })
}

/// A query string's pairs, decoded (`Statuses` repeats).
fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|q| {
        form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    })
    .unwrap_or_default()
}

fn query_one<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn max_items(pairs: &[(String, String)]) -> Result<Option<u32>, LambdaError> {
    match query_one(pairs, "MaxItems") {
        None => Ok(None),
        Some(v) => match v.parse::<u32>() {
            Ok(n) if (1..=1000).contains(&n) => Ok(Some(n)),
            _ => Err(LambdaError::invalid(format!(
                "1 validation error detected: Value '{v}' at 'maxItems' failed to satisfy constraint: Member must have value between 1 and 1000"
            ))),
        },
    }
}

fn flag(pairs: &[(String, String)], key: &str) -> bool {
    query_one(pairs, key).is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// A record's output as the `Result` string: the JSON the SDK returned
/// (`"Hello"` for a string result, as AWS answers it, not `Hello`).
fn result_text(r: &ExecutionRecord) -> Option<String> {
    r.output.as_ref().map(Value::to_string)
}

/// A record's error as an `ErrorObject`.
fn error_json(r: &ExecutionRecord) -> Option<Value> {
    r.error
        .as_ref()
        .map(|e| json!({"ErrorType": e.error, "ErrorMessage": e.cause}))
}

async fn execution_of(st: &AppState, arn: &str) -> Result<ExecutionRecord, LambdaError> {
    st.engine
        .durable_record(arn)
        .await
        .map_err(|e| arn_error(arn, e))
}

/// The AWS error of a request about durable execution `arn`: an unknown
/// execution is named by its ARN.
fn arn_error(arn: &str, e: EngineError) -> LambdaError {
    match e {
        EngineError::ExecutionNotFound(_) => {
            LambdaError::not_found(format!("Durable execution not found: {arn}"))
        }
        // A malformed ARN is refused with what is wrong in it; every other
        // refusal (an invalid checkpoint token …) keeps its own message.
        e => from_engine(e),
    }
}

// ---------------------------------------------------------------- access

/// Whether a worker of `function` may make this request: a checkpoint or a
/// state read of one of `function`'s durable executions, nothing else.
pub(crate) fn worker_may(function: &str, method: &axum::http::Method, path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/2025-12-01/durable-executions/") else {
        return false;
    };
    let Some((arn, action)) = rest.split_once('/') else {
        return false;
    };
    let allowed = matches!(
        (method.as_str(), action),
        ("POST", "checkpoint") | ("GET", "state")
    );
    let arn = percent_encoding::percent_decode_str(arn).decode_utf8_lossy();
    allowed && durable::DurableExecutionArn::parse(&arn).is_ok_and(|a| a.function == function)
}

/// The answer to a worker reaching beyond its own function's executions.
pub(crate) fn access_denied(function: &str) -> Response {
    LambdaError::new(
        StatusCode::FORBIDDEN,
        "AccessDeniedException",
        format!("the credentials of function `{function}` may only checkpoint its own durable executions"),
    )
    .into_response()
}

/// The answer to a Lambda request without an accepted credential.
pub(crate) fn unauthorized() -> Response {
    LambdaError::new(
        StatusCode::BAD_REQUEST,
        "UnrecognizedClientException",
        "The security token included in the request is invalid: use one of the server's tokens as the access key id",
    )
    .into_response()
}

// ---------------------------------------------------------------- Invoke

async fn invoke(
    State(st): State<AppState>,
    Path(function): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let kind = header("x-amz-invocation-type").unwrap_or("RequestResponse");
    if !matches!(kind, "RequestResponse" | "Event" | "DryRun") {
        return Err(LambdaError::invalid(format!(
            "1 validation error detected: Value '{kind}' at 'invocationType' failed to satisfy constraint: Member must satisfy enum value set: [Event, RequestResponse, DryRun]"
        )));
    }
    let name = header("x-amz-durable-execution-name").map(str::to_string);
    if st.engine.durable_function(&function).is_err() {
        return invoke_plain(&st, &function, kind, body).await;
    }
    if kind == "DryRun" {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    // AWS's invocation payload limits: 256 KiB asynchronous, 6 MiB synchronous.
    let limit = if kind == "Event" {
        256 * 1024
    } else {
        6 * 1024 * 1024
    };
    if body.len() > limit {
        return Err(LambdaError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestTooLargeException",
            format!("Request must be smaller than {limit} bytes for the {kind} invocation type."),
        ));
    }
    let payload = String::from_utf8(body.to_vec()).map_err(|_| {
        LambdaError::invalid("Could not parse request body into json: the payload is not UTF-8")
    })?;
    if !payload.trim().is_empty()
        && serde_json::from_str::<serde::de::IgnoredAny>(&payload).is_err()
    {
        return Err(LambdaError::invalid(
            "Could not parse request body into json: the payload is not JSON",
        ));
    }
    let started = st
        .engine
        .start_durable(DurableStart {
            function: function.clone(),
            name,
            payload,
        })
        .await
        .map_err(from_engine)?;
    let arn = started.arn.clone();
    let mut resp = if kind == "Event" {
        StatusCode::ACCEPTED.into_response()
    } else {
        let record = wait_end(&st, &started.record.id).await?;
        sync_answer(&record)
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&arn) {
        h.insert(HeaderName::from_static("x-amz-durable-execution-arn"), v);
    }
    h.insert(
        HeaderName::from_static("x-amz-executed-version"),
        HeaderValue::from_static("$LATEST"),
    );
    Ok(resp)
}

/// Waits for a durable execution's end (or the synchronous cap).
async fn wait_end(st: &AppState, id: &str) -> Result<ExecutionRecord, LambdaError> {
    let deadline = tokio::time::Instant::now() + SYNC_WAIT;
    let mut stopping = st.stopping.subscribe();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let waited = tokio::select! {
            r = st.engine.wait(id, left.min(Duration::from_secs(60))) => r.map_err(from_engine)?,
            _ = stopping.wait_for(|s| *s) => {
                return Err(LambdaError::new(StatusCode::SERVICE_UNAVAILABLE, "ServiceException", "the server is shutting down; the execution goes on"));
            }
        };
        if waited.status.is_terminal() {
            return Ok(waited);
        }
        if left.is_zero() {
            return Err(LambdaError::new(
                StatusCode::REQUEST_TIMEOUT,
                "ServiceException",
                "the durable execution is still running after 15 minutes; it goes on (GetDurableExecution tells its end)",
            ));
        }
    }
}

/// A synchronous Invoke's answer for an ended execution: its result, or
/// its error as a function error (`X-Amz-Function-Error: Unhandled`).
fn sync_answer(record: &ExecutionRecord) -> Response {
    if record.status == Status::Succeeded {
        let body = result_text(record).unwrap_or_default();
        return (StatusCode::OK, body).into_response();
    }
    let (error_type, message) = record
        .error
        .as_ref()
        .map(|e| (e.error.clone(), e.cause.clone()))
        .unwrap_or_else(|| (status_name(record.status).to_string(), String::new()));
    let body = json!({"errorType": error_type, "errorMessage": message});
    let mut resp = json_ok(StatusCode::OK, &body);
    resp.headers_mut().insert(
        HeaderName::from_static("x-amz-function-error"),
        HeaderValue::from_static("Unhandled"),
    );
    resp
}

/// Invoke of a plain hosted function: one invocation, its answer.
async fn invoke_plain(st: &AppState, function: &str, kind: &str, body: Bytes) -> Answer {
    let answer = st
        .engine
        .invoke_function(function, body.to_vec(), kind == "Event")
        .await
        .map_err(from_engine)?;
    let Some(answer) = answer else {
        return Ok(StatusCode::ACCEPTED.into_response());
    };
    let mut resp = match answer {
        FunctionAnswer::Response(body) => (StatusCode::OK, body).into_response(),
        FunctionAnswer::Error(e) => {
            let mut r = json_ok(
                StatusCode::OK,
                &json!({
                    "errorType": e.error_type, "errorMessage": e.error_message,
                    "stackTrace": e.stack_trace.unwrap_or_default(),
                }),
            );
            r.headers_mut().insert(
                HeaderName::from_static("x-amz-function-error"),
                HeaderValue::from_static("Unhandled"),
            );
            r
        }
        FunctionAnswer::Failed {
            error_type,
            error_message,
        } => {
            let mut r = json_ok(
                StatusCode::OK,
                &json!({"errorType": error_type, "errorMessage": error_message}),
            );
            r.headers_mut().insert(
                HeaderName::from_static("x-amz-function-error"),
                HeaderValue::from_static("Unhandled"),
            );
            r
        }
    };
    resp.headers_mut().insert(
        HeaderName::from_static("x-amz-executed-version"),
        HeaderValue::from_static("$LATEST"),
    );
    Ok(resp)
}

// ---------------------------------------------------------------- checkpoints

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CheckpointBody {
    checkpoint_token: Option<String>,
    #[serde(default)]
    updates: Vec<OperationUpdate>,
    client_token: Option<String>,
}

/// Parses a JSON body, naming what is wrong.
fn body_of<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, LambdaError> {
    let text = if body.is_empty() { &b"{}"[..] } else { body };
    serde_json::from_slice(text)
        .map_err(|e| LambdaError::invalid(format!("Could not parse request body: {e}")))
}

async fn checkpoint(State(st): State<AppState>, Path(arn): Path<String>, body: Bytes) -> Answer {
    let req: CheckpointBody = body_of(&body)?;
    let token = req.checkpoint_token.ok_or_else(|| {
        LambdaError::invalid("1 validation error detected: Value null at 'checkpointToken' failed to satisfy constraint: Member must not be null")
    })?;
    let started = std::time::Instant::now();
    let reply = st
        .engine
        .checkpoint(&arn, &token, req.client_token, req.updates)
        .await
        .map_err(|e| arn_error(&arn, e))?;
    metrics::histogram!("sagaflow_durable_checkpoint_seconds")
        .record(started.elapsed().as_secs_f64());
    let body = serde_json::to_value(&reply).unwrap_or(Value::Null);
    Ok(json_ok(StatusCode::OK, &seconds_in(body)))
}

/// The operations' timestamps are kept in epoch milliseconds (as the
/// invocation event sends them); API answers use epoch seconds.
fn seconds_in(mut value: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(map) => {
                for (k, child) in map.iter_mut() {
                    if k.ends_with("Timestamp") {
                        if let Some(ms) = child.as_u64() {
                            *child = seconds(ms);
                            continue;
                        }
                    }
                    walk(child);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut value);
    value
}

async fn state(
    State(st): State<AppState>,
    Path(arn): Path<String>,
    RawQuery(raw): RawQuery,
) -> Answer {
    let pairs = query_pairs(raw.as_deref());
    let token = query_one(&pairs, "CheckpointToken").ok_or_else(|| {
        LambdaError::invalid("1 validation error detected: Value null at 'checkpointToken' failed to satisfy constraint: Member must not be null")
    })?;
    let marker = query_one(&pairs, "Marker").unwrap_or("");
    let page = st
        .engine
        .durable_state(&arn, token, marker, max_items(&pairs)?)
        .await
        .map_err(|e| arn_error(&arn, e))?;
    let body = serde_json::to_value(&page).unwrap_or(Value::Null);
    Ok(json_ok(StatusCode::OK, &seconds_in(body)))
}

// ---------------------------------------------------------------- reads

/// `GetDurableExecution`'s shape (also the list's, without the data).
fn execution_json(st: &AppState, r: &ExecutionRecord, data: bool) -> Value {
    let arn = st.engine.durable_arn(r).unwrap_or_default();
    let function_arn = durable::DurableExecutionArn::parse(&arn)
        .map(|a| a.function_arn())
        .unwrap_or_default();
    let name = r
        .input
        .get("DurableExecutionName")
        .cloned()
        .unwrap_or(Value::Null);
    let mut v = Map::new();
    v.insert("DurableExecutionArn".into(), json!(arn));
    v.insert("DurableExecutionName".into(), name);
    v.insert("FunctionArn".into(), json!(function_arn));
    v.insert("Status".into(), json!(status_name(r.status)));
    v.insert("StartTimestamp".into(), seconds(r.started_at));
    if r.status.is_terminal() {
        v.insert("EndTimestamp".into(), seconds(r.updated_at));
    }
    if data {
        if let Some(p) = r.input.get("InputPayload") {
            v.insert("InputPayload".into(), p.clone());
        }
        if r.status == Status::Succeeded {
            if let Some(text) = result_text(r) {
                v.insert("Result".into(), json!(text));
            }
        }
        if let Some(e) = error_json(r) {
            v.insert("Error".into(), e);
        }
    }
    Value::Object(v)
}

async fn describe(
    State(st): State<AppState>,
    Path(arn): Path<String>,
    RawQuery(raw): RawQuery,
) -> Answer {
    let record = execution_of(&st, &arn).await?;
    let pairs = query_pairs(raw.as_deref());
    // AWS leaves the data out unless asked; GetDurableExecution includes it
    // by default in the SDK's own use, so only `false` leaves it out.
    let data = query_one(&pairs, "IncludeExecutionData") != Some("false");
    let mut v = execution_json(&st, &record, data);
    v["Version"] = json!("$LATEST");
    v["ExecutionDataIncluded"] = json!(data);
    if data && record.error.is_some() {
        // The summary keeps the error's type and message; the SDK's whole
        // ErrorObject (ErrorData, StackTrace) is in the fact that ended it.
        if let Some(error) = ending_error(&st, &record).await {
            v["Error"] = error;
        }
    }
    Ok(json_ok(StatusCode::OK, &v))
}

/// The ErrorObject of the fact that ended a durable execution, verbatim.
async fn ending_error(st: &AppState, record: &ExecutionRecord) -> Option<Value> {
    use durable::OperationEvent as E;
    let events = st.engine.store().load_history(&record.id).await.ok()?;
    events.iter().rev().find_map(|e| match &e.kind {
        sagaflow_core::EventKind::DurableOperation {
            fact:
                E::ExecutionFailed { error, .. }
                | E::ExecutionTimedOut { error, .. }
                | E::ExecutionStopped { error, .. },
        } => error.as_ref().and_then(|e| serde_json::to_value(e).ok()),
        _ => None,
    })
}

async fn history(
    State(st): State<AppState>,
    Path(arn): Path<String>,
    RawQuery(raw): RawQuery,
) -> Answer {
    let record = execution_of(&st, &arn).await?;
    let pairs = query_pairs(raw.as_deref());
    let events = st
        .engine
        .store()
        .load_history(&record.id)
        .await
        .map_err(|e| from_engine(e.into()))?;
    let facts = events.iter().filter_map(|e| match &e.kind {
        sagaflow_core::EventKind::DurableOperation { fact } => Some(durable::Fact::Operation(fact)),
        sagaflow_core::EventKind::DurableInvocation { fact } => {
            Some(durable::Fact::Invocation(fact))
        }
        _ => None,
    });
    let timeout = st
        .engine
        .plan(&record.definition, Some(record.version))
        .await
        .ok()
        .and_then(|(_, p)| p.timeout_ms)
        .map(|ms| ms / 1000);
    let all = durable::history(facts, timeout, flag(&pairs, "IncludeExecutionData"));
    let (page, next) = durable::history_page(
        &all,
        query_one(&pairs, "Marker"),
        max_items(&pairs)?,
        flag(&pairs, "ReverseOrder"),
    )
    .map_err(|r| LambdaError::invalid(r.message))?;
    let mut v = json!({ "Events": page });
    if let Some(next) = next {
        v["NextMarker"] = json!(next);
    }
    Ok(json_ok(StatusCode::OK, &v))
}

async fn list(
    State(st): State<AppState>,
    Path(function): Path<String>,
    RawQuery(raw): RawQuery,
) -> Answer {
    let pairs = query_pairs(raw.as_deref());
    let function = st.engine.durable_function(&function).map_err(from_engine)?;
    let mut wanted: Vec<Status> = Vec::new();
    for (_, name) in pairs.iter().filter(|(k, _)| k == "Statuses") {
        let statuses = statuses_of(name).ok_or_else(|| {
            LambdaError::invalid(format!(
                "1 validation error detected: Value '{name}' at 'statuses' failed to satisfy constraint: Member must satisfy enum value set: [RUNNING, SUCCEEDED, FAILED, TIMED_OUT, STOPPED]"
            ))
        })?;
        wanted.extend_from_slice(statuses);
    }
    let time = |key: &str| -> Result<Option<Millis>, LambdaError> {
        query_one(&pairs, key)
            .map(|v| {
                parse_time(v).ok_or_else(|| {
                    LambdaError::invalid(format!("Invalid {key}: '{v}' is not a timestamp"))
                })
            })
            .transpose()
    };
    let (after, before) = (time("StartedAfter")?, time("StartedBefore")?);
    let name = query_one(&pairs, "DurableExecutionName");
    let limit = max_items(&pairs)?.unwrap_or(1000) as usize;
    let store_status = match wanted.as_slice() {
        [one] => Some(*one),
        _ => None,
    };
    let page = st
        .engine
        .store()
        .list_executions(&ListFilter {
            status: store_status,
            definition: Some(function),
            limit,
            cursor: query_one(&pairs, "Marker").map(str::to_string),
            ..ListFilter::default()
        })
        .await
        .map_err(|e| match e {
            sagaflow_store::Error::BadCursor(m) => {
                LambdaError::invalid(format!("Invalid marker: {m}"))
            }
            e => from_engine(e.into()),
        })?;
    let items: Vec<Value> = page
        .items
        .iter()
        .filter(|r| wanted.is_empty() || wanted.contains(&r.status))
        .filter(|r| after.is_none_or(|t| r.started_at >= t))
        .filter(|r| before.is_none_or(|t| r.started_at <= t))
        .filter(|r| {
            name.is_none_or(|n| {
                r.input.get("DurableExecutionName").and_then(Value::as_str) == Some(n)
            })
        })
        .map(|r| execution_json(&st, r, false))
        .collect();
    let mut v = json!({ "DurableExecutions": items });
    if let Some(next) = page.next_cursor {
        v["NextMarker"] = json!(next);
    }
    Ok(json_ok(StatusCode::OK, &v))
}

/// A timestamp in a query: epoch seconds, or ISO 8601.
fn parse_time(v: &str) -> Option<Millis> {
    if let Ok(s) = v.parse::<f64>() {
        return (s >= 0.0).then_some((s * 1000.0) as Millis);
    }
    let t = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339).ok()?;
    Millis::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

// ---------------------------------------------------------------- stop and callbacks

async fn stop(State(st): State<AppState>, Path(arn): Path<String>, body: Bytes) -> Answer {
    let record = execution_of(&st, &arn).await?;
    let error: Option<ErrorObject> = if body.is_empty() {
        None
    } else {
        Some(body_of(&body)?)
    };
    let stopped = st
        .engine
        .stop_durable(&record.id, error)
        .await
        .map_err(from_engine)?;
    Ok(json_ok(
        StatusCode::OK,
        &json!({"StopTimestamp": seconds(stopped.updated_at)}),
    ))
}

async fn callback(
    State(st): State<AppState>,
    Path((id, outcome)): Path<(String, String)>,
    body: Bytes,
) -> Answer {
    let outcome = match outcome.as_str() {
        "succeed" => Some(CallbackOutcome::Succeeded {
            result: Some(String::from_utf8_lossy(&body).into_owned()),
        }),
        "fail" => {
            let error: ErrorObject = if body.is_empty() {
                ErrorObject::default()
            } else {
                body_of(&body)?
            };
            Some(CallbackOutcome::Failed { error })
        }
        "heartbeat" => None,
        other => {
            return Err(LambdaError::not_found(format!(
                "no callback action `{other}`: use succeed, fail or heartbeat"
            )))
        }
    };
    st.engine
        .durable_callback(&id, outcome)
        .await
        .map_err(from_engine)?;
    Ok(json_ok(StatusCode::OK, &json!({})))
}
