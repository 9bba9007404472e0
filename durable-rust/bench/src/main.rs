//! `bench-saga`: the travel saga's seven steps as a durable function in
//! Rust, each step an in-process participant that answers at once (the
//! `inprocess` workload's no-op handlers, on the durable path). What
//! `sagaflow bench --workload durable --function PATH` measures is then the
//! durable path itself: one checkpoint per step, the invocation, the replay.
//!
//! Each step returns a small record, as a reservation would, so that the
//! checkpoints carry a realistic payload; the execution's result lists them.

use aws_durable_execution_sdk as durable;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The steps of the native travel saga (`sagaflow bench --workload inprocess`).
const STEPS: [&str; 7] = [
    "reserve-hotel",
    "reserve-flight",
    "reserve-car",
    "charge-payment",
    "confirm-hotel",
    "confirm-flight",
    "confirm-car",
];

#[derive(Serialize, Deserialize)]
struct Done {
    step: String,
    reference: String,
}

async fn saga(event: Value, ctx: durable::DurableContext) -> Result<Vec<Done>, durable::BoxError> {
    let trip = event
        .get("tripId")
        .and_then(Value::as_str)
        .unwrap_or("trip")
        .to_owned();
    let mut done = Vec::with_capacity(STEPS.len());
    for step in STEPS {
        let trip = trip.clone();
        let record = ctx
            .step(move |_| async move {
                Ok(Done {
                    step: step.to_owned(),
                    reference: format!("{trip}-{step}"),
                })
            })
            .name(step)
            .await?;
        done.push(record);
    }
    Ok(done)
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    durable::run(saga).await
}
