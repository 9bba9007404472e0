//! The `invoke` conformance cases (`cases/invoke/*.yaml`).
//!
//! Every case's history records `ChainedInvokeStartedDetails.DurableExecutionArn`,
//! so the targets (`echo`, `fail`, `measure`) are durable functions too: the
//! chained invoke starts a durable execution of its own.

use std::time::Duration;

use aws_durable_execution_sdk::serdes::SerdesContext;
use aws_durable_execution_sdk::{BoxError, Serdes};
use serde_json::{Value, json};

use crate::durable;
use crate::support::{Function, function_name, text};

/// The hosted name of one of this module's target functions.
fn target(name: &str) -> String {
    function_name("invoke", name)
}

/// A payload near the size limit: 200 KiB of text, under the 256 KiB that
/// AWS allows for an (asynchronous) invoke payload and a checkpoint.
const LARGE_PAYLOAD_BYTES: usize = 200 * 1024;

/// 5.15's payload serdes: uppercases every string of the outgoing JSON.
struct UppercasePayload;

fn uppercase(value: Value) -> Value {
    match value {
        Value::String(s) => Value::String(s.to_uppercase()),
        Value::Array(items) => Value::Array(items.into_iter().map(uppercase).collect()),
        Value::Object(fields) => {
            Value::Object(fields.into_iter().map(|(k, v)| (k, uppercase(v))).collect())
        }
        other => other,
    }
}

impl Serdes<Value> for UppercasePayload {
    async fn serialize(&self, value: Value, _: SerdesContext) -> Result<String, BoxError> {
        Ok(serde_json::to_string(&uppercase(value))?)
    }
    async fn deserialize(&self, wire: String, _: SerdesContext) -> Result<Value, BoxError> {
        Ok(serde_json::from_str(&wire)?)
    }
}

/// 5.16's result serdes: uppercases the target's result text on the way in
/// and keeps it as text, quotes and all (`"hello"` becomes the string
/// `"HELLO"`): the case's recorded result is that string, `'"HELLO"'`.
struct UppercaseResult;

impl Serdes<String> for UppercaseResult {
    async fn serialize(&self, value: String, _: SerdesContext) -> Result<String, BoxError> {
        Ok(serde_json::to_string(&value)?)
    }
    async fn deserialize(&self, wire: String, _: SerdesContext) -> Result<String, BoxError> {
        Ok(wire.to_uppercase())
    }
}

pub fn functions() -> Vec<(&'static str, Function)> {
    vec![
        // target: returns its input unchanged.
        ("echo", durable!(|event, _ctx| Ok(event))),
        // target: always fails.
        (
            "fail",
            durable!(|_event, _ctx| Err("the target function failed on purpose".into())),
        ),
        // target: returns the size of the text it receives.
        (
            "measure",
            durable!(|event, _ctx| Ok(json!({ "length": text(&event).len() }))),
        ),
        // 5.1: invokes echo with the input and returns its result.
        (
            "5-1",
            durable!(|event, ctx| {
                let out: Value = ctx.invoke(target("echo"), event).await?;
                Ok(out)
            }),
        ),
        // 5.2: invokes echo with `payload`, the operation named by `name`.
        (
            "5-2",
            durable!(|event, ctx| {
                let name = text(&event["name"]);
                let out: Value = ctx
                    .invoke(target("echo"), event["payload"].clone())
                    .name(name)
                    .await?;
                Ok(out)
            }),
        ),
        // 5.3: invokes echo with a nested JSON input and returns it.
        (
            "5-3",
            durable!(|event, ctx| {
                let out: Value = ctx.invoke(target("echo"), event).await?;
                Ok(out)
            }),
        ),
        // 5.4: invokes echo with null and returns the null result.
        (
            "5-4",
            durable!(|_event, ctx| {
                let out: Value = ctx.invoke(target("echo"), Value::Null).await?;
                Ok(out)
            }),
        ),
        // 5.5: invokes a failing target; the error fails the execution.
        (
            "5-5",
            durable!(|_event, ctx| {
                let out: Value = ctx.invoke(target("fail"), Value::Null).await?;
                Ok(out)
            }),
        ),
        // 5.6: invokes a failing target, catches the error, returns a fallback.
        (
            "5-6",
            durable!(|_event, ctx| {
                let out: Result<Value, _> = ctx.invoke(target("fail"), Value::Null).await;
                Ok(match out {
                    Ok(value) => value,
                    Err(_) => json!("fallback"),
                })
            }),
        ),
        // 5.7: invokes a target with a payload near the size limit.
        (
            "5-7",
            durable!(|_event, ctx| {
                let large = "x".repeat(LARGE_PAYLOAD_BYTES);
                let out: Value = ctx.invoke(target("measure"), json!(large)).await?;
                Ok(out)
            }),
        ),
        // 5.8: invokes echo with `payload` for the tenant `tenantId`.
        (
            "5-8",
            durable!(|event, ctx| {
                let tenant = text(&event["tenantId"]);
                let out: Value = ctx
                    .invoke(target("echo"), event["payload"].clone())
                    .tenant_id(tenant)
                    .await?;
                Ok(out)
            }),
        ),
        // 5.9: invokes echo, then waits 1s; the replay returns the cached result.
        (
            "5-9",
            durable!(|_event, ctx| {
                let out: Value = ctx.invoke(target("echo"), json!("cached")).await?;
                ctx.wait(Duration::from_secs(1)).await?;
                Ok(out)
            }),
        ),
        // 5.10: catches a failed invoke, then waits 1s; the replay re-throws
        // the cached error, caught again.
        (
            "5-10",
            durable!(|_event, ctx| {
                let out: Result<Value, _> = ctx.invoke(target("fail"), Value::Null).await;
                let caught = out.is_err();
                ctx.wait(Duration::from_secs(1)).await?;
                Ok(json!({ "caught": caught }))
            }),
        ),
        // 5.11: a step, then an invoke of echo with the step's result.
        (
            "5-11",
            durable!(|_event, ctx| {
                let made: String = ctx.step(|_| async { Ok("from-step".to_owned()) }).await?;
                let out: Value = ctx.invoke(target("echo"), json!(made)).await?;
                Ok(out)
            }),
        ),
        // 5.12: an invoke of echo, then a step processing its result.
        (
            "5-12",
            durable!(|_event, ctx| {
                let out: String = ctx.invoke(target("echo"), json!("invoked")).await?;
                let processed: String = ctx
                    .step(move |_| async move { Ok(format!("processed {out}")) })
                    .await?;
                Ok(json!(processed))
            }),
        ),
        // 5.13: a child context invokes echo and returns its result.
        (
            "5-13",
            durable!(|_event, ctx| {
                let out: Value = ctx
                    .run_in_child_context(|child| async move {
                        let out: Value = child.invoke(target("echo"), json!("in-child")).await?;
                        Ok(out)
                    })
                    .await?;
                Ok(out)
            }),
        ),
        // 5.14: two invokes in sequence, each suspending until its target ends.
        (
            "5-14",
            durable!(|_event, ctx| {
                let first: Value = ctx.invoke(target("echo"), json!("first")).await?;
                let second: Value = ctx.invoke(target("measure"), first).await?;
                Ok(second)
            }),
        ),
        // 5.15: invokes echo with a payload serdes that uppercases the payload.
        (
            "5-15",
            durable!(|event, ctx| {
                let out: Value = ctx
                    .invoke(target("echo"), event)
                    .payload_serdes(UppercasePayload)
                    .await?;
                Ok(out)
            }),
        ),
        // 5.16: invokes echo with a result serdes that uppercases the result.
        (
            "5-16",
            durable!(|event, ctx| {
                let out: String = ctx
                    .invoke(target("echo"), event)
                    .serdes(UppercaseResult)
                    .await?;
                Ok(json!(out))
            }),
        ),
    ]
}
