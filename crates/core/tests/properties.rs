//! Property tests: random saga shapes, a random failing step, a simulated
//! driver that feeds `decide`/`apply` the way the runtime does.
//!
//! The driver is deterministic given its own seed (printed in every assertion
//! message); proptest persists the generated inputs of a failing case under
//! `proptest-regressions/` and prints them when it fails.

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;
use proptest::sample::Index;
use sagaflow_core::definition::compile_document;
use sagaflow_core::error_name::{TASK_FAILED, TIMEOUT};
use sagaflow_core::saga::TaskState;
use sagaflow_core::{
    Ctx, Effect, ErrorInfo, Event, EventKind, Execution, Input, Plan, Role, Status, TaskKind,
};
use serde_json::{json, Value};

// ---------------------------------------------------------------- saga shapes

#[derive(Debug, Clone)]
struct StageShape {
    parallel: bool,
    /// Per branch: whether the step has a compensation.
    compensated: Vec<bool>,
}

#[derive(Debug, Clone)]
struct Shape {
    stages: Vec<StageShape>,
    /// Index of the stage holding the pivot (a single step without compensation).
    pivot: Option<usize>,
}

impl Shape {
    fn document(&self) -> Value {
        let step = |name: String, compensated: bool, pivot: bool| {
            let mut s = json!({ "name": name, "action": { "handler": name } });
            if compensated {
                s["compensation"] = json!({ "handler": format!("undo_{name}") });
            }
            if pivot {
                s["pivot"] = json!(true);
            }
            s
        };
        let steps: Vec<Value> = self
            .stages
            .iter()
            .enumerate()
            .map(|(k, st)| {
                if st.parallel {
                    let branches: Vec<Value> = st
                        .compensated
                        .iter()
                        .enumerate()
                        .map(|(b, &c)| step(format!("s{k}_{b}"), c, false))
                        .collect();
                    json!({ "parallel": { "name": format!("g{k}"), "branches": branches } })
                } else {
                    step(format!("s{k}"), st.compensated[0], self.pivot == Some(k))
                }
            })
            .collect();
        json!({ "name": "random-saga", "steps": steps })
    }
}

fn shape() -> impl Strategy<Value = Shape> {
    (
        prop::collection::vec(
            (any::<bool>(), prop::collection::vec(any::<bool>(), 1..=3)),
            1..=6,
        ),
        any::<Option<Index>>(),
    )
        .prop_map(|(raw, pivot)| {
            let pivot = pivot.map(|ix| ix.index(raw.len()));
            let stages = raw
                .into_iter()
                .enumerate()
                .map(|(k, (parallel, mut compensated))| {
                    if pivot == Some(k) {
                        // The pivot stands alone and cannot be compensated.
                        return StageShape {
                            parallel: false,
                            compensated: vec![false],
                        };
                    }
                    if pivot.is_some_and(|p| k > p) {
                        // After the pivot, steps are retried forward, never compensated.
                        compensated.iter_mut().for_each(|c| *c = false);
                    }
                    if !parallel {
                        compensated.truncate(1);
                    }
                    StageShape {
                        parallel,
                        compensated,
                    }
                })
                .collect();
            Shape { stages, pivot }
        })
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// A 4xx-style error the default policy does not retry.
    Business,
    /// `States.Timeout`: the attempt's effect may have happened.
    Timeout,
}

#[derive(Debug, Clone)]
struct FailureSpec {
    step: Index,
    kind: Kind,
    /// For a step after the pivot: how many attempts fail before one succeeds.
    transient: u32,
}

fn failure() -> impl Strategy<Value = Option<FailureSpec>> {
    prop::option::of(
        (
            any::<Index>(),
            prop_oneof![Just(Kind::Business), Just(Kind::Timeout)],
            1u32..=4,
        )
            .prop_map(|(step, kind, transient)| FailureSpec {
                step,
                kind,
                transient,
            }),
    )
}

// ---------------------------------------------------------------- the driver

/// SplitMix64: the simulated driver's own seeded randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Debug, Clone, Copy)]
struct Failure {
    step: usize,
    kind: Kind,
    after_pivot: bool,
    transient: u32,
}

/// One decision the driver asked for: where its events start, and what it was.
struct Decision {
    first_event: usize,
    input: Input,
    ctx: Ctx,
    events: usize,
}

struct Sim<'p> {
    plan: &'p Plan,
    seed: u64,
    rng: Rng,
    ex: Execution,
    history: Vec<Event>,
    /// `snapshots[k]`: the live state after `k` events.
    snapshots: Vec<Execution>,
    /// `pending_after[k]`: effects issued and not yet delivered after `k` events.
    pending_after: Vec<Vec<Effect>>,
    decisions: Vec<Decision>,
    pending: Vec<Effect>,
    now: u64,
    failure: Option<Failure>,
    /// Steps whose first action attempt fails transiently.
    noisy: Vec<bool>,
    /// How many compensation attempts of each step fail before one succeeds.
    undo_failures: Vec<u32>,
    /// The participants' own view: is the step's effect in place?
    booked: Vec<bool>,
    /// Whether the participant has processed the step's action key.
    processed: Vec<bool>,
    /// Steps in the order the orchestrator saw them complete (succeed, or time out for good).
    completed: Vec<usize>,
    finished: Option<Status>,
    /// Calls delivered so far, to tell redeliveries from new calls.
    delivered: HashSet<(String, TaskKind, u32)>,
    calls_after_finish: usize,
    events_after_finish: usize,
    /// Percent chance of a crash (replay + at-least-once redelivery) after a decision.
    crash_percent: u64,
    crashes: usize,
}

impl<'p> Sim<'p> {
    fn new(plan: &'p Plan, failure: Option<&FailureSpec>, seed: u64, crash_percent: u64) -> Self {
        let mut rng = Rng(seed);
        let n = plan.saga().unwrap().steps.len();
        let failure = failure.map(|f| {
            let step = f.step.index(n);
            Failure {
                step,
                kind: f.kind,
                after_pivot: plan.saga().unwrap().steps[step].role == Role::Retriable,
                transient: f.transient,
            }
        });
        let noisy = (0..n).map(|_| rng.chance(25)).collect();
        let undo_failures = (0..n).map(|_| rng.below(4) as u32).collect();
        let ex = Execution::empty(plan);
        Sim {
            plan,
            seed,
            rng,
            snapshots: vec![ex.clone()],
            ex,
            history: Vec::new(),
            pending_after: vec![Vec::new()],
            decisions: Vec::new(),
            pending: Vec::new(),
            now: 1_000,
            failure,
            noisy,
            undo_failures,
            booked: vec![false; n],
            processed: vec![false; n],
            completed: Vec::new(),
            finished: None,
            delivered: HashSet::new(),
            calls_after_finish: 0,
            events_after_finish: 0,
            crash_percent,
            crashes: 0,
        }
    }

    fn name(&self, i: usize) -> &str {
        &self.plan.saga().unwrap().steps[i].name
    }

    /// The participant deduplicates by idempotency key (one per step and task):
    /// a late or repeated action call never books a second time, not even
    /// after the compensation cancelled the booking.
    fn book(&mut self, i: usize) {
        if !self.processed[i] {
            self.processed[i] = true;
            self.booked[i] = true;
        }
    }

    /// What the participant answers to one call. Deterministic per attempt, so a
    /// redelivered call gets the same answer; effects are idempotent per step.
    fn answer(&mut self, i: usize, task: TaskKind, attempt: u32) -> Result<Value, ErrorInfo> {
        match task {
            TaskKind::Action => {
                if let Some(f) = self.failure.filter(|f| f.step == i) {
                    if !f.after_pivot || attempt <= f.transient {
                        return Err(match f.kind {
                            Kind::Business => ErrorInfo::new("Declined", "4xx"),
                            Kind::Timeout => {
                                self.book(i); // it happened, but too late to say so
                                ErrorInfo::new(TIMEOUT, "no answer in time")
                            }
                        });
                    }
                } else if self.noisy[i] && attempt == 1 {
                    return Err(ErrorInfo::new(TASK_FAILED, "503"));
                }
                self.book(i);
                Ok(json!({ "step": self.name(i), "attempt": attempt }))
            }
            TaskKind::Compensation => {
                if attempt <= self.undo_failures[i] {
                    let error = [TASK_FAILED, TIMEOUT, "CancelFailed"][self.rng.below(3)];
                    return Err(ErrorInfo::new(error, "cancel failed, try again"));
                }
                self.booked[i] = false;
                Ok(json!({ "cancelled": self.name(i) }))
            }
        }
    }

    fn decide_and_apply(&mut self, input: Input) -> Result<(), TestCaseError> {
        self.now += 1 + self.rng.below(50) as u64;
        let ctx = Ctx {
            now: self.now,
            random: self.rng.unit(),
            entropy: self.rng.below(1 << 30) as u64,
        };
        let seed = self.seed;
        let events = self
            .ex
            .decide(self.plan, input.clone(), ctx)
            .map_err(|e| TestCaseError::fail(format!("seed {seed}: decide failed: {e}")))?;
        if self.finished.is_some() {
            self.events_after_finish += events.len();
        }
        self.decisions.push(Decision {
            first_event: self.history.len(),
            input,
            ctx,
            events: events.len(),
        });
        for e in events {
            let effects = self.ex.apply(self.plan, &e).map_err(|err| {
                TestCaseError::fail(format!("seed {seed}: a decided event was refused: {err}"))
            })?;
            self.observe(&e.kind);
            self.history.push(e);
            for eff in effects {
                match eff {
                    Effect::Finished { status } => self.finished = Some(status),
                    other => self.pending.push(other),
                }
            }
            self.snapshots.push(self.ex.clone());
            self.pending_after.push(self.pending.clone());
        }
        Ok(())
    }

    /// Records the orchestrator-visible completion order.
    fn observe(&mut self, kind: &EventKind) {
        match kind {
            EventKind::StepSucceeded { step, .. } => {
                let i = self.plan.saga().unwrap().step_index(step).unwrap();
                self.completed.push(i);
            }
            EventKind::StepFailed {
                step,
                attempt,
                error,
            } if error.error == TIMEOUT => {
                let i = self.plan.saga().unwrap().step_index(step).unwrap();
                let last = self.plan.saga().unwrap().steps[i].action.retry.max_attempts;
                let gave_up = last == Some(*attempt) || self.ex.status == Status::Compensating;
                if gave_up && !self.completed.contains(&i) {
                    self.completed.push(i);
                }
            }
            _ => {}
        }
    }

    fn crash_and_recover(&mut self) -> Result<(), TestCaseError> {
        let seed = self.seed;
        let recovered = Execution::replay(self.plan, &self.history)
            .map_err(|e| TestCaseError::fail(format!("seed {seed}: replay failed: {e}")))?;
        prop_assert_eq!(
            &recovered,
            &self.ex,
            "seed {}: replay differs from live",
            seed
        );
        let outstanding = recovered.outstanding(self.plan);
        for eff in &outstanding {
            prop_assert!(
                self.pending.contains(eff),
                "seed {}: recovery found {:?}, which was never issued",
                seed,
                eff
            );
        }
        // At-least-once: the dead process's calls may still answer, and the new
        // one re-issues everything in flight.
        self.ex = recovered;
        self.pending.extend(outstanding);
        self.crashes += 1;
        Ok(())
    }

    fn run(&mut self) -> Result<(), TestCaseError> {
        let seed = self.seed;
        self.decide_and_apply(Input::Start {
            execution_id: format!("ex-{seed}"),
            definition: self.plan.name.clone(),
            version: 1,
            input: json!({ "seed": seed }),
        })?;
        let mut rounds = 0;
        while !self.pending.is_empty() {
            rounds += 1;
            prop_assert!(
                rounds < 20_000,
                "seed {}: the saga does not terminate",
                seed
            );
            let effect = self.pending.swap_remove(self.rng.below(self.pending.len()));
            let input = match effect {
                Effect::Invoke {
                    step,
                    task,
                    attempt,
                    ..
                } => {
                    let first_delivery = self.delivered.insert((step.clone(), task, attempt));
                    if self.finished.is_some() && first_delivery {
                        // A redelivery of a call made before a crash is fine;
                        // a call first issued after the finish is not.
                        self.calls_after_finish += 1;
                    }
                    let i = self.plan.saga().unwrap().step_index(&step).unwrap();
                    if first_delivery {
                        // The first delivery of a call finds its task running.
                        let req = self.ex.request(self.plan, &step, task).map_err(|e| {
                            TestCaseError::fail(format!("seed {seed}: request failed: {e:?}"))
                        })?;
                        prop_assert_eq!(req.attempt, attempt, "seed {}", seed);
                        prop_assert_eq!(
                            req.idempotency_key,
                            format!("ex-{seed}:{step}:{}", task.as_str()),
                            "seed {}",
                            seed
                        );
                    }
                    match self.answer(i, task, attempt) {
                        Ok(output) => Input::TaskSucceeded {
                            step,
                            task,
                            attempt,
                            output,
                        },
                        Err(error) => Input::TaskFailed {
                            step,
                            task,
                            attempt,
                            error,
                        },
                    }
                }
                Effect::StartTimer {
                    step,
                    task,
                    attempt,
                    ..
                } => Input::TimerFired {
                    step,
                    task,
                    attempt,
                },
                // Generated sagas have no execution timeout, and finishes are not queued.
                Effect::Deadline { .. } | Effect::Finished { .. } | Effect::Durable(_) => {
                    unreachable!("never queued (a saga asks for no durable effect)")
                }
            };
            self.decide_and_apply(input)?;
            if self.crash_percent > 0 && self.rng.chance(self.crash_percent) {
                self.crash_and_recover()?;
            }
        }
        Ok(())
    }

    fn events_named(&self, f: impl Fn(&EventKind) -> Option<&str>) -> Vec<usize> {
        self.history
            .iter()
            .filter_map(|e| f(&e.kind))
            .map(|s| self.plan.saga().unwrap().step_index(s).unwrap())
            .collect()
    }

    /// Everything the saga promises, checked against what the driver saw.
    fn check(&self, shape: &Shape) -> Result<(), TestCaseError> {
        let seed = self.seed;
        let ctx = format!(
            "seed {seed}, failure {:?}, crashes {}, shape {shape:?}",
            self.failure, self.crashes
        );
        let Some(status) = self.finished else {
            return Err(TestCaseError::fail(format!("{ctx}: never finished")));
        };
        prop_assert_eq!(self.ex.status, status, "{}", ctx);
        prop_assert!(
            matches!(
                self.history.last().map(|e| &e.kind),
                Some(EventKind::ExecutionFinished { .. })
            ),
            "{}: the finish is the last event",
            ctx
        );
        let finishes = self
            .history
            .iter()
            .filter(|e| matches!(e.kind, EventKind::ExecutionFinished { .. }))
            .count();
        prop_assert_eq!(finishes, 1, "{}", ctx);
        prop_assert_eq!(
            self.calls_after_finish,
            0,
            "{}: a call after the finish",
            ctx
        );
        prop_assert_eq!(
            self.events_after_finish,
            0,
            "{}: events after the finish",
            ctx
        );
        prop_assert!(self.ex.outstanding(self.plan).is_empty(), "{}", ctx);

        let compensated = self.events_named(|k| match k {
            EventKind::CompensationSucceeded { step, .. } => Some(step),
            _ => None,
        });
        let comp_scheduled = self.events_named(|k| match k {
            EventKind::CompensationScheduled { step, .. } => Some(step),
            _ => None,
        });
        let rollbacks = self
            .history
            .iter()
            .filter(|e| matches!(e.kind, EventKind::RollbackStarted { .. }))
            .count();

        let pivot_timed_out = self.failure.is_some_and(|f| {
            f.kind == Kind::Timeout && self.plan.saga().unwrap().steps[f.step].role == Role::Pivot
        });
        let rolls_back = self.failure.is_some_and(|f| !f.after_pivot);
        if pivot_timed_out {
            // A pivot that may have happened cannot be rolled back around: it
            // stops as `failed` for a human, with nothing compensated.
            prop_assert_eq!(status, Status::Failed, "{}", ctx);
            prop_assert_eq!(rollbacks, 0, "{}", ctx);
            prop_assert!(
                comp_scheduled.is_empty(),
                "{}: compensated around a timed-out pivot",
                ctx
            );
        } else if rolls_back {
            let f = self.failure.unwrap();
            prop_assert_eq!(status, Status::Compensated, "{}", ctx);
            prop_assert_eq!(rollbacks, 1, "{}", ctx);
            let expected_error = match f.kind {
                Kind::Business => "Declined",
                Kind::Timeout => TIMEOUT,
            };
            prop_assert_eq!(
                self.ex.error.as_ref().map(|e| e.error.as_str()),
                Some(expected_error),
                "{}",
                ctx
            );
            // Every step that completed (or timed out) and has a compensation
            // was compensated exactly once, in reverse completion order.
            let expected: Vec<usize> = self
                .completed
                .iter()
                .rev()
                .copied()
                .filter(|&i| self.plan.saga().unwrap().steps[i].compensation.is_some())
                .collect();
            prop_assert_eq!(
                &compensated,
                &expected,
                "{}: compensations (left) vs reverse completion order (right), completed {:?}",
                ctx,
                self.completed
            );
            // No compensation of a step that never ran, and each attempt was needed.
            let mut attempts: HashMap<usize, u32> = HashMap::new();
            for &i in &comp_scheduled {
                prop_assert!(
                    self.completed.contains(&i),
                    "{}: compensated {} which never ran",
                    ctx,
                    self.name(i)
                );
                *attempts.entry(i).or_default() += 1;
            }
            for (&i, &n) in &attempts {
                prop_assert_eq!(
                    n,
                    self.undo_failures[i] + 1,
                    "{}: step {}",
                    ctx,
                    self.name(i)
                );
            }
            // The participants' world is clean again.
            for (i, step) in self.plan.saga().unwrap().steps.iter().enumerate() {
                if step.compensation.is_some() {
                    prop_assert!(!self.booked[i], "{}: {} still booked", ctx, step.name);
                }
            }
            if f.kind == Kind::Business {
                prop_assert!(!self.completed.contains(&f.step), "{}", ctx);
            } else {
                prop_assert!(self.completed.contains(&f.step), "{}", ctx);
            }
        } else {
            prop_assert_eq!(status, Status::Succeeded, "{}", ctx);
            prop_assert_eq!(rollbacks, 0, "{}", ctx);
            prop_assert!(comp_scheduled.is_empty(), "{}: compensated on success", ctx);
            let mut done = self.completed.clone();
            done.sort_unstable();
            done.dedup();
            prop_assert_eq!(done.len(), self.plan.saga().unwrap().steps.len(), "{}", ctx);
            let output = self.ex.output.as_ref().and_then(Value::as_object);
            prop_assert!(
                output.is_some_and(|o| self
                    .plan
                    .saga()
                    .unwrap()
                    .steps
                    .iter()
                    .all(|s| o.contains_key(&s.name))),
                "{}: output {:?}",
                ctx,
                self.ex.output
            );
            if let Some(f) = self.failure {
                let scheduled = self
                    .history
                    .iter()
                    .filter(|e| matches!(&e.kind, EventKind::StepScheduled { step, .. } if step == self.name(f.step)))
                    .count() as u32;
                prop_assert_eq!(scheduled, f.transient + 1, "{}: retried forward", ctx);
            }
        }

        // Compensations run one at a time, and only once no action is running.
        for (k, e) in self.history.iter().enumerate() {
            if let EventKind::CompensationScheduled { .. } = e.kind {
                let before = &self.snapshots[k];
                prop_assert!(
                    before.saga().unwrap().steps.iter().all(|s| !matches!(
                        s.action.state,
                        TaskState::Running { .. }
                    ) && !matches!(
                        s.compensation.state,
                        TaskState::Running { .. }
                    )),
                    "{}: compensation scheduled at event {} while something ran",
                    ctx,
                    k
                );
            }
        }
        Ok(())
    }

    /// Crash after every event: a state rebuilt from any prefix of the history
    /// equals the live one, knows exactly what was in flight, and a recovered
    /// process decides the next input exactly as the live one did.
    fn check_replay_of_every_prefix(&self) -> Result<(), TestCaseError> {
        let seed = self.seed;
        for k in 0..=self.history.len() {
            let replayed = Execution::replay(self.plan, &self.history[..k])
                .map_err(|e| TestCaseError::fail(format!("seed {seed}: prefix {k}: {e}")))?;
            prop_assert_eq!(&replayed, &self.snapshots[k], "seed {}: prefix {}", seed, k);
            let outstanding = replayed.outstanding(self.plan);
            let pending = &self.pending_after[k];
            for eff in &outstanding {
                prop_assert!(
                    pending.contains(eff),
                    "seed {}: prefix {}: {:?} is outstanding but was not in flight",
                    seed,
                    k,
                    eff
                );
            }
            for eff in pending.iter().filter(|e| !outstanding.contains(e)) {
                // Only timers of retries dropped by the turn may be left behind.
                let Effect::StartTimer { step, task, .. } = eff else {
                    return Err(TestCaseError::fail(format!(
                        "seed {seed}: prefix {k}: {eff:?} in flight but not outstanding"
                    )));
                };
                let i = self.plan.saga().unwrap().step_index(step).unwrap();
                prop_assert_eq!(
                    &replayed.saga().unwrap().task(i, *task).state,
                    &TaskState::Abandoned,
                    "seed {}: prefix {}: {:?}",
                    seed,
                    k,
                    eff
                );
            }
        }
        for d in &self.decisions {
            let recovered = Execution::replay(self.plan, &self.history[..d.first_event]).unwrap();
            let again = recovered
                .decide(self.plan, d.input.clone(), d.ctx)
                .map_err(|e| TestCaseError::fail(format!("seed {seed}: {e}")))?;
            prop_assert_eq!(
                &again[..],
                &self.history[d.first_event..d.first_event + d.events],
                "seed {}: a recovered process decided differently on {:?}",
                seed,
                d.input
            );
        }
        Ok(())
    }
}

fn compile_shape(shape: &Shape) -> Plan {
    compile_document(&shape.document(), None)
        .unwrap_or_else(|e| panic!("generated shape must be valid: {e}\n{shape:#?}"))
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    })]

    /// Fail at a random step: every completed step is compensated exactly once,
    /// in reverse order, and the saga ends as the pivot says it must — even
    /// when the orchestrator crashes and calls are delivered twice.
    #[test]
    fn every_completed_step_is_compensated_exactly_once_in_reverse_order(
        shape in shape(),
        failure in failure(),
        seed in any::<u64>(),
    ) {
        let plan = compile_shape(&shape);
        let mut sim = Sim::new(&plan, failure.as_ref(), seed, 5);
        sim.run()?;
        sim.check(&shape)?;
    }

    /// The same sagas without crashes: replaying any prefix of the history gives
    /// the live state, and a recovered process makes the same decisions.
    #[test]
    fn replaying_any_prefix_of_the_history_gives_the_live_state(
        shape in shape(),
        failure in failure(),
        seed in any::<u64>(),
    ) {
        let plan = compile_shape(&shape);
        let mut sim = Sim::new(&plan, failure.as_ref(), seed, 0);
        sim.run()?;
        sim.check(&shape)?;
        sim.check_replay_of_every_prefix()?;
    }
}
