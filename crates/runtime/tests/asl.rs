//! ASL state machines on the real engine: in-process participants bound
//! through the resource map, callbacks through task tokens, timers, and a
//! restart in the middle of an execution.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sagaflow_core::asl::{ResourceMap, ResourceRule};
use sagaflow_core::{ErrorInfo, EventKind, Status};
use sagaflow_runtime::{handler_fn, Config, Engine};
use sagaflow_store::memory::MemoryStore;
use sagaflow_store::Executor;
use serde_json::{json, Value};
use tokio::sync::mpsc;

const HUMANK: &str = include_str!(
    "../../../examples/step-functions/saga/humank--lambda-saga-pattern--stepfunc.asl.json"
);

fn config() -> Config {
    Config {
        timer_poll: Duration::from_millis(50),
        resources: ResourceMap {
            rules: vec![ResourceRule {
                pattern: "arn:aws:lambda:*:*:function:{name}".into(),
                target: "handler:{name}".into(),
            }],
        },
        ..Config::default()
    }
}

/// Every call goes to one handler per function name; `calls` records the
/// order, `flaky` names functions that fail their first call.
struct World {
    engine: Engine,
    store: Arc<MemoryStore>,
    calls: Arc<Mutex<Vec<String>>>,
    tokens: mpsc::UnboundedReceiver<String>,
}

fn world_on(store: Arc<MemoryStore>, flaky: &'static [&'static str]) -> World {
    let calls = Arc::new(Mutex::new(Vec::new()));
    // Unbounded: a participant never waits for the test to read a token
    // (a test reads only those it needs).
    let (tx, tokens) = mpsc::unbounded_channel();
    let mut b = Engine::builder(store.clone()).config(config());
    let functions = [
        "lambda-saga-dev-book-hotel",
        "lambda-saga-dev-book-flight",
        "lambda-saga-dev-book-rental",
        "lambda-saga-dev-cancel-hotel",
        "lambda-saga-dev-cancel-flight",
        "lambda-saga-dev-cancel-rental",
        "ok",
        "fail",
        "ask",
    ];
    for f in functions {
        let calls = calls.clone();
        let tx = tx.clone();
        b = b.handler(
            f,
            handler_fn(move |req| {
                let calls = calls.clone();
                let tx = tx.clone();
                async move {
                    let mut c = calls.lock().unwrap();
                    let first = !c.iter().any(|x: &String| x == f);
                    c.push(f.to_string());
                    drop(c);
                    if f == "ask" {
                        if let Some(t) = req.input.get("token").and_then(Value::as_str) {
                            let _ = tx.send(t.to_string());
                        }
                        return Ok(json!({}));
                    }
                    if f == "fail" || (first && flaky.contains(&f)) {
                        return Err(ErrorInfo::new("Boom", format!("{f} failed")));
                    }
                    if f.ends_with("book-rental") && req.input["breakAtRental"] == json!(true) {
                        return Err(ErrorInfo::new("RentalUnavailable", "no cars"));
                    }
                    Ok(json!({ "status": "ok", "by": f }))
                }
            }),
        );
    }
    World {
        engine: b.build(),
        store,
        calls,
        tokens,
    }
}

async fn world(flaky: &'static [&'static str]) -> World {
    let w = world_on(Arc::new(MemoryStore::new()), flaky);
    w.engine.start().await.expect("engine starts");
    w
}

async fn run(w: &World, machine: &str, input: Value) -> sagaflow_store::ExecutionRecord {
    w.engine.deploy(Some("m"), machine).await.expect("deploys");
    let (rec, _) = w
        .engine
        .start_execution("m", input, None)
        .await
        .expect("starts");
    w.engine
        .wait(&rec.id, Duration::from_secs(20))
        .await
        .expect("waits")
}

fn calls(w: &World) -> Vec<String> {
    w.calls
        .lock()
        .unwrap()
        .iter()
        .map(|c| c.trim_start_matches("lambda-saga-dev-").to_string())
        .collect()
}

#[tokio::test]
async fn the_humank_saga_books_everything_when_nothing_fails() {
    let w = world(&[]).await;
    let rec = run(&w, HUMANK, json!({"trip_id": "1"})).await;
    assert_eq!(rec.status, Status::Succeeded);
    assert_eq!(calls(&w), ["book-hotel", "book-flight", "book-rental"]);
    let out = rec.output.expect("an output");
    assert_eq!(out["BookRentalResult"]["status"], "ok");
    assert_eq!(out["trip_id"], "1");
}

#[tokio::test]
async fn the_humank_saga_cancels_in_reverse_order_and_retries_a_failing_cancel() {
    let w = world(&["lambda-saga-dev-cancel-flight"]).await;
    let rec = run(&w, HUMANK, json!({"trip_id": "2", "breakAtRental": true})).await;
    assert_eq!(
        rec.status,
        Status::Failed,
        "the chain ends in its Fail state"
    );
    assert_eq!(
        calls(&w),
        [
            "book-hotel",
            "book-flight",
            "book-rental",
            "cancel-rental",
            "cancel-flight",
            "cancel-flight",
            "cancel-hotel"
        ],
        "the failed cancel loops back to itself until it succeeds"
    );
}

#[tokio::test]
async fn a_task_token_completes_the_task_through_the_engine() {
    let mut w = world(&[]).await;
    let machine = json!({
        "StartAt": "Approve",
        "States": {
            "Approve": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Parameters": {"FunctionName": "ask", "Payload": {"token.$": "$$.Task.Token"}},
                "Catch": [{"ErrorEquals": ["Rejected"], "ResultPath": "$.why", "Next": "Declined"}],
                "Next": "Book"
            },
            "Book": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:ok", "ResultPath": "$.booked", "End": true},
            "Declined": {"Type": "Pass", "End": true}
        }
    })
    .to_string();
    w.engine.deploy(Some("m"), &machine).await.expect("deploys");
    let (a, _) = w
        .engine
        .start_execution("m", json!({}), None)
        .await
        .unwrap();
    let token = w.tokens.recv().await.expect("a token");
    w.engine
        .callback(&token, Some(Ok(json!({"approved": true}))))
        .await
        .expect("the token is accepted");
    let a = w.engine.wait(&a.id, Duration::from_secs(10)).await.unwrap();
    assert_eq!(a.status, Status::Succeeded);
    assert_eq!(a.output.unwrap()["booked"]["status"], "ok");

    let (b, _) = w
        .engine
        .start_execution("m", json!({}), None)
        .await
        .unwrap();
    let token = w.tokens.recv().await.expect("a token");
    w.engine
        .callback(&token, Some(Err(ErrorInfo::new("Rejected", "no budget"))))
        .await
        .expect("the token is accepted");
    let b = w.engine.wait(&b.id, Duration::from_secs(10)).await.unwrap();
    assert_eq!(b.status, Status::Succeeded);
    assert_eq!(
        b.output.unwrap(),
        json!({"why": {"Error": "Rejected", "Cause": "no budget"}})
    );
    let again = w.engine.callback(&token, Some(Ok(json!({})))).await;
    assert!(again.is_err(), "a used token is refused");
}

#[tokio::test]
async fn a_task_whose_heartbeats_stop_fails_with_a_heartbeat_timeout() {
    let mut w = world(&[]).await;
    let machine = json!({
        "StartAt": "Approve",
        "States": {
            "Approve": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Parameters": {"FunctionName": "ask", "Payload": {"token.$": "$$.Task.Token"}},
                "TimeoutSeconds": 3600,
                "HeartbeatSeconds": 1,
                "End": true
            }
        }
    })
    .to_string();
    w.engine.deploy(Some("m"), &machine).await.expect("deploys");
    let (rec, _) = w
        .engine
        .start_execution("m", json!({}), None)
        .await
        .unwrap();
    let token = w.tokens.recv().await.expect("a token");
    // Alive for a while (longer than one heartbeat interval in all) ...
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        w.engine
            .callback(&token, None)
            .await
            .expect("still waiting");
    }
    // ... then silent: the task fails an interval after the last heartbeat.
    let done = w
        .engine
        .wait(&rec.id, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(done.status, Status::Failed);
    let error = done.error.expect("an error");
    assert_eq!(error.error, "States.HeartbeatTimeout");
    assert!(error.cause.contains("no heartbeat"), "{}", error.cause);
    let late = w.engine.callback(&token, None).await;
    assert!(
        late.is_err(),
        "a heartbeat of a task that gave up is refused"
    );
}

#[tokio::test]
async fn a_wait_state_resumes_after_its_timer() {
    let w = world(&[]).await;
    let rec = run(
        &w,
        &json!({
            "StartAt": "W",
            "States": {
                "W": {"Type": "Wait", "Seconds": 1, "Next": "T"},
                "T": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:ok", "End": true}
            }
        })
        .to_string(),
        json!({}),
    )
    .await;
    assert_eq!(rec.status, Status::Succeeded);
    let history = w.store.load_history(&rec.id).await.unwrap();
    assert!(history
        .iter()
        .any(|e| matches!(&e.kind, EventKind::TimerFired { step, .. } if step == "W")));
}

#[tokio::test]
async fn a_map_and_a_parallel_run_on_the_engine() {
    let w = world(&[]).await;
    // State names are unique across the whole machine, as in AWS.
    let task = |name: &str| json!({"StartAt": name, "States": {name: {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:ok", "End": true}}});
    let rec = run(
        &w,
        &json!({
            "StartAt": "M",
            "States": {
                "M": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 2, "ItemProcessor": task("Each"), "ResultPath": "$.mapped", "Next": "P"},
                "P": {"Type": "Parallel", "Branches": [task("Left"), task("Right")], "ResultPath": "$.both", "End": true}
            }
        })
        .to_string(),
        json!({"items": [1, 2, 3]}),
    )
    .await;
    assert_eq!(rec.status, Status::Succeeded);
    let out = rec.output.unwrap();
    assert_eq!(out["mapped"].as_array().map(Vec::len), Some(3));
    assert_eq!(out["both"].as_array().map(Vec::len), Some(2));
    assert_eq!(calls(&w).len(), 5);
}

#[tokio::test]
async fn an_execution_parked_on_a_token_survives_a_restart() {
    let store = Arc::new(MemoryStore::new());
    let mut first = world_on(store.clone(), &[]);
    first.engine.start().await.unwrap();
    let machine = json!({
        "StartAt": "Approve",
        "States": {
            "Approve": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Parameters": {"FunctionName": "ask", "Payload": {"token.$": "$$.Task.Token"}},
                "End": true
            }
        }
    })
    .to_string();
    first.engine.deploy(Some("m"), &machine).await.unwrap();
    let (rec, _) = first
        .engine
        .start_execution("m", json!({}), None)
        .await
        .unwrap();
    let token = first.tokens.recv().await.expect("a token");
    // Wait until the acknowledgement is recorded, then stop the node.
    for _ in 0..200 {
        let h = store.load_history(&rec.id).await.unwrap();
        if h.iter()
            .any(|e| matches!(e.kind, EventKind::TaskParked { .. }))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.engine.shutdown(Duration::from_secs(1)).await;

    let second = world_on(store.clone(), &[]);
    second.engine.start().await.unwrap();
    second
        .engine
        .callback(&token, Some(Ok(json!({"ok": 1}))))
        .await
        .expect("the new node accepts the old token");
    let done = second
        .engine
        .wait(&rec.id, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(done.status, Status::Succeeded);
    assert_eq!(done.output, Some(json!({"ok": 1})));
}

#[tokio::test]
async fn a_wait_0_loop_ends_failed_with_states_runtime_at_the_history_limit() {
    // The default limit is AWS's 25,000 (the core's tests run a loop up to
    // it); a Wait turn takes a timer tick (~1 ms), so this one is lower.
    let store = Arc::new(MemoryStore::new());
    let engine = Engine::builder(store.clone())
        .config(Config {
            max_history_events: 2_000,
            ..config()
        })
        .build();
    engine.start().await.expect("engine starts");
    let machine = json!({"StartAt": "Loop", "States": {
        "Loop": {"Type": "Wait", "Seconds": 0, "Next": "Again"},
        "Again": {"Type": "Choice", "Default": "Loop", "Choices": [
            {"Variable": "$.stop", "BooleanEquals": true, "Next": "Done"}
        ]},
        "Done": {"Type": "Succeed"}
    }})
    .to_string();
    engine.deploy(Some("m"), &machine).await.expect("deploys");
    let (rec, _) = engine
        .start_execution("m", json!({"stop": false}), None)
        .await
        .expect("starts");
    // A generous bound: the loop runs as fast as the engine can record it.
    let rec = engine
        .wait(&rec.id, Duration::from_secs(60))
        .await
        .expect("waits");
    assert_eq!(rec.status, Status::Failed);
    let error = rec.error.expect("an error");
    assert_eq!(error.error, "States.Runtime");
    assert!(
        error
            .cause
            .contains("history reached the limit of 2000 events"),
        "{}",
        error.cause
    );
    let history = store.load_history(&rec.id).await.expect("history");
    assert_eq!(history.len(), 2_000);
    assert_eq!(rec.events, 2_000);
    let redrive = engine.redrive(&rec.id).await;
    assert!(
        matches!(&redrive, Err(e) if e.code() == "not_redrivable"),
        "{:?}",
        redrive.map(|r| r.status)
    );
}
