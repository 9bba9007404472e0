//! Who waits for an execution's end: the callers of [`Engine::wait`].
//!
//! Waiters are kept per execution id, so a finish wakes only those waiting
//! for that execution: thousands of waiters cost nothing per finish of the
//! others (a broadcast would wake them all). A waiter that gives up (its
//! timeout passed, its request was dropped) removes itself through its
//! [`Registration`].
//!
//! [`Engine::wait`]: crate::Engine::wait

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use sagaflow_store::ExecutionRecord;
use tokio::sync::oneshot;

/// The waiters of each execution: a ticket and where to send the outcome.
type ByExecution = HashMap<String, Vec<(u64, oneshot::Sender<ExecutionRecord>)>>;

/// Callers of [`crate::Engine::wait`] by execution id.
#[derive(Default)]
pub(crate) struct Waiters {
    by_execution: Mutex<ByExecution>,
    next_ticket: AtomicU64,
}

/// One registered waiter; dropping it removes the waiter if it is still there.
pub(crate) struct Registration<'a> {
    waiters: &'a Waiters,
    id: &'a str,
    ticket: u64,
}

impl Waiters {
    /// Registers a waiter for `id`: the receiver gets the record of its finish.
    pub(crate) fn register<'a>(
        &'a self,
        id: &'a str,
    ) -> (Registration<'a>, oneshot::Receiver<ExecutionRecord>) {
        let (tx, rx) = oneshot::channel();
        let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        self.lock()
            .entry(id.to_string())
            .or_default()
            .push((ticket, tx));
        let registration = Registration {
            waiters: self,
            id,
            ticket,
        };
        (registration, rx)
    }

    /// Tells everyone waiting on this execution how it ended.
    pub(crate) fn notify(&self, record: &ExecutionRecord) {
        let waiting = self.lock().remove(&record.id).unwrap_or_default();
        for (_, tx) in waiting {
            let _ = tx.send(record.clone());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ByExecution> {
        self.by_execution.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut waiters = self.waiters.lock();
        if let Some(list) = waiters.get_mut(self.id) {
            list.retain(|(t, _)| *t != self.ticket);
            if list.is_empty() {
                waiters.remove(self.id);
            }
        }
    }
}
