//! Participant invokers: HTTP (the protocol in the README's "HTTP participants") and in-process handlers.
//!
//! HTTP protocol: `POST` the step input as JSON with `Idempotency-Key` (stable
//! per execution, step and task kind), `Sagaflow-Execution-Id` and
//! `Sagaflow-Attempt`. A 2xx body is the output; a 4xx `{error, cause}` is a
//! business error with that name; 5xx and connection failures are
//! `States.TaskFailed`; running out of time is `States.Timeout`.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::HeaderMap;
use sagaflow_core::error_name::{OUTPUT_INVALID, RESPONSE_LOST, RUNTIME, TASK_FAILED, TIMEOUT};
use sagaflow_core::retry::participant_error;
use sagaflow_core::{ErrorInfo, Participant, Request};
use serde_json::Value;

use crate::{bulkhead, now_ms, Shared};

/// Error name of a 2xx answer larger than `Config::max_output_bytes`:
/// ambiguous (the effect may have happened), not retried by default.
pub use sagaflow_core::error_name::OUTPUT_TOO_LARGE;

/// An in-process participant.
#[async_trait]
pub trait Handler: Send + Sync {
    async fn call(&self, request: Request) -> Result<Value, ErrorInfo>;
}

struct FnHandler<F>(F);

#[async_trait]
impl<F, Fut> Handler for FnHandler<F>
where
    F: Fn(Request) -> Fut + Send + Sync,
    Fut: Future<Output = Result<Value, ErrorInfo>> + Send,
{
    async fn call(&self, request: Request) -> Result<Value, ErrorInfo> {
        (self.0)(request).await
    }
}

/// Wraps an async closure as a [`Handler`].
pub fn handler_fn<F, Fut>(f: F) -> impl Handler
where
    F: Fn(Request) -> Fut + Send + Sync,
    Fut: Future<Output = Result<Value, ErrorInfo>> + Send,
{
    FnHandler(f)
}

/// Takes the call's slots (its participant's bulkhead, then the global cap)
/// and returns them with the attempt's own time budget: what was left of it
/// before waiting. Waiting is bounded by the recorded deadline but does not
/// spend the budget: the attempt clock starts once the slots are held.
pub(crate) async fn enter(
    shared: &Shared,
    req: &Request,
) -> Result<(bulkhead::Slot, Duration), ErrorInfo> {
    let remaining = req.deadline.saturating_sub(now_ms());
    if remaining == 0 {
        // Only after a restart (or a stall as long as the timeout): the call
        // may have been sent before, so this is the ambiguous timeout.
        return Err(ErrorInfo::new(
            TIMEOUT,
            format!(
                "deadline of `{}` passed before the call could be made",
                req.step
            ),
        ));
    }
    let slot = bulkhead::enter(shared, &req.participant, &req.step, req.deadline).await?;
    Ok((slot, Duration::from_millis(remaining)))
}

/// One HTTP participant call as it went over the wire, for TestState's
/// `TRACE` inspection: what was sent and, if an answer came, what came
/// back. Secret values are in it as sent (see [`Exchange::redacted`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exchange {
    /// `https` or `http`.
    pub protocol: String,
    pub method: String,
    pub url: String,
    pub request_headers: Vec<(String, String)>,
    pub request_body: String,
    /// `None`: no answer came (refused, unreachable, cut off).
    pub status: Option<u16>,
    pub status_message: String,
    pub response_headers: Vec<(String, String)>,
    pub response_body: String,
}

impl Exchange {
    fn sent(&mut self, request: &reqwest::Request) {
        self.protocol = request.url().scheme().to_string();
        self.method = request.method().to_string();
        self.url = request.url().to_string();
        self.request_headers = header_pairs(request.headers());
        self.request_body = request
            .body()
            .and_then(reqwest::Body::as_bytes)
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
    }

    fn received(&mut self, status: reqwest::StatusCode, headers: &HeaderMap, body: &[u8]) {
        self.status = Some(status.as_u16());
        self.status_message = status.canonical_reason().unwrap_or_default().to_string();
        self.response_headers = header_pairs(headers);
        self.response_body = String::from_utf8_lossy(body).into_owned();
    }

    /// Every secret value replaced by `${NAME}`, as in causes and logs.
    pub fn redacted(
        mut self,
        secrets: &std::collections::HashMap<String, crate::Secret>,
    ) -> Exchange {
        let r = |t: &mut String| *t = crate::vars::redact(t, secrets);
        r(&mut self.url);
        r(&mut self.request_body);
        r(&mut self.response_body);
        for (_, v) in self
            .request_headers
            .iter_mut()
            .chain(self.response_headers.iter_mut())
        {
            r(v);
        }
        self
    }
}

fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// Performs one participant call, bounded by `timeout` from now.
pub(crate) async fn call(
    shared: &Shared,
    req: Request,
    timeout: Duration,
) -> Result<Value, ErrorInfo> {
    call_recorded(shared, req, timeout, None).await
}

/// [`call`], recording an HTTP participant's exchange in `record`.
pub(crate) async fn call_recorded(
    shared: &Shared,
    req: Request,
    timeout: Duration,
    record: Option<&mut Exchange>,
) -> Result<Value, ErrorInfo> {
    let step = req.step.clone();
    let fut = async {
        match &req.participant {
            Participant::Handler { name } => match shared.handlers.get(name) {
                Some(h) => h.call(req.clone()).await,
                None => Err(ErrorInfo::new(
                    RUNTIME,
                    format!("no in-process handler named `{name}` is registered"),
                )),
            },
            Participant::Activity { arn } => crate::activities::schedule(shared, &req, arn).await,
            // Causes are stored, returned and logged: no secret in them.
            Participant::Http { url, headers } => http(shared, &req, url, headers, record)
                .await
                .map_err(|e| crate::vars::redact_error(e, &shared.config.secrets)),
        }
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(ErrorInfo::new(
            TIMEOUT,
            format!("`{step}` did not answer within {} ms", timeout.as_millis()),
        )),
    }
}

async fn http(
    shared: &Shared,
    req: &Request,
    url: &str,
    headers: &std::collections::BTreeMap<String, String>,
    mut record: Option<&mut Exchange>,
) -> Result<Value, ErrorInfo> {
    // `url` is what causes show: secrets stay `${NAME}` in it.
    let target = crate::vars::fill(url, &shared.config, true)?;
    let url = target.shown;
    let mut rb = shared
        .http
        .post(&target.value)
        .header("Idempotency-Key", &req.idempotency_key)
        .header("Sagaflow-Execution-Id", &req.execution_id)
        .header("Sagaflow-Attempt", req.attempt.to_string())
        .header("Sagaflow-Step", &req.step)
        .header("Sagaflow-Task", req.task.as_str())
        .json(&req.input);
    if let Some(token) = &req.task_token {
        rb = rb.header("Sagaflow-Task-Token", token);
    }
    if let Some(node) = shared.ownership.node_id() {
        rb = rb.header("Sagaflow-Node", node);
    }
    rb = rb.headers(crate::vars::headers(headers, &shared.config)?);
    let request = rb
        .build()
        .map_err(|e| ErrorInfo::new(TASK_FAILED, format!("POST {url}: {}", describe(&e))))?;
    if let Some(r) = record.as_deref_mut() {
        r.sent(&request);
    }
    let resp = shared.http.execute(request).await.map_err(|e| {
        // Refused, unreachable, or a failed TLS handshake: nothing was
        // delivered, a plain failure. Otherwise the request may have arrived
        // and done its work before the connection dropped: the outcome is
        // unknown.
        if let Some(why) = crate::tls::handshake_failure(&e) {
            return ErrorInfo::new(TASK_FAILED, format!("POST {url}: {why}"));
        }
        let name = if e.is_connect() {
            TASK_FAILED
        } else {
            RESPONSE_LOST
        };
        ErrorInfo::new(name, format!("POST {url}: {}", describe(&e)))
    })?;
    let status = resp.status();
    let answer_headers = record.is_some().then(|| resp.headers().clone());
    // Outputs are stored in the history: a runaway answer must not exhaust
    // memory or the database, so it is cut off and reported. The call may
    // have done its work: the core treats the error as ambiguous.
    let limit = shared.config.max_output_bytes;
    let too_large = || {
        ErrorInfo::new(
            OUTPUT_TOO_LARGE,
            format!(
                "POST {url}: the 2xx answer is larger than {limit} bytes (the call may have taken effect)"
            ),
        )
    };
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut resp = resp;
    let mut bytes = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if bytes.len() + chunk.len() > limit {
                    return Err(too_large());
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => {
                return Err(ErrorInfo::new(
                    RESPONSE_LOST,
                    format!("POST {url}: reading the response: {}", describe(&e)),
                ))
            }
        }
    }
    if let (Some(r), Some(h)) = (record, &answer_headers) {
        r.received(status, h, &bytes);
    }
    if status.is_success() {
        return success_output(&url, bytes);
    }
    let body: Option<Value> = serde_json::from_slice(&bytes).ok();
    let text = || String::from_utf8_lossy(&bytes[..bytes.len().min(500)]).into_owned();
    if status.is_client_error() {
        if let Some(name) = body
            .as_ref()
            .and_then(|b| b.get("error"))
            .and_then(|e| e.as_str())
        {
            let cause = body
                .as_ref()
                .and_then(|b| b.get("cause"))
                .map(|c| {
                    c.as_str()
                        .map(String::from)
                        .unwrap_or_else(|| c.to_string())
                })
                .unwrap_or_default();
            return Err(participant_error(name, &cause));
        }
        return Err(ErrorInfo::new(
            format!("Http{}", status.as_u16()),
            format!("POST {url} answered {status}: {}", text()),
        ));
    }
    Err(ErrorInfo::new(
        TASK_FAILED,
        format!("POST {url} answered {status}: {}", text()),
    ))
}

/// The output of a 2xx answer, never changed silently: a JSON body as it is
/// (numbers exactly, whatever their size), an empty body as `null`, any
/// other UTF-8 body whole as a string. Bytes that are neither cannot be
/// stored exactly: `Sagaflow.OutputInvalid`, ambiguous like an oversized
/// answer (the participant did the work).
fn success_output(url: &str, bytes: Vec<u8>) -> Result<Value, ErrorInfo> {
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    if let Ok(v) = serde_json::from_slice(&bytes) {
        return Ok(v);
    }
    match String::from_utf8(bytes) {
        Ok(text) => Ok(Value::String(text)),
        Err(e) => Err(ErrorInfo::new(
            OUTPUT_INVALID,
            format!(
                "POST {url}: the 2xx answer is neither JSON nor UTF-8 text ({}), so it cannot be stored as it is",
                e.utf8_error()
            ),
        )),
    }
}

/// An error with its chain of causes. reqwest's own mention of the URL is
/// left out: callers name the URL as shown (without secrets).
pub(crate) fn describe(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(url) = e.url() {
        s = s.replace(&format!(" for url ({url})"), "");
    }
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}
