//! Property test of the durable operation state machine: random walks of
//! one execution through checkpoint batches (valid and invalid updates of
//! every type and action, children of live and finished contexts,
//! duplicates within a batch, retries, waits, callbacks, chained invokes),
//! timers firing (some early, some stale), chained invokes ending,
//! callbacks completing, beating and timing out, and the execution timing
//! out or being stopped from outside.
//!
//! After every step:
//! 1. a refused batch changes nothing;
//! 2. the recorded facts, read back from JSON and folded from scratch,
//!    give the live `Operations` (replay equals live);
//! 3. every operation an accepted batch named or changed is in its
//!    answer, in its new state;
//! 4. an operation that reached a terminal status never changes again;
//! 5. once the execution has ended nothing is accepted: no checkpoint (not
//!    even an empty one through `Invocations`), timer, invoke outcome,
//!    callback completion or heartbeat, timeout or stop.
//!
//! Seeded: `DURABLE_PROPTEST_SEED` is the first case's seed (the others
//! follow from it), `DURABLE_PROPTEST_CASES` the number of cases (300 by
//! default). A failure names its case's seed and the trail of steps;
//! re-run it alone with `DURABLE_PROPTEST_SEED=<seed>
//! DURABLE_PROPTEST_CASES=1`.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sagaflow_core::durable::{
    CallbackOptions, CallbackOutcome, ChainedInvokeOptions, Checkpoint, ContextOptions, Details,
    ErrorObject, Invocations, InvokeOutcome, Operation, OperationAction as A, OperationEvent,
    OperationStatus as S, OperationType as T, OperationUpdate, Operations, StepOptions,
    WaitOptions, INVALID_TOKEN,
};

/// 2026-01-01T00:00:00Z: where the simulated clock starts.
const T0: u64 = 1_767_225_600_000;
/// Steps of one walk (most walks end earlier, by their execution's end).
const STEPS: usize = 60;

fn env<V: std::str::FromStr>(name: &str) -> Option<V> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// How often each kind of thing happened over all cases: the walk must
/// reach every corner for the properties to mean something.
#[derive(Debug, Default)]
struct Stats {
    accepted: u64,
    refused: u64,
    refusal_codes: BTreeSet<&'static str>,
    facts: BTreeSet<String>,
    ended_after: u64,
}

#[test]
fn random_walks_keep_refusals_inert_replay_equal_answers_complete_and_ends_final() {
    let first = env("DURABLE_PROPTEST_SEED").unwrap_or_else(|| {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(0);
        h.finish()
    });
    let cases: u64 = env("DURABLE_PROPTEST_CASES").unwrap_or(300);
    eprintln!("durable_properties: DURABLE_PROPTEST_SEED={first} DURABLE_PROPTEST_CASES={cases}");
    let mut stats = Stats::default();
    for k in 0..cases {
        // Case k's seed: re-run it alone with DURABLE_PROPTEST_CASES=1.
        let seed = first.wrapping_add(k.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut trail = Vec::new();
        let outcome = catch_unwind(AssertUnwindSafe(|| walk(seed, &mut stats, &mut trail)));
        if let Err(panic) = outcome {
            let failure = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic".into());
            panic!(
                "case {k} failed: {failure}\n  trail:\n    {}\n  re-run it with DURABLE_PROPTEST_SEED={seed} DURABLE_PROPTEST_CASES=1",
                trail.join("\n    ")
            );
        }
    }
    eprintln!("durable_properties: {stats:?}");
    if cases >= 100 {
        assert!(stats.accepted > 1000 && stats.refused > 1000, "{stats:?}");
        assert!(stats.ended_after > 10, "{stats:?}");
        // Every kind of operation fact (21 of them) was recorded, the
        // warning of a replay that sent another payload included.
        assert_eq!(stats.facts.len(), 21, "{stats:?}");
        for code in [
            "unknown_operation",
            "type_mismatch",
            "name_mismatch",
            "parent_mismatch",
            "unknown_parent",
            "parent_ended",
            "operation_ended",
            "invalid_action",
            "invalid_duration",
            "invalid_operation_id",
            "missing_function_name",
            "execution_ended",
        ] {
            assert!(stats.refusal_codes.contains(code), "{code}: {stats:?}");
        }
    }
}

/// One execution's walk; each step is noted in `trail`.
fn walk(seed: u64, stats: &mut Stats, trail: &mut Vec<String>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut live = Operations::default();
    let mut history = Vec::new();
    let started = OperationEvent::ExecutionStarted {
        id: "exec".into(),
        input_payload: Some("{}".into()),
        at: T0,
    };
    record(&mut live, &mut history, started);
    let mut now = T0;
    // Every operation as it was when it reached a terminal status.
    let mut finished: BTreeMap<String, Operation> = BTreeMap::new();
    for _ in 0..STEPS {
        now += rng.gen_range(0..4000);
        let before = live.clone();
        let roll = rng.gen_range(0..100);
        if roll < 60 {
            let size = rng.gen_range(0..5);
            let batch: Vec<_> = (0..size).map(|_| random_update(&mut rng, &live)).collect();
            trail.push(format!("at {now}: checkpoint {}", describe(&batch)));
            match live.apply_checkpoint(&batch, now, rng.gen()) {
                Err(refusal) => {
                    stats.refused += 1;
                    stats.refusal_codes.insert(refusal.code);
                    trail.push(format!("  refused: {} ({})", refusal.code, refusal.message));
                    // (1) A refusal changes nothing, and names its update.
                    assert_eq!(live, before, "a refused batch changed the operations");
                    // It names its update (an empty batch has none to name).
                    assert!(refusal.update.is_some_and(|i| i < batch.len()) || batch.is_empty());
                    assert!(
                        !before.is_ended() || refusal.code == "execution_ended",
                        "after the end the refusal is execution_ended"
                    );
                }
                Ok(applied) => {
                    stats.accepted += 1;
                    // (5) Nothing is accepted once the execution has ended.
                    assert!(
                        !before.is_ended() || batch.is_empty(),
                        "a batch was accepted after the end"
                    );
                    for fact in &applied.events {
                        trail.push(format!("  fact: {}", kind(fact)));
                        record(&mut live, &mut history, fact.clone());
                    }
                    // (3) Every operation named or changed is in the
                    // answer, as it now is.
                    let answered: BTreeMap<&str, &Operation> = applied
                        .operations
                        .iter()
                        .map(|op| (op.id.as_str(), op))
                        .collect();
                    assert_eq!(answered.len(), applied.operations.len(), "an op twice");
                    let named = batch.iter().map(|u| {
                        if u.op_type == T::Execution {
                            "exec"
                        } else {
                            u.id.as_str()
                        }
                    });
                    let changed = live
                        .iter()
                        .filter(|op| before.get(&op.id) != Some(op))
                        .map(|op| op.id.as_str());
                    for id in named.chain(changed) {
                        assert_eq!(
                            answered.get(id).copied(),
                            live.get(id),
                            "{id} is not in the answer in its new state"
                        );
                    }
                    for op in &applied.operations {
                        assert_eq!(Some(op), live.get(&op.id), "the answer shows the new state");
                    }
                    assert_eq!(applied.execution_ended, live.is_ended());
                }
            }
        } else {
            outside(&mut rng, &mut live, &mut history, now, trail);
        }
        for fact in history.iter() {
            stats.facts.insert(kind(fact));
        }
        // (2) Replay equals live: the facts as stored, folded from scratch.
        let mut replayed = Operations::default();
        for fact in &history {
            let stored = serde_json::to_string(fact).unwrap();
            let read: OperationEvent = serde_json::from_str(&stored).unwrap();
            replayed
                .apply(&read)
                .unwrap_or_else(|e| panic!("replay refused {stored}: {e}"));
        }
        assert_eq!(replayed, live, "replay differs from the live state");
        // (4) A terminal operation never changes again.
        for (id, was) in &finished {
            assert_eq!(live.get(id), Some(was), "terminal {id} changed");
        }
        for op in live.iter().filter(|op| op.status.is_terminal()) {
            finished.entry(op.id.clone()).or_insert_with(|| op.clone());
        }
        if live.is_ended() {
            stats.ended_after += 1;
            check_final(&mut rng, &live, now, trail);
            break;
        }
    }
}

/// (5) After the end: every way in is shut.
fn check_final(rng: &mut StdRng, live: &Operations, now: u64, trail: &mut Vec<String>) {
    trail.push(format!("ended: {:?}", live.outcome()));
    let later = now + 1_000_000_000;
    // An empty batch has no update to refuse: `Operations` accepts it
    // (changing nothing); `Invocations` refuses it by its token, below.
    let empty = live.apply_checkpoint(&[], later, 0).unwrap();
    assert!(empty.events.is_empty() && empty.operations.is_empty());
    for _ in 0..5 {
        let batch = vec![random_update(rng, live)];
        let refusal = live
            .apply_checkpoint(&batch, later, rng.gen())
            .expect_err("a checkpoint after the end was accepted");
        assert_eq!(refusal.code, "execution_ended");
    }
    for op in live.iter() {
        assert_eq!(
            live.fire_timer(&op.id, later),
            None,
            "a timer after the end"
        );
        let outcome = InvokeOutcome::Succeeded { result: None };
        assert_eq!(live.end_chained_invoke(&op.id, outcome, later), None);
        if let Details::Callback(d) = &op.details {
            let callback_id = d.callback_id.clone().unwrap();
            let success = CallbackOutcome::Succeeded { result: None };
            assert!(live
                .complete_callback(&callback_id, success, later)
                .is_err());
            assert!(live.heartbeat_callback(&callback_id, later).is_err());
        }
    }
    assert_eq!(live.time_out(None, later), None);
    assert_eq!(live.stop(None, later), None);
    assert!(live.invokes_to_dispatch().is_empty());
    // Even an empty checkpoint with the latest token of an invocation still
    // open is refused, with the prefix the SDK gives up on.
    let mut inv = Invocations::new("exec");
    inv.apply(&inv.start(1, later).unwrap()).unwrap();
    let token = inv.token().unwrap().encode();
    match inv.checkpoint(live, &token, None, &[], later, 1) {
        Err(refusal) => assert!(refusal.message.starts_with(INVALID_TOKEN)),
        Ok(Checkpoint::Decided { .. } | Checkpoint::Replayed(_)) => {
            panic!("an empty checkpoint after the end was accepted")
        }
    }
}

/// Something from outside a checkpoint: timers (due or not), chained
/// invokes' answers, callbacks' completions and heartbeats (also for
/// unknown callback ids), the execution timing out or being stopped.
fn outside(
    rng: &mut StdRng,
    live: &mut Operations,
    history: &mut Vec<OperationEvent>,
    now: u64,
    trail: &mut Vec<String>,
) {
    let ids: Vec<String> = live.iter().map(|op| op.id.clone()).collect();
    let mut id = ids[rng.gen_range(0..ids.len())].clone();
    let roll = rng.gen_range(0..100);
    let fact = if roll < 35 {
        // Mostly the timer of an operation that has one (a step waiting
        // to retry, a wait): any op at random would leave a retry's READY
        // to luck, and the coverage check below would be flaky.
        let timed: Vec<&str> = live
            .iter()
            .filter(|op| {
                matches!(
                    (op.op_type(), op.status),
                    (T::Step, S::Pending) | (T::Wait, S::Started)
                )
            })
            .map(|op| op.id.as_str())
            .collect();
        if !timed.is_empty() && rng.gen_bool(0.7) {
            id = timed[rng.gen_range(0..timed.len())].to_string();
        }
        trail.push(format!("at {now}: timer of {id}"));
        live.fire_timer(&id, now)
    } else if roll < 60 {
        let outcome = match rng.gen_range(0..4) {
            0 => InvokeOutcome::Succeeded {
                result: Some("{\"ok\":1}".into()),
            },
            1 => InvokeOutcome::Failed { error: error("f") },
            2 => InvokeOutcome::TimedOut { error: error("t") },
            _ => InvokeOutcome::Stopped { error: error("s") },
        };
        trail.push(format!("at {now}: {id} answers {outcome:?}"));
        let fact = live.end_chained_invoke(&id, outcome.clone(), now);
        if fact.is_none() {
            // An answer that does not fit (a second one after a restart):
            // nothing to record.
            if let Some(op) = live.get(&id) {
                assert!(op.op_type() != T::ChainedInvoke || op.status.is_terminal());
            }
        }
        fact
    } else if roll < 92 {
        let callback_id = match live.get(&id).map(|op| &op.details) {
            Some(Details::Callback(d)) if rng.gen_bool(0.9) => d.callback_id.clone().unwrap(),
            _ => format!("unknown{}", rng.gen_range(0..3)),
        };
        trail.push(format!("at {now}: callback {callback_id} of {id}"));
        match rng.gen_range(0..3) {
            0 => live
                .complete_callback(
                    &callback_id,
                    CallbackOutcome::Succeeded {
                        result: Some("\"yes\"".into()),
                    },
                    now,
                )
                .ok(),
            1 => live
                .complete_callback(
                    &callback_id,
                    CallbackOutcome::Failed { error: error("no") },
                    now,
                )
                .ok(),
            _ => live
                .heartbeat_callback(&callback_id, now)
                .ok()
                .map(|(fact, _)| fact),
        }
    } else if roll < 96 {
        trail.push(format!("at {now}: timed out"));
        live.time_out(Some(error("timeout")), now)
    } else {
        trail.push(format!("at {now}: stopped"));
        live.stop(Some(error("stop")), now)
    };
    if let Some(fact) = fact {
        trail.push(format!("  fact: {}", kind(&fact)));
        record(live, history, fact);
    }
}

/// Folds a decided fact in (it must fit: it was just decided) and keeps it.
fn record(live: &mut Operations, history: &mut Vec<OperationEvent>, fact: OperationEvent) {
    live.apply(&fact)
        .unwrap_or_else(|e| panic!("a decided fact does not fold: {fact:?}: {e}"));
    history.push(fact);
}

fn error(message: &str) -> ErrorObject {
    ErrorObject {
        error_type: Some("Exception".into()),
        error_message: Some(message.into()),
        ..ErrorObject::default()
    }
}

/// The name of a fact's kind (`step_started`).
fn kind(event: &OperationEvent) -> String {
    serde_json::to_value(event).unwrap()["type"]
        .as_str()
        .unwrap()
        .to_string()
}

fn describe(batch: &[OperationUpdate]) -> String {
    let parts: Vec<String> = batch
        .iter()
        .map(|u| {
            format!(
                "{} {} {}{}",
                u.op_type,
                serde_json::to_value(u.action).unwrap().as_str().unwrap(),
                u.id,
                u.parent_id
                    .as_ref()
                    .map(|p| format!(" under {p}"))
                    .unwrap_or_default()
            )
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

const TYPES: [T; 5] = [T::Step, T::Wait, T::Callback, T::ChainedInvoke, T::Context];
const ACTIONS: [A; 5] = [A::Start, A::Succeed, A::Fail, A::Retry, A::Cancel];

/// A random update: mostly about an operation that exists (its own type,
/// name and parent, a plausible action), else a new one (a child of a
/// context now and then), and now and then a wrong one (another type,
/// name or parent, an invalid id, a missing or out-of-range option, the
/// EXECUTION itself).
fn random_update(rng: &mut StdRng, live: &Operations) -> OperationUpdate {
    let existing: Vec<&Operation> = live.iter().skip(1).collect();
    let mut u = if !existing.is_empty() && rng.gen_bool(0.55) {
        let op = existing[rng.gen_range(0..existing.len())];
        let mut u = update_of(rng, op.op_type(), op.id.clone());
        u.name = op.name.clone();
        u.parent_id = op.parent_id.clone();
        match rng.gen_range(0..40) {
            0 => u.op_type = TYPES[rng.gen_range(0..TYPES.len())],
            1 => u.name = Some("renamed".into()),
            2 => u.parent_id = Some("x9".into()),
            _ => {}
        }
        u
    } else {
        let t = if rng.gen_bool(0.04) {
            T::Execution
        } else {
            TYPES[rng.gen_range(0..TYPES.len())]
        };
        let id = match rng.gen_range(0..50) {
            0 => "bad id!".to_string(),
            1 => "x".repeat(65),
            _ => format!("{}{}", prefix(rng, t), rng.gen_range(0..5)),
        };
        let mut u = update_of(rng, t, id.clone());
        if rng.gen_bool(0.9) {
            u.name = Some(format!("n-{id}"));
        }
        let contexts: Vec<&str> = existing
            .iter()
            .filter(|op| op.op_type() == T::Context)
            .map(|op| op.id.as_str())
            .collect();
        if !contexts.is_empty() && rng.gen_bool(0.35) {
            u.parent_id = Some(contexts[rng.gen_range(0..contexts.len())].to_string());
        } else if rng.gen_bool(0.05) {
            u.parent_id = Some(format!("x{}", rng.gen_range(5..7)));
        }
        u
    };
    if rng.gen_bool(0.04) {
        u.action = ACTIONS[rng.gen_range(0..ACTIONS.len())];
    }
    u
}

/// An id prefix per type (`s` for steps …), now and then another type's.
fn prefix(rng: &mut StdRng, t: T) -> &'static str {
    let prefixes = ["s", "w", "c", "i", "x"];
    match t {
        _ if rng.gen_bool(0.05) => prefixes[rng.gen_range(0..prefixes.len())],
        T::Step => "s",
        T::Wait => "w",
        T::Callback => "c",
        T::ChainedInvoke => "i",
        _ => "x",
    }
}

/// An update of an operation of type `t` with a plausible action and its
/// options (now and then missing or out of range).
fn update_of(rng: &mut StdRng, t: T, id: String) -> OperationUpdate {
    let plausible: &[A] = match t {
        T::Step => &[A::Start, A::Start, A::Succeed, A::Fail, A::Retry, A::Retry],
        T::Wait => &[A::Start, A::Start, A::Cancel],
        T::Context => &[A::Start, A::Start, A::Succeed, A::Fail],
        T::Execution => &[A::Succeed, A::Fail],
        _ => &[A::Start],
    };
    let mut u = OperationUpdate::new(id, t, plausible[rng.gen_range(0..plausible.len())]);
    u.sub_type = Some(format!("{t}"));
    if rng.gen_bool(0.5) {
        u.payload = Some(format!("{}", rng.gen::<u16>()));
    }
    if rng.gen_bool(0.6) {
        u.error = Some(error("boom"));
    }
    let seconds = match rng.gen_range(0..40) {
        0 => None,
        1 => Some(0),
        2 => Some(31_622_401),
        _ => Some(rng.gen_range(1..6)),
    };
    match t {
        T::Step => {
            u.step_options = Some(StepOptions {
                next_attempt_delay_seconds: seconds,
            })
        }
        T::Wait => {
            u.wait_options = Some(WaitOptions {
                wait_seconds: seconds.map(|s| s * 3),
            })
        }
        T::Callback => {
            u.callback_options = rng.gen_bool(0.8).then(|| CallbackOptions {
                timeout_seconds: Some(rng.gen_range(0..12)),
                heartbeat_timeout_seconds: Some(rng.gen_range(0..6)),
            })
        }
        T::ChainedInvoke => {
            let function_name = if rng.gen_bool(0.03) { "" } else { "f" };
            u.chained_invoke_options = Some(ChainedInvokeOptions {
                function_name: function_name.into(),
                tenant_id: rng.gen_bool(0.2).then(|| "tenant".into()),
            })
        }
        T::Context => {
            u.context_options = rng.gen_bool(0.5).then(|| ContextOptions {
                replay_children: Some(rng.gen_bool(0.5)),
            })
        }
        T::Execution => {}
    }
    u
}
