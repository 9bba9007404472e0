//! Sagaflow's own cases (`extra/sagaflow/*.yaml`), in AWS's format, for what
//! AWS's cases leave out.

use std::time::Duration;

use serde_json::json;

use crate::durable;
use crate::support::Function;

/// Enough operations that a replay's state spans two pages (1,000 each).
const STEPS: u64 = 1_200;

pub fn functions() -> Vec<(&'static str, Function)> {
    vec![
        // Sagaflow 1: 1,200 steps, a wait, then a step summing them: the
        // replay after the wait reads its state in two pages.
        (
            "1",
            durable!(|_event, ctx| {
                let mut results = Vec::with_capacity(STEPS as usize);
                for i in 0..STEPS {
                    let value: u64 = ctx.step(move |_| async move { Ok(i) }).await?;
                    results.push(value);
                }
                ctx.wait(Duration::from_secs(1)).await?;
                let sum: u64 = ctx
                    .step(move |_| async move { Ok(results.iter().sum::<u64>()) })
                    .name("sum")
                    .await?;
                Ok(json!(sum))
            }),
        ),
    ]
}
