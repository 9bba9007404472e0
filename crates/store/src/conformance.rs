//! Conformance suite run against every backend (to be written).
