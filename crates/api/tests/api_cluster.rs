//! The native API suite of `api.rs`, run again with the engine as a node of
//! a cluster (the only one) on PostgreSQL: executions leased to it, appends
//! fenced by the lease, parked executions releasing theirs, waits reading
//! the store. Each test in a schema of its own, dropped when it ends.
//! Skipped (each test prints a notice) when `DATABASE_URL` is unset; CI
//! sets it.

/// Read by the suite as `crate::BACKEND`.
const BACKEND: &str = "cluster";

#[path = "api.rs"]
mod suite;
