//! API errors: `{"error": {"code", "message", "details"}}` with the right
//! status code. Codes are stable; messages are for people.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    /// Boxed: most errors have none, and an error is moved through every
    /// `Result` of a handler (kept small, as clippy's `result_large_err`
    /// asks).
    pub details: Box<Value>,
    /// Several nodes: the execution's owner, where `crate::forward`
    /// sends the request instead.
    pub owner: Option<String>,
    /// Seconds after which a retry should work (`Retry-After`), for an
    /// error that is only a matter of time.
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.into(),
            message: message.into(),
            details: Box::new(Value::Null),
            owner: None,
            retry_after: None,
        }
    }

    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub(crate) fn from_body(e: axum::extract::rejection::BytesRejection) -> Self {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is larger than the server's limit",
            )
        } else {
            ApiError::new(e.status(), "bad_body", e.body_text())
        }
    }

    pub(crate) fn from_path(e: axum::extract::rejection::PathRejection) -> Self {
        let status = e.status();
        let code = if status.is_client_error() {
            "invalid_parameter"
        } else {
            "internal_error"
        };
        ApiError::new(status, code, e.body_text())
    }

    pub(crate) fn from_query(e: axum::extract::rejection::QueryRejection) -> Self {
        ApiError::bad_request("invalid_parameter", e.body_text())
    }
}

/// [`parse_json`], with an empty (or blank) body meaning every field's
/// default: for requests whose body is optional.
pub fn parse_json_or_default<T: DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    parse_json(bytes)
}

/// Parses a JSON body, naming the line and column of a syntax error and the
/// field of a type error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let code = if e.is_syntax() || e.is_eof() {
            "malformed_json"
        } else {
            "invalid_request"
        };
        let mut err = ApiError::bad_request(code, format!("request body: {e}"));
        err.details = Box::new(json!({ "line": e.line(), "column": e.column() }));
        err
    })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message, "details": self.details } });
        let mut response = (self.status, Json(body)).into_response();
        crate::forward::mark_owner(&mut response, self.owner.as_deref());
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

impl From<sagaflow_runtime::Error> for ApiError {
    fn from(e: sagaflow_runtime::Error) -> Self {
        use sagaflow_runtime::Error as E;
        let status = match &e {
            E::DefinitionNotFound(_)
            | E::ExecutionNotFound(_)
            | E::FunctionNotFound(_)
            | E::CallbackNotFound(_) => StatusCode::NOT_FOUND,
            E::Invalid(_) | E::InvalidId(_) => StatusCode::BAD_REQUEST,
            E::ExecutionConflict { .. } | E::NotAllowed(_) | E::CallbackNotWaiting(_) => {
                StatusCode::CONFLICT
            }
            E::InvalidTaskToken(_) => StatusCode::NOT_FOUND,
            E::ShuttingDown | E::Busy(_) | E::OwnedElsewhere { .. } | E::Fenced => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            E::Store(sagaflow_store::Error::NotFound { .. }) => StatusCode::NOT_FOUND,
            E::Store(sagaflow_store::Error::BadCursor(_)) => StatusCode::BAD_REQUEST,
            E::Store(sagaflow_store::Error::Corrupt(_)) | E::Unreplayable { .. } => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            // A disk that is full or read-only, a database that is down: retry later.
            E::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %e, "request failed");
        }
        let details = match &e {
            E::Invalid(sagaflow_core::Error::InvalidDefinition(v)) => json!({ "violations": v }),
            _ => Value::Null,
        };
        let owner = match &e {
            E::OwnedElsewhere { address, .. } => address.clone(),
            _ => None,
        };
        // The execution's actor was leaving memory: a retry a moment later
        // reaches it loaded afresh.
        let retry_after = matches!(e, E::Busy(_)).then_some(1);
        ApiError {
            status,
            code: e.code().to_string(),
            message: e.to_string(),
            details: Box::new(details),
            owner,
            retry_after,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(e: sagaflow_runtime::Error) -> Response {
        ApiError::from(e).into_response()
    }

    #[test]
    fn a_request_that_could_not_reach_its_execution_is_a_503_to_retry_shortly() {
        let r = answer(sagaflow_runtime::Error::Busy("order-1".into()));
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[axum::http::header::RETRY_AFTER], "1");
        assert_eq!(
            sagaflow_runtime::Error::Busy("order-1".into()).code(),
            "execution_busy"
        );
    }

    #[test]
    fn shutting_down_stays_its_own_503() {
        let r = answer(sagaflow_runtime::Error::ShuttingDown);
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(!r.headers().contains_key(axum::http::header::RETRY_AFTER));
        assert_eq!(
            sagaflow_runtime::Error::ShuttingDown.code(),
            "shutting_down"
        );
    }
}
