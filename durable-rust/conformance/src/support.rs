//! What every category module shares: the handler types, the function-name
//! scheme, and small helpers the handlers of several categories use.

use std::future::Future;
use std::pin::Pin;

use aws_durable_execution_sdk as durable;
use serde_json::Value;

/// What a durable handler returns: the execution's result, or its error.
pub type Outcome = Result<Value, durable::BoxError>;
/// A boxed handler future (one per invocation).
pub type Pending = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// One hosted function: a durable handler (run with the SDK) or a plain
/// Lambda handler (run with `lambda_runtime` alone, a chained-invoke target).
#[derive(Clone, Copy)]
pub enum Function {
    Durable(fn(Value, durable::DurableContext) -> Pending),
    Plain(fn(Value) -> Pending),
}

impl Function {
    pub fn kind(&self) -> &'static str {
        match self {
            Function::Durable(_) => "durable",
            Function::Plain(_) => "plain",
        }
    }

    pub async fn run(self) -> Result<(), lambda_runtime::Error> {
        match self {
            Function::Durable(handler) => durable::run(handler).await,
            Function::Plain(handler) => {
                lambda_runtime::run(lambda_runtime::service_fn(
                    move |event: lambda_runtime::LambdaEvent<Value>| handler(event.payload),
                ))
                .await
            }
        }
    }
}

/// `conf-{category}-{case}` with `_` as `-` (Lambda names allow both; one
/// separator keeps them readable): case `1-1` of `step` is `conf-step-1-1`.
pub fn function_name(category: &str, name: &str) -> String {
    format!("conf-{}-{name}", category.replace('_', "-"))
}

/// Boxes a durable handler body: `durable(|event, ctx| async move { … })`.
#[macro_export]
macro_rules! durable {
    (|$event:ident, $ctx:ident| $body:expr) => {
        $crate::support::Function::Durable(|$event, $ctx| Box::pin(async move { $body }))
    };
}

/// Boxes a plain handler body: `plain!(|event| async move { … })`.
#[macro_export]
macro_rules! plain {
    (|$event:ident| $body:expr) => {
        $crate::support::Function::Plain(|$event| Box::pin(async move { $body }))
    };
}

/// The event as a string (most cases take a string input).
pub fn text(event: &Value) -> String {
    match event {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}
