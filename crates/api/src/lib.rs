//! Sagaflow's HTTP API (axum): the native JSON API (README "API"), plus
//! `/healthz`, `/metrics` (Prometheus), `/openapi.json`, optional bearer-token
//! authentication, and the on-failure webhook.
//!
//! Handlers are thin: they parse and check input, call the [`Engine`], and
//! render records. Every error leaves as `{"error": {"code", "message",
//! "details"}}` with a stable code ([`error`]).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{
    DefaultBodyLimit, FromRequestParts, Path, Query as QueryParams, Request, State,
};
use axum::http::{header, request::Parts, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use sagaflow_core::event::Millis;
use sagaflow_core::Status;
use sagaflow_runtime::Engine;
use sagaflow_store::{DefinitionRecord, ExecutionRecord, ListFilter};
use serde::Deserialize;
use serde_json::{json, Value};

pub mod aws;
mod body;
pub mod console;
pub mod error;
mod forward;
mod graph;
pub mod hook;
pub mod lambda;
pub mod openapi;
mod sse;

pub use error::ApiError;

/// Server settings that concern the API layer.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Accepted bearer tokens; empty = no authentication.
    pub auth_tokens: HashSet<String>,
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    /// Longest `?wait=` honoured, in seconds.
    pub max_wait_secs: u64,
    /// Credentials of hosted functions' workers: access key id → function.
    /// Such a key may only checkpoint and read the state of that
    /// function's durable executions (least privilege), with or without
    /// `auth_tokens`.
    pub function_tokens: HashMap<String, String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            auth_tokens: HashSet::new(),
            body_limit: 1024 * 1024,
            max_wait_secs: 300,
            function_tokens: HashMap::new(),
        }
    }
}

#[derive(Clone)]
struct AppState {
    engine: Engine,
    config: Arc<ApiConfig>,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// Turns `true` when the server starts shutting down, so that requests
    /// waiting on an execution (`?wait=`) answer at once instead of holding
    /// the graceful shutdown up for as long as `max_wait_secs`.
    stopping: Arc<tokio::sync::watch::Sender<bool>>,
    /// HTTP client for requests forwarded to the node that owns an execution.
    forwarder: reqwest::Client,
}

/// The process-wide Prometheus recorder (a recorder can be installed once).
pub fn prometheus() -> metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = metrics_exporter_prometheus::PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(
                        "sagaflow_step_duration_seconds".into(),
                    ),
                    &[
                        0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                    ],
                )
                .and_then(|b| {
                    // A checkpoint is one append to the store: tens of
                    // microseconds to a few milliseconds (an fsync).
                    b.set_buckets_for_metric(
                        metrics_exporter_prometheus::Matcher::Full(
                            "sagaflow_durable_checkpoint_seconds".into(),
                        ),
                        &[
                            0.00005, 0.0001, 0.00015, 0.0002, 0.0003, 0.0004, 0.0005, 0.00075,
                            0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1,
                            0.25, 0.5, 1.0,
                        ],
                    )
                })
                .unwrap_or_else(|_| metrics_exporter_prometheus::PrometheusBuilder::new());
            match builder.install_recorder() {
                Ok(h) => h,
                // Someone else installed a global recorder: keep a private one so /metrics still answers.
                Err(_) => metrics_exporter_prometheus::PrometheusBuilder::new()
                    .build_recorder()
                    .handle(),
            }
        })
        .clone()
}

/// Builds the router.
pub fn router(engine: Engine, config: ApiConfig) -> Router {
    build_router(
        engine,
        config,
        Arc::new(tokio::sync::watch::Sender::new(false)),
    )
}

fn build_router(
    engine: Engine,
    config: ApiConfig,
    stopping: Arc<tokio::sync::watch::Sender<bool>>,
) -> Router {
    let state = AppState {
        engine,
        config: Arc::new(config.clone()),
        metrics: prometheus(),
        stopping,
        forwarder: reqwest::Client::new(),
    };
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .route("/openapi.json", get(openapi_json))
        // The Step Functions API (AWS JSON 1.0): `POST /` with `X-Amz-Target`.
        .route(
            "/",
            post(aws::handle).get(console::root).fallback(not_found),
        )
        .merge(console::routes())
        // The Lambda API for durable functions (rest-json).
        .merge(lambda::routes())
        .route("/v1/definitions", get(list_definitions))
        .route(
            "/v1/definitions/{name}",
            get(get_definition).put(put_definition),
        )
        .route("/v1/definitions/{name}/explain", post(explain_definition))
        .route(
            "/v1/definitions/{name}/graph",
            get(graph::definition).post(graph::validate),
        )
        .route("/v1/executions", get(list_executions).post(start_execution))
        .route("/v1/executions/{id}", get(get_execution))
        .route("/v1/executions/{id}/history", get(history))
        .route("/v1/executions/{id}/graph", get(graph::execution))
        .route("/v1/executions/{id}/events", get(sse::execution_events))
        .route("/v1/events", get(sse::list_events))
        .route("/v1/executions/{id}/cancel", post(cancel))
        .route("/v1/executions/{id}/redrive", post(redrive))
        .route("/v1/callbacks/{token}/{outcome}", post(callback))
        .route("/v1/dead-letters", get(list_dead_letters))
        .route("/v1/dead-letters/{id}/replay", post(replay_dead_letter))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            forward::forward_to_owner,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .layer(DefaultBodyLimit::max(config.body_limit))
        .layer(middleware::from_fn_with_state(state.clone(), body::limit))
        .with_state(state)
}

/// Serves until `shutdown` resolves, then drains the engine gracefully.
pub async fn serve(
    engine: Engine,
    config: ApiConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let stopping = Arc::new(tokio::sync::watch::Sender::new(false));
    let app = build_router(engine.clone(), config, stopping.clone());
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        // Release the requests waiting on an execution; the graceful shutdown waits for them.
        stopping.send_replace(true);
    })
    .await?;
    engine.shutdown(Duration::from_secs(10)).await;
    Ok(())
}

async fn authenticate(State(st): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(function) =
        aws::access_key(req.headers()).and_then(|k| st.config.function_tokens.get(k))
    {
        // A hosted function's worker: its own executions' checkpoints only.
        return if lambda::worker_may(function, req.method(), req.uri().path()) {
            next.run(req).await
        } else {
            lambda::access_denied(function)
        };
    }
    // The console's files hold no data; the page asks for the token.
    let public =
        |p: &str| p == "/healthz" || p == "/" || p == "/console" || p.starts_with("/console/");
    if st.config.auth_tokens.is_empty() || (req.method() == Method::GET && public(req.uri().path()))
    {
        return next.run(req).await;
    }
    if lambda::PREFIXES
        .iter()
        .any(|p| req.uri().path().starts_with(p))
    {
        let accepted = aws::access_key(req.headers())
            .or_else(|| bearer_token(req.headers()).and_then(Result::ok))
            .is_some_and(|t| st.config.auth_tokens.contains(t));
        return if accepted {
            next.run(req).await
        } else {
            lambda::unauthorized()
        };
    }
    if req.headers().contains_key(aws::TARGET) {
        // AWS clients sign with an access key id: it plays the bearer token.
        let accepted = aws::access_key(req.headers())
            .or_else(|| bearer_token(req.headers()).and_then(Result::ok))
            .is_some_and(|t| st.config.auth_tokens.contains(t));
        return if accepted {
            next.run(req).await
        } else {
            aws::unauthorized(req.headers())
        };
    }
    let error = match bearer_token(req.headers()) {
        Some(Ok(t)) if st.config.auth_tokens.contains(t) => return next.run(req).await,
        Some(Ok(_)) => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "the bearer token is not accepted",
        ),
        Some(Err(())) => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "the `Authorization` header must be `Bearer <token>`",
        ),
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing_token",
            "this server requires `Authorization: Bearer <token>`",
        ),
    };
    let mut resp = error.into_response();
    resp.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    resp
}

/// The token of an `Authorization: Bearer <token>` header: `None` without the
/// header, `Err` when it is not a bearer credential. The scheme is
/// case-insensitive (RFC 9110, section 11.1).
fn bearer_token(headers: &HeaderMap) -> Option<Result<&str, ()>> {
    let value = headers.get(header::AUTHORIZATION)?;
    let parsed = value.to_str().ok().and_then(|v| {
        let (scheme, token) = v.trim().split_once(' ')?;
        let token = token.trim();
        (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
    });
    Some(parsed.ok_or(()))
}

/// Path parameters whose rejection (e.g. a segment that is not UTF-8 once
/// percent-decoded) is a JSON error like every other.
struct PathParam<T = String>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> FromRequestParts<S> for PathParam<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(p)) => Ok(PathParam(p)),
            Err(e) => Err(ApiError::from_path(e)),
        }
    }
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "route_not_found",
        "no such route; see /openapi.json",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method; see /openapi.json",
    )
}

async fn healthz(State(st): State<AppState>) -> Response {
    match st.engine.health() {
        Ok(()) => Json(json!({ "status": "ok" })).into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "status": "unhealthy",
                "error": {
                    "code": "storage_unavailable",
                    "message": format!("storage writes are failing: {reason}"),
                    "details": null,
                },
            })),
        )
            .into_response(),
    }
}

async fn metrics_text(State(st): State<AppState>) -> impl IntoResponse {
    metrics::gauge!("sagaflow_active_executions").set(st.engine.active() as f64);
    metrics::gauge!("sagaflow_queue_depth").set(st.engine.in_flight() as f64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        st.metrics.render(),
    )
}

async fn openapi_json() -> Json<Value> {
    Json(openapi::document())
}

/// RFC 3339 rendering of a stored timestamp.
pub fn rfc3339(ms: Millis) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

fn definition_json(d: &DefinitionRecord, with_source: bool) -> Value {
    let mut v = json!({
        "name": d.name,
        "version": d.version,
        "format": d.format,
        "digest": d.digest,
        "created_at": rfc3339(d.created_at),
    });
    if with_source {
        v["source"] = json!(d.source);
    }
    v
}

/// The JSON form of an execution, shared by every route that returns one.
pub fn execution_json(r: &ExecutionRecord) -> Value {
    json!({
        "id": r.id,
        "definition": r.definition,
        "version": r.version,
        "status": r.status,
        "input": r.input,
        "output": r.output,
        "error": r.error,
        "started_at": rfc3339(r.started_at),
        "updated_at": rfc3339(r.updated_at),
        "events": r.events,
    })
}

async fn put_definition(
    State(st): State<AppState>,
    PathParam(name): PathParam,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(ApiError::from_body)?;
    let source = std::str::from_utf8(&body).map_err(|_| {
        ApiError::bad_request(
            "invalid_utf8",
            "the definition must be UTF-8 text (YAML or JSON)",
        )
    })?;
    let d = st.engine.deploy(Some(&name), source).await?;
    let code = if d.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut v = definition_json(&d.record, false);
    v["created"] = json!(d.created);
    v["variables"] = json!(d.plan.variables);
    Ok((code, Json(v)).into_response())
}

async fn list_definitions(State(st): State<AppState>) -> Result<Json<Value>, ApiError> {
    let defs = st
        .engine
        .store()
        .list_definitions()
        .await
        .map_err(sagaflow_runtime::Error::from)?;
    Ok(Json(
        json!({ "items": defs.iter().map(|d| definition_json(d, false)).collect::<Vec<_>>() }),
    ))
}

#[derive(Deserialize)]
struct VersionParam {
    version: Option<u32>,
}

async fn get_definition(
    State(st): State<AppState>,
    PathParam(name): PathParam,
    q: Result<QueryParams<VersionParam>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let QueryParams(q) = q.map_err(ApiError::from_query)?;
    match st.engine.store().get_definition(&name, q.version).await {
        Ok(d) => Ok(Json(definition_json(&d, true))),
        Err(sagaflow_store::Error::NotFound { id, .. }) => {
            Err(sagaflow_runtime::Error::DefinitionNotFound(id).into())
        }
        Err(e) => Err(sagaflow_runtime::Error::from(e).into()),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ExplainBody {
    /// `STEP` or `STEP:ERROR`: the action that fails on every attempt.
    fail: Option<String>,
    /// A step whose compensation fails on every attempt.
    fail_compensation: Option<String>,
    #[serde(default)]
    input: Value,
    version: Option<u32>,
}

/// The failure explorer: a dry run of the definition with the faults
/// injected (no participant is called). Without faults: every step's path.
async fn explain_definition(
    State(st): State<AppState>,
    PathParam(name): PathParam,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    use sagaflow_core::explain::{self, ActionFault, Faults};
    let req: ExplainBody = error::parse_json_or_default(&body.map_err(ApiError::from_body)?)?;
    let (version, plan) = st.engine.plan(&name, req.version).await?;
    // A machine's own Retry and Catch are read from its source.
    let machine = if plan.format() == "asl" {
        let record = st
            .engine
            .store()
            .get_definition(&name, Some(version))
            .await
            .map_err(sagaflow_runtime::Error::from)?;
        sagaflow_core::definition::parse_document(&record.source).ok()
    } else {
        None
    };
    let mut faults = Faults::default();
    if let Some(spec) = &req.fail {
        let fault = ActionFault::parse(spec)
            .map_err(|m| ApiError::bad_request("invalid_fault", format!("fail: {m}")))?;
        faults.action = Some(fault);
    }
    faults.compensation = req.fail_compensation;
    let input = req.input;
    // A dry run is CPU work: off the workers that answer requests.
    let explained = tokio::task::spawn_blocking(move || -> Result<Value, ApiError> {
        let core = |e: sagaflow_core::Error| ApiError::bad_request(e.code(), e.to_string());
        if faults == Faults::default() {
            let rows =
                explain::explain_every_step(&plan, machine.as_ref(), &input).map_err(core)?;
            let steps: Vec<Value> = rows
                .into_iter()
                .map(|(step, path)| json!({ "step": step, "path": path }))
                .collect();
            return Ok(json!({ "steps": steps }));
        }
        match explain::explain(&plan, machine.as_ref(), input, &faults).map_err(core)? {
            Ok(explained) => Ok(json!(explained)),
            Err(unknown) => {
                let mut err = ApiError::bad_request(
                    "unknown_step",
                    format!(
                        "no step named {} runs in this definition (its steps: {})",
                        unknown.names.join(", "),
                        unknown.steps.join(", ")
                    ),
                );
                err.details = Box::new(json!({ "names": unknown.names, "steps": unknown.steps }));
                Err(err)
            }
        }
    })
    .await
    .map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            e.to_string(),
        )
    })??;
    let mut out = explained;
    out["definition"] = json!(name);
    out["version"] = json!(version);
    Ok(Json(out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    definition: String,
    #[serde(default)]
    input: Value,
    execution_id: Option<String>,
}

#[derive(Deserialize)]
struct WaitParam {
    wait: Option<f64>,
}

fn wait_of(q: &WaitParam, max: u64) -> Result<Duration, ApiError> {
    match q.wait {
        None => Ok(Duration::ZERO),
        Some(w) if w.is_finite() && w >= 0.0 => Ok(Duration::from_secs_f64(w.min(max as f64))),
        Some(_) => Err(ApiError::bad_request(
            "invalid_parameter",
            "`wait` must be a non-negative number of seconds",
        )),
    }
}

/// [`Engine::wait`], cut short (with the execution's current state) when the
/// server starts shutting down.
async fn wait_for(st: &AppState, id: &str, wait: Duration) -> Result<ExecutionRecord, ApiError> {
    let mut stopping = st.stopping.subscribe();
    let stopped = async move {
        if stopping.wait_for(|s| *s).await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        rec = st.engine.wait(id, wait) => Ok(rec?),
        () = stopped => Ok(st.engine.get(id).await?),
    }
}

async fn start_execution(
    State(st): State<AppState>,
    q: Result<QueryParams<WaitParam>, axum::extract::rejection::QueryRejection>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let QueryParams(q) = q.map_err(ApiError::from_query)?;
    let wait = wait_of(&q, st.config.max_wait_secs)?;
    let body = body.map_err(ApiError::from_body)?;
    let req: StartBody = error::parse_json(&body)?;
    let (mut rec, created) = st
        .engine
        .start_execution(&req.definition, req.input, req.execution_id)
        .await?;
    if !wait.is_zero() {
        rec = wait_for(&st, &rec.id, wait).await?;
    }
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut headers = HeaderMap::new();
    if let Ok(v) = format!("/v1/executions/{}", rec.id).parse() {
        headers.insert(header::LOCATION, v);
    }
    Ok((code, headers, Json(execution_json(&rec))).into_response())
}

#[derive(Deserialize)]
struct ListParams {
    status: Option<String>,
    definition: Option<String>,
    started_after: Option<String>,
    started_before: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

async fn list_executions(
    State(st): State<AppState>,
    q: Result<QueryParams<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let QueryParams(q) = q.map_err(ApiError::from_query)?;
    let range = (q.started_after.as_deref(), q.started_before.as_deref());
    let filter = list_filter(q.status.as_deref(), q.definition, range, q.limit, q.cursor)?;
    let page = st
        .engine
        .store()
        .list_executions(&filter)
        .await
        .map_err(sagaflow_runtime::Error::from)?;
    Ok(Json(json!({
        "items": page.items.iter().map(execution_json).collect::<Vec<_>>(),
        "next_cursor": page.next_cursor,
    })))
}

/// The filter of the executions list (`GET /v1/executions` and its live
/// stream) from its query parameters: empty ones are absent, `limit` is
/// 1–1000 (50 by default), `status` one of the statuses, the start-time
/// range `(started_after, started_before)` RFC 3339 times.
pub(crate) fn list_filter(
    status: Option<&str>,
    definition: Option<String>,
    (started_after, started_before): (Option<&str>, Option<&str>),
    limit: Option<usize>,
    cursor: Option<String>,
) -> Result<ListFilter, ApiError> {
    let status = match status {
        None | Some("") => None,
        Some(s) => Some(Status::parse(s).ok_or_else(|| {
            let all: Vec<_> = Status::ALL.iter().map(|s| s.as_str()).collect();
            ApiError::bad_request(
                "invalid_parameter",
                format!("unknown status `{s}`; expected one of {}", all.join(", ")),
            )
        })?),
    };
    let limit = limit.unwrap_or(50);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            "`limit` must be between 1 and 1000",
        ));
    }
    let time = |name: &str, value: Option<&str>| -> Result<Option<Millis>, ApiError> {
        let Some(v) = value.filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        let t = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
            .map_err(|e| {
                ApiError::bad_request(
                    "invalid_parameter",
                    format!(
                        "`{name}` must be an RFC 3339 time such as 2026-12-07T10:00:00Z: `{v}` {e}"
                    ),
                )
            })?;
        Ok(Some(
            u64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0),
        ))
    };
    Ok(ListFilter {
        status,
        definition: definition.filter(|d| !d.is_empty()),
        started_after: time("started_after", started_after)?,
        started_before: time("started_before", started_before)?,
        limit,
        cursor: cursor.filter(|c| !c.is_empty()),
    })
}

async fn get_execution(
    State(st): State<AppState>,
    PathParam(id): PathParam,
    q: Result<QueryParams<WaitParam>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let QueryParams(q) = q.map_err(ApiError::from_query)?;
    let wait = wait_of(&q, st.config.max_wait_secs)?;
    let rec = wait_for(&st, &id, wait).await?;
    Ok(Json(execution_json(&rec)))
}

#[derive(Deserialize)]
struct HistoryParams {
    after: Option<u64>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// Events per page of `GET /v1/executions/{id}/history` when no `limit` is given.
pub const HISTORY_PAGE_DEFAULT: usize = 1000;
/// The largest `limit` of a history page.
pub const HISTORY_PAGE_MAX: usize = 1000;

/// Where a history page starts: after the `seq` its cursor names (or
/// `after`). The cursor is opaque to clients; it is the last `seq` read.
fn history_start(q: &HistoryParams) -> Result<u64, ApiError> {
    match (q.cursor.as_deref(), q.after) {
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "invalid_parameter",
            "give `cursor` or `after`, not both",
        )),
        (Some(c), None) => c
            .strip_prefix('h')
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_cursor",
                    format!("`{c}` is not a cursor of this history; pass the `next_cursor` of the previous page"),
                )
            }),
        (None, after) => Ok(after.unwrap_or(0)),
    }
}

async fn history(
    State(st): State<AppState>,
    PathParam(id): PathParam,
    q: Result<QueryParams<HistoryParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let QueryParams(q) = q.map_err(ApiError::from_query)?;
    let limit = q.limit.unwrap_or(HISTORY_PAGE_DEFAULT);
    if limit == 0 || limit > HISTORY_PAGE_MAX {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            format!("`limit` must be between 1 and {HISTORY_PAGE_MAX}"),
        ));
    }
    let after = history_start(&q)?;
    let rec = st.engine.get(&id).await?;
    // One more than asked tells whether another page follows.
    let mut entries = st
        .engine
        .store()
        .history_page(&id, after, limit + 1)
        .await
        .map_err(sagaflow_runtime::Error::from)?;
    let next_cursor = (entries.len() > limit).then(|| {
        entries.truncate(limit);
        format!("h{}", entries.last().map_or(after, |h| h.seq))
    });
    let events: Vec<Value> = entries.iter().map(history_event_json).collect();
    Ok(Json(
        json!({ "execution": execution_json(&rec), "events": events, "next_cursor": next_cursor }),
    ))
}

/// One history entry as the API shows it: the event with its `seq`, times
/// in RFC 3339.
pub(crate) fn history_event_json(h: &sagaflow_store::HistoryEntry) -> Value {
    let mut v = serde_json::to_value(&h.event).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.insert("seq".into(), json!(h.seq));
        o.insert("at".into(), json!(rfc3339(h.event.at)));
        for k in ["fire_at", "deadline"] {
            if let Some(ms) = o.get(k).and_then(Value::as_u64) {
                o.insert(k.into(), json!(rfc3339(ms)));
            }
        }
    }
    v
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeadLetterParams {
    limit: Option<usize>,
}

fn dead_letter_json(d: &sagaflow_store::DeadLetter) -> Value {
    let n = &d.notification;
    json!({
        "id": n.id,
        "execution_id": n.execution_id,
        "event": n.event(),
        "status": n.status.as_str(),
        "created_at": rfc3339(n.created_at),
        "failed_at": rfc3339(d.failed_at),
        "attempts": d.attempts,
        "last_error": d.last_error,
    })
}

/// `GET /v1/dead-letters`: hook notifications whose delivery gave up,
/// oldest first.
async fn list_dead_letters(
    State(st): State<AppState>,
    q: Result<QueryParams<DeadLetterParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let QueryParams(q) = q.map_err(ApiError::from_query)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit must be between 1 and 1000, not {limit}"),
        ));
    }
    let dead = st
        .engine
        .store()
        .dead_letters(limit)
        .await
        .map_err(sagaflow_runtime::Error::from)?;
    Ok(Json(
        json!({ "dead_letters": dead.iter().map(dead_letter_json).collect::<Vec<_>>() }),
    ))
}

/// `POST /v1/dead-letters/{id}/replay`: back into the outbox, delivered
/// again by the hook (a new notification id).
async fn replay_dead_letter(
    State(st): State<AppState>,
    PathParam(id): PathParam,
) -> Result<Json<Value>, ApiError> {
    let Ok(number) = id.parse::<u64>() else {
        return Err(ApiError::bad_request(
            "invalid_id",
            format!("a dead letter id is a number, not `{id}`"),
        ));
    };
    match st
        .engine
        .store()
        .replay_dead_letter(number)
        .await
        .map_err(sagaflow_runtime::Error::from)?
    {
        Some(n) => Ok(Json(json!({
            "replayed": number,
            "notification": { "id": n.id, "execution_id": n.execution_id, "event": n.event() },
        }))),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "dead_letter_not_found",
            format!("no dead letter has the id {number}"),
        )),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CancelBody {
    reason: Option<String>,
}

async fn cancel(
    State(st): State<AppState>,
    PathParam(id): PathParam,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let req: CancelBody = error::parse_json_or_default(&body.map_err(ApiError::from_body)?)?;
    let rec = st
        .engine
        .cancel(
            &id,
            req.reason.as_deref().unwrap_or("cancelled through the API"),
        )
        .await?;
    Ok(Json(execution_json(&rec)))
}

async fn redrive(
    State(st): State<AppState>,
    PathParam(id): PathParam,
) -> Result<Json<Value>, ApiError> {
    let rec = st.engine.redrive(&id).await?;
    Ok(Json(execution_json(&rec)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FailureBody {
    error: Option<String>,
    cause: Option<String>,
}

/// `POST /v1/callbacks/{token}/success|failure|heartbeat`: `token` is a
/// callback task's token, or a durable function's `CallbackId` (see
/// [`durable_callback`]).
async fn callback(
    State(st): State<AppState>,
    PathParam((token, outcome)): PathParam<(String, String)>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body.map_err(ApiError::from_body)?;
    let empty = body.iter().all(|b| b.is_ascii_whitespace());
    if sagaflow_core::durable::callback_execution(&token).is_some() {
        return durable_callback(&st, &token, &outcome, &body, empty).await;
    }
    let outcome = match outcome.as_str() {
        "success" => Some(Ok(if empty {
            Value::Null
        } else {
            error::parse_json::<Value>(&body)?
        })),
        "failure" => {
            let f: FailureBody = if empty {
                FailureBody::default()
            } else {
                error::parse_json(&body)?
            };
            Some(Err(sagaflow_core::ErrorInfo::new(
                f.error
                    .filter(|e| !e.is_empty())
                    .unwrap_or_else(|| sagaflow_core::error_name::CALLBACK_FAILED.into()),
                f.cause.unwrap_or_default(),
            )))
        }
        "heartbeat" => None,
        other => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "route_not_found",
                format!("unknown callback outcome `{other}`; use success, failure or heartbeat"),
            ))
        }
    };
    let rec = st.engine.callback(&token, outcome).await?;
    Ok(Json(execution_json(&rec)))
}

/// The native callback route for a durable function's `CallbackId`: the
/// same engine path as the Lambda API's `SendDurableExecutionCallback*`.
/// `success`: the body (JSON, as for a task) is the callback's result as
/// sent, none if empty; `failure`: `{error, cause}` is its `ErrorType` and
/// `ErrorMessage` (`Sagaflow.CallbackFailed` without an `error`, as for a
/// task); `heartbeat` keeps it open. An unknown id is `callback_not_found`,
/// a callback that timed out or already ended (or whose execution ended)
/// `callback_not_waiting`, as a task's token that no longer waits.
async fn durable_callback(
    st: &AppState,
    callback_id: &str,
    outcome: &str,
    body: &[u8],
    empty: bool,
) -> Result<Json<Value>, ApiError> {
    use sagaflow_core::durable::{CallbackOutcome, ErrorObject};
    let outcome = match outcome {
        "success" => Some(CallbackOutcome::Succeeded {
            result: if empty {
                None
            } else {
                error::parse_json::<Value>(body)?;
                Some(String::from_utf8_lossy(body).into_owned())
            },
        }),
        "failure" => {
            let f: FailureBody = if empty {
                FailureBody::default()
            } else {
                error::parse_json(body)?
            };
            let error_type = f
                .error
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| sagaflow_core::error_name::CALLBACK_FAILED.into());
            Some(CallbackOutcome::Failed {
                error: ErrorObject {
                    error_type: Some(error_type),
                    error_message: f.cause,
                    ..ErrorObject::default()
                },
            })
        }
        "heartbeat" => None,
        other => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "route_not_found",
                format!("unknown callback outcome `{other}`; use success, failure or heartbeat"),
            ))
        }
    };
    let rec = st
        .engine
        .durable_callback(callback_id, outcome)
        .await
        .map_err(|e| match e {
            sagaflow_runtime::Error::NotAllowed(refusal) => match refusal.code() {
                "callback_not_found" => ApiError::new(
                    StatusCode::NOT_FOUND,
                    "callback_not_found",
                    refusal.to_string(),
                ),
                "callback_closed" => ApiError::new(
                    StatusCode::CONFLICT,
                    "callback_not_waiting",
                    refusal.to_string(),
                ),
                _ => sagaflow_runtime::Error::NotAllowed(refusal).into(),
            },
            e => ApiError::from(e),
        })?;
    Ok(Json(execution_json(&rec)))
}
