//! The Lambda Runtime API (2018-06-01) one worker talks to. Each worker has
//! its own listener, so the port a request arrives on says which worker
//! sent it; the pool decides what that means.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::pool::Function;
use crate::Invocation;

/// Answers bigger than Lambda's 6 MB are accepted; the caller decides.
const BODY_LIMIT: usize = 64 * 1024 * 1024;

/// The Lambda account id in the ARNs workers see (Lambda's documentation one).
const ACCOUNT_ID: &str = "123456789012";

#[derive(Clone)]
struct Worker {
    function: Arc<Function>,
    id: u64,
}

/// Serves worker `id` of `function` until aborted.
pub(crate) async fn serve(listener: tokio::net::TcpListener, function: Arc<Function>, id: u64) {
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{request_id}/response",
            post(response),
        )
        .route(
            "/2018-06-01/runtime/invocation/{request_id}/error",
            post(error),
        )
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(Worker { function, id });
    if let Err(e) = axum::serve(listener, app).await {
        tracing::warn!(error = %e, "a Runtime API listener failed");
    }
}

/// The JSON error body the Runtime API answers with.
fn refuse(status: StatusCode, error_type: &str, message: &str) -> Response {
    (
        status,
        Json(json!({ "errorType": error_type, "errorMessage": message })),
    )
        .into_response()
}

/// `GET /next`: long-polls until the pool assigns this worker an invocation.
async fn next(State(w): State<Worker>) -> Response {
    let Some(a) = w.function.next(w.id).await else {
        return refuse(
            StatusCode::GONE,
            "Runtime.WorkerStopped",
            "this worker is being stopped",
        );
    };
    let config = &w.function.config;
    let arn = format!(
        "arn:aws:lambda:{}:{ACCOUNT_ID}:function:{}",
        w.function.host.region, config.name
    );
    let id = uuid::Uuid::new_v4().simple().to_string();
    let secs = a.deadline_ms / 1000;
    let trace = format!("Root=1-{secs:08x}-{};Sampled=0", &id[..24]);
    // A builder rather than a tuple: the body must not bring its own
    // Content-Type (awslambdaric requires application/json).
    let answer = Response::builder()
        .status(StatusCode::OK)
        .header("lambda-runtime-aws-request-id", &a.request_id)
        .header("content-type", "application/json")
        .header("lambda-runtime-deadline-ms", a.deadline_ms.to_string())
        .header("lambda-runtime-invoked-function-arn", arn)
        .header("lambda-runtime-trace-id", trace)
        .body(Body::from(a.payload));
    answer.unwrap_or_else(|e| {
        // Only a request id that is not a valid header value gets here.
        refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Runtime.InvalidRequestId",
            &e.to_string(),
        )
    })
}

/// `POST /invocation/{id}/response`.
async fn response(
    State(w): State<Worker>,
    Path(request_id): Path<String>,
    body: Bytes,
) -> Response {
    deliver(&w, &request_id, Invocation::Response(body.to_vec()))
}

/// `POST /invocation/{id}/error`: the handler raised.
async fn error(
    State(w): State<Worker>,
    Path(request_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (error_type, error_message, stack_trace) = parse_error(&headers, &body);
    let answer = Invocation::FunctionError {
        error_type,
        error_message,
        stack_trace,
        body: body.to_vec(),
    };
    deliver(&w, &request_id, answer)
}

/// `POST /init/error`: the worker could not initialise and exits next.
async fn init_error(State(w): State<Worker>, headers: HeaderMap, body: Bytes) -> Response {
    let (error_type, error_message, _) = parse_error(&headers, &body);
    w.function.init_error(w.id, error_type, error_message);
    (StatusCode::ACCEPTED, Json(json!({ "status": "OK" }))).into_response()
}

fn deliver(w: &Worker, request_id: &str, answer: Invocation) -> Response {
    match w.function.answer(w.id, request_id, answer) {
        Ok(()) => (StatusCode::ACCEPTED, Json(json!({ "status": "OK" }))).into_response(),
        Err(message) => refuse(StatusCode::BAD_REQUEST, "InvalidRequestID", &message),
    }
}

/// Reads an error body leniently: `{"errorMessage","errorType","stackTrace"}`
/// when it is that, the header or "Unknown" for the type, the raw text for
/// the message otherwise.
fn parse_error(headers: &HeaderMap, body: &[u8]) -> (String, String, Vec<String>) {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let header_type = headers
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let error_type = match value.get("errorType") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => header_type.unwrap_or_else(|| "Unknown".to_owned()),
    };
    let error_message = match value.get("errorMessage") {
        Some(Value::Null) | None if !value.is_object() => {
            String::from_utf8_lossy(body).into_owned()
        }
        Some(Value::Null) | None => String::new(),
        Some(v) => text(v),
    };
    let stack_trace = match value.get("stackTrace") {
        Some(Value::Array(lines)) => lines.iter().map(text).collect(),
        Some(Value::String(s)) => s.lines().map(str::to_owned).collect(),
        Some(Value::Null) | None => Vec::new(),
        Some(other) => vec![other.to_string()],
    };
    (error_type, error_message, stack_trace)
}
