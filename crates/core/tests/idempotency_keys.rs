//! Idempotency keys are unique by construction: no two distinct participant
//! calls — of one execution or of two — ever share a key, whatever the
//! execution ids and state names, while the keys of ordinary names are the
//! same as before the escaping was introduced.
//!
//! The randomized test draws adversarial state names and execution ids from
//! a seed (printed; re-run with `SAGAFLOW_KEYS_SEED=<seed>`).

use std::collections::HashMap;

use sagaflow_core::asl::{ResourceMap, ResourceRule};
use sagaflow_core::{
    compile_definition, Ctx, Effect, Event, EventKind, Execution, Input, Plan, TaskKind,
};
use serde_json::{json, Value};

fn resources() -> ResourceMap {
    ResourceMap {
        rules: vec![ResourceRule {
            pattern: "arn:aws:lambda:*:*:function:{name}".into(),
            target: "handler:{name}".into(),
        }],
    }
}

fn task(next: Option<&str>) -> Value {
    let mut t = json!({
        "Type": "Task",
        "Resource": "arn:aws:lambda:us-east-1:123456789012:function:f",
    });
    match next {
        Some(n) => t["Next"] = json!(n),
        None => t["End"] = json!(true),
    }
    t
}

/// A machine that calls `first`, enters `looped` twice (a Choice sends it
/// back while the task answers `{"again": true}`), then runs a Parallel
/// named `par` whose two branches call `inner[0]` and `inner[1]`.
fn machine(first: &str, looped: &str, par: &str, inner: [&str; 2]) -> Value {
    let branch = |name: &str| json!({ "StartAt": name, "States": { name: task(None) } });
    json!({
        "StartAt": first,
        "States": {
            first: task(Some(looped)),
            looped: task(Some("again?")),
            "again?": {
                "Type": "Choice",
                "Choices": [{ "Variable": "$.again", "BooleanEquals": true, "Next": looped }],
                "Default": par
            },
            par: {
                "Type": "Parallel",
                "Branches": [branch(inner[0]), branch(inner[1])],
                "End": true
            }
        }
    })
}

/// Runs an execution to its end, answering every call; returns the key of
/// every call made, with the instance key of the call.
fn keys_of_run(plan: &Plan, execution_id: &str) -> Vec<(String, String)> {
    let mut ex = Execution::empty(plan);
    let mut now = 1_000_000;
    let mut calls = Vec::new();
    let mut answered_loop = 0;
    let mut queue: Vec<Effect> = Vec::new();
    let decide = |ex: &mut Execution, input: Input, now: &mut u64| -> Vec<Effect> {
        *now += 10;
        let ctx = Ctx {
            now: *now,
            random: 0.5,
            entropy: 7,
        };
        let d = ex
            .decide_and_preview(plan, input, ctx)
            .unwrap_or_else(|e| panic!("the input is allowed: {e}"));
        *ex = d.state;
        d.effects
    };
    queue.extend(decide(
        &mut ex,
        Input::Start {
            execution_id: execution_id.into(),
            definition: "m".into(),
            version: 1,
            input: json!({}),
        },
        &mut now,
    ));
    while let Some(effect) = queue.pop() {
        let Effect::Invoke { step, task, .. } = effect else {
            continue;
        };
        let req = ex
            .request(plan, &step, task)
            .unwrap_or_else(|e| panic!("a request for {step}: {e:?}"));
        calls.push((req.idempotency_key.clone(), step.clone()));
        // The first two calls that reach the looped state answer "again"
        // once, so it is entered a second time.
        answered_loop += 1;
        let output = json!({ "again": answered_loop == 2 });
        let attempt = ex.attempts(plan, &step, task);
        queue.extend(decide(
            &mut ex,
            Input::TaskSucceeded {
                step,
                task,
                attempt,
                output,
            },
            &mut now,
        ));
    }
    assert!(
        ex.status.is_terminal(),
        "the execution {execution_id:?} ends (it is {:?})",
        ex.status
    );
    calls
}

fn compiled(machine: &Value) -> Plan {
    compile_definition(&machine.to_string(), Some("m"), &resources())
        .unwrap_or_else(|e| panic!("the machine compiles: {e}"))
}

/// Asserts that no key is shared by two distinct calls (execution, instance).
fn assert_unique(runs: &[(String, Vec<(String, String)>)], seed: Option<u64>) {
    let mut seen: HashMap<&str, (&str, &str)> = HashMap::new();
    for (execution, calls) in runs {
        for (key, instance) in calls {
            if let Some(first) = seen.insert(key, (execution, instance)) {
                assert_eq!(
                    first,
                    (execution.as_str(), instance.as_str()),
                    "two distinct calls share the key {key:?} (seed {seed:?})"
                );
            }
        }
    }
}

#[test]
fn a_state_named_like_a_second_entry_does_not_share_its_key() {
    // `A#2` is literally the instance key of the second entry into `A`
    // under the legacy scheme.
    let plan = compiled(&machine("A#2", "A", "Par", ["X", "Y"]));
    let calls = keys_of_run(&plan, "k");
    assert_eq!(calls.len(), 5, "A#2, A twice and two branches: {calls:?}");
    assert_unique(&[("k".into(), calls)], None);
}

#[test]
fn a_state_named_like_a_branch_path_does_not_share_its_key() {
    let plan = compiled(&machine("Par[0]/X", "L", "Par", ["X", "Y"]));
    let calls = keys_of_run(&plan, "k");
    assert_unique(&[("k".into(), calls)], None);
}

#[test]
fn colons_in_execution_ids_and_state_names_do_not_make_two_executions_share_a_key() {
    // Execution `k` with state `X:Y` and execution `k:X` with state `Y`
    // both sent `k:X:Y:action` before.
    let colon = compiled(&machine("X:Y", "L", "P", ["B0", "B1"]));
    let plain = compiled(&machine("Y", "L", "P", ["B0", "B1"]));
    let runs = vec![
        ("k".to_string(), keys_of_run(&colon, "k")),
        ("k:X".to_string(), keys_of_run(&plain, "k:X")),
    ];
    assert_unique(&runs, None);
}

#[test]
fn ordinary_names_keep_the_keys_they_had_before() {
    let plan = compiled(&machine(
        "Reserve Hotel",
        "Charge",
        "Fan",
        ["Car", "Flight"],
    ));
    let keys: Vec<String> = keys_of_run(&plan, "trip-1")
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    for expected in [
        "trip-1:Reserve Hotel:action",
        "trip-1:Charge:action",
        "trip-1:Charge#2:action",
        "trip-1:Fan[0]/Car:action",
        "trip-1:Fan[1]/Flight:action",
    ] {
        assert!(keys.iter().any(|k| k == expected), "{expected} in {keys:?}");
    }
}

#[test]
fn saga_keys_split_back_into_execution_step_and_task() {
    // Saga step names are validated to `[A-Za-z0-9_-]`: no colon.
    for (id, step) in [("k", "X"), ("k:X", "Y"), ("a:b:c", "d")] {
        let key = sagaflow_core::keys::idempotency_key(id, step, TaskKind::Compensation);
        let mut parts = key.rsplitn(3, ':');
        assert_eq!(parts.next(), Some("compensation"));
        assert_eq!(parts.next(), Some(step));
        assert_eq!(parts.next(), Some(id));
    }
}

#[test]
fn executions_started_before_the_escaping_keep_their_legacy_keys() {
    let plan = compiled(&machine("A#2", "A", "Par", ["X", "Y"]));
    // A history written before `keys` was recorded: `execution_started`
    // has no `keys` field.
    let started: Event = serde_json::from_value(json!({
        "at": 1000,
        "type": "execution_started",
        "execution_id": "old",
        "definition": "m",
        "version": 1,
        "input": {}
    }))
    .expect("an old event parses");
    assert!(matches!(
        &started.kind,
        EventKind::ExecutionStarted { keys, .. } if keys.is_legacy()
    ));
    let scheduled: Event = serde_json::from_value(json!({
        "at": 1001,
        "type": "step_scheduled",
        "step": "A#2",
        "attempt": 1,
        "deadline": 99_000
    }))
    .expect("an old event parses");
    let ex = Execution::replay(&plan, &[started, scheduled]).expect("the old history replays");
    let req = ex
        .request(&plan, "A#2", TaskKind::Action)
        .expect("the first state runs under its legacy key");
    assert_eq!(req.idempotency_key, "old:A#2:action");
}

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() % from.len() as u64) as usize]
    }

    fn word(&mut self, alphabet: &[&str], max: u64) -> String {
        let len = 1 + self.next() % max;
        (0..len).map(|_| self.pick(alphabet)).collect()
    }
}

#[test]
fn randomly_drawn_adversarial_names_and_ids_never_share_a_key() {
    let seed = std::env::var("SAGAFLOW_KEYS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    println!("seed {seed} (re-run with SAGAFLOW_KEYS_SEED={seed})");
    let mut rng = Rng(seed);
    // The characters that build keys, and a few ordinary ones.
    let names = [
        "A", "B", "x", "#", "2", "/", "[", "]", "0", "1", "@", ":", "%", "2F", "\n", " ",
    ];
    // Execution ids the API accepts: alphanumerics and `-_.:`.
    let ids = ["k", "X", "Y", ":", "-", ".", "_", "2", "A"];
    let mut runs = Vec::new();
    for _ in 0..60 {
        let mut drawn: Vec<String> = Vec::new();
        while drawn.len() < 5 {
            let n = rng.word(&names, 6);
            // State names are unique within a machine (and `again?` is taken).
            if !drawn.contains(&n) && n != "again?" {
                drawn.push(n);
            }
        }
        let plan = compiled(&machine(
            &drawn[0],
            &drawn[1],
            &drawn[2],
            [&drawn[3], &drawn[4]],
        ));
        let id = rng.word(&ids, 5);
        if runs.iter().any(|(other, _)| *other == id) {
            continue; // execution ids are unique in a store
        }
        let calls = keys_of_run(&plan, &id);
        runs.push((id, calls));
    }
    assert_unique(&runs, Some(seed));
}
