//! The `step` conformance cases (`cases/step/*.yaml`).

use serde_json::json;

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
    ]
}
