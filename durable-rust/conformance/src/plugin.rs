//! The `plugin` conformance cases (`cases/plugin/*.yaml`).

use crate::support::Function;

pub fn functions() -> Vec<(&'static str, Function)> {
    vec![]
}
