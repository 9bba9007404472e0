//! The engine's health and counters: whether it is shutting down, whether
//! storage writes work, how many participant calls are in flight, and the
//! metrics counted per stored decision.
//!
//! It exists so that readiness (`/healthz`, the 503s of new work) and the
//! drain of a graceful shutdown read one place, and so that every count that
//! must fall again is held by a guard (a [`CallInFlight`], a [`StuckGuard`])
//! rather than kept by hand: a guard that is dropped — its message lost, its
//! actor gone — still takes its count with it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use sagaflow_core::{Event, EventKind};

/// Shutdown, storage and in-flight state of one engine.
#[derive(Default)]
pub(crate) struct Health {
    shutting_down: AtomicBool,
    /// Participant calls whose result has not been recorded yet: the number
    /// of live [`CallInFlight`] guards.
    in_flight: Arc<AtomicUsize>,
    /// The last storage failure, while writes are failing.
    storage_fault: Mutex<Option<String>>,
}

impl Health {
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    pub(crate) fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Counts one participant call in flight until the guard is dropped.
    pub(crate) fn call(&self) -> CallInFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        CallInFlight(self.in_flight.clone())
    }

    /// Tracks whether storage writes work: a backend failure marks the engine
    /// unhealthy (`/healthz`, 503s) until a later write succeeds.
    pub(crate) fn observe_storage<T>(&self, result: &Result<T, sagaflow_store::Error>) {
        let mut fault = self.lock_fault();
        match result {
            Err(sagaflow_store::Error::Backend(msg)) => {
                if fault.is_none() {
                    tracing::error!(error = %msg, "storage is failing; writes are retried, new work is refused");
                }
                *fault = Some(msg.clone());
            }
            Ok(_) => {
                if fault.take().is_some() {
                    tracing::info!("storage recovered");
                }
            }
            Err(_) => {}
        }
    }

    /// The last storage failure, while writes are failing.
    pub(crate) fn storage_fault(&self) -> Option<String> {
        self.lock_fault().clone()
    }

    fn lock_fault(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.storage_fault.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One participant call in flight: counted in the engine's in-flight count
/// (which a graceful shutdown waits to drain) for as long as it lives — from
/// the decision that makes the call until its result has been recorded, or
/// until that result is dropped unread because its actor has gone. A guard
/// that travels with the result, not a ledger of increments and decrements
/// that a lost message would leave unbalanced.
pub struct CallInFlight(Arc<AtomicUsize>);

impl Drop for CallInFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Counts one stuck execution in the `sagaflow_executions_stuck` gauge for
/// as long as it lives: an actor that leaves memory (finished, fenced,
/// stopped) takes its count with it.
pub(crate) struct StuckGuard;

impl StuckGuard {
    pub(crate) fn new() -> Self {
        metrics::gauge!("sagaflow_executions_stuck").increment(1.0);
        StuckGuard
    }
}

impl Drop for StuckGuard {
    fn drop(&mut self) {
        metrics::gauge!("sagaflow_executions_stuck").decrement(1.0);
    }
}

/// The counters of a stored decision's events.
pub(crate) fn count(events: &[Event]) {
    for e in events {
        match &e.kind {
            EventKind::RetryScheduled { task, .. } => {
                metrics::counter!("sagaflow_retries_total", "task" => task.as_str()).increment(1);
            }
            EventKind::CompensationScheduled { .. } => {
                metrics::counter!("sagaflow_compensations_total").increment(1);
            }
            EventKind::StepScheduled { .. } => {
                metrics::counter!("sagaflow_steps_scheduled_total").increment(1);
            }
            EventKind::DurableOperation {
                fact: sagaflow_core::durable::OperationEvent::ReplayDiverged { id, field, .. },
            } => {
                metrics::counter!("sagaflow_durable_replay_divergences_total").increment(1);
                tracing::warn!(operation = %id, %field, "a replay sent a chained invoke again with another {field}: the function is not deterministic (make such values inside a step)");
            }
            _ => {}
        }
    }
}
