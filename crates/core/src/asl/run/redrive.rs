//! Redrive as Step Functions does it: a failed execution continues from
//! the state that failed, and inside a Parallel or an inline Map only the
//! branches and iterations that failed or were aborted run again; the ones
//! that succeeded keep their outputs and do not run twice.
//!
//! Every thread that stops without succeeding — its failure was caught by
//! nobody, or a sibling's failure aborted it — keeps a [`Resume`]: the state
//! it was in, that state's raw input, its variables then, and, when that
//! state was a Parallel or Map, a [`FanMemo`] of its branches (what each
//! produced, or where each stopped, recursively). A redrive folds the root
//! thread's `Resume` back into running slots. Everything here is derived
//! from recorded events, so a replay rebuilds the same memos.

use serde::Serialize;
use serde_json::Value;

use super::{shared_vars, Fan, Phase, Run, Slot, Tolerance, TraceKind};
use crate::asl::machine::Machine;
use crate::asl::vars::SharedVars;
use crate::event::Millis;
use crate::exchange::Effect;

/// How a thread ended without succeeding.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(super) enum Stopped {
    /// It cannot continue where it stopped (a Fail state, a Catch whose own
    /// data flow failed, a loop): the machine's thread is not redrivable; a
    /// branch or iteration runs again from its start.
    Anew,
    /// It can continue from here.
    At(Resume),
}

/// Where a stopped thread continues on a redrive.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(super) struct Resume {
    /// The state it was in (index in its graph).
    pub(super) state: usize,
    /// That state's input as it arrived.
    pub(super) raw: Value,
    /// The thread's variables when it stopped.
    #[serde(serialize_with = "shared_vars")]
    pub(super) vars: SharedVars,
    /// When the state was a Parallel or Map: what its branches did.
    pub(super) fan: Option<Box<FanMemo>>,
}

/// What a Parallel's branches or a Map's iterations had done when the
/// state stopped: kept results, and where the others stopped.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(super) struct FanMemo {
    /// The state's effective input (after InputPath / Parameters).
    effective: Value,
    limit: usize,
    tolerance: Tolerance,
    inputs: Vec<Value>,
    /// A succeeded branch's or iteration's output; `None` runs again.
    results: Vec<Option<Value>>,
    /// Where each branch or iteration that runs again continues (`None`:
    /// from its start).
    resume: Vec<Option<Resume>>,
    /// A distributed Map's run, continued by the redrive.
    map_run: Option<usize>,
}

impl Run {
    /// Thread `t` stopped in state `s` (input `raw`) and may continue there;
    /// `fan` is that state's fan-out, if it had one.
    pub(super) fn stop_at(&mut self, t: usize, s: usize, raw: Value, fan: Option<(Fan, Value)>) {
        let fan = fan.map(|(fan, effective)| Box::new(self.memo(fan, effective)));
        let vars = self.threads[t].vars.clone();
        self.threads[t].stopped = Some(Stopped::At(Resume {
            state: s,
            raw,
            vars,
            fan,
        }));
    }

    /// What a stopped fan-out's branches did. Called after its branches
    /// were stopped, so each one that did not succeed has its [`Stopped`].
    fn memo(&mut self, fan: Fan, effective: Value) -> FanMemo {
        let mut results = fan.results;
        // The results moved into the state's output when all had
        // succeeded: a state that failed after that (its ResultSelector,
        // say) runs every branch or item again.
        if results.len() != fan.inputs.len() {
            results = vec![None; fan.inputs.len()];
        }
        let mut resume = Vec::with_capacity(results.len());
        for (i, thread) in fan.threads.iter().enumerate() {
            let stopped = thread.and_then(|c| self.threads[c].stopped.take());
            match stopped {
                None => resume.push(None),
                // A tolerated failure left an error object as its result:
                // it runs again too, as AWS redrives failed iterations.
                Some(how) => {
                    results[i] = None;
                    resume.push(match how {
                        Stopped::At(r) => Some(r),
                        Stopped::Anew => None,
                    });
                }
            }
        }
        FanMemo {
            effective,
            limit: fan.limit,
            tolerance: fan.tolerance,
            inputs: fan.inputs,
            results,
            resume,
            map_run: fan.map_run,
        }
    }

    /// Whether a redrive would have something to continue.
    pub(crate) fn can_redrive(&self) -> bool {
        matches!(
            self.threads.first().and_then(|t| t.stopped.as_ref()),
            Some(Stopped::At(_))
        )
    }

    /// The machine's own thread continues where it stopped; `false` when
    /// it cannot (see [`Run::can_redrive`]).
    pub(super) fn redrive(&mut self, m: &Machine, at: Millis, fx: &mut Vec<Effect>) -> bool {
        let Some(Stopped::At(resume)) = self.threads.first_mut().and_then(|t| t.stopped.take())
        else {
            return false;
        };
        if self.traced(None) {
            self.record(at, None, TraceKind::ExecutionRedriven {});
        }
        self.pending.clear();
        self.threads[0].live = true;
        self.resume(m, at, fx, 0, resume);
        true
    }

    /// Runs thread `t` on from `r`: a plain state is entered again; a
    /// fan-out starts only what did not succeed.
    pub(super) fn resume(
        &mut self,
        m: &Machine,
        at: Millis,
        fx: &mut Vec<Effect>,
        t: usize,
        r: Resume,
    ) {
        self.threads[t].vars = r.vars;
        let Some(memo) = r.fan else {
            return self.enter(m, at, fx, t, r.state, r.raw);
        };
        let memo = *memo;
        let st = self.state(m, t, r.state);
        let key = self.key(t, &st.name, r.state);
        if self.traced(self.child_of(t)) {
            self.record(
                at,
                self.child_of(t),
                TraceKind::StateEntered {
                    name: st.name.clone(),
                    type_name: st.kind.type_name(),
                    input: r.raw.clone(),
                },
            );
        }
        let entered = self.event_id(self.child_of(t));
        let mut slot = Slot::new(
            t,
            st,
            r.state,
            r.raw,
            memo.effective,
            (at, entered),
            Phase::Fanout,
        );
        let n = memo.inputs.len();
        slot.fan = Some(Fan {
            limit: memo.limit,
            tolerance: memo.tolerance,
            inputs: memo.inputs,
            threads: vec![None; n],
            results: memo.results,
            started: 0,
            running: 0,
            failures: 0,
            resume: memo.resume,
            map_run: memo.map_run,
        });
        self.slots.insert(key.clone(), slot);
        self.fan_started(at, &key, st);
        if let (Some(r), Some(fan)) = (
            memo.map_run,
            self.slots.get(&key).and_then(|s| s.fan.as_ref()),
        ) {
            let kept = fan.results.clone();
            self.redrive_map_run(at, r, &kept);
        }
        self.fill_fan(m, at, fx, &key);
    }
}
