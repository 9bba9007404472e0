//! The `wait` conformance cases (`cases/wait/*.yaml`).

use crate::support::Function;

pub fn functions() -> Vec<(&'static str, Function)> {
    vec![]
}
