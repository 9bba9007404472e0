//! The intrinsic functions (`States.Format`, `States.Array`, …).

use serde_json::Value;

use crate::event::ErrorInfo;

/// Whether a `.$` value is an intrinsic call rather than a path.
pub fn is_call(text: &str) -> bool {
    text.starts_with("States.")
}

/// Checks the syntax of an intrinsic call (name known, arguments well formed, arity).
pub fn check(text: &str) -> Result<(), String> {
    let _ = text;
    todo!("H1")
}

/// Evaluates an intrinsic call. Errors are `States.IntrinsicFailure` (or `States.Runtime`).
pub fn evaluate(
    text: &str,
    input: &Value,
    context: &Value,
    random: &mut dyn FnMut() -> u64,
) -> Result<Value, ErrorInfo> {
    let _ = (text, input, context, random);
    todo!("H1")
}
