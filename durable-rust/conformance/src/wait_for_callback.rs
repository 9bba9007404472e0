//! The `wait_for_callback` conformance cases (`cases/wait_for_callback/*.yaml`).

use crate::support::Function;

pub fn functions() -> Vec<(&'static str, Function)> {
    vec![]
}
