//! Micro-benchmarks of the pure core: the transition function over a whole
//! travel saga and over one step, replay, request rendering, compiling
//! `examples/travel-saga.yaml`, and an ASL Map of 1,000 and 10,000 Task
//! items decided in place (its time per item must stay flat).
//!
//! `cargo bench -p sagaflow-core` (add `-- --quick` for a rough number fast).

use std::collections::VecDeque;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sagaflow_core::asl::{ResourceMap, ResourceRule};
use sagaflow_core::{
    compile, compile_definition, Ctx, Effect, Event, Execution, Input, Plan, Status, TaskKind,
};
use serde_json::{json, Value};

const TRAVEL: &str = include_str!("../../../examples/travel-saga.yaml");

fn ctx() -> Ctx {
    Ctx {
        now: 1_700_000_000_000,
        random: 0.5,
        entropy: 0x5eed,
    }
}

fn start() -> Input {
    Input::Start {
        execution_id: "bench-1".into(),
        definition: "trip-booking".into(),
        version: 1,
        input: json!({ "trip_id": "t-1", "amount": 450, "hotel": "holiday inn" }),
    }
}

fn output() -> Value {
    json!({ "booking_id": "b-1", "status": "reserved" })
}

/// The inputs the runtime would feed for one step's invocation: its success.
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
            output: output(),
        }),
        _ => None,
    }
}

/// A whole saga where every participant succeeds at once, through `decide`
/// then `apply` of each event (the replay path's transition). Returns the history.
fn run_decide_apply(plan: &Plan) -> Vec<Event> {
    let mut state = Execution::empty(plan);
    let mut history = Vec::new();
    let mut inputs = VecDeque::from([start()]);
    while let Some(input) = inputs.pop_front() {
        let events = state.decide(plan, input, ctx()).expect("decide");
        for e in &events {
            let effects = state.apply(plan, e).expect("apply");
            inputs.extend(effects.into_iter().filter_map(answer));
        }
        history.extend(events);
    }
    assert_eq!(state.status, Status::Succeeded);
    history
}

/// The same through `decide_and_preview` (what the runtime's actor does).
fn run_preview(plan: &Plan) -> usize {
    let mut state = Execution::empty(plan);
    let mut events = 0;
    let mut inputs = VecDeque::from([start()]);
    while let Some(input) = inputs.pop_front() {
        let d = state
            .decide_and_preview(plan, input, ctx())
            .expect("decide");
        events += d.events.len();
        state = d.state;
        inputs.extend(d.effects.into_iter().filter_map(answer));
    }
    assert_eq!(state.status, Status::Succeeded);
    events
}

fn saga(c: &mut Criterion) {
    let plan = compile(TRAVEL, None).expect("the travel saga compiles");
    let history = run_decide_apply(&plan);

    let mut g = c.benchmark_group("travel_saga");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decide+apply (whole saga, 7 steps)", |b| {
        b.iter(|| run_decide_apply(black_box(&plan)))
    });
    g.bench_function("decide_and_preview (whole saga, 7 steps)", |b| {
        b.iter(|| run_preview(black_box(&plan)))
    });
    g.bench_function("replay (16 events)", |b| {
        b.iter(|| Execution::replay(black_box(&plan), black_box(&history)).expect("replay"))
    });
    g.finish();

    // One step: reserve_hotel is running; its participant answers success,
    // which also schedules reserve_flight.
    let mut running = Execution::empty(&plan);
    for e in running.decide(&plan, start(), ctx()).expect("start") {
        running.apply(&plan, &e).expect("apply");
    }
    let succeeded = || Input::TaskSucceeded {
        step: "reserve_hotel".into(),
        task: TaskKind::Action,
        attempt: 1,
        output: output(),
    };
    let mut g = c.benchmark_group("one_step");
    g.bench_function("decide+apply (step succeeded)", |b| {
        b.iter_batched(
            || (running.clone(), succeeded()),
            |(mut s, input)| {
                for e in s.decide(&plan, input, ctx()).expect("decide") {
                    black_box(s.apply(&plan, &e).expect("apply"));
                }
                s
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("decide_and_preview (step succeeded)", |b| {
        b.iter_batched(
            succeeded,
            |input| {
                running
                    .decide_and_preview(&plan, input, ctx())
                    .expect("decide")
            },
            BatchSize::SmallInput,
        )
    });
    // Rendering the request of the last stage: its input template sees every
    // earlier step's output.
    let before_confirm = Execution::replay(&plan, &history[..history.len() - 4]).expect("replay");
    g.bench_function("request (confirm_hotel, after 4 steps)", |b| {
        b.iter(|| {
            before_confirm
                .request(&plan, black_box("confirm_hotel"), TaskKind::Action)
                .expect("request")
        })
    });
    g.finish();
}

fn definition(c: &mut Criterion) {
    c.bench_function("compile examples/travel-saga.yaml", |b| {
        b.iter(|| compile(black_box(TRAVEL), None).expect("compiles"))
    });
}

/// An ASL machine whose Map runs one Task per item, every item at once.
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

/// One execution of [`map_plan`] over `items` items through
/// `decide_in_place`, each Task answered in turn (what the runtime's actor does).
fn run_map(plan: &Plan, items: usize) -> u64 {
    let mut state = Execution::empty(plan);
    let list: Vec<Value> = (0..items).map(|i| json!({ "n": i })).collect();
    let mut inputs = VecDeque::from([Input::Start {
        execution_id: "bench-map".into(),
        definition: "map".into(),
        version: 1,
        input: json!({ "items": list }),
    }]);
    while let Some(input) = inputs.pop_front() {
        let applied = state.decide_in_place(plan, input, ctx()).expect("decide");
        inputs.extend(applied.effects.into_iter().filter_map(answer));
    }
    assert_eq!(state.status, Status::Succeeded);
    state.events
}

fn asl_map(c: &mut Criterion) {
    let plan = map_plan();
    let mut g = c.benchmark_group("asl_map");
    g.sample_size(10);
    for items in [1_000, 10_000] {
        g.throughput(Throughput::Elements(items as u64));
        g.bench_function(format!("decide_in_place ({items} items)"), |b| {
            b.iter(|| run_map(black_box(&plan), items))
        });
    }
    g.finish();
}

criterion_group!(benches, saga, definition, asl_map);
criterion_main!(benches);
