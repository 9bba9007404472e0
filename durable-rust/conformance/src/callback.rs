//! The `callback` conformance cases (`cases/callback/*.yaml`).

use std::time::Duration;

use aws_durable_execution_sdk as durable;
use durable::serdes::SerdesContext;
use durable::{BoxError, DurableContext, Serdes};
use serde_json::{Value, json};

use crate::durable;
use crate::support::{Function, text};

/// The payload of the callback named `name`, created with an optional
/// timeout and heartbeat timeout (seconds): the shape most cases share.
async fn callback_result(
    ctx: &DurableContext,
    name: String,
    timeout: Option<u64>,
    heartbeat: Option<u64>,
) -> Result<Value, BoxError> {
    let mut builder = ctx.create_callback::<Value>().name(name);
    if let Some(secs) = timeout {
        builder = builder.timeout(Duration::from_secs(secs));
    }
    if let Some(secs) = heartbeat {
        builder = builder.heartbeat(Duration::from_secs(secs));
    }
    let callback = builder.await?;
    Ok(callback.result().await?)
}

/// The `index`th name of an input list (`['A', 'B']`).
fn nth(event: &Value, index: usize) -> String {
    event.get(index).map(text).unwrap_or_default()
}

/// 4.15's deserializer: the payload's JSON object with its ISO-8601
/// `timestamp` string turned into seconds since the epoch.
struct TimestampSerdes;

impl Serdes<Value> for TimestampSerdes {
    async fn serialize(&self, value: Value, _: SerdesContext) -> Result<String, BoxError> {
        Ok(serde_json::to_string(&value)?)
    }

    async fn deserialize(&self, wire: String, _: SerdesContext) -> Result<Value, BoxError> {
        let mut value: Value = serde_json::from_str(&wire)?;
        let stamp = value
            .get("timestamp")
            .and_then(Value::as_str)
            .ok_or("the payload has no timestamp string")?;
        let seconds = epoch_seconds(stamp).ok_or_else(|| format!("bad timestamp {stamp:?}"))?;
        value["timestamp"] = json!(seconds);
        Ok(value)
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fff]Z` as seconds since the epoch (UTC).
fn epoch_seconds(stamp: &str) -> Option<i64> {
    let (date, time) = stamp.trim_end_matches('Z').split_once('T')?;
    let mut date = date.split('-').map(str::parse::<i64>);
    let (y, m, d) = (date.next()?.ok()?, date.next()?.ok()?, date.next()?.ok()?);
    let mut time = time.split(':');
    let (h, min) = (
        time.next()?.parse::<i64>().ok()?,
        time.next()?.parse::<i64>().ok()?,
    );
    let s = time.next()?.split('.').next()?.parse::<i64>().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + min * 60 + s)
}

/// 4.16's deserializer: the payload as a number.
struct NumberSerdes;

impl Serdes<i64> for NumberSerdes {
    async fn serialize(&self, value: i64, _: SerdesContext) -> Result<String, BoxError> {
        Ok(value.to_string())
    }

    async fn deserialize(&self, wire: String, _: SerdesContext) -> Result<i64, BoxError> {
        // The payload may arrive as a JSON number or a JSON string of one.
        let text = wire.trim().trim_matches('"');
        Ok(text.parse::<i64>()?)
    }
}

pub fn functions() -> Vec<(&'static str, Function)> {
    vec![
        // 4.1: a callback named after the input; returns its payload.
        (
            "4-1",
            durable!(|event, ctx| callback_result(&ctx, text(&event), None, None).await),
        ),
        // 4.2: a callback named "approval"; returns its payload.
        (
            "4-2",
            durable!(|_event, ctx| callback_result(&ctx, "approval".into(), None, None).await),
        ),
        // 4.3: a callback with a 5 s timeout that nobody answers.
        (
            "4-3",
            durable!(|event, ctx| callback_result(&ctx, text(&event), Some(5), None).await),
        ),
        // 4.4: a callback with a 5 s heartbeat timeout that nobody answers.
        (
            "4-4",
            durable!(|event, ctx| callback_result(&ctx, text(&event), None, Some(5)).await),
        ),
        // 4.5: a callback with a 10 s heartbeat timeout, kept alive then answered.
        (
            "4-5",
            durable!(|event, ctx| callback_result(&ctx, text(&event), None, Some(10)).await),
        ),
        // 4.6: a callback the external system fails; the error is not caught.
        (
            "4-6",
            durable!(|event, ctx| callback_result(&ctx, text(&event), None, None).await),
        ),
        // 4.7: create a callback, run a step, then await the (failed) callback.
        (
            "4-7",
            durable!(|event, ctx| {
                let callback = ctx.create_callback::<Value>().name(text(&event)).await?;
                let _: String = ctx.step(|_| async { Ok("step done".to_owned()) }).await?;
                Ok(callback.result().await?)
            }),
        ),
        // 4.8: create a callback with a 5 s timeout, run a step, then await it.
        (
            "4-8",
            durable!(|event, ctx| {
                let callback = ctx
                    .create_callback::<Value>()
                    .name(text(&event))
                    .timeout(Duration::from_secs(5))
                    .await?;
                let _: String = ctx.step(|_| async { Ok("step done".to_owned()) }).await?;
                Ok(callback.result().await?)
            }),
        ),
        // 4.9: create a callback, wait 5 s, then await the callback.
        (
            "4-9",
            durable!(|event, ctx| {
                let callback = ctx.create_callback::<Value>().name(text(&event)).await?;
                ctx.wait(Duration::from_secs(5)).await?;
                Ok(callback.result().await?)
            }),
        ),
        // 4.10: create a callback, wait 5 s, then await the (failed) callback.
        (
            "4-10",
            durable!(|event, ctx| {
                let callback = ctx.create_callback::<Value>().name(text(&event)).await?;
                ctx.wait(Duration::from_secs(5)).await?;
                Ok(callback.result().await?)
            }),
        ),
        // 4.11: create a callback with a 3 s timeout, wait 6 s, then await it.
        (
            "4-11",
            durable!(|event, ctx| {
                let callback = ctx
                    .create_callback::<Value>()
                    .name(text(&event))
                    .timeout(Duration::from_secs(3))
                    .await?;
                ctx.wait(Duration::from_secs(6)).await?;
                Ok(callback.result().await?)
            }),
        ),
        // 4.12: await a callback, wait 2 s, then return its payload.
        (
            "4-12",
            durable!(|event, ctx| {
                let result = callback_result(&ctx, text(&event), None, None).await?;
                ctx.wait(Duration::from_secs(2)).await?;
                Ok(result)
            }),
        ),
        // 4.13: a failed callback is caught, then a 2 s wait, then the message.
        (
            "4-13",
            durable!(|event, ctx| {
                let message = match callback_result(&ctx, text(&event), None, None).await {
                    Ok(result) => result,
                    Err(err) => json!(format!("callback failed: {err}")),
                };
                ctx.wait(Duration::from_secs(2)).await?;
                Ok(message)
            }),
        ),
        // 4.14: a timed-out callback (3 s) is caught, then a 2 s wait.
        (
            "4-14",
            durable!(|event, ctx| {
                let message = match callback_result(&ctx, text(&event), Some(3), None).await {
                    Ok(result) => result,
                    Err(err) => json!(format!("callback timed out: {err}")),
                };
                ctx.wait(Duration::from_secs(2)).await?;
                Ok(message)
            }),
        ),
        // 4.15: a custom deserializer turns the payload's ISO timestamp into
        // epoch seconds; returns {received: payload}.
        (
            "4-15",
            durable!(|event, ctx| {
                let callback = ctx
                    .create_callback::<Value>()
                    .name(text(&event))
                    .serdes(TimestampSerdes)
                    .await?;
                let received = callback.result().await?;
                Ok(json!({ "received": received }))
            }),
        ),
        // 4.16: a custom deserializer reads the payload as a number;
        // returns {count, doubled}.
        (
            "4-16",
            durable!(|event, ctx| {
                let callback = ctx
                    .create_callback::<i64>()
                    .name(text(&event))
                    .serdes(NumberSerdes)
                    .await?;
                let count = callback.result().await?;
                Ok(json!({ "count": count, "doubled": count * 2 }))
            }),
        ),
        // 4.17: create and await callback A, then create and await callback B.
        (
            "4-17",
            durable!(|event, ctx| {
                let a = callback_result(&ctx, nth(&event, 0), None, None).await?;
                let b = callback_result(&ctx, nth(&event, 1), None, None).await?;
                Ok(json!([a, b]))
            }),
        ),
        // 4.18: create callbacks A and B, then await A, then B.
        (
            "4-18",
            durable!(|event, ctx| {
                let a = ctx.create_callback::<Value>().name(nth(&event, 0)).await?;
                let b = ctx.create_callback::<Value>().name(nth(&event, 1)).await?;
                let a = a.result().await?;
                let b = b.result().await?;
                Ok(json!([a, b]))
            }),
        ),
        // 4.19: create callbacks A and B, then await B, then A.
        (
            "4-19",
            durable!(|event, ctx| {
                let a = ctx.create_callback::<Value>().name(nth(&event, 0)).await?;
                let b = ctx.create_callback::<Value>().name(nth(&event, 1)).await?;
                let b = b.result().await?;
                let a = a.result().await?;
                Ok(json!([a, b]))
            }),
        ),
    ]
}
