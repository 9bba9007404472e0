//! The `parallel` conformance cases (`cases/parallel/*.yaml`).

use std::time::Duration;

use aws_durable_execution_sdk as durable;
use durable::builders::map_parallel::{BatchResult, CompletionConfig, NestingMode};
use durable::serdes::{Serdes, SerdesContext};
use durable::{BoxError, Branch, DurableContext};
use serde_json::{Value, json};

use crate::durable;
use crate::support::Function;

/// A branch that returns `value` directly (no inner operation).
fn constant(name: &str, value: Value) -> Branch<Value> {
    Branch::new(name, move |_: DurableContext| async move { Ok(value) })
}

/// A branch that runs one step returning `value`.
fn stepped(name: &str, value: &'static str) -> Branch<Value> {
    Branch::new(name, move |ctx: DurableContext| async move {
        let result: String = ctx
            .step(move |_| async move { Ok(value.to_owned()) })
            .await?;
        Ok(json!(result))
    })
}

/// A branch that fails with `message`.
fn failing(name: &str, message: &'static str) -> Branch<Value> {
    Branch::new(name, move |_: DurableContext| async move {
        Err::<Value, BoxError>(message.into())
    })
}

/// `b0`, `b1`, … : branch names by index.
fn branch_name(index: usize) -> String {
    format!("b{index}")
}

/// Branches from a pattern: `Some(value)` succeeds with it, `None` fails.
fn branches(pattern: &[Option<&'static str>]) -> Vec<Branch<Value>> {
    pattern
        .iter()
        .enumerate()
        .map(|(index, outcome)| match outcome {
            Some(value) => constant(&branch_name(index), json!(value)),
            None => failing(&branch_name(index), "branch failed"),
        })
        .collect()
}

/// The projection most cases return: the batch's completion reason,
/// status and counts.
fn projection<O>(batch: &BatchResult<O>) -> Value {
    json!({
        "completionReason": batch.reason.as_str(),
        "status": batch.status().as_str(),
        "successCount": batch.success_count(),
        "failureCount": batch.failure_count(),
        "totalCount": batch.total_count(),
    })
}

/// Runs `pattern` sequentially (max-concurrency 1) under `completion` and
/// returns the projection, keeping only `fields` of it.
async fn project(
    ctx: DurableContext,
    name: &str,
    pattern: &[Option<&'static str>],
    completion: CompletionConfig,
    fields: &[&str],
) -> Result<Value, BoxError> {
    let batch = ctx
        .parallel(branches(pattern))
        .name(name)
        .max_concurrency(1)
        .completion(completion)
        .await_batch()
        .await?;
    let full = projection(&batch);
    Ok(fields
        .iter()
        .map(|field| (field.to_string(), full[*field].clone()))
        .collect())
}

const ALL_FIELDS: &[&str] = &[
    "completionReason",
    "status",
    "successCount",
    "failureCount",
    "totalCount",
];
const NO_STATUS: &[&str] = &[
    "completionReason",
    "successCount",
    "failureCount",
    "totalCount",
];

/// 8.15's per-branch serde: stores `v` as `{"wrapped": v}` and reads it back.
struct Wrapping;

impl Serdes<Value> for Wrapping {
    async fn serialize(&self, value: Value, _: SerdesContext) -> Result<String, BoxError> {
        Ok(json!({ "wrapped": value }).to_string())
    }

    async fn deserialize(&self, wire: String, _: SerdesContext) -> Result<Value, BoxError> {
        let mut envelope: Value = serde_json::from_str(&wire)?;
        match envelope.get_mut("wrapped") {
            Some(value) => Ok(value.take()),
            None => Err(format!("not a wrapped value: {wire}").into()),
        }
    }
}

pub fn functions() -> Vec<(&'static str, Function)> {
    vec![
        // 8.1: two branches, each one step, run one at a time; returns their results.
        (
            "8-1",
            durable!(|_event, ctx| {
                let results = ctx
                    .parallel(vec![stepped("b0", "task-1"), stepped("b1", "task-2")])
                    .name("parallel")
                    .max_concurrency(1)
                    .await?;
                Ok(json!(results))
            }),
        ),
        // 8.2: an unnamed parallel of two branches returning constants.
        (
            "8-2",
            durable!(|_event, ctx| {
                let results = ctx
                    .parallel(vec![
                        constant("b0", json!("alpha")),
                        constant("b1", json!("beta")),
                    ])
                    .max_concurrency(1)
                    .await?;
                Ok(json!(results))
            }),
        ),
        // 8.3: named branches "first" and "second" returning constants.
        (
            "8-3",
            durable!(|_event, ctx| {
                let results = ctx
                    .parallel(vec![
                        constant("first", json!("one")),
                        constant("second", json!("two")),
                    ])
                    .name("named")
                    .max_concurrency(1)
                    .await?;
                Ok(json!(results))
            }),
        ),
        // 8.4: branches returning a string, a number and an object.
        (
            "8-4",
            durable!(|_event, ctx| {
                let results = ctx
                    .parallel(vec![
                        constant("b0", json!("hello")),
                        constant("b1", json!(42)),
                        constant("b2", json!({ "k": "v" })),
                    ])
                    .name("hetero")
                    .max_concurrency(1)
                    .await?;
                Ok(json!(results))
            }),
        ),
        // 8.5: an empty parallel returns [].
        (
            "8-5",
            durable!(|_event, ctx| {
                let results = ctx
                    .parallel(Vec::<Branch<Value>>::new())
                    .name("empty")
                    .await?;
                Ok(json!(results))
            }),
        ),
        // 8.6: fail-fast (tolerated failures 0): ok, fail, (never started); returns the projection.
        (
            "8-6",
            durable!(|_event, ctx| {
                project(
                    ctx,
                    "failfast",
                    &[Some("ok"), None, Some("never")],
                    CompletionConfig::with_tolerated_failure_count(0),
                    ALL_FIELDS,
                )
                .await
            }),
        ),
        // 8.7: fail-fast, the first branch fails; the handler rethrows the batch's first error.
        (
            "8-7",
            durable!(|_event, ctx| {
                let batch = ctx
                    .parallel(branches(&[None, Some("never")]))
                    .name("throwing")
                    .max_concurrency(1)
                    .completion(CompletionConfig::with_tolerated_failure_count(0))
                    .await_batch()
                    .await?;
                // The Rust SDK's BatchResult has no throw-if-error: rethrow by hand.
                match batch.errors().first() {
                    Some(error) => Err(error.message.to_owned().into()),
                    None => Ok(json!(batch.results())),
                }
            }),
        ),
        // 8.8: min-successful 2 of four branches; returns reason, successes, total.
        (
            "8-8",
            durable!(|_event, ctx| {
                project(
                    ctx,
                    "min-successful",
                    &[Some("a"), Some("b"), Some("c"), Some("d")],
                    CompletionConfig::with_min_successful(2),
                    &["completionReason", "successCount", "totalCount"],
                )
                .await
            }),
        ),
        // 8.9: tolerated failures 1: ok, fail, ok; all complete.
        (
            "8-9",
            durable!(|_event, ctx| {
                project(
                    ctx,
                    "tolerated",
                    &[Some("a"), None, Some("c")],
                    CompletionConfig::with_tolerated_failure_count(1),
                    ALL_FIELDS,
                )
                .await
            }),
        ),
        // 8.10: tolerated failures 1: fail, fail, (never started).
        (
            "8-10",
            durable!(|_event, ctx| {
                project(
                    ctx,
                    "tolerated-exceeded",
                    &[None, None, Some("never")],
                    CompletionConfig::with_tolerated_failure_count(1),
                    NO_STATUS,
                )
                .await
            }),
        ),
        // 8.11: three constant branches, two at a time; results in index order.
        (
            "8-11",
            durable!(|_event, ctx| {
                let results = ctx
                    .parallel(branches(&[Some("r0"), Some("r1"), Some("r2")]))
                    .name("concurrent")
                    .max_concurrency(2)
                    .await?;
                Ok(json!(results))
            }),
        ),
        // 8.12: flat nesting: the branches' steps sit directly under the parallel.
        (
            "8-12",
            durable!(|_event, ctx| {
                let results = ctx
                    .parallel(vec![stepped("b0", "fa"), stepped("b1", "fb")])
                    .name("flat")
                    .max_concurrency(1)
                    .nesting(NestingMode::Flat)
                    .await?;
                Ok(json!(results))
            }),
        ),
        // 8.13: tolerated failure percentage 25 of four: fail, fail, (never), (never).
        (
            "8-13",
            durable!(|_event, ctx| {
                project(
                    ctx,
                    "tolerated-pct",
                    &[None, None, Some("never"), Some("never")],
                    CompletionConfig::with_tolerated_failure_percentage(25),
                    NO_STATUS,
                )
                .await
            }),
        ),
        // 8.14: branch 0 steps, branch 1 waits 2s then returns; resumes after the wait.
        (
            "8-14",
            durable!(|_event, ctx| {
                let results = ctx
                    .parallel(vec![
                        stepped("b0", "b0"),
                        Branch::new("b1", |ctx: DurableContext| async move {
                            ctx.wait(Duration::from_secs(2)).await?;
                            Ok(json!("b1"))
                        }),
                    ])
                    .name("replay")
                    .max_concurrency(1)
                    .await?;
                Ok(json!(results))
            }),
        ),
        // 8.15: a per-branch serde storing {"wrapped": v}; returns the unwrapped results.
        (
            "8-15",
            durable!(|_event, ctx| {
                let results = ctx
                    .parallel(branches(&[Some("x"), Some("y")]))
                    .name("serde")
                    .max_concurrency(1)
                    .serdes(Wrapping)
                    .await?;
                Ok(json!(results))
            }),
        ),
        // 8.16: tolerated failures 3, every branch fails; all complete.
        (
            "8-16",
            durable!(|_event, ctx| {
                project(
                    ctx,
                    "all-fail",
                    &[None, None, None],
                    CompletionConfig::with_tolerated_failure_count(3),
                    ALL_FIELDS,
                )
                .await
            }),
        ),
        // 8.17: min-successful 3: ok, fail, ok; never reached, all complete.
        (
            "8-17",
            durable!(|_event, ctx| {
                project(
                    ctx,
                    "min-not-reached",
                    &[Some("a"), None, Some("c")],
                    CompletionConfig::with_min_successful(3),
                    ALL_FIELDS,
                )
                .await
            }),
        ),
        // 8.18: min-successful 3 and tolerated failures 1: fail, fail, (never), (never).
        (
            "8-18",
            durable!(|_event, ctx| {
                let completion = CompletionConfig::builder()
                    .min_successful(3)
                    .tolerated_failure_count(1)
                    .build()?;
                project(
                    ctx,
                    "combined",
                    &[None, None, Some("never"), Some("never")],
                    completion,
                    NO_STATUS,
                )
                .await
            }),
        ),
        // 8.19: max-concurrency 0 is a validation error that fails the execution.
        (
            "8-19",
            durable!(|_event, ctx| {
                let results = ctx
                    .parallel(branches(&[Some("a"), Some("b")]))
                    .name("bad-concurrency")
                    .max_concurrency(0)
                    .await?;
                Ok(json!(results))
            }),
        ),
        // 8.20: tolerated failures 1: ok, fail, ok; returns the batch accessors' counts.
        (
            "8-20",
            durable!(|_event, ctx| {
                let batch = ctx
                    .parallel(branches(&[Some("a"), None, Some("c")]))
                    .name("accessors")
                    .max_concurrency(1)
                    .completion(CompletionConfig::with_tolerated_failure_count(1))
                    .await_batch()
                    .await?;
                Ok(json!({
                    "hasFailure": batch.has_failure(),
                    "successCount": batch.results().len(),
                    "failureCount": batch.failure_count(),
                    "errorCount": batch.errors().len(),
                }))
            }),
        ),
        // 8.21: a parallel whose one branch runs a parallel of two steps.
        (
            "8-21",
            durable!(|_event, ctx| {
                let outer = Branch::new("inner", |ctx: DurableContext| async move {
                    let inner = ctx
                        .parallel(vec![stepped("s0", "i1"), stepped("s1", "i2")])
                        .name("inner")
                        .max_concurrency(1)
                        .await?;
                    Ok(json!(inner))
                });
                let results = ctx
                    .parallel(vec![outer])
                    .name("outer")
                    .max_concurrency(1)
                    .await?;
                Ok(json!(results))
            }),
        ),
        // 8.22: tolerated failure percentage 25 of four: fail, ok, ok, ok; all complete.
        (
            "8-22",
            durable!(|_event, ctx| {
                project(
                    ctx,
                    "pct-boundary",
                    &[None, Some("b"), Some("c"), Some("d")],
                    CompletionConfig::with_tolerated_failure_percentage(25),
                    ALL_FIELDS,
                )
                .await
            }),
        ),
    ]
}
