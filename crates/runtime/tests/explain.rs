//! The failure explorer's prediction against the real engine: for every
//! step of the travel saga and of the seed ASL machines, a dry run with
//! that step failing on every attempt (`sagaflow_core::explain`) and a real
//! execution whose in-process participant fails the same way take the
//! same path: the same events, for the same steps, in the same order, and
//! the same end.
//!
//! Faults whose path never ends (a step after the pivot retried forward)
//! are checked as the dry run's `RetriedWithoutEnd` only.

use std::sync::Arc;
use std::time::Duration;

use sagaflow_core::explain::{self, ActionFault, End, Faults};
use sagaflow_core::{compile_definition, ErrorInfo, EventKind, TaskKind};
use sagaflow_runtime::{handler_fn, Config, Engine};
use sagaflow_store::memory::MemoryStore;
use sagaflow_store::Query;
use serde_json::{json, Value};

const TRAVEL: &str = include_str!("../../../examples/travel-saga.yaml");
const MACHINES: [(&str, &str); 3] = [
    (
        "cdk-single-table",
        include_str!(
            "../../../examples/step-functions/saga/cdk-patterns--the-saga-stepfunction--single-table.asl.json"
        ),
    ),
    (
        "cdk-multi-table",
        include_str!(
            "../../../examples/step-functions/saga/cdk-patterns--the-saga-stepfunction--multi-table.RECONSTRUCTED.asl.json"
        ),
    ),
    (
        "humank",
        include_str!("../../../examples/step-functions/saga/humank--lambda-saga-pattern--stepfunc.asl.json"),
    ),
];

/// The error every injected failure has (retried by the travel saga's
/// default `retry_on`, caught by the machines' `States.ALL`).
const ERROR: &str = "States.TaskFailed";

/// The travel saga with every HTTP participant replaced by the in-process
/// handler `dry-run` (retries and timeouts kept).
fn travel_in_process() -> String {
    TRAVEL
        .lines()
        .map(|line| {
            if let Some(at) = line.find("{ http: {") {
                format!("{}{{ handler: dry-run }}", &line[..at])
            } else if line.trim_start().starts_with("http: {") {
                let indent = line.len() - line.trim_start().len();
                format!("{}handler: dry-run", " ".repeat(indent))
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// An engine whose one participant, `dry-run` (every resource and
/// handler is bound to it), fails `step`'s action on every attempt.
async fn engine(step: &str) -> (Engine, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new());
    let failing = step.to_string();
    let config = Config {
        timer_poll: Duration::from_millis(20),
        resources: explain::any_resource(),
        ..Config::default()
    };
    let engine = Engine::builder(store.clone())
        .config(config)
        .handler(
            "dry-run",
            handler_fn(move |req| {
                let fails =
                    req.task == TaskKind::Action && explain::names_state(&req.step, &failing);
                async move {
                    if fails {
                        Err(ErrorInfo::new(ERROR, "injected"))
                    } else {
                        Ok(Value::Null)
                    }
                }
            }),
        )
        .build();
    engine.start().await.expect("the engine starts");
    (engine, store)
}

/// `(event name, step)` of each event: the path.
fn path(events: &[EventKind]) -> Vec<String> {
    events
        .iter()
        .map(|e| format!("{} {}", e.name(), e.step().unwrap_or("")))
        .collect()
}

/// Checks every step of `source` (deployed as `name`); returns the faults
/// whose real path differed from the predicted one, and how many were
/// compared with a real execution.
async fn every_step(name: &str, source: &str) -> (Vec<String>, usize) {
    let hint = (name != "trip-booking").then_some(name);
    let plan = compile_definition(source, hint, &explain::any_resource()).expect("it compiles");
    let input = json!({"trip_id": "t-1", "run_type": "explained"});
    let clean = explain::dry_run(&plan, input.clone(), &Faults::default()).unwrap();
    let steps = explain::steps(&clean.events);
    assert!(steps.len() >= 3, "{name}: {steps:?}");
    let mut wrong = Vec::new();
    let mut compared = 0;
    for step in steps {
        let faults = Faults {
            action: Some(ActionFault {
                step: step.clone(),
                error: ERROR.into(),
            }),
            compensation: None,
        };
        let predicted = explain::dry_run(&plan, input.clone(), &faults).unwrap();
        let End::Finished { status, .. } = predicted.end else {
            // Retried forward without end: nothing to wait for.
            assert!(
                matches!(predicted.end, End::RetriedWithoutEnd { .. }),
                "{name} {step}: {:?}",
                predicted.end
            );
            continue;
        };
        compared += 1;
        let (engine, store) = engine(&step).await;
        engine.deploy(hint, source).await.expect("it deploys");
        let (rec, _) = engine
            .start_execution(&plan.name, input.clone(), None)
            .await
            .expect("it starts");
        let rec = engine
            .wait(&rec.id, Duration::from_secs(60))
            .await
            .expect("it ends");
        let real: Vec<EventKind> = store
            .history(&rec.id, 0)
            .await
            .unwrap()
            .into_iter()
            .map(|h| h.event.kind)
            .collect();
        let predicted_path = path(
            &predicted
                .events
                .iter()
                .map(|e| e.kind.clone())
                .collect::<Vec<_>>(),
        );
        if rec.status != status || path(&real) != predicted_path {
            wrong.push(format!(
                "{name}, {step} failing: real {:?} {:?}\n  predicted {status:?} {predicted_path:?}",
                rec.status,
                path(&real)
            ));
        }
        engine.shutdown(Duration::from_secs(5)).await;
    }
    (wrong, compared)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_step_of_the_travel_saga_fails_as_the_explorer_predicts() {
    let (wrong, compared) = every_step("trip-booking", &travel_in_process()).await;
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // The three reservations and the payment (the confirmations after the
    // pivot are retried forward without end).
    assert_eq!(compared, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_task_state_of_the_seed_machines_fails_as_the_explorer_predicts() {
    let mut wrong = Vec::new();
    for (name, machine) in MACHINES {
        let (differ, compared) = every_step(name, machine).await;
        assert!(compared >= 3, "{name}: {compared} task states compared");
        wrong.extend(differ);
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
