//! The `map` conformance cases (`cases/map/*.yaml`).

use crate::support::Function;

pub fn functions() -> Vec<(&'static str, Function)> {
    vec![]
}
