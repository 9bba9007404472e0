//! The HTTP face of the participants (axum).
//!
//! `POST /{hotel,flight,car}/{reserve,confirm,cancel}`, `POST /payment/charge`,
//! `POST /payment/refund` take the trip input as JSON, and so does
//! `POST /lambda/{function}` (the samples' functions, see [`crate::lambda`]); `GET /trips`,
//! `GET /trips/{trip_id}`, `GET /effects`, `GET /stats` and `GET /healthz` are
//! for people, tests and the demo. Errors are always `{"error": "...", "cause": "..."}`:
//! 4xx for business failures and bad input, 5xx for transient ones.
//!
//! Database work runs on blocking threads (`spawn_blocking`); the connection
//! lock is never held across an `.await`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;

use crate::db::{Call, Db};
use crate::lambda::Lambdas;
use crate::service::{self, Action, Op, Trip, OPS};

/// The header carrying the caller's idempotency key.
const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The header naming the Sagaflow cluster node that makes a call: such calls
/// are logged in the `calls` table.
const NODE: &str = "sagaflow-node";

/// Shared state of the handlers.
#[derive(Clone)]
pub(crate) struct App {
    pub db: Arc<Db>,
    pub stats: Arc<Stats>,
    pub cancel_failure_rate: f64,
    pub confirm_failures: u32,
    /// The samples' Lambda functions under `/lambda/{function}`.
    pub lambdas: Arc<Lambdas>,
}

/// Counters served by `GET /stats` (since the process started).
#[derive(Default)]
pub(crate) struct Stats {
    counts: Mutex<Counts>,
}

#[derive(Clone, Default, Serialize)]
pub(crate) struct Counts {
    /// Calls per route, including the failed and the replayed ones.
    pub calls: BTreeMap<&'static str, u64>,
    /// Injected failures per route (run_type and random cancel failures).
    pub injected_failures: BTreeMap<&'static str, u64>,
    /// Calls answered from the idempotency store, per route.
    pub replays: BTreeMap<&'static str, u64>,
}

impl Stats {
    pub(crate) fn bump(
        &self,
        pick: impl FnOnce(&mut Counts) -> &mut BTreeMap<&'static str, u64>,
        route: &'static str,
    ) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        *pick(&mut counts).entry(route).or_default() += 1;
    }

    fn snapshot(&self) -> Counts {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The router of all the routes, over `app`.
pub(crate) fn router(app: App) -> Router {
    let mut router = Router::new()
        .route("/healthz", get(healthz))
        .route("/stats", get(stats))
        .route("/effects", get(effects))
        .route("/trips", get(all_trips))
        .route("/trips/{trip_id}", get(one_trip))
        .route("/lambda", get(crate::lambda::list))
        .route("/lambda/{function}", post(crate::lambda::call));
    for op in OPS {
        router = router.route(
            &format!("/{}", op.route()),
            post(
                move |State(app): State<App>,
                      headers: HeaderMap,
                      body: Result<Bytes, BytesRejection>| {
                    call(app, op, headers, body)
                },
            ),
        );
    }
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(app)
}

/// An error response: `{"error": name, "cause": cause}` with a status.
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub error: &'static str,
    pub cause: String,
    /// An injected failure (counted in the stats).
    pub injected: bool,
}

impl ApiError {
    pub fn new(status: StatusCode, error: &'static str, cause: impl Into<String>) -> ApiError {
        ApiError {
            status,
            error,
            cause: cause.into(),
            injected: false,
        }
    }

    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        tracing::error!(%cause, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            cause.to_string(),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({ "error": self.error, "cause": self.cause })),
        )
            .into_response()
    }
}

async fn call(
    app: App,
    op: Op,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let route = op.route();
    app.stats.bump(|c| &mut c.calls, route);
    let answer = match header_str(&headers, NODE) {
        None => respond(&app, op, &headers, body).await,
        Some(node) => {
            // A cluster node's call is logged with when it ran, even if the
            // node hangs up (or dies) meanwhile: the work goes on without it.
            let node = node.to_owned();
            let (app, headers) = (app.clone(), headers.clone());
            tokio::spawn(async move {
                let started_us = now_us();
                let answer = respond(&app, op, &headers, body).await;
                let call = Call {
                    node,
                    route: route.to_owned(),
                    key: header_str(&headers, IDEMPOTENCY_KEY).map(str::to_owned),
                    execution_id: header_str(&headers, "sagaflow-execution-id").map(str::to_owned),
                    step: header_str(&headers, "sagaflow-step").map(str::to_owned),
                    task: header_str(&headers, "sagaflow-task").map(str::to_owned),
                    attempt: header_str(&headers, "sagaflow-attempt").and_then(|a| a.parse().ok()),
                    status: match &answer {
                        Ok(outcome) => outcome.status,
                        Err(error) => error.status.as_u16(),
                    },
                    started_us,
                    ended_us: now_us(),
                };
                let logged = tokio::task::spawn_blocking(move || app.db.record_call(&call)).await;
                if !matches!(logged, Ok(Ok(()))) {
                    tracing::error!(?logged, "a call could not be logged");
                }
                answer
            })
            .await
            .unwrap_or_else(|e| Err(ApiError::internal(e)))
        }
    };
    answer_call(&app.stats, route, &headers, answer)
}

/// Microseconds since the Unix epoch.
fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// The HTTP response of a call to `route`, counted in the stats.
pub(crate) fn answer_call(
    stats: &Stats,
    route: &'static str,
    headers: &HeaderMap,
    answer: Result<service::Outcome, ApiError>,
) -> Response {
    match answer {
        Ok(outcome) => {
            if outcome.replayed {
                stats.bump(|c| &mut c.replays, route);
            }
            if outcome.injected {
                stats.bump(|c| &mut c.injected_failures, route);
            }
            tracing::debug!(
                route,
                status = outcome.status,
                replayed = outcome.replayed,
                injected = outcome.injected,
                execution_id = header_str(headers, "sagaflow-execution-id"),
                attempt = header_str(headers, "sagaflow-attempt"),
                "call"
            );
            let status =
                StatusCode::from_u16(outcome.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (
                status,
                [(header::CONTENT_TYPE, "application/json")],
                outcome.body,
            )
                .into_response()
        }
        Err(error) => {
            if error.injected {
                stats.bump(|c| &mut c.injected_failures, route);
            }
            tracing::debug!(
                route,
                status = error.status.as_u16(),
                error = error.error,
                execution_id = header_str(headers, "sagaflow-execution-id"),
                attempt = header_str(headers, "sagaflow-attempt"),
                "call failed"
            );
            error.into_response()
        }
    }
}

async fn respond(
    app: &App,
    op: Op,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<service::Outcome, ApiError> {
    if op.action == Action::Cancel
        && app.cancel_failure_rate > 0.0
        && rand::random::<f64>() < app.cancel_failure_rate
    {
        // Transient, before anything else: nothing done, nothing remembered.
        return Err(ApiError {
            injected: true,
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "random failure",
            )
        });
    }
    let (trip, key) = read_call(headers, body)?;
    service::execute(&app.db, key, op, trip, app.confirm_failures)
        .await
        .map_err(ApiError::internal)
}

/// The trip input and the `Idempotency-Key` (if any, and not empty) of a
/// call; a 400 (or 413) when either is unusable.
pub(crate) fn read_call(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(Trip, Option<String>), ApiError> {
    let body = read_body(body)?;
    let trip = Trip::parse(&body)
        .map_err(|cause| ApiError::new(StatusCode::BAD_REQUEST, "BadRequest", cause))?;
    Ok((trip, idempotency_key(headers)?))
}

/// The body of a call; a 400 (or 413) when it could not be read.
pub(crate) fn read_body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        let error = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            "PayloadTooLarge"
        } else {
            "BadRequest"
        };
        ApiError::new(rejection.status(), error, rejection.body_text())
    })
}

/// The call's `Idempotency-Key`, `None` if absent or empty; a 400 when it is
/// not visible ASCII.
pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    match headers.get(IDEMPOTENCY_KEY) {
        None => Ok(None),
        Some(value) => {
            let value = value.to_str().map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "the Idempotency-Key header is not visible ASCII",
                )
            })?;
            Ok((!value.is_empty()).then(|| value.to_owned()))
        }
    }
}

pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn stats(State(app): State<App>) -> Json<serde_json::Value> {
    Json(json!(app.stats.snapshot()))
}

/// How many times each (route, `Idempotency-Key`) was executed: at most once
/// each, unless a repeated call was executed again.
async fn effects(State(app): State<App>) -> Result<Response, ApiError> {
    let effects = tokio::task::spawn_blocking(move || app.db.effects())
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    Ok(Json(effects).into_response())
}

async fn all_trips(State(app): State<App>) -> Result<Response, ApiError> {
    read_rows(app, None).await
}

async fn one_trip(
    State(app): State<App>,
    Path(trip_id): Path<String>,
) -> Result<Response, ApiError> {
    read_rows(app, Some(trip_id)).await
}

async fn read_rows(app: App, trip_id: Option<String>) -> Result<Response, ApiError> {
    let rows = tokio::task::spawn_blocking(move || app.db.rows(trip_id.as_deref()))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    Ok(Json(rows).into_response())
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("no route for {method} {}", uri.path()),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}
