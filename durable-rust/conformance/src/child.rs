//! The `child` conformance cases (`cases/child/*.yaml`).

use crate::support::Function;

pub fn functions() -> Vec<(&'static str, Function)> {
    vec![]
}
