//! Graphs for the console ([`sagaflow_core::graph`] as JSON):
//! `GET /v1/definitions/{name}/graph` (a version's shape),
//! `POST /v1/definitions/{name}/graph` (a source checked without being
//! deployed: its problems placed on the nodes they concern) and
//! `GET /v1/executions/{id}/graph` (each node's state, why the execution
//! is not `succeeded`, a durable function's invocations). Times are RFC
//! 3339, as everywhere in the API.

use axum::body::Bytes;
use axum::extract::{Query as QueryParams, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{rfc3339, ApiError, AppState, PathParam};
use sagaflow_core::graph;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VersionParam {
    version: Option<u32>,
}

/// `GET /v1/definitions/{name}/graph?version=N`.
pub(crate) async fn definition(
    State(st): State<AppState>,
    PathParam(name): PathParam,
    q: Result<QueryParams<VersionParam>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let QueryParams(q) = q.map_err(ApiError::from_query)?;
    let (version, plan) = st.engine.plan(&name, q.version).await?;
    let mut out = to_json(&graph::of_plan(&plan));
    out["definition"] = json!(name);
    out["version"] = json!(version);
    out["problems"] = json!([]);
    Ok(Json(out))
}

/// `POST /v1/definitions/{name}/graph` with a definition's source: the
/// graph it would have, and what is wrong with it (nothing is deployed).
pub(crate) async fn validate(
    State(st): State<AppState>,
    PathParam(name): PathParam,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body.map_err(ApiError::from_body)?;
    let source = std::str::from_utf8(&body).map_err(|_| {
        ApiError::bad_request(
            "invalid_utf8",
            "the definition must be UTF-8 text (YAML or JSON)",
        )
    })?;
    let mut out = match st.engine.validate(Some(&name), source).await {
        Ok(plan) => {
            let mut out = to_json(&graph::of_plan(&plan));
            out["problems"] = json!([]);
            out
        }
        Err(sagaflow_runtime::Error::Invalid(sagaflow_core::Error::InvalidDefinition(v))) => {
            let (g, placed) = graph::of_invalid(source, &v);
            let mut out = to_json(&g);
            out["problems"] = v
                .iter()
                .zip(placed)
                .map(|(p, node)| {
                    json!({
                        "code": p.code,
                        "location": p.location,
                        "message": p.message,
                        "node": node,
                    })
                })
                .collect();
            out
        }
        Err(e) => return Err(e.into()),
    };
    out["definition"] = json!(name);
    Ok(Json(out))
}

/// `GET /v1/executions/{id}/graph`.
pub(crate) async fn execution(
    State(st): State<AppState>,
    PathParam(id): PathParam,
) -> Result<Json<Value>, ApiError> {
    let record = st.engine.get(&id).await?;
    let (_, plan) = st
        .engine
        .plan(&record.definition, Some(record.version))
        .await?;
    let events = st
        .engine
        .store()
        .load_history(&id)
        .await
        .map_err(sagaflow_runtime::Error::from)?;
    let policy = st.engine.stuck_policy();
    // A replay is CPU work proportional to the history: off the workers
    // that answer requests.
    let drawn = tokio::task::spawn_blocking(move || graph::of_execution(&plan, &events, &policy))
        .await
        .map_err(|e| {
            ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                e.to_string(),
            )
        })?
        .map_err(|e| ApiError::bad_request(e.code(), e.to_string()))?;
    let mut out = to_json(&drawn);
    out["definition"] = json!(record.definition);
    out["version"] = json!(record.version);
    out["execution"] = crate::execution_json(&record);
    Ok(Json(out))
}

/// The graph as JSON, its times (milliseconds in the core) in RFC 3339.
fn to_json(value: &impl serde::Serialize) -> Value {
    let mut v = serde_json::to_value(value).unwrap_or(Value::Null);
    for list in ["nodes", "invocations"] {
        if let Some(items) = v.get_mut(list).and_then(Value::as_array_mut) {
            for item in items {
                for key in ["started_at", "ended_at"] {
                    if let Some(ms) = item.get(key).and_then(Value::as_u64) {
                        item[key] = json!(rfc3339(ms));
                    }
                }
            }
        }
    }
    v
}
