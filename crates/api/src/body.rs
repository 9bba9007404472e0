//! The request body limit, answered so that the client can read the answer.
//!
//! Answering 413 as soon as the limit is passed and closing the connection
//! while the client is still sending makes the server's kernel reset the
//! connection (unread data was left in its buffer): the client sees a reset
//! instead of the 413. So the body is read here, before the handlers: up to
//! the limit it is kept and handed on; past it, the rest is read and thrown
//! away — at most [`DRAIN_BYTES`], for at most [`DRAIN_TIME`] — and only then
//! is the 413 answered (with `Connection: close` when the body could not be
//! read to its end). A client that waits for `100 Continue` before sending
//! is answered at once.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;

use crate::{aws, ApiError, AppState};

/// How much of an oversized body is read and discarded before answering.
pub const DRAIN_BYTES: usize = 64 * 1024 * 1024;
/// How long an oversized body is read before answering anyway.
pub const DRAIN_TIME: Duration = Duration::from_secs(10);

pub(crate) async fn limit(State(st): State<AppState>, req: Request, next: Next) -> Response {
    // The Lambda API takes what AWS does (a 6 MiB payload, and a
    // checkpoint's update of up to 6 MiB with its envelope).
    let lambda = crate::lambda::PREFIXES
        .iter()
        .any(|p| req.uri().path().starts_with(p));
    let max = if lambda {
        st.config.body_limit.max(crate::lambda::BODY_LIMIT)
    } else {
        st.config.body_limit
    };
    let (parts, mut body) = req.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let mut kept = Vec::new();
    let mut over = declared.is_some_and(|n| n > max as u64);
    while !over {
        match body.frame().await {
            None => break,
            Some(Err(e)) => {
                return ApiError::bad_request(
                    "bad_body",
                    format!("the request body could not be read: {e}"),
                )
                .into_response()
            }
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    over = kept.len() + data.len() > max;
                    if !over {
                        kept.extend_from_slice(&data);
                    }
                }
            }
        }
    }
    if over {
        // A client waiting for `100 Continue` has sent nothing yet, and one
        // that declared more than is ever drained would be cut off anyway:
        // both are answered at once.
        let waiting = parts
            .headers
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        let hopeless = declared.is_some_and(|n| n > DRAIN_BYTES as u64);
        let finished = !waiting
            && !hopeless
            && tokio::time::timeout(DRAIN_TIME, drain(&mut body))
                .await
                .unwrap_or(false);
        let mut response = if parts.headers.contains_key(aws::TARGET) {
            aws::too_large()
        } else if lambda {
            crate::lambda::too_large(max)
        } else {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the request body is larger than the server's limit of {max} bytes"),
            )
            .into_response()
        };
        if !finished {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        return response;
    }
    next.run(Request::from_parts(parts, Body::from(Bytes::from(kept))))
        .await
}

/// Reads and discards the rest of a body: `true` once it ended, `false`
/// when it fails or goes past [`DRAIN_BYTES`].
async fn drain(body: &mut Body) -> bool {
    let mut read = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { return false };
        read += frame.data_ref().map_or(0, |d| d.len());
        if read > DRAIN_BYTES {
            return false;
        }
    }
    true
}
