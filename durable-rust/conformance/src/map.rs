//! The `map` conformance cases (`cases/map/*.yaml`).

use std::time::Duration;

use aws_durable_execution_sdk::BoxError;
use aws_durable_execution_sdk::builders::map_parallel::{
    BatchResult, CompletionConfig, NestingMode,
};
use aws_durable_execution_sdk::serdes::{Serdes, SerdesContext};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::durable;
use crate::support::{Function, text};

/// The event as a list of items (an absent or non-list input is empty).
fn items(event: &Value) -> Vec<Value> {
    event.as_array().cloned().unwrap_or_default()
}

/// `["i0", "i1", …]`: the placeholder items of the cases whose input is empty.
fn placeholders(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("i{i}")).collect()
}

/// The projection the completion-config cases return.
fn projection<O>(batch: &BatchResult<O>) -> Value {
    json!({
        "completionReason": batch.reason.as_str(),
        "status": batch.status().as_str(),
        "successCount": batch.success_count(),
        "failureCount": batch.failure_count(),
        "totalCount": batch.total_count(),
    })
}

/// The batch's successful results, in item order.
fn successes<O: Clone>(batch: &BatchResult<O>) -> Vec<O> {
    batch.results().into_iter().cloned().collect()
}

/// An item result serdes that wraps each string (9.14): `X` is `wrapped:X`.
struct WrappedSerdes;

impl Serdes<String> for WrappedSerdes {
    async fn serialize(&self, value: String, _context: SerdesContext) -> Result<String, BoxError> {
        Ok(format!("wrapped:{value}"))
    }

    async fn deserialize(&self, wire: String, _context: SerdesContext) -> Result<String, BoxError> {
        wire.strip_prefix("wrapped:")
            .map(str::to_owned)
            .ok_or_else(|| format!("not a wrapped item: {wire}").into())
    }
}

/// The operation-level serdes of 9.19 and 9.20: the whole batch summary of
/// string results is `OPSERDE:` and the comma-joined results. Type-agnostic
/// as the SDK requires (its summary's fields are private): it goes through
/// the summary's serde form, `{"results":[{"index","status","result"}],"reason"}`.
struct OpSerdes;

impl<T: Serialize + DeserializeOwned + Send + 'static> Serdes<T> for OpSerdes {
    async fn serialize(&self, value: T, _context: SerdesContext) -> Result<String, BoxError> {
        let summary = serde_json::to_value(value)?;
        let mut parts = Vec::new();
        for item in summary["results"].as_array().into_iter().flatten() {
            let wire = item["result"].as_str().unwrap_or("null");
            let result: Value = serde_json::from_str(wire)?;
            parts.push(text(&result));
        }
        Ok(format!("OPSERDE:{}", parts.join(",")))
    }

    async fn deserialize(&self, wire: String, _context: SerdesContext) -> Result<T, BoxError> {
        let joined = wire
            .strip_prefix("OPSERDE:")
            .ok_or_else(|| format!("not an OPSERDE payload: {wire}"))?;
        let results: Vec<Value> = if joined.is_empty() {
            Vec::new()
        } else {
            joined
                .split(',')
                .enumerate()
                .map(|(index, part)| {
                    json!({
                        "index": index,
                        "status": "SUCCEEDED",
                        "result": json!(part).to_string(),
                    })
                })
                .collect()
        };
        let summary = json!({ "results": results, "reason": "ALL_COMPLETED" });
        Ok(serde_json::from_value(summary)?)
    }
}

/// 9.19 and 9.20's map: `["x", "y"]` uppercased with the operation-level serdes.
async fn op_serde_map(
    ctx: &aws_durable_execution_sdk::DurableContext,
    name: &str,
) -> Result<Vec<String>, BoxError> {
    let batch = ctx
        .map(
            ["x", "y"].map(str::to_owned),
            |_child, item: String, _| async move { Ok(item.to_uppercase()) },
        )
        .name(name)
        .max_concurrency(1)
        .result_serdes(OpSerdes)
        .await_batch()
        .await?;
    Ok(successes(&batch))
}

/// A map function whose item named `fail` (or every item, with `all`) fails.
async fn ok_or_fail(item: String, all: bool) -> Result<String, BoxError> {
    if all || item == "fail" {
        Err(format!("item {item} failed").into())
    } else {
        Ok(item)
    }
}

pub fn functions() -> Vec<(&'static str, Function)> {
    vec![
        // 9.1: map "map" over the input names, each item a step returning "Hello, <item>!".
        (
            "9-1",
            durable!(|event, ctx| {
                let out: Vec<String> = ctx
                    .map(items(&event), |child, item, _| async move {
                        let name = text(&item);
                        Ok(child
                            .step(move |_| async move { Ok(format!("Hello, {name}!")) })
                            .await?)
                    })
                    .name("map")
                    .max_concurrency(1)
                    .await?;
                Ok(json!(out))
            }),
        ),
        // 9.2: an unnamed map doubling each number directly.
        (
            "9-2",
            durable!(|event, ctx| {
                let out: Vec<i64> = ctx
                    .map(items(&event), |_child, item, _| async move {
                        Ok(item.as_i64().unwrap_or_default() * 2)
                    })
                    .max_concurrency(1)
                    .await?;
                Ok(json!(out))
            }),
        ),
        // 9.3: map "indexed" returning item + index directly.
        (
            "9-3",
            durable!(|event, ctx| {
                let out: Vec<i64> = ctx
                    .map(items(&event), |_child, item, index| async move {
                        Ok(item.as_i64().unwrap_or_default() + index as i64)
                    })
                    .name("indexed")
                    .max_concurrency(1)
                    .await?;
                Ok(json!(out))
            }),
        ),
        // 9.4: map "empty" over no items returns [].
        (
            "9-4",
            durable!(|event, ctx| {
                let out: Vec<Value> = ctx
                    .map(items(&event), |_child, item, _| async move { Ok(item) })
                    .name("empty")
                    .await?;
                Ok(json!(out))
            }),
        ),
        // 9.5: fail-fast (tolerated failures 0): item 0 succeeds, item 1 fails, item 2 never starts.
        (
            "9-5",
            durable!(|_event, ctx| {
                let batch = ctx
                    .map(placeholders(3), |_child, item, index| async move {
                        if index == 1 {
                            ok_or_fail(item, true).await
                        } else {
                            Ok("ok".to_owned())
                        }
                    })
                    .name("failfast")
                    .max_concurrency(1)
                    .completion(CompletionConfig::with_tolerated_failure_count(0))
                    .await_batch()
                    .await?;
                Ok(projection(&batch))
            }),
        ),
        // 9.6: fail-fast: item 0 fails; the handler rethrows the batch's first failure.
        (
            "9-6",
            durable!(|_event, ctx| {
                let batch = ctx
                    .map(placeholders(2), |_child, item, _| ok_or_fail(item, true))
                    .name("throwing")
                    .max_concurrency(1)
                    .completion(CompletionConfig::with_tolerated_failure_count(0))
                    .await_batch()
                    .await?;
                if let Some(first) = batch.errors().first() {
                    return Err(first.message.to_owned().into());
                }
                Ok(json!(successes(&batch)))
            }),
        ),
        // 9.7: min-successful 2 over four items ends after items 0 and 1.
        (
            "9-7",
            durable!(|_event, ctx| {
                let batch = ctx
                    .map(placeholders(4), |_child, item, _| async move { Ok(item) })
                    .name("min-successful")
                    .max_concurrency(1)
                    .completion(CompletionConfig::with_min_successful(2))
                    .await_batch()
                    .await?;
                Ok(json!({
                    "completionReason": batch.reason.as_str(),
                    "successCount": batch.success_count(),
                    "totalCount": batch.total_count(),
                }))
            }),
        ),
        // 9.8: tolerated failures 1: item 1 fails, all three items run.
        (
            "9-8",
            durable!(|_event, ctx| {
                let batch = ctx
                    .map(placeholders(3), |_child, item, index| {
                        ok_or_fail(item, index == 1)
                    })
                    .name("tolerated")
                    .max_concurrency(1)
                    .completion(CompletionConfig::with_tolerated_failure_count(1))
                    .await_batch()
                    .await?;
                Ok(projection(&batch))
            }),
        ),
        // 9.9: tolerated failures 1: items 0 and 1 fail, item 2 never starts.
        (
            "9-9",
            durable!(|_event, ctx| {
                let batch = ctx
                    .map(placeholders(3), |_child, item, _| ok_or_fail(item, true))
                    .name("tolerated-exceeded")
                    .max_concurrency(1)
                    .completion(CompletionConfig::with_tolerated_failure_count(1))
                    .await_batch()
                    .await?;
                let mut out = projection(&batch);
                out.as_object_mut().map(|o| o.remove("status"));
                Ok(out)
            }),
        ),
        // 9.10: tolerated failure percentage 25 over four items: items 0 and 1 fail, then it stops.
        (
            "9-10",
            durable!(|_event, ctx| {
                let batch = ctx
                    .map(placeholders(4), |_child, item, _| ok_or_fail(item, true))
                    .name("tolerated-pct")
                    .max_concurrency(1)
                    .completion(CompletionConfig::with_tolerated_failure_percentage(25))
                    .await_batch()
                    .await?;
                let mut out = projection(&batch);
                out.as_object_mut().map(|o| o.remove("status"));
                Ok(out)
            }),
        ),
        // 9.11: map "concurrent" with max-concurrency 2 returning "r<index>" directly.
        (
            "9-11",
            durable!(|_event, ctx| {
                let out: Vec<String> = ctx
                    .map(placeholders(3), |_child, _item, index| async move {
                        Ok(format!("r{index}"))
                    })
                    .name("concurrent")
                    .max_concurrency(2)
                    .await?;
                Ok(json!(out))
            }),
        ),
        // 9.12: map "flat" (flat nesting) over ["fa", "fb"], each a step returning the item.
        (
            "9-12",
            durable!(|_event, ctx| {
                let out: Vec<String> = ctx
                    .map(
                        ["fa", "fb"].map(str::to_owned),
                        |child, item, _| async move {
                            Ok(child.step(move |_| async move { Ok(item) }).await?)
                        },
                    )
                    .name("flat")
                    .max_concurrency(1)
                    .nesting(NestingMode::Flat)
                    .await?;
                Ok(json!(out))
            }),
        ),
        // 9.13: map "named-items" with an item namer ("item-<item>"), returning item * 10.
        (
            "9-13",
            durable!(|event, ctx| {
                let list = items(&event);
                let names: Vec<String> = list.iter().map(|i| format!("item-{}", text(i))).collect();
                let out: Vec<i64> = ctx
                    .map(list, |_child, item, _| async move {
                        Ok(item.as_i64().unwrap_or_default() * 10)
                    })
                    .name("named-items")
                    .max_concurrency(1)
                    .item_namer(move |index| {
                        names
                            .get(index)
                            .cloned()
                            .unwrap_or_else(|| format!("item-{index}"))
                    })
                    .await?;
                Ok(json!(out))
            }),
        ),
        // 9.14: map "serdes" over ["x", "y"] uppercasing, with an item serdes ("wrapped:X").
        (
            "9-14",
            durable!(|_event, ctx| {
                let out: Vec<String> = ctx
                    .map(
                        ["x", "y"].map(str::to_owned),
                        |_child, item: String, _| async move { Ok(item.to_uppercase()) },
                    )
                    .name("serdes")
                    .max_concurrency(1)
                    .serdes(WrappedSerdes)
                    .await?;
                Ok(json!(out))
            }),
        ),
        // 9.15: map "suspend": item 0 is a step; item 1 waits a second, then a step.
        (
            "9-15",
            durable!(|_event, ctx| {
                let out: Vec<String> = ctx
                    .map(
                        ["r0", "r1"].map(str::to_owned),
                        |child, item, index| async move {
                            if index == 1 {
                                child.wait(Duration::from_secs(1)).await?;
                            }
                            Ok(child.step(move |_| async move { Ok(item) }).await?)
                        },
                    )
                    .name("suspend")
                    .max_concurrency(1)
                    .await?;
                Ok(json!(out))
            }),
        ),
        // 9.16: map "large": four items of ~70KB each (the batch result exceeds 256KB).
        (
            "9-16",
            durable!(|_event, ctx| {
                let batch = ctx
                    .map(placeholders(4), |_child, item, _| async move {
                        Ok(item.repeat(35 * 1024))
                    })
                    .name("large")
                    .max_concurrency(1)
                    .await_batch()
                    .await?;
                Ok(json!({
                    "successCount": batch.success_count(),
                    "totalCount": batch.total_count(),
                }))
            }),
        ),
        // 9.17: map "then-wait" uppercasing ["a", "b"], then a wait of a second.
        (
            "9-17",
            durable!(|_event, ctx| {
                let out: Vec<String> = ctx
                    .map(
                        ["a", "b"].map(str::to_owned),
                        |_child, item: String, _| async move { Ok(item.to_uppercase()) },
                    )
                    .name("then-wait")
                    .max_concurrency(1)
                    .await?;
                ctx.wait(Duration::from_secs(1)).await?;
                Ok(json!(out))
            }),
        ),
        // 9.18: map "fail-then-wait" over ["ok", "fail"] tolerating one failure, then a wait.
        (
            "9-18",
            durable!(|_event, ctx| {
                let batch = ctx
                    .map(["ok", "fail"].map(str::to_owned), |_child, item, _| {
                        ok_or_fail(item, false)
                    })
                    .name("fail-then-wait")
                    .max_concurrency(1)
                    .completion(CompletionConfig::with_tolerated_failure_count(1))
                    .await_batch()
                    .await?;
                ctx.wait(Duration::from_secs(1)).await?;
                Ok(projection(&batch))
            }),
        ),
        // 9.19: map "op-serde" with an operation-level serdes ("OPSERDE:X,Y").
        (
            "9-19",
            durable!(|_event, ctx| Ok(json!(op_serde_map(&ctx, "op-serde").await?))),
        ),
        // 9.20: as 9.19, then a wait; replay decodes the map result with the serdes.
        (
            "9-20",
            durable!(|_event, ctx| {
                let out = op_serde_map(&ctx, "op-serde-replay").await?;
                ctx.wait(Duration::from_secs(1)).await?;
                Ok(json!(out))
            }),
        ),
    ]
}
