//! A JSONata Pass state (`Output` template) against the equivalent JSONPath
//! Pass state (`Parameters`): one whole execution of a one-state machine
//! (start, the Pass, the end) through `decide_in_place`, as the runtime's
//! actor runs it.
//!
//! `cargo bench -p sagaflow-core --bench asl_jsonata` (README, "JSONata in
//! machines", has the numbers).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use sagaflow_core::asl::ResourceMap;
use sagaflow_core::{compile_definition, Ctx, Execution, Input, Plan, Status};
use serde_json::{json, Value};

fn plan(state: Value) -> Plan {
    let machine = json!({"StartAt": "Shape", "States": {"Shape": state}});
    compile_definition(&machine.to_string(), Some("m"), &ResourceMap::default())
        .expect("the machine compiles")
}

fn input() -> Value {
    json!({
        "order": {"id": "o-42", "total": 99.5, "lines": [1, 2, 3]},
        "customer": {"name": "Ada", "tier": "gold"}
    })
}

fn run(plan: &Plan) -> Value {
    let mut state = Execution::empty(plan);
    let start = Input::Start {
        execution_id: "bench".into(),
        definition: "m".into(),
        version: 1,
        input: input(),
    };
    let ctx = Ctx {
        now: 1_700_000_000_000,
        random: 0.5,
        entropy: 0x5eed,
    };
    state.decide_in_place(plan, start, ctx).expect("decide");
    assert_eq!(state.status, Status::Succeeded);
    state.output.clone().expect("an output")
}

fn pass(c: &mut Criterion) {
    let jsonpath = plan(json!({
        "Type": "Pass",
        "Parameters": {
            "id.$": "$.order.id",
            "total.$": "$.order.total",
            "name.$": "$.customer.name",
            "static": "v1"
        },
        "End": true
    }));
    let jsonata = plan(json!({
        "Type": "Pass",
        "QueryLanguage": "JSONata",
        "Output": {
            "id": "{% $states.input.order.id %}",
            "total": "{% $states.input.order.total %}",
            "name": "{% $states.input.customer.name %}",
            "static": "v1"
        },
        "End": true
    }));
    assert_eq!(
        run(&jsonpath),
        run(&jsonata),
        "the two states are equivalent"
    );
    let mut g = c.benchmark_group("asl_pass");
    g.bench_function("JSONPath Parameters (3 paths)", |b| {
        b.iter(|| run(black_box(&jsonpath)))
    });
    g.bench_function("JSONata Output (3 expressions)", |b| {
        b.iter(|| run(black_box(&jsonata)))
    });
    g.finish();
}

criterion_group!(benches, pass);
criterion_main!(benches);
