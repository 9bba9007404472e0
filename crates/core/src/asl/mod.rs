//! Amazon States Language: compile a Step Functions definition into a
//! [`Machine`] and interpret it with the same runtime, store and event log
//! as saga definitions.
//!
//! - [`machine`]: the compiled form (the IR);
//! - [`parse`]: JSON → IR, reporting every problem with its path, like AWS's
//!   `InvalidDefinition`; also the resource map that binds ARNs to participants;
//! - [`data`]: InputPath, Parameters, ResultSelector, ResultPath, OutputPath;
//! - [`intrinsic`]: `States.Format`, `States.Array`, … ;
//! - [`choice`]: Choice rule evaluation;
//! - [`run`]: the interpreter, a pure `(state, event) -> (state, effects)`.

pub mod choice;
pub mod data;
pub mod intrinsic;
pub mod machine;
pub mod parse;
pub mod run;

pub use machine::{Machine, ResourceMap, ResourceRule};
pub use parse::{compile, is_asl};

use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::definition::{Plan, Violation};
use crate::Error;

/// Compiles an ASL document into a [`Plan`] that runs on the ASL
/// interpreter. ASL has no name field: it comes from where it is deployed.
pub fn compile_plan(
    doc: &Value,
    name: Option<&str>,
    resources: &ResourceMap,
) -> Result<Plan, Error> {
    let machine = compile(doc, resources);
    let name = name.filter(|n| crate::definition::valid_name(n));
    let (machine, name) = match (machine, name) {
        (Ok(m), Some(n)) => (m, n),
        (result, name) => {
            let mut violations = match result {
                Err(Error::InvalidDefinition(v)) => v,
                Err(other) => return Err(other),
                Ok(_) => Vec::new(),
            };
            if name.is_none() {
                violations.insert(
                    0,
                    Violation {
                        code: "invalid_name".into(),
                        location: "name".into(),
                        message: "an ASL state machine needs a name of 1 to 80 letters, digits, `-` or `_` (given where it is deployed)".into(),
                    },
                );
            }
            return Err(Error::InvalidDefinition(violations));
        }
    };
    let canonical = serde_json::to_string(doc).unwrap_or_default();
    let digest = Sha256::digest(canonical.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    Ok(Plan {
        name: name.to_string(),
        description: machine.comment.clone(),
        timeout_ms: machine.timeout_seconds.map(|s| s.saturating_mul(1000)),
        steps: Vec::new(),
        stages: Vec::new(),
        variables: Default::default(),
        variable_uses: Vec::new(),
        digest,
        asl: Some(Arc::new(machine)),
    })
}
