//! The `child` conformance cases (`cases/child/*.yaml`).

use std::time::Duration;

use aws_durable_execution_sdk::serdes::{Serdes, SerdesContext};
use aws_durable_execution_sdk::{BoxError, RetryDecision};
use serde_json::{Value, json};

use crate::durable;
use crate::support::{Function, text};

/// Serializes a child result uppercased (3.14); reads it back unchanged.
struct UppercaseSerdes;

impl Serdes<String> for UppercaseSerdes {
    async fn serialize(&self, value: String, _context: SerdesContext) -> Result<String, BoxError> {
        Ok(value.to_uppercase())
    }

    async fn deserialize(&self, wire: String, _context: SerdesContext) -> Result<String, BoxError> {
        Ok(wire)
    }
}

/// A step retry policy: retry after one second until `max` attempts ran.
fn retry_up_to(max: u32) -> impl Fn(&aws_durable_execution_sdk::StepError, u32) -> RetryDecision {
    move |_err, attempt| {
        if attempt >= max {
            RetryDecision::Stop
        } else {
            RetryDecision::Retry {
                delay: Duration::from_secs(1),
            }
        }
    }
}

/// A marker file per execution, so 3.12 crashes its first invocation only.
fn crash_marker(arn: &str) -> std::path::PathBuf {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    arn.hash(&mut hasher);
    std::env::temp_dir().join(format!("conf-child-3-12-{:x}", hasher.finish()))
}

pub fn functions() -> Vec<(&'static str, Function)> {
    vec![
        // 3.1: a child context runs one step returning the input; the child returns it.
        (
            "3-1",
            durable!(|event, ctx| {
                let input = text(&event);
                let out: String = ctx
                    .run_in_child_context(move |child| async move {
                        Ok(child.step(move |_| async move { Ok(input) }).await?)
                    })
                    .name("child")
                    .await?;
                Ok(json!(out))
            }),
        ),
        // 3.2: a child named after input.name runs a step returning input.value.
        (
            "3-2",
            durable!(|event, ctx| {
                let name = text(&event["name"]);
                let value = text(&event["value"]);
                let out: String = ctx
                    .run_in_child_context(move |child| async move {
                        Ok(child.step(move |_| async move { Ok(value) }).await?)
                    })
                    .name(name)
                    .await?;
                Ok(json!(out))
            }),
        ),
        // 3.3: a child runs two steps, the second passing on the first's result.
        (
            "3-3",
            durable!(|event, ctx| {
                let input = text(&event);
                let out: String = ctx
                    .run_in_child_context(move |child| async move {
                        let first: String = child.step(move |_| async move { Ok(input) }).await?;
                        Ok(child.step(move |_| async move { Ok(first) }).await?)
                    })
                    .name("child")
                    .await?;
                Ok(json!(out))
            }),
        ),
        // 3.4: the child's step fails without retry; the child and the execution fail.
        (
            "3-4",
            durable!(|_event, ctx| {
                let out: String = ctx
                    .run_in_child_context(|child| async move {
                        Ok(child
                            .step(|_| async { Err::<String, BoxError>("step failed".into()) })
                            .retry_strategy(|_, _| RetryDecision::Stop)
                            .await?)
                    })
                    .name("child")
                    .await?;
                Ok(json!(out))
            }),
        ),
        // 3.5: the child fails as in 3.4, the handler catches it and a recovery step returns the input.
        (
            "3-5",
            durable!(|event, ctx| {
                let input = text(&event);
                let failed: Result<String, _> = ctx
                    .run_in_child_context(|child| async move {
                        Ok(child
                            .step(|_| async { Err::<String, BoxError>("step failed".into()) })
                            .retry_strategy(|_, _| RetryDecision::Stop)
                            .await?)
                    })
                    .name("child")
                    .await;
                let _ = failed.err();
                let out: String = ctx.step(move |_| async move { Ok(input) }).await?;
                Ok(json!(out))
            }),
        ),
        // 3.6: an outer child runs a step and an inner child that runs its own step.
        (
            "3-6",
            durable!(|event, ctx| {
                let input = text(&event);
                let out: String = ctx
                    .run_in_child_context(move |outer| async move {
                        let again = input.clone();
                        let _: String = outer.step(move |_| async move { Ok(input) }).await?;
                        let inner: String = outer
                            .run_in_child_context(move |inner| async move {
                                Ok(inner.step(move |_| async move { Ok(again) }).await?)
                            })
                            .name("inner")
                            .await?;
                        Ok(inner)
                    })
                    .name("outer")
                    .await?;
                Ok(json!(out))
            }),
        ),
        // 3.7: the child's step fails its first attempt and succeeds on the retry.
        (
            "3-7",
            durable!(|event, ctx| {
                let input = text(&event);
                let out: String = ctx
                    .run_in_child_context(move |child| async move {
                        Ok(child
                            .step(move |step| async move {
                                if step.attempt() == 1 {
                                    Err::<String, BoxError>("first attempt fails".into())
                                } else {
                                    Ok(input)
                                }
                            })
                            .retry_strategy(retry_up_to(2))
                            .await?)
                    })
                    .name("child")
                    .await?;
                Ok(json!(out))
            }),
        ),
        // 3.8: the child's step always fails; two attempts exhaust it and the child fails.
        (
            "3-8",
            durable!(|_event, ctx| {
                let out: String = ctx
                    .run_in_child_context(|child| async move {
                        Ok(child
                            .step(|_| async { Err::<String, BoxError>("always fails".into()) })
                            .retry_strategy(retry_up_to(2))
                            .await?)
                    })
                    .name("child")
                    .await?;
                Ok(json!(out))
            }),
        ),
        // 3.9: a child (step returning the input) then a wait; replay takes the child's cached result.
        (
            "3-9",
            durable!(|event, ctx| {
                let input = text(&event);
                let out: String = ctx
                    .run_in_child_context(move |child| async move {
                        Ok(child.step(move |_| async move { Ok(input) }).await?)
                    })
                    .name("child")
                    .await?;
                ctx.wait(Duration::from_secs(1)).await?;
                Ok(json!(out))
            }),
        ),
        // 3.10: a child runs a step returning the input then a wait, and returns the input.
        (
            "3-10",
            durable!(|event, ctx| {
                let input = text(&event);
                let out: String = ctx
                    .run_in_child_context(move |child| async move {
                        let out: String = child.step(move |_| async move { Ok(input) }).await?;
                        child.wait(Duration::from_secs(1)).await?;
                        Ok(out)
                    })
                    .name("child")
                    .await?;
                Ok(json!(out))
            }),
        ),
        // 3.11: the child logs the input, runs a small step and returns a >256KB result
        // (ReplayChildren), then a wait; replay re-runs the child to rebuild the result.
        (
            "3-11",
            durable!(|event, ctx| {
                let input = text(&event);
                let big: String = ctx
                    .run_in_child_context(move |child| async move {
                        eprintln!("child context input: {input}");
                        let small: String = child.step(|_| async { Ok("x".to_owned()) }).await?;
                        Ok(small.repeat(300 * 1024))
                    })
                    .name("child")
                    .await?;
                ctx.wait(Duration::from_secs(1)).await?;
                Ok(json!(big.len()))
            }),
        ),
        // 3.12: the child's step crashes the process after StepStarted on the first
        // invocation; the re-invocation re-runs the step, which returns the input.
        (
            "3-12",
            durable!(|event, ctx| {
                let input = text(&event);
                let marker = crash_marker(ctx.execution_arn());
                let out: String = ctx
                    .run_in_child_context(move |child| async move {
                        Ok(child
                            .step(move |_| async move {
                                if !marker.exists() {
                                    std::fs::write(&marker, b"crashed")?;
                                    // Let the SDK checkpoint StepStarted before the crash.
                                    tokio::time::sleep(Duration::from_millis(500)).await;
                                    std::process::exit(1);
                                }
                                let _ = std::fs::remove_file(&marker);
                                Ok(input)
                            })
                            .await?)
                    })
                    .await?;
                Ok(json!(out))
            }),
        ),
        // 3.13: a child holding only a wait returns the input, then a step outside returns it.
        (
            "3-13",
            durable!(|event, ctx| {
                let input = text(&event);
                let again = input.clone();
                let _: String = ctx
                    .run_in_child_context(move |child| async move {
                        child.wait(Duration::from_secs(1)).await?;
                        Ok(input)
                    })
                    .name("child")
                    .await?;
                let out: String = ctx.step(move |_| async move { Ok(again) }).await?;
                Ok(json!(out))
            }),
        ),
        // 3.14: a child with a serdes that uppercases its result; the step returns the input.
        (
            "3-14",
            durable!(|event, ctx| {
                let input = text(&event);
                let out: String = ctx
                    .run_in_child_context(move |child| async move {
                        Ok(child.step(move |_| async move { Ok(input) }).await?)
                    })
                    .name("child")
                    .serdes(UppercaseSerdes)
                    .await?;
                Ok(json!(out))
            }),
        ),
        // 3.15: the child body fails directly, without any durable operation.
        (
            "3-15",
            durable!(|_event, ctx| {
                let out: String = ctx
                    .run_in_child_context(|_child| async move {
                        Err::<String, BoxError>("child body failed".into())
                    })
                    .name("child")
                    .await?;
                Ok(json!(out))
            }),
        ),
        // 3.16: the child returns null without any durable operation.
        (
            "3-16",
            durable!(|_event, ctx| {
                let out: Value = ctx
                    .run_in_child_context(|_child| async move { Ok(Value::Null) })
                    .name("child")
                    .await?;
                Ok(out)
            }),
        ),
        // 3.17: the child only logs the input and returns it, then a wait; replay does
        // not re-run the child.
        (
            "3-17",
            durable!(|event, ctx| {
                let input = text(&event);
                let out: String = ctx
                    .run_in_child_context(move |_child| async move {
                        eprintln!("child context input: {input}");
                        Ok(input)
                    })
                    .name("child")
                    .await?;
                ctx.wait(Duration::from_secs(1)).await?;
                Ok(json!(out))
            }),
        ),
        // 3.18: a child runs a step and a wait, then a step and a wait run at the top level.
        (
            "3-18",
            durable!(|event, ctx| {
                let input = text(&event);
                let out: String = ctx
                    .run_in_child_context(move |child| async move {
                        let out: String = child.step(move |_| async move { Ok(input) }).await?;
                        child.wait(Duration::from_secs(1)).await?;
                        Ok(out)
                    })
                    .name("child")
                    .await?;
                let out: String = ctx.step(move |_| async move { Ok(out) }).await?;
                ctx.wait(Duration::from_secs(1)).await?;
                Ok(json!(out))
            }),
        ),
    ]
}
