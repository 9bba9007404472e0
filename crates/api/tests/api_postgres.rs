//! The native API suite of `api.rs`, run again with the engine on
//! PostgreSQL: each test in a schema of its own, dropped when it ends.
//! Skipped (each test prints a notice) when `DATABASE_URL` is unset; CI
//! sets it.

/// Read by the suite as `crate::BACKEND`.
const BACKEND: &str = "postgres";

#[path = "api.rs"]
mod suite;
