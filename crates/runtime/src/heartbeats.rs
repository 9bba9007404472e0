//! Heartbeats of parked callback tasks, watched by their execution's actor.
//!
//! A callback task with a `heartbeat` fails when its participant stays
//! silent for longer than that (or when its deadline passes first). The
//! silence is owned by the actor of the execution, like everything else
//! about it: a heartbeat reaches the actor as a message (a callback without
//! an outcome), which moves the task's silence window, and the actor sleeps
//! until the earliest moment one of its watches runs out ([`Heartbeats::lapsed`]).
//! No map shared by the engine, no polling; an answered task is simply
//! forgotten. Such an execution stays resident (`Execution::is_parked` is
//! false while a heartbeat task waits), so its watches live as long as it
//! is waited for.

use std::time::Duration;

use sagaflow_core::event::Millis;
use sagaflow_core::TaskToken;

use crate::now_ms;

/// The silence of one parked callback task that must send heartbeats.
pub struct Watch {
    token: TaskToken,
    /// When the task's deadline passes (ms).
    deadline: Millis,
    /// The longest silence allowed (ms).
    heartbeat_ms: u64,
    /// When the task last showed a sign of life (ms).
    last: Millis,
}

impl Watch {
    /// A watch of the task of `token`, silent since `since`; `None` for a
    /// token that is not one of this server's.
    pub(crate) fn new(
        token: &str,
        deadline: Millis,
        heartbeat_ms: u64,
        since: Millis,
    ) -> Option<Self> {
        Some(Watch {
            token: sagaflow_core::parse_task_token(token)?,
            deadline,
            heartbeat_ms,
            last: since,
        })
    }

    /// The token of the watched task.
    pub(crate) fn token(&self) -> &TaskToken {
        &self.token
    }

    /// Whether this watch is about the attempt of `token` (whose nonce the
    /// actor has checked).
    fn is_for(&self, token: &TaskToken) -> bool {
        self.token.step == token.step
            && self.token.task == token.task
            && self.token.attempt == token.attempt
    }

    /// When this watch runs out, unless a heartbeat comes first.
    fn runs_out_at(&self) -> Millis {
        self.deadline
            .min(self.last.saturating_add(self.heartbeat_ms))
    }

    /// Why this watch has run out by `now`, if it has.
    fn lapse(&self, now: Millis) -> Option<Lapse> {
        if now >= self.deadline {
            Some(Lapse::Deadline)
        } else if now >= self.last.saturating_add(self.heartbeat_ms) {
            Some(Lapse::Silent {
                heartbeat_ms: self.heartbeat_ms,
            })
        } else {
            None
        }
    }
}

/// Why a parked callback task stopped waiting without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lapse {
    /// No heartbeat (nor answer) for `heartbeat_ms`.
    Silent { heartbeat_ms: u64 },
    /// The task's deadline passed.
    Deadline,
}

/// The heartbeat watches of one actor's parked callback tasks.
#[derive(Default)]
pub(crate) struct Heartbeats {
    watches: Vec<Watch>,
}

impl Heartbeats {
    pub(crate) fn is_empty(&self) -> bool {
        self.watches.is_empty()
    }

    /// Starts watching a task (again, if it was watched already).
    pub(crate) fn watch(&mut self, watch: Watch) {
        self.forget(&watch.token);
        self.watches.push(watch);
    }

    /// A heartbeat of the task of `token`: its silence starts again at `now`.
    pub(crate) fn beat(&mut self, token: &TaskToken, now: Millis) {
        for w in self.watches.iter_mut().filter(|w| w.is_for(token)) {
            w.last = now;
        }
    }

    /// The task of `token` was answered: it stops waiting.
    pub(crate) fn forget(&mut self, token: &TaskToken) {
        self.watches.retain(|w| !w.is_for(token));
    }

    /// Keeps only the watches of tasks for which `waiting` holds.
    pub(crate) fn retain(&mut self, mut waiting: impl FnMut(&TaskToken) -> bool) {
        if !self.watches.is_empty() {
            self.watches.retain(|w| waiting(&w.token));
        }
    }

    /// Sleeps until the earliest watch runs out, then removes and returns
    /// every watch that has run out, with why. Never returns while nothing
    /// is watched. Cancel-safe: nothing changes until the sleep is over, so
    /// the actor re-arms it (to the then earliest moment) whenever a message
    /// comes first.
    pub(crate) async fn lapsed(&mut self) -> Vec<(TaskToken, Lapse)> {
        let Some(wake) = self.watches.iter().map(Watch::runs_out_at).min() else {
            return std::future::pending().await;
        };
        // At least a millisecond: the wall clock may lag the timer a little.
        let nap = wake.saturating_sub(now_ms()).max(1);
        tokio::time::sleep(Duration::from_millis(nap)).await;
        let now = now_ms();
        let mut lapsed = Vec::new();
        self.watches.retain(|w| match w.lapse(now) {
            Some(lapse) => {
                lapsed.push((w.token.clone(), lapse));
                false
            }
            None => true,
        });
        lapsed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch(deadline: Millis, heartbeat_ms: u64, since: Millis) -> Watch {
        let token =
            sagaflow_core::task_token("ex", "approve", sagaflow_core::TaskKind::Action, 1, "00");
        Watch::new(&token, deadline, heartbeat_ms, since).expect("a token of ours")
    }

    #[test]
    fn a_watch_runs_out_at_its_silence_or_its_deadline_whichever_comes_first() {
        assert_eq!(watch(10_000, 1_000, 0).runs_out_at(), 1_000);
        assert_eq!(watch(500, 1_000, 0).runs_out_at(), 500);
    }

    #[test]
    fn a_passed_deadline_is_named_before_a_silence() {
        let w = watch(1_000, 1_000, 0);
        assert_eq!(w.lapse(999), None);
        assert_eq!(w.lapse(1_000), Some(Lapse::Deadline));
        let w = watch(10_000, 1_000, 0);
        assert_eq!(
            w.lapse(1_000),
            Some(Lapse::Silent {
                heartbeat_ms: 1_000
            })
        );
    }

    #[test]
    fn a_heartbeat_starts_the_silence_again_and_an_answer_ends_the_watch() {
        let w = watch(10_000, 1_000, 0);
        let token = w.token().clone();
        let mut beats = Heartbeats::default();
        beats.watch(w);
        beats.beat(&token, 800);
        assert_eq!(beats.watches[0].runs_out_at(), 1_800);
        beats.forget(&token);
        assert!(beats.is_empty());
    }
}
