//! A durable function as a definition: what the engine stores and versions
//! for each hosted durable function, so that its executions live on the
//! same store, versions, timers and recovery as sagas and ASL machines.
//!
//! The document is small and AWS-shaped (a function's `DurableConfig`):
//!
//! ```json
//! {"DurableFunction": {"FunctionName": "saga-durable-function",
//!                      "ExecutionTimeout": 3600, "RetentionPeriodInDays": 30}}
//! ```
//!
//! The runtime deploys one for every durable function its host serves (a
//! changed timeout is a new version; running executions keep theirs). The
//! function's code is not part of it: it runs in the host's workers.

use serde_json::{json, Value};

use crate::plan::{Plan, Program};
use crate::{Error, Violation};

/// The key that marks a document as a durable function.
const KEY: &str = "DurableFunction";

/// AWS's bounds for `DurableConfig.ExecutionTimeout` (seconds).
pub const MAX_EXECUTION_TIMEOUT_SECONDS: u64 = 31_622_400;

/// A durable function's configuration, as its executions run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurableFunction {
    /// The function's name (no qualifier): the plan's name too.
    pub function_name: String,
    /// `DurableConfig.ExecutionTimeout`: the whole execution's time limit.
    pub execution_timeout_seconds: u64,
    /// `DurableConfig.RetentionPeriodInDays`.
    pub retention_days: u32,
}

impl DurableFunction {
    /// The definition document of this function (see the module header).
    pub fn document(&self) -> Value {
        json!({ KEY: {
            "FunctionName": self.function_name,
            "ExecutionTimeout": self.execution_timeout_seconds,
            "RetentionPeriodInDays": self.retention_days,
        }})
    }
}

/// Whether `doc` is a durable function's definition.
pub fn is_durable(doc: &Value) -> bool {
    doc.get(KEY).is_some()
}

/// Compiles a durable function's definition; `name_hint` (where it is
/// deployed) must agree with its `FunctionName`.
pub fn compile(doc: &Value, name_hint: Option<&str>) -> Result<Plan, Error> {
    let mut violations = Vec::new();
    let mut violation = |location: &str, message: String| {
        violations.push(Violation {
            code: "invalid_durable_function".into(),
            location: format!("{KEY}.{location}"),
            message,
        })
    };
    let body = doc.get(KEY).and_then(Value::as_object);
    let field = |name: &str| body.and_then(|b| b.get(name));
    let name = field("FunctionName").and_then(Value::as_str).unwrap_or("");
    if !crate::definition::valid_name(name) || name.len() > 64 {
        violation(
            "FunctionName",
            "a function name of 1 to 64 letters, digits, `-` or `_`".into(),
        );
    }
    if let Some(hint) = name_hint.filter(|h| *h != name) {
        violation(
            "FunctionName",
            format!("`{name}` is deployed as `{hint}`: the two must agree"),
        );
    }
    let timeout = field("ExecutionTimeout").and_then(Value::as_u64);
    if !timeout.is_some_and(|t| (1..=MAX_EXECUTION_TIMEOUT_SECONDS).contains(&t)) {
        violation(
            "ExecutionTimeout",
            format!("seconds from 1 to {MAX_EXECUTION_TIMEOUT_SECONDS}"),
        );
    }
    let retention = field("RetentionPeriodInDays").and_then(Value::as_u64);
    if !retention.is_some_and(|d| (1..=90).contains(&d)) {
        violation("RetentionPeriodInDays", "days from 1 to 90".into());
    }
    if let Some(extra) = body.and_then(|b| {
        b.keys().find(|k| {
            !matches!(
                k.as_str(),
                "FunctionName" | "ExecutionTimeout" | "RetentionPeriodInDays"
            )
        })
    }) {
        let extra = extra.clone();
        violation(&extra, "unknown field".into());
    }
    if !violations.is_empty() {
        return Err(Error::InvalidDefinition(violations));
    }
    let function = DurableFunction {
        function_name: name.to_string(),
        execution_timeout_seconds: timeout.unwrap_or(1),
        retention_days: retention.unwrap_or(1) as u32,
    };
    Ok(Plan {
        name: function.function_name.clone(),
        description: None,
        timeout_ms: Some(function.execution_timeout_seconds.saturating_mul(1000)),
        variables: Default::default(),
        variable_uses: Vec::new(),
        digest: crate::document::digest(doc),
        program: Program::Durable(std::sync::Arc::new(function)),
    })
}
