//! Per-participant bulkheads: how many calls to one participant may be in
//! flight at once, so that one slow or hung participant cannot take every
//! slot of the engine and stall unrelated sagas.
//!
//! A participant is the scheme and authority of its resolved URL
//! (`http://hotel:8080`), or `handler:NAME` for an in-process handler. A
//! call first takes a slot of its participant's bulkhead
//! (`Config::participant_concurrency`), then one of the global cap
//! (`Config::concurrency`); a call waiting for its participant holds no
//! global slot. Waiting is bounded by the attempt's recorded deadline and
//! does not count against the attempt's own time: the invoker starts the
//! attempt clock once it holds both slots (see ARCHITECTURE.md, "Decisions").
//! A deadline that passes while waiting sent nothing, so it ends the attempt
//! with [`PARTICIPANT_SATURATED`], a retried failure that is never ambiguous.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sagaflow_core::error_name::PARTICIPANT_SATURATED;
use sagaflow_core::{ErrorInfo, Participant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{now_ms, Shared};

/// The slots a call holds while it is in flight (released when dropped).
pub(crate) struct Slot {
    _participant: OwnedSemaphorePermit,
    _global: OwnedSemaphorePermit,
}

/// The bulkheads of the participants seen so far, by participant key.
#[derive(Default)]
pub(crate) struct Bulkheads {
    map: Mutex<HashMap<String, Arc<Bulkhead>>>,
}

struct Bulkhead {
    slots: Arc<Semaphore>,
    /// Calls waiting for a slot right now.
    waiting: AtomicUsize,
    /// When (ms) saturation was last logged: at most one line per
    /// [`WARN_EVERY_MS`], however often the bulkhead fills up.
    warned_at: AtomicU64,
}

const WARN_EVERY_MS: u64 = 10_000;

/// One call waiting for a slot of `bulkhead`, counted (and shown in the
/// `sagaflow_participant_waiting_calls` gauge) for as long as it lives —
/// also when the waiting call is dropped (a guard, not a ledger).
struct Waiting<'a> {
    bulkhead: &'a Bulkhead,
    key: &'a str,
    /// Calls waiting, this one included, when it started to wait.
    count: usize,
}

impl<'a> Waiting<'a> {
    fn new(bulkhead: &'a Bulkhead, key: &'a str) -> Self {
        let count = bulkhead.waiting.fetch_add(1, Ordering::SeqCst) + 1;
        metrics::gauge!("sagaflow_participant_waiting_calls", "participant" => key.to_string())
            .increment(1.0);
        Waiting {
            bulkhead,
            key,
            count,
        }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.bulkhead.waiting.fetch_sub(1, Ordering::SeqCst);
        metrics::gauge!("sagaflow_participant_waiting_calls", "participant" => self.key.to_string())
            .decrement(1.0);
    }
}

impl Bulkheads {
    fn get(&self, key: &str, size: usize) -> Arc<Bulkhead> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        // The common case, a participant seen before, allocates nothing.
        if let Some(b) = map.get(key) {
            return b.clone();
        }
        map.entry(key.to_string())
            .or_insert_with(|| {
                Arc::new(Bulkhead {
                    slots: Arc::new(Semaphore::new(size.max(1))),
                    waiting: AtomicUsize::new(0),
                    warned_at: AtomicU64::new(0),
                })
            })
            .clone()
    }
}

/// The bulkhead key of a participant: scheme and authority of its resolved
/// URL (the default port made explicit), or `handler:NAME`.
pub(crate) fn participant_key(
    participant: &Participant,
    config: &crate::Config,
) -> Result<String, ErrorInfo> {
    match participant {
        Participant::Handler { name } => Ok(format!("handler:{name}")),
        // Queuing an activity task calls no one: one key per activity.
        Participant::Activity { arn } => Ok(arn.clone()),
        Participant::Http { url, .. } => {
            // The real URL (a secret, if any, is in its path or query, not
            // in the scheme and authority the key keeps).
            let filled = crate::vars::fill(url, config, true)?;
            Ok(match reqwest::Url::parse(&filled.value) {
                Ok(u) => format!(
                    "{}://{}:{}",
                    u.scheme(),
                    u.host_str().unwrap_or_default(),
                    u.port_or_known_default().unwrap_or(0)
                ),
                // The call itself reports the bad URL; it only needs a key
                // (as shown: metrics and logs never carry a secret).
                Err(_) => filled.shown,
            })
        }
    }
}

/// Waits for a slot of the call's participant and then of the global cap,
/// until `deadline` (ms since the epoch) at the latest.
pub(crate) async fn enter(
    shared: &Shared,
    participant: &Participant,
    step: &str,
    deadline: u64,
) -> Result<Slot, ErrorInfo> {
    let key = participant_key(participant, &shared.config)?;
    let size = shared.config.participant_concurrency;
    let bulkhead = shared.bulkheads.get(&key, size);
    let remaining = || Duration::from_millis(deadline.saturating_sub(now_ms()));
    let saturated = || {
        ErrorInfo::new(
            PARTICIPANT_SATURATED,
            format!(
                "`{step}` was not sent: {key} had all of its {size} call slots (or the engine all \
                 of its {}) busy until the attempt's deadline",
                shared.config.concurrency
            ),
        )
    };
    let participant_permit = match bulkhead.slots.clone().try_acquire_owned() {
        Ok(p) => p,
        Err(_) => {
            metrics::counter!("sagaflow_participant_saturated_total", "participant" => key.clone())
                .increment(1);
            let queued = Waiting::new(&bulkhead, &key);
            let waiting = queued.count;
            let now = now_ms();
            let last = bulkhead.warned_at.load(Ordering::SeqCst);
            if now.saturating_sub(last) >= WARN_EVERY_MS
                && bulkhead
                    .warned_at
                    .compare_exchange(last, now, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
            {
                tracing::warn!(
                    participant = %key,
                    slots = size,
                    waiting,
                    "participant saturated its bulkhead: further calls to it wait for a slot"
                );
            }
            let got =
                tokio::time::timeout(remaining(), bulkhead.slots.clone().acquire_owned()).await;
            drop(queued);
            match got {
                Ok(Ok(p)) => p,
                _ => return Err(saturated()),
            }
        }
    };
    let global = match shared.permits.clone().try_acquire_owned() {
        Ok(p) => p,
        Err(_) => {
            match tokio::time::timeout(remaining(), shared.permits.clone().acquire_owned()).await {
                Ok(Ok(p)) => p,
                _ => return Err(saturated()),
            }
        }
    };
    Ok(Slot {
        _participant: participant_permit,
        _global: global,
    })
}
