//! The `plugin` conformance cases (`cases/plugin/*.yaml`).
//!
//! AWS's handlers register an instrumentation plugin through their SDK's
//! plugin API. The Rust SDK 0.1.0 has no plugin API: its observability is
//! a documented `tracing` contract (`aws_durable_execution_sdk::observability`:
//! lifecycle events `execution_started`/`execution_resumed`/
//! `execution_suspended`/`operation_*` and the `durable_operation` span of
//! each live step attempt). So the plugins here are a `tracing` layer over
//! that contract ([`install`]), which prints the cases' plugin records as
//! JSON lines on stdout; a terminal `invocation-end` comes from the handler's
//! own outcome (the contract has no event for it). Case 10.4 (a plugin whose
//! hooks throw, which the SDK must swallow) has no equivalent: a `tracing`
//! layer cannot throw into the SDK (see known-failures.toml).

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use aws_durable_execution_sdk::observability::{TARGET, event_names, field_names, span_names};
use aws_durable_execution_sdk::{BoxError, DurableContext, RetryDecision};
use lambda_runtime::tracing::subscriber::layer::{Context, SubscriberExt};
use lambda_runtime::tracing::subscriber::{Layer, registry};
use lambda_runtime::tracing::{self, Event, Subscriber, field, span};
use serde_json::{Map, Value, json};

use crate::durable;
use crate::support::{Function, Outcome, text};

pub fn functions() -> Vec<(&'static str, Function)> {
    vec![
        // 10.1: one greeting step (its body logs `Greeting step running for:
        // <input>`) with a plugin logging invocation-start (first) and
        // invocation-end (status).
        (
            "10-1",
            durable!(|event, ctx| finish(greet(event, ctx).await)),
        ),
        // 10.2: one greeting step with a plugin logging operation-start and
        // operation-end (status) of step operations, with their ids.
        (
            "10-2",
            durable!(|event, ctx| finish(greet(event, ctx).await)),
        ),
        // 10.3: a step failing on attempt 1 and succeeding on attempt 2
        // (retry after 1 s) with a plugin logging attempt-start and
        // attempt-end (outcome) of step attempts.
        (
            "10-3",
            durable!(|_event, ctx| {
                let result = ctx
                    .step(|step| async move {
                        if step.attempt() < 2 {
                            return Err::<String, BoxError>("transient failure".into());
                        }
                        Ok("Operation succeeded".to_owned())
                    })
                    .retry_strategy(|_err, attempt| {
                        if attempt < 3 {
                            RetryDecision::Retry {
                                delay: Duration::from_secs(1),
                            }
                        } else {
                            RetryDecision::Stop
                        }
                    })
                    .await;
                finish(result.map(|r| json!(r)).map_err(Into::into))
            }),
        ),
        // 10.5: one greeting step with two plugins (A then B) each logging
        // invocation-start and invocation-end (status).
        (
            "10-5",
            durable!(|event, ctx| finish(greet(event, ctx).await)),
        ),
        // 10.6: a single 2-second wait with a plugin logging
        // invocation-start (first) and invocation-end (status).
        (
            "10-6",
            durable!(|_event, ctx| {
                let waited = ctx.wait(Duration::from_secs(2)).await;
                finish(waited.map(|()| Value::Null).map_err(Into::into))
            }),
        ),
        // 10.7: a step that always throws, no retries, with a plugin logging
        // invocation-start (first) and invocation-end (status FAILED).
        (
            "10-7",
            durable!(|_event, ctx| {
                let result = ctx
                    .step(|_| async { Err::<String, BoxError>("step failed".into()) })
                    .retry_strategy(|_err, _attempt| RetryDecision::Stop)
                    .await;
                finish(result.map(|r| json!(r)).map_err(Into::into))
            }),
        ),
    ]
}

/// A greeting step whose body logs its running line.
async fn greet(event: Value, ctx: DurableContext) -> Outcome {
    let name = text(&event);
    let greeting: String = ctx
        .step(move |_| async move {
            println!("Greeting step running for: {name}");
            Ok(format!("Hello, {name}!"))
        })
        .await?;
    Ok(json!(greeting))
}

/// The invocation-end hook of a finished handler (the SDK reports `Ok` as
/// `SUCCEEDED` and `Err` as `FAILED`), then the handler's outcome.
fn finish(outcome: Outcome) -> Outcome {
    let status = if outcome.is_ok() {
        "SUCCEEDED"
    } else {
        "FAILED"
    };
    invocation_end(status);
    outcome
}

/// Which hooks one plugin logs.
#[derive(Clone, Copy)]
struct Plugin {
    name: &'static str,
    /// invocation-start (with `first` when `first`) and invocation-end.
    invocation: bool,
    first: bool,
    /// operation-start/-end of step operations.
    operation: bool,
    /// attempt-start/-end of step attempts.
    attempt: bool,
}

const NONE: Plugin = Plugin {
    name: "CONFPLUGIN",
    invocation: false,
    first: false,
    operation: false,
    attempt: false,
};

/// The plugins of each plugin case's function.
fn plugins_of(function: &str) -> Vec<Plugin> {
    let lifecycle = Plugin {
        invocation: true,
        first: true,
        ..NONE
    };
    match function {
        "conf-plugin-10-1" | "conf-plugin-10-6" | "conf-plugin-10-7" => vec![lifecycle],
        "conf-plugin-10-2" => vec![Plugin {
            operation: true,
            ..NONE
        }],
        "conf-plugin-10-3" => vec![Plugin {
            attempt: true,
            ..NONE
        }],
        "conf-plugin-10-5" => ["CONFPLUGIN-A", "CONFPLUGIN-B"]
            .map(|name| Plugin {
                name,
                invocation: true,
                ..NONE
            })
            .to_vec(),
        _ => vec![],
    }
}

static PLUGINS: OnceLock<Vec<Plugin>> = OnceLock::new();
/// The execution ARN the invocation-start hook received, stamped on every record.
static ARN: Mutex<String> = Mutex::new(String::new());

/// Registers the plugins of `function` (if it is a plugin case's) as the
/// global `tracing` subscriber; before the SDK runs, so it sees every event.
/// Whether `function` has plugins.
pub fn install(function: &str) -> bool {
    let plugins = plugins_of(function);
    if plugins.is_empty() {
        return false;
    }
    let _ = PLUGINS.set(plugins);
    // Only fails when a subscriber is already set (then there is nothing to do).
    let _ = tracing::dispatcher::set_global_default(tracing::Dispatch::new(registry().with(Hooks)));
    true
}

fn plugins() -> &'static [Plugin] {
    PLUGINS.get().map_or(&[], Vec::as_slice)
}

/// Prints one plugin record (a JSON line on stdout).
fn emit(plugin: &Plugin, hook: &str, fields: Value) {
    let mut record = Map::new();
    record.insert("plugin".into(), json!(plugin.name));
    record.insert("hook".into(), json!(hook));
    if let Value::Object(fields) = fields {
        record.extend(fields);
    }
    let arn = ARN.lock().map(|arn| arn.clone()).unwrap_or_default();
    record.insert("durableExecutionArn".into(), json!(arn));
    println!("{}", Value::Object(record));
}

fn invocation_end(status: &str) {
    for plugin in plugins().iter().filter(|p| p.invocation) {
        emit(plugin, "invocation-end", json!({ "status": status }));
    }
}

/// The `tracing` layer mapping the SDK's observability contract to hooks.
struct Hooks;

impl<S: Subscriber> Layer<S> for Hooks {
    fn on_new_span(&self, attrs: &span::Attributes<'_>, _id: &span::Id, _ctx: Context<'_, S>) {
        // A `durable_operation` span wraps each live step attempt's body.
        if attrs.metadata().name() != span_names::OPERATION {
            return;
        }
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        for plugin in plugins().iter().filter(|p| p.attempt) {
            emit(
                plugin,
                "attempt-start",
                json!({ "n": fields.number(field_names::ATTEMPT), "op": fields.get(field_names::OPERATION_ID) }),
            );
        }
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != TARGET {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let message = fields.get("message");
        let step = fields.get(field_names::OPERATION_TYPE) == "Step";
        let op = fields.get(field_names::OPERATION_ID);
        let n = fields.number(field_names::ATTEMPT);
        match message.as_str() {
            event_names::EXECUTION_STARTED | event_names::EXECUTION_RESUMED => {
                if let Ok(mut arn) = ARN.lock() {
                    *arn = fields.get(field_names::EXECUTION_ARN);
                }
                let first = message == event_names::EXECUTION_STARTED;
                for plugin in plugins().iter().filter(|p| p.invocation) {
                    let fields = if plugin.first {
                        json!({ "first": first })
                    } else {
                        json!({})
                    };
                    emit(plugin, "invocation-start", fields);
                }
            }
            // The invocation ends suspended: a non-terminal invocation-end.
            event_names::EXECUTION_SUSPENDED => invocation_end("PENDING"),
            event_names::OPERATION_STARTED if step => {
                for plugin in plugins().iter().filter(|p| p.operation) {
                    emit(plugin, "operation-start", json!({ "op": op }));
                }
            }
            event_names::OPERATION_SUCCEEDED | event_names::OPERATION_FAILED if step => {
                let status = if message == event_names::OPERATION_SUCCEEDED {
                    "SUCCEEDED"
                } else {
                    "FAILED"
                };
                for plugin in plugins() {
                    if plugin.attempt {
                        emit(
                            plugin,
                            "attempt-end",
                            json!({ "n": n, "outcome": status, "op": op }),
                        );
                    }
                    if plugin.operation {
                        emit(
                            plugin,
                            "operation-end",
                            json!({ "op": op, "status": status }),
                        );
                    }
                }
            }
            // A failed attempt that will be retried.
            event_names::OPERATION_RETRY_SCHEDULED if step => {
                for plugin in plugins().iter().filter(|p| p.attempt) {
                    emit(
                        plugin,
                        "attempt-end",
                        json!({ "n": n, "outcome": "FAILED", "op": op }),
                    );
                }
            }
            _ => {}
        }
    }
}

/// An event's or span's fields as text.
#[derive(Default)]
struct Fields(BTreeMap<String, String>);

impl Fields {
    fn get(&self, name: &str) -> String {
        self.0.get(name).cloned().unwrap_or_default()
    }

    fn number(&self, name: &str) -> Value {
        self.0
            .get(name)
            .and_then(|n| n.parse::<u64>().ok())
            .map_or(Value::Null, |n| json!(n))
    }
}

impl field::Visit for Fields {
    fn record_str(&mut self, field: &field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}
