//! The `callback` conformance cases (`cases/callback/*.yaml`).

use crate::support::Function;

pub fn functions() -> Vec<(&'static str, Function)> {
    vec![]
}
