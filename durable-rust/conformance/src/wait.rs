//! The `wait` conformance cases (`cases/wait/*.yaml`).

use std::time::Duration;

use serde_json::{Value, json};

use crate::durable;
use crate::support::Function;

pub fn functions() -> Vec<(&'static str, Function)> {
    vec![
        // 2.1: a single 2-second wait.
        (
            "2-1",
            durable!(|_event, ctx| {
                ctx.wait(Duration::from_secs(2)).await?;
                Ok(Value::Null)
            }),
        ),
        // 2.2: a single 2-second wait named `custom_wait_name`.
        (
            "2-2",
            durable!(|_event, ctx| {
                ctx.wait(Duration::from_secs(2))
                    .name("custom_wait_name")
                    .await?;
                Ok(Value::Null)
            }),
        ),
        // 2.3: two sequential 2-second waits, `wait-1` then `wait-2`.
        (
            "2-3",
            durable!(|_event, ctx| {
                ctx.wait(Duration::from_secs(2)).name("wait-1").await?;
                ctx.wait(Duration::from_secs(2)).name("wait-2").await?;
                Ok(json!({ "completedWaits": 2 }))
            }),
        ),
        // 2.4: a wait of one minute (checkpointed as 60 seconds).
        (
            "2-4",
            durable!(|_event, ctx| {
                ctx.wait(Duration::from_mins(1)).await?;
                Ok(Value::Null)
            }),
        ),
        // 2.5: a wait of one hour (checkpointed as 3600 seconds).
        (
            "2-5",
            durable!(|_event, ctx| {
                ctx.wait(Duration::from_hours(1)).await?;
                Ok(Value::Null)
            }),
        ),
    ]
}
