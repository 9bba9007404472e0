//! Several nodes: a request about an execution that another node owns (a
//! callback, a cancel, a redrive, their Step Functions equivalents) is
//! forwarded to that node, so any node can take any request.
//!
//! Handlers do not know about it: the engine reports
//! `Error::OwnedElsewhere`, the error response carries the owner's address in
//! an internal header, and this middleware replays the buffered request
//! there and returns the owner's answer. A forwarded request is never
//! forwarded again (the lease may be moving): the client gets a 503 to retry.

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::AppState;

/// Internal response header: the owner's base URL. Never sent to clients.
const OWNER: HeaderName = HeaderName::from_static("x-sagaflow-owner");
/// Request header marking a request one node forwarded to another.
pub(crate) const FORWARDED: HeaderName = HeaderName::from_static("sagaflow-forwarded");

/// Puts the owner's address on an error response, for [`forward_to_owner`].
pub(crate) fn mark_owner(response: &mut Response, owner: Option<&str>) {
    if let Some(v) = owner.and_then(|o| HeaderValue::from_str(o).ok()) {
        response.headers_mut().insert(OWNER, v);
    }
}

pub(crate) async fn forward_to_owner(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    // Only a node among several can be asked to forward.
    if state.engine.node_id().is_none() {
        return next.run(request).await;
    }
    let forwarded = request.headers().contains_key(&FORWARDED);
    let (parts, body) = request.into_parts();
    let bytes = match to_bytes(body, state.config.body_limit).await {
        Ok(b) => b,
        Err(_) => {
            // The same answer as the handlers' own limit gives.
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is larger than the server's limit",
            )
            .into_response();
        }
    };
    let mut response = next
        .run(Request::from_parts(
            parts.clone(),
            Body::from(bytes.clone()),
        ))
        .await;
    let Some(owner) = response.headers_mut().remove(&OWNER) else {
        return response;
    };
    if forwarded {
        response
            .headers_mut()
            .insert("retry-after", HeaderValue::from_static("1"));
        return response;
    }
    let Ok(owner) = owner.to_str() else {
        return response;
    };
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let url = format!("{}{path}", owner.trim_end_matches('/'));
    let mut outgoing = state.forwarder.request(parts.method.clone(), &url);
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            outgoing = outgoing.header(name, value);
        }
    }
    let answer = outgoing.header(FORWARDED, "1").body(bytes).send().await;
    match answer {
        Ok(a) => {
            let status = a.status();
            let headers = a.headers().clone();
            match a.bytes().await {
                Ok(body) => {
                    let mut r = Response::new(Body::from(body));
                    *r.status_mut() = status;
                    for (name, value) in &headers {
                        if name != "content-length" && name != "transfer-encoding" {
                            r.headers_mut().insert(name, value.clone());
                        }
                    }
                    r
                }
                Err(e) => unreachable_owner(owner, &e.to_string()),
            }
        }
        Err(e) => unreachable_owner(owner, &e.to_string()),
    }
}

fn unreachable_owner(owner: &str, why: &str) -> Response {
    let mut r = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "owner_unreachable",
        format!("the node that owns this execution ({owner}) did not answer: {why}; retry, its executions move to another node when its lease runs out"),
    )
    .into_response();
    r.headers_mut()
        .insert("retry-after", HeaderValue::from_static("1"));
    r
}
