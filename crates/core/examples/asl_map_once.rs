//! One run of the `asl_map` bench's Map (the same machine and answers as
//! `benches/core.rs`), for instruction-count profiles, which unlike times
//! repeat on a loaded machine: criterion runs as many iterations as fit
//! its time, so its counts would vary. The item count is the first argument
//! (default 1,000). It uses only what `433dd14` already had, so the same
//! file profiles the code before issue 18 (README, "JSONPath machines after
//! workflow variables and JSONata").
//!
//! `CARGO_PROFILE_BENCH_DEBUG=line-tables-only cargo build -p sagaflow-core
//! --profile bench --example asl_map_once`, then `valgrind --tool=callgrind
//! target/release/examples/asl_map_once 1000` and `callgrind_annotate`.

use std::collections::VecDeque;

use sagaflow_core::asl::{ResourceMap, ResourceRule};
use sagaflow_core::{compile_definition, Ctx, Effect, Execution, Input, Plan, Status};
use serde_json::{json, Value};

fn ctx() -> Ctx {
    Ctx {
        now: 1_700_000_000_000,
        random: 0.5,
        entropy: 0x5eed,
    }
}

/// A step's success, as the runtime would feed it.
fn answer(effect: Effect) -> Option<Input> {
    match effect {
        Effect::Invoke {
            step,
            task,
            attempt,
            ..
        } => Some(Input::TaskSucceeded {
            step,
            task,
            attempt,
            output: json!({ "booking_id": "b-1", "status": "reserved" }),
        }),
        _ => None,
    }
}

/// The bench's Map: one Task per item, every item at once.
fn map_plan() -> Plan {
    let machine = json!({
        "StartAt": "Items",
        "States": { "Items": {
            "Type": "Map", "ItemsPath": "$.items", "End": true,
            "ItemProcessor": { "StartAt": "Work", "States": { "Work": {
                "Type": "Task", "End": true,
                "Resource": "arn:aws:lambda:us-east-1:123456789012:function:noop"
            } } }
        } }
    });
    let resources = ResourceMap {
        rules: vec![ResourceRule {
            pattern: "arn:aws:lambda:*:*:function:{name}".into(),
            target: "handler:{name}".into(),
        }],
    };
    compile_definition(&machine.to_string(), Some("map"), &resources).expect("the Map compiles")
}

fn main() {
    let items: usize = std::env::args()
        .nth(1)
        .map_or(1_000, |a| a.parse().expect("an item count"));
    let plan = map_plan();
    let mut state = Execution::empty(&plan);
    let list: Vec<Value> = (0..items).map(|i| json!({ "n": i })).collect();
    let mut inputs = VecDeque::from([Input::Start {
        execution_id: "bench-map".into(),
        definition: "map".into(),
        version: 1,
        input: json!({ "items": list }),
    }]);
    while let Some(input) = inputs.pop_front() {
        let applied = state.decide_in_place(&plan, input, ctx()).expect("decide");
        inputs.extend(applied.effects.into_iter().filter_map(answer));
    }
    assert_eq!(state.status, Status::Succeeded);
    println!("{} events", state.events);
}
