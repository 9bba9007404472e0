//! The `wait_for_callback` conformance cases (`cases/wait_for_callback/*.yaml`).

use std::time::Duration;

use aws_durable_execution_sdk as durable;
use durable::{BoxError, DurableContext, RetryDecision};
use serde_json::{Value, json};

use crate::durable;
use crate::support::{Function, text};

/// A wait_for_callback whose submitter does nothing (the harness finds the
/// callback in the history), with an optional name, timeout and heartbeat
/// timeout (seconds).
async fn wait_for(
    ctx: &DurableContext,
    name: Option<String>,
    timeout: Option<u64>,
    heartbeat: Option<u64>,
) -> Result<Value, BoxError> {
    let mut builder = ctx.wait_for_callback::<Value, _, _>(|_, _id| async { Ok(()) });
    if let Some(name) = name {
        builder = builder.name(name);
    }
    if let Some(secs) = timeout {
        builder = builder.timeout(Duration::from_secs(secs));
    }
    if let Some(secs) = heartbeat {
        builder = builder.heartbeat(Duration::from_secs(secs));
    }
    Ok(builder.await?)
}

pub fn functions() -> Vec<(&'static str, Function)> {
    vec![
        // 7.1: one wait_for_callback named after the input; returns its payload.
        (
            "7-1",
            durable!(|event, ctx| wait_for(&ctx, Some(text(&event)), None, None).await),
        ),
        // 7.2: one wait_for_callback named "approval".
        (
            "7-2",
            durable!(|_event, ctx| wait_for(&ctx, Some("approval".into()), None, None).await),
        ),
        // 7.3: one wait_for_callback with no name.
        (
            "7-3",
            durable!(|_event, ctx| wait_for(&ctx, None, None, None).await),
        ),
        // 7.4: the external system fails the callback; the error is not caught.
        (
            "7-4",
            durable!(|event, ctx| wait_for(&ctx, Some(text(&event)), None, None).await),
        ),
        // 7.5: a 3 s timeout that nobody answers; the error is not caught.
        (
            "7-5",
            durable!(|event, ctx| wait_for(&ctx, Some(text(&event)), Some(3), None).await),
        ),
        // 7.6: the external failure is caught; returns "recovered".
        (
            "7-6",
            durable!(|event, ctx| {
                match wait_for(&ctx, Some(text(&event)), None, None).await {
                    Ok(result) => Ok(result),
                    Err(_) => Ok(json!("recovered")),
                }
            }),
        ),
        // 7.7: the submitter always fails; 2 attempts 1 s apart, then the
        // operation (and the execution) fails.
        (
            "7-7",
            durable!(|event, ctx| {
                let result = ctx
                    .wait_for_callback::<Value, _, _>(|_, _id| async {
                        Err::<(), BoxError>("submitter failed".into())
                    })
                    .name(text(&event))
                    .submitter_retry(|_err, attempt| {
                        if attempt >= 2 {
                            RetryDecision::Stop
                        } else {
                            RetryDecision::Retry {
                                delay: Duration::from_secs(1),
                            }
                        }
                    })
                    .await?;
                Ok(result)
            }),
        ),
        // 7.8: the wait_for_callback runs inside a child context "wrapper".
        (
            "7-8",
            durable!(|event, ctx| {
                let name = text(&event);
                let result = ctx
                    .run_in_child_context(move |child| async move {
                        wait_for(&child, Some(name), None, None).await
                    })
                    .name("wrapper")
                    .await?;
                Ok(result)
            }),
        ),
        // 7.9: two sequential wait_for_callbacks "first" and "second";
        // returns the second payload.
        (
            "7-9",
            durable!(|_event, ctx| {
                wait_for(&ctx, Some("first".into()), None, None).await?;
                wait_for(&ctx, Some("second".into()), None, None).await
            }),
        ),
        // 7.10: a 1 s wait, a top-level step, then a wait_for_callback.
        (
            "7-10",
            durable!(|event, ctx| {
                ctx.wait(Duration::from_secs(1)).await?;
                let _: Value = ctx
                    .step(|_| async { Ok(json!({ "fixed": "data" })) })
                    .await?;
                wait_for(&ctx, Some(text(&event)), None, None).await
            }),
        ),
        // 7.11: the payload is read as a JSON object; returns its "status".
        (
            "7-11",
            durable!(|event, ctx| {
                let result = wait_for(&ctx, Some(text(&event)), None, None).await?;
                Ok(result.get("status").cloned().unwrap_or(Value::Null))
            }),
        ),
        // 7.12: a 5 s heartbeat timeout that nobody keeps alive.
        (
            "7-12",
            durable!(|event, ctx| wait_for(&ctx, Some(text(&event)), None, Some(5)).await),
        ),
        // 7.13: a 10 s heartbeat timeout, kept alive once, then answered.
        (
            "7-13",
            durable!(|event, ctx| wait_for(&ctx, Some(text(&event)), None, Some(10)).await),
        ),
        // 7.14: a 3 s timeout is caught; returns "timed-out-handled".
        (
            "7-14",
            durable!(|event, ctx| {
                match wait_for(&ctx, Some(text(&event)), Some(3), None).await {
                    Ok(result) => Ok(result),
                    Err(_) => Ok(json!("timed-out-handled")),
                }
            }),
        ),
        // 7.15: the callback succeeds with no payload; returns null.
        (
            "7-15",
            durable!(|event, ctx| wait_for(&ctx, Some(text(&event)), None, None).await),
        ),
    ]
}
