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

/// One hosted function: a durable handler, run with the SDK. (Every chained
/// invoke in the cases targets another durable handler, so there is no plain
/// Lambda handler kind.)
#[derive(Clone, Copy)]
pub struct Function(pub fn(Value, durable::DurableContext) -> Pending);

impl Function {
    /// What `bootstrap --list` prints next to the name.
    pub fn kind(&self) -> &'static str {
        "durable"
    }

    pub async fn run(self) -> Result<(), lambda_runtime::Error> {
        durable::run(self.0).await
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
        $crate::support::Function(|$event, $ctx| Box::pin(async move { $body }))
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
