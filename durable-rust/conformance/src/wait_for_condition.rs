//! The `wait_for_condition` conformance cases (`cases/wait_for_condition/*.yaml`).

use crate::support::Function;

pub fn functions() -> Vec<(&'static str, Function)> {
    vec![]
}
