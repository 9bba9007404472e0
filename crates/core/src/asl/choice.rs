//! Choice rules: evaluation against the state input.

use serde_json::Value;

use crate::asl::machine::Rule;
use crate::event::ErrorInfo;

/// Whether `rule` holds for `input`. A non-`Is*` comparison whose variable is
/// missing is a `States.Runtime` error, as in AWS.
pub fn evaluate(rule: &Rule, input: &Value, context: &Value) -> Result<bool, ErrorInfo> {
    let _ = (rule, input, context);
    todo!("H1")
}
