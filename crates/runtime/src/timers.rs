//! Timers: retry backoffs, callback deadlines, ASL `Wait`s and execution
//! deadlines, kept in two tiers.
//!
//! Every timer a decision arms is a durable row stored with the decision's
//! events ([`durable_timers`]), so none is lost by a crash or by an
//! execution leaving memory. Timers due within `Config::memory_timer_horizon`
//! are also armed in memory ([`arm`]), for precision; later ones only live
//! in the store's timer table, which [`Engine::poll_timers`] reads every
//! `Config::timer_poll` — so a waiting execution costs no task and may
//! leave memory. Firing twice is harmless: the core ignores a timer whose
//! attempt has moved on.

use std::time::Duration;

use sagaflow_core::event::Millis;
use sagaflow_core::{Effect, Input};
use sagaflow_store::Timer;

use crate::actor::{Mailbox, Msg};
use crate::{now_ms, Config, Engine};

/// The durable timer rows of a decision's effects: what its `StartTimer`s
/// arm, stored with the decision's events (by `append`, and by
/// `create_execution` for the start), so a timer beyond the in-memory
/// horizon is always in the table the poller reads.
pub(crate) fn durable_timers(execution_id: &str, effects: &[Effect]) -> Vec<Timer> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::StartTimer {
                step,
                task,
                attempt,
                fire_at,
            } => Some(Timer {
                execution_id: execution_id.to_string(),
                step: step.clone(),
                task: *task,
                attempt: *attempt,
                fire_at: *fire_at,
            }),
            _ => None,
        })
        .collect()
}

/// Whether a timer firing at `fire_at` is due soon enough to be armed in
/// memory; a later one is left to its durable row and the poller.
pub(crate) fn within_horizon(config: &Config, fire_at: Millis) -> bool {
    let horizon = config.memory_timer_horizon.as_millis() as u64;
    fire_at.saturating_sub(now_ms()) <= horizon
}

/// Arms a timer in memory: at `at`, `input` is sent to the actor.
pub(crate) fn arm(mailbox: &Mailbox, at: Millis, input: Input) {
    let tx = mailbox.clone();
    tokio::spawn(async move {
        // Until the clock the decision reads says it is due: to the core, a
        // deadline or a task timer that comes early is stale.
        while now_ms() < at {
            tokio::time::sleep(Duration::from_millis(at.saturating_sub(now_ms()))).await;
        }
        let _ = tx.send(Msg::Input { input, call: None });
    });
}

impl Engine {
    /// Fires the durable timers that are due, every `Config::timer_poll`:
    /// to the resident actor, or to the execution reloaded from history.
    pub(crate) async fn poll_timers(self) {
        loop {
            tokio::time::sleep(self.shared.config.timer_poll).await;
            if self.is_shutting_down() {
                return;
            }
            let claimed = self
                .shared
                .ownership
                .claim_due_timers(&*self.shared.store, now_ms(), 1000)
                .await;
            match claimed {
                Ok(timers) => {
                    for t in timers {
                        self.fire(t).await;
                    }
                }
                Err(e) => {
                    self.shared.health.observe_storage::<()>(&Err(e));
                }
            }
        }
    }

    /// Delivers one due durable timer.
    async fn fire(&self, t: Timer) {
        let input = Input::TimerFired {
            step: t.step,
            task: t.task,
            attempt: t.attempt,
        };
        let tx = self.lock_actors().get(&t.execution_id).cloned();
        // Not in memory: a parked execution (reload it), or a finished one
        // (the timer is stale).
        let tx = match tx {
            Some(tx) => Some(tx),
            None => match self.shared.store.get_execution(&t.execution_id).await {
                Ok(rec) if !rec.status.is_terminal() => self.resident(&t.execution_id).await.ok(),
                _ => None,
            },
        };
        if let Some(tx) = tx {
            let _ = tx.send(Msg::Input { input, call: None });
        }
    }
}
