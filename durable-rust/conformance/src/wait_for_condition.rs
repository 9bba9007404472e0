//! The `wait_for_condition` conformance cases (`cases/wait_for_condition/*.yaml`).

use std::time::Duration;

use aws_durable_execution_sdk::builders::JitterStrategy;
use aws_durable_execution_sdk::builders::wait_for_condition::{WaitDecision, WaitStrategy};
use aws_durable_execution_sdk::serdes::SerdesContext;
use aws_durable_execution_sdk::{BoxError, Serdes};
use serde_json::{Value, json};

use crate::durable;
use crate::support::Function;

/// The delay between two checks when a case does not name one: the
/// shortest the SDK schedules (it rounds delays up to whole seconds).
const POLL_DELAY: Duration = Duration::from_secs(1);

/// The case's input as an integer threshold (0 when it is not one).
fn threshold(event: &Value) -> i64 {
    event.as_i64().unwrap_or(0)
}

/// Polls every second until the state reaches `limit`.
fn until_at_least(limit: i64) -> impl Fn(i64, u32) -> WaitDecision + Send + Sync + 'static {
    move |state, _attempt| {
        if state >= limit {
            WaitDecision::complete()
        } else {
            WaitDecision::continue_with(POLL_DELAY)
        }
    }
}

/// 6.11's state serdes: the string is checkpointed reversed inside an
/// envelope (`{"encoded": "…"}`), and decoded back on resume.
struct EnvelopeSerdes;

impl Serdes<String> for EnvelopeSerdes {
    async fn serialize(&self, value: String, _: SerdesContext) -> Result<String, BoxError> {
        let encoded: String = value.chars().rev().collect();
        Ok(json!({ "encoded": encoded }).to_string())
    }
    async fn deserialize(&self, wire: String, _: SerdesContext) -> Result<String, BoxError> {
        let envelope: Value = serde_json::from_str(&wire)?;
        let encoded = envelope["encoded"]
            .as_str()
            .ok_or("the checkpointed state has no `encoded` string")?;
        Ok(encoded.chars().rev().collect())
    }
}

pub fn functions() -> Vec<(&'static str, Function)> {
    vec![
        // 6.1: counts from 0 by 1 per check until the input threshold (3).
        (
            "6-1",
            durable!(|event, ctx| {
                let done = ctx
                    .wait_for_condition(|_, state: i64| async move { Ok(state + 1) }, 0)
                    .wait_strategy_fn(until_at_least(threshold(&event)))
                    .await?;
                Ok(json!(done))
            }),
        ),
        // 6.2: starts at 5, the check keeps it; state >= 5 stops at once.
        (
            "6-2",
            durable!(|event, ctx| {
                let done = ctx
                    .wait_for_condition(|_, state: i64| async move { Ok(state) }, 5)
                    .wait_strategy_fn(until_at_least(threshold(&event)))
                    .await?;
                Ok(json!(done))
            }),
        ),
        // 6.3: named "poll-status", counts from 0 until the threshold (2).
        (
            "6-3",
            durable!(|event, ctx| {
                let done = ctx
                    .wait_for_condition(|_, state: i64| async move { Ok(state + 1) }, 0)
                    .name("poll-status")
                    .wait_strategy_fn(until_at_least(threshold(&event)))
                    .await?;
                Ok(json!(done))
            }),
        ),
        // 6.4: counts from an initial state of 5 until the threshold (8).
        (
            "6-4",
            durable!(|event, ctx| {
                let done = ctx
                    .wait_for_condition(|_, state: i64| async move { Ok(state + 1) }, 5)
                    .wait_strategy_fn(until_at_least(threshold(&event)))
                    .await?;
                Ok(json!(done))
            }),
        ),
        // 6.5: a fixed 2s delay (no jitter, no backoff) until the threshold (3).
        (
            "6-5",
            durable!(|event, ctx| {
                let limit = threshold(&event);
                let done = ctx
                    .wait_for_condition(|_, state: i64| async move { Ok(state + 1) }, 0)
                    .wait_strategy(
                        WaitStrategy::builder(move |state: &i64| *state >= limit)
                            .initial_delay(Duration::from_secs(2))
                            .backoff_rate(1.0)
                            .jitter(JitterStrategy::None)
                            .build(),
                    )
                    .await?;
                Ok(json!(done))
            }),
        ),
        // 6.6: the condition is never met; a 3-attempt fixed-delay strategy
        // exhausts and fails the execution.
        (
            "6-6",
            durable!(|_event, ctx| {
                let done = ctx
                    .wait_for_condition(|_, state: i64| async move { Ok(state + 1) }, 0)
                    .wait_strategy(
                        WaitStrategy::builder(|_: &i64| false)
                            .max_attempts(3)
                            .initial_delay(POLL_DELAY)
                            .backoff_rate(1.0)
                            .jitter(JitterStrategy::None)
                            .build(),
                    )
                    .await?;
                Ok(json!(done))
            }),
        ),
        // 6.7: the check fails on its first attempt; the error fails the execution.
        (
            "6-7",
            durable!(|_event, ctx| {
                let done = ctx
                    .wait_for_condition(
                        |_, _state: i64| async move {
                            Err::<i64, BoxError>("the check failed on purpose".into())
                        },
                        0,
                    )
                    .wait_strategy_fn(until_at_least(1))
                    .await?;
                Ok(json!(done))
            }),
        ),
        // 6.8: the check fails on its first attempt; the handler catches it
        // and returns "recovered".
        (
            "6-8",
            durable!(|_event, ctx| {
                let done = ctx
                    .wait_for_condition(
                        |_, _state: i64| async move {
                            Err::<i64, BoxError>("the check failed on purpose".into())
                        },
                        0,
                    )
                    .wait_strategy_fn(until_at_least(1))
                    .await;
                Ok(match done {
                    Ok(state) => json!(state),
                    Err(_) => json!("recovered"),
                })
            }),
        ),
        // 6.9: a {status, attempts} state: DONE once attempts reaches 2.
        (
            "6-9",
            durable!(|_event, ctx| {
                let done = ctx
                    .wait_for_condition(
                        |_, state: Value| async move {
                            let attempts = state["attempts"].as_i64().unwrap_or(0) + 1;
                            let status = if attempts >= 2 { "DONE" } else { "PENDING" };
                            Ok(json!({ "status": status, "attempts": attempts }))
                        },
                        json!({ "status": "PENDING", "attempts": 0 }),
                    )
                    .wait_strategy_fn(|state: Value, _attempt| {
                        if state["status"] == "PENDING" {
                            WaitDecision::continue_with(POLL_DELAY)
                        } else {
                            WaitDecision::complete()
                        }
                    })
                    .await?;
                Ok(done)
            }),
        ),
        // 6.10: the check returns null and the strategy stops at once.
        (
            "6-10",
            durable!(|_event, ctx| {
                let done = ctx
                    .wait_for_condition(|_, _state: Value| async move { Ok(Value::Null) }, json!(0))
                    .wait_strategy_fn(|_state: Value, _attempt| WaitDecision::complete())
                    .await?;
                Ok(done)
            }),
        ),
        // 6.11: a string state under a custom serdes; each check appends "x",
        // polling until it is 2 long.
        (
            "6-11",
            durable!(|_event, ctx| {
                let done = ctx
                    .wait_for_condition(
                        |_, state: String| async move { Ok(format!("{state}x")) },
                        String::new(),
                    )
                    .serdes(EnvelopeSerdes)
                    .wait_strategy_fn(|state: String, _attempt| {
                        if state.len() >= 2 {
                            WaitDecision::complete()
                        } else {
                            WaitDecision::continue_with(POLL_DELAY)
                        }
                    })
                    .await?;
                Ok(json!(done))
            }),
        ),
        // 6.12: counts from 0 to the threshold (2), then a step multiplies by 10.
        (
            "6-12",
            durable!(|event, ctx| {
                let done = ctx
                    .wait_for_condition(|_, state: i64| async move { Ok(state + 1) }, 0)
                    .wait_strategy_fn(until_at_least(threshold(&event)))
                    .await?;
                let tenfold: i64 = ctx.step(move |_| async move { Ok(done * 10) }).await?;
                Ok(json!(tenfold))
            }),
        ),
        // 6.13: counts 0 -> 2, then a second operation counts on from there to 4.
        (
            "6-13",
            durable!(|_event, ctx| {
                let first = ctx
                    .wait_for_condition(|_, state: i64| async move { Ok(state + 1) }, 0)
                    .wait_strategy_fn(until_at_least(2))
                    .await?;
                let second = ctx
                    .wait_for_condition(|_, state: i64| async move { Ok(state + 1) }, first)
                    .wait_strategy_fn(until_at_least(4))
                    .await?;
                Ok(json!(second))
            }),
        ),
    ]
}
