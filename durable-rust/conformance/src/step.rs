//! The `step` conformance cases (`cases/step/*.yaml`).

use std::error::Error;
use std::fmt;
use std::time::Duration;

use aws_durable_execution_sdk::builders::{JitterStrategy, RetryStrategyConfig};
use aws_durable_execution_sdk::serdes::SerdesContext;
use aws_durable_execution_sdk::{
    BoxError, RetryDecision, Serdes, StepError, StepSemantics, TypedError,
};
use lambda_runtime::tracing;
use serde_json::{Value, json};

use crate::durable;
use crate::support::{Function, text};

pub fn functions() -> Vec<(&'static str, Function)> {
    vec![
        // 1.1: a single step returns a greeting built from the input.
        (
            "1-1",
            durable!(|event, ctx| {
                let name = text(&event);
                let greeting: String = ctx
                    .step(move |_| async move { Ok(format!("Hello, {name}!")) })
                    .await?;
                Ok(json!(greeting))
            }),
        ),
        // 1.2: a single step named `custom_step_name` returns a greeting.
        (
            "1-2",
            durable!(|event, ctx| {
                let name = text(&event);
                let greeting: String = ctx
                    .step(move |_| async move { Ok(format!("Hello, {name}!")) })
                    .name("custom_step_name")
                    .await?;
                Ok(json!(greeting))
            }),
        ),
        // 1.3: two sequential steps, the second uses the first's result.
        (
            "1-3",
            durable!(|_event, ctx| {
                let first: String = ctx.step(|_| async { Ok("first".to_owned()) }).await?;
                let both: String = ctx
                    .step(move |_| async move { Ok(format!("{first}_second")) })
                    .await?;
                Ok(json!(both))
            }),
        ),
        // 1.4: a step returns a nested object with arrays and mixed types.
        (
            "1-4",
            durable!(|event, ctx| {
                let response: Value = ctx
                    .step(move |_| async move {
                        let tags = event.get("tags").cloned().unwrap_or_else(|| json!([]));
                        let count = tags.as_array().map_or(0, Vec::len);
                        Ok(json!({
                            "user": { "name": event.get("name"), "tags": tags },
                            "count": count,
                        }))
                    })
                    .await?;
                Ok(response)
            }),
        ),
        // 1.5: a step returns null.
        (
            "1-5",
            durable!(|_event, ctx| {
                let nothing: Value = ctx.step(|_| async { Ok(Value::Null) }).await?;
                Ok(nothing)
            }),
        ),
        // 1.6: a step with a custom serdes that uppercases every string it
        // serializes returns its input (so the result is the uppercased input).
        (
            "1-6",
            durable!(|event, ctx| {
                let input = text(&event);
                let value: Value = ctx
                    .step(move |_| async move { Ok(json!(input)) })
                    .serdes(UppercaseSerdes)
                    .await?;
                Ok(value)
            }),
        ),
        // 1.7: a step logs its start and end through the logger of the step
        // (the Rust SDK's step logger is `tracing`, inside the step's
        // `durable_operation` span) and returns a greeting.
        (
            "1-7",
            durable!(|event, ctx| {
                let name = text(&event);
                let greeting: String = ctx
                    .step(move |_| async move {
                        tracing::info!("Greeting step started for: {name}");
                        let greeting = format!("Hello, {name}!");
                        tracing::info!("Greeting step completed with: {greeting}");
                        Ok(greeting)
                    })
                    .await?;
                Ok(json!(greeting))
            }),
        ),
        // 1.8: a step then a 2-second wait; replay skips the completed step.
        (
            "1-8",
            durable!(|_event, ctx| {
                let value: String = ctx.step(|_| async { Ok("computed".to_owned()) }).await?;
                ctx.wait(Duration::from_secs(2)).await?;
                Ok(json!(value))
            }),
        ),
        // 1.9: a step (logging "step executed") then a 1-second wait; replay
        // returns the step's recorded result without running it again.
        (
            "1-9",
            durable!(|_event, ctx| {
                let value: String = ctx
                    .step(|_| async {
                        tracing::info!("step executed");
                        Ok("cached_value".to_owned())
                    })
                    .await?;
                ctx.wait(Duration::from_secs(1)).await?;
                Ok(json!(value))
            }),
        ),
        // 1.10: a no-retry step (logging "step executed") fails inside a
        // try/catch, then a 1-second wait; replay re-throws the recorded error.
        (
            "1-10",
            durable!(|_event, ctx| {
                let failed = ctx
                    .step(|_| async {
                        tracing::info!("step executed");
                        Err::<Value, BoxError>("step failed permanently".into())
                    })
                    .retry_strategy(no_retry)
                    .await;
                if let Err(err) = failed {
                    tracing::info!("caught: {err:#}");
                }
                ctx.wait(Duration::from_secs(1)).await?;
                Ok(Value::Null)
            }),
        ),
        // 1.11: a step fails on attempt 1 and succeeds on attempt 2 (retry
        // strategy: up to 3 attempts, 1 second apart).
        (
            "1-11",
            durable!(|_event, ctx| {
                let result: String = ctx
                    .step(|step| async move {
                        if step.attempt() < 2 {
                            return Err("transient failure".into());
                        }
                        Ok("Operation succeeded".to_owned())
                    })
                    .retry_strategy_config(fixed_retry(3, 1))
                    .await?;
                Ok(json!(result))
            }),
        ),
        // 1.12: a step always fails; 4 attempts in all, 1 second apart.
        (
            "1-12",
            durable!(|_event, ctx| {
                let result: Value =
                    ctx.step(|step| async move {
                        Err(format!("attempt {} failed", step.attempt()).into())
                    })
                    .retry_strategy_config(fixed_retry(4, 1))
                    .await?;
                Ok(result)
            }),
        ),
        // 1.13: a step fails on attempts 1 and 2 and succeeds on attempt 3,
        // with the SDK's default retry strategy (no retry configured).
        (
            "1-13",
            durable!(|_event, ctx| {
                let result: String = ctx
                    .step(|step| async move {
                        if step.attempt() < 3 {
                            return Err(format!("attempt {} failed", step.attempt()).into());
                        }
                        Ok("Operation succeeded".to_owned())
                    })
                    .await?;
                Ok(json!(result))
            }),
        ),
        // 1.14: a step fails twice then succeeds; retry strategy: 5 attempts,
        // 2 s initial delay, 3x backoff, no jitter (delays 2 s then 6 s). AWS's
        // handler counts attempts in DynamoDB; the step's attempt number is
        // the same count here.
        (
            "1-14",
            durable!(|_event, ctx| {
                let result: String = ctx
                    .step(|step| async move {
                        if step.attempt() < 3 {
                            return Err(format!("attempt {} failed", step.attempt()).into());
                        }
                        Ok("Operation succeeded".to_owned())
                    })
                    .retry_strategy_config(
                        RetryStrategyConfig::builder()
                            .max_attempts(5)
                            .initial_delay(Duration::from_secs(2))
                            .backoff_rate(3.0)
                            .jitter(JitterStrategy::None)
                            .build(),
                    )
                    .await?;
                Ok(json!(result))
            }),
        ),
        // 1.15: a step throws TransientError on attempt 1; the retry strategy
        // retries (after 1 s) only a TransientError; attempt 2 succeeds.
        (
            "1-15",
            durable!(|_event, ctx| {
                let result: String = ctx
                    .step(|step| async move {
                        if step.attempt() < 2 {
                            return Err(transient("temporary failure"));
                        }
                        Ok("Operation succeeded".to_owned())
                    })
                    .retry_strategy(|err, attempt| {
                        if is_transient(err) && attempt < 3 {
                            RetryDecision::Retry {
                                delay: Duration::from_secs(1),
                            }
                        } else {
                            RetryDecision::Stop
                        }
                    })
                    .await?;
                Ok(json!(result))
            }),
        ),
        // 1.16: a step throws TransientError; the retry strategy does not
        // retry a TransientError, so the step fails permanently.
        (
            "1-16",
            durable!(|_event, ctx| {
                let result: String = ctx
                    .step(|_| async { Err(transient("temporary failure")) })
                    .retry_strategy(|err, _attempt| {
                        if is_transient(err) {
                            RetryDecision::Stop
                        } else {
                            RetryDecision::Retry {
                                delay: Duration::from_secs(1),
                            }
                        }
                    })
                    .await?;
                Ok(json!(result))
            }),
        ),
        // 1.17: an AtMostOncePerRetry step named `at_most_once_flaky_step`
        // with no retry logs its input and crashes the runtime (exits the
        // process); the replay fails the interrupted step without re-running it.
        (
            "1-17",
            durable!(|event, ctx| {
                let input = text(&event);
                let result: String = ctx
                    .step(move |_| async move {
                        tracing::info!("at_most_once_flaky_step running for: {input}");
                        std::process::exit(1)
                    })
                    .name("at_most_once_flaky_step")
                    .semantics(StepSemantics::AtMostOncePerRetry)
                    // "No retry strategy" in the case's words: the step fails
                    // on its first interruption (the Rust SDK's default
                    // strategy would retry 6 times).
                    .retry_strategy(no_retry)
                    .await?;
                Ok(json!(result))
            }),
        ),
        // 1.18: an AtMostOncePerRetry step with a retry strategy logs its input
        // each time it runs; attempt 1 crashes the runtime (exits the
        // process), the replay records the interruption as a failed attempt
        // and attempt 2 succeeds.
        (
            "1-18",
            durable!(|event, ctx| {
                let input = text(&event);
                let result: String = ctx
                    .step(move |step| async move {
                        tracing::info!("flaky step running for: {input}");
                        if step.attempt() < 2 {
                            std::process::exit(1);
                        }
                        Ok("succeeded on second attempt".to_owned())
                    })
                    .semantics(StepSemantics::AtMostOncePerRetry)
                    .retry_strategy_config(fixed_retry(3, 1))
                    .await?;
                Ok(json!(result))
            }),
        ),
        // 1.19: a single step always throws, with no retries.
        (
            "1-19",
            durable!(|_event, ctx| {
                let result: String = ctx
                    .step(|_| async { Err("step failed".into()) })
                    .retry_strategy(no_retry)
                    .await?;
                Ok(json!(result))
            }),
        ),
        // 1.20: a no-retry step throws inside a try/catch; the handler falls
        // back to a default value, which a second step returns.
        (
            "1-20",
            durable!(|_event, ctx| {
                let fallback = match ctx
                    .step(|_| async { Err::<String, BoxError>("step failed".into()) })
                    .retry_strategy(no_retry)
                    .await
                {
                    Ok(value) => value,
                    Err(_) => "fallback_result".to_owned(),
                };
                let result: String = ctx.step(move |_| async move { Ok(fallback) }).await?;
                Ok(json!(result))
            }),
        ),
    ]
}

/// The "no retry" strategy (AWS's `RetryPresets.none()`, max attempts 1).
fn no_retry(_err: &StepError, _attempt: u32) -> RetryDecision {
    RetryDecision::Stop
}

/// `max_attempts` attempts in all, `delay` seconds apart, no jitter.
fn fixed_retry(max_attempts: u32, delay: u64) -> RetryStrategyConfig {
    RetryStrategyConfig::builder()
        .max_attempts(max_attempts)
        .initial_delay(Duration::from_secs(delay))
        .backoff_rate(1.0)
        .jitter(JitterStrategy::None)
        .build()
}

/// The cases' custom `TransientError` (recorded with that `ErrorType`).
#[derive(Debug)]
struct TransientError(String);

impl fmt::Display for TransientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for TransientError {}

fn transient(message: &str) -> BoxError {
    Box::new(TypedError::new(TransientError(message.to_owned())))
}

/// Whether a step failed with a `TransientError` (anywhere in its chain).
fn is_transient(err: &StepError) -> bool {
    let mut next: Option<&(dyn Error + 'static)> = Some(err);
    while let Some(e) = next {
        if e.is::<TransientError>() {
            return true;
        }
        next = e.source();
    }
    false
}

/// A serdes that uppercases every string value it serializes (JSON otherwise).
struct UppercaseSerdes;

impl Serdes<Value> for UppercaseSerdes {
    async fn serialize(&self, value: Value, _context: SerdesContext) -> Result<String, BoxError> {
        Ok(serde_json::to_string(&uppercase(value))?)
    }

    async fn deserialize(&self, wire: String, _context: SerdesContext) -> Result<Value, BoxError> {
        Ok(serde_json::from_str(&wire)?)
    }
}

fn uppercase(value: Value) -> Value {
    match value {
        Value::String(s) => Value::String(s.to_uppercase()),
        Value::Array(items) => Value::Array(items.into_iter().map(uppercase).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, uppercase(v))).collect())
        }
        other => other,
    }
}
