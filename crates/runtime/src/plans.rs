//! Compiled plans, cached by definition name and version, and the latest
//! version of each definition this process has seen.
//!
//! A stored definition is compiled once per process: every start, reload and
//! recovery of its executions shares the same `Arc<Plan>`. Compiling runs on
//! the blocking pool, so a large or hostile definition never holds up the
//! async workers that answer every other request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sagaflow_core::Plan;

use crate::{Error, Result, Shared};

/// The plan cache of one engine.
#[derive(Default)]
pub(crate) struct Plans {
    compiled: Mutex<HashMap<(String, u32), Arc<Plan>>>,
    /// The latest version of each definition this process has seen.
    latest: Mutex<HashMap<String, u32>>,
}

impl Plans {
    /// The compiled plan of this version, if it is cached.
    pub(crate) fn get(&self, name: &str, version: u32) -> Option<Arc<Plan>> {
        self.lock_compiled()
            .get(&(name.to_string(), version))
            .cloned()
    }

    pub(crate) fn insert(&self, name: &str, version: u32, plan: Arc<Plan>) {
        self.lock_compiled()
            .insert((name.to_string(), version), plan);
    }

    /// The latest version of `name` this process has seen.
    pub(crate) fn latest(&self, name: &str) -> Option<u32> {
        self.lock_latest().get(name).copied()
    }

    pub(crate) fn note_latest(&self, name: &str, version: u32) {
        let mut latest = self.lock_latest();
        let v = latest.entry(name.to_string()).or_insert(version);
        *v = (*v).max(version);
    }

    /// Forgets the latest version of a deleted definition: it would still
    /// start executions.
    pub(crate) fn forget_latest(&self, name: &str) {
        self.lock_latest().remove(name);
    }

    fn lock_compiled(&self) -> std::sync::MutexGuard<'_, HashMap<(String, u32), Arc<Plan>>> {
        self.compiled.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_latest(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.latest.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Compiles a definition on the blocking pool: reading a hostile text is
/// bounded (see `sagaflow_core::document`) but not free, and must not hold
/// up the async workers that answer every other request. A `stored`
/// definition is read as it was accepted (a definition stored before
/// duplicate keys were refused still loads).
pub(crate) async fn compile(
    shared: &Arc<Shared>,
    source: &str,
    name_hint: Option<&str>,
    stored: bool,
) -> Result<Plan> {
    let inner = shared.clone();
    let (source, name_hint) = (source.to_string(), name_hint.map(str::to_string));
    let compiled = tokio::task::spawn_blocking(move || {
        let compile = if stored {
            sagaflow_core::compile_stored_definition
        } else {
            sagaflow_core::compile_definition
        };
        compile(&source, name_hint.as_deref(), &inner.config.resources)
    })
    .await;
    match compiled {
        Ok(compiled) => {
            let mut plan = compiled.map_err(Error::Invalid)?;
            // This engine's limits, not the document's.
            plan.limit(sagaflow_core::Limits {
                max_history_events: shared.config.max_history_events,
            });
            Ok(plan)
        }
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            // The blocking pool is gone: the runtime is shutting down.
            Err(_) => Err(Error::ShuttingDown),
        },
    }
}
